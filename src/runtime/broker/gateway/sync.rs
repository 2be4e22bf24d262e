//! Step 1 of a timestamp: what the broker did with our orders, applied to the engine after a
//! check of every figure it reports.

use std::collections::HashMap;

use crate::engine::events::OrderStatus;
use crate::engine::orders::ClientOrderId;
use crate::engine::pipeline::Engine;

use super::{Gateway, State, Tracked};
use crate::runtime::broker::alpaca::BrokerError;
use crate::runtime::broker::alpaca::model::{Order as BrokerOrder, qty_text};
use crate::runtime::journal::Journal;
use crate::runtime::journal::broker_log;

/// Quantities within this fraction (or `1e-9` units) of each other are equal.
const QTY_EPS: f64 = 1e-9;

impl Gateway {
    /// Step 1 of a timestamp: applies the broker's outcomes to the engine at bar time `ts`,
    /// and trips the breaker when the broker keeps failing.
    ///
    /// Before anything is applied it is checked; each of these is a `broker_anomaly` that is
    /// journaled, not applied, and halts the bot: a fill of more units than the order asked
    /// for; a negative or non-finite quantity; a fill without a positive, finite price; an
    /// order whose `client_order_id` (or, for an OCO leg, broker id) is not the one asked
    /// for; a side other than ours.
    pub async fn sync(&mut self, engine: &mut Engine, ts: i64, journal: &mut Journal) {
        self.trip_breaker(engine, ts, journal);
        for (id, what) in std::mem::take(&mut self.anomalies) {
            self.anomaly(engine, journal, ts, &id, &what);
        }
        if self.sequence.is_empty() {
            return;
        }
        let need_poll =
            self.orders.values().any(|t| matches!(t.state, State::Sent(_) | State::Cancelling(_)) && !t.cancel);
        let open = if need_poll { self.open_orders(journal, ts).await } else { Some(HashMap::new()) };
        for id in self.sequence.clone() {
            let Some(t) = self.orders.get(&id).cloned() else { continue };
            let coid = id.as_str().to_string();
            match &t.state {
                State::Dropped { kind, reason } => {
                    let status = if *kind == "rejected" { OrderStatus::Rejected } else { OrderStatus::Cancelled };
                    let message = match *kind {
                        "rejected" => format!("broker rejected: {reason}"),
                        "cancelled" => reason.clone(),
                        k => format!("{k}: {reason}"),
                    };
                    engine.end_order(id, status, ts, &message, journal);
                    self.event(journal, ts, &coid, kind, None, None, message);
                    self.set_state(id, State::Closed);
                }
                State::Final(o) => self.apply_final(engine, journal, ts, id, o),
                State::Pending { maybe_sent: true } if !t.cancel => {
                    // It may have reached the broker before a crash: if it did, it is ours.
                    match self.find(id).await {
                        Ok(Some(o)) => {
                            self.answered();
                            self.adopt(journal, id, &o);
                            if o.is_final() {
                                self.apply_final(engine, journal, ts, id, &o);
                            } else {
                                self.note_partial(engine, journal, ts, id, &o);
                            }
                        }
                        Ok(None) => self.answered(),
                        Err(e) => self.failed(journal, ts, &coid, &e),
                    }
                }
                State::Sent(bid) | State::Cancelling(bid) if !t.cancel => {
                    let Some(open) = open.as_ref() else { continue };
                    if let Some(o) = open.get(bid) {
                        self.note_partial(engine, journal, ts, id, o);
                        continue;
                    }
                    self.poll(engine, journal, ts, &t, bid).await;
                }
                _ => {}
            }
        }
        self.trip_breaker(engine, ts, journal);
    }

    /// The broker's open orders by broker id, legs included; `None` when it cannot be read.
    pub(super) async fn open_orders(&mut self, journal: &mut Journal, ts: i64) -> Option<HashMap<String, BrokerOrder>> {
        match self.client.orders("open", None).await {
            Ok(list) => {
                self.answered();
                let mut map = HashMap::new();
                for mut o in list {
                    for leg in o.legs.take().unwrap_or_default() {
                        map.insert(leg.id.clone(), leg);
                    }
                    map.insert(o.id.clone(), o);
                }
                Some(map)
            }
            Err(e) => {
                self.failed(journal, ts, "", &e);
                None
            }
        }
    }

    /// Looks a sent order up by its broker id, and applies it when final.
    async fn poll(&mut self, engine: &mut Engine, journal: &mut Journal, ts: i64, t: &Tracked, bid: &str) {
        let id = t.order.client_order_id;
        let coid = id.as_str().to_string();
        match self.client.order(bid).await {
            Ok(o) if o.is_final() => {
                self.answered();
                self.apply_final(engine, journal, ts, id, &o);
            }
            Ok(o) => {
                self.answered();
                self.note_partial(engine, journal, ts, id, &o);
            }
            Err(BrokerError::Rejected { status: 404, .. }) if matches!(t.state, State::Cancelling(_)) => {
                self.answered();
                // Unknown at the broker: nothing is left to cancel.
                let message = "cancelled (unknown at the broker)".to_string();
                engine.end_order(id, OrderStatus::Cancelled, ts, &message, journal);
                self.event(journal, ts, &coid, "cancelled", None, None, message);
                self.set_state(id, State::Closed);
            }
            Err(BrokerError::Rejected { status: 404, .. }) if Self::leader_of(&t.order).is_none() => {
                self.answered();
                // The broker has no such order after all: send it again (looked up first).
                self.set_state(id, State::Pending { maybe_sent: true });
                self.event(journal, ts, &coid, "resubmit", None, None, "unknown at the broker".into());
            }
            Err(e) => self.failed(journal, ts, &coid, &e),
        }
    }

    /// Finds our order `id` at the broker: by `client_order_id`, or for an OCO pair's stop-loss
    /// leg (whose `client_order_id` Alpaca generates) inside its leader's `legs`.
    pub(super) async fn find(&self, id: ClientOrderId) -> Result<Option<BrokerOrder>, BrokerError> {
        let Some(t) = self.orders.get(&id) else { return Ok(None) };
        match Self::leader_of(&t.order) {
            None => self.client.order_by_client_order_id(id.as_str()).await,
            Some(leader) => {
                let Some(parent) = self.client.order_by_client_order_id(leader.as_str()).await? else {
                    return Ok(None);
                };
                let kind = t.order.order_type.as_str();
                Ok(parent.legs.unwrap_or_default().into_iter().find(|l| l.order_type == kind))
            }
        }
    }

    /// Records that the broker has our order `id` as `o` (and, for an OCO leader, its leg).
    pub(super) fn adopt(&mut self, journal: &mut Journal, id: ClientOrderId, o: &BrokerOrder) {
        let is_leg = self.orders.get(&id).is_some_and(|t| Self::leader_of(&t.order).is_some());
        if !is_leg && o.client_order_id != id.as_str() {
            let what = format!("asked for order {id}, the broker answered with order {}", o.client_order_id);
            self.anomalies.push((id.as_str().to_string(), what));
            return;
        }
        let state = match self.state(id) {
            Some(State::Cancelling(_)) => State::Cancelling(o.id.clone()),
            _ => State::Sent(o.id.clone()),
        };
        self.set_state(id, state);
        let (coid, bid, status) = (id.as_str().to_string(), o.id.clone(), o.status.clone());
        journal.exec(move |c, run| broker_log::set_state(c, run, &coid, "sent", Some(&bid), Some(&status), None));
        if is_leg {
            return;
        }
        if let Some(partner) = self.partner_of(id)
            && matches!(self.state(partner), Some(State::Pending { .. }))
        {
            let kind = self.orders[&partner].order.order_type.as_str();
            if let Some(leg) = o.legs.iter().flatten().find(|l| l.order_type == kind) {
                let leg = leg.clone();
                self.adopt(journal, partner, &leg);
            }
        }
    }

    /// What is wrong with the broker's report `o` of our order, if anything (see
    /// [`Gateway::sync`]).
    fn distrust(&self, t: &Tracked, o: &BrokerOrder) -> Option<String> {
        let id = t.order.client_order_id;
        let filled = o.filled();
        if let State::Sent(bid) | State::Cancelling(bid) = &t.state
            && &o.id != bid
        {
            return Some(format!("asked for broker order {bid} ({id}), got {}", o.id));
        }
        if o.side != t.order.side.as_str() {
            return Some(format!("order {id} is a {}, the broker reports a {}", t.order.side.as_str(), o.side));
        }
        if !filled.is_finite() || filled < 0.0 {
            return Some(format!("order {id}: filled quantity {filled}"));
        }
        if filled > t.quantity * (1.0 + QTY_EPS) + QTY_EPS {
            return Some(format!("order {id} for {} units reports {} filled", qty_text(t.quantity), qty_text(filled)));
        }
        if filled > 0.0 && o.is_final() && !o.filled_avg_price.is_some_and(|p| p.is_finite() && p > 0.0) {
            return Some(format!("order {id}: {} filled at price {:?}", qty_text(filled), o.filled_avg_price));
        }
        None
    }

    fn note_partial(
        &mut self,
        engine: &mut Engine,
        journal: &mut Journal,
        ts: i64,
        id: ClientOrderId,
        o: &BrokerOrder,
    ) {
        let Some(t) = self.trusted(engine, journal, ts, id, o) else { return };
        let filled = o.filled();
        if filled > t.partial {
            if let Some(t) = self.orders.get_mut(&id) {
                t.partial = filled;
            }
            let message = format!(
                "partially filled: {} of {} at {}",
                qty_text(filled),
                o.qty.map(qty_text).unwrap_or_else(|| "?".into()),
                o.filled_avg_price.map(|p| format!("{p}")).unwrap_or_else(|| "?".into())
            );
            self.event(journal, ts, id.as_str(), "partial_fill", Some(filled), o.filled_avg_price, message);
        }
    }

    /// The tracked order `id`, when the broker's report `o` of it passes
    /// [`Gateway::distrust`]; otherwise the report is rejected ([`Gateway::reject_report`]).
    fn trusted(
        &mut self,
        engine: &mut Engine,
        journal: &mut Journal,
        ts: i64,
        id: ClientOrderId,
        o: &BrokerOrder,
    ) -> Option<Tracked> {
        let t = self.orders.get(&id).cloned()?;
        match self.distrust(&t, o) {
            Some(what) => {
                self.reject_report(engine, journal, ts, id, &what);
                None
            }
            None => Some(t),
        }
    }

    /// An untrustworthy report of order `id`: journaled and not applied; the order ends in the
    /// engine (the bot halts, and a person checks the account).
    fn reject_report(&mut self, engine: &mut Engine, journal: &mut Journal, ts: i64, id: ClientOrderId, what: &str) {
        let coid = id.as_str().to_string();
        self.anomaly(engine, journal, ts, &coid, what);
        let message = format!("broker anomaly, not applied: {what}");
        engine.end_order(id, OrderStatus::Cancelled, ts, &message, journal);
        self.event(journal, ts, &coid, "cancelled", None, None, message);
        self.set_state(id, State::Closed);
    }

    /// Applies an order's final state: its fill (at the broker's average price), or its end.
    pub(super) fn apply_final(
        &mut self,
        engine: &mut Engine,
        journal: &mut Journal,
        ts: i64,
        id: ClientOrderId,
        o: &BrokerOrder,
    ) {
        let Some(t) = self.trusted(engine, journal, ts, id, o) else { return };
        let coid = id.as_str().to_string();
        let filled = o.filled();
        match o.filled_avg_price {
            Some(price) if filled > 0.0 => {
                engine.apply_fill(id, filled, price, ts, journal);
                let message = match (o.status.as_str(), t.cancelled) {
                    (_, true) => format!("{} before its cancellation arrived: {}", o.status, qty_text(filled)),
                    ("filled", false) => "filled".to_string(),
                    (status, false) => format!("{status} after a partial fill of {}", qty_text(filled)),
                };
                self.event(journal, ts, &coid, "fill", Some(filled), Some(price), message);
                let c = coid.clone();
                journal.exec(move |conn, run| broker_log::set_fill(conn, run, &c, ts, filled, price));
            }
            _ => {
                let message = if t.cancelled {
                    format!("cancellation confirmed (broker status {})", o.status)
                } else {
                    format!("broker status {}", o.status)
                };
                let status = if o.status == "rejected" { OrderStatus::Rejected } else { OrderStatus::Cancelled };
                engine.end_order(id, status, ts, &message, journal);
                let kind = if status == OrderStatus::Rejected { "rejected" } else { "cancelled" };
                self.event(journal, ts, &coid, kind, None, None, message);
            }
        }
        self.set_state(id, State::Closed);
    }
}
