//! `dsl sweep`: a trial runs through the same engine as `dsl backtest`; shards run as separate
//! processes merge into exactly the single-process result; `--resume` carries on; the sweep
//! is journaled as one run; bad spaces and sweep documents get located diagnostics.

use std::path::{Path, PathBuf};

use crate::common::{count, data, dsl, rows};
use tradedsl::runtime::library::source::{DataArg, DataRequest};
use tradedsl::runtime::research::backtest::{BacktestPlan, BacktestRequest, JournalChoice};
use tradedsl::runtime::research::sweep::{SweepPlan, SweepRequest};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The reference SMA crossover with the given `params:` block.
fn strategy(dir: &Path, params: &str) -> PathBuf {
    let p = dir.join("sma.yaml");
    std::fs::write(
        &p,
        format!(
            "kind: strategy\nname: sma_crossover\nuniverse: [GOOG]\ntimeframe: 1d\nparams:\n{params}\n\
             entry: crosses_above(sma(close, fast), sma(close, slow))\n\
             exit: crosses_below(sma(close, fast), sma(close, slow))\nsizing: all_cash\n"
        ),
    )
    .unwrap();
    p
}

fn backtest_request(manifest: PathBuf) -> BacktestRequest {
    BacktestRequest {
        manifest,
        data: DataRequest { data: vec![DataArg::Symbol("GOOG".into(), data("GOOG.csv"))], ..Default::default() },
        cash: None,
        commission: None,
        slippage: None,
        fill: None,
        journal: JournalChoice::Off,
    }
}

fn sweep_request(manifest: PathBuf) -> SweepRequest {
    SweepRequest {
        backtest: backtest_request(manifest),
        sweep: None,
        method: None,
        trials: None,
        seed: None,
        objective: None,
        direction: None,
        constraints: Vec::new(),
        heatmap: None,
        shard: None,
    }
}

/// A sweep of one point is `dsl backtest` of those params, trade for trade.
#[test]
fn a_sweep_of_one_point_equals_the_backtest_of_its_params() {
    let dir = tempfile::tempdir().unwrap();
    let swept = strategy(dir.path(), "  fast: {value: 7, choices: [7]}\n  slow: {value: 30, choices: [30, 21]}");
    let (plan, market) =
        SweepPlan::load(SweepRequest { constraints: vec!["slow < 25".into()], ..sweep_request(swept) }, |b| b.market())
            .unwrap();
    let trials = plan.my_trials();
    assert_eq!(trials.len(), 1, "7 and 21: the one point the constraint leaves");
    let out = plan.run_trial(&market, trials[0]).unwrap();

    let fixed = dir.path().join("fixed");
    std::fs::create_dir_all(&fixed).unwrap();
    let plain = strategy(&fixed, "  fast: 7\n  slow: 21");
    let bt = BacktestPlan::load(backtest_request(plain)).unwrap();
    let expected = bt.run(&bt.market().unwrap()).unwrap().output;
    assert!(!expected.trades.is_empty());
    assert_eq!(out.trades.len(), expected.trades.len());
    for (a, b) in out.trades.iter().zip(&expected.trades) {
        assert_eq!(
            (a.entry_time, a.exit_time, a.entry_price, a.exit_price, a.quantity, a.pnl),
            (b.entry_time, b.exit_time, b.entry_price, b.exit_price, b.quantity, b.pnl)
        );
    }
    assert_eq!(out.metrics.final_equity, expected.metrics.final_equity);
    assert_eq!(out.metrics.sharpe, expected.metrics.sharpe);

    // Through the binaries: the trial's metrics are the backtest's report's.
    let json = dir.path().join("one.json");
    dsl()
        .args(["sweep", "--no-journal", "--quiet", "--constraint", "slow < 25", "--json"])
        .arg(&json)
        .arg(dir.path().join("sma.yaml"))
        .arg("--data")
        .arg(format!("GOOG={}", data("GOOG.csv").display()))
        .assert()
        .success();
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let trial = &result["trials"][0];
    assert_eq!(trial["params"], serde_json::json!({"fast": 7, "slow": 21}));
    assert_eq!(trial["metrics"]["metric.sharpe"].as_f64(), expected.metrics.sharpe);
    assert_eq!(trial["metrics"]["metric.trades"].as_f64(), Some(expected.trades.len() as f64));
    assert_eq!(trial["objective"].as_f64(), expected.metrics.sharpe, "the default objective is the Sharpe ratio");
}

/// `dsl sweep` of the shipped SMA crossover's spaces (fast < slow) on GOOG to 2008.
fn sweep_std(extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("dsl"));
    c.args(["sweep", "strategies/sma_crossover.yaml", "--quiet", "--constraint", "fast < slow", "--data"])
        .arg(format!("GOOG={}", data("GOOG.csv").display()))
        .args(["--to", "2008-12-31"])
        .args(extra)
        .current_dir(ROOT)
        .env("NO_COLOR", "1");
    c
}

fn sweep_cmd(_dir: &Path, extra: &[&str]) -> assert_cmd::Command {
    assert_cmd::Command::from_std(sweep_std(extra))
}

/// Three shards as three processes, merged: byte for byte the single process's JSON and CSV.
#[test]
fn shards_run_as_separate_processes_merge_into_the_single_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (whole_json, whole_csv, html) = (d.join("whole.json"), d.join("whole.csv"), d.join("whole.html"));
    sweep_cmd(d, &["--no-journal", "--json", path(&whole_json), "--csv", path(&whole_csv), "--html", path(&html)])
        .assert()
        .success();
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 2, "a heat map and a histogram");
    assert!(page.contains("metric.sharpe by fast and slow") && page.contains("Probability of backtest overfitting"));
    let parts: Vec<PathBuf> = (1..=3).map(|k| d.join(format!("part{k}.json"))).collect();
    let children: Vec<std::process::Child> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut c = sweep_std(&["--no-journal", "--jobs", "1"]);
            c.args(["--shard", &format!("{}/3", i + 1), "--json", path(p)]).spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let part: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&parts[1]).unwrap()).unwrap();
    assert_eq!(part["shard"], "2/3");
    assert!(part["trials"].as_array().unwrap().iter().all(|t| t["trial"].as_u64().unwrap() % 3 == 1));
    let journal = d.join("merged.sqlite");
    let (json, csv) = (d.join("merged.json"), d.join("merged.csv"));
    dsl()
        .args(["sweep", "merge", "--quiet"])
        .args(parts.iter().rev().map(|p| path(p)))
        .args(["--json", path(&json), "--csv", path(&csv), "--journal", path(&journal)])
        .assert()
        .success();
    assert!(std::fs::read(&json).unwrap() == std::fs::read(&whole_json).unwrap(), "merged JSON differs");
    assert!(std::fs::read(&csv).unwrap() == std::fs::read(&whole_csv).unwrap(), "merged CSV differs");
    let c = rusqlite::Connection::open(&journal).unwrap();
    let total = part["sweep"]["trials_total"].as_i64().unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM sweep_trials"), total);
    assert_eq!(rows(&c, "SELECT kind, status FROM runs"), vec![vec!["sweep".to_string(), "completed".into()]]);

    // Two parts only: the merge names what is missing; a part of another sweep is refused.
    let out = dsl().args(["sweep", "merge", path(&parts[0]), path(&parts[1])]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("are in no part"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = d.join("other.json");
    sweep_cmd(d, &["--no-journal", "--shard", "3/3", "--objective", "metric.total_return", "--json", path(&other)])
        .assert()
        .success();
    let out = dsl().args(["sweep", "merge", path(&parts[0]), path(&parts[1]), path(&other)]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("another sweep"), "{}", String::from_utf8_lossy(&out.stderr));
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A sweep stopped part way (its `--json` holds some trials) carries on with `--resume` to the
/// result an uninterrupted sweep gives, and journals the sweep once, with every trial.
#[test]
fn resume_carries_on_from_the_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let whole = d.join("whole.json");
    sweep_cmd(d, &["--no-journal", "--json", path(&whole)]).assert().success();
    let mut partial: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&whole).unwrap()).unwrap();
    let total = partial["trials"].as_array().unwrap().len();
    partial["trials"].as_array_mut().unwrap().retain(|t| t["trial"].as_u64().unwrap() % 4 == 0);
    let resumed = d.join("resumed.json");
    std::fs::write(&resumed, serde_json::to_string_pretty(&partial).unwrap()).unwrap();
    let journal = d.join("j.sqlite");
    sweep_cmd(d, &["--resume", "--json", path(&resumed), "--journal", path(&journal)]).assert().success();
    assert!(std::fs::read(&resumed).unwrap() == std::fs::read(&whole).unwrap(), "resumed result differs");
    let c = rusqlite::Connection::open(&journal).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM sweep_trials"), total as i64);
    // Another sweep's file is not resumed.
    let out =
        sweep_cmd(d, &["--resume", "--no-journal", "--seed", "1", "--method", "random", "--json", path(&resumed)])
            .output()
            .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another sweep"));
}

/// Random search: the same seed tries the same points; the constraints hold for each.
#[test]
fn random_search_is_seeded_and_respects_the_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |seed: &str, out: &Path| {
        sweep_cmd(d, &["--no-journal", "--method", "random", "--trials", "12", "--seed", seed, "--json", path(out)])
            .assert()
            .success();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        v["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["params"]["fast"].as_i64().unwrap(), t["params"]["slow"].as_i64().unwrap()))
            .collect::<Vec<_>>()
    };
    let a = run("7", &d.join("a.json"));
    assert_eq!(a, run("7", &d.join("b.json")));
    assert_ne!(a, run("8", &d.join("c.json")));
    assert_eq!(a.len(), 12);
    assert!(a.iter().all(|(f, s)| f < s && f % 5 == 0 && s % 5 == 0));
}

/// Search spaces and sweep documents are checked like every document: located errors.
#[test]
fn bad_spaces_and_sweep_documents_get_located_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = strategy(
        d,
        "  fast: {value: 3, range: [5, 30], step: 5}\n  slow: {value: 30, range: [0, 100], log: true, steps: 3}",
    );
    let out = dsl().args(["validate"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("sma.yaml:6:17: the default of param `fast` is outside its search space"), "{err}");
    assert!(err.contains("sma.yaml:7:28: a log-scale range must be above zero"), "{err}");

    let sweep = d.join("sweep.yaml");
    std::fs::write(&sweep, "kind: sweep\nname: s\nmethod: gird\nobjective: metric.sharp\nconstraints: [fast <]\n")
        .unwrap();
    let out = dsl().args(["validate"]).arg(&sweep).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sweep.yaml:3:9"), "{err}");
    assert!(err.contains("grid"), "did you mean: {err}");
    std::fs::write(&sweep, "kind: sweep\nname: s\nobjective: metric.sharp\nconstraints: [fast <]\n").unwrap();
    let out = dsl().args(["validate"]).arg(&sweep).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sweep.yaml:3:12") && err.contains("metric.sharpe"), "{err}");
    assert!(err.contains("sweep.yaml:4:"), "{err}");

    // A constraint naming no swept param, a continuous range on a grid.
    let out = sweep_cmd(d, &["--no-journal", "--constraint", "fats < slow"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fats") && err.contains("fast"), "{err}");
    let cont = strategy(d, "  fast: {value: 10, range: [5, 30]}\n  slow: 30");
    let out = dsl()
        .arg("sweep")
        .arg(&cont)
        .args(["--no-journal", "--data"])
        .arg(format!("GOOG={}", data("GOOG.csv").display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("continuous range") && err.contains("--method random"), "{err}");
}

/// Phase 2's `search_not_overfit` gate: holds with no search; after `dsl sweep` it reads the
/// latest sweep's trial count, PBO and deflated Sharpe ratio from the journal.
#[test]
fn the_phase_2_gate_reads_the_latest_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let phases: Vec<String> = ["1_paper_mastery", "2_backtest_and_stress", "3_small_live", "4_full_live"]
        .iter()
        .map(|p| format!("{ROOT}/phases/{p}.yaml"))
        .collect();
    std::fs::write(
        d.join("bot.yaml"),
        format!(
            "kind: bot\nname: sweeper\nstrategies: [{ROOT}/strategies/sma_crossover.yaml]\nphases: [{}]\n\
             phase: backtest_and_stress\ndata: {{csv: {{GOOG: {}}}}}\nstarting_cash: 100000\ndatabase: j.sqlite\n",
            phases.join(", "),
            data("GOOG.csv").display()
        ),
    )
    .unwrap();
    let gate_named = |d: &Path, id: &str| -> serde_json::Value {
        let out = dsl().current_dir(d).args(["gate", "status", "bot.yaml", "--format", "json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        r["gates"].as_array().unwrap().iter().find(|g| g["id"] == id).unwrap().clone()
    };
    let gate = |d: &Path| gate_named(d, "search_not_overfit");
    dsl().current_dir(d).args(["backtest", "bot.yaml", "--quiet"]).assert().success();
    let g = gate(d);
    assert_eq!(g["values"]["metric.trials"].as_f64(), Some(0.0), "{g}");
    assert_eq!(g["holds"], true, "no search: nothing to deflate");

    let json = d.join("sweep.json");
    dsl()
        .current_dir(d)
        .args(["sweep", "bot.yaml", "--quiet", "--constraint", "fast < slow", "--json"])
        .arg(&json)
        .assert()
        .success();
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let summary = &result["summary"];
    let g = gate(d);
    assert_eq!(g["values"]["metric.trials"].as_f64(), summary["trials"].as_f64(), "{g}");
    assert_eq!(g["values"]["metric.pbo"].as_f64(), summary["pbo"].as_f64(), "{g}");
    assert_eq!(g["values"]["metric.deflated_sharpe"].as_f64(), summary["deflated_sharpe"].as_f64(), "{g}");
    let holds = summary["pbo"].as_f64().unwrap() < 0.5 && summary["deflated_sharpe"].as_f64().unwrap() > 0.95;
    assert_eq!(g["holds"], holds, "{g}");
    let c = rusqlite::Connection::open(d.join("j.sqlite")).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM runs WHERE kind = 'sweep'"), 1);

    // A searched bot needs a walk-forward that kept half of its in-sample return.
    assert_eq!(gate_named(d, "search_holds_out_of_sample")["holds"], false, "no walk-forward yet");
    let walk = d.join("walk.json");
    dsl()
        .current_dir(d)
        .args(["walkforward", "bot.yaml", "--quiet", "--constraint", "fast < slow", "--in-sample", "2y"])
        .args(["--out-of-sample", "1y", "--json"])
        .arg(&walk)
        .assert()
        .success();
    let wfe = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&walk).unwrap()).unwrap()["metrics"]
        ["metric.wfe"]
        .as_f64();
    let g = gate_named(d, "search_holds_out_of_sample");
    assert_eq!(g["values"]["metric.wfe"].as_f64(), wfe, "{g}");
    assert_eq!(g["holds"], wfe.is_some_and(|w| w >= 0.5), "{g}");
}

/// `examples/k8s/sweep-job.yaml`: an Indexed Job with one shard per completion; the command its
/// pods run, with each `JOB_COMPLETION_INDEX`, writes parts that merge into the single-process
/// result. (`kubectl create --dry-run=client -f` needs a reachable API server; where one is,
/// it is run too.)
#[test]
fn the_kubernetes_job_runs_one_shard_per_pod() {
    let text = std::fs::read_to_string(format!("{ROOT}/examples/k8s/sweep-job.yaml")).unwrap();
    let job: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!((job["apiVersion"].as_str(), job["kind"].as_str()), (Some("batch/v1"), Some("Job")));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    let container = &spec["template"]["spec"]["containers"][0];
    let shards = container["env"].as_array().unwrap().iter().find(|e| e["name"] == "SHARDS").unwrap();
    assert_eq!(shards["value"].as_str().unwrap().parse::<u64>().unwrap(), n, "SHARDS equals completions");
    let script = container["args"][0].as_str().unwrap();
    assert!(script.contains("JOB_COMPLETION_INDEX") && script.contains("--shard"));

    // Each pod's command, run here with its index, the shared volume a temporary directory.
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let script = script.replace("/results", results.to_str().unwrap());
    let bin = assert_cmd::cargo::cargo_bin("dsl");
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    for index in 0..n {
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("SHARDS", n.to_string())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .current_dir(ROOT)
            .output()
            .unwrap();
        assert!(out.status.success(), "pod {index}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let parts: Vec<String> =
        (0..n).map(|i| results.join(format!("part-{i}.json")).to_str().unwrap().to_string()).collect();
    let merged = results.join("sweep.json");
    dsl().args(["sweep", "merge", "--quiet", "--json", path_of(&merged)]).args(&parts).assert().success();
    let whole = dir.path().join("whole.json");
    dsl()
        .args(["sweep", "examples/reference.yaml", "--constraint", "fast < slow", "--quiet", "--no-journal", "--json"])
        .arg(&whole)
        .assert()
        .success();
    assert!(std::fs::read(&merged).unwrap() == std::fs::read(&whole).unwrap(), "merged pods differ from one process");

    let dry = std::process::Command::new("kubectl")
        .args(["create", "--dry-run=client", "-o", "name", "-f"])
        .arg(format!("{ROOT}/examples/k8s/sweep-job.yaml"))
        .output();
    if let Ok(o) = dry
        && !String::from_utf8_lossy(&o.stderr).contains("connection refused")
        && !String::from_utf8_lossy(&o.stderr).contains("unable to recognize")
    {
        assert!(o.status.success(), "kubectl: {}", String::from_utf8_lossy(&o.stderr));
    }
}

fn path_of(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// TPE: the same seed gives the same trials on 1 or 2 worker threads; every trial satisfies the
/// constraints and is distinct; it finds a point in the grid's top quarter; it cannot shard.
#[test]
fn tpe_is_seeded_independent_of_the_cores_and_searches_well() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |jobs: &str, out: &Path| {
        sweep_cmd(
            d,
            &["--no-journal", "--method", "tpe", "--trials", "24", "--seed", "3", "--jobs", jobs, "--json", path(out)],
        )
        .assert()
        .success();
        std::fs::read(out).unwrap()
    };
    let (a, b) = (run("1", &d.join("a.json")), run("2", &d.join("b.json")));
    assert!(a == b, "TPE trials differ between 1 and 2 worker threads");
    let tpe: serde_json::Value = serde_json::from_slice(&a).unwrap();
    let trials = tpe["trials"].as_array().unwrap();
    assert!(trials.len() >= 12, "{}", trials.len());
    let points: std::collections::HashSet<String> = trials.iter().map(|t| t["params"].to_string()).collect();
    assert_eq!(points.len(), trials.len());
    assert!(trials.iter().all(|t| t["params"]["fast"].as_i64() < t["params"]["slow"].as_i64()));
    let best = |v: &serde_json::Value| {
        v["trials"].as_array().unwrap().iter().filter_map(|t| t["objective"].as_f64()).fold(f64::MIN, f64::max)
    };
    let grid = d.join("grid.json");
    sweep_cmd(d, &["--no-journal", "--json", path(&grid)]).assert().success();
    let grid: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&grid).unwrap()).unwrap();
    let mut all: Vec<f64> = grid["trials"].as_array().unwrap().iter().filter_map(|t| t["objective"].as_f64()).collect();
    all.sort_by(|x, y| y.total_cmp(x));
    assert!(
        best(&tpe) >= all[all.len() / 4],
        "TPE's best {} is below the grid's top quarter {}",
        best(&tpe),
        all[all.len() / 4]
    );
    let out = sweep_cmd(d, &["--no-journal", "--method", "tpe", "--shard", "1/2"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cannot be split into shards"));
}

/// A stop (what Ctrl-C sets) between trials: the trials finished are kept, no new one starts,
/// and carrying on from them gives the uninterrupted result.
#[test]
fn a_stop_keeps_the_finished_trials_and_the_rest_carries_on() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let request = || SweepRequest {
        constraints: vec!["fast < slow".into()],
        ..sweep_request(PathBuf::from(ROOT).join("strategies/sma_crossover.yaml"))
    };
    let (plan, market) = SweepPlan::load(request(), |b| b.market()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let never = AtomicBool::new(false);
    let whole = pool.install(|| plan.run(&market, Vec::new(), &never, &|| {})).unwrap();
    assert!(whole.complete() && whole.summary.is_some());

    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let after_ten = || {
        if done.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let part = pool.install(|| plan.run(&market, Vec::new(), &stop, &after_ten)).unwrap();
    assert_eq!(part.trials.len(), 10, "one worker: exactly the ten finished before the stop");
    assert!(!part.complete() && part.summary.is_none(), "a stopped sweep has no overfitting figures");
    assert_eq!(part.trials[..], whole.trials[..10]);
    let rest = pool.install(|| plan.run(&market, part.trials.clone(), &never, &|| {})).unwrap();
    assert_eq!(rest, whole);
}
