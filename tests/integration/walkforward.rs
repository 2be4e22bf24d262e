//! `dsl walkforward`: one window is a sweep of its in-sample span plus a backtest of the winner
//! on the out-of-sample dates; the in-sample choice is not the full-sample one and no
//! out-of-sample bar changes it; the walk is journaled with its out-of-sample trades.

use std::path::Path;

use crate::common::{data, dsl, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `dsl sweep` (or `walkforward`) of the shipped SMA crossover from 2009 on `csv`.
fn search(cmd: &str, csv: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut c = dsl();
    c.args([cmd, "strategies/sma_crossover.yaml", "--quiet", "--constraint", "fast < slow", "--from", "2009-01-01"])
        .arg("--data")
        .arg(format!("GOOG={}", csv.display()))
        .args(extra)
        .current_dir(ROOT);
    c
}

fn trades(db: &Path) -> Vec<Vec<String>> {
    let c = rusqlite::Connection::open(db).unwrap();
    rows(&c, "SELECT entry_ts, exit_ts, entry_price, exit_price, quantity, pnl FROM trades ORDER BY trade_no")
}

#[test]
fn one_window_is_a_sweep_in_sample_and_a_backtest_out_of_sample() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let goog = data("GOOG.csv");
    let (wf, wf_db) = (d.join("wf.json"), d.join("wf.sqlite"));
    let window = ["--in-sample", "30mo", "--out-of-sample", "5y"];
    search("walkforward", &goog, &window)
        .args(["--json", wf.to_str().unwrap(), "--journal", wf_db.to_str().unwrap()])
        .assert()
        .success();
    let walk = json(&wf);
    let windows = walk["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{walk}");
    let chosen = windows[0]["params"].clone();
    assert_eq!(walk["windows"][0]["window"]["in_end"].as_i64(), Some(1_309_564_800), "2011-07-02T00:00:00Z");

    // The sweep of the in-sample bars (to 2011-07-01 inclusive) ranks the chosen params first...
    let is = d.join("is.json");
    search("sweep", &goog, &["--to", "2011-07-01", "--no-journal", "--json", is.to_str().unwrap()]).assert().success();
    let is = json(&is);
    let best = is["trials"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| a["objective"].as_f64().unwrap().total_cmp(&b["objective"].as_f64().unwrap()));
    assert_eq!(best.unwrap()["params"], chosen);
    // ... which the whole sample does not: walk-forward picks the in-sample winner.
    let full = d.join("full.json");
    search("sweep", &goog, &["--no-journal", "--top", "1", "--json", full.to_str().unwrap()]).assert().success();
    let full = json(&full);
    let full_best = full["trials"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| a["objective"].as_f64().unwrap().total_cmp(&b["objective"].as_f64().unwrap()));
    assert_ne!(full_best.unwrap()["params"], chosen, "the test needs a split where the two differ");

    // The backtest of the chosen params trading from the first out-of-sample bar.
    let fixed = d.join("fixed.yaml");
    std::fs::write(
        &fixed,
        format!(
            "kind: strategy\nname: sma_crossover\nuniverse: [GOOG]\ntimeframe: 1d\nparams: {{fast: {}, slow: {}}}\n\
             entry: crosses_above(sma(close, fast), sma(close, slow))\nexit: crosses_below(sma(close, fast), sma(close, slow))\n\
             sizing: all_cash\n",
            chosen["fast"], chosen["slow"]
        ),
    )
    .unwrap();
    let (bt_json, bt_db) = (d.join("bt.json"), d.join("bt.sqlite"));
    dsl()
        .arg("backtest")
        .arg(&fixed)
        .arg("--data")
        .arg(format!("GOOG={}", goog.display()))
        .args([
            "--from",
            "2011-07-02",
            "--quiet",
            "--json",
            bt_json.to_str().unwrap(),
            "--journal",
            bt_db.to_str().unwrap(),
        ])
        .assert()
        .success();
    let bt_trades = trades(&bt_db);
    assert!(!bt_trades.is_empty());
    assert_eq!(trades(&wf_db), bt_trades, "out-of-sample trades differ from the backtest's");
    let bt = json(&bt_json);
    let oos_return = walk["windows"][0]["out_of_sample"]["metric.total_return"].as_f64().unwrap();
    assert!(
        (oos_return - bt["metrics"]["total_return"].as_f64().unwrap()).abs() < 1e-12,
        "{oos_return} vs {}",
        bt["metrics"]
    );
    let c = rusqlite::Connection::open(&wf_db).unwrap();
    assert_eq!(rows(&c, "SELECT kind, status FROM runs"), vec![vec!["walkforward".to_string(), "completed".into()]]);
    // The report lists the same out-of-sample trades.
    let reported: Vec<i64> =
        walk["trades"].as_array().unwrap().iter().map(|t| t["exit_time"].as_i64().unwrap()).collect();
    let journaled: Vec<i64> = bt_trades.iter().map(|t| t[1].parse().unwrap()).collect();
    assert_eq!(reported, journaled);
}

/// Changing every out-of-sample bar changes the out-of-sample result, never the choice.
#[test]
fn no_out_of_sample_bar_changes_an_in_sample_choice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(data("GOOG.csv")).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for (i, l) in lines.enumerate() {
        let cols: Vec<&str> = l.split(',').collect();
        if cols[0] >= "2011-07-02" {
            // A different path after the in-sample end: prices bent by a slow wave.
            let k = 1.0 + 0.2 * ((i as f64) / 17.0).sin();
            let p = |s: &str| format!("{:.4}", s.parse::<f64>().unwrap() * k);
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                cols[0],
                p(cols[1]),
                p(cols[2]),
                p(cols[3]),
                p(cols[4]),
                cols[5]
            ));
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    let bent = d.join("GOOG.csv");
    std::fs::write(&bent, out).unwrap();
    let run = |csv: &Path, name: &str| {
        let p = d.join(name);
        search("walkforward", csv, &["--in-sample", "30mo", "--out-of-sample", "6mo", "--no-journal"])
            .args(["--json", p.to_str().unwrap()])
            .assert()
            .success();
        json(&p)
    };
    let (a, b) = (run(&data("GOOG.csv"), "a.json"), run(&bent, "b.json"));
    let first = |r: &serde_json::Value| r["windows"][0].clone();
    assert_eq!(first(&a)["params"], first(&b)["params"]);
    assert_eq!(first(&a)["in_sample_objective"], first(&b)["in_sample_objective"]);
    assert_ne!(
        first(&a)["out_of_sample"]["metric.total_return"],
        first(&b)["out_of_sample"]["metric.total_return"],
        "the out-of-sample bars did change"
    );
    assert!(a["windows"].as_array().unwrap().len() > 1);
    assert!(a["metrics"]["metric.wfe"].is_number() || a["metrics"]["metric.wfe"].is_null());
}

/// A gate `from: walkforward` reads the latest walk's out-of-sample trades, and `metric.wfe`
/// its efficiency.
#[test]
fn gates_read_the_out_of_sample_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("research.yaml"),
        "kind: phase\nname: research\nmode: backtest\ngates:\n  - id: oos\n    from: walkforward\n    \
         when: metric.trades >= 10 and metric.wfe > 0.1\n    message: out-of-sample trades and efficiency\n",
    )
    .unwrap();
    std::fs::write(
        d.join("bot.yaml"),
        format!(
            "kind: bot\nname: walker\nstrategies: [{ROOT}/strategies/sma_crossover.yaml]\nphases: [research.yaml]\n\
             phase: research\ndata: {{csv: {{GOOG: {}}}}}\nstarting_cash: 100000\ndatabase: j.sqlite\n",
            data("GOOG.csv").display()
        ),
    )
    .unwrap();
    let wf = d.join("wf.json");
    dsl()
        .current_dir(d)
        .args(["walkforward", "bot.yaml", "--quiet", "--constraint", "fast < slow", "--in-sample", "2y"])
        .args(["--out-of-sample", "1y", "--json", wf.to_str().unwrap()])
        .assert()
        .success();
    let walk = json(&wf);
    let out = dsl().current_dir(d).args(["gate", "status", "bot.yaml", "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &r["gates"][0];
    assert_eq!(g["values"]["metric.trades"].as_f64(), walk["metrics"]["metric.trades"].as_f64(), "{g}");
    assert_eq!(g["values"]["metric.wfe"].as_f64(), walk["metrics"]["metric.wfe"].as_f64(), "{g}");
    let holds = walk["metrics"]["metric.trades"].as_f64().unwrap() >= 10.0
        && walk["metrics"]["metric.wfe"].as_f64().is_some_and(|w| w > 0.1);
    assert_eq!(g["holds"], holds, "{g}");
}
