//! One machine interface: every command that prints results prints one JSON document on
//! standard output with `--format json` (or `--json -` for the research commands), with the
//! shape its help and the README document; nothing else goes to standard output then.

use std::path::Path;
use std::process::Command;

use crate::common::{data, dsl};

/// Runs `args` in the repository: success, and standard output parsed as one JSON document.
fn json(args: &[&str]) -> serde_json::Value {
    let out = dsl().args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}):\n{stdout}"))
}

fn keys(v: &serde_json::Value, expected: &[&str]) {
    for k in expected {
        assert!(v.get(k).is_some(), "`{k}` missing from {v}");
    }
}

#[test]
fn commands_print_one_documented_json_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("j.sqlite");
    let db = db.to_str().unwrap();

    let bt = json(&["backtest", "examples/bot.yaml", "--no-journal", "--format", "json"]);
    keys(&bt, &["bot", "metrics", "trades"]);
    assert!(bt["metrics"]["total_return"].is_number(), "{bt}");
    let variants =
        json(&["backtest", "examples/regime_on.yaml", "examples/regime_off.yaml", "--no-journal", "--format", "json"]);
    assert!(variants.to_string().contains("regime"), "{variants}");

    let st = json(&[
        "stress",
        "examples/bot.yaml",
        "--scenarios",
        "examples/stress.yaml",
        "--no-journal",
        "--format",
        "json",
    ]);
    keys(&st, &["bot", "stress", "max_drawdown", "breached", "scenarios"]);
    let scenarios = st["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["name"], "baseline");
    for s in scenarios {
        keys(s, &["name", "shock", "passed", "metrics", "denied", "blocked", "warned", "state_changes", "final_state"]);
    }

    let run = json(&["run", "examples/bot.yaml", "--journal", db, "--format", "json"]);
    keys(&run, &["run", "bot", "resumed_from", "last_bar", "timestamps", "equity", "orders", "completed"]);
    assert_eq!(run["completed"], true);
    assert!(run["orders"]["filled"].as_u64().unwrap() > 0, "{run}");

    for (verb, state) in [("halt", "HALTED"), ("resume", "ACTIVE")] {
        let v = json(&[verb, "examples/bot.yaml", "--journal", db, "--reason", "json test", "--format", "json"]);
        keys(&v, &["request", "action", "reason", "applied", "state"]);
        assert_eq!(
            (v["action"].as_str(), v["applied"].as_str(), v["state"].as_str()),
            (Some(verb), Some("now"), Some(state))
        );
    }

    let store = d.join("bars.sqlite");
    let csv = data("GOOG.csv");
    let im = json(&["import", csv.to_str().unwrap(), "--db", store.to_str().unwrap(), "--format", "json"]);
    keys(&im, &["db", "written", "replaced", "files"]);
    let file = &im["files"][0];
    keys(file, &["path", "layout", "series", "skipped", "bad_rows", "missing_volume", "reversed", "sorted", "notes"]);
    assert_eq!(file["series"][0]["bars"], im["written"]);

    let sweep = json(&[
        "sweep",
        "strategies/sma_crossover.yaml",
        "--constraint",
        "fast < slow",
        "--data",
        &format!("GOOG={}", csv.display()),
        "--to",
        "2008-12-31",
        "--method",
        "random",
        "--trials",
        "4",
        "--no-journal",
        "--json",
        "-",
    ]);
    assert!(sweep.to_string().contains("trials"), "{sweep}");
}

/// Long commands show a progress bar on a terminal (here a pseudo-terminal from util-linux's
/// `script`) and nothing when standard error is a pipe.
#[test]
fn progress_bars_show_on_a_terminal_and_stay_quiet_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let dsl = assert_cmd::cargo::cargo_bin("dsl");
    let db = dir.path().join("bars.sqlite");
    let import = format!(
        "{} import {root}/examples/data/AAPL.csv {root}/examples/data/MSFT.csv --db {}",
        dsl.display(),
        db.display()
    );
    let stress = format!(
        "{} stress {root}/examples/bot.yaml --scenarios {root}/examples/stress.yaml --no-journal",
        dsl.display()
    );
    let backtest = format!("{} backtest {root}/examples/bot.yaml --no-journal", dsl.display());
    for (cmd, bar) in [(&import, "2/2 files"), (&stress, "replays"), (&backtest, "symbols")] {
        // Piped: no bar.
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let out = Command::new(words[0]).args(&words[1..]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains(bar) && !stderr.contains('\u{2588}'), "{cmd}: a bar in a pipe: {stderr}");
        if Path::new("/usr/bin/script").is_file() {
            let _ = std::fs::remove_file(&db);
            let out = Command::new("/usr/bin/script").args(["-qec", cmd, "/dev/null"]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(bar), "{cmd}: no progress bar on a terminal: {text}");
        } else {
            eprintln!("skipped the terminal half: util-linux's `script` is not installed");
        }
    }
}

/// Runtime refusals carry codes of their own (E6xxx), not the YAML-schema ones, and exit as
/// documented: a refusal 1, a usage problem 2.
#[test]
fn runtime_refusals_have_their_own_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = dsl().args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let journal = dir.path().join("j.sqlite");
    let journal = journal.to_str().unwrap();
    let (code, err) = run(&["run", "strategies/sma_crossover.yaml", "--journal", journal]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("E6001") && err.contains("runs a bot manifest"), "{err}");
    let (code, err) = run(&["backtest", "examples/bot.yaml", "--quiet", "--journal", journal]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&["report", "divergence", "examples/bot.yaml", "--journal", journal]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("E6004") && err.contains("no paper run"), "{err}");
    let (code, err) = run(&["run", "examples/bot.yaml", "--journal", journal, "--metrics", "10.1.2.3:9464"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("E6001") && err.contains("not a loopback address"), "{err}");
}
