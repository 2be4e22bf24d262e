//! A bot's scheduled rebalance (`schedule.rebalance` in its manifest), compiled into a strategy
//! of its own: one slot per weighted symbol holds the rebalanced position, its orders carry the
//! rebalance's name, and every guardrail and allocation bucket judges them as any other order.
//! The strategy's entry rule never fires and it has no exit rule: only the schedule trades it.
//!
//! Each weight is a number expression (a fraction of equity) checked like an entry rule's
//! number and lowered into its symbol's graph; constant weights must not be negative and must
//! add up to at most 100%.

use std::sync::Arc;

use super::bundle::CompiledStrategy;
use super::catalog::Context;
use super::check::{Checker, TExpr};
use super::parser;
use crate::config::expr_source::ExprSource;
use crate::config::manifest::BotDoc;
use crate::config::schedule::{Cadence, RebalanceDoc};
use crate::config::strategy::{Direction, Sizing, SizingLimits, StrategyDoc};
use crate::config::timeframe::Aggregation;
use crate::diagnostics::{Diagnostic, Spanned, codes};

/// A compiled rebalance: when, and the target weight of each symbol.
#[derive(Debug, Clone)]
pub struct CompiledRebalance {
    /// When it is due.
    pub cadence: Cadence,
    /// `(symbol, weight, its text)`: the weight a fraction of equity, evaluated on the
    /// symbol's bar.
    pub weights: Vec<(String, TExpr, ExprSource)>,
    /// No trade for a symbol within this distance of its target (fraction of equity).
    pub band: f64,
    /// Whole shares only.
    pub whole_units: bool,
}

/// The strategy that holds the positions of `bot`'s rebalance, if it has one; `None` with
/// errors in `diags` when a weight does not check.
pub fn compile_rebalance(bot: &BotDoc, diags: &mut Vec<Diagnostic>) -> Option<Option<CompiledStrategy>> {
    let Some(doc) = bot.schedule.as_ref().and_then(|s| s.rebalance.as_ref()) else {
        return Some(None);
    };
    let mut ok = true;
    let mut weights = Vec::new();
    let mut fixed = 0.0;
    for (symbol, src) in &doc.weights {
        if weights.iter().any(|(s, _, _): &(String, TExpr, ExprSource)| *s == symbol.value) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("`{}` has two weights", symbol.value))
                    .at(&bot.source, symbol.span)
                    .label("second weight"),
            );
            ok = false;
            continue;
        }
        let ast = match parser::parse(src) {
            Ok(a) => a,
            Err(d) => {
                diags.push(d);
                ok = false;
                continue;
            }
        };
        let mut c = Checker::new(src, Context::Entry, &[]).with_timeframe(doc.timeframe.value, Aggregation::Session);
        let t = c.check_number(&ast, "weight");
        let failed = c.diags.iter().any(Diagnostic::is_error);
        diags.extend(c.diags);
        let Some(t) = t.filter(|_| !failed) else {
            ok = false;
            continue;
        };
        if let Some(w) = t.as_const() {
            if !(0.0..=1.0).contains(&w) {
                diags.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("the weight of `{}` must be from 0% to 100%", symbol.value),
                    )
                    .at(&src.file, src.span)
                    .label("out of range")
                    .help("a weight is a fraction of equity held long: `40%` or `0.4`"),
                );
                ok = false;
            }
            fixed += w;
        }
        weights.push((symbol.value.clone(), t, src.clone()));
    }
    if fixed > 1.0 + 1e-9 {
        diags.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                format!("the weights add up to {:.2}%, more than the account", fixed * 100.0),
            )
            .at(&bot.source, doc.weights.first().map_or(doc.name.span, |w| w.0.span))
            .label("the weights")
            .help("weights are fractions of equity and add up to 100% at most (the rest stays in cash)"),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(Some(holding_strategy(bot, doc, weights)))
}

/// The strategy holding the rebalanced positions: the weighted symbols, no rule of its own.
fn holding_strategy(bot: &BotDoc, doc: &RebalanceDoc, weights: Vec<(String, TExpr, ExprSource)>) -> CompiledStrategy {
    let span = doc.name.span;
    let never = ExprSource::new(&bot.source, "false", span);
    let entry = parser::parse(&never)
        .ok()
        .and_then(|a| Checker::new(&never, Context::Entry, &[]).check(&a))
        .expect("`false` is a rule");
    let universe = weights.iter().map(|(s, _, src)| Spanned::new(s.clone(), src.span)).collect();
    let sdoc = StrategyDoc {
        source: bot.source.clone(),
        name: doc.name.clone(),
        name_file: bot.source.clone(),
        description: Some("the positions of the bot's scheduled rebalance".into()),
        universe,
        universe_file: bot.source.clone(),
        timeframe: doc.timeframe.clone(),
        params: Vec::new(),
        indicators: Vec::new(),
        entry: never,
        filter: None,
        exit: None,
        stop_loss: None,
        take_profit: None,
        max_holding: None,
        trailing_stop: None,
        entry_order: None,
        expected_return: None,
        sizing: Spanned::new(Sizing::PercentOfEquity(0.0), span),
        sizing_limits: SizingLimits { whole_units: doc.whole_units, ..SizingLimits::default() },
        sizing_scale: None,
        direction: Spanned::new(Direction::Long, span),
        aggregation: Aggregation::Session,
    };
    CompiledStrategy {
        doc: sdoc,
        entry,
        exit: None,
        expected_return: None,
        sizing_input: None,
        sizing_scale: Vec::new(),
        trail_input: None,
        entry_price: None,
        unused_params: Vec::new(),
        indicators: Vec::new(),
        filter: None,
        rebalance: Some(Arc::new(CompiledRebalance {
            cadence: doc.cadence.value.clone(),
            weights,
            band: doc.band,
            whole_units: doc.whole_units,
        })),
    }
}
