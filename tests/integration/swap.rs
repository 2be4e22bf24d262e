//! Swapping bundles in a running engine (hot reload): the same documents swapped in change
//! nothing at all; a removed strategy keeps managing its position with its exits and makes no
//! new entries; an edited param decides from the next bar; a swap that needs bars the run does
//! not have is refused and changes nothing.

use std::sync::Arc;

use tradedsl::config::manifest::FillTiming;
use tradedsl::dsl::bundle::Bundle;
use tradedsl::engine::events::NullSink;
use tradedsl::engine::market::{Bar, BarSeries};
use tradedsl::engine::orders::Trade;
use tradedsl::engine::pipeline::{Engine, EngineSettings};
use tradedsl::runtime::data::csv_bars::{CsvOptions, load_csv};

use crate::common::{bundle, data};

fn settings() -> EngineSettings {
    let costs = tradedsl::engine::costs::CostModel { commission: 0.0001, slippage: 0.0005, ..Default::default() };
    EngineSettings { bot: "swap".into(), run: 0, starting_cash: 100_000.0, costs, fill: FillTiming::NextOpen }
}

fn goog() -> BarSeries {
    load_csv(&data("GOOG.csv"), &CsvOptions { symbol: Some("GOOG".into()), ..Default::default() })
        .unwrap()
        .series
        .remove(0)
}

/// A shipped strategy, trading GOOG, with `(from, to)` text replacements.
fn shipped(name: &str, edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(format!("strategies/{name}.yaml"))
        .unwrap()
        .replace("universe: [AAPL, MSFT, NVDA, JPM, XOM]", "universe: [GOOG]");
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    text
}

fn both() -> Arc<Bundle> {
    bundle(&[&shipped("rsi_reversion", &[]), &shipped("macd_trend", &[])], &[])
}

/// Streams bars `from..to` through the engine the way the paper loop does.
fn drive(engine: &mut Engine, s: &BarSeries, from: usize, to: usize) {
    for i in from..to {
        let bar = s.bar(i);
        engine.on_bar(0, &bar, &mut NullSink);
        engine.mark();
        engine.check_account(bar.ts, &mut NullSink);
    }
}

/// Runs the whole series, swapping in `swaps[k].1` before bar `swaps[k].0`.
fn run(start: Arc<Bundle>, s: &BarSeries, swaps: &[(usize, Arc<Bundle>)]) -> (Vec<Trade>, f64) {
    let mut engine = Engine::new(start, &["GOOG".to_string()], settings());
    let mut at = 0;
    for (i, b) in swaps {
        drive(&mut engine, s, at, *i);
        let history = |_: usize| -> Vec<Bar> { (0..*i).map(|j| s.bar(j)).collect() };
        engine.swap_bundle(b.clone(), &history).expect("swapped");
        at = *i;
    }
    drive(&mut engine, s, at, s.len());
    let equity = engine.mark().0;
    (engine.trades().to_vec(), equity)
}

#[test]
fn swapping_in_the_same_documents_changes_nothing() {
    let s = goog();
    let plain = run(both(), &s, &[]);
    assert!(plain.0.len() > 20, "{} trades", plain.0.len());
    // Every 97 bars a freshly compiled copy: positions, stops, sequences and indicators carry.
    let swaps: Vec<(usize, Arc<Bundle>)> = (1..s.len() / 97).map(|k| (k * 97, both())).collect();
    let swapped = run(both(), &s, &swaps);
    assert_eq!(plain.0, swapped.0, "same trades, bit for bit");
    assert_eq!(plain.1, swapped.1);
}

#[test]
fn a_removed_strategy_closes_its_position_with_its_exits_and_enters_no_more() {
    let s = goog();
    let plain = run(both(), &s, &[]);
    // A bar at which macd_trend holds a position and enters again later.
    let open = plain
        .0
        .iter()
        .filter(|t| &*t.strategy == "macd_trend")
        .find(|t| {
            let later = plain.0.iter().any(|u| &*u.strategy == "macd_trend" && u.entry_time > t.exit_time);
            later && t.holding_bars >= 2
        })
        .expect("a macd trade held for a few bars with another after it");
    let at = (0..s.len()).find(|&i| s.ts[i] > open.entry_time).unwrap() + 1;
    let swap_ts = s.ts[at];
    assert!(swap_ts <= open.exit_time);
    let rsi_only = bundle(&[&shipped("rsi_reversion", &[])], &[]);
    let mut engine = Engine::new(both(), &["GOOG".to_string()], settings());
    drive(&mut engine, &s, 0, at);
    let history: Vec<Bar> = (0..at).map(|j| s.bar(j)).collect();
    let report = engine.swap_bundle(rsi_only, &|_| history.clone()).unwrap();
    assert_eq!(report.retired, vec![("macd_trend".to_string(), "GOOG".to_string())]);
    drive(&mut engine, &s, at, s.len());
    let trades = engine.trades();
    let macd: Vec<&Trade> = trades.iter().filter(|t| &*t.strategy == "macd_trend").collect();
    let closed = macd.iter().find(|t| t.entry_time == open.entry_time).expect("the open macd trade closed");
    assert_eq!(
        (closed.exit_time, closed.exit_price, closed.exit_reason),
        (open.exit_time, open.exit_price, open.exit_reason)
    );
    assert!(macd.iter().all(|t| t.entry_time < swap_ts), "macd_trend entered after it was removed");
    // rsi_reversion decides as before (its sizing sees a slightly different equity).
    let times = |ts: &[Trade]| -> Vec<(i64, i64)> {
        ts.iter().filter(|t| &*t.strategy == "rsi_reversion").map(|t| (t.entry_time, t.exit_time)).collect()
    };
    assert_eq!(times(trades), times(&plain.0));
}

#[test]
fn an_edited_param_decides_from_the_next_bar() {
    let s = goog();
    let at = s.len() / 2;
    let swap_ts = s.ts[at];
    let loose = bundle(&[&shipped("rsi_reversion", &[("oversold: 30", "oversold: 45")])], &[]);
    let strict = bundle(&[&shipped("rsi_reversion", &[])], &[]);
    let before = run(strict.clone(), &s, &[]);
    let after = run(loose.clone(), &s, &[]);
    let swapped = run(strict, &s, &[(at, loose)]);
    // Trades entered before the swap are those of the old rules; entries from the swap on
    // are those of the new rules (the first may differ by what is still held).
    let entries = |t: &[Trade], pre: bool| -> Vec<i64> {
        t.iter().map(|t| t.entry_time).filter(|&e| (e < swap_ts) == pre).collect()
    };
    assert_eq!(entries(&swapped.0, true), entries(&before.0, true));
    let new: Vec<i64> = entries(&swapped.0, false);
    let want: Vec<i64> = entries(&after.0, false);
    assert!(new.len() > entries(&before.0, false).len(), "the looser rule enters more often");
    assert_eq!(new[new.len() - 5..], want[want.len() - 5..], "the new rule decides");
}

#[test]
fn a_swap_needing_bars_the_run_lacks_is_refused_and_changes_nothing() {
    let s = goog();
    let plain = run(both(), &s, &[]);
    let elsewhere = shipped("macd_trend", &[("universe: [GOOG]", "universe: [GOOG, MSFT]")]);
    let bad = bundle(&[&shipped("rsi_reversion", &[]), &elsewhere], &[]);
    let mut engine = Engine::new(both(), &["GOOG".to_string()], settings());
    drive(&mut engine, &s, 0, 300);
    let err = engine.swap_bundle(bad, &|_| (0..300).map(|j| s.bar(j)).collect()).unwrap_err();
    assert!(err.contains("MSFT") && err.contains("restart"), "{err}");
    drive(&mut engine, &s, 300, s.len());
    assert_eq!(engine.trades(), &plain.0[..]);
}
