//! `dsl walkforward`'s typed plan and run: a sweep's trials ([`super::sweep`]) optimised on
//! each window's in-sample span, the winner traded on the out-of-sample span that follows
//! ([`crate::engine::walkforward`] for the windows, the stitching and the efficiency).
//!
//! In-sample, every trial trades from the window's start, warmed up on the bars before it, and
//! sees no bar at or after the in-sample end: the bars are cut there, so a later bar cannot
//! change a choice. Out-of-sample, the chosen trial trades from the in-sample end to the
//! window's end, warmed up on every bar before it but never optimised on them. The walk is
//! journaled as one run (`kind = 'walkforward'`) whose trades are the out-of-sample trades:
//! the evidence a gate can read.

use std::sync::atomic::AtomicBool;

use indexmap::IndexMap;
use serde::Serialize;

use super::sweep::{SweepIdentity, SweepPlan, TrialRow};
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::catalog::FieldId;
use crate::engine::events::EventSink;
use crate::engine::gate_metrics::{MetricInputs, TradeRecord, compute, max_drawdown};
use crate::engine::market::{BarSeries, format_utc};
use crate::engine::orders::Trade;
use crate::engine::overfitting::{returns_of, sharpe};
use crate::engine::sweep::rank_order;
use crate::engine::walkforward::{Span, Window, annualised, compound, efficiency, windows};
use crate::runtime::journal::{Journal, RunInfo};
use crate::runtime::library::source::MarketData;

/// The windows of a walk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowSpec {
    /// In-sample span.
    pub in_sample: Span,
    /// Out-of-sample span.
    pub out_of_sample: Span,
    /// How far the next window starts (default: the out-of-sample span).
    pub step: Option<Span>,
    /// Every in-sample span starts at the first bar.
    pub anchored: bool,
}

/// One window's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowResult {
    /// Its bounds (UTC seconds, half-open).
    pub window: Window,
    /// The same, as text.
    pub period: String,
    /// The trial chosen in-sample.
    pub chosen_trial: usize,
    /// Its params.
    pub params: IndexMap<String, serde_json::Value>,
    /// Its in-sample objective.
    pub in_sample_objective: Option<f64>,
    /// Its in-sample annualised return (fraction).
    pub in_sample_cagr: Option<f64>,
    /// Out-of-sample: total return, annualised return, Sharpe ratio, max drawdown, trades.
    pub out_of_sample: IndexMap<String, Option<f64>>,
    /// Out-of-sample annualised return over in-sample annualised return.
    pub wfe: Option<f64>,
}

/// How steady a param's chosen value was across windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stability {
    /// The chosen value of each window.
    pub values: Vec<serde_json::Value>,
    /// Distinct values chosen.
    pub distinct: usize,
    /// Coefficient of variation of numeric values (stdev / |mean|), when defined.
    pub cv: Option<f64>,
}

/// A walk's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalkForwardResult {
    /// The sweep run in each window.
    pub sweep: SweepIdentity,
    /// The windows.
    pub spec: WindowSpec,
    /// Each window.
    pub windows: Vec<WindowResult>,
    /// The stitched out-of-sample metrics (`metric.*`), `metric.wfe` included.
    pub metrics: IndexMap<String, Option<f64>>,
    /// The stitched out-of-sample equity at each day's close (UTC seconds, currency).
    pub equity: Vec<(i64, f64)>,
    /// Each param's chosen values.
    pub stability: IndexMap<String, Stability>,
    /// The out-of-sample trades, in window order (the stitched evidence).
    pub trades: Vec<Trade>,
}

/// `series` cut to the bars before `end` (UTC seconds).
fn cut(series: &[BarSeries], end: i64) -> Vec<BarSeries> {
    series
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.retain_period(None, Some(end.saturating_sub(1)));
            s
        })
        .collect()
}

fn num(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Walks `market` forward with the sweep of `plan` (see the module doc).
///
/// # Errors
/// No window fits the bars, a trial's bot does not compile, or the walk was stopped.
pub fn walk(
    plan: &SweepPlan,
    market: &MarketData,
    spec: WindowSpec,
    stop: &AtomicBool,
    progress: &(dyn Fn() + Sync),
) -> Result<WalkForwardResult, Diagnostic> {
    let from = market.trade_from.unwrap_or(i64::MIN);
    let mut timeline: Vec<i64> =
        market.series.iter().flat_map(|s| s.ts.iter().copied()).filter(|t| *t >= from).collect();
    timeline.sort_unstable();
    timeline.dedup();
    let ws = windows(&timeline, spec.in_sample, spec.out_of_sample, spec.step, spec.anchored);
    if ws.is_empty() {
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("no walk-forward window fits the {} bars: the in-sample and out-of-sample spans are longer than the data", timeline.len()),
        )
        .help("shorten `--in-sample` / `--out-of-sample`, or give more bars"));
    }
    let cash = plan.backtest().settings().starting_cash;
    let mut results = Vec::new();
    let mut trades: Vec<Trade> = Vec::new();
    let mut daily: Vec<(i64, f64)> = Vec::new();
    for w in &ws {
        let in_market = MarketData {
            series: cut(&market.series, w.in_end),
            trade_from: Some(w.in_start),
            warmup_bars: 0,
            notes: Vec::new(),
        };
        let searched = plan.search(&in_market, stop, progress)?;
        let mut keys: Vec<(usize, f64)> =
            searched.iter().enumerate().map(|(i, (_, r))| (i, r.objective.unwrap_or(f64::NAN))).collect();
        keys.sort_by(rank_order(plan.identity().direction));
        let (trial, best): &(crate::engine::sweep::Trial, TrialRow) = &searched[keys[0].0];
        let out_market = MarketData {
            series: cut(&market.series, w.out_end),
            trade_from: Some(w.in_end),
            warmup_bars: 0,
            notes: Vec::new(),
        };
        let out = plan.run_trial(&out_market, trial).map_err(|d| {
            d.into_iter()
                .next()
                .unwrap_or_else(|| Diagnostic::error(codes::RUNTIME_REFUSED, "a trial's bot does not compile"))
        })?;
        let m = &out.metrics;
        let in_cagr = best.metrics.get("metric.cagr").copied().flatten();
        let mut oos = IndexMap::new();
        oos.insert("metric.total_return".to_string(), num(m.total_return));
        oos.insert("metric.cagr".to_string(), m.cagr);
        oos.insert("metric.sharpe".to_string(), m.sharpe);
        oos.insert("metric.max_drawdown".to_string(), num(m.max_drawdown));
        oos.insert("metric.trades".to_string(), Some(out.trades.len() as f64));
        let returns = returns_of(cash, out.curves.daily.iter().map(|d| d.1));
        daily.extend(out.curves.daily.iter().map(|d| d.0).zip(returns));
        trades.extend(out.trades.iter().cloned());
        results.push(WindowResult {
            window: *w,
            period: format!(
                "{} .. {} | {} .. {}",
                format_utc(w.in_start),
                format_utc(w.in_end),
                format_utc(w.in_end),
                if w.out_end == i64::MAX { "end".into() } else { format_utc(w.out_end) }
            ),
            chosen_trial: best.trial,
            params: best.params.clone(),
            in_sample_objective: best.objective,
            in_sample_cagr: in_cagr,
            out_of_sample: oos,
            wfe: num(efficiency(m.cagr.unwrap_or(f64::NAN), in_cagr.unwrap_or(f64::NAN))),
        });
    }
    let metrics = stitched(cash, &daily, &trades, &results);
    let equity: Vec<(i64, f64)> =
        daily.iter().map(|d| d.0).zip(compound(cash, &daily.iter().map(|d| d.1).collect::<Vec<_>>())).collect();
    let stability = plan
        .params()
        .iter()
        .map(|p| {
            let values: Vec<serde_json::Value> =
                results.iter().filter_map(|r| r.params.get(&p.name).cloned()).collect();
            let mut distinct = values.clone();
            distinct.sort_by_key(|v| v.to_string());
            distinct.dedup();
            let nums: Vec<f64> = values.iter().filter_map(serde_json::Value::as_f64).collect();
            let cv = (nums.len() == values.len() && nums.len() >= 2).then(|| {
                let mean = nums.iter().sum::<f64>() / nums.len() as f64;
                let sd = (nums.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nums.len() - 1) as f64).sqrt();
                sd / mean.abs()
            });
            (p.name.clone(), Stability { values, distinct: distinct.len(), cv: cv.and_then(num) })
        })
        .collect();
    Ok(WalkForwardResult { sweep: plan.identity().clone(), spec, windows: results, metrics, equity, stability, trades })
}

/// The stitched out-of-sample metrics: the trade metrics of every out-of-sample trade, the
/// return, drawdown and Sharpe ratio of the compounded daily returns, and the efficiency.
fn stitched(
    cash: f64,
    daily: &[(i64, f64)],
    trades: &[Trade],
    windows: &[WindowResult],
) -> IndexMap<String, Option<f64>> {
    let returns: Vec<f64> = daily.iter().map(|d| d.1).collect();
    let equity = compound(cash, &returns);
    let records: Vec<TradeRecord> =
        trades.iter().map(|t| TradeRecord { exit_ts: t.exit_time, pnl: t.pnl, ret: t.pnl_pct / 100.0 }).collect();
    let fields = compute(&MetricInputs { trades: records, start_equity: cash, ..Default::default() });
    let mut out = IndexMap::new();
    for id in [
        FieldId::MetricTrades,
        FieldId::MetricWinRate,
        FieldId::MetricProfitFactor,
        FieldId::MetricAvgPnl,
        FieldId::MetricNetPnl,
        FieldId::MetricMaxLoss,
        FieldId::MetricRiskReward,
        FieldId::MetricTStat,
        FieldId::MetricPValue,
    ] {
        out.insert(crate::dsl::catalog::field_spec(id).path.to_string(), num(fields[id as usize]));
    }
    let total = equity.last().map_or(0.0, |e| e / cash - 1.0);
    let years = match (daily.first(), daily.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.0 - a.0) as f64 / (365.25 * 86_400.0),
        _ => 0.0,
    };
    let cagr = annualised(total, years);
    out.insert("metric.total_return".into(), num(total));
    out.insert("metric.cagr".into(), num(cagr));
    out.insert("metric.max_drawdown".into(), num(max_drawdown(cash, &equity)));
    let per_year = if years > 0.0 { returns.len() as f64 / years } else { f64::NAN };
    out.insert("metric.sharpe".into(), num(sharpe(&returns) * per_year.sqrt()));
    let in_cagrs: Vec<f64> = windows.iter().filter_map(|w| w.in_sample_cagr).collect();
    let mean_in = if in_cagrs.is_empty() { f64::NAN } else { in_cagrs.iter().sum::<f64>() / in_cagrs.len() as f64 };
    out.insert("metric.wfe".into(), num(efficiency(cagr, mean_in)));
    out
}

/// Journals a walk as one run (`kind = 'walkforward'`): its windows and sweep as the
/// settings, the out-of-sample trades as its trades, the stitched metrics as its metrics.
/// Returns the run id.
///
/// # Errors
/// When the journal cannot be written (nothing is recorded then).
pub fn journal(path: &std::path::Path, result: &WalkForwardResult, symbols: Vec<String>) -> Result<i64, Diagnostic> {
    let settings = serde_json::json!({
        "sweep": result.sweep,
        "spec": result.spec,
        "windows": result.windows,
        "stability": result.stability,
    });
    let mut j = Journal::begin(
        path,
        &RunInfo {
            kind: "walkforward".into(),
            bot: result.sweep.bot.clone(),
            bundle_revision: result.sweep.bundle_revision.clone(),
            settings,
            symbols,
        },
    )?;
    for t in &result.trades {
        j.trade(t);
    }
    let first = result.windows.first().map(|w| w.window.in_end);
    let last = result.equity.last().map(|e| e.0);
    // Beside the `metric.*` figures, the stitched drawdown under the key backtest runs use, so
    // a gate reading this run's drawdown takes the stitched daily curve's.
    let mut metrics = serde_json::to_value(&result.metrics).unwrap_or_default();
    if let Some(m) = metrics.as_object_mut() {
        let dd = m.get("metric.max_drawdown").cloned().unwrap_or_default();
        m.insert("max_drawdown".into(), dd);
    }
    j.finish(first, last, &metrics)
}
