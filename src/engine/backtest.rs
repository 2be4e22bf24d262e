//! The backtest driver: replays stored bars of several symbols in time order through the
//! [`Engine`] on the one [`event_loop`] every driver runs, marking the account after each
//! timestamp.
//!
//! Bars of different symbols with the same timestamp are processed in symbol order before the
//! mark; after the mark, the account-level guardrails run ([`Engine::check_account`]). All
//! symbols share one cash account. Orders still working after the last bar are cancelled;
//! open positions stay open and are marked at their last close.
//!
//! **Warm-up.** With a first trading time (`--from`), the bars before it only warm the
//! indicators up ([`Engine::warm_up`]): no rule runs, nothing is marked. The first traded bar
//! then sees the same indicator values as in a run over the whole history, so an
//! out-of-sample window is not biased by indicators that are still warming up.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;

use super::curve::{Curves, EquityTracker};
use super::event_loop::{self, BarPath, Driver, SeriesFeed};
use super::events::EventSink;
use super::market::BarSeries;
use super::metrics::{Metrics, compute};
use super::orders::Trade;
use super::pipeline::{Engine, EngineSettings, OpenPosition, RunStats};
use crate::dsl::bundle::Bundle;

/// Everything a backtest produces.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestOutput {
    /// First mark time (UTC seconds).
    pub first_ts: Option<i64>,
    /// Last mark time (UTC seconds).
    pub last_ts: Option<i64>,
    /// Equity for charts (extremes kept) and at each UTC day's close.
    pub curves: Curves,
    /// Closed round trips, in closing order.
    pub trades: Vec<Trade>,
    /// Positions open after the last bar.
    pub open_positions: Vec<OpenPosition>,
    /// Summary metrics.
    pub metrics: Metrics,
    /// Order and denial counts.
    pub stats: RunStats,
}

/// The backtest's driver: stored bars as fast as they can be read, nothing around each
/// timestamp; bars before `trade_from` (UTC seconds) only warm up.
struct Replay<'s> {
    sink: &'s mut dyn EventSink,
    trade_from: i64,
}

impl Driver for Replay<'_> {
    type Error = Infallible;

    fn sink(&mut self) -> &mut dyn EventSink {
        self.sink
    }

    fn warming(&self, ts: i64) -> bool {
        ts < self.trade_from
    }
}

/// Runs `bundle` over `series` (one per symbol; symbols are matched by name, and every symbol
/// a strategy trades must be present) and reports events to `sink`.
pub fn run(
    bundle: Arc<Bundle>,
    series: &[BarSeries],
    settings: EngineSettings,
    sink: &mut dyn EventSink,
) -> BacktestOutput {
    run_from(bundle, series, settings, None, sink)
}

/// [`run`], trading from `trade_from` (UTC seconds) on: earlier bars only warm up.
pub fn run_from(
    bundle: Arc<Bundle>,
    series: &[BarSeries],
    settings: EngineSettings,
    trade_from: Option<i64>,
    sink: &mut dyn EventSink,
) -> BacktestOutput {
    let symbols: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
    let engine = Engine::new(bundle, &symbols, settings);
    run_engine_from(engine, series, trade_from, sink)
}

/// Runs a prepared engine (made for `series`' symbols, in that order) over `series`.
pub fn run_engine(engine: Engine, series: &[BarSeries], sink: &mut dyn EventSink) -> BacktestOutput {
    run_engine_from(engine, series, None, sink)
}

/// [`run_engine`], trading from `trade_from` (UTC seconds) on: earlier bars only warm up.
pub fn run_engine_from(
    mut engine: Engine,
    series: &[BarSeries],
    trade_from: Option<i64>,
    sink: &mut dyn EventSink,
) -> BacktestOutput {
    let mut eq = EquityTracker::new(engine.starting_cash());
    let mut feed = SeriesFeed::new(series, BarPath::Blocks);
    let mut driver = Replay { sink, trade_from: trade_from.unwrap_or(i64::MIN) };
    match event_loop::run_ready(event_loop::run(&mut engine, &mut feed, &mut eq, &mut driver)) {
        Ok(_) => {}
        Err(never) => match never {},
    }
    let sink = driver.sink;
    engine.finish(eq.last_ts.unwrap_or(0), sink);
    let open_positions = engine.open_positions();
    let trades = engine.take_trades();
    let metrics = compute(&eq, &trades, !open_positions.is_empty());
    BacktestOutput {
        first_ts: eq.first_ts,
        last_ts: eq.last_ts,
        curves: eq.curves(),
        trades,
        open_positions,
        metrics,
        stats: engine.stats().clone(),
    }
}
