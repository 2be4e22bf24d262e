//! The trading state: ACTIVE, REDUCING or HALTED, sticky until resumed.
//!
//! Policy rules with `action: reduce` or `action: halt` move the state to REDUCING or HALTED
//! when they fire; it only ever escalates on its own (HALTED outranks REDUCING). It re-arms
//! only through an explicit resume (`dsl resume --reason TEXT`) or the reset the rule
//! declared (`reset: next_day`: at the first bar of a later UTC calendar day). Every change
//! carries a reason code (`policy/rule_id`, `resume`, `reset:next_day`) and goes to the
//! journal, so that a restarted bot can restore it ([`TradingStatus::restore`]).
//!
//! What passes in each state ([`TradingStatus::admits`]): ACTIVE, everything; REDUCING, orders
//! that lower exposure (exits); HALTED, only the flattening orders a halting rule asked for.
//! Working protective orders (stop-loss, take-profit) stay at the broker in every state.

use crate::config::policy::Reset;

use super::market::format_utc;
use super::orders::{ExitReason, Intent, Order, OrderReason};

/// The trading state (ACTIVE, REDUCING, HALTED), in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TradingState {
    /// Orders flow normally (policies still apply).
    #[default]
    Active,
    /// Only orders that lower exposure pass.
    Reducing,
    /// No new orders pass.
    Halted,
}

impl TradingState {
    /// Upper-case name, as shown to people and stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "ACTIVE",
            TradingState::Reducing => "REDUCING",
            TradingState::Halted => "HALTED",
        }
    }

    /// Parses [`TradingState::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<TradingState> {
        match s {
            "ACTIVE" => Some(TradingState::Active),
            "REDUCING" => Some(TradingState::Reducing),
            "HALTED" => Some(TradingState::Halted),
            _ => None,
        }
    }
}

/// One change of the trading state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StateChange {
    /// When (bar time, UTC seconds).
    pub ts: i64,
    /// The state before.
    pub from: TradingState,
    /// The state after.
    pub to: TradingState,
    /// Reason code: the `policy/rule_id` that tripped, `resume`, or `reset:next_day`.
    pub reason: String,
    /// Human-readable reason (the rule's message, or the person's resume reason).
    pub message: String,
    /// How the new state re-arms by itself.
    pub reset: Reset,
}

/// The current trading state, when it was entered and what set it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TradingStatus {
    /// The trading state.
    pub mode: TradingState,
    /// When it was entered (UTC seconds; 0 for the initial ACTIVE).
    pub since: i64,
    /// Reason code of the change that set it (empty for the initial ACTIVE).
    pub reason: String,
    /// Its message.
    pub message: String,
    /// How it re-arms by itself.
    pub reset: Reset,
}

/// Why an order does not pass the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// `halted` or `reducing`.
    pub code: &'static str,
    /// The reason shown with the rejected order.
    pub reason: String,
}

impl TradingStatus {
    /// A state restored from the journal's last change (a restart keeps it).
    pub fn restore(change: &StateChange) -> TradingStatus {
        TradingStatus {
            mode: change.to,
            since: change.ts,
            reason: change.reason.clone(),
            message: change.message.clone(),
            reset: change.reset,
        }
    }

    /// A person stops all trading (`dsl halt --reason TEXT`); `None` when already halted.
    pub fn halt(&mut self, ts: i64, message: &str) -> Option<StateChange> {
        (self.mode != TradingState::Halted)
            .then(|| self.set(TradingState::Halted, ts, "manual_halt", message, Reset::Manual))
    }

    /// Moves to `to` if it is more severe than the current mode; returns the change.
    pub fn escalate(
        &mut self,
        to: TradingState,
        ts: i64,
        reason: &str,
        message: &str,
        reset: Reset,
    ) -> Option<StateChange> {
        if to <= self.mode {
            return None;
        }
        Some(self.set(to, ts, reason, message, reset))
    }

    /// Back to ACTIVE by a person's decision (`dsl resume --reason TEXT`).
    pub fn resume(&mut self, ts: i64, message: &str) -> Option<StateChange> {
        (self.mode != TradingState::Active)
            .then(|| self.set(TradingState::Active, ts, "resume", message, Reset::Manual))
    }

    /// Applies a `reset: next_day` state's reset when `ts` falls on a later UTC day than the
    /// state was entered.
    pub fn on_time(&mut self, ts: i64) -> Option<StateChange> {
        let later_day = ts.div_euclid(86_400) > self.since.div_euclid(86_400);
        (self.mode != TradingState::Active && self.reset == Reset::NextDay && later_day).then(|| {
            let message = format!("{} ({}) reset at the next UTC day", self.mode.as_str(), self.reason);
            self.set(TradingState::Active, ts, "reset:next_day", &message, Reset::Manual)
        })
    }

    /// Whether `order` may proceed (to the policy rules) in this state.
    pub fn admits(&self, order: &Order) -> Result<(), Blocked> {
        let flatten = order.reason == OrderReason::Exit(ExitReason::Flatten);
        match self.mode {
            TradingState::Active => Ok(()),
            TradingState::Reducing if order.intent == Intent::Exit => Ok(()),
            TradingState::Halted if flatten => Ok(()),
            TradingState::Reducing => Err(Blocked {
                code: "reducing",
                reason: format!(
                    "reducing since {}: only orders that lower exposure pass ({}: {})",
                    format_utc(self.since),
                    self.reason,
                    self.message
                ),
            }),
            TradingState::Halted => Err(Blocked {
                code: "halted",
                reason: format!(
                    "halted since {}: no new orders until resumed ({}: {})",
                    format_utc(self.since),
                    self.reason,
                    self.message
                ),
            }),
        }
    }

    fn set(&mut self, to: TradingState, ts: i64, reason: &str, message: &str, reset: Reset) -> StateChange {
        let change =
            StateChange { ts, from: self.mode, to, reason: reason.to_string(), message: message.to_string(), reset };
        *self = TradingStatus { mode: to, since: ts, reason: reason.to_string(), message: message.to_string(), reset };
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalates_only_upwards_and_resets_next_day() {
        let mut s = TradingStatus::default();
        let c = s.escalate(TradingState::Reducing, 100, "p/dd", "deep", Reset::Manual).unwrap();
        assert_eq!((c.from, c.to), (TradingState::Active, TradingState::Reducing));
        assert!(s.escalate(TradingState::Reducing, 200, "p/x", "again", Reset::Manual).is_none());
        s.escalate(TradingState::Halted, 300, "p/loss", "daily loss", Reset::NextDay).unwrap();
        assert!(s.escalate(TradingState::Reducing, 400, "p/dd", "deep", Reset::Manual).is_none());
        assert_eq!(s.mode, TradingState::Halted);
        // Same UTC day: still halted; next day: reset.
        assert!(s.on_time(86_399).is_none());
        let c = s.on_time(86_400).unwrap();
        assert_eq!((c.from, c.to, c.reason.as_str()), (TradingState::Halted, TradingState::Active, "reset:next_day"));
    }

    #[test]
    fn a_manual_state_waits_for_resume() {
        let mut s = TradingStatus::default();
        s.escalate(TradingState::Halted, 0, "p/dd", "deep", Reset::Manual);
        assert!(s.on_time(10 * 86_400).is_none());
        let c = s.resume(10 * 86_400, "reviewed the losses").unwrap();
        assert_eq!(
            (c.to, c.reason.as_str(), c.message.as_str()),
            (TradingState::Active, "resume", "reviewed the losses")
        );
        assert!(s.resume(11 * 86_400, "again").is_none());
    }
}
