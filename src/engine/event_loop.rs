//! The one event loop every driver runs: `dsl backtest`, `dsl stress`, the paper bot (replayed
//! bars or a live feed) and, through the backtest, every research window.
//!
//! A driver is the part that differs: where bars come from ([`SeriesFeed`], which merges the
//! symbols' bars by time), what happens around each timestamp ([`Driver`]: the clock and
//! pacing, a person's controls, reloads, the outside broker, the journal's checkpoints) and
//! where events go ([`Driver::sink`]). The loop itself is the same for all of them, so a
//! strategy trades identically in a backtest and in a paper run (a test runs one bot through
//! both and compares every order, fill, trade and the equity):
//!
//! 1. no bars left: the driver waits for more ([`Driver::idle`]: a live feed polls) or the
//!    run ends;
//! 2. bars before the trading start only warm the indicators up ([`Driver::warming`]);
//! 3. [`Driver::before`] the bars of a timestamp (controls, reloads, broker news);
//! 4. every bar of that timestamp goes to the engine, in symbol order;
//! 5. the account is valued ([`Engine::mark`]), its equity recorded, and the account-level
//!    guardrails checked ([`Engine::check_account`]); then what the schedule has due
//!    ([`Engine::run_schedule`]: a rebalance);
//! 6. [`Driver::after`] the timestamp (the journal's checkpoint, orders sent to a broker).
//!
//! The driver's hooks are `async` because a paper bot waits on its broker and its feed; a
//! backtest's never wait, and [`run_ready`] runs such a loop to its end without a runtime.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use super::curve::EquityTracker;
use super::events::EventSink;
use super::market::{Bar, BarSeries};
use super::pipeline::Engine;

/// How bars reach the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarPath {
    /// Stored series read ahead a block of bars at a time ([`Engine::on_series_bar`]): the
    /// fast path of backtests, whose series do not change while they run.
    Blocks,
    /// One bar at a time ([`Engine::on_bar`]): the path of a paper or live bot, whose series
    /// grow while it runs and whose bundle can be swapped between two bars.
    Streaming,
}

/// The symbols' bars, merged by time: each timestamp's bars in symbol order.
///
/// Holds the series borrowed (a backtest) or owned (a bot, whose live feed appends bars:
/// [`SeriesFeed::series_mut`], then [`SeriesFeed::requeue`]).
pub struct SeriesFeed<'a> {
    series: Cow<'a, [BarSeries]>,
    /// Next bar of each symbol.
    cursor: Vec<usize>,
    /// (time of the next bar, symbol), earliest first; unused with one symbol.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    path: BarPath,
}

impl<'a> SeriesFeed<'a> {
    /// A feed over `series` (one per engine symbol, in the engine's symbol order), starting at
    /// each series' first bar.
    pub fn new(series: impl Into<Cow<'a, [BarSeries]>>, path: BarPath) -> Self {
        let series = series.into();
        let mut feed = SeriesFeed { cursor: vec![0; series.len()], series, heap: BinaryHeap::new(), path };
        feed.requeue();
        feed
    }

    /// The series, with the bars fed so far and those still to come.
    pub fn series(&self) -> &[BarSeries] {
        &self.series
    }

    /// Bars fed so far, per symbol.
    pub fn cursor(&self) -> &[usize] {
        &self.cursor
    }

    /// The bars of symbol `i` fed so far (the history a swapped-in bundle warms up on).
    pub fn history(&self, i: usize) -> Vec<Bar> {
        (0..self.cursor[i]).map(|j| self.series[i].bar(j)).collect()
    }

    /// The series, to append newer bars to (a live feed). Call [`SeriesFeed::requeue`] after.
    pub fn series_mut(&mut self) -> &mut [BarSeries] {
        self.series.to_mut()
    }

    /// Queues every symbol's next bar again (after bars were appended).
    pub fn requeue(&mut self) {
        self.heap.clear();
        if self.series.len() > 1 {
            for (i, s) in self.series.iter().enumerate() {
                if let Some(&t) = s.ts.get(self.cursor[i]) {
                    self.heap.push(Reverse((t, i)));
                }
            }
        }
    }

    /// Time of the next bars (UTC seconds), or `None` when every series is fed.
    #[inline]
    pub fn next_time(&self) -> Option<i64> {
        if self.series.len() == 1 {
            return self.series[0].ts.get(self.cursor[0]).copied();
        }
        self.heap.peek().map(|r| r.0.0)
    }

    /// The next symbol with a bar at `ts`, taken off the queue.
    #[inline]
    fn take(&mut self, ts: i64) -> Option<usize> {
        if self.series.len() == 1 {
            return (self.series[0].ts.get(self.cursor[0]) == Some(&ts)).then_some(0);
        }
        match self.heap.peek() {
            Some(&Reverse((t, i))) if t == ts => {
                self.heap.pop();
                Some(i)
            }
            _ => None,
        }
    }

    /// Moves symbol `i` past its current bar.
    #[inline]
    fn advance(&mut self, i: usize) {
        self.cursor[i] += 1;
        if self.series.len() > 1
            && let Some(&t) = self.series[i].ts.get(self.cursor[i])
        {
            self.heap.push(Reverse((t, i)));
        }
    }

    /// Feeds every bar of `ts` to the engine as warm-up history (no rule runs).
    pub fn warm(&mut self, ts: i64, engine: &mut Engine) {
        while let Some(i) = self.take(ts) {
            engine.warm_up(i, &self.series[i].bar(self.cursor[i]));
            self.advance(i);
        }
    }

    /// Feeds every bar of `ts` to the engine.
    #[inline]
    pub fn trade(&mut self, ts: i64, engine: &mut Engine, sink: &mut dyn EventSink) {
        if self.series.len() == 1 {
            // Times are strictly increasing within a series: one bar at most.
            if self.series[0].ts.get(self.cursor[0]) == Some(&ts) {
                self.feed_bar(0, engine, sink);
                self.cursor[0] += 1;
            }
            return;
        }
        while let Some(i) = self.take(ts) {
            self.feed_bar(i, engine, sink);
            self.advance(i);
        }
    }

    /// Hands symbol `i`'s current bar to the engine on this feed's path.
    #[inline]
    fn feed_bar(&self, i: usize, engine: &mut Engine, sink: &mut dyn EventSink) {
        let s = &self.series[i];
        if s.quotes.is_some() {
            // Quote data (bid and ask columns): the bar's quote, or none where it has none.
            match s.quote_at(s.ts[self.cursor[i]]) {
                Some((bid, ask)) => engine.set_quote(i, bid, ask),
                None => engine.clear_quote(i),
            }
        }
        match self.path {
            BarPath::Blocks => engine.on_series_bar(i, &self.series[i], self.cursor[i], sink),
            BarPath::Streaming => engine.on_bar(i, &self.series[i].bar(self.cursor[i]), sink),
        }
    }
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on (after [`Driver::idle`]: more bars are queued).
    Go,
    /// End the run.
    End(Ended),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every bar was fed (a completed run).
    Drained,
    /// The driver stopped it (Ctrl-C, a stop request): a bot's run stays resumable.
    Stopped,
}

/// What differs between drivers: the clock, the feed's waiting, the broker, the journal.
///
/// Hooks get the engine and the feed; an `Err` ends the loop at once with that error.
#[allow(async_fn_in_trait, reason = "drivers are generic parameters run in place, never spawned as tasks")]
pub trait Driver {
    /// Why a driver stops the run (a journal that cannot be written).
    type Error;

    /// Where the engine's events go.
    fn sink(&mut self) -> &mut dyn EventSink;

    /// Bars at `ts` (UTC seconds) only warm the indicators up (before `--from`, a live feed's
    /// history).
    fn warming(&self, _ts: i64) -> bool {
        false
    }

    /// Every queued bar is fed: wait for more (queue them on `feed` and return
    /// [`Flow::Go`]) or end. The default ends the run as drained.
    async fn idle(&mut self, _engine: &mut Engine, _feed: &mut SeriesFeed<'_>) -> Result<Flow, Self::Error> {
        Ok(Flow::End(Ended::Drained))
    }

    /// Before the bars of `ts` (not called for warm-up bars).
    async fn before(&mut self, _ts: i64, _engine: &mut Engine, _feed: &SeriesFeed<'_>) -> Result<Flow, Self::Error> {
        Ok(Flow::Go)
    }

    /// After the bars of `ts`, the mark and the account checks.
    async fn after(&mut self, _ts: i64, _engine: &mut Engine, _feed: &SeriesFeed<'_>) -> Result<Flow, Self::Error> {
        Ok(Flow::Go)
    }
}

/// Runs `engine` over `feed` with `driver` until the feed is drained or the driver ends the
/// run; each traded timestamp's equity goes to `eq` (see the module doc for the order of
/// the steps).
///
/// # Errors
/// The first error a driver's hook returns.
pub async fn run<D: Driver>(
    engine: &mut Engine,
    feed: &mut SeriesFeed<'_>,
    eq: &mut EquityTracker,
    driver: &mut D,
) -> Result<Ended, D::Error> {
    loop {
        let Some(ts) = feed.next_time() else {
            match driver.idle(engine, feed).await? {
                Flow::Go => continue,
                Flow::End(e) => return Ok(e),
            }
        };
        if driver.warming(ts) {
            feed.warm(ts, engine);
            continue;
        }
        if let Flow::End(e) = driver.before(ts, engine, feed).await? {
            return Ok(e);
        }
        feed.trade(ts, engine, driver.sink());
        let (equity, open) = engine.mark();
        eq.push(ts, equity, open);
        engine.check_account(ts, driver.sink());
        engine.run_schedule(ts, driver.sink());
        if let Flow::End(e) = driver.after(ts, engine, feed).await? {
            return Ok(e);
        }
    }
}

/// Runs a future that never waits (a loop whose driver's hooks never wait: a backtest's) to
/// its end, without an async runtime.
///
/// # Panics
/// When the future waits: a driver that waits must be run on a runtime instead.
pub fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("run_ready: the driver waited; run it on an async runtime"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(symbol: &str, ts: &[i64]) -> BarSeries {
        let n = ts.len();
        BarSeries {
            symbol: symbol.into(),
            timeframe: None,
            ts: ts.to_vec(),
            open: vec![1.0; n],
            high: vec![1.0; n],
            low: vec![1.0; n],
            close: vec![1.0; n],
            volume: vec![0.0; n],
            quotes: None,
        }
    }

    #[test]
    fn the_feed_merges_symbols_by_time_and_takes_appended_bars() {
        let mut feed = SeriesFeed::new(vec![series("A", &[1, 3]), series("B", &[1, 2])], BarPath::Streaming);
        let mut seen = Vec::new();
        while let Some(ts) = feed.next_time() {
            while let Some(i) = feed.take(ts) {
                seen.push((ts, i));
                feed.advance(i);
            }
        }
        assert_eq!(seen, [(1, 0), (1, 1), (2, 1), (3, 0)]);
        feed.series_mut()[1] = series("B", &[1, 2, 5]);
        feed.requeue();
        assert_eq!(feed.next_time(), Some(5));
        assert_eq!(feed.cursor(), [2, 2]);
    }

    #[test]
    fn one_symbol_needs_no_queue() {
        let s = [series("A", &[10, 20])];
        let mut feed = SeriesFeed::new(&s[..], BarPath::Blocks);
        assert_eq!(feed.next_time(), Some(10));
        assert_eq!(feed.take(20), None);
        assert_eq!(feed.take(10), Some(0));
        feed.advance(0);
        assert_eq!(feed.next_time(), Some(20));
    }
}
