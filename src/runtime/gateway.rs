//! The bridge between the engine and an outside broker (Alpaca's Trading API, or a mock
//! server speaking it): write-ahead order records, submission with lookup before any retry,
//! polling for fills, reconciliation and the broker circuit breaker.
//!
//! One timestamp of a running bot with a gateway ([`super::paper`]):
//!
//! 1. [`Gateway::sync`]: the outcomes of the orders working at the broker are applied to the
//!    engine (final fills at the broker's average price; cancellations; rejections of the
//!    last dispatch), each journaled as a `broker_events` row so a restart can replay it.
//!    Partial fills are journaled as they appear and applied when the order is final.
//! 2. The bars go through the engine; its new [`BrokerRequest`]s are recorded with
//!    [`Gateway::record`] as `pending` `broker_orders` rows, in the timestamp's transaction.
//! 3. The checkpoint commits; the loop waits for the commit ([`super::journal::Journal::sync`]):
//!    every order is durable before it is sent.
//! 4. [`Gateway::dispatch`] sends them. A submission that timed out, failed to connect or got
//!    a 5xx is looked up by `client_order_id` before it is ever sent again; so is every order
//!    still `pending` after a restart (it may have reached the broker just before the crash).
//!    A 422 for a `client_order_id` already used is looked up and adopted, never resent.
//!
//! **Circuit breaker.** After [`Gateway::breaker_threshold`] consecutive broker failures
//! (timeouts, connection failures, 5xx, rate limits that outlast the retries, malformed
//! bodies) the bot is HALTED with reason `broker_unavailable` (seed 001: "if Alpaca down,
//! pause trading") until a person runs `dsl resume`.
//!
//! **Reconciliation** ([`Gateway::reconcile`], at the first timestamp after every start, then
//! at least hourly in bar time at a moment with no order working): the broker's positions in
//! the bot's symbols must equal the engine's, and the broker's cash must cover the engine's. A mismatch HALTs the bot with reason `reconcile_mismatch` and the
//! figures, until `dsl resume`.

use std::collections::HashMap;

use crate::diagnostics::Diagnostic;
use crate::engine::events::OrderStatus;
use crate::engine::external::BrokerRequest;
use crate::engine::orders::{ClientOrderId, Order, OrderType, Quantity, Side};
use crate::engine::pipeline::Engine;
use crate::engine::trading_state::Mode;

use super::alpaca::model::{OrderRequest, price_text, qty_text};
use super::alpaca::{BrokerError, MarketDataClient, TradingClient};
use super::broker_log::{self, AppliedEvent, BrokerOrderRecord, PendingRecord};
use super::journal::Journal;

/// Where one of our orders stands with the broker.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Recorded, not known to have reached the broker. `maybe_sent`: it may have (a restart,
    /// or a submission whose outcome is unknown): look it up before sending.
    Pending { maybe_sent: bool },
    /// The broker has it (its id).
    Sent(String),
    /// The broker refused it; the engine learns it at the next sync.
    Rejected(String),
    /// A cancellation was sent, or the order was never sent and needs nothing more.
    Closed,
}

#[derive(Debug, Clone)]
struct Tracked {
    state: State,
    order: Order,
    /// A cancellation the engine asked for and not yet sent.
    cancel: bool,
    /// Filled units seen on a still-open order (for partial-fill notes).
    partial: f64,
}

/// The engine's link to an outside broker. See the module docs.
pub struct Gateway {
    client: TradingClient,
    quotes: Option<MarketDataClient>,
    /// Broker symbol of each engine symbol index.
    symbols: Vec<String>,
    orders: HashMap<ClientOrderId, Tracked>,
    /// Creation order of `orders`.
    sequence: Vec<ClientOrderId>,
    /// Consecutive failed broker interactions.
    failures: u32,
    /// The last failure, for the breaker's message.
    last_failure: String,
    /// Consecutive failures that halt the bot.
    pub breaker_threshold: u32,
    /// Next `broker_events` number.
    seq: i64,
    /// Half the spread used for bar-based quotes (fraction), when there is no quote feed.
    half_spread: f64,
    /// Bar time of the next reconciliation (`i64::MIN`: at the first bar).
    next_reconcile: i64,
}

/// Seconds of bar time between two reconciliations after the one at start.
pub const RECONCILE_EVERY: i64 = 3600;

impl Gateway {
    /// A gateway for the engine's `symbols` (in engine order). `quotes`, when given, supplies
    /// the bid/ask at each submission; without it the quote is estimated from the last close
    /// and `half_spread` (a fraction of the price).
    pub fn new(
        client: TradingClient,
        quotes: Option<MarketDataClient>,
        symbols: Vec<String>,
        half_spread: f64,
    ) -> Self {
        Gateway {
            client,
            quotes,
            symbols,
            orders: HashMap::new(),
            sequence: Vec::new(),
            failures: 0,
            last_failure: String::new(),
            breaker_threshold: 3,
            seq: 0,
            half_spread,
            next_reconcile: i64::MIN,
        }
    }

    /// Sets the broker symbol of each engine symbol index (the run's symbol order).
    pub fn set_symbols(&mut self, symbols: Vec<String>) {
        self.symbols = symbols;
    }

    /// Restores what a restarted run recorded: each order's state (`pending` ones may have
    /// reached the broker, so they are looked up before being sent) and the event numbering.
    /// Call after the muted replay, with the engine's working orders.
    pub fn restore(&mut self, records: &[BrokerOrderRecord], working: &[Order], next_seq: i64) {
        self.seq = next_seq;
        for o in working {
            let Some(r) = records.iter().find(|r| r.client_order_id == o.client_order_id.as_str()) else { continue };
            let state = match (r.state.as_str(), &r.broker_order_id) {
                ("sent", Some(id)) | ("cancel_sent", Some(id)) => State::Sent(id.clone()),
                ("rejected", _) => State::Rejected(r.message.clone().unwrap_or_default()),
                ("cancelled_unsent", _) => State::Closed,
                _ => State::Pending { maybe_sent: true },
            };
            self.track(o.clone(), state);
        }
    }

    fn track(&mut self, order: Order, state: State) {
        let id = order.client_order_id;
        if self.orders.insert(id, Tracked { state, order, cancel: false, partial: 0.0 }).is_none() {
            self.sequence.push(id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        journal: &mut Journal,
        ts: i64,
        id: &str,
        kind: &'static str,
        qty: Option<f64>,
        price: Option<f64>,
        message: String,
    ) {
        let (seq, id) = (self.seq, id.to_string());
        self.seq += 1;
        journal.exec(move |c, run| broker_log::event(c, run, seq, ts, &id, kind, qty, price, &message));
    }

    fn failed(&mut self, journal: &mut Journal, ts: i64, id: &str, e: &BrokerError) {
        self.failures += 1;
        self.last_failure = e.to_string();
        warn(&format!("broker: {e}"));
        self.event(journal, ts, id, "broker_error", None, None, format!("{} ({})", e, e.kind()));
    }

    /// Replays outcomes a restarted run had applied at bar time `ts` (muted journal).
    pub fn replay(engine: &mut Engine, events: &[AppliedEvent], journal: &mut Journal) {
        for e in events {
            let Some(id) = ClientOrderId::parse(&e.client_order_id) else { continue };
            match e.kind.as_str() {
                "fill" => {
                    engine.apply_fill(id, e.quantity.unwrap_or(0.0), e.price.unwrap_or(0.0), e.ts, journal);
                }
                "rejected" => {
                    engine.end_order(id, OrderStatus::Rejected, e.ts, &e.message, journal);
                }
                _ => {
                    engine.end_order(id, OrderStatus::Cancelled, e.ts, &e.message, journal);
                }
            }
        }
    }

    /// Step 1 of a timestamp: applies the broker's outcomes to the engine at bar time `ts`,
    /// and trips the breaker when the broker keeps failing.
    pub async fn sync(&mut self, engine: &mut Engine, ts: i64, journal: &mut Journal) {
        if self.failures >= self.breaker_threshold && engine.trading_state().mode != Mode::Halted {
            let message = format!(
                "{} consecutive broker failures; trading paused until `dsl resume`. Last: {}",
                self.failures, self.last_failure
            );
            engine.escalate(Mode::Halted, ts, "broker_unavailable", &message, journal);
        }
        let working: Vec<Order> = engine.external_orders().to_vec();
        if working.is_empty() {
            return;
        }
        let need_poll = working.iter().any(|o| matches!(self.state(o.client_order_id), Some(State::Sent(_))));
        let open: HashMap<String, super::alpaca::model::Order> = if need_poll {
            match self.client.orders("open", None).await {
                Ok(list) => {
                    self.failures = 0;
                    list.into_iter().map(|o| (o.client_order_id.clone(), o)).collect()
                }
                Err(e) => {
                    self.failed(journal, ts, "", &e);
                    return;
                }
            }
        } else {
            HashMap::new()
        };
        for order in working {
            let id = order.client_order_id;
            let coid = id.as_str().to_string();
            match self.state(id) {
                Some(State::Rejected(reason)) => {
                    let message = format!("broker rejected: {reason}");
                    engine.end_order(id, OrderStatus::Rejected, ts, &message, journal);
                    self.event(journal, ts, &coid, "rejected", None, None, message);
                    self.set_state(id, State::Closed);
                }
                Some(State::Pending { maybe_sent: true }) => {
                    // It may have reached the broker before a crash: if it did, it is ours.
                    match self.client.order_by_client_order_id(&coid).await {
                        Ok(Some(o)) => {
                            self.failures = 0;
                            self.adopt(journal, id, &o);
                            if o.is_final() {
                                self.apply_final(engine, journal, ts, id, &o);
                            } else {
                                self.note_partial(journal, ts, id, &o);
                            }
                        }
                        Ok(None) => {}
                        Err(e) => self.failed(journal, ts, &coid, &e),
                    }
                }
                Some(State::Sent(_)) => {
                    if let Some(o) = open.get(&coid) {
                        self.note_partial(journal, ts, id, o);
                        continue;
                    }
                    match self.client.order_by_client_order_id(&coid).await {
                        Ok(Some(o)) if o.is_final() => {
                            self.failures = 0;
                            self.apply_final(engine, journal, ts, id, &o);
                        }
                        Ok(Some(o)) => self.note_partial(journal, ts, id, &o),
                        Ok(None) => {
                            // The broker has no such order after all: send it again (looked up first).
                            self.set_state(id, State::Pending { maybe_sent: true });
                            self.event(journal, ts, &coid, "resubmit", None, None, "unknown at the broker".into());
                        }
                        Err(e) => self.failed(journal, ts, &coid, &e),
                    }
                }
                _ => {}
            }
        }
    }

    fn state(&self, id: ClientOrderId) -> Option<State> {
        self.orders.get(&id).map(|t| t.state.clone())
    }

    fn set_state(&mut self, id: ClientOrderId, state: State) {
        if let Some(t) = self.orders.get_mut(&id) {
            t.state = state;
        }
    }

    fn note_partial(&mut self, journal: &mut Journal, ts: i64, id: ClientOrderId, o: &super::alpaca::model::Order) {
        let filled = o.filled();
        let Some(t) = self.orders.get_mut(&id) else { return };
        if filled > t.partial {
            t.partial = filled;
            let message = format!(
                "partially filled: {} of {} at {}",
                qty_text(filled),
                o.qty.map(qty_text).unwrap_or_else(|| "?".into()),
                o.filled_avg_price.map(|p| format!("{p}")).unwrap_or_else(|| "?".into())
            );
            self.event(journal, ts, id.as_str(), "partial_fill", Some(filled), o.filled_avg_price, message);
        }
    }

    fn apply_final(
        &mut self,
        engine: &mut Engine,
        journal: &mut Journal,
        ts: i64,
        id: ClientOrderId,
        o: &super::alpaca::model::Order,
    ) {
        let coid = id.as_str().to_string();
        let filled = o.filled();
        match o.filled_avg_price {
            Some(price) if filled > 0.0 => {
                engine.apply_fill(id, filled, price, ts, journal);
                let message = if o.status == "filled" {
                    "filled".to_string()
                } else {
                    format!("{} after a partial fill of {}", o.status, qty_text(filled))
                };
                self.event(journal, ts, &coid, "fill", Some(filled), Some(price), message);
                let c = coid.clone();
                journal.exec(move |conn, run| broker_log::set_fill(conn, run, &c, ts, filled, price));
            }
            _ => {
                let message = format!("broker status {}", o.status);
                let status = if o.status == "rejected" { OrderStatus::Rejected } else { OrderStatus::Cancelled };
                engine.end_order(id, status, ts, &message, journal);
                let kind = if status == OrderStatus::Rejected { "rejected" } else { "cancelled" };
                self.event(journal, ts, &coid, kind, None, None, message);
            }
        }
        self.set_state(id, State::Closed);
    }

    /// Step 2: records the engine's new requests (write-ahead `pending` rows for submissions).
    pub fn record(&mut self, requests: Vec<BrokerRequest>, journal: &mut Journal) {
        for r in requests {
            match r {
                BrokerRequest::Submit(o) => {
                    let (bid, ask, mid) = self.bar_quote(&o);
                    let rec = self.pending_record(&o, bid, ask, mid);
                    journal.exec(move |c, run| broker_log::insert_pending(c, run, &rec));
                    self.track(o, State::Pending { maybe_sent: false });
                }
                BrokerRequest::Cancel(o) => match self.orders.get_mut(&o.client_order_id) {
                    Some(t) => t.cancel = true,
                    None => self.track_cancel(o),
                },
            }
        }
    }

    fn track_cancel(&mut self, o: Order) {
        let id = o.client_order_id;
        self.track(o, State::Pending { maybe_sent: true });
        if let Some(t) = self.orders.get_mut(&id) {
            t.cancel = true;
        }
    }

    /// The bar-based quote estimate: the order's reference price (the last close) as mid,
    /// `half_spread` either side.
    fn bar_quote(&self, o: &Order) -> (f64, f64, f64) {
        let mid = o.reference_price;
        (mid * (1.0 - self.half_spread), mid * (1.0 + self.half_spread), mid)
    }

    fn pending_record(&self, o: &Order, bid: f64, ask: f64, mid: f64) -> PendingRecord {
        let (limit_price, stop_price) = match o.order_type {
            OrderType::Limit(p) => (Some(p), None),
            OrderType::Stop(p) => (None, Some(p)),
            OrderType::Market => (None, None),
        };
        PendingRecord {
            client_order_id: o.client_order_id.as_str().to_string(),
            created_ts: o.created_ts,
            symbol: self.symbols[o.symbol].clone(),
            side: o.side.as_str(),
            order_type: o.order_type.as_str(),
            time_in_force: o.time_in_force.as_str(),
            quantity: units(o),
            limit_price,
            stop_price,
            bid,
            ask,
            mid,
        }
    }

    /// True when some request waits to be sent.
    pub fn has_work(&self) -> bool {
        self.orders.values().any(|t| matches!(t.state, State::Pending { .. }) || t.cancel)
    }

    /// Step 4: sends the recorded requests, after their records are committed. `ts` is the
    /// bar time of the timestamp just committed (for the journal rows).
    pub async fn dispatch(&mut self, ts: i64, journal: &mut Journal) {
        let ids: Vec<ClientOrderId> = self.sequence.clone();
        for id in ids {
            let Some(t) = self.orders.get(&id).cloned() else { continue };
            let coid = id.as_str().to_string();
            match (&t.state, t.cancel) {
                (State::Pending { maybe_sent }, false) => self.submit(journal, ts, &t.order, *maybe_sent).await,
                (State::Pending { maybe_sent: false }, true) => {
                    // Never sent: nothing to cancel at the broker.
                    self.set_state(id, State::Closed);
                    self.clear_cancel(id);
                    journal
                        .exec(move |c, run| broker_log::set_state(c, run, &coid, "cancelled_unsent", None, None, None));
                }
                (State::Pending { maybe_sent: true }, true) => {
                    // It may be at the broker: find it, then cancel it there.
                    match self.client.order_by_client_order_id(&coid).await {
                        Ok(Some(o)) => {
                            self.set_state(id, State::Sent(o.id.clone()));
                            self.cancel(journal, ts, id, &o.id).await;
                        }
                        Ok(None) => {
                            self.set_state(id, State::Closed);
                            self.clear_cancel(id);
                            journal.exec(move |c, run| {
                                broker_log::set_state(c, run, &coid, "cancelled_unsent", None, None, None)
                            });
                        }
                        Err(e) => self.failed(journal, ts, &coid, &e),
                    }
                }
                (State::Sent(bid), true) => {
                    let bid = bid.clone();
                    self.cancel(journal, ts, id, &bid).await;
                }
                (State::Rejected(_) | State::Closed, true) => self.clear_cancel(id),
                _ => {}
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

    async fn cancel(&mut self, journal: &mut Journal, ts: i64, id: ClientOrderId, broker_id: &str) {
        let coid = id.as_str().to_string();
        match self.client.cancel_order(broker_id).await {
            Ok(()) => {
                self.failures = 0;
                self.set_state(id, State::Closed);
                self.clear_cancel(id);
                journal.exec(move |c, run| broker_log::set_state(c, run, &coid, "cancel_sent", None, None, None));
            }
            Err(e @ BrokerError::Rejected { .. }) => {
                // 422: no longer cancelable (filled?); 404: unknown. Reconciliation will tell.
                self.set_state(id, State::Closed);
                self.clear_cancel(id);
                self.event(journal, ts, &coid, "cancel_failed", None, None, e.to_string());
            }
            Err(e) => self.failed(journal, ts, &coid, &e),
        }
    }

    async fn submit(&mut self, journal: &mut Journal, ts: i64, order: &Order, maybe_sent: bool) {
        let id = order.client_order_id;
        let coid = id.as_str().to_string();
        if maybe_sent {
            match self.client.order_by_client_order_id(&coid).await {
                Ok(Some(o)) => return self.adopt(journal, id, &o),
                Ok(None) => {}
                Err(e) => return self.failed(journal, ts, &coid, &e),
            }
        }
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
        let req = self.request(order);
        match self.client.submit_order(&req).await {
            Ok(o) => {
                self.failures = 0;
                if o.status == "partially_filled" {
                    self.note_partial(journal, ts, id, &o);
                }
                self.adopt(journal, id, &o);
            }
            Err(BrokerError::Rejected { status: 422, message, .. }) if message.contains("client_order_id") => {
                // Already used: the order exists. Adopt it, never send it twice.
                match self.client.order_by_client_order_id(&coid).await {
                    Ok(Some(o)) => self.adopt(journal, id, &o),
                    Ok(None) => self.reject(journal, id, &message),
                    Err(e) => self.failed(journal, ts, &coid, &e),
                }
            }
            Err(BrokerError::Rejected { status, code, message, .. }) => {
                let reason =
                    format!("HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default());
                self.reject(journal, id, &reason);
            }
            Err(e) if e.outcome_unknown() || matches!(e, BrokerError::Malformed { .. }) => {
                // It may have reached the broker: look it up before any retry.
                self.failed(journal, ts, &coid, &e);
                match self.client.order_by_client_order_id(&coid).await {
                    Ok(Some(o)) => self.adopt(journal, id, &o),
                    Ok(None) => self.set_state(id, State::Pending { maybe_sent: true }),
                    Err(_) => self.set_state(id, State::Pending { maybe_sent: true }),
                }
            }
            Err(e) => self.failed(journal, ts, &coid, &e),
        }
    }

    fn adopt(&mut self, journal: &mut Journal, id: ClientOrderId, o: &super::alpaca::model::Order) {
        self.set_state(id, State::Sent(o.id.clone()));
        let (coid, bid, status) = (id.as_str().to_string(), o.id.clone(), o.status.clone());
        journal.exec(move |c, run| broker_log::set_state(c, run, &coid, "sent", Some(&bid), Some(&status), None));
    }

    fn reject(&mut self, journal: &mut Journal, id: ClientOrderId, reason: &str) {
        self.set_state(id, State::Rejected(reason.to_string()));
        let (coid, reason) = (id.as_str().to_string(), reason.to_string());
        journal.exec(move |c, run| broker_log::set_state(c, run, &coid, "rejected", None, None, Some(&reason)));
    }

    fn request(&self, o: &Order) -> OrderRequest {
        let (limit_price, stop_price) = match o.order_type {
            OrderType::Limit(p) => (Some(price_text(p)), None),
            OrderType::Stop(p) => (None, Some(price_text(p))),
            OrderType::Market => (None, None),
        };
        OrderRequest {
            symbol: self.symbols[o.symbol].clone(),
            qty: qty_text(units(o)),
            side: o.side.as_str(),
            order_type: o.order_type.as_str(),
            time_in_force: o.time_in_force.as_str(),
            limit_price,
            stop_price,
            client_order_id: o.client_order_id.as_str().to_string(),
        }
    }

    /// Compares the broker's positions and cash with the engine's at bar time `ts` (after
    /// [`Gateway::sync`]): at the first bar after a start, then at the first bar at least
    /// [`RECONCILE_EVERY`] seconds later with no order working at the broker (a position
    /// changed outside the bot, a fill the bot missed). A mismatch halts the bot
    /// (`reconcile_mismatch`).
    pub async fn reconcile(&mut self, engine: &mut Engine, ts: i64, journal: &mut Journal) -> Result<(), Diagnostic> {
        if ts < self.next_reconcile {
            return Ok(());
        }
        if self.orders.values().any(|t| matches!(t.state, State::Pending { maybe_sent: true })) {
            // An order whose fate is unknown would make the comparison wrong: next time.
            return Ok(());
        }
        if self.next_reconcile != i64::MIN && self.orders.values().any(|t| matches!(t.state, State::Sent(_))) {
            // Mid-run, only at a quiet moment: fills in flight move cash before the bot sees them.
            return Ok(());
        }
        let (positions, account) = match (self.client.positions().await, self.client.account().await) {
            (Ok(p), Ok(a)) => (p, a),
            (Err(e), _) | (_, Err(e)) => {
                self.failed(journal, ts, "", &e);
                return Ok(());
            }
        };
        self.next_reconcile = ts.saturating_add(RECONCILE_EVERY);
        let units = engine.units_by_symbol();
        let mut problems = Vec::new();
        for (i, symbol) in self.symbols.iter().enumerate() {
            let broker: f64 = positions.iter().filter(|p| &p.symbol == symbol).map(|p| p.signed_qty()).sum();
            // Fills on orders still open are the broker's already and the engine's later.
            let in_flight: f64 = self
                .orders
                .values()
                .filter(|t| t.order.symbol == i && matches!(t.state, State::Sent(_)))
                .map(|t| if t.order.side == Side::Buy { t.partial } else { -t.partial })
                .sum();
            let ours = units[i] + in_flight;
            if (broker - ours).abs() > 1e-6 * ours.abs().max(1.0) {
                problems.push(format!(
                    "{symbol}: the broker holds {} units, the bot {}",
                    qty_text(broker + 0.0),
                    qty_text(ours + 0.0)
                ));
            }
        }
        let tolerance = (engine.cash().abs() * 1e-4).max(1.0);
        if account.cash < engine.cash() - tolerance {
            problems.push(format!("cash: the broker has {:.2}, the bot counts on {:.2}", account.cash, engine.cash()));
        }
        let message = if problems.is_empty() {
            format!(
                "positions match in {} symbols; broker cash {:.2}, bot cash {:.2}",
                self.symbols.len(),
                account.cash,
                engine.cash()
            )
        } else {
            problems.join("; ")
        };
        self.event(journal, ts, "", "reconcile", None, None, message.clone());
        if !problems.is_empty() {
            engine.escalate(
                Mode::Halted,
                ts,
                "reconcile_mismatch",
                &format!("reconciliation with the broker failed: {message}; check the account, then `dsl resume`"),
                journal,
            );
        }
        Ok(())
    }
}

/// The units an order asks for (the estimate at creation for all-cash and closing orders).
fn units(o: &Order) -> f64 {
    match o.quantity {
        Quantity::Units(u) => u,
        Quantity::AllCash | Quantity::ClosePosition => o.estimated_units,
    }
}

/// Broker trouble goes to stderr as it happens (the journal has the details).
fn warn(message: &str) {
    eprintln!("warning: {message}");
}
