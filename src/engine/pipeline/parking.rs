//! Orders parked by `require_approval` rules: the desk a person decides on (`dsl approvals`),
//! and what happens when they approve, reject, or let the window pass (denied: fail closed).

use super::*;

impl Engine {
    /// Attaches the approval queue: `require_approval` orders then wait there for a person
    /// (see [`crate::engine::approvals`]) instead of being denied at once.
    pub fn set_approval_desk(&mut self, desk: Box<dyn ApprovalDesk + Send>) {
        self.approvals.set_desk(desk);
    }

    /// Orders waiting for approval.
    pub fn parked_orders(&self) -> usize {
        self.approvals.len()
    }

    /// Applies the desk's decisions on parked orders, and refuses those whose window ended.
    /// An approved order is routed at the current bar: it must still pass the trading state
    /// and every rule other than the approval.
    pub fn settle_approvals(&mut self, ts: i64, sink: &mut dyn EventSink) {
        for (order, outcome) in self.approvals.take_decided(ts) {
            let id = order.client_order_id;
            let (strategy, symbol) = self.names(&order);
            let (strategy, symbol) = (strategy.to_string(), symbol.to_string());
            let message = match &outcome {
                ApprovalOutcome::Approved { note } => format!("{id} approved: {note}"),
                ApprovalOutcome::Rejected { note } => format!("{id} rejected: {note}"),
            };
            sink.note(&Note {
                ts,
                kind: NoteKind::ApprovalDecided,
                origin: &strategy,
                symbol: &symbol,
                script: "",
                message: &message,
            });
            match outcome {
                ApprovalOutcome::Approved { .. } => self.route_approved(order, ts, sink),
                ApprovalOutcome::Rejected { note } => {
                    self.slots[order.slot].pending_market = false;
                    self.touch(order.slot);
                    self.reject(&order, &format!("approval rejected: {note}"), sink);
                }
            }
        }
        for (order, expires) in self.approvals.take_expired(ts) {
            self.slots[order.slot].pending_market = false;
            self.touch(order.slot);
            self.stats.approvals_expired += 1;
            let reason = format!("no approval by {}: denied on timeout", crate::engine::market::format_utc(expires));
            self.reject(&order, &reason, sink);
        }
    }

    /// Routes an order a person approved, at the last close of its symbol.
    pub(super) fn route_approved(&mut self, order: Order, ts: i64, sink: &mut dyn EventSink) {
        self.slots[order.slot].pending_market = false;
        self.touch(order.slot);
        if !self.admit(&order, ts, true, sink) {
            return;
        }
        let last = self.symbols[order.symbol].last_close;
        let bar = Bar { ts, open: last, high: last, low: last, close: last, volume: 0.0 };
        let _ = self.submit(order, &bar, sink);
    }

    /// Parks an order on the desk until `expires`; `false` if the desk could not record it.
    pub(super) fn park(&mut self, order: &Order, expires: i64, d: &Denial, sink: &mut dyn EventSink) -> bool {
        let (strategy, symbol) = self.names(order);
        let rule = &self.bundle.policies[d.policy].doc.rules[d.rule];
        let request = ApprovalRequest {
            client_order_id: order.client_order_id,
            created_ts: order.created_ts,
            expires_ts: expires,
            strategy: strategy.to_string(),
            symbol: symbol.to_string(),
            side: order.side.as_str(),
            intent: order.intent.as_str(),
            quantity: order.estimated_units,
            notional: order.notional(),
            rule: d.key(&self.bundle.policies),
            message: d.message.clone().unwrap_or_else(|| rule.message.value.clone()),
        };
        if !self.approvals.park(order, expires, &request) {
            return false;
        }
        let message = format!(
            "{} parked for approval until {}: {}",
            order.client_order_id,
            crate::engine::market::format_utc(expires),
            request.message
        );
        sink.note(&Note {
            ts: order.created_ts,
            kind: NoteKind::ApprovalRequested,
            origin: &request.rule,
            symbol: &request.symbol,
            script: "",
            message: &message,
        });
        // The slot waits for the decision as for a working order.
        self.slots[order.slot].pending_market = true;
        self.touch(order.slot);
        self.slots[order.slot].pending_notional = order.notional();
        true
    }
}
