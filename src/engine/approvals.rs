//! The approval queue seen from the engine.
//!
//! A policy rule with `action: require_approval` parks the order it fires on. When the engine
//! has an [`ApprovalDesk`] (the paper and live runtime attach one backed by the journal, which
//! `dsl approvals list|approve|reject` manages), the order waits there until a person decides
//! or its `expires_after` window ends: approved orders go on (they must still pass the trading
//! state and every other rule), rejected and expired ones are refused. Without a desk (a
//! backtest has nobody to ask) the order is refused at once, as its window would end
//! unanswered: denied by default on timeout.

use super::orders::ClientOrderId;

/// What a person is asked to approve.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRequest {
    /// The parked order's id.
    pub client_order_id: ClientOrderId,
    /// When it was parked (bar time, UTC seconds).
    pub created_ts: i64,
    /// When it is denied if nobody decided (UTC seconds).
    pub expires_ts: i64,
    /// Strategy name.
    pub strategy: String,
    /// Symbol.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: &'static str,
    /// `entry` or `exit`.
    pub intent: &'static str,
    /// Estimated units.
    pub quantity: f64,
    /// Estimated notional at the reference price (currency).
    pub notional: f64,
    /// `policy/rule_id` of the rule that asked for approval.
    pub rule: String,
    /// The rule's message.
    pub message: String,
}

/// A person's answer (or its absence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// Go ahead.
    Approved {
        /// What the approver wrote, if anything.
        note: String,
    },
    /// Do not.
    Rejected {
        /// Why.
        note: String,
    },
}

/// Where parked orders wait for a person.
pub trait ApprovalDesk {
    /// Puts a request in the queue. `false` when it could not be recorded (the order is then
    /// refused: fail closed).
    fn park(&mut self, request: &ApprovalRequest) -> bool;
    /// Decisions to apply at bar time `ts` (UTC seconds): those taken since the last call,
    /// by order id. A desk that persists them records `ts`, so that a restarted bot
    /// replaying its bars gets each decision at the same bar time again.
    fn decisions(&mut self, ts: i64) -> Vec<(ClientOrderId, ApprovalOutcome)>;
    /// Marks a request expired (nobody decided in time).
    fn expire(&mut self, client_order_id: ClientOrderId, ts: i64);
}
