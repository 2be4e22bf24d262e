//! The journal as the engine's [`EventSink`]: each event becomes a row for the writer thread
//! (an order row once, at its final status), and the running bot's own evidence is kept as
//! the rows are queued.

use std::sync::Arc;

use crate::engine::events::{Decision, EventSink, Note, OrderStatus};
use crate::engine::orders::{ClientOrderId, Fill, Order, OrderType, Quantity, Trade};
use crate::engine::trading_state::StateChange;

use super::Journal;
use super::rows::{OrderRow, Row, finite};

impl Journal {
    /// Shows an event to the observer (see [`Journal::set_observer`]), unless muted.
    fn observe(&mut self, f: impl FnOnce(&mut dyn EventSink)) {
        if self.muted {
            return;
        }
        if let Some(o) = self.observer.as_mut() {
            f(o.as_mut());
        }
    }

    /// A running bot says what it does, at info level (not in a muted replay, and nothing is
    /// formatted when the level is off).
    fn narrating(&self) -> bool {
        self.control && !self.muted && tracing::enabled!(tracing::Level::INFO)
    }
}

impl EventSink for Journal {
    fn order(&mut self, o: &Order, strategy: &str, symbol: &str, status: OrderStatus, reason: &str) {
        self.observe(|s| s.order(o, strategy, symbol, status, reason));
        if self.narrating() {
            let id = o.client_order_id.to_string();
            let what = format!(
                "{} {} {} {:.4} ({}, {}) at reference {:.4}, bar {}",
                o.intent.as_str(),
                o.side.as_str(),
                symbol,
                o.estimated_units,
                o.order_type.as_str(),
                strategy,
                o.reference_price,
                crate::runtime::data::timeparse::format_utc(o.created_ts)
            );
            match status {
                OrderStatus::Submitted => tracing::info!(client_order_id = %id, symbol, "order: {what}"),
                _ if reason.is_empty() => {
                    tracing::info!(client_order_id = %id, symbol, "order {}: {what}", status.as_str())
                }
                _ => tracing::info!(client_order_id = %id, symbol, "order {}: {what}: {reason}", status.as_str()),
            }
        }
        self.order_no += 1;
        let (stop_price, limit_price) = match o.order_type {
            OrderType::Stop(p) => (finite(p), None),
            OrderType::Limit(p) => (None, finite(p)),
            OrderType::Market => (None, None),
        };
        let row = OrderRow {
            order_no: self.order_no,
            client_order_id: o.client_order_id,
            created_ts: o.created_ts,
            strategy: self.name(strategy),
            symbol: self.name(symbol),
            side: o.side.as_str(),
            intent: o.intent.as_str(),
            order_type: o.order_type.as_str(),
            stop_price,
            limit_price,
            time_in_force: o.time_in_force.as_str(),
            quantity: o.estimated_units,
            quantity_kind: match o.quantity {
                Quantity::Units(_) => "units",
                Quantity::AllCash => "all_cash",
                Quantity::ClosePosition => "close_position",
            },
            reference_price: o.reference_price,
            notional: o.notional(),
            reason: o.reason.as_str(),
            status: status.as_str(),
            status_reason: (!reason.is_empty()).then(|| reason.to_string()),
            updated_ts: o.created_ts,
            bundle_revision: self.revision.clone(),
        };
        if let Some(e) = self.evidence.as_mut().filter(|_| !self.muted) {
            e.order_strategy.insert(o.client_order_id, row.strategy.clone());
        }
        if status == OrderStatus::Submitted {
            self.working.insert(o.client_order_id, row);
        } else {
            self.push(Row::Order(row));
        }
    }

    fn order_status(&mut self, id: ClientOrderId, status: OrderStatus, ts: i64, reason: &str) {
        self.observe(|s| s.order_status(id, status, ts, reason));
        if self.narrating() && status != OrderStatus::Filled {
            let cid = id.to_string();
            match reason.is_empty() {
                true => tracing::info!(client_order_id = %cid, "order {}", status.as_str()),
                false => tracing::info!(client_order_id = %cid, "order {}: {reason}", status.as_str()),
            }
        }
        if let Some(mut row) = self.working.remove(&id) {
            row.status = status.as_str();
            row.status_reason = (!reason.is_empty()).then(|| reason.to_string());
            row.updated_ts = ts;
            self.push(Row::Order(row));
        }
    }

    fn fill(&mut self, f: &Fill, o: &Order, symbol: &str) {
        self.observe(|s| s.fill(f, o, symbol));
        if self.narrating() {
            let id = f.client_order_id.to_string();
            tracing::info!(
                client_order_id = %id,
                symbol,
                "fill: {} {} {:.4} @ {:.4} (commission {:.2})",
                o.side.as_str(),
                symbol,
                f.quantity,
                f.price,
                f.commission
            );
        }
        let symbol = self.name(symbol);
        self.push(Row::Fill {
            client_order_id: f.client_order_id,
            ts: f.ts,
            symbol,
            side: o.side.as_str(),
            quantity: f.quantity,
            price: f.price,
            commission: f.commission,
            slippage_cost: f.slippage_cost,
        });
    }

    fn trade(&mut self, t: &Trade) {
        self.observe(|s| s.trade(t));
        self.trade_no += 1;
        self.push(Row::Trade(self.trade_no, Box::new(t.clone())));
    }

    fn decision(&mut self, d: &Decision<'_>) {
        use crate::engine::events::Seen;
        self.observe(|s| s.decision(d));
        if self.narrating() && d.fired && d.action != "pass" {
            // A denial is told with its order (`order rejected: ... denied by ...`); each
            // denying rule at debug.
            let id = d.order.map(|o| o.client_order_id.to_string()).unwrap_or_default();
            match d.action {
                "deny" => tracing::debug!(client_order_id = %id, "deny by {}/{}: {}", d.policy, d.rule_id, d.message),
                _ => tracing::info!(client_order_id = %id, "{} by {}/{}: {}", d.action, d.policy, d.rule_id, d.message),
            }
        }
        let seen: serde_json::Map<String, serde_json::Value> = d
            .values
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Seen::Number(x) if x.is_finite() => serde_json::json!(x),
                    Seen::Number(_) => serde_json::Value::Null,
                    Seen::Text(t) => serde_json::Value::String(t.clone()),
                };
                (k.clone(), v)
            })
            .collect();
        let row = Row::Decision {
            client_order_id: d.order.map(|o| o.client_order_id),
            ts: d.ts,
            policy: self.name(d.policy),
            rule_id: self.name(d.rule_id),
            fired: d.fired,
            action: self.name(d.action),
            // Script messages vary per order: not worth interning.
            message: Arc::from(d.message),
            seen: serde_json::Value::Object(seen).to_string(),
            bundle_revision: self.revision.clone(),
        };
        self.push(row);
    }

    fn state_change(&mut self, c: &StateChange) {
        self.observe(|s| s.state_change(c));
        self.push(Row::State(Box::new(c.clone())));
        // A running bot is the only writer of its state: every change goes to the control
        // records in the transaction of its timestamp, and to its console.
        if self.control {
            self.push(Row::Control(Box::new(c.clone())));
            if !self.muted {
                let at = crate::runtime::data::timeparse::format_utc(c.ts);
                let (from, to) = (c.from.as_str(), c.to.as_str());
                let line = format!("state: {from} -> {to} at {at} ({}): {}", c.reason, c.message);
                match c.to {
                    crate::engine::trading_state::TradingState::Active => {
                        tracing::info!(from, to, reason = %c.reason, "{line}")
                    }
                    crate::engine::trading_state::TradingState::Reducing => {
                        tracing::warn!(from, to, reason = %c.reason, "{line}")
                    }
                    _ => tracing::error!(from, to, reason = %c.reason, "{line}"),
                }
            }
        }
    }

    fn note(&mut self, n: &Note<'_>) {
        self.observe(|s| s.note(n));
        if self.control && !self.muted {
            use crate::engine::events::NoteKind;
            let (origin, script, message) = (n.origin, n.script, n.message);
            match n.kind {
                // The same failure on every bar is written three times, then counted.
                NoteKind::ScriptError | NoteKind::ScriptDisabled => {
                    tracing::warn!(symbol = n.symbol, "{}: script {script} of {origin}: {message}", n.kind.as_str())
                }
                _ => tracing::info!(symbol = n.symbol, "{} ({origin}): {message}", n.kind.as_str()),
            }
        }
        let row = Row::Note {
            ts: n.ts,
            kind: n.kind.as_str(),
            origin: self.name(n.origin),
            symbol: self.name(n.symbol),
            script: self.name(n.script),
            message: n.message.to_string(),
        };
        self.push(row);
    }
}
