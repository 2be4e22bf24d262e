//! Performance metrics of a run.
//!
//! Conventions (all ratios are fractions unless the name ends in `_pct`):
//!
//! - **Equity** is marked once per timestamp, after every symbol's bar of that time was
//!   processed: cash plus open positions at their last close.
//! - **max_drawdown** = max over t of `(peak[t] - equity[t]) / peak[t]`, with
//!   `peak[t] = max(starting cash, equity[0..=t])`.
//! - **total_return** = `final / starting - 1`; **cagr** = `(final / starting)^(1/years) - 1`
//!   with `years` = (last time - first time) / 365.25 days.
//! - **sharpe** = `mean(r) / stdev(r) * sqrt(P)` and **sortino** = `mean(r) / dd * sqrt(P)`,
//!   where `r` are the per-timestamp simple returns of equity (the first one against the
//!   starting cash), `stdev` is the sample standard deviation (n - 1), `dd` the downside
//!   deviation `sqrt(mean(min(r, 0)^2))` over all returns, `P` the observed number of
//!   timestamps per year (`returns / years`), and a risk-free rate of 0.
//! - **win_rate** = trades with pnl > 0 / trades; **profit_factor** = gross profit / gross
//!   loss; **avg_pnl_pct** = mean of each trade's `pnl / entry cost * 100` (percent points);
//!   **avg_win** / **avg_loss** are mean pnl of winners / losers (currency). A position still
//!   open at the end is marked at the last close and is not a trade.
//! - **exposure_time** = timestamps with an open position at the mark / all timestamps.
//!
//! Undefined values (no trades, no losses, zero variance, zero duration) are `None`.

use serde::Serialize;

use super::curve::EquityTracker;
use super::orders::Trade;

/// Seconds in a mean Gregorian year.
pub const YEAR_SECONDS: f64 = 365.25 * 86_400.0;

/// The metrics of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Cash at the start (currency).
    pub starting_cash: f64,
    /// Equity at the last mark (currency).
    pub final_equity: f64,
    /// `final_equity / starting_cash - 1` (fraction).
    pub total_return: f64,
    /// Compound annual growth rate (fraction per year).
    pub cagr: Option<f64>,
    /// Largest peak-to-trough fall of equity (fraction of the peak).
    pub max_drawdown: f64,
    /// Annualised Sharpe ratio (risk-free rate 0).
    pub sharpe: Option<f64>,
    /// Annualised Sortino ratio (target 0).
    pub sortino: Option<f64>,
    /// Winning trades / trades (fraction).
    pub win_rate: Option<f64>,
    /// Gross profit / gross loss.
    pub profit_factor: Option<f64>,
    /// Mean trade return on entry cost (percent points).
    pub avg_pnl_pct: Option<f64>,
    /// Mean pnl of winning trades (currency).
    pub avg_win: Option<f64>,
    /// Mean pnl of losing trades (currency, negative).
    pub avg_loss: Option<f64>,
    /// `avg_win / |avg_loss|`.
    pub win_loss_ratio: Option<f64>,
    /// Share of timestamps with an open position (fraction).
    pub exposure_time: f64,
    /// Closed round trips.
    pub trade_count: usize,
    /// Whether a position is still open at the end.
    pub open_at_end: bool,
    /// Timestamps marked.
    pub bars: usize,
    /// Duration in years.
    pub years: f64,
    /// Observed timestamps per year (the annualisation factor's square).
    pub periods_per_year: Option<f64>,
}

/// Computes the metrics from the tracked equity and the closed trades.
pub fn compute(eq: &EquityTracker, trades: &[Trade], open_at_end: bool) -> Metrics {
    let starting_cash = eq.starting_cash();
    let final_equity = eq.last;
    let total_return = final_equity / starting_cash - 1.0;
    let years = match (eq.first_ts, eq.last_ts) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / YEAR_SECONDS,
        _ => 0.0,
    };
    let cagr = (years > 0.0 && final_equity > 0.0).then(|| (final_equity / starting_cash).powf(1.0 / years) - 1.0);

    // Returns are small and centred near 0, so the sum-of-squares variance loses no precision
    // that matters.
    let count = eq.n_returns;
    let mean = if count > 0 { eq.sum / count as f64 } else { 0.0 };
    let m2 = (eq.sum2 - eq.sum * mean).max(0.0);
    let periods_per_year = (years > 0.0 && count > 0).then(|| count as f64 / years);
    let (sharpe, sortino) = match periods_per_year {
        Some(p) if count >= 2 => {
            let sd = (m2 / (count as f64 - 1.0)).sqrt();
            let down = (eq.down2 / count as f64).sqrt();
            ((sd > 0.0).then(|| mean / sd * p.sqrt()), (down > 0.0).then(|| mean / down * p.sqrt()))
        }
        _ => (None, None),
    };

    let n = trades.len();
    let wins: Vec<f64> = trades.iter().filter(|t| t.pnl > 0.0).map(|t| t.pnl).collect();
    let losses: Vec<f64> = trades.iter().filter(|t| t.pnl < 0.0).map(|t| t.pnl).collect();
    let gross_profit: f64 = wins.iter().sum();
    let gross_loss: f64 = -losses.iter().sum::<f64>();
    let mean_of = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let avg_win = mean_of(&wins);
    let avg_loss = mean_of(&losses);
    Metrics {
        starting_cash,
        final_equity,
        total_return,
        cagr,
        max_drawdown: eq.max_drawdown,
        sharpe,
        sortino,
        win_rate: (n > 0).then(|| wins.len() as f64 / n as f64),
        profit_factor: (gross_loss > 0.0).then(|| gross_profit / gross_loss),
        avg_pnl_pct: mean_of(&trades.iter().map(|t| t.pnl_pct).collect::<Vec<_>>()),
        avg_win,
        avg_loss,
        win_loss_ratio: match (avg_win, avg_loss) {
            (Some(w), Some(l)) if l != 0.0 => Some(w / l.abs()),
            _ => None,
        },
        exposure_time: if eq.count == 0 { 0.0 } else { eq.exposed as f64 / eq.count as f64 },
        trade_count: n,
        open_at_end,
        bars: eq.count,
        years,
        periods_per_year,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::orders::client_order_id;

    fn trade(pnl: f64) -> Trade {
        Trade {
            strategy: "s".into(),
            symbol: "X".into(),
            entry_time: 0,
            entry_price: 1.0,
            exit_time: 1,
            exit_price: 1.0,
            quantity: 1.0,
            pnl,
            pnl_pct: pnl,
            fees: 0.0,
            exit_reason: "exit_rule",
            holding_bars: 1,
            entry_order_id: client_order_id("b", "s", "X", 0, 0),
            exit_order_id: client_order_id("b", "s", "X", 1, 0),
        }
    }

    fn tracked(cash: f64, times: &[i64], equity: &[f64], exposed: usize) -> EquityTracker {
        let mut t = EquityTracker::new(cash);
        for (i, (ts, e)) in times.iter().zip(equity).enumerate() {
            t.push(*ts, *e, i < exposed);
        }
        t
    }

    #[test]
    fn drawdown_counts_from_starting_cash() {
        let m = compute(&tracked(100.0, &[0, 86_400, 172_800], &[90.0, 120.0, 60.0], 3), &[], true);
        assert_eq!(m.max_drawdown, 0.5);
        assert!((m.total_return + 0.4).abs() < 1e-12);
        assert_eq!(m.exposure_time, 1.0);
        assert!(m.win_rate.is_none());
    }

    #[test]
    fn trade_statistics() {
        let t = [trade(10.0), trade(-5.0), trade(20.0), trade(-5.0)];
        let m = compute(&tracked(100.0, &[0, 1], &[100.0, 120.0], 0), &t, false);
        assert_eq!(m.win_rate, Some(0.5));
        assert_eq!(m.profit_factor, Some(3.0));
        assert_eq!(m.avg_win, Some(15.0));
        assert_eq!(m.avg_loss, Some(-5.0));
        assert_eq!(m.win_loss_ratio, Some(3.0));
    }

    #[test]
    fn sharpe_uses_sample_deviation() {
        let eq = [101.0, 100.0, 102.0, 101.0];
        let times: Vec<i64> = (0..4).map(|i| i * 86_400).collect();
        let m = compute(&tracked(100.0, &times, &eq, 0), &[], false);
        let r = [0.01, 100.0 / 101.0 - 1.0, 0.02, 101.0 / 102.0 - 1.0];
        let mean = r.iter().sum::<f64>() / 4.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        let p = 4.0 / (3.0 * 86_400.0 / YEAR_SECONDS);
        assert!((m.sharpe.unwrap() - mean / sd * p.sqrt()).abs() < 1e-9);
    }
}
