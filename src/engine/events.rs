//! What the engine reports while it runs, for the journal and for live monitoring.
//!
//! The engine does no I/O: it calls an [`EventSink`]. The runtime's SQLite journal is one sink;
//! [`NullSink`] discards everything (used by benchmarks and `--no-journal`).

use super::orders::{ClientOrderId, Fill, Order, Trade};
use super::trading_state::StateChange;

/// Final state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Working at the broker.
    Submitted,
    /// Completely filled.
    Filled,
    /// Cancelled (by the engine, or at the end of the data).
    Cancelled,
    /// Refused before reaching the broker (a policy denied it, or there was nothing to trade).
    Rejected,
}

impl OrderStatus {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Submitted => "submitted",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Rejected => "rejected",
        }
    }
}

/// A value a rule saw: a number (a fraction, an amount, a count, `NaN` when undefined) or the
/// text of a string field (`order.symbol`, `order.intent`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A number.
    Number(f64),
    /// A string field's text.
    Text(String),
}

/// One policy rule's verdict on one order, or on the account at a mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    /// The order judged; `None` for a `halt`/`reduce` rule checked on the marked account.
    pub order: Option<&'a Order>,
    /// When (bar time, UTC seconds).
    pub ts: i64,
    /// Policy name.
    pub policy: &'a str,
    /// Rule id.
    pub rule_id: &'a str,
    /// Whether the condition held (or was undefined, which counts as holding: fail closed).
    pub fired: bool,
    /// What happened: the rule's action (`deny`, `warn`, `reduce`, `halt`,
    /// `require_approval`) when it fired, `"pass"` otherwise.
    pub action: &'a str,
    /// The rule's message.
    pub message: &'a str,
    /// The labelled values the rule read.
    pub values: &'a [(String, Seen)],
}

/// What a [`Note`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// A rhai script failed or hit a limit; what it guarded failed closed.
    ScriptError,
    /// An entry filter script vetoed an entry the entry rule signalled.
    EntryFiltered,
    /// An order was parked for a person's approval.
    ApprovalRequested,
    /// A person approved or rejected a parked order, or its window ended.
    ApprovalDecided,
    /// A script failed too often and is disabled for the rest of the run (what it guards
    /// fails closed from then on).
    ScriptDisabled,
    /// The scheduled rebalance left a symbol as it was, or refused to trade.
    Rebalance,
}

impl NoteKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::ScriptError => "script_error",
            NoteKind::EntryFiltered => "entry_filtered",
            NoteKind::ApprovalRequested => "approval_requested",
            NoteKind::Rebalance => "rebalance",
            NoteKind::ApprovalDecided => "approval_decided",
            NoteKind::ScriptDisabled => "script_disabled",
        }
    }
}

/// Something the engine noted that is neither an order nor a policy decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Note<'a> {
    /// Bar time, UTC seconds.
    pub ts: i64,
    /// What happened.
    pub kind: NoteKind,
    /// Strategy name, or `policy/rule_id` for guardrails.
    pub origin: &'a str,
    /// Symbol.
    pub symbol: &'a str,
    /// The script file, when a script is involved.
    pub script: &'a str,
    /// Details.
    pub message: &'a str,
}

/// Receives engine events. Every method has a no-op default.
pub trait EventSink {
    /// An order was created; `status` is `Submitted` or `Rejected` (then `reason` says why).
    fn order(&mut self, _order: &Order, _strategy: &str, _symbol: &str, _status: OrderStatus, _reason: &str) {}
    /// A working order reached a final state at `ts`.
    fn order_status(&mut self, _client_order_id: ClientOrderId, _status: OrderStatus, _ts: i64, _reason: &str) {}
    /// An order filled.
    fn fill(&mut self, _fill: &Fill, _order: &Order, _symbol: &str) {}
    /// A round trip closed.
    fn trade(&mut self, _trade: &Trade) {}
    /// A policy rule judged an order.
    fn decision(&mut self, _decision: &Decision<'_>) {}
    /// A script failed, or a filter vetoed an entry.
    fn note(&mut self, _note: &Note<'_>) {}
    /// The trading state changed (ACTIVE, REDUCING, HALTED).
    fn state_change(&mut self, _change: &StateChange) {}
    /// Whether [`EventSink::decision`] keeps anything: `false` spares the engine building
    /// each rule's seen values for every order (a sink that discards them).
    fn wants_decisions(&self) -> bool {
        true
    }
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn wants_decisions(&self) -> bool {
        false
    }
}
