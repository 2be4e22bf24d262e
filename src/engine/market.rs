//! Market data: bars and per-symbol bar series.

use crate::config::timeframe::Timeframe;

/// One OHLCV bar. `ts` is the bar's open time in UTC seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Open time, UTC seconds.
    pub ts: i64,
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing price.
    pub close: f64,
    /// Traded volume (0 when unknown).
    pub volume: f64,
}

/// The bars of one symbol, sorted by time, stored column-wise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarSeries {
    /// Symbol, e.g. `GOOG`.
    pub symbol: String,
    /// Bar length, when known.
    pub timeframe: Option<Timeframe>,
    /// Open times, UTC seconds, strictly increasing.
    pub ts: Vec<i64>,
    /// Opening prices.
    pub open: Vec<f64>,
    /// Highest prices.
    pub high: Vec<f64>,
    /// Lowest prices.
    pub low: Vec<f64>,
    /// Closing prices.
    pub close: Vec<f64>,
    /// Volumes.
    pub volume: Vec<f64>,
    /// Quotes from the data, when it has bid and ask columns: `(time, bid, ask)` in time order
    /// (currency per unit), keyed by the bar time they belong to (so they stay right when bars
    /// are cut out). `None` without quote data.
    pub quotes: Option<std::sync::Arc<Vec<(i64, f64, f64)>>>,
}

impl BarSeries {
    /// An empty series for `symbol`.
    pub fn new(symbol: impl Into<String>) -> Self {
        BarSeries { symbol: symbol.into(), ..Default::default() }
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Appends a bar (the caller keeps times increasing).
    pub fn push(&mut self, b: Bar) {
        self.ts.push(b.ts);
        self.open.push(b.open);
        self.high.push(b.high);
        self.low.push(b.low);
        self.close.push(b.close);
        self.volume.push(b.volume);
    }

    /// The bar at index `i`.
    #[inline]
    pub fn bar(&self, i: usize) -> Bar {
        Bar {
            ts: self.ts[i],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
        }
    }

    /// Keeps only the bars with `from <= ts <= to` (either bound optional), in place.
    pub fn retain_period(&mut self, from: Option<i64>, to: Option<i64>) {
        let start = from.map_or(0, |f| self.ts.partition_point(|&t| t < f));
        let end = to.map_or(self.len(), |t| self.ts.partition_point(|&x| x <= t)).max(start);
        if start == 0 && end == self.len() {
            return;
        }
        for col in [&mut self.open, &mut self.high, &mut self.low, &mut self.close, &mut self.volume] {
            col.truncate(end);
            col.drain(..start);
        }
        self.ts.truncate(end);
        self.ts.drain(..start);
    }

    /// The data's bid and ask at bar time `ts`, if it has a quote there.
    #[inline]
    pub fn quote_at(&self, ts: i64) -> Option<(f64, f64)> {
        let q = self.quotes.as_ref()?;
        let i = q.binary_search_by_key(&ts, |x| x.0).ok()?;
        Some((q[i].1, q[i].2))
    }

    /// Median spacing between bars in seconds (`None` with fewer than 2 bars).
    pub fn median_spacing(&self) -> Option<i64> {
        if self.ts.len() < 2 {
            return None;
        }
        let mut d: Vec<i64> = self.ts.windows(2).map(|w| w[1] - w[0]).collect();
        let mid = d.len() / 2;
        Some(*d.select_nth_unstable(mid).1)
    }
}

/// Formats UTC seconds as RFC 3339 with a `Z` suffix, e.g. `2004-08-19T00:00:00Z`.
pub fn format_utc(ts: i64) -> String {
    use chrono::{Datelike, Timelike};
    match chrono::DateTime::from_timestamp(ts, 0) {
        Some(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        None => ts.to_string(),
    }
}
