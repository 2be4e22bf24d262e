//! A policy rule that denies every entry a strategy can make, found before anything runs.
//!
//! Some rules decide from what a strategy always does: a constant stop-loss above a stop cap
//! (`order.stop_loss > 3%` against a 5% stop), a fixed size above a notional cap
//! (`order.notional > 5% * account.equity` against `percent_of_equity: 10%`). Such a bot
//! validates and runs, and never trades. Each blocking rule (`deny`, `reduce`, `halt`,
//! `require_approval`) is evaluated on a synthetic first entry of each strategy: a flat
//! account of 100,000 (no exposure, no drawdown, no orders today), the strategy's sizing and
//! stop, the manifest's costs; everything that depends on market data (indicators, prices,
//! quotes) is undefined. A rule that **fires with defined values** denies that entry whatever
//! the market does: a warning names it, with the values it read. A rule that is undefined
//! here is left alone (it depends on the data).

use crate::config::policy::{Action, Condition};
use crate::config::strategy::Sizing;
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::{Bundle, SymbolProgram};
use crate::dsl::catalog::FieldId as F;
use crate::dsl::semantics::{fires, string_id};

use super::costs::CostModel;
use super::events::Seen;
use super::graph::Graph;
use super::rules::{NO_FIELDS, eval_rule, seen_values};

/// Equity of the synthetic account (currency).
const EQUITY: f64 = 100_000.0;

/// Warnings (`W0008`) for each policy rule that denies every entry of a strategy of `bundle`.
pub fn blocked_entries(bundle: &Bundle, costs: &CostModel) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for s in &bundle.strategies {
        let Some(symbol) = s.doc.universe.first().map(|u| u.value.clone()) else { continue };
        let program = SymbolProgram::build(bundle, &symbol);
        let slots = Graph::new(&program.graph, crate::engine::resample::BaseBars::DAILY_EQUITIES).values().to_vec();
        let doc = &s.doc;
        let (sizing, limits) = (doc.sizing.value, doc.sizing_limits);
        let mut weight = match sizing {
            Sizing::PercentOfEquity(f) => f,
            Sizing::AllCash => 1.0,
            _ => f64::NAN,
        };
        // A sizing scale depends on the market: the size is unknown here.
        if doc.sizing_scale.is_some() {
            weight = f64::NAN;
        }
        if let Some(cap) = limits.max_percent_of_equity {
            weight = if weight.is_nan() { f64::NAN } else { weight.min(cap) };
        }
        let mut f = NO_FIELDS;
        f[F::AccountEquity as usize] = EQUITY;
        f[F::AccountCash as usize] = EQUITY;
        f[F::AccountExposure as usize] = 0.0;
        f[F::AccountPeakEquity as usize] = EQUITY;
        f[F::AccountDrawdown as usize] = 0.0;
        f[F::AccountOpenPositions as usize] = 0.0;
        f[F::AccountDailyPnl as usize] = 0.0;
        f[F::AccountDailyReturn as usize] = 0.0;
        f[F::AccountLossStreak as usize] = 0.0;
        f[F::AccountOrdersLastMinute as usize] = 0.0;
        f[F::AccountOrdersLastHour as usize] = 0.0;
        f[F::AccountOrdersToday as usize] = 0.0;
        f[F::PositionQuantity as usize] = 0.0;
        f[F::SymbolName as usize] = string_id(&symbol);
        f[F::SymbolWeight as usize] = 0.0;
        f[F::OrderSymbol as usize] = string_id(&symbol);
        f[F::OrderStrategy as usize] = string_id(s.name());
        f[F::OrderSide as usize] = string_id("buy");
        f[F::OrderIntent as usize] = string_id("entry");
        f[F::OrderNotional as usize] = weight * EQUITY;
        if matches!(sizing, Sizing::AtrRisk { .. }) {
            f[F::OrderStopLoss as usize] = f64::NAN;
        } else if let Some(stop) = &doc.stop_loss {
            f[F::OrderStopLoss as usize] = stop.value.value;
        }
        // A percent trailing stop starts that far below the fill (an ATR one depends on data).
        match doc.trailing_stop.as_ref().map(|t| t.value) {
            Some(crate::config::strategy::TrailingStop::Percent(p)) => {
                let f = &mut f[F::OrderStopLoss as usize];
                *f = if f.is_nan() { p } else { f.min(p) };
            }
            Some(crate::config::strategy::TrailingStop::Atr { .. }) if doc.stop_loss.is_none() => {
                f[F::OrderStopLoss as usize] = f64::NAN;
            }
            _ => {}
        }
        if costs.commission_per_unit == 0.0 {
            f[F::OrderRoundTripCost as usize] = costs.round_trip(1.0, costs.spread);
        }
        let names = |path: &str| -> Option<String> {
            Some(match path {
                "order.symbol" | "symbol.name" => symbol.clone(),
                "order.strategy" => s.name().to_string(),
                "order.side" => "buy".into(),
                "order.intent" => "entry".into(),
                _ => return None,
            })
        };
        let mut scratch = Vec::new();
        for (pi, p) in bundle.policies.iter().enumerate() {
            for (ri, rule) in p.doc.rules.iter().enumerate() {
                let (Action::Deny | Action::Reduce | Action::Halt | Action::RequireApproval, Condition::When(when)) =
                    (rule.action.value, &rule.condition)
                else {
                    continue;
                };
                let Some(compiled) = program.policies.get(pi).and_then(|r| r.get(ri)) else { continue };
                let v = eval_rule(compiled, &slots, &f, &mut scratch);
                if v.is_nan() || !fires(v) {
                    continue;
                }
                let seen: Vec<String> = seen_values(compiled, &slots, &f, &names)
                    .into_iter()
                    .filter_map(|(label, v)| match v {
                        Seen::Number(x) if x.is_finite() => Some(format!("{label} = {x}")),
                        Seen::Text(t) if !t.is_empty() => Some(format!("{label} = {t:?}")),
                        _ => None,
                    })
                    .collect();
                out.push(
                    Diagnostic::warning(
                        codes::BLOCKS_EVERY_ENTRY,
                        format!(
                            "policy `{}` rule `{}` denies every entry of strategy `{}` ({})",
                            p.doc.name.value,
                            rule.id.value,
                            s.name(),
                            seen.join(", ")
                        ),
                    )
                    .at(&when.file, when.span)
                    .label("fires on every entry")
                    .help(format!(
                        "the strategy never trades under this rule: change its `sizing` or `stop_loss` (in `{}`), or the rule",
                        doc.source.name
                    )),
                );
            }
        }
    }
    out
}
