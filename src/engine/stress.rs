//! Stress shocks applied to bar series (seed 001's black swans), for `dsl stress`.
//!
//! Every shock starts at the first bar at or after `at` (UTC seconds):
//!
//! - [`Shock::Crash`]: an instant fall within one bar. That bar opens where the previous bar
//!   closed and trades down to the shocked level; it and every later bar are scaled by
//!   `1 - drop`, so stops inside the bar fill at their price.
//! - [`Shock::GapDown`]: the market opens `drop` lower: that bar and every later one are scaled
//!   by `1 - drop`, open included, so stops fill at the gapped open.
//! - [`Shock::Volatility`]: from `at` to `until` (the end when unset), every close-to-close log
//!   return is multiplied by `factor`, and each bar's open, high and low keep their position
//!   relative to its close, raised to the same power (a bar's range grows with it). Later bars
//!   keep their own returns from the new level.
//! - [`Shock::MissingBars`]: `n` bars are removed (a data outage).
//! - [`Shock::BrokerOutage`]: no change to the bars; the driver refuses every order created in
//!   the `n` bars from `at` ([`outage_window`]).

use super::market::BarSeries;

pub use crate::config::stress::ShockSpec as Shock;

/// Index of the first bar at or after `at`, if any.
fn start(s: &BarSeries, at: i64) -> Option<usize> {
    let i = s.ts.partition_point(|t| *t < at);
    (i < s.len()).then_some(i)
}

/// Applies a price or data shock to `s` (a broker outage changes nothing here).
pub fn apply(s: &mut BarSeries, shock: Shock, at: i64, until: Option<i64>) {
    let Some(i0) = start(s, at) else { return };
    match shock {
        Shock::Crash(drop) | Shock::GapDown(drop) => {
            let k = 1.0 - drop;
            let before = if i0 > 0 { s.close[i0 - 1] } else { s.open[i0] };
            for i in i0..s.len() {
                s.open[i] *= k;
                s.high[i] *= k;
                s.low[i] *= k;
                s.close[i] *= k;
            }
            if matches!(shock, Shock::Crash(_)) {
                s.open[i0] = before;
                s.high[i0] = s.high[i0].max(before);
            }
        }
        Shock::Volatility(factor) => {
            let end = until.map_or(s.len(), |u| s.ts.partition_point(|t| *t <= u));
            let mut prev_old = if i0 > 0 { s.close[i0 - 1] } else { s.open[i0] };
            let mut prev_new = prev_old;
            for i in i0..s.len() {
                let c = s.close[i];
                let r = if i < end { (c / prev_old).powf(factor) } else { c / prev_old };
                let new_c = prev_new * r;
                let p = if i < end { factor } else { 1.0 };
                let rel = |x: f64| new_c * (x / c).powf(p);
                let (o, h, l) = (rel(s.open[i]), rel(s.high[i]), rel(s.low[i]));
                s.open[i] = o;
                s.high[i] = h.max(o).max(new_c);
                s.low[i] = l.min(o).min(new_c);
                s.close[i] = new_c;
                prev_old = c;
                prev_new = new_c;
            }
        }
        Shock::MissingBars(n) => {
            let end = (i0 + n as usize).min(s.len());
            for col in [&mut s.open, &mut s.high, &mut s.low, &mut s.close, &mut s.volume] {
                col.drain(i0..end);
            }
            s.ts.drain(i0..end);
        }
        Shock::BrokerOutage(_) => {}
    }
}

/// The times `[from, to)` in which orders fail: from the first bar at or after `at` of `s`,
/// for `bars` bars.
pub fn outage_window(s: &BarSeries, at: i64, bars: u32) -> Option<(i64, i64)> {
    let i0 = start(s, at)?;
    let end = i0 + bars as usize;
    Some((s.ts[i0], s.ts.get(end).copied().unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(close: &[f64]) -> BarSeries {
        let n = close.len();
        BarSeries {
            symbol: "X".into(),
            timeframe: None,
            ts: (0..n as i64).map(|i| i * 86_400).collect(),
            open: close.to_vec(),
            high: close.iter().map(|c| c * 1.01).collect(),
            low: close.iter().map(|c| c * 0.99).collect(),
            close: close.to_vec(),
            volume: vec![1.0; n],
            quotes: None,
        }
    }

    #[test]
    fn crash_and_gap() {
        let mut s = series(&[100.0, 100.0, 100.0]);
        apply(&mut s, Shock::Crash(0.5), 86_400, None);
        assert_eq!((s.open[1], s.close[1], s.close[2]), (100.0, 50.0, 50.0));
        assert!((s.low[1] - 49.5).abs() < 1e-12);
        let mut g = series(&[100.0, 100.0]);
        apply(&mut g, Shock::GapDown(0.1), 86_400, None);
        assert_eq!((g.open[1], g.close[1]), (90.0, 90.0));
    }

    #[test]
    fn volatility_triples_log_returns_in_the_window() {
        let mut s = series(&[100.0, 110.0, 99.0, 99.0]);
        apply(&mut s, Shock::Volatility(3.0), 86_400, Some(2 * 86_400));
        assert!((s.close[1] / s.close[0] - 1.1f64.powi(3)).abs() < 1e-12);
        assert!((s.close[2] / s.close[1] - 0.9f64.powi(3)).abs() < 1e-12);
        assert!((s.close[3] - s.close[2]).abs() < 1e-12, "after the window, the bar's own return");
        assert!(s.high[1] >= s.close[1] && s.low[1] <= s.close[1]);
    }

    #[test]
    fn missing_bars_and_outage() {
        let mut s = series(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(outage_window(&s, 86_400, 2), Some((86_400, 3 * 86_400)));
        apply(&mut s, Shock::MissingBars(2), 86_400, None);
        assert_eq!(s.close, vec![1.0, 4.0, 5.0]);
        assert_eq!(s.ts, vec![0, 3 * 86_400, 4 * 86_400]);
    }
}
