//! The reference strategy of `shared/reference/README.md` on GOOG, both commission variants:
//! the trade list and the headline metrics must equal what five independent tools produce.

use std::path::Path;

use serde_json::Value;

use crate::common::{data, dsl, read_csv, rel};

fn run(commission: &str, dir: &Path) -> Value {
    let json = dir.join("report.json");
    dsl()
        .args(["backtest", "strategies/sma_crossover.yaml", "--data"])
        .arg(data("GOOG.csv"))
        .args(["--commission", commission, "--no-journal", "--quiet", "--json"])
        .arg(&json)
        .assert()
        .success();
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn check(commission: &str, trades_file: &str, final_equity: f64, total_return: f64, max_dd: f64, win_rate: f64) {
    let dir = tempfile::tempdir().unwrap();
    let report = run(commission, dir.path());
    let (_, want) = read_csv(&data(trades_file));
    let got = report["trades"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "trade count");
    for (g, w) in got.iter().zip(&want) {
        // entry_time,entry_price,exit_time,exit_price,size,pnl
        assert_eq!(&g["entry_time"].as_str().unwrap()[..10], w[0]);
        assert_eq!(&g["exit_time"].as_str().unwrap()[..10], w[2]);
        assert!(g["entry_time"].as_str().unwrap().ends_with("T00:00:00Z"));
        for (key, col) in [("entry_price", 1), ("exit_price", 3), ("quantity", 4), ("pnl", 5)] {
            let (a, b) = (g[key].as_f64().unwrap(), w[col].parse::<f64>().unwrap());
            assert!(rel(a, b) < 1e-9, "{key}: {a} vs {b} in {g}");
        }
        assert_eq!(g["symbol"], "GOOG");
        assert_eq!(g["exit_reason"], "exit_rule");
    }
    let m = &report["metrics"];
    for (key, want) in [
        ("final_equity", final_equity),
        ("total_return", total_return),
        ("max_drawdown", max_dd),
        ("win_rate", win_rate),
    ] {
        let got = m[key].as_f64().unwrap();
        assert!(rel(got, want) < 1e-9, "{key}: {got} vs {want}");
    }
    assert_eq!(m["trade_count"], 32);
    assert_eq!(m["open_at_end"], true);
    let open = &report["open_positions"][0];
    assert_eq!(open["entry_time"], "2012-12-04T00:00:00Z");
    assert_eq!(open["entry_price"], 695.0);
}

#[test]
fn reference_strategy_without_commission() {
    check("0", "trades_goog_c0.csv", 582788.4660837539, 4.8278846608375385, 0.29716029259902693, 0.53125);
}

#[test]
fn reference_strategy_with_commission() {
    check("0.001", "trades_goog_c0.001.csv", 546112.3708225307, 4.4611237082253075, 0.3055439692187679, 0.5);
}

#[test]
fn reruns_are_identical_and_journaled_with_deterministic_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.sqlite");
    for _ in 0..2 {
        dsl()
            .args(["backtest", "strategies/sma_crossover.yaml", "--data"])
            .arg(data("GOOG.csv"))
            .args(["--commission", "0.1%", "--quiet", "--journal"])
            .arg(&db)
            .assert()
            .success();
    }
    let c = rusqlite::Connection::open(&db).unwrap();
    let runs: Vec<(i64, String, String)> = c
        .prepare("SELECT run_id, bundle_revision, status FROM runs ORDER BY run_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].1, runs[1].1, "same bundle, same revision");
    assert_eq!(runs[0].2, "completed");
    let ids = |run: i64| -> Vec<String> {
        c.prepare("SELECT client_order_id FROM orders WHERE run_id = ?1 ORDER BY order_no")
            .unwrap()
            .query_map([run], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let (a, b) = (ids(runs[0].0), ids(runs[1].0));
    assert_eq!(a.len(), 65, "32 round trips and the open entry");
    assert_eq!(a.len(), b.len());
    assert!(a.iter().all(|id| !b.contains(id)), "another run never reuses an id (the broker keeps them unique)");
    // The same run of the same bot (run 1 of a fresh journal) gets the same ids.
    let db2 = dir.path().join("again.sqlite");
    dsl()
        .args(["backtest", "strategies/sma_crossover.yaml", "--data"])
        .arg(data("GOOG.csv"))
        .args(["--commission", "0.1%", "--quiet", "--journal"])
        .arg(&db2)
        .assert()
        .success();
    let c2 = rusqlite::Connection::open(&db2).unwrap();
    let again: Vec<String> = c2
        .prepare("SELECT client_order_id FROM orders WHERE run_id = 1 ORDER BY order_no")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(a, again, "client_order_ids are deterministic");
    assert!(a.iter().all(|id| id.len() == 27 && id.starts_with("td-")));
    let count = |sql: &str| -> i64 { c.query_row(sql, [runs[0].0], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM fills WHERE run_id = ?1"), 65);
    assert_eq!(count("SELECT count(*) FROM trades WHERE run_id = ?1"), 32);
    assert_eq!(count("SELECT count(*) FROM orders WHERE run_id = ?1 AND status = 'filled'"), 65);
    let (pnl, reason, bars): (f64, String, i64) = c
        .query_row(
            "SELECT pnl, exit_reason, holding_bars FROM v_trades WHERE run_id = ?1 AND trade_no = 1",
            [runs[0].0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let (_, want) = read_csv(&data("trades_goog_c0.001.csv"));
    assert!(rel(pnl, want[0][5].parse().unwrap()) < 1e-9);
    assert_eq!(reason, "exit_rule");
    assert!(bars > 0);
}
