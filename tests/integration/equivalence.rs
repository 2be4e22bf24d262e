//! One engine for every driver: the same bot through `dsl backtest` and through `dsl run`
//! (replayed bars, simulated broker) makes the same orders, fills, trades and equity.

use std::path::Path;

use rusqlite::Connection;

use crate::common::{dsl, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The example bot without its phases (a phase's limits would apply to the paper run only).
fn bot(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("{ROOT}/examples/bot.yaml")).unwrap();
    let mut out = String::new();
    let mut in_phases = false;
    for line in text.lines() {
        if line.starts_with("phases:") {
            in_phases = true;
            continue;
        }
        if in_phases && line.starts_with("  - ") {
            continue;
        }
        in_phases = false;
        if line.starts_with("phase:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let out = out
        .replace("../strategies", &format!("{ROOT}/strategies"))
        .replace("../policies", &format!("{ROOT}/policies"))
        .replace(": data/", &format!(": {ROOT}/examples/data/"));
    assert!(!out.contains("phases"), "{out}");
    let p = dir.join("bot.yaml");
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn a_backtest_and_a_replayed_paper_run_trade_alike() {
    let dir = tempfile::tempdir().unwrap();
    let bot = bot(dir.path());
    let (a, b) = (dir.path().join("backtest.sqlite"), dir.path().join("run.sqlite"));
    let out = dsl().arg("backtest").arg(&bot).arg("--journal").arg(&a).arg("--quiet").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = dsl().arg("run").arg(&bot).arg("--journal").arg(&b).arg("--quiet").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (Connection::open(&a).unwrap(), Connection::open(&b).unwrap());
    let queries = [
        "SELECT client_order_id, created_ts, strategy, symbol, side, intent, order_type, stop_price, limit_price, \
         time_in_force, quantity, reference_price, status, status_reason FROM orders ORDER BY client_order_id",
        "SELECT client_order_id, ts, quantity, price, commission, slippage_cost FROM fills \
         ORDER BY client_order_id, ts, rowid",
        "SELECT strategy, symbol, entry_ts, entry_price, exit_ts, exit_price, quantity, pnl, pnl_pct, fees, \
         exit_reason, holding_bars FROM trades ORDER BY trade_no",
        "SELECT client_order_id, ts, policy, rule_id, fired, action FROM policy_decisions \
         ORDER BY client_order_id, ts, policy, rule_id, rowid",
    ];
    for q in queries {
        let (x, y) = (rows(&a, q), rows(&b, q));
        assert!(x.len() > 100, "{q}: {} rows", x.len());
        assert_eq!(x.len(), y.len(), "{q}");
        for (r, s) in x.iter().zip(&y) {
            assert_eq!(r, s, "{q}");
        }
    }
    let metrics = "SELECT json_extract(metrics, '$.final_equity'), json_extract(metrics, '$.max_drawdown'), \
                   json_extract(metrics, '$.trade_count') FROM runs";
    assert_eq!(rows(&a, metrics), rows(&b, metrics));
}
