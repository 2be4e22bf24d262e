//! Sizing methods (seed 004) on AAPL's daily bars through `dsl backtest`: each entry's
//! quantity and stop are recomputed here from the journal and `dsl eval`'s indicator values.
//! With one strategy holding one position at a time, equity at an entry is the starting cash
//! plus the pnl of the round trips closed before it.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

use crate::common::{dsl, read_csv};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(dir: &Path, sizing: &str) -> Connection {
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "kind: strategy\nname: sized\nuniverse: [AAPL]\ntimeframe: 1d\n\
             entry: crosses_above(sma(close, 10), sma(close, 30))\nexit: crosses_below(sma(close, 10), sma(close, 30))\n\
             sizing: {sizing}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("bot.yaml"),
        format!(
            "kind: bot\nname: sizing\nstrategies: [s.yaml]\ndata:\n  csv:\n    AAPL: {ROOT}/examples/data/AAPL.csv\n\
             starting_cash: 100000\ndatabase: journal.sqlite\n"
        ),
    )
    .unwrap();
    let out = dsl().current_dir(dir).args(["backtest", "bot.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Connection::open(dir.join("journal.sqlite")).unwrap()
}

/// `dsl eval` of `expr` on AAPL: its printed value by bar time (UTC seconds).
fn eval_text(dir: &Path, expr: &str) -> HashMap<i64, String> {
    let out = dir.join("eval.csv");
    dsl()
        .args(["eval", expr, "--data"])
        .arg(format!("{ROOT}/examples/data/AAPL.csv"))
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    let (_, rows) = read_csv(&out);
    rows.iter().map(|r| (chrono::DateTime::parse_from_rfc3339(&r[0]).unwrap().timestamp(), r[1].clone())).collect()
}

/// `dsl eval` of a number `expr` on AAPL, by bar time (`NaN` where undefined).
fn eval(dir: &Path, expr: &str) -> HashMap<i64, f64> {
    eval_text(dir, expr).into_iter().map(|(t, v)| (t, v.parse().unwrap_or(f64::NAN))).collect()
}

/// `dsl eval` of a bool `expr` on AAPL, by bar time: 1 (true), 0 (false), NaN (undefined;
/// `dsl eval` prints bools as words, undefined as nothing).
fn eval_bool(dir: &Path, expr: &str) -> HashMap<i64, f64> {
    let truth = |v: &str| match v {
        "true" => 1.0,
        "false" => 0.0,
        _ => f64::NAN,
    };
    eval_text(dir, expr).into_iter().map(|(t, v)| (t, truth(&v))).collect()
}

/// Entries: (created_ts, status, quantity, reference price, equity at the time).
fn entries(c: &Connection) -> Vec<(i64, String, f64, f64, f64)> {
    let mut st = c
        .prepare(
            "SELECT o.created_ts, o.status, o.quantity, o.reference_price, \
             100000 + COALESCE((SELECT SUM(t.pnl) FROM trades t WHERE t.exit_ts <= o.created_ts), 0) \
             FROM orders o WHERE o.intent = 'entry' ORDER BY o.order_no",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn atr_risk_loses_1_percent_at_a_stop_2_atr_away() {
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "{atr_risk: {risk: 1%, atr_multiple: 2, atr_period: 14}}");
    let atr = eval(dir.path(), "atr(14)");
    let e = entries(&c);
    assert!(e.len() > 10);
    for (ts, status, qty, _, equity) in &e {
        assert_eq!(status, "filled");
        let want = 0.01 * equity / (2.0 * atr[ts]);
        assert!((qty - want).abs() < 1e-9 * want, "{qty} vs {want}");
    }
    // Each entry's stop sits 2 ATR (of the signal bar) below its fill.
    let mut st = c
        .prepare(
            "SELECT e.created_ts, f.price, s.stop_price FROM orders e JOIN fills f ON f.client_order_id = e.client_order_id \
             JOIN orders s ON s.reason = 'stop_loss' AND s.created_ts = f.ts AND s.symbol = e.symbol \
             WHERE e.intent = 'entry' ORDER BY e.order_no",
        )
        .unwrap();
    let stops: Vec<(i64, f64, f64)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(stops.len(), e.len());
    for (ts, fill, stop) in stops {
        assert!((stop - (fill - 2.0 * atr[&ts])).abs() < 1e-9, "{stop} vs {fill} - 2 * {}", atr[&ts]);
    }
}

#[test]
fn volatility_target_weights_by_realized_volatility_and_caps_apply_after() {
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "{volatility_target: {target: 0.2%, period: 20}, max_percent_of_equity: 15%}");
    let vol = eval(dir.path(), "volatility(20)");
    let (mut capped, mut free) = (0, 0);
    for (ts, _, qty, price, equity) in entries(&c) {
        let weight = (0.002 / vol[&ts]).min(1.0);
        let want = weight.min(0.15) * equity / price;
        assert!((qty - want).abs() < 1e-9 * want, "{qty} vs {want}");
        if weight > 0.15 { capped += 1 } else { free += 1 }
    }
    assert!(capped > 0 && free > 0, "{capped} capped, {free} not");
}

/// Half Kelly with priors W = 55%, R = 1.5 is 12.5% of equity, capped at 10%; after five
/// closed trades the strategy's own record decides.
#[test]
fn capped_kelly_uses_priors_then_the_strategys_own_record() {
    let dir = tempfile::tempdir().unwrap();
    let c = run(
        dir.path(),
        "{kelly: {fraction: 50%, win_rate: 55%, payoff: 1.5, min_trades: 5}, max_percent_of_equity: 10%}",
    );
    let mut st = c.prepare("SELECT exit_ts, pnl FROM trades ORDER BY trade_no").unwrap();
    let trades: Vec<(i64, f64)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    let e = entries(&c);
    let mut own = 0;
    for (ts, status, qty, price, equity) in &e {
        let closed: Vec<f64> = trades.iter().filter(|(t, _)| t <= ts).map(|(_, p)| *p).collect();
        let f = if closed.len() < 5 {
            0.5 * (0.55 - 0.45 / 1.5)
        } else {
            own += 1;
            let wins: Vec<f64> = closed.iter().copied().filter(|p| *p > 0.0).collect();
            let losses: Vec<f64> = closed.iter().copied().filter(|p| *p <= 0.0).collect();
            let w = wins.len() as f64 / closed.len() as f64;
            let r =
                (wins.iter().sum::<f64>() / wins.len() as f64) / (-losses.iter().sum::<f64>() / losses.len() as f64);
            0.5 * (w - (1.0 - w) / r)
        };
        if f <= 0.0 {
            assert_eq!(status, "rejected", "no edge, no trade");
            continue;
        }
        let want = f.min(0.10) * equity / price;
        assert!((qty - want).abs() < 1e-9 * want, "{qty} vs {want} (f = {f})");
    }
    assert!(own > 3);
}

#[test]
fn whole_units_round_down_and_small_orders_are_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "{percent_of_equity: 4.5%, units: whole}");
    for (_, status, qty, price, equity) in entries(&c) {
        assert_eq!(status, "filled");
        assert_eq!(qty, (0.045 * equity / price).floor());
    }
    let dir = tempfile::tempdir().unwrap();
    let c = run(dir.path(), "{percent_of_equity: 0.1%, min_notional: 500}");
    let mut st = c.prepare("SELECT DISTINCT status, substr(status_reason, 1, 19) FROM orders").unwrap();
    let r: Vec<(String, String)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(r, vec![("rejected".to_string(), "below_min_notional:".to_string())]);
}

/// A sizing `scale` (seed 003's regime multipliers) multiplies the method's size before the
/// caps: every entry's quantity is recomputed from `dsl eval`'s values of the regime rules on
/// its signal bar; 1.2 x 5% is capped at 6%; an undefined regime (before 200 bars) sizes
/// nothing and is journaled as a rejection with a quantity of 0.
#[test]
fn a_sizing_scale_multiplies_the_size_before_the_caps_and_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let c = run(
        dir.path(),
        "\n  percent_of_equity: 5%\n  max_percent_of_equity: 5.5%\n  scale:\n    \
         - when: close > sma(close, 200) and volatility(20) < 1.5%\n      scale: 1.2\n    \
         - when: close < sma(close, 200)\n      scale: min(0.6, 0.01 / volatility(20))\n    - scale: 0.5",
    );
    // `dsl eval` prints bools as words, undefined as nothing: 1, 0 or NaN here.
    let green = eval_bool(dir.path(), "close > sma(close, 200) and volatility(20) < 1.5%");
    let red = eval_bool(dir.path(), "close < sma(close, 200)");
    let vol = eval(dir.path(), "volatility(20)");
    let mut seen = [0; 4];
    for (ts, status, qty, price, equity) in entries(&c) {
        let weight = match (green[&ts], red[&ts]) {
            (g, _) if g.is_nan() => f64::NAN,
            (1.0, _) => 0.05 * 1.2,
            (_, r) if r.is_nan() => f64::NAN,
            (_, 1.0) => 0.05 * (0.6f64).min(0.01 / vol[&ts]),
            _ => 0.05 * 0.5,
        };
        if weight.is_nan() {
            assert_eq!((status.as_str(), qty), ("rejected", 0.0), "{ts}");
            seen[0] += 1;
            continue;
        }
        let want = weight.min(0.055) * equity / price;
        assert!((qty - want).abs() < 1e-9 * want, "{ts}: {qty} vs {want}");
        seen[if weight > 0.055 {
            1
        } else if weight == 0.025 {
            3
        } else {
            2
        }] += 1;
    }
    assert!(seen.iter().all(|n| *n > 0), "undefined, capped, red, exploration: {seen:?}");
    let reason: String =
        c.query_row("SELECT status_reason FROM orders WHERE status = 'rejected' LIMIT 1", [], |r| r.get(0)).unwrap();
    assert!(reason.starts_with("nothing_to_trade: the sizing scale is undefined"), "{reason}");
}
