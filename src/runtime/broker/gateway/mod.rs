//! The bridge between the engine and an outside broker (Alpaca's Trading API, or a mock
//! server speaking it): write-ahead order records, submission with lookup before any retry,
//! protective orders the broker accepts, polling for fills, reconciliation and the broker
//! circuit breaker.
//!
//! One timestamp of a running bot with a gateway (the run loop, `bot::paper`):
//!
//! 1. [`Gateway::sync`]: the outcomes of the orders at the broker are applied to the engine
//!    (final fills at the broker's average price; cancellations; rejections, expiries and
//!    withheld orders of the last dispatch), each journaled as a `broker_events` row so a
//!    restart can replay it. Partial fills are journaled as they appear and applied when the
//!    order is final. Every figure is checked first ([`Gateway::sync`] lists the checks): what
//!    fails a check is a `broker_anomaly` that halts the bot.
//! 2. The bars go through the engine; its new [`BrokerRequest`]s are recorded with
//!    [`Gateway::record`] as `pending` `broker_orders` rows, in the timestamp's transaction.
//! 3. The checkpoint commits; the loop waits for the commit ([`crate::runtime::journal::Journal::sync`]):
//!    every order is durable before it is sent.
//! 4. [`Gateway::dispatch`] sends them (see `dispatch.rs`): cancellations first, confirmed
//!    before any sell of the same position goes out; then submissions, each looked up by
//!    `client_order_id` first when it may have reached the broker already. An order decided
//!    on a bar older than [`Gateway::max_order_age`] is not sent (`expired`); while the bot is
//!    HALTED only cancellations and exits (protective orders, flattening) are sent, entries are
//!    `withheld`.
//!
//! **Circuit breaker.** After [`Gateway::breaker_threshold`] broker failures in a row
//! (timeouts, connection failures, 5xx, rate limits that outlast the retries, malformed
//! bodies) the bot is HALTED with reason `broker_unavailable` (seed 001: "if Alpaca down,
//! pause trading") until a person runs `dsl resume`. Any answer from the broker (a 2xx, or a
//! 4xx refusal: the broker is up) resets the count, and so does the trip itself, so a resumed
//! bot halts again only after as many new failures in a row.
//!
//! **Reconciliation** (`reconcile.rs`) runs at the first timestamp after every start and then
//! at least every [`RECONCILE_EVERY`] seconds of bar time, also while protective orders work.
//!
//! Nothing the broker sends reaches an error, a log line or the journal before the API keys
//! are scrubbed out of it ([`crate::runtime::broker::alpaca`]).

mod dispatch;
mod reconcile;
mod sync;

use std::collections::HashMap;
use std::time::Duration;

use crate::engine::events::OrderStatus;
use crate::engine::external::BrokerRequest;
use crate::engine::orders::{ClientOrderId, Order, OrderType, Quantity};
use crate::engine::pipeline::Engine;
use crate::engine::trading_state::TradingState;

use crate::runtime::broker::alpaca::model::Order as BrokerOrder;
use crate::runtime::broker::alpaca::{BrokerError, MarketDataClient, TradingClient};
use crate::runtime::journal::Journal;
use crate::runtime::journal::broker_log::{self, AppliedEvent, BrokerOrderRecord, PendingRecord};

pub use dispatch::DispatchContext;
pub use reconcile::RECONCILE_EVERY;

/// Where one of our orders stands with the broker.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Recorded, not known to have reached the broker. `maybe_sent`: it may have (a restart,
    /// or a submission whose outcome is unknown): look it up before sending.
    Pending { maybe_sent: bool },
    /// The broker has it (its id).
    Sent(String),
    /// A cancellation was sent (or refused as too late): waiting for the broker's final word.
    Cancelling(String),
    /// The broker's final word, seen while dispatching; applied to the engine at the next sync.
    Final(Box<BrokerOrder>),
    /// Not sent and never will be (`rejected`, `expired`, `withheld`, `cancelled`): the
    /// engine learns it at the next sync.
    Dropped { kind: &'static str, reason: String },
    /// Settled: forgotten at the end of the dispatch.
    Closed,
}

#[derive(Debug, Clone)]
struct Tracked {
    state: State,
    order: Order,
    /// A cancellation the engine asked for and not yet sent.
    cancel: bool,
    /// The engine cancelled it: a fill now raced the cancellation.
    cancelled: bool,
    /// Filled units seen on a still-open order (for partial-fill notes).
    partial: f64,
    /// Units sent, or to send (an exit reduced by a racing protective fill).
    quantity: f64,
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
    /// Broker failures in a row.
    failures: u32,
    /// The last failure, for the breaker's message.
    last_failure: String,
    /// Broker failures in a row that halt the bot.
    pub breaker_threshold: u32,
    /// Next `broker_events` number.
    seq: i64,
    /// Half the spread used for bar-based quotes (fraction), when there is no quote feed.
    half_spread: f64,
    /// Bar time of the next reconciliation (`i64::MIN`: at the first bar).
    next_reconcile: i64,
    /// Seconds of bar time after which an order not yet sent is stale and is not sent (the
    /// staleness window; protective stop and limit orders excepted: they protect a position
    /// that is still there). Default: one hour; `dsl run` sets one bar of the strategies'
    /// timeframe, or four days (the next session across a weekend or a holiday) for daily bars.
    pub max_order_age: i64,
    /// How long a dispatch waits for the broker to confirm cancellations before the sells
    /// that wait for them are held to the next dispatch.
    pub cancel_wait: Duration,
    /// Anomalies met while dispatching (no engine at hand): halt at the next sync.
    anomalies: Vec<(String, String)>,
}

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
            max_order_age: 3600,
            cancel_wait: Duration::from_secs(5),
            anomalies: Vec::new(),
        }
    }

    /// Sets the broker symbol of each engine symbol index (the run's symbol order).
    pub fn set_symbols(&mut self, symbols: Vec<String>) {
        self.symbols = symbols;
    }

    /// Restores what a restarted run recorded: each order's state (`pending` ones may have
    /// reached the broker, so they are looked up before being sent) and the event numbering.
    /// Call after the muted replay, with the engine's working orders and those it cancelled
    /// without a confirmation yet.
    pub fn restore(&mut self, records: &[BrokerOrderRecord], working: &[Order], cancelling: &[Order], next_seq: i64) {
        self.seq = next_seq;
        let all = working.iter().map(|o| (o, false)).chain(cancelling.iter().map(|o| (o, true)));
        for (o, cancelled) in all {
            let record = records.iter().find(|r| r.client_order_id == o.client_order_id.as_str());
            let state = match record.map(|r| (r.state.as_str(), &r.broker_order_id)) {
                Some(("sent", Some(id))) => State::Sent(id.clone()),
                Some(("cancel_sent", Some(id))) => State::Cancelling(id.clone()),
                Some((kind @ ("rejected" | "expired" | "withheld"), _)) => State::Dropped {
                    kind: match kind {
                        "rejected" => "rejected",
                        "expired" => "expired",
                        _ => "withheld",
                    },
                    reason: record.and_then(|r| r.message.clone()).unwrap_or_default(),
                },
                Some(("cancelled_unsent", _)) => {
                    State::Dropped { kind: "cancelled", reason: "cancelled before it was sent".into() }
                }
                _ => State::Pending { maybe_sent: true },
            };
            let cancel = cancelled && matches!(state, State::Sent(_) | State::Pending { .. });
            self.track(o.clone(), state);
            if let Some(t) = self.orders.get_mut(&o.client_order_id) {
                t.cancel = cancel;
                t.cancelled = cancelled;
                if let Some(r) = record {
                    t.quantity = r.quantity;
                }
            }
        }
    }

    fn track(&mut self, order: Order, state: State) {
        let id = order.client_order_id;
        let quantity = units(&order);
        let t = Tracked { state, order, cancel: false, cancelled: false, partial: 0.0, quantity };
        if self.orders.insert(id, t).is_none() {
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

    /// The broker answered (a 2xx, or a 4xx refusal): the failures in a row end.
    fn answered(&mut self) {
        self.failures = 0;
    }

    /// A failed broker interaction: journaled, warned about, and counted toward the breaker
    /// unless the broker answered it (a 4xx refusal).
    fn failed(&mut self, journal: &mut Journal, ts: i64, id: &str, e: &BrokerError) {
        if matches!(e, BrokerError::Rejected { .. }) {
            self.answered();
        } else {
            self.failures += 1;
            self.last_failure = e.to_string();
        }
        tracing::warn!(client_order_id = id, kind = e.kind(), "broker: {e}");
        self.event(journal, ts, id, "broker_error", None, None, format!("{} ({})", e, e.kind()));
    }

    /// Trips the breaker after [`Gateway::breaker_threshold`] failures in a row; the trip
    /// resets the count.
    fn trip_breaker(&mut self, engine: &mut Engine, ts: i64, journal: &mut Journal) {
        if self.failures < self.breaker_threshold {
            return;
        }
        if engine.trading_state().mode != TradingState::Halted {
            let message = format!(
                "{} broker failures in a row; trading paused until `dsl resume`. Last: {}",
                self.failures, self.last_failure
            );
            engine.escalate(TradingState::Halted, ts, "broker_unavailable", &message, journal);
        }
        self.failures = 0;
    }

    /// Journals a broker anomaly and halts the bot (`broker_anomaly`): the broker reported
    /// something that cannot be true of the bot's orders or account.
    fn anomaly(&mut self, engine: &mut Engine, journal: &mut Journal, ts: i64, id: &str, what: &str) {
        tracing::error!(client_order_id = id, "broker anomaly: {what}");
        self.event(journal, ts, id, "broker_anomaly", None, None, what.to_string());
        let message =
            format!("the broker reported what cannot be trusted: {what}; check the account, then `dsl resume`");
        engine.escalate(TradingState::Halted, ts, "broker_anomaly", &message, journal);
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

    fn state(&self, id: ClientOrderId) -> Option<State> {
        self.orders.get(&id).map(|t| t.state.clone())
    }

    fn set_state(&mut self, id: ClientOrderId, state: State) {
        if let Some(t) = self.orders.get_mut(&id) {
            t.state = state;
        }
    }

    /// The OCO pair leader whose request carries `o` as its stop-loss leg, if `o` is one.
    fn leader_of(o: &Order) -> Option<ClientOrderId> {
        o.group.filter(|g| *g != o.client_order_id)
    }

    /// The stop-loss leg tracked with leader `id`, if any.
    fn partner_of(&self, id: ClientOrderId) -> Option<ClientOrderId> {
        self.sequence
            .iter()
            .copied()
            .find(|k| *k != id && self.orders.get(k).is_some_and(|t| t.order.group == Some(id)))
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
                BrokerRequest::Cancel(o) => {
                    let id = o.client_order_id;
                    if !self.orders.contains_key(&id) {
                        self.track(o, State::Pending { maybe_sent: true });
                    }
                    if let Some(t) = self.orders.get_mut(&id) {
                        t.cancel = true;
                        t.cancelled = true;
                    }
                }
            }
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

    /// The broker's health as a running bot reports it: `ok`, or `failing: N failures in a
    /// row (last: ...)` while requests fail without an answer (the breaker halts the bot at
    /// [`Gateway::breaker_threshold`]).
    pub fn health(&self) -> String {
        if self.failures == 0 {
            "ok".to_string()
        } else {
            format!("failing: {} failures in a row (last: {})", self.failures, self.last_failure)
        }
    }

    /// True when a request waits to be sent or a cancellation to be confirmed.
    pub fn has_work(&self) -> bool {
        self.orders.values().any(|t| matches!(t.state, State::Pending { .. } | State::Cancelling(_)) || t.cancel)
    }
}

/// The units an order asks for (the estimate at creation for all-cash and closing orders).
fn units(o: &Order) -> f64 {
    match o.quantity {
        Quantity::Units(u) => u,
        Quantity::AllCash | Quantity::ClosePosition => o.estimated_units,
    }
}

/// A protective order: a stop or limit exit that stands at the broker until a level is
/// reached (GTC). It is sent however old its decision is, since it protects a position
/// that is still there.
fn protective(o: &Order) -> bool {
    o.intent == crate::engine::orders::Intent::Exit && o.order_type != OrderType::Market
}
