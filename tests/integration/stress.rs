//! `dsl stress` on real data: the shipped example bot through seed 001's scenarios (every
//! drawdown under 20%, each run journaled), and an all-in GOOG bot that a 50% crash takes past
//! the circuit breakers and the threshold.

use rusqlite::Connection;

use crate::common::{data, dsl};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_example_bot_survives_seed_001_scenarios_and_each_run_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    let out = dsl()
        .args(["stress", "examples/bot.yaml", "--scenarios", "examples/stress.yaml", "--journal"])
        .arg(&db)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for name in ["baseline", "nvda_crash_50", "gap_down_15", "volatility_x3", "missing_bars", "broker_outage"] {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(&format!("{name} "))).unwrap();
        assert!(line.contains(" pass "), "{line}");
    }
    // Orders in the outage's window are refused: entries, and the sells of remainders whose stop
    // was reached (tried again at each bar until the broker takes them).
    let blocked: i64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("blocked ").and_then(|r| r.strip_suffix(" x (broker_outage)")))
        .expect("the outage blocked orders")
        .parse()
        .unwrap();
    assert!(blocked >= 1, "{stdout}");
    let c = Connection::open(&db).unwrap();
    let mut st = c
        .prepare("SELECT json_extract(metrics, '$.scenario'), json_extract(metrics, '$.passed'), json_extract(metrics, '$.max_drawdown') FROM runs WHERE kind = 'stress' ORDER BY run_id")
        .unwrap();
    let runs: Vec<(String, i64, f64)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|(_, passed, dd)| *passed == 1 && *dd < 0.2), "{runs:?}");
    // The outage refused an order in its window, journaled with its reason.
    let refused: i64 = c
        .query_row("SELECT COUNT(*) FROM orders WHERE status_reason LIKE 'broker_outage:%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(refused, blocked);
}

#[test]
fn a_50_percent_crash_trips_the_breakers_and_fails_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let crossover = std::fs::read_to_string(format!("{ROOT}/strategies/sma_crossover.yaml")).unwrap();
    std::fs::write(
        dir.path().join("s40.yaml"),
        crossover.replace("sizing: all_cash", "sizing: {percent_of_equity: 40%}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bot.yaml"),
        format!(
            "kind: bot\nname: all_in\nstrategies: [s40.yaml]\n\
             policies: [{ROOT}/policies/circuit_breakers.yaml]\ndata:\n  csv:\n    GOOG: {}\n\
             starting_cash: 100000\ndatabase: j.sqlite\n",
            data("GOOG.csv").display()
        ),
    )
    .unwrap();
    // 2005-06-01: the crossover is long GOOG (bought 2005-04-08 in the reference trades).
    std::fs::write(
        dir.path().join("s.yaml"),
        "kind: stress\nname: crash\nmax_drawdown: 20%\nscenarios:\n  - name: goog_crash\n    crash: 50%\n    at: 2005-06-01\n",
    )
    .unwrap();
    let out = dsl().current_dir(dir.path()).args(["stress", "bot.yaml", "--scenarios", "s.yaml"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let base = stdout.lines().find(|l| l.trim_start().starts_with("baseline ")).unwrap();
    assert!(base.contains(" pass "), "{base}");
    let line = stdout.lines().find(|l| l.trim_start().starts_with("goog_crash ")).unwrap();
    assert!(line.contains(" FAIL ") && line.ends_with("HALTED"), "{line}");
    assert!(stdout.contains("2005-06-01T00:00:00Z ACTIVE -> HALTED by circuit_breakers/drawdown_breaker"), "{stdout}");
    let c = Connection::open(dir.path().join("j.sqlite")).unwrap();
    let failed: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE kind = 'stress' AND json_extract(metrics, '$.passed') = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 1);
}

#[test]
fn a_scenario_on_an_unknown_symbol_points_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        "kind: stress\nname: x\nmax_drawdown: 20%\nscenarios:\n  - name: a\n    crash: 50%\n    symbols: [TSLA]\n",
    )
    .unwrap();
    let out =
        dsl().args(["stress", "examples/bot.yaml", "--scenarios"]).arg(&path).arg("--no-journal").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s.yaml:7:15") && err.contains("the bot has no data for `TSLA`"), "{err}");
}
