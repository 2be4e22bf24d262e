//! Step 4 of a timestamp: sending what the committed timestamp decided, in the order and the
//! shape the broker accepts.
//!
//! 1. **Cancellations** go first (`DELETE /v2/orders/{id}`), and are **confirmed**: Alpaca
//!    answers a cancel request at once, but the order is cancelled only when its status says
//!    so, and until then it still holds its shares (`held_for_orders`) and may still fill. The
//!    dispatch polls the cancelled orders (`GET /v2/orders/{id}`) for up to
//!    [`Gateway::cancel_wait`].
//! 2. **Submissions.** A sell waits while a cancellation of the same position is not
//!    confirmed (a sell above the shares not held for other orders is refused with HTTP 403,
//!    "insufficient qty available"); it goes at the next dispatch that finds them confirmed.
//!    When a protective order filled before its cancellation arrived, the exit is sent for
//!    what is left, or not at all: never a second sale of the same shares. A stop-loss and a
//!    take-profit for the same shares go as one OCO order (Alpaca's `order_class: "oco"`:
//!    `type: limit` with `take_profit.limit_price` and `stop_loss.stop_price`, one
//!    reservation for both; the stop-loss leg gets its own broker id, read from `legs`).
//!    An order that may have reached the broker already (a restart, a lost answer) is looked
//!    up by `client_order_id` before it is sent.
//!
//! Not sent, and journaled with the reason: an order decided on a bar older than the
//! staleness window ([`Gateway::max_order_age`]; `expired`), and while the bot is HALTED an
//! entry (`withheld`): a HALTED bot sends only cancellations and exits.

use backon::{ConstantBuilder, Retryable};

use crate::engine::orders::{ClientOrderId, Intent, Order, OrderType, Side};

use super::{Gateway, State, protective};
use crate::runtime::broker::alpaca::BrokerError;
use crate::runtime::broker::alpaca::model::{OrderRequest, PriceLeg, price_text, qty_text};
use crate::runtime::data::timeparse::format_utc;
use crate::runtime::journal::Journal;
use crate::runtime::journal::broker_log;

/// What a dispatch needs to know about the bot's moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchContext {
    /// The newest bar time the bot knows (UTC seconds): the last bar processed, or with a
    /// live feed the newest bar fetched. An order decided more than
    /// [`Gateway::max_order_age`] before it is stale.
    pub head: i64,
    /// The bot is HALTED: entries are withheld.
    pub halted: bool,
}

impl Gateway {
    /// Step 4: sends the recorded requests, after their records are committed. `ts` is the
    /// bar time of the timestamp just committed (for the journal rows). See the module docs.
    pub async fn dispatch(&mut self, ts: i64, ctx: DispatchContext, journal: &mut Journal) {
        for id in self.sequence.clone() {
            if self.orders.get(&id).is_some_and(|t| t.cancel) {
                self.send_cancel(journal, ts, id).await;
            }
        }
        self.confirm_cancels(journal, ts).await;
        for id in self.sequence.clone() {
            if self.orders.get(&id).is_some_and(|t| !t.cancel && matches!(t.state, State::Pending { .. })) {
                self.send(journal, ts, id, ctx).await;
            }
        }
        // Forget what is settled.
        let orders = &self.orders;
        let done: Vec<ClientOrderId> = self
            .sequence
            .iter()
            .copied()
            .filter(|id| orders.get(id).is_some_and(|t| t.state == State::Closed && !t.cancel))
            .collect();
        for id in &done {
            self.orders.remove(id);
        }
        self.sequence.retain(|id| self.orders.contains_key(id));
    }

    fn clear_cancel(&mut self, id: ClientOrderId) {
        if let Some(t) = self.orders.get_mut(&id) {
            t.cancel = false;
        }
    }

    /// Drops order `id` (not sent, never will be) with `kind` and `reason`, recorded now and
    /// told to the engine at the next sync.
    fn drop_order(&mut self, journal: &mut Journal, id: ClientOrderId, kind: &'static str, reason: String) {
        let state = if kind == "cancelled" { "cancelled_unsent" } else { kind };
        let (coid, message) = (id.as_str().to_string(), reason.clone());
        journal.exec(move |c, run| broker_log::set_state(c, run, &coid, state, None, None, Some(&message)));
        self.set_state(id, State::Dropped { kind, reason });
        self.clear_cancel(id);
    }

    async fn send_cancel(&mut self, journal: &mut Journal, ts: i64, id: ClientOrderId) {
        let coid = id.as_str().to_string();
        match self.state(id) {
            Some(State::Pending { maybe_sent: false }) => {
                self.drop_order(journal, id, "cancelled", "cancelled before it was sent".into());
            }
            Some(State::Pending { maybe_sent: true }) => match self.find(id).await {
                // It may be at the broker: find it, then cancel it there.
                Ok(Some(o)) => {
                    self.answered();
                    self.adopt(journal, id, &o);
                    if let Some(State::Sent(bid)) = self.state(id) {
                        self.delete(journal, ts, id, &bid).await;
                    }
                }
                Ok(None) => {
                    self.answered();
                    self.drop_order(journal, id, "cancelled", "cancelled before it was sent".into());
                }
                Err(e) => self.failed(journal, ts, &coid, &e),
            },
            Some(State::Sent(bid)) => self.delete(journal, ts, id, &bid).await,
            _ => self.clear_cancel(id),
        }
    }

    /// `DELETE`s order `id` (broker id `bid`); then its cancellation waits for confirmation.
    async fn delete(&mut self, journal: &mut Journal, ts: i64, id: ClientOrderId, bid: &str) {
        let coid = id.as_str().to_string();
        match self.client.cancel_order(bid).await {
            // 422: not cancelable any more (filled, or its OCO partner filled); 404: unknown.
            // Either way the order's own status says what became of it.
            Ok(()) | Err(BrokerError::Rejected { status: 404 | 422, .. }) => {
                self.answered();
                self.set_state(id, State::Cancelling(bid.to_string()));
                self.clear_cancel(id);
                journal.exec(move |c, run| broker_log::set_state(c, run, &coid, "cancel_sent", None, None, None));
            }
            Err(e) => self.failed(journal, ts, &coid, &e),
        }
    }

    /// Polls the orders being cancelled until the broker reports each final (cancelled, or
    /// filled before the cancellation arrived), for up to [`Gateway::cancel_wait`].
    async fn confirm_cancels(&mut self, journal: &mut Journal, ts: i64) {
        let tries = (self.cancel_wait.as_millis() / 100).max(1) as usize;
        let poll = || async {
            let mut waiting = false;
            let mut outcomes = Vec::new();
            for id in self.sequence.clone() {
                let Some(State::Cancelling(bid)) = self.state(id) else { continue };
                match self.client.order(&bid).await {
                    Ok(o) if o.is_final() => outcomes.push((id, Ok(o))),
                    Ok(_) => waiting = true,
                    Err(e) => outcomes.push((id, Err(e))),
                }
            }
            if waiting { Err(outcomes) } else { Ok(outcomes) }
        };
        let result = poll
            .retry(ConstantBuilder::default().with_delay(std::time::Duration::from_millis(100)).with_max_times(tries))
            .sleep(tokio::time::sleep)
            .await;
        let outcomes = result.unwrap_or_else(|partial| partial);
        for (id, outcome) in outcomes {
            let coid = id.as_str().to_string();
            match outcome {
                Ok(o) => {
                    self.answered();
                    if o.filled() > 0.0 {
                        self.event(
                            journal,
                            ts,
                            &coid,
                            "fill_before_cancel",
                            Some(o.filled()),
                            o.filled_avg_price,
                            format!("{} filled before its cancellation arrived", qty_text(o.filled())),
                        );
                    }
                    self.set_state(id, State::Final(Box::new(o)));
                }
                Err(BrokerError::Rejected { status: 404, .. }) => {
                    self.answered();
                    self.drop_order(journal, id, "cancelled", "cancelled (unknown at the broker)".into());
                }
                Err(e) => self.failed(journal, ts, &coid, &e),
            }
        }
    }

    /// True while a cancellation of slot `slot`'s orders is asked for or not confirmed.
    fn cancels_open(&self, slot: usize) -> bool {
        self.orders.values().any(|t| t.order.slot == slot && (t.cancel || matches!(t.state, State::Cancelling(_))))
    }

    /// Units of slot `slot` sold by protective orders that filled before their cancellation
    /// arrived, not yet known to the engine.
    fn raced_sales(&self, slot: usize) -> f64 {
        self.orders
            .values()
            .filter(|t| t.order.slot == slot && t.cancelled && t.order.side == Side::Sell)
            .map(|t| match &t.state {
                State::Final(o) => o.filled(),
                _ => 0.0,
            })
            .sum()
    }

    async fn send(&mut self, journal: &mut Journal, ts: i64, id: ClientOrderId, ctx: DispatchContext) {
        let Some(t) = self.orders.get(&id).cloned() else { return };
        let State::Pending { maybe_sent } = t.state else { return };
        let coid = id.as_str().to_string();
        if let Some(leader) = Self::leader_of(&t.order) {
            return self.send_leg(journal, ts, id, leader).await;
        }
        if t.order.side == Side::Sell && self.cancels_open(t.order.slot) {
            // Sent once the broker confirms the cancellations (next dispatch).
            return;
        }
        if maybe_sent {
            match self.find(id).await {
                Ok(Some(o)) => {
                    self.answered();
                    return self.adopt(journal, id, &o);
                }
                Ok(None) => self.answered(),
                Err(e) => return self.failed(journal, ts, &coid, &e),
            }
        }
        if ctx.halted && t.order.intent == Intent::Entry {
            let reason = "not sent: the bot is HALTED (only cancellations and exits are sent)".to_string();
            return self.drop_order(journal, id, "withheld", reason);
        }
        let age = ctx.head.saturating_sub(t.order.created_ts);
        if !protective(&t.order) && age > self.max_order_age {
            let reason = format!(
                "decided on the bar of {}, {} s before the newest bar ({}): older than the staleness window of {} s",
                format_utc(t.order.created_ts),
                age,
                format_utc(ctx.head),
                self.max_order_age
            );
            self.drop_partner(journal, id, "expired", &reason);
            return self.drop_order(journal, id, "expired", reason);
        }
        let mut quantity = t.quantity;
        if t.order.side == Side::Sell {
            let gone = self.raced_sales(t.order.slot);
            if gone > 0.0 {
                quantity = (t.quantity - gone).max(0.0);
                if quantity <= 1e-9 {
                    let reason = "the position's protective order filled first: nothing left to sell".to_string();
                    return self.drop_order(journal, id, "cancelled", reason);
                }
                if let Some(t) = self.orders.get_mut(&id) {
                    t.quantity = quantity;
                }
                let c = coid.clone();
                journal.exec(move |conn, run| broker_log::set_quantity(conn, run, &c, quantity));
            }
        }
        self.submit(journal, ts, id, quantity).await;
    }

    /// The stop-loss leg of an OCO pair goes with its leader; alone, it follows it: dropped
    /// with it, or found inside it once the leader is at the broker.
    async fn send_leg(&mut self, journal: &mut Journal, ts: i64, id: ClientOrderId, leader: ClientOrderId) {
        match self.state(leader) {
            Some(State::Pending { .. }) => {}
            Some(State::Dropped { kind, reason }) => self.drop_order(journal, id, kind, reason),
            _ => match self.find(id).await {
                Ok(Some(o)) => {
                    self.answered();
                    self.adopt(journal, id, &o);
                }
                Ok(None) => self.answered(),
                Err(e) => self.failed(journal, ts, id.as_str(), &e),
            },
        }
    }

    /// Drops the stop-loss leg waiting for leader `id`, with it.
    fn drop_partner(&mut self, journal: &mut Journal, id: ClientOrderId, kind: &'static str, reason: &str) {
        if let Some(p) = self.partner_of(id).filter(|p| matches!(self.state(*p), Some(State::Pending { .. }))) {
            self.drop_order(journal, p, kind, reason.to_string());
        }
    }

    async fn submit(&mut self, journal: &mut Journal, ts: i64, id: ClientOrderId, quantity: f64) {
        let Some(order) = self.orders.get(&id).map(|t| t.order.clone()) else { return };
        let coid = id.as_str().to_string();
        if let Some(q) = &self.quotes {
            let symbol = self.symbols[order.symbol].clone();
            if let Ok(mut quotes) = q.latest_quotes(std::slice::from_ref(&symbol)).await
                && let Some(quote) = quotes.remove(&symbol)
            {
                let (bid, ask, mid) = (quote.bp, quote.ap, quote.mid());
                let c = coid.clone();
                journal.exec(move |conn, run| broker_log::set_quote(conn, run, &c, bid, ask, mid));
            }
        }
        let partner = self
            .partner_of(id)
            .filter(|p| self.orders.get(p).is_some_and(|t| !t.cancel && matches!(t.state, State::Pending { .. })));
        let req = self.request(&order, quantity, partner.and_then(|p| self.orders.get(&p)).map(|t| &t.order));
        match self.client.submit_order(&req).await {
            Ok(o) => {
                self.answered();
                self.adopt(journal, id, &o);
                if o.status == "partially_filled" {
                    self.event(
                        journal,
                        ts,
                        &coid,
                        "partial_fill",
                        Some(o.filled()),
                        o.filled_avg_price,
                        "partially filled at submission".into(),
                    );
                }
            }
            Err(BrokerError::Rejected { status: 422, message, .. }) if message.contains("client_order_id") => {
                self.answered();
                // Already used: the order exists. Adopt it, never send it twice.
                match self.client.order_by_client_order_id(&coid).await {
                    Ok(Some(o)) => self.adopt(journal, id, &o),
                    Ok(None) => {
                        self.drop_partner(journal, id, "rejected", &message);
                        self.drop_order(journal, id, "rejected", message);
                    }
                    Err(e) => self.failed(journal, ts, &coid, &e),
                }
            }
            Err(BrokerError::Rejected { status, code, message, .. }) => {
                self.answered();
                let reason =
                    format!("HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default());
                self.drop_partner(journal, id, "rejected", &reason);
                self.drop_order(journal, id, "rejected", reason);
            }
            Err(e) if e.outcome_unknown() || matches!(e, BrokerError::Malformed { .. }) => {
                // It may have reached the broker: look it up before any retry.
                self.failed(journal, ts, &coid, &e);
                match self.client.order_by_client_order_id(&coid).await {
                    Ok(Some(o)) => self.adopt(journal, id, &o),
                    _ => self.set_state(id, State::Pending { maybe_sent: true }),
                }
            }
            Err(e) => self.failed(journal, ts, &coid, &e),
        }
    }

    /// The `POST /v2/orders` body of `o` for `quantity` units; with `stop_leg`, the OCO pair of
    /// `o` (the take-profit limit) and that stop-loss.
    fn request(&self, o: &Order, quantity: f64, stop_leg: Option<&Order>) -> OrderRequest {
        let (limit_price, stop_price) = match o.order_type {
            OrderType::Limit(p) => (Some(price_text(p)), None),
            OrderType::Stop(p) => (None, Some(price_text(p))),
            OrderType::Market => (None, None),
        };
        let mut req = OrderRequest {
            symbol: self.symbols[o.symbol].clone(),
            qty: qty_text(quantity),
            side: o.side.as_str(),
            order_type: o.order_type.as_str(),
            time_in_force: o.time_in_force.as_str(),
            limit_price,
            stop_price,
            client_order_id: o.client_order_id.as_str().to_string(),
            order_class: None,
            take_profit: None,
            stop_loss: None,
        };
        if let (Some(stop), OrderType::Limit(target)) = (stop_leg.and_then(|s| s.order_type.price()), o.order_type) {
            // Alpaca's OCO exit: the parent is the take-profit limit; prices go in the legs.
            req.order_class = Some("oco");
            req.limit_price = None;
            req.take_profit = Some(PriceLeg { limit_price: Some(price_text(target)), stop_price: None });
            req.stop_loss = Some(PriceLeg { limit_price: None, stop_price: Some(price_text(stop)) });
        }
        req
    }
}
