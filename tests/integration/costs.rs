//! Seed 003's cost model and edge-cost gate through `dsl backtest` on GOOG: 1.5 bps
//! commission, a 0.5 bps impact floor each way, a 30 bps `min_expected_return` and a 1.25
//! multiplier. The round-trip cost the gate sees, the decisions, and the fill prices and
//! commissions are checked against the arithmetic written out here.

use std::path::Path;

use rusqlite::Connection;

use crate::common::{data, dsl};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Backtests the SMA(10/30) crossover on GOOG, declaring `expected` as its expected return,
/// with `costs` and the shipped edge-cost gate; returns the journal.
fn run(dir: &Path, expected: &str, costs: &str) -> Connection {
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "kind: strategy\nname: cross\nuniverse: [GOOG]\ntimeframe: 1d\n\
             entry: crosses_above(sma(close, 10), sma(close, 30))\nexit: crosses_below(sma(close, 10), sma(close, 30))\n\
             expected_return: {expected}\nsizing: {{percent_of_equity: 10%}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("bot.yaml"),
        format!(
            "kind: bot\nname: costs\nstrategies: [s.yaml]\npolicies: [{ROOT}/policies/edge_cost_gate.yaml]\n\
             data:\n  csv:\n    GOOG: {}\nstarting_cash: 100000\ncosts: {costs}\ndatabase: journal.sqlite\n",
            data("GOOG.csv").display()
        ),
    )
    .unwrap();
    let out = dsl().current_dir(dir).args(["backtest", "bot.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Connection::open(dir.join("journal.sqlite")).unwrap()
}

/// (rule, fired, seen values as JSON) of every decision on entries.
fn decisions(c: &Connection) -> Vec<(String, bool, serde_json::Value)> {
    let mut st = c.prepare("SELECT rule_id, fired, seen_values FROM policy_decisions ORDER BY rowid").unwrap();
    st.query_map([], |r| {
        let seen: String = r.get(2)?;
        Ok((r.get(0)?, r.get::<_, i64>(1)? == 1, serde_json::from_str(&seen).unwrap()))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn statuses(c: &Connection) -> Vec<(String, String)> {
    let mut st = c.prepare("SELECT status, COALESCE(status_reason, '') FROM orders WHERE intent = 'entry'").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

const SEED_003: &str = "{commission: 1.5bps, impact: 0.5bps}";

#[test]
fn seed_003_round_trip_is_4_bps_and_the_30_bps_minimum_decides() {
    // 2 x (1.5 + 0.5) bps = 4 bps; 1.25 x 4 = 5 bps < 30 bps.
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "29bps", SEED_003);
    let d = decisions(&c);
    assert!(d.len() > 20);
    for (rule, fired, seen) in &d {
        match rule.as_str() {
            "edge_below_costs" => {
                let rt = seen["order.round_trip_cost"].as_f64().unwrap();
                assert!((rt - 0.0004).abs() < 1e-15, "{rt}");
                assert!(!fired, "29 bps > 5 bps");
            }
            "edge_below_minimum" => assert!(fired, "29 bps < 30 bps"),
            other => panic!("{other}"),
        }
    }
    let s = statuses(&c);
    assert!(
        s.iter().all(|(st, why)| st == "rejected" && why.starts_with("denied by edge_cost_gate/edge_below_minimum"))
    );

    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "31bps", SEED_003);
    assert!(statuses(&c).iter().all(|(st, _)| st == "filled"));
    // Fills: buys at open * (1 + 0.5 bps impact), sells at open * (1 - 0.5 bps); commission
    // 1.5 bps of the fill's notional.
    let mut st =
        c.prepare("SELECT f.side, f.price, f.quantity, f.commission, f.ts FROM fills f ORDER BY f.rowid").unwrap();
    let fills: Vec<(String, f64, f64, f64, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(fills.len() > 20);
    let (_, rows) = crate::common::read_csv(&data("GOOG.csv"));
    let open_on = |ts: i64| {
        let day = chrono::DateTime::from_timestamp(ts, 0).unwrap().format("%Y-%m-%d").to_string();
        rows.iter().find(|r| r[0] == day).unwrap()[1].parse::<f64>().unwrap()
    };
    for (side, price, qty, commission, ts) in &fills {
        let open = open_on(*ts);
        let want = if side == "buy" { open * (1.0 + 0.00005) } else { open * (1.0 - 0.00005) };
        assert!((price - want).abs() < 1e-9 * want, "{side} {price} vs {want}");
        assert!((commission - price * qty * 0.00015).abs() < 1e-9, "{commission}");
    }
}

#[test]
fn with_a_25_bps_spread_the_multiplier_decides() {
    // 25 + 2 x (1.5 + 0.5) = 29 bps round trip; 1.25 x 29 = 36.25 bps.
    let costs = "{commission: 1.5bps, impact: 0.5bps, spread: 25bps}";
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "36bps", costs);
    for (rule, fired, seen) in decisions(&c) {
        if rule == "edge_below_costs" {
            let rt = seen["order.round_trip_cost"].as_f64().unwrap();
            assert!((rt - 0.0029).abs() < 1e-15, "{rt}");
            assert!(fired);
        }
    }
    assert!(statuses(&c).iter().all(|(_, why)| why.starts_with("denied by edge_cost_gate/edge_below_costs")));
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "37bps", costs);
    assert!(statuses(&c).iter().all(|(st, _)| st == "filled"));
}

/// An expected return from ATR: entries pass only where 2 x ATR(14) / close clears the gate.
#[test]
fn an_atr_based_expected_return_is_gated_bar_by_bar() {
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "0.1 * atr(14) / close", SEED_003);
    let d = decisions(&c);
    let (mut passed, mut denied) = (0, 0);
    for (rule, fired, seen) in &d {
        if rule != "edge_below_minimum" {
            continue;
        }
        let Some(e) = seen["order.expected_return"].as_f64() else {
            // Exits carry no expected return, and are not gated.
            assert!(!fired);
            continue;
        };
        assert_eq!(*fired, e < 0.003, "{e}");
        if *fired { denied += 1 } else { passed += 1 }
    }
    assert!(passed > 0 && denied > 0, "{passed} passed, {denied} denied");
}

/// `symbol.spread` in a backtest is the cost model's estimate (`symbol.spread_source` says
/// so), and the shipped `spread_filter` policy (seed 004: market entries only on spreads under
/// 0.5%) denies every entry at a 0.6% estimate and none at 0.2%.
#[test]
fn the_spread_filter_reads_the_estimated_spread_in_a_backtest() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (spread, denied) in [("0.6%", true), ("0.2%", false)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bot.yaml"),
            format!(
                "kind: bot\nname: spreads\nstrategies:\n  - path: {root}/strategies/sma_crossover.yaml\n    universe: [AAPL]\n\
                 policies: [{root}/policies/spread_filter.yaml]\ndata:\n  csv:\n    AAPL: {root}/examples/data/AAPL.csv\n\
                 starting_cash: 100000\ncosts: {{spread: {spread}}}\ndatabase: j.sqlite\n"
            ),
        )
        .unwrap();
        let out = crate::common::dsl().current_dir(dir.path()).args(["backtest", "bot.yaml"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let c = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
        let seen = crate::common::rows(
            &c,
            "SELECT d.fired, d.seen_values FROM policy_decisions d JOIN orders o ON o.client_order_id = d.client_order_id \
             WHERE o.intent = 'entry'",
        );
        assert!(seen.len() > 5);
        for s in &seen {
            let v: serde_json::Value = serde_json::from_str(&s[1]).unwrap();
            let want = spread.trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
            assert!((v["symbol.spread"].as_f64().unwrap() - want).abs() < 1e-12, "{s:?}");
            assert_eq!(s[0] == "1", denied, "{s:?}");
        }
        let entries_filled =
            crate::common::count(&c, "SELECT COUNT(*) FROM orders WHERE intent = 'entry' AND status = 'filled'");
        assert_eq!(entries_filled == 0, denied);
    }
}

/// Quote data in a backtest: real AAPL bars with `bid` and `ask` columns added (spreads of
/// 0.2% or 0.8% of the mid, and rows without a quote). Each entry's `symbol.spread` is the
/// quote of its signal bar, or the cost model's 0.3% estimate where the row has none; the
/// spread filter denies exactly the entries on 0.8% quotes.
#[test]
fn a_backtest_reads_quotes_from_bid_and_ask_columns() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let (header, rows) = crate::common::read_csv(&std::path::PathBuf::from(format!("{root}/examples/data/AAPL.csv")));
    let close_at = header.iter().position(|h| h == "close").unwrap();
    let mut text = format!("{},bid,ask\n", header.join(","));
    let mut spreads = std::collections::BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let close: f64 = r[close_at].parse().unwrap();
        let quoted = match i % 7 {
            0 => None,
            k if k % 3 == 0 => Some(0.008),
            _ => Some(0.002),
        };
        let (bid, ask) = match quoted {
            Some(s) => (format!("{}", close * (1.0 - s / 2.0)), format!("{}", close * (1.0 + s / 2.0))),
            None => (String::new(), String::new()),
        };
        spreads.insert(r[0].clone(), quoted);
        text.push_str(&format!("{},{bid},{ask}\n", r.join(",")));
    }
    std::fs::write(dir.path().join("AAPL.csv"), text).unwrap();
    std::fs::write(
        dir.path().join("bot.yaml"),
        format!(
            "kind: bot\nname: quotes\nstrategies:\n  - path: {root}/strategies/sma_crossover.yaml\n    universe: [AAPL]\n    \
             params: {{fast: 3, slow: 8}}\npolicies: [{root}/policies/spread_filter.yaml]\ndata:\n  csv:\n    AAPL: AAPL.csv\n\
             starting_cash: 100000\ncosts: {{spread: 0.3%}}\ndatabase: j.sqlite\n"
        ),
    )
    .unwrap();
    let out = crate::common::dsl().current_dir(dir.path()).args(["backtest", "bot.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
    let seen = crate::common::rows(
        &c,
        "SELECT o.created_ts, d.fired, d.seen_values FROM policy_decisions d \
         JOIN orders o ON o.client_order_id = d.client_order_id WHERE o.intent = 'entry'",
    );
    let mut kinds = std::collections::BTreeSet::new();
    for s in &seen {
        let day = crate::common::day(&s[0]);
        let v: serde_json::Value = serde_json::from_str(&s[2]).unwrap();
        let got = v["symbol.spread"].as_f64().unwrap();
        let want = spreads[&day];
        // (ask - bid) / mid of the written quote, or the estimate.
        assert!((got - want.unwrap_or(0.003)).abs() < 1e-9, "{day}: spread {got}, row {want:?}");
        assert_eq!(s[1] == "1", want == Some(0.008), "{day}: {s:?}");
        kinds.insert(format!("{want:?}"));
    }
    assert_eq!(kinds.len(), 3, "entries on quoted (both spreads) and unquoted rows: {kinds:?}");
}
