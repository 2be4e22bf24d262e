//! Seed 001's shipped guardrails (`policies/always_on_caps.yaml`, `circuit_breakers.yaml`,
//! `market_events.yaml`, `large_order_approval.yaml`, `dsl halt`) driven on real bars into the
//! situation each must stop. Every test asserts the action, the reason code and the journal
//! records; and a bot restarted on the same control records continues in the state the
//! guardrail left (HALTED stays HALTED until `dsl resume`; a denial leaves ACTIVE).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use tradedsl::dsl::bundle::Bundle;
use tradedsl::engine::events::EventSink;
use tradedsl::engine::market::BarSeries;
use tradedsl::engine::pipeline::{Engine, EngineSettings, RunStats};
use tradedsl::engine::trading_state::{TradingState, TradingStatus};
use tradedsl::runtime::data::csv_bars::{CsvOptions, load_csv};
use tradedsl::runtime::journal::control::{ControlStore, StateRecorder};
use tradedsl::runtime::journal::{Journal, RunInfo};

use crate::common::{bundle, count, data, dsl, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BOT: &str = "seed001";

fn policy(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("policies").join(name)).unwrap()
}

fn series(path: &Path, symbol: &str) -> BarSeries {
    let opts = CsvOptions { symbol: Some(symbol.to_string()), ..CsvOptions::default() };
    let mut s = load_csv(path, &opts).unwrap().series.remove(0);
    s.symbol = symbol.to_string();
    s
}

fn example(symbol: &str) -> BarSeries {
    series(&Path::new(ROOT).join("examples/data").join(format!("{symbol}.csv")), symbol)
}

/// One segment of a bot's life: an engine (restored from the control records) over the bars
/// with `from <= ts < to`, journaled.
struct Segment {
    stats: RunStats,
    state: TradingStatus,
    journal: Connection,
}

fn settings() -> EngineSettings {
    EngineSettings {
        bot: BOT.into(),
        run: 0,
        starting_cash: 100_000.0,
        costs: tradedsl::engine::costs::CostModel { commission: 0.0005, ..Default::default() },
        fill: tradedsl::config::manifest::FillTiming::NextOpen,
    }
}

/// Runs `bundle` over `series` between `from` and `to` (UTC seconds), starting from the state
/// stored in `dir/control.sqlite`, and journals to `dir/<name>.sqlite`.
fn segment(dir: &Path, name: &str, bundle: &Arc<Bundle>, series: &[BarSeries], from: i64, to: i64) -> Segment {
    let symbols: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
    let mut engine = Engine::new(bundle.clone(), &symbols, settings());
    let mut control = ControlStore::open(&dir.join("control.sqlite"), BOT).unwrap();
    engine.restore_state(control.state().unwrap());
    let journal_path = dir.join(format!("{name}.sqlite"));
    let info = RunInfo {
        kind: "paper".into(),
        bot: BOT.into(),
        bundle_revision: bundle.revision.clone(),
        settings: serde_json::json!({}),
        symbols: symbols.clone(),
    };
    let mut journal = Journal::begin(&journal_path, &info).unwrap();
    {
        let mut sink = StateRecorder { inner: &mut journal, store: &mut control, error: None };
        drive(&mut engine, series, from, to, &mut sink);
        assert!(sink.error().is_none(), "{:?}", sink.error());
    }
    journal.finish(None, None, &serde_json::json!({})).unwrap();
    Segment {
        stats: engine.stats().clone(),
        state: engine.trading_state().clone(),
        journal: Connection::open(journal_path).unwrap(),
    }
}

/// Streams the bars of every series in time order, marking and checking the account after
/// each timestamp, as a running bot does.
fn drive(engine: &mut Engine, series: &[BarSeries], from: i64, to: i64, sink: &mut dyn EventSink) {
    let mut all: Vec<(i64, usize, usize)> = Vec::new();
    for (si, s) in series.iter().enumerate() {
        all.extend((0..s.len()).filter(|&i| s.ts[i] >= from && s.ts[i] < to).map(|i| (s.ts[i], si, i)));
    }
    all.sort();
    let mut k = 0;
    while k < all.len() {
        let ts = all[k].0;
        while k < all.len() && all[k].0 == ts {
            let (_, si, i) = all[k];
            engine.on_bar(si, &series[si].bar(i), sink);
            k += 1;
        }
        engine.mark();
        engine.check_account(ts, sink);
    }
}

fn ts(date: &str) -> i64 {
    tradedsl::runtime::data::timeparse::parse_bound(date).unwrap()
}

/// A strategy that is in the market most of the time: SMA(10/30) crossover, with `extra`
/// lines (stop, sizing, universe...).
fn crossover(name: &str, universe: &str, extra: &str) -> String {
    format!(
        "kind: strategy\nname: {name}\nuniverse: [{universe}]\ntimeframe: 1d\n\
         entry: crosses_above(sma(close, 10), sma(close, 30))\nexit: crosses_below(sma(close, 10), sma(close, 30))\n{extra}\n"
    )
}

/// After a segment that only denied orders, a restarted bot is ACTIVE.
fn restarts_active(dir: &Path) {
    let store = ControlStore::open(&dir.join("control.sqlite"), BOT).unwrap();
    assert_eq!(store.state().unwrap().mode, TradingState::Active);
}

/// Decisions of `rule` that fired, with the rejected orders' reasons.
fn fired(c: &Connection, rule: &str) -> Vec<Vec<String>> {
    rows(
        c,
        &format!(
            "SELECT d.action, o.status, o.status_reason, d.seen_values FROM policy_decisions d \
             JOIN orders o ON o.client_order_id = d.client_order_id \
             WHERE d.rule_id = '{rule}' AND d.fired = 1 ORDER BY o.order_no"
        ),
    )
}

#[test]
fn a_trade_above_5_percent_of_equity_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let s = crossover("big", "AAPL", "stop_loss: 3%\nsizing: {percent_of_equity: 6%}");
    let b = bundle(&[&s], &[&policy("always_on_caps.yaml")]);
    let seg = segment(dir.path(), "run", &b, &[example("AAPL")], i64::MIN, i64::MAX);
    let f = fired(&seg.journal, "max_trade_notional");
    assert!(f.len() >= 5, "{f:?}");
    for r in &f {
        assert_eq!((&*r[0], &*r[1]), ("deny", "rejected"));
        assert!(r[2].starts_with("denied by always_on_caps/max_trade_notional: a single trade"), "{r:?}");
        assert!(r[3].contains("order.notional"), "the values it saw are journaled: {r:?}");
    }
    assert_eq!(seg.stats.denials.get("always_on_caps/max_trade_notional"), Some(&(f.len() as u64)));
    assert_eq!(count(&seg.journal, "SELECT COUNT(*) FROM fills"), 0);
    restarts_active(dir.path());
}

#[test]
fn entries_without_a_3_percent_stop_are_denied_and_exits_pass() {
    let dir = tempfile::tempdir().unwrap();
    let none = crossover("no_stop", "MSFT", "max_holding: 30\nsizing: {percent_of_equity: 2%}");
    let wide = crossover("wide_stop", "NVDA", "stop_loss: 5%\nsizing: {percent_of_equity: 2%}");
    let ok = crossover("tight_stop", "JPM", "stop_loss: 3%\nsizing: {percent_of_equity: 2%}");
    let b = bundle(&[&none, &wide, &ok], &[&policy("always_on_caps.yaml")]);
    let seg = segment(dir.path(), "run", &b, &[example("MSFT"), example("NVDA"), example("JPM")], i64::MIN, i64::MAX);
    let by_symbol = |sym: &str| {
        rows(
            &seg.journal,
            &format!(
                "SELECT o.status, o.status_reason FROM orders o WHERE symbol = '{sym}' AND intent = 'entry' \
                 AND order_type = 'market'"
            ),
        )
    };
    let (no, wide, tight) = (by_symbol("MSFT"), by_symbol("NVDA"), by_symbol("JPM"));
    assert!(!no.is_empty() && !wide.is_empty() && !tight.is_empty());
    // No stop at all: the condition is undefined, and fails closed.
    assert!(
        no.iter().all(|o| o[0] == "rejected"
            && o[1].contains("always_on_caps/stop_loss_required")
            && o[1].contains("fail closed")),
        "{no:?}"
    );
    assert!(wide.iter().all(|o| o[0] == "rejected" && o[1].contains("stop_loss_required")), "{wide:?}");
    assert!(tight.iter().all(|o| o[0] == "filled"), "{tight:?}");
    // The 3% strategy's protective stops were placed and some were hit.
    let stops = count(&seg.journal, "SELECT COUNT(*) FROM trades WHERE symbol = 'JPM' AND exit_reason = 'stop_loss'");
    assert!(stops > 0);
    restarts_active(dir.path());
}

/// Five symbols entered at once at 4.5% each: four fit under 20% of equity, the fifth does not.
#[test]
fn total_exposure_above_20_percent_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let s = "kind: strategy\nname: always_in\nuniverse: [AAPL, JPM, MSFT, NVDA, XOM]\ntimeframe: 1d\n\
             entry: close > 0\nstop_loss: 3%\nsizing: {percent_of_equity: 4.5%}\n";
    let b = bundle(&[s], &[&policy("always_on_caps.yaml")]);
    let all = ["AAPL", "JPM", "MSFT", "NVDA", "XOM"].map(example);
    let first = all[0].ts[0];
    let seg = segment(dir.path(), "run", &b, &all, first, first + 86_400);
    let orders = rows(
        &seg.journal,
        "SELECT symbol, status, status_reason FROM orders WHERE order_type = 'market' ORDER BY order_no",
    );
    assert_eq!(orders.len(), 5, "{orders:?}");
    assert!(orders[..4].iter().all(|o| o[1] == "submitted" || o[1] == "cancelled"), "{orders:?}");
    assert_eq!(orders[4][1], "rejected");
    assert!(orders[4][2].starts_with("denied by always_on_caps/max_total_exposure"), "{orders:?}");
    let f = fired(&seg.journal, "max_total_exposure");
    assert_eq!(f.len(), 1);
    assert!(f[0][3].contains("account.exposure"), "{f:?}");
    restarts_active(dir.path());
}

/// NVDA rose about tenfold over the sample: a 4.5% position grows past 30% of equity, and a
/// second strategy's entry into NVDA trips the per-asset cap (the exposure cap, checked
/// first, fires as well and decides).
#[test]
fn one_asset_above_30_percent_of_equity_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let hold = "kind: strategy\nname: holder\nuniverse: [NVDA]\ntimeframe: 1d\nentry: close > 0\n\
                stop_loss: 3%\nmax_holding: 100000\nsizing: {percent_of_equity: 4.5%}\n";
    let more = crossover("adder", "NVDA", "stop_loss: 3%\nsizing: {percent_of_equity: 1%}");
    let b = bundle(&[hold, &more], &[&policy("always_on_caps.yaml")]);
    let seg = segment(dir.path(), "run", &b, &[example("NVDA")], i64::MIN, i64::MAX);
    let f = fired(&seg.journal, "max_asset_weight");
    assert!(!f.is_empty(), "the position never reached 30%");
    assert!(f.iter().all(|r| r[1] == "rejected"), "{f:?}");
    restarts_active(dir.path());
}

/// Twelve strategies enter GOOG on the same bar: nine orders pass, the tenth and later are
/// refused within the minute; the next bar starts a new minute.
#[test]
fn the_tenth_order_within_a_minute_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = (1..=12)
        .map(|i| {
            format!(
                "kind: strategy\nname: s{i:02}\nuniverse: [GOOG]\ntimeframe: 1d\nentry: close > 0\n\
                 stop_loss: 3%\nmax_holding: 1\nsizing: {{percent_of_equity: 1%}}\n"
            )
        })
        .collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let b = bundle(&refs, &[&policy("always_on_caps.yaml")]);
    let goog = series(&data("GOOG.csv"), "GOOG");
    let seg = segment(dir.path(), "run", &b, std::slice::from_ref(&goog), goog.ts[0], goog.ts[2]);
    let first = rows(
        &seg.journal,
        &format!(
            "SELECT status, status_reason FROM orders WHERE created_ts = {} AND order_type = 'market' ORDER BY order_no",
            goog.ts[0]
        ),
    );
    assert_eq!(first.len(), 12);
    assert!(first[..9].iter().all(|o| o[0] != "rejected"), "{first:?}");
    assert!(first[9..].iter().all(|o| o[1].starts_with("denied by always_on_caps/max_order_rate")), "{first:?}");
    let f = fired(&seg.journal, "max_order_rate");
    assert!(f[0][3].contains("\"account.orders_last_minute\":9.0"), "{f:?}");
    restarts_active(dir.path());
}

/// GOOG all in from late 2004: the drawdown from the equity peak passes 7% (REDUCING: only
/// exits) and then 10% (HALTED) on open positions. A restarted bot is still HALTED and refuses
/// everything, until `dsl resume`.
#[test]
fn the_drawdown_breaker_halts_and_the_halt_survives_a_restart_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let s = crossover("all_in", "GOOG", "sizing: all_cash");
    let b = bundle(&[&s], &[&policy("circuit_breakers.yaml")]);
    let goog = series(&data("GOOG.csv"), "GOOG");
    let split = ts("2008-01-01");
    let first = segment(dir.path(), "first", &b, std::slice::from_ref(&goog), i64::MIN, split);
    let changes = rows(&first.journal, "SELECT from_state, to_state, reason, reset FROM state_changes ORDER BY ts");
    assert_eq!(
        changes,
        vec![
            vec!["ACTIVE".to_string(), "REDUCING".into(), "circuit_breakers/drawdown_pause".into(), "manual".into()],
            vec!["REDUCING".to_string(), "HALTED".into(), "circuit_breakers/drawdown_breaker".into(), "manual".into()],
        ]
    );
    assert_eq!(first.state.mode, TradingState::Halted);

    // Restart: the control records say HALTED; nothing passes in the second segment.
    let store = ControlStore::open(&dir.path().join("control.sqlite"), BOT).unwrap();
    let stored = store.state().unwrap();
    assert_eq!((stored.mode, stored.reason.as_str()), (TradingState::Halted, "circuit_breakers/drawdown_breaker"));
    drop(store);
    let second = segment(dir.path(), "second", &b, std::slice::from_ref(&goog), split, ts("2010-01-01"));
    assert_eq!(count(&second.journal, "SELECT COUNT(*) FROM state_changes"), 0);
    let orders = rows(&second.journal, "SELECT status, status_reason FROM orders");
    assert!(!orders.is_empty());
    assert!(orders.iter().all(|o| o[0] == "rejected" && o[1].starts_with("halted since ")), "{orders:?}");
    assert_eq!(second.stats.blocked_by_state.get("halted"), Some(&(orders.len() as u64)));

    // A person resumes; the next segment trades again.
    let db = dir.path().join("control.sqlite");
    let out = dsl()
        .args(["resume", "--journal"])
        .arg(&db)
        .args(["--bot-name", BOT, "--reason", "reviewed the 2008 losses"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("HALTED -> ACTIVE"));
    let third = segment(dir.path(), "third", &b, &[goog], ts("2010-01-01"), i64::MAX);
    assert!(count(&third.journal, "SELECT COUNT(*) FROM fills") > 0);
    let log =
        rows(&Connection::open(&db).unwrap(), "SELECT to_state, reason, source FROM bot_state_log ORDER BY rowid");
    assert_eq!(
        log[..3],
        [
            vec!["REDUCING".to_string(), "circuit_breakers/drawdown_pause".into(), "engine".into()],
            vec!["HALTED".to_string(), "circuit_breakers/drawdown_breaker".into(), "engine".into()],
            vec!["ACTIVE".to_string(), "resume".into(), "cli".into()],
        ]
    );
}

/// BTC/USD (Coinbase daily) fell 54% on 2015-01-14: the market-event rule halts at that
/// valuation, with no order involved, and a restarted bot stays halted.
#[test]
fn a_20_percent_btc_day_halts_trading_and_a_restart_stays_halted() {
    let dir = tempfile::tempdir().unwrap();
    let s = crossover("btc_trend", "BTC/USD", "stop_loss: 3%\nsizing: {percent_of_equity: 4%}");
    let b = bundle(&[&s], &[&policy("market_events.yaml")]);
    let mut btc = load_csv(&data("Coinbase_BTCUSD_d.csv"), &CsvOptions::default()).unwrap().series.remove(0);
    btc.symbol = "BTC/USD".into();
    let split = ts("2016-01-01");
    // The first bar (2014-12-01) rose 23% from its open to its close, which halts too; start on
    // the second day.
    let first = segment(dir.path(), "first", &b, &[btc.clone()], ts("2014-12-02"), split);
    let changes = rows(&first.journal, "SELECT time, to_state, reason, message FROM v_state_changes");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0][0], "2015-01-14T00:00:00Z");
    assert_eq!((&*changes[0][1], &*changes[0][2]), ("HALTED", "market_events/btc_daily_move"));
    assert!(changes[0][3].contains("more than 20%"));
    let at = ts("2015-01-14");
    assert_eq!(count(&first.journal, &format!("SELECT COUNT(*) FROM orders WHERE created_ts = {at}")), 0);

    let second = segment(dir.path(), "second", &b, &[btc], split, i64::MAX);
    let orders = rows(&second.journal, "SELECT status_reason FROM orders");
    assert!(!orders.is_empty());
    assert!(orders.iter().all(|o| o[0].contains("market_events/btc_daily_move")), "{orders:?}");
}

/// `dsl halt` on a bot's records: the bot, restarted, refuses every order with the manual
/// reason.
#[test]
fn dsl_halt_stops_a_bot_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("control.sqlite");
    let out = dsl()
        .args(["halt", "--journal"])
        .arg(&db)
        .args(["--bot-name", BOT, "--reason", "broker maintenance tonight"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACTIVE -> HALTED"));
    let s = crossover("any", "GOOG", "stop_loss: 3%\nsizing: {percent_of_equity: 4%}");
    let b = bundle(&[&s], &[&policy("always_on_caps.yaml")]);
    let seg = segment(dir.path(), "run", &b, &[series(&data("GOOG.csv"), "GOOG")], i64::MIN, i64::MAX);
    let orders = rows(&seg.journal, "SELECT status, status_reason FROM orders");
    assert!(orders.len() > 10);
    assert!(
        orders.iter().all(|o| o[0] == "rejected" && o[1].contains("manual_halt: broker maintenance tonight")),
        "{orders:?}"
    );
    assert_eq!(seg.state.reason, "manual_halt");
    let log = rows(
        &Connection::open(&db).unwrap(),
        "SELECT from_state, to_state, reason, message, source FROM bot_state_log",
    );
    assert_eq!(
        log,
        vec![vec![
            "ACTIVE".to_string(),
            "HALTED".into(),
            "manual_halt".into(),
            "broker maintenance tonight".into(),
            "cli".into()
        ]]
    );
}

/// Entries above 10,000 wait in the approval queue of the bot's records: one approved (it
/// fills at the next open), one rejected, one left to expire (denied on timeout), all
/// journaled; `dsl approvals list` shows the queue.
#[test]
fn large_entries_wait_for_approval_and_are_denied_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("control.sqlite");
    let s = crossover("big", "GOOG", "stop_loss: 3%\nsizing: {percent_of_equity: 12%}");
    let b = bundle(&[&s], &[&policy("large_order_approval.yaml")]);
    let goog = series(&data("GOOG.csv"), "GOOG");
    let mut engine = Engine::new(b.clone(), &["GOOG".to_string()], settings());
    engine.set_approval_desk(Box::new(ControlStore::open(&db, BOT).unwrap()));
    let mut people = ControlStore::open(&db, BOT).unwrap();
    let info = RunInfo {
        kind: "paper".into(),
        bot: BOT.into(),
        bundle_revision: b.revision.clone(),
        settings: serde_json::json!({}),
        symbols: vec!["GOOG".into()],
    };
    let mut journal = Journal::begin(&dir.path().join("journal.sqlite"), &info).unwrap();
    let mut answers = vec![(true, "fits the plan"), (false, "too much before earnings")].into_iter();
    let mut listed = String::new();
    for i in 0..goog.len() {
        let bar = goog.bar(i);
        engine.on_bar(0, &bar, &mut journal);
        engine.mark();
        engine.check_account(bar.ts, &mut journal);
        if engine.parked_orders() == 1 {
            let pending = people.approvals(false).unwrap();
            assert_eq!(pending.len(), 1);
            if listed.is_empty() {
                let out =
                    dsl().args(["approvals", "list", "--journal"]).arg(&db).args(["--bot-name", BOT]).output().unwrap();
                listed = String::from_utf8(out.stdout).unwrap();
            }
            if let Some((yes, note)) = answers.next() {
                people.decide(&pending[0].request_id.to_string(), yes, note, bar.ts + 60).unwrap();
            }
        }
    }
    journal.finish(None, None, &serde_json::json!({})).unwrap();
    assert!(
        listed.contains("pending   entry buy GOOG") && listed.contains("large_order_approval/large_entry"),
        "{listed}"
    );
    let queue = people.approvals(true).unwrap();
    let statuses: Vec<&str> = queue.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(&statuses[..3], ["approved", "rejected", "expired"]);
    assert!(statuses[3..].iter().all(|s| *s == "expired"));

    let c = Connection::open(dir.path().join("journal.sqlite")).unwrap();
    let orders = rows(&c, "SELECT status, status_reason FROM orders WHERE intent = 'entry' ORDER BY order_no");
    assert_eq!(orders[0][0], "filled");
    assert_eq!(orders[1], vec!["rejected".to_string(), "approval rejected: too much before earnings".into()]);
    assert!(orders[2][1].starts_with("no approval by ") && orders[2][1].ends_with("denied on timeout"), "{orders:?}");
    let notes = rows(&c, "SELECT kind, message FROM events ORDER BY rowid LIMIT 3");
    assert_eq!(notes[0][0], "approval_requested");
    assert_eq!(notes[1][0], "approval_decided");
    assert!(notes[1][1].ends_with("approved: fits the plan"), "{notes:?}");
    assert_eq!(engine.stats().approvals_expired as usize, queue.len() - 2);
    // A decision after the window is refused.
    let out = dsl()
        .args(["approvals", "approve", &queue[2].request_id.to_string(), "--journal"])
        .arg(&db)
        .args(["--bot-name", BOT])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is already expired"));
}
