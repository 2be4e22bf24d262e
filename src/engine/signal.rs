//! What a strategy wants to do on a bar close, decided in one fixed order.
//!
//! While in a position: the time stop (`max_holding`) first, then the exit rule. While flat: the
//! entry rule. Protective stop-loss and take-profit orders are not signals; the broker fills
//! them against the bar's range before the rules run (see [`super::broker`]). The backtester,
//! the paper and live drivers and `dsl test` all decide through [`decide`].

use super::orders::{ExitReason, OrderType};
use crate::config::strategy::StrategyDoc;

/// A strategy's wish on one bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Open a position.
    Entry,
    /// Close the position, and why.
    Exit(ExitReason),
}

impl Signal {
    /// `entry`, or the exit reason (`exit_rule`, `max_holding`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Entry => "entry",
            Signal::Exit(r) => r.as_str(),
        }
    }
}

/// A strategy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// The entry rule.
    Entry,
    /// The exit rule.
    Exit,
}

/// Decides the signal of one strategy on one bar.
///
/// `bars_held` is `Some(n)` in a position, where `n` counts bars since the entry fill
/// including this one (what `position.bars_held` shows the rules); `max_holding` is in bars
/// (`u32::MAX` for none). `fires(rule)` tells whether a rule fires (`None` when the strategy
/// has no such rule); it is called at most once, for the rule that matters.
#[inline]
pub fn decide(
    bars_held: Option<u32>,
    max_holding: u32,
    fires: impl FnOnce(RuleKind) -> Option<bool>,
) -> Option<Signal> {
    match bars_held {
        Some(n) if n >= max_holding => Some(Signal::Exit(ExitReason::MaxHolding)),
        Some(_) => fires(RuleKind::Exit).unwrap_or(false).then_some(Signal::Exit(ExitReason::ExitRule)),
        None => fires(RuleKind::Entry).unwrap_or(false).then_some(Signal::Entry),
    }
}

/// The protective orders of a position entered at `entry_price`: a sell stop at
/// `entry_price * (1 - stop_loss)` and a sell limit at `entry_price * (1 + take_profit)`, for
/// those the strategy sets.
pub fn protective_orders(doc: &StrategyDoc, entry_price: f64) -> Vec<(OrderType, ExitReason)> {
    let mut out = Vec::new();
    if let Some(sl) = &doc.stop_loss {
        out.push((OrderType::Stop(entry_price * (1.0 - sl.value.value)), ExitReason::StopLoss));
    }
    if let Some(tp) = &doc.take_profit {
        out.push((OrderType::Limit(entry_price * (1.0 + tp.value.value)), ExitReason::TakeProfit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stop_wins_over_the_exit_rule_and_rules_run_only_when_needed() {
        let never = |_| -> Option<bool> { panic!("rule evaluated") };
        let only = |want: RuleKind, v: Option<bool>| {
            move |k: RuleKind| {
                assert_eq!(k, want);
                v
            }
        };
        assert_eq!(decide(Some(5), 5, never), Some(Signal::Exit(ExitReason::MaxHolding)));
        assert_eq!(decide(Some(4), 5, only(RuleKind::Exit, Some(true))), Some(Signal::Exit(ExitReason::ExitRule)));
        assert_eq!(decide(Some(4), 5, only(RuleKind::Exit, None)), None);
        assert_eq!(decide(None, 5, only(RuleKind::Entry, Some(true))), Some(Signal::Entry));
        assert_eq!(decide(None, u32::MAX, only(RuleKind::Entry, Some(false))), None);
    }
}
