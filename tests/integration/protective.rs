//! Protective orders at a broker that enforces Alpaca's order rules (`mock_broker`: fractional
//! quantities only in day market orders; sells only up to the shares not held for other
//! orders): fractional and whole-share positions with a stop-loss, a take-profit, both, and
//! strategy exits while they work. Nothing is refused, no position's whole shares go without
//! a working stop for more than one bar, nothing is sold twice, and the broker's books end as
//! the journal's. Also: a position changed outside the bot while its stops work halts the bot
//! at that bar's reconciliation, and its console says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

use super::common::{count, rows};
use super::mock_broker::{MockBroker, State};

const SYMBOLS: [&str; 2] = ["AAPL", "MSFT"];

/// A bot trading `SYMBOLS` through `broker: alpaca` with one strategy: RSI(5) swings with
/// `protection` (stop_loss / take_profit lines) and `sizing`.
fn write_bot(dir: &Path, protection: &str, sizing: &str, exit: &str) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let strategy = format!(
        "kind: strategy\nname: swing\nuniverse: [AAPL, MSFT]\ntimeframe: 1d\nentry: rsi(close, 5) < 35\n\
         exit: {exit}\n{protection}sizing:\n  {sizing}\ndirection: long\n"
    );
    std::fs::write(dir.join("swing.yaml"), strategy).unwrap();
    let data: String = SYMBOLS.iter().map(|s| format!("    {s}: {root}/examples/data/{s}.csv\n")).collect();
    let bot = format!(
        "kind: bot\nname: protective_test\nstrategies:\n  - swing.yaml\ndata:\n  csv:\n{data}starting_cash: 100000\n\
         broker: alpaca\n"
    );
    std::fs::write(dir.join("bot.yaml"), bot).unwrap();
    dir.join("bot.yaml")
}

fn start_mock(rt: &tokio::runtime::Runtime, setup: impl FnOnce(&mut State)) -> (MockServer, MockBroker) {
    let base: HashMap<String, f64> = [("AAPL".to_string(), 26.0), ("MSFT".to_string(), 54.0)].into();
    let broker = MockBroker::new(100_000.0, base);
    {
        let mut st = broker.0.lock().unwrap();
        st.protected_symbols = SYMBOLS.iter().map(|s| s.to_string()).collect();
        setup(&mut st);
    }
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(broker.clone()).mount(&server).await;
        server
    });
    (server, broker)
}

fn run_bot(bot: &Path, db: &Path, server: &MockServer, args: &[&str]) -> (bool, String) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .args(["run", "--from", "2016-01-01", "--to", "2017-06-30", "--journal"])
        .arg(db)
        .args(args)
        .arg(bot)
        .env("NO_COLOR", "1")
        .env("APCA_API_KEY_ID", "PKMOCK")
        .env("APCA_API_SECRET_KEY", "mock-secret")
        .env("TRADEDSL_ALPACA_TRADING_URL", server.uri())
        .env_remove("TRADEDSL_ALPACA_DATA_URL")
        .env_remove("TRADEDSL_ARM_LIVE")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What every scenario must show: nothing refused, nothing sold twice, whole shares never
/// without a working stop for more than one bar (when there is a stop), no halt, and the
/// journal's positions equal to the broker's.
fn check(case: &str, broker: &MockBroker, db: &Path, stderr: &str, stops: bool) {
    let st = broker.0.lock().unwrap();
    assert_eq!(st.refused_fractional, 0, "{case}: fractional orders refused\n{stderr}");
    assert_eq!(st.refused_quantity, 0, "{case}: sells refused for insufficient quantity\n{stderr}");
    assert_eq!(st.oversold, 0, "{case}: a position was sold below zero");
    assert_eq!(st.duplicate_posts, 0, "{case}");
    if stops {
        for (symbol, longest) in &st.longest_unprotected {
            assert!(*longest <= 1, "{case}: {symbol}'s whole shares went {longest} bars without a stop");
        }
    }
    let c = Connection::open(db).unwrap();
    let refused = rows(
        &c,
        "SELECT client_order_id, message FROM broker_orders WHERE state IN ('rejected', 'expired', 'withheld')",
    );
    assert!(refused.is_empty(), "{case}: {refused:?}");
    let halts = rows(&c, "SELECT reason, message FROM state_changes");
    assert!(halts.is_empty(), "{case}: {halts:?}\n{stderr}");
    // The engine's final positions are the broker's.
    let positions: serde_json::Value =
        serde_json::from_str(&rows(&c, "SELECT positions FROM run_status ORDER BY run_id DESC LIMIT 1")[0][0]).unwrap();
    for symbol in SYMBOLS {
        let ours: f64 = positions
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["symbol"] == symbol)
            .map(|p| p["quantity"].as_f64().unwrap())
            .sum();
        let theirs = st.positions.get(symbol).copied().unwrap_or(0.0);
        assert!((ours - theirs).abs() < 1e-6, "{case}: {symbol}: journal {ours}, broker {theirs}");
    }
}

#[test]
fn protective_orders_are_accepted_by_a_broker_with_alpacas_rules() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let fractional = "percent_of_equity: 20%";
    let whole = "fixed_quantity: 40";
    let exit = "rsi(close, 5) > 65";
    // (case, protection, sizing, stop, mock setup)
    type Setup = fn(&mut State);
    let cases: Vec<(&str, &str, &str, bool, Setup)> = vec![
        ("fractional, stop-loss", "stop_loss: 8%\n", fractional, true, |_| {}),
        ("fractional, take-profit", "take_profit: 6%\n", fractional, false, |_| {}),
        ("fractional, both", "stop_loss: 8%\ntake_profit: 6%\n", fractional, true, |_| {}),
        ("whole shares, both", "stop_loss: 8%\ntake_profit: 6%\n", whole, true, |_| {}),
        ("whole shares, stop-loss", "stop_loss: 8%\n", whole, true, |_| {}),
        // Stops triggering at the broker (the third bar after they rest), OCO sibling cancelled.
        ("fractional, both, stops fill", "stop_loss: 8%\ntake_profit: 6%\n", fractional, true, |s| s.trigger_after = 3),
        // A strategy exit whose cancellation of the protective orders loses the race: the
        // protective order fills first, the exit sells only the rest.
        ("fractional, both, fill before cancel", "stop_loss: 8%\ntake_profit: 6%\n", fractional, true, |s| {
            s.fill_on_cancel = true
        }),
        ("whole shares, stop, fill before cancel", "stop_loss: 8%\n", whole, true, |s| s.fill_on_cancel = true),
    ];
    for (case, protection, sizing, stops, setup) in cases {
        let dir = tempfile::tempdir().unwrap();
        let bot = write_bot(dir.path(), protection, sizing, exit);
        let (server, broker) = start_mock(&rt, setup);
        let db = dir.path().join("j.sqlite");
        let (ok, stderr) = run_bot(&bot, &db, &server, &["--quiet"]);
        assert!(ok, "{case}: {stderr}");
        check(case, &broker, &db, &stderr, stops);
        let c = Connection::open(&db).unwrap();
        let trades = count(&c, "SELECT COUNT(*) FROM trades");
        assert!(trades >= 6, "{case}: only {trades} trades");
        // Strategy exits happened while protective orders worked (they were cancelled first).
        let cancelled_first =
            count(&c, "SELECT COUNT(*) FROM orders WHERE status_reason = 'cancelled before the strategy''s exit'");
        let st = broker.0.lock().unwrap();
        if case.contains("fill before cancel") {
            assert!(st.filled_on_cancel >= 1, "{case}: no race happened");
            let raced = count(&c, "SELECT COUNT(*) FROM broker_events WHERE kind = 'fill_before_cancel'");
            assert!(raced >= 1, "{case}");
        } else {
            assert!(cancelled_first >= 1, "{case}: no strategy exit met working protective orders");
        }
        if case.contains("stops fill") {
            let stopped = count(&c, "SELECT COUNT(*) FROM trades WHERE exit_reason = 'stop_loss'");
            assert!(stopped >= 1, "{case}: no stop filled");
        }
        if case.contains("both") && case.contains("whole") {
            let oco = st.orders.iter().filter(|o| o.order_class == "oco" && !o.leg).count();
            assert!(oco >= 1, "{case}: no OCO pair");
        }
        if sizing == fractional {
            // The fractional remainder never reached the broker in a GTC order.
            assert!(
                st.orders
                    .iter()
                    .all(|o| o.qty.fract() == 0.0 || (o.order_type == "market" && o.time_in_force == "day")),
                "{case}"
            );
        }
    }
}

#[test]
fn a_position_changed_outside_the_bot_while_its_stops_work_halts_it_at_that_bar() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Always in, whole shares, a stop that never triggers: stops work for the whole run.
    let bot = write_bot(dir.path(), "stop_loss: 90%\n", "fixed_quantity: 10", "close < 0");
    std::fs::write(
        dir.path().join("swing.yaml"),
        "kind: strategy\nname: swing\nuniverse: [AAPL, MSFT]\ntimeframe: 1d\nentry: close > 0\nexit: close < 0\n\
         stop_loss: 90%\nsizing:\n  fixed_quantity: 10\n",
    )
    .unwrap();
    // Someone buys 7 AAPL in the account at the broker's 40th listing of open orders.
    let (server, broker) = start_mock(&rt, |s| {
        s.change_at_listing = Some((40, "AAPL".into(), 7.0));
        // AAPL's outside shares are not the bot's to protect.
        s.protected_symbols = vec!["MSFT".into()];
    });
    let db = dir.path().join("j.sqlite");
    let (ok, stderr) = run_bot(&bot, &db, &server, &[]);
    assert!(ok, "{stderr}");
    let c = Connection::open(&db).unwrap();
    let halts = rows(&c, "SELECT ts, message FROM state_changes WHERE reason = 'reconcile_mismatch'");
    assert_eq!(halts.len(), 1, "{halts:?}");
    assert!(halts[0][1].contains("AAPL: the broker holds 17 units, the bot 10"), "{}", halts[0][1]);
    let halted_at: i64 = halts[0][0].parse().unwrap();
    // Stops were working at every bar before the halt, and reconciliation ran at every bar.
    let bars_before =
        count(&c, &format!("SELECT COUNT(*) FROM broker_events WHERE kind = 'reconcile' AND ts < {halted_at}"));
    assert!(bars_before >= 10, "reconciled {bars_before} times before the halt");
    let st = broker.0.lock().unwrap();
    assert!(st.longest_unprotected.values().all(|l| *l <= 1), "{:?}", st.longest_unprotected);
    let stops = st.orders.iter().filter(|o| o.order_type == "stop").count();
    assert!(stops >= 2, "{stops} stops");
    // The change came at the listing of one bar's sync: that bar's reconciliation caught it.
    let synced = rows(&c, &format!("SELECT COUNT(*) FROM broker_events WHERE kind = 'reconcile' AND ts = {halted_at}"));
    assert_eq!(synced, vec![vec!["1".to_string()]]);
    // The console said so.
    assert!(stderr.contains("reconciliation at ") && stderr.contains("failed: AAPL: the broker holds 17"), "{stderr}");
    assert!(stderr.contains("state: ACTIVE -> HALTED at ") && stderr.contains("(reconcile_mismatch)"), "{stderr}");
    // No entry went out after the halt.
    let after = count(
        &c,
        &format!(
            "SELECT COUNT(*) FROM orders WHERE intent = 'entry' AND status != 'rejected' AND created_ts > {halted_at}"
        ),
    );
    assert_eq!(after, 0);
}

#[test]
fn what_the_broker_cannot_truthfully_report_halts_the_bot() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cases = [
        ("overfill", "reports 400 filled"),
        ("negative_price", "filled at price Some(-"),
        ("wrong_id", "the broker answered with order td-000000000000000000000000"),
        ("foreign_position", "positions in symbols the bot never traded: 5 units of ZZZZ"),
    ];
    for (lie, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let bot = write_bot(dir.path(), "stop_loss: 8%\n", "fixed_quantity: 40", "rsi(close, 5) > 65");
        let (server, broker) = start_mock(&rt, |s| s.anomaly = Some(lie));
        let db = dir.path().join("j.sqlite");
        let (ok, stderr) = run_bot(&bot, &db, &server, &["--quiet"]);
        assert!(ok, "{lie}: {stderr}");
        let c = Connection::open(&db).unwrap();
        let found = rows(&c, "SELECT message FROM broker_events WHERE kind = 'broker_anomaly'");
        assert!(found.iter().any(|m| m[0].contains(expected)), "{lie}: {found:?}\n{stderr}");
        let halts = rows(&c, "SELECT reason FROM state_changes WHERE to_state = 'HALTED'");
        assert!(halts.iter().any(|h| h[0] == "broker_anomaly"), "{lie}: {halts:?}");
        assert!(stderr.contains("(broker_anomaly)"), "{lie}: {stderr}");
        if lie == "overfill" || lie == "negative_price" {
            // The lie was not booked: no position or trade built on it.
            let fills = count(&c, "SELECT COUNT(*) FROM fills WHERE quantity > 40 OR price <= 0");
            assert_eq!(fills, 0, "{lie}");
        }
        drop(broker);
    }
}

/// A trailing stop at a broker with Alpaca's rules: each move cancels the working stop and
/// sends the new one only once the cancellation is confirmed, so the broker never holds two
/// stops for the same shares (it would refuse the second: insufficient quantity), the levels
/// sent only rise within a position, and every move is journaled.
#[test]
fn a_trailing_stop_is_replaced_at_the_broker_never_doubled() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (case, sizing, setup) in [
        ("whole shares", "fixed_quantity: 40", (|_| {}) as fn(&mut State)),
        ("fractional", "percent_of_equity: 20%", |_| {}),
        ("whole shares, stops fill", "fixed_quantity: 40", |s| s.trigger_after = 4),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bot = write_bot(dir.path(), "trailing_stop: 4%\n", sizing, "rsi(close, 5) > 65");
        let (server, broker) = start_mock(&rt, setup);
        let db = dir.path().join("j.sqlite");
        let (ok, stderr) = run_bot(&bot, &db, &server, &["--quiet"]);
        assert!(ok, "{case}: {stderr}");
        check(case, &broker, &db, &stderr, true);
        let c = Connection::open(&db).unwrap();
        let moves = count(&c, "SELECT COUNT(*) FROM orders WHERE status_reason LIKE 'trailing stop moved to %'");
        assert!(moves >= 5, "{case}: {moves} moves");
        // Each move: the cancelled stop's successor is the next stop order of the symbol, at
        // the level the move names, above the cancelled one.
        let moved = rows(
            &c,
            "SELECT o.stop_price, o.status_reason, (SELECT n.stop_price FROM orders n WHERE n.run_id = o.run_id \
             AND n.symbol = o.symbol AND n.order_type = 'stop' AND n.order_no > o.order_no ORDER BY n.order_no LIMIT 1) \
             FROM orders o WHERE o.status_reason LIKE 'trailing stop moved to %'",
        );
        for m in &moved {
            let old: f64 = m[0].parse().unwrap();
            let named: f64 =
                m[1]["trailing stop moved to ".len()..].split_whitespace().next().unwrap().parse().unwrap();
            let next: f64 = m[2].parse().unwrap();
            assert!(named > old && (next - named).abs() < 1e-6 * named, "{case}: {m:?}");
        }
        let st = broker.0.lock().unwrap();
        for symbol in SYMBOLS {
            assert_eq!(st.max_open_stops.get(symbol).copied(), Some(1), "{case}: {symbol}: two stops at once");
            // Within a position, the stops sent only rise.
            let stops: Vec<(String, f64)> = st
                .orders
                .iter()
                .filter(|o| o.symbol == symbol && o.order_type == "stop")
                .map(|o| (o.status.clone(), o.stop_price.unwrap()))
                .collect();
            assert!(stops.len() > 3, "{case}: {symbol}: {stops:?}");
            for w in stops.windows(2) {
                // A lower level starts a new position (its predecessor filled or was
                // cancelled before a strategy exit), never a move.
                if w[1].1 < w[0].1 {
                    assert!(w[0].0 == "filled" || w[0].0 == "canceled", "{case}: {symbol}: {w:?}");
                }
            }
        }
        if case.contains("stops fill") {
            let trailed = count(&c, "SELECT COUNT(*) FROM trades WHERE exit_reason = 'trailing_stop'");
            assert!(trailed >= 1, "{case}: no trailing stop filled");
        }
    }
}

/// Limit entries at a broker with Alpaca's rules: sent as `type: limit` buys with their limit
/// price and the engine's `client_order_id`, in whole shares; a limit that the broker fills only
/// in part is cancelled when it expires (after 3 bars), the cancellation is journaled, and the
/// bot then holds exactly what was filled, like the broker. (A part filled while the order
/// still works is booked, and protected by a stop, when the order ends: here at its expiry,
/// so those shares go at most 3 bars plus the expiry's own without a stop.)
#[test]
fn limit_entries_submit_fill_in_part_and_are_cancelled_on_expiry() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(
        dir.path(),
        "stop_loss: 8%\norder: {type: limit, price: close * 0.995, expires_after: 3 bars}\n",
        "percent_of_equity: 20%",
        "rsi(close, 5) > 65",
    );
    let (server, broker) = start_mock(&rt, |s| s.limit_partial_after = 1);
    let db = dir.path().join("j.sqlite");
    let (ok, stderr) = run_bot(&bot, &db, &server, &["--quiet"]);
    assert!(ok, "{stderr}");
    check("limit entries", &broker, &db, &stderr, false);
    let st = broker.0.lock().unwrap();
    for (symbol, longest) in &st.longest_unprotected {
        assert!(*longest <= 4, "{symbol}'s whole shares went {longest} bars without a stop");
    }
    let limits: Vec<_> = st.orders.iter().filter(|o| o.side == "buy" && o.order_type == "limit").collect();
    assert!(limits.len() >= 5, "{} limit entries", limits.len());
    let c = Connection::open(&db).unwrap();
    for o in &limits {
        // Whole shares, GTC, at the journal's limit price, under the engine's id.
        assert_eq!(o.qty.fract(), 0.0, "{o:?}");
        assert_eq!(o.time_in_force, "gtc");
        let journal = rows(
            &c,
            &format!(
                "SELECT limit_price, status, status_reason FROM orders WHERE client_order_id = '{}'",
                o.client_order_id
            ),
        );
        assert_eq!(journal.len(), 1, "{o:?}");
        let limit: f64 = journal[0][0].parse().unwrap();
        assert!((limit - o.limit_price.unwrap()).abs() < 1e-6 * limit, "{o:?} vs {journal:?}");
        // Filled in part, then cancelled on expiry: the journal says so.
        assert_eq!(o.status, "canceled", "{o:?}");
        assert!(o.filled_qty > 0.0 && o.filled_qty < o.qty, "{o:?}");
        assert!(journal[0][2].contains("expires_after"), "{journal:?}");
    }
    assert_eq!(st.partial_fills, limits.len());
    // What the broker filled of each is what the journal booked.
    let booked: f64 = rows(
        &c,
        "SELECT COALESCE(SUM(f.quantity), 0) FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id \
         WHERE o.intent = 'entry'",
    )[0][0]
        .parse()
        .unwrap();
    let filled: f64 = limits.iter().map(|o| o.filled_qty).sum();
    assert!((booked - filled).abs() < 1e-9, "journal {booked}, broker {filled}");
}
