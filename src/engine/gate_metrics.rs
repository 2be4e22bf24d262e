//! The metrics phase gates read (`metric.*` fields), computed from records of closed trades,
//! an equity curve and counts taken from the journal. Pure: the runtime reads the journal
//! ([`crate::runtime::phases::gates`]) and hands the records over.
//!
//! Definitions (fractions, not percent; currency in the account currency):
//! - `trades`, `win_rate` (pnl > 0), `profit_factor` (gross profit / gross loss), `avg_pnl`
//!   (mean of each trade's pnl / entry notional), `net_pnl`, `max_loss` (the deepest single
//!   trade return, as a positive number), `risk_reward` (mean win / mean loss, in currency).
//! - Equity: the daily closes of a paper or live run when there are some, else the
//!   closed-trade curve (starting equity plus the cumulative pnl at each exit). From it:
//!   `max_drawdown` (peak-to-trough), `total_return`, `monthly_return` (mean of calendar-month
//!   returns, UTC, each month against the previous month's last value), `months`,
//!   `months_positive`.
//! - `t_stat` and `p_value`: Student's one-sample t-test of the per-trade returns against a
//!   mean of zero, one-sided (H1: mean > 0), n - 1 degrees of freedom (statrs' Student t).
//! - `luck`: the trade pnls are reshuffled 1,000 times (ChaCha8, seed 42: the same answer on
//!   every machine); the share of orders whose closed-trade curve has a deeper max drawdown
//!   than the actual order. Near 1 the actual path was unusually kind (LEAN's "lucky?").
//! - `trades_per_param`: trades / declared params of the strategies (LEAN's overfitting
//!   warning); undefined without params.
//!
//! A metric with too little data is undefined (NaN), and a rule reading it does not pass.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::dsl::catalog::{FIELD_COUNT, FieldId};

/// One closed trade (its strategy is chosen before the metrics are computed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeRecord {
    /// Exit time, UTC seconds.
    pub exit_ts: i64,
    /// Pnl, fees included (currency).
    pub pnl: f64,
    /// Pnl / entry notional (fraction).
    pub ret: f64,
}

/// Everything the metrics are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricInputs {
    /// Closed trades in the window, oldest exit first.
    pub trades: Vec<TradeRecord>,
    /// Daily equity closes `(UTC seconds, equity)` in the window, oldest first (may be empty).
    pub equity: Vec<(i64, f64)>,
    /// Equity before the first trade of the window (currency), for the closed-trade curve.
    pub start_equity: f64,
    /// Guardrail rules fired with `deny`, `reduce`, `halt`.
    pub denials: u64,
    /// Fired with `reduce`.
    pub reductions: u64,
    /// Fired with `halt`.
    pub halt_rules: u64,
    /// Changes of the trading state to HALTED.
    pub halts: u64,
    /// Slippage of filled market orders (bps, + = paid).
    pub slippage_bps: Vec<f64>,
    /// Declared params of the strategies concerned.
    pub params: usize,
    /// Max drawdown of the latest stress run of each scenario (fractions).
    pub stress_drawdowns: Vec<f64>,
    /// Years of bars of the latest backtest run.
    pub backtest_years: Option<f64>,
    /// The run's own max drawdown (backtests record it) when there is no daily equity and the
    /// trades are not filtered.
    pub run_max_drawdown: Option<f64>,
    /// Compute `luck` (1,000 reshuffles: skipped when no rule reads it).
    pub want_luck: bool,
    /// Skip the monthly returns (`metric.months`, `metric.months_positive`,
    /// `metric.monthly_return` stay NaN): a running bot's daily check of rules that read none
    /// of them.
    pub skip_months: bool,
    /// Skip the t-test (`metric.t_stat`, `metric.p_value` stay NaN): rules that read neither.
    pub skip_t_test: bool,
    /// The latest completed sweep of the bot, if any: trials, PBO (fraction) and the best
    /// trial's deflated Sharpe ratio (`None`: undefined).
    pub sweep: Option<SweepEvidence>,
    /// The latest completed walk-forward's efficiency (out-of-sample over in-sample
    /// annualised return), if any.
    pub wfe: Option<f64>,
    /// The runs' divergence from their backtests: (mean |fill price difference| in bps,
    /// orders placed on one side only); `None` when a run was never checked.
    pub divergence: Option<(f64, f64)>,
}

/// What a sweep's record says about the search ([`crate::engine::overfitting`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SweepEvidence {
    /// Trials run.
    pub trials: f64,
    /// Probability of backtest overfitting (fraction).
    pub pbo: Option<f64>,
    /// The best trial's deflated Sharpe ratio (a probability).
    pub deflated_sharpe: Option<f64>,
}

/// Reshuffles of the `luck` test.
pub const LUCK_SHUFFLES: usize = 1_000;

/// Computes every `metric.*` field into an array indexed by [`FieldId`] (other fields NaN).
pub fn compute(m: &MetricInputs) -> Vec<f64> {
    let mut f = vec![f64::NAN; FIELD_COUNT];
    let mut set = |id: FieldId, v: f64| f[id as usize] = v;
    let n = m.trades.len();
    set(FieldId::MetricTrades, n as f64);
    // One pass, summing in trade order (the same sums as summing each side's list).
    let (mut wins, mut losses, mut gross_win, mut gross_loss) = (0usize, 0usize, 0.0, 0.0);
    for t in &m.trades {
        if t.pnl > 0.0 {
            wins += 1;
            gross_win += t.pnl;
        } else if t.pnl < 0.0 {
            losses += 1;
            gross_loss += -t.pnl;
        }
    }
    if n > 0 {
        set(FieldId::MetricWinRate, wins as f64 / n as f64);
        set(FieldId::MetricAvgPnl, m.trades.iter().map(|t| t.ret).sum::<f64>() / n as f64);
        set(FieldId::MetricMaxLoss, m.trades.iter().map(|t| -t.ret).fold(0.0, f64::max));
    }
    set(FieldId::MetricNetPnl, m.trades.iter().map(|t| t.pnl).sum());
    if gross_loss > 0.0 {
        set(FieldId::MetricProfitFactor, gross_win / gross_loss);
    }
    if wins > 0 && losses > 0 {
        set(FieldId::MetricRiskReward, (gross_win / wins as f64) / (gross_loss / losses as f64));
    }
    // Equity: daily marks, else the closed-trade curve.
    let curve: std::borrow::Cow<'_, [(i64, f64)]> =
        if m.equity.is_empty() { trade_curve(m).into() } else { m.equity.as_slice().into() };
    let start = if m.equity.is_empty() { m.start_equity } else { m.equity[0].1 };
    if curve.len() > 1 || (!curve.is_empty() && m.equity.is_empty()) {
        let dd = m
            .run_max_drawdown
            .filter(|_| m.equity.is_empty())
            .unwrap_or_else(|| max_drawdown_of(start, curve.iter().map(|p| p.1)));
        set(FieldId::MetricMaxDrawdown, dd);
        if let Some(last) = curve.last() {
            set(FieldId::MetricTotalReturn, last.1 / start - 1.0);
        }
        if !m.skip_months {
            let months = monthly_returns(start, &curve);
            set(FieldId::MetricMonths, months.len() as f64);
            set(FieldId::MetricMonthsPositive, months.iter().filter(|r| **r > 0.0).count() as f64);
            if !months.is_empty() {
                set(FieldId::MetricMonthlyReturn, months.iter().sum::<f64>() / months.len() as f64);
            }
        }
    } else if let Some(dd) = m.run_max_drawdown {
        set(FieldId::MetricMaxDrawdown, dd);
    }
    set(FieldId::MetricRiskBreaches, (m.denials + m.reductions + m.halt_rules) as f64);
    set(FieldId::MetricDenials, m.denials as f64);
    set(FieldId::MetricHalts, m.halts as f64);
    set(FieldId::MetricReductions, m.reductions as f64);
    if let Some((bps, missing)) = m.divergence {
        set(FieldId::MetricDivergenceBps, bps);
        set(FieldId::MetricMissingOrders, missing);
    }
    if !m.slippage_bps.is_empty() {
        set(FieldId::MetricAvgSlippageBps, m.slippage_bps.iter().sum::<f64>() / m.slippage_bps.len() as f64);
    }
    if !m.skip_t_test
        && let Some((t, p)) = t_test(&m.trades.iter().map(|t| t.ret).collect::<Vec<_>>())
    {
        set(FieldId::MetricTStat, t);
        set(FieldId::MetricPValue, p);
    }
    if n >= 2 && m.want_luck {
        set(FieldId::MetricLuck, luck(m.start_equity, &m.trades.iter().map(|t| t.pnl).collect::<Vec<_>>()));
    }
    if m.params > 0 {
        set(FieldId::MetricTradesPerParam, n as f64 / m.params as f64);
    }
    set(FieldId::MetricStressScenarios, m.stress_drawdowns.len() as f64);
    if !m.stress_drawdowns.is_empty() {
        set(FieldId::MetricStressMaxDrawdown, m.stress_drawdowns.iter().copied().fold(0.0, f64::max));
    }
    if let Some(y) = m.backtest_years {
        set(FieldId::MetricBacktestYears, y);
    }
    let sweep = m.sweep.unwrap_or_default();
    set(FieldId::MetricTrials, sweep.trials);
    set(FieldId::MetricPbo, sweep.pbo.unwrap_or(f64::NAN));
    set(FieldId::MetricDeflatedSharpe, sweep.deflated_sharpe.unwrap_or(f64::NAN));
    set(FieldId::MetricWfe, m.wfe.unwrap_or(f64::NAN));
    f
}

/// Starting equity plus the cumulative pnl at each exit.
fn trade_curve(m: &MetricInputs) -> Vec<(i64, f64)> {
    let mut eq = m.start_equity;
    m.trades
        .iter()
        .map(|t| {
            eq += t.pnl;
            (t.exit_ts, eq)
        })
        .collect()
}

/// Deepest peak-to-trough decline of `values`, starting from `start` (fraction).
pub fn max_drawdown(start: f64, values: &[f64]) -> f64 {
    max_drawdown_of(start, values.iter().copied())
}

/// [`max_drawdown`] of values given one by one.
fn max_drawdown_of(start: f64, values: impl IntoIterator<Item = f64>) -> f64 {
    let mut peak = start;
    let mut dd: f64 = 0.0;
    for v in values {
        peak = peak.max(v);
        if peak > 0.0 {
            dd = dd.max((peak - v) / peak);
        }
    }
    dd
}

/// Calendar-month (UTC) returns of a curve: each month's last value against the previous
/// month's last value (`start` for the first month).
pub fn monthly_returns(start: f64, curve: &[(i64, f64)]) -> Vec<f64> {
    use chrono::Datelike;
    let month = |ts: i64| chrono::DateTime::from_timestamp(ts, 0).map_or(0, |d| d.year() * 12 + d.month0() as i32);
    let mut out = Vec::new();
    let mut prev = start;
    let mut i = 0;
    while i < curve.len() {
        let m = month(curve[i].0);
        let mut last = curve[i].1;
        while i < curve.len() && month(curve[i].0) == m {
            last = curve[i].1;
            i += 1;
        }
        if prev != 0.0 {
            out.push(last / prev - 1.0);
        }
        prev = last;
    }
    out
}

/// One-sample t-test of `xs` against zero: (t, one-sided p-value for mean > 0). `None` with
/// fewer than two values or no spread.
pub fn t_test(xs: &[f64]) -> Option<(f64, f64)> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    if var <= 0.0 || !var.is_finite() {
        return None;
    }
    let t = mean / (var.sqrt() / (n as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    Some((t, 1.0 - dist.cdf(t)))
}

/// Share of [`LUCK_SHUFFLES`] reshuffles of `pnls` whose closed-trade curve (from `start`)
/// has a deeper max drawdown than the actual order.
pub fn luck(start: f64, pnls: &[f64]) -> f64 {
    let curve = |ps: &[f64]| {
        let mut eq = start;
        ps.iter()
            .map(|p| {
                eq += p;
                eq
            })
            .collect::<Vec<f64>>()
    };
    let actual = max_drawdown(start, &curve(pnls));
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut shuffled = pnls.to_vec();
    let mut deeper = 0;
    for _ in 0..LUCK_SHUFFLES {
        // Fisher-Yates.
        for i in (1..shuffled.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        if max_drawdown(start, &curve(&shuffled)) > actual + 1e-12 {
            deeper += 1;
        }
    }
    deeper as f64 / LUCK_SHUFFLES as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(exit_ts: i64, pnl: f64) -> TradeRecord {
        TradeRecord { exit_ts, pnl, ret: pnl / 1000.0 }
    }

    #[test]
    fn trade_statistics() {
        let m = MetricInputs {
            trades: vec![t(0, 100.0), t(1, -50.0), t(2, 200.0), t(3, -50.0)],
            start_equity: 10_000.0,
            ..Default::default()
        };
        let f = compute(&m);
        assert_eq!(f[FieldId::MetricTrades as usize], 4.0);
        assert_eq!(f[FieldId::MetricWinRate as usize], 0.5);
        assert_eq!(f[FieldId::MetricProfitFactor as usize], 3.0);
        assert_eq!(f[FieldId::MetricRiskReward as usize], 3.0);
        assert_eq!(f[FieldId::MetricNetPnl as usize], 200.0);
        assert!((f[FieldId::MetricMaxLoss as usize] - 0.05).abs() < 1e-12);
        assert!((f[FieldId::MetricAvgPnl as usize] - 0.05).abs() < 1e-12);
        // Closed-trade curve 10100, 10050, 10250, 10200: deepest fall 50 from 10100.
        assert!((f[FieldId::MetricMaxDrawdown as usize] - 50.0 / 10_100.0).abs() < 1e-12);
        assert!(f[FieldId::MetricTradesPerParam as usize].is_nan(), "no params declared");
    }

    #[test]
    fn monthly_returns_chain_calendar_months() {
        // 2024-01-15: 105, 2024-01-31: 110, 2024-02-10: 99, 2024-03-05: 108.9
        let curve = [(1_705_276_800, 105.0), (1_706_659_200, 110.0), (1_707_523_200, 99.0), (1_709_596_800, 108.9)];
        let r = monthly_returns(100.0, &curve);
        assert_eq!(r.len(), 3);
        assert!((r[0] - 0.10).abs() < 1e-12 && (r[1] + 0.10).abs() < 1e-12 && (r[2] - 0.10).abs() < 1e-12);
    }

    #[test]
    fn t_test_matches_a_worked_example() {
        // 1..5: mean 3, sample sd sqrt(2.5), t = 3 / (sqrt(2.5) / sqrt(5)) = 4.2426; with 4 df
        // the closed form 1/2 + sin(θ)(1 + cos²(θ)/2)/2, θ = atan(t/2), gives p = 0.0066178.
        let (t, p) = t_test(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((t - 4.242_640_687).abs() < 1e-8, "{t}");
        assert!((p - 0.006_617_799_78).abs() < 1e-8, "{p}");
        assert!(t_test(&[1.0]).is_none() && t_test(&[2.0, 2.0]).is_none());
    }

    #[test]
    fn luck_is_high_when_the_losses_came_spread_out() {
        // Alternating wins and losses: almost any other order clusters losses deeper.
        let alternating: Vec<f64> = (0..20).map(|i| if i % 2 == 0 { 100.0 } else { -90.0 }).collect();
        let l = luck(10_000.0, &alternating);
        assert!(l > 0.9, "{l}");
        // All losses first: no order is worse.
        let mut worst = vec![-90.0; 10];
        worst.extend(vec![100.0; 10]);
        assert_eq!(luck(10_000.0, &worst), 0.0);
        assert_eq!(luck(10_000.0, &alternating), l, "seeded: the same answer every time");
    }
}
