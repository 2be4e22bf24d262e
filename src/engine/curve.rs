//! Following equity over a run without storing every mark.
//!
//! [`EquityTracker`] is fed once per timestamp. It keeps exactly what the metrics need
//! (peak and maximum drawdown, sums of simple returns, exposure count, first and last time), a
//! bounded chart curve (per bucket of marks, the first, lowest, highest and last point, so peaks
//! and troughs survive any amount of downsampling) and the closing equity of each UTC day. A
//! million-bar run therefore needs kilobytes, not megabytes.

use serde::Serialize;

/// Seconds per day.
const DAY: i64 = 86_400;

/// Points the chart curve keeps at most (about).
pub const CURVE_POINTS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    first: (i64, f64),
    min: (i64, f64),
    max: (i64, f64),
    last: (i64, f64),
    count: usize,
}

impl Bucket {
    fn new(p: (i64, f64)) -> Self {
        Bucket { first: p, min: p, max: p, last: p, count: 1 }
    }

    fn add(&mut self, p: (i64, f64)) {
        if p.1 < self.min.1 {
            self.min = p;
        }
        if p.1 > self.max.1 {
            self.max = p;
        }
        self.last = p;
        self.count += 1;
    }

    fn merge(a: Bucket, b: Bucket) -> Bucket {
        Bucket {
            first: a.first,
            min: if b.min.1 < a.min.1 { b.min } else { a.min },
            max: if b.max.1 > a.max.1 { b.max } else { a.max },
            last: b.last,
            count: a.count + b.count,
        }
    }
}

/// Streaming statistics of an equity series (one point per timestamp).
#[derive(Debug, Clone)]
pub struct EquityTracker {
    starting_cash: f64,
    /// Marks so far.
    pub count: usize,
    /// Marks with a position open.
    pub exposed: usize,
    /// First mark time.
    pub first_ts: Option<i64>,
    /// Last mark time.
    pub last_ts: Option<i64>,
    /// Last equity.
    pub last: f64,
    /// Highest equity so far (starting cash included).
    pub peak: f64,
    /// Largest `(peak - equity) / peak` so far.
    pub max_drawdown: f64,
    /// Number of simple returns summed.
    pub n_returns: usize,
    /// Sum of simple returns.
    pub sum: f64,
    /// Sum of squared simple returns.
    pub sum2: f64,
    /// Sum of squared negative returns.
    pub down2: f64,
    buckets: Vec<Bucket>,
    bucket_size: usize,
    daily: Vec<(i64, f64)>,
    /// Start of the UTC day after the last mark's day.
    next_day: i64,
}

/// The series kept for reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Curves {
    /// Up to about [`CURVE_POINTS`] `(time, equity)` points in time order, extremes kept.
    pub chart: Vec<(i64, f64)>,
    /// `(time of the day's last mark, equity)` for each UTC day with a mark.
    pub daily: Vec<(i64, f64)>,
}

impl EquityTracker {
    /// A tracker for a run starting with `starting_cash`.
    pub fn new(starting_cash: f64) -> Self {
        EquityTracker {
            starting_cash,
            count: 0,
            exposed: 0,
            first_ts: None,
            last_ts: None,
            last: starting_cash,
            peak: starting_cash,
            max_drawdown: 0.0,
            n_returns: 0,
            sum: 0.0,
            sum2: 0.0,
            down2: 0.0,
            buckets: Vec::with_capacity(CURVE_POINTS / 2 + 2),
            bucket_size: 1,
            daily: Vec::new(),
            next_day: i64::MIN,
        }
    }

    /// Starting cash.
    pub fn starting_cash(&self) -> f64 {
        self.starting_cash
    }

    /// Records the mark at `ts` (UTC seconds); `open` tells whether a position is open.
    #[inline]
    pub fn push(&mut self, ts: i64, equity: f64, open: bool) {
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
        }
        if equity == self.last && self.count > 0 {
            // Unchanged (typically: flat). The return is 0, the peak and drawdown stand.
            self.n_returns += (self.last != 0.0) as usize;
            self.count += 1;
            self.exposed += open as usize;
            self.last_ts = Some(ts);
            self.mark_day(ts, equity);
            self.push_curve((ts, equity));
            return;
        }
        if self.last != 0.0 {
            let r = equity / self.last - 1.0;
            self.n_returns += 1;
            self.sum += r;
            self.sum2 += r * r;
            let d = r.min(0.0);
            self.down2 += d * d;
        }
        if equity > self.peak {
            self.peak = equity;
        }
        let dd = (self.peak - equity) / self.peak;
        if dd > self.max_drawdown {
            self.max_drawdown = dd;
        }
        self.count += 1;
        self.exposed += open as usize;
        self.last = equity;
        self.mark_day(ts, equity);
        self.last_ts = Some(ts);
        self.push_curve((ts, equity));
    }

    #[inline]
    fn mark_day(&mut self, ts: i64, equity: f64) {
        match self.daily.last_mut() {
            Some(d) if ts < self.next_day => *d = (ts, equity),
            _ => {
                self.daily.push((ts, equity));
                self.next_day = (ts.div_euclid(DAY) + 1) * DAY;
            }
        }
    }

    #[inline]
    fn push_curve(&mut self, p: (i64, f64)) {
        match self.buckets.last_mut() {
            Some(b) if b.count < self.bucket_size => b.add(p),
            _ => {
                if self.buckets.len() * 2 >= CURVE_POINTS {
                    // Halve the resolution: merge neighbouring buckets.
                    let merged = self
                        .buckets
                        .chunks(2)
                        .map(|c| if c.len() == 2 { Bucket::merge(c[0], c[1]) } else { c[0] })
                        .collect();
                    self.buckets = merged;
                    self.bucket_size *= 2;
                    if let Some(b) = self.buckets.last_mut().filter(|b| b.count < self.bucket_size) {
                        b.add(p);
                        return;
                    }
                }
                self.buckets.push(Bucket::new(p));
            }
        }
    }

    /// The chart curve and the daily closes.
    pub fn curves(&self) -> Curves {
        let mut chart = Vec::with_capacity(self.buckets.len() * 4);
        for b in &self.buckets {
            let mut pts = [b.first, b.min, b.max, b.last];
            pts.sort_by_key(|p| p.0);
            for p in pts {
                if chart.last().is_none_or(|l: &(i64, f64)| l.0 != p.0) {
                    chart.push(p);
                }
            }
        }
        Curves { chart, daily: self.daily.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_extremes_and_bounds_the_curve() {
        let mut t = EquityTracker::new(100.0);
        for i in 0..1_000_000i64 {
            let e = if i == 654_321 { 10.0 } else { 100.0 + (i as f64 * 0.001).sin() };
            t.push(i * 60, e, i % 2 == 0);
        }
        let c = t.curves();
        assert!(c.chart.len() <= CURVE_POINTS * 2 + 4, "{}", c.chart.len());
        assert!(c.chart.iter().any(|p| p.1 == 10.0));
        assert!(c.chart.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(t.count, 1_000_000);
        assert_eq!(t.exposed, 500_000);
        assert!((t.max_drawdown - (1.0 - 10.0 / t.peak)).abs() < 1e-12);
        assert_eq!(c.daily.len(), (999_999 * 60) / 86_400 + 1);
        assert_eq!(c.daily[0].0, 86_340);
    }
}
