//! Backtest semantics on small synthetic series (fills, stops, targets, time stops, costs,
//! policies, shared cash), streaming versus block evaluation, and the shipped example bot.

use std::sync::Arc;

use tradedsl::config::manifest::FillTiming;
use tradedsl::dsl::bundle::Bundle;
use tradedsl::engine::backtest::{self, BacktestOutput};
use tradedsl::engine::events::{Decision, EventSink, NullSink, OrderStatus};
use tradedsl::engine::market::{Bar, BarSeries};
use tradedsl::engine::orders::{ClientOrderId, Order};
use tradedsl::engine::pipeline::{Engine, EngineSettings};
use tradedsl::runtime::data::csv_bars::{CsvOptions, load_csv};

use crate::common::{bundle, data, dsl, rel};

const DAY: i64 = 86_400;

/// A daily series from `(open, high, low, close)` rows.
fn series(symbol: &str, rows: &[(f64, f64, f64, f64)]) -> BarSeries {
    let mut s = BarSeries::new(symbol);
    for (i, &(open, high, low, close)) in rows.iter().enumerate() {
        s.push(Bar { ts: 1_600_000_000 / DAY * DAY + i as i64 * DAY, open, high, low, close, volume: 1000.0 });
    }
    s
}

fn flat(p: f64) -> (f64, f64, f64, f64) {
    (p, p, p, p)
}

fn settings(commission: f64, slippage: f64, fill: FillTiming) -> EngineSettings {
    let costs = tradedsl::engine::costs::CostModel { commission, slippage, ..Default::default() };
    EngineSettings { bot: "test".into(), run: 0, starting_cash: 10_000.0, costs, fill }
}

fn run(b: &Arc<Bundle>, s: &[BarSeries], st: EngineSettings) -> BacktestOutput {
    backtest::run(b.clone(), s, st, &mut NullSink)
}

/// A strategy on `X` entering when the close exceeds 105.
fn strategy(extra: &str) -> String {
    format!("kind: strategy\nname: s\nuniverse: [X]\ntimeframe: 1d\nentry: close > 105\nsizing: all_cash\n{extra}")
}

#[test]
fn entries_fill_at_the_next_open_and_exits_at_the_next_open() {
    let b = bundle(&[&strategy("exit: close < 100\n")], &[]);
    let s =
        series("X", &[flat(100.0), flat(106.0), (107.0, 108.0, 106.0, 107.5), flat(99.0), (98.0, 98.0, 97.0, 97.5)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::NextOpen));
    assert_eq!(out.trades.len(), 1);
    let t = &out.trades[0];
    assert_eq!((t.entry_price, t.exit_price), (107.0, 98.0));
    assert_eq!(t.holding_bars, 2);
    assert!(rel(t.pnl, 10_000.0 / 107.0 * 98.0 - 10_000.0) < 1e-12);
    assert!(!out.metrics.open_at_end);
}

#[test]
fn close_timing_fills_at_the_signal_close() {
    let b = bundle(&[&strategy("exit: close < 100\n")], &[]);
    let s = series("X", &[flat(100.0), flat(106.0), flat(107.0), flat(99.0), flat(97.0)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::Close));
    let t = &out.trades[0];
    assert_eq!((t.entry_price, t.exit_price), (106.0, 99.0));
    assert_eq!(t.holding_bars, 2);
}

/// A strategy on `X` buying 50 whole shares (protective orders at the broker hold whole shares).
fn whole(extra: &str) -> String {
    strategy(extra).replace("sizing: all_cash", "sizing: {fixed_quantity: 50}")
}

#[test]
fn stop_loss_fills_at_the_stop_price_or_at_the_open_through_a_gap() {
    let b = bundle(&[&whole("stop_loss: 5%\n")], &[]);
    // Entry fills at 110 (bar 2 open); the stop sits at 104.5 and bar 2 trades through it.
    let s = series("X", &[flat(100.0), flat(106.0), (110.0, 111.0, 104.0, 105.0), (104.0, 104.0, 100.0, 101.0)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::NextOpen));
    let t = &out.trades[0];
    assert_eq!(t.exit_reason, "stop_loss");
    assert!(rel(t.exit_price, 110.0 * 0.95) < 1e-12, "{}", t.exit_price);
    assert_eq!(t.exit_time, t.entry_time, "the stop is live on the entry bar");

    // A gap below the stop fills at the open.
    let s = series("X", &[flat(100.0), flat(106.0), (110.0, 111.0, 109.0, 109.0), (100.0, 101.0, 99.0, 100.0)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::NextOpen));
    assert_eq!(out.trades[0].exit_price, 100.0);
    assert_eq!(out.trades[0].exit_reason, "stop_loss");
}

/// A fractional position: the broker's stop holds the whole shares (Alpaca takes fractional
/// quantities only in day market orders) and fills at the stop; the bot watches the remainder
/// and sells it at the next open. One round trip, at the average exit price.
#[test]
fn a_fractional_remainder_is_sold_at_the_next_open_after_the_stop() {
    let b = bundle(&[&strategy("stop_loss: 5%\n")], &[]);
    let s = series(
        "X",
        &[flat(100.0), flat(106.0), (110.0, 111.0, 104.0, 105.0), (103.0, 104.0, 100.0, 101.0), flat(100.0)],
    );
    let mut rec = Recorder::default();
    let out = backtest::run(b, &[s], settings(0.0, 0.0, FillTiming::NextOpen), &mut rec);
    assert_eq!(out.trades.len(), 1, "one round trip");
    let t = &out.trades[0];
    let units = 10_000.0 / 110.0;
    assert_eq!(t.exit_reason, "stop_loss");
    assert!(rel(t.quantity, units) < 1e-12);
    let want = (90.0 * 104.5 + (units - 90.0) * 103.0) / units;
    assert!(rel(t.exit_price, want) < 1e-12, "{} vs {want}", t.exit_price);
    assert!(rel(t.pnl, 90.0 * 104.5 + (units - 90.0) * 103.0 - 10_000.0) < 1e-9);
    assert!(out.open_positions.is_empty());
}

#[test]
fn take_profit_fills_at_the_limit_or_better_and_the_stop_wins_ties() {
    let b = bundle(&[&whole("stop_loss: 5%\ntake_profit: 10%\n")], &[]);
    let s = series("X", &[flat(100.0), flat(106.0), (100.0, 101.0, 99.0, 100.0), (104.0, 111.0, 103.0, 104.0)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::NextOpen));
    assert_eq!(out.trades[0].exit_reason, "take_profit");
    assert!(rel(out.trades[0].exit_price, 110.0) < 1e-12);

    // Gap above the target: the limit fills at the better open.
    let s = series("X", &[flat(100.0), flat(106.0), (100.0, 101.0, 99.0, 100.0), (115.0, 116.0, 114.0, 104.0)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::NextOpen));
    assert_eq!((out.trades[0].exit_reason, out.trades[0].exit_price), ("take_profit", 115.0));

    // A bar that reaches both: assume the stop came first.
    let s = series("X", &[flat(100.0), flat(106.0), (100.0, 101.0, 99.0, 100.0), (100.0, 112.0, 94.0, 104.0)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::NextOpen));
    assert_eq!(out.trades[0].exit_reason, "stop_loss");
}

#[test]
fn max_holding_exits_after_that_many_bars() {
    let b = bundle(&[&strategy("max_holding: 3\n")], &[]);
    let s = series("X", &[flat(100.0), flat(106.0), flat(107.0), flat(108.0), flat(109.0), flat(99.0), flat(98.0)]);
    let out = run(&b, &[s], settings(0.0, 0.0, FillTiming::NextOpen));
    let t = &out.trades[0];
    assert_eq!(t.exit_reason, "max_holding");
    assert_eq!(t.holding_bars, 3);
    assert_eq!((t.entry_price, t.exit_price), (107.0, 99.0));
}

#[test]
fn commission_and_slippage_apply_to_every_fill() {
    let b = bundle(&[&strategy("exit: close < 100\n")], &[]);
    let s = series("X", &[flat(100.0), flat(106.0), flat(107.0), flat(99.0), flat(98.0)]);
    let (c, sl) = (0.001, 0.0005);
    let out = run(&b, &[s], settings(c, sl, FillTiming::NextOpen));
    let t = &out.trades[0];
    let buy = 107.0 * (1.0 + sl);
    let sell = 98.0 * (1.0 - sl);
    let qty = 10_000.0 / (buy * (1.0 + c));
    assert!(rel(t.entry_price, buy) < 1e-12 && rel(t.exit_price, sell) < 1e-12);
    assert!(rel(t.quantity, qty) < 1e-12);
    assert!(rel(t.pnl, qty * sell * (1.0 - c) - 10_000.0) < 1e-9);
    assert!(rel(t.fees, qty * buy * c + qty * sell * c) < 1e-9);
    assert!(rel(out.metrics.final_equity, 10_000.0 + t.pnl) < 1e-12);
}

/// A policy decision as recorded: rule id, fired, values seen.
type Seen = (String, bool, Vec<(String, tradedsl::engine::events::Seen)>);

#[derive(Default)]
struct Recorder {
    rejected: Vec<String>,
    cancelled: Vec<String>,
    decisions: Vec<Seen>,
}

impl EventSink for Recorder {
    fn order(&mut self, _o: &Order, _strategy: &str, _symbol: &str, status: OrderStatus, reason: &str) {
        if status == OrderStatus::Rejected {
            self.rejected.push(reason.to_string());
        }
    }
    fn order_status(&mut self, _id: ClientOrderId, status: OrderStatus, _ts: i64, reason: &str) {
        if status == OrderStatus::Cancelled {
            self.cancelled.push(reason.to_string());
        }
    }
    fn decision(&mut self, d: &Decision<'_>) {
        self.decisions.push((d.rule_id.to_string(), d.fired, d.values.to_vec()));
    }
}

const CAPS: &str = "kind: policy\nname: caps\nrules:\n  - id: max_trade\n    when: order.intent == \"entry\" and order.notional > 5% * account.equity\n    action: deny\n    message: too big\n";

#[test]
fn policies_deny_orders_and_record_what_they_saw() {
    let b = bundle(&[&strategy("exit: close < 100\n")], &[CAPS]);
    let s = series("X", &[flat(100.0), flat(106.0), flat(107.0), flat(99.0)]);
    let mut rec = Recorder::default();
    let out = backtest::run(b, &[s], settings(0.0, 0.0, FillTiming::NextOpen), &mut rec);
    assert!(out.trades.is_empty(), "all-cash entries break the 5% cap");
    assert_eq!(out.stats.denials.get("caps/max_trade"), Some(&2));
    assert!(rec.rejected[0].starts_with("denied by caps/max_trade: too big"), "{:?}", rec.rejected);
    let (id, fired, seen) = &rec.decisions[0];
    assert_eq!((id.as_str(), *fired), ("max_trade", true));
    let get = |k: &str| {
        seen.iter().find(|(l, _)| l == k).and_then(|(_, v)| match v {
            tradedsl::engine::events::Seen::Number(x) => Some(*x),
            tradedsl::engine::events::Seen::Text(_) => None,
        })
    };
    assert_eq!(get("account.equity"), Some(10_000.0));
    // Text fields are kept as text.
    assert!(
        seen.iter().any(|(l, v)| l == "order.intent" && *v == tradedsl::engine::events::Seen::Text("entry".into())),
        "{seen:?}"
    );
    assert!(get("order.notional").unwrap() > 9_000.0);

    // Within the cap, the order passes and the decision says so.
    let small = strategy("exit: close < 100\n").replace("sizing: all_cash", "sizing: {percent_of_equity: 4%}");
    let b = bundle(&[&small], &[CAPS]);
    let s = series("X", &[flat(100.0), flat(106.0), flat(107.0), flat(99.0), flat(98.0)]);
    let mut rec = Recorder::default();
    let out = backtest::run(b, &[s], settings(0.0, 0.0, FillTiming::NextOpen), &mut rec);
    assert_eq!(out.trades.len(), 1);
    assert!(rec.decisions.iter().all(|d| !d.1));
}

#[test]
fn a_policy_whose_condition_is_undefined_denies() {
    let policy = "kind: policy\nname: vol\nrules:\n  - id: calm\n    when: atr(50) / close > 10%\n    action: deny\n    message: too volatile\n";
    let b = bundle(&[&strategy("exit: close < 100\n")], &[policy]);
    let s = series("X", &[flat(100.0), flat(106.0), flat(107.0), flat(99.0)]);
    let mut rec = Recorder::default();
    let out = backtest::run(b, &[s], settings(0.0, 0.0, FillTiming::NextOpen), &mut rec);
    assert!(out.trades.is_empty());
    assert!(rec.rejected[0].contains("condition undefined: fail closed"), "{:?}", rec.rejected);
}

#[test]
fn symbols_share_one_cash_account() {
    let text = "kind: strategy\nname: s\nuniverse: [A, B]\ntimeframe: 1d\nentry: close > 105\nexit: close < 100\nsizing: all_cash\n";
    let b = bundle(&[text], &[]);
    let a = series("A", &[flat(100.0), flat(106.0), flat(107.0), flat(108.0), flat(99.0), flat(98.0)]);
    let bb = series("B", &[flat(100.0), flat(100.0), flat(106.0), flat(107.0), flat(99.0), flat(98.0)]);
    let mut rec = Recorder::default();
    let out = backtest::run(b, &[a, bb], settings(0.0, 0.0, FillTiming::NextOpen), &mut rec);
    // A takes all the cash; B's entry is sized to nothing and rejected.
    assert_eq!(out.trades.len(), 1);
    assert_eq!(&*out.trades[0].symbol, "A");
    assert!(rec.rejected.iter().any(|r| r.starts_with("nothing_to_trade")), "{:?}", rec.rejected);
    assert!(rec.cancelled.is_empty(), "{:?}", rec.cancelled);
    assert_eq!(out.metrics.bars, 6, "one mark per timestamp");
}

#[test]
fn block_replay_equals_streaming_bar_by_bar() {
    let text = std::fs::read_to_string("strategies/macd_trend.yaml")
        .unwrap()
        .replace("universe: [AAPL, MSFT, NVDA, JPM, XOM]", "universe: [GOOG]");
    let b = bundle(&[&text], &[CAPS.replace("5%", "50%").as_str()]);
    let s =
        load_csv(&data("GOOG.csv"), &CsvOptions { symbol: Some("GOOG".into()), ..Default::default() }).unwrap().series;
    let block = backtest::run(b.clone(), &s, settings(0.001, 0.0005, FillTiming::NextOpen), &mut NullSink);
    let mut engine = Engine::new(b, &["GOOG".to_string()], settings(0.001, 0.0005, FillTiming::NextOpen));
    for i in 0..s[0].len() {
        engine.on_bar(0, &s[0].bar(i), &mut NullSink);
        engine.mark();
    }
    assert!(!block.trades.is_empty());
    assert_eq!(block.trades, engine.trades(), "same trades, bit for bit");
    assert_eq!(block.metrics.final_equity, engine.mark().0);
}

#[test]
fn the_example_bot_runs_from_a_fresh_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let (db, json, html) = (dir.path().join("j.sqlite"), dir.path().join("r.json"), dir.path().join("r.html"));
    let assert = dsl()
        .args(["backtest", "examples/bot.yaml", "--journal"])
        .arg(&db)
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("strategies    rsi_reversion, macd_trend, bollinger_reversion"), "{stdout}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "final_equity",
        "total_return",
        "cagr",
        "max_drawdown",
        "sharpe",
        "sortino",
        "win_rate",
        "profit_factor",
        "avg_pnl_pct",
        "avg_win",
        "avg_loss",
        "exposure_time",
        "trade_count",
        "open_at_end",
    ] {
        assert!(r["metrics"].get(key).is_some(), "metrics.{key}");
    }
    let trades = r["trades"].as_array().unwrap();
    assert!(trades.len() > 50);
    for key in ["symbol", "entry_time", "entry_price", "exit_time", "exit_price", "quantity", "pnl", "exit_reason"] {
        assert!(trades[0].get(key).is_some(), "trades[].{key}");
    }
    let symbols: std::collections::BTreeSet<&str> = trades.iter().map(|t| t["symbol"].as_str().unwrap()).collect();
    assert!(symbols.len() >= 4, "{symbols:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("<svg").count() >= 2, "equity and drawdown charts");
    let c = rusqlite::Connection::open(&db).unwrap();
    let n = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(n("SELECT count(*) FROM trades"), trades.len() as i64);
    assert!(n("SELECT count(*) FROM policy_decisions WHERE fired = 1") > 0, "the caps bite");
    assert_eq!(
        n("SELECT count(*) FROM orders WHERE status = 'rejected'"),
        r["orders"]["orders_rejected"].as_i64().unwrap()
    );
    let seen: String = c.query_row("SELECT seen_values FROM policy_decisions LIMIT 1", [], |r| r.get(0)).unwrap();
    assert!(seen.contains("order.notional") && seen.contains("account.equity"), "{seen}");
}

/// Seed 003's regime A/B: one command runs both variants on the same data, journals each as
/// its own run and prints the metrics side by side with their differences.
#[test]
fn variants_run_side_by_side_with_their_differences() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ab.sqlite");
    let json = dir.path().join("ab.json");
    let out = dsl()
        .args(["backtest", "examples/regime_on.yaml", "examples/regime_off.yaml", "--journal"])
        .arg(&db)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let v = doc["variants"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!((v[0]["name"].as_str(), v[1]["name"].as_str()), (Some("regime_on"), Some("regime_off")));
    // The variants differ only in the regime param, so the bundles differ and so do the trades.
    assert_ne!(v[0]["revision"], v[1]["revision"]);
    let trades = |i: usize| v[i]["metrics"]["trade_count"].as_i64().unwrap();
    assert!(trades(1) > trades(0), "the regime filter removes trades: {} vs {}", trades(0), trades(1));
    // Each variant is a journaled run with the same metrics as the report.
    let c = rusqlite::Connection::open(&db).unwrap();
    let runs =
        crate::common::rows(&c, "SELECT run_id, bot, json_extract(metrics, '$.trade_count') FROM runs ORDER BY run_id");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0][1], "regime_on");
    assert_eq!(runs[1][2], trades(1).to_string());
    // The table: a header with both names and the difference; each row's difference is the
    // second value minus the first.
    let header = stdout.lines().find(|l| l.contains("regime_on") && l.contains("difference")).unwrap();
    assert!(header.find("regime_on").unwrap() < header.find("regime_off").unwrap());
    let row = |label: &str| -> Vec<String> {
        let line =
            stdout.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label}\n{stdout}"));
        line[label.len() + 2..].split_whitespace().map(str::to_string).collect()
    };
    let t = row("trades");
    assert_eq!(t, vec![trades(0).to_string(), trades(1).to_string(), format!("{:+}", trades(1) - trades(0))]);
    let ret = |i: usize| v[i]["metrics"]["total_return"].as_f64().unwrap() * 100.0;
    let r = row("total return");
    assert_eq!(r[0], format!("{:.2}%", ret(0)));
    assert_eq!(r[2], format!("{:+.2}", ret(1) - ret(0)));
    assert_eq!(r[3], "pp");
    // One chart cannot show two runs.
    let out = dsl()
        .args(["backtest", "examples/regime_on.yaml", "examples/regime_off.yaml", "--no-journal", "--html", "x.html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--html draws one backtest"));
}
