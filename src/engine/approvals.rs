//! The approval queue seen from the engine.
//!
//! A policy rule with `action: require_approval` parks the order it fires on. When the engine
//! has an [`ApprovalDesk`] (the paper and live runtime attach one backed by the journal, which
//! `dsl approvals list|approve|reject` manages), the order waits there until a person decides
//! or its `expires_after` window ends: approved orders go on (they must still pass the trading
//! state and every other rule), rejected and expired ones are refused. Without a desk (a
//! backtest has nobody to ask) the order is refused at once, as its window would end
//! unanswered: denied by default on timeout.

use super::orders::{ClientOrderId, Order};

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

/// The engine's side of the queue: the orders parked for a person, with the time (UTC
/// seconds) each is denied if nobody decided, and the desk they wait on (none in a
/// backtest). The engine reaches them only through these methods.
#[derive(Default)]
pub(crate) struct ApprovalQueue {
    desk: Option<Box<dyn ApprovalDesk + Send>>,
    parked: Vec<(Order, i64)>,
}

impl ApprovalQueue {
    /// Attaches the desk people decide on.
    pub fn set_desk(&mut self, desk: Box<dyn ApprovalDesk + Send>) {
        self.desk = Some(desk);
    }

    /// A desk is attached (someone can approve).
    pub fn has_desk(&self) -> bool {
        self.desk.is_some()
    }

    /// Orders waiting.
    pub fn len(&self) -> usize {
        self.parked.len()
    }

    /// No order waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    /// The waiting orders.
    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.parked.iter().map(|(o, _)| o)
    }

    /// Records `request` on the desk and parks `order` until `expires`; `false` when there is
    /// no desk or it could not record the request (the order is then refused: fail closed).
    pub fn park(&mut self, order: &Order, expires: i64, request: &ApprovalRequest) -> bool {
        let Some(desk) = self.desk.as_mut() else { return false };
        if !desk.park(request) {
            return false;
        }
        self.parked.push((order.clone(), expires));
        true
    }

    /// The parked orders the desk decided on by bar time `ts`, taken off the queue, with the
    /// decisions, in the desk's order.
    pub fn take_decided(&mut self, ts: i64) -> Vec<(Order, ApprovalOutcome)> {
        let decisions = self.desk.as_mut().map(|d| d.decisions(ts)).unwrap_or_default();
        let mut out = Vec::new();
        for (id, outcome) in decisions {
            if let Some(k) = self.parked.iter().position(|(o, _)| o.client_order_id == id) {
                out.push((self.parked.remove(k).0, outcome));
            }
        }
        out
    }

    /// The orders whose window ended by `ts` (UTC seconds), taken off the queue and marked
    /// expired on the desk, with the time each expired.
    pub fn take_expired(&mut self, ts: i64) -> Vec<(Order, i64)> {
        let mut out = Vec::new();
        let mut k = 0;
        while k < self.parked.len() {
            if self.parked[k].1 > ts {
                k += 1;
                continue;
            }
            let (order, expires) = self.parked.remove(k);
            if let Some(d) = self.desk.as_mut() {
                d.expire(order.client_order_id, ts);
            }
            out.push((order, expires));
        }
        out
    }

    /// Every waiting order, taken off the queue and marked expired on the desk at `ts` (the
    /// feed ended before a decision).
    pub fn take_all(&mut self, ts: i64) -> Vec<Order> {
        let parked = std::mem::take(&mut self.parked);
        parked
            .into_iter()
            .map(|(order, _)| {
                if let Some(d) = self.desk.as_mut() {
                    d.expire(order.client_order_id, ts);
                }
                order
            })
            .collect()
    }

    /// Hands the desk and the waiting orders to `next` (a swapped-in bundle's engine),
    /// renumbering each order's slot with `renumber`.
    pub fn hand_over(&mut self, next: &mut ApprovalQueue, mut renumber: impl FnMut(&mut Order)) {
        next.desk = self.desk.take();
        next.parked = std::mem::take(&mut self.parked);
        next.parked.iter_mut().for_each(|(o, _)| renumber(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::orders::{Intent, OrderIds, OrderReason, OrderType, Quantity, Side, TimeInForce};

    fn order(ids: &OrderIds, seq: u32) -> Order {
        Order {
            client_order_id: ids.id(0, seq),
            slot: seq as usize,
            strategy: 0,
            symbol: 0,
            side: Side::Buy,
            intent: Intent::Entry,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            quantity: Quantity::Units(1.0),
            estimated_units: 1.0,
            reference_price: 10.0,
            created_ts: 0,
            reason: OrderReason::EntryRule,
            expected_return: f64::NAN,
            group: None,
        }
    }

    fn request(o: &Order, expires: i64) -> ApprovalRequest {
        ApprovalRequest {
            client_order_id: o.client_order_id,
            created_ts: 0,
            expires_ts: expires,
            strategy: "s".into(),
            symbol: "X".into(),
            side: "buy",
            intent: "entry",
            quantity: 1.0,
            notional: 10.0,
            rule: "p/r".into(),
            message: String::new(),
        }
    }

    /// A desk that records everything and approves what it is told to.
    #[derive(Default)]
    struct Desk {
        parked: Vec<ClientOrderId>,
        expired: Vec<ClientOrderId>,
        approve: Vec<ClientOrderId>,
    }

    impl ApprovalDesk for std::sync::Arc<std::sync::Mutex<Desk>> {
        fn park(&mut self, request: &ApprovalRequest) -> bool {
            self.lock().unwrap().parked.push(request.client_order_id);
            true
        }
        fn decisions(&mut self, _ts: i64) -> Vec<(ClientOrderId, ApprovalOutcome)> {
            let ids = std::mem::take(&mut self.lock().unwrap().approve);
            ids.into_iter().map(|id| (id, ApprovalOutcome::Approved { note: String::new() })).collect()
        }
        fn expire(&mut self, client_order_id: ClientOrderId, _ts: i64) {
            self.lock().unwrap().expired.push(client_order_id);
        }
    }

    #[test]
    fn without_a_desk_nothing_is_parked() {
        let ids = OrderIds::new("bot", 1, "s", "X");
        let mut q = ApprovalQueue::default();
        let o = order(&ids, 0);
        assert!(!q.has_desk());
        assert!(!q.park(&o, 100, &request(&o, 100)));
        assert!(q.is_empty());
    }

    #[test]
    fn decided_expired_and_leftover_orders_leave_the_queue_once() {
        let ids = OrderIds::new("bot", 1, "s", "X");
        let desk = std::sync::Arc::new(std::sync::Mutex::new(Desk::default()));
        let mut q = ApprovalQueue::default();
        q.set_desk(Box::new(desk.clone()));
        let (a, b, c) = (order(&ids, 0), order(&ids, 1), order(&ids, 2));
        for (o, expires) in [(&a, 100), (&b, 50), (&c, 200)] {
            assert!(q.park(o, expires, &request(o, expires)));
        }
        assert_eq!(q.len(), 3);
        desk.lock().unwrap().approve.push(a.client_order_id);
        let decided = q.take_decided(10);
        assert_eq!(decided.len(), 1);
        assert_eq!(decided[0].0.client_order_id, a.client_order_id);
        // `b`'s window ends at 50: expired at 60, and the desk is told.
        let expired = q.take_expired(60);
        assert_eq!(expired.iter().map(|(o, t)| (o.client_order_id, *t)).collect::<Vec<_>>(), [(b.client_order_id, 50)]);
        assert_eq!(desk.lock().unwrap().expired, [b.client_order_id]);
        assert!(q.take_decided(70).is_empty());
        let left = q.take_all(80);
        assert_eq!(left.len(), 1);
        assert_eq!(desk.lock().unwrap().expired, [b.client_order_id, c.client_order_id]);
        assert!(q.is_empty());
    }
}
