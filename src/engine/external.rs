//! Orders routed to a broker outside the engine (Alpaca, or a mock broker in tests).
//!
//! With [`super::pipeline::Engine::use_external_broker`], an admitted order is not handed to
//! the simulated broker: it is journaled as submitted and queued as a [`BrokerRequest`] for
//! the runtime, which sends it after the timestamp's journal rows are committed. The runtime
//! reports back what the broker did with [`super::pipeline::Engine::apply_fill`] (the order's
//! final filled quantity and average price) and [`super::pipeline::Engine::end_order`]
//! (cancelled, rejected or expired without a fill). Cancelling the other protective orders
//! of a closed position queues a `Cancel`. Nothing here does I/O.
//!
//! A cancelled order stays in `ExternalBook::cancelling` until the runtime confirms the
//! cancellation ([`super::pipeline::Engine::end_order`]): at a broker a cancel can lose the
//! race against a fill (a stop that triggers while the strategy's exit cancels it), and that
//! fill must still be booked ([`super::pipeline::Engine::apply_fill`] finds the order there).

use super::orders::Order;

/// What the engine asks of an outside broker.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerRequest {
    /// Submit this order (its `client_order_id` makes the submission idempotent).
    Submit(Order),
    /// Cancel this working order.
    Cancel(Order),
}

/// Orders at an outside broker: those working, and the requests not yet taken by the runtime.
#[derive(Debug, Clone, Default)]
pub(super) struct ExternalBook {
    pub working: Vec<Order>,
    pub outbox: Vec<BrokerRequest>,
    /// Orders the engine cancelled, until the broker confirms the cancellation or a fill.
    pub cancelling: Vec<Order>,
}

impl ExternalBook {
    /// Removes the working orders of `slot` and queues their cancellation.
    pub fn cancel_slot(&mut self, slot: usize) -> Vec<Order> {
        self.cancel_slot_where(slot, |_| true)
    }

    /// Removes the working orders of `slot` that match `pred` and queues their cancellation.
    pub fn cancel_slot_where(&mut self, slot: usize, pred: impl Fn(&Order) -> bool) -> Vec<Order> {
        let (out, keep): (Vec<Order>, Vec<Order>) =
            std::mem::take(&mut self.working).into_iter().partition(|o| o.slot == slot && pred(o));
        self.working = keep;
        self.outbox.extend(out.iter().cloned().map(BrokerRequest::Cancel));
        self.cancelling.extend(out.iter().cloned());
        out
    }

    /// Removes the order `id` from the working orders, or else from those being cancelled
    /// (`true` with it: a fill or an end that raced its cancellation).
    pub fn take(&mut self, id: super::orders::ClientOrderId) -> Option<(Order, bool)> {
        if let Some(k) = self.working.iter().position(|o| o.client_order_id == id) {
            return Some((self.working.remove(k), false));
        }
        let k = self.cancelling.iter().position(|o| o.client_order_id == id)?;
        Some((self.cancelling.remove(k), true))
    }
}
