//! Protective orders (stop-loss and take-profit) in a shape the broker accepts.
//!
//! Alpaca's Trading API (`POST /v2/orders`, its 2026 reference) takes a fractional `qty` only
//! for `type=market` with `time_in_force=day`, and refuses a sell above the shares not already
//! held for other open orders (HTTP 403, code 40310000, "insufficient qty available", with
//! `held_for_orders`). A stop and a take-profit sent as two orders for the same shares would
//! hold them twice; a fractional GTC stop would be refused outright. So, for a position of
//! `q` units:
//!
//! - the **whole shares** (`floor(q)`) are protected at the broker by GTC orders: a stop, a
//!   take-profit limit, or both as one **OCO** pair (order class `oco`: one reservation, the
//!   other leg cancelled when one fills);
//! - the **fractional remainder** (and a whole crypto position: Alpaca has no OCO for crypto, and
//!   `BASE/QUOTE` symbols are treated as crypto) is protected by the bot: when a bar's low
//!   reaches the stop (or its high the target) it sends a `day` market order for the remainder,
//!   which fills at the next open (or at the close with `fill: close`).
//!
//! A strategy exit (exit rule, `max_holding`, flattening) first cancels the position's working
//! protective orders and only then sells, so a sell never competes with them for the shares;
//! with an outside broker the gateway sends the sell once the cancellations are confirmed.
//!
//! The simulated broker keeps the same rules ([`Engine::broker_refusal`]): a backtest never relies
//! on an order Alpaca would refuse.

use super::{Engine, Slot};
use crate::engine::events::{EventSink, OrderStatus};
use crate::engine::market::Bar;
use crate::engine::orders::{ExitReason, Intent, Order, OrderReason, OrderType, Quantity, Side, TimeInForce};

/// Quantities closer than this to a whole number are whole (float noise of a sum of fills).
const WHOLE_EPS: f64 = 1e-9;

/// Whether `symbol` is a crypto pair (`BTC/USD`), for which Alpaca allows fractional GTC orders
/// but no order classes.
pub(super) use crate::engine::orders::is_crypto;

/// `q` split into the whole shares a broker order may hold and the fractional rest.
pub(super) fn split(q: f64, crypto: bool) -> (f64, f64) {
    if crypto {
        return (0.0, q);
    }
    let whole = (q + WHOLE_EPS).floor().max(0.0);
    let rest = q - whole;
    (whole, if rest > WHOLE_EPS { rest } else { 0.0 })
}

impl Engine {
    /// Places the protective orders of the position of `slot_id` (see the module docs): broker
    /// orders for its whole shares, and the bot's own watch over the rest.
    pub(super) fn place_protective(&mut self, slot_id: usize, ts: i64, sink: &mut dyn EventSink) {
        let (strategy, symbol) = (self.slots[slot_id].strategy, self.slots[slot_id].symbol);
        let Some(pos) = self.slots[slot_id].position.as_ref() else { return };
        let (stop, target, units, entry_price) = (pos.stop_price, pos.take_profit_price, pos.quantity, pos.entry_price);
        let stop_reason = if pos.trailing { ExitReason::TrailingStop } else { ExitReason::StopLoss };
        let (whole, rest) = split(units, is_crypto(&self.symbols[symbol].name));
        self.slots[slot_id].synthetic = if stop.is_finite() || target.is_finite() { rest } else { 0.0 };
        self.slots[slot_id].remainder_due = None;
        if whole <= 0.0 {
            return;
        }
        let last = self.symbols[symbol].last_close;
        let reference = if last.is_nan() { entry_price } else { last };
        let mut wanted = Vec::new();
        if target.is_finite() {
            wanted.push((OrderType::Limit(target), ExitReason::TakeProfit));
        }
        if stop.is_finite() {
            wanted.push((OrderType::Stop(stop), stop_reason));
        }
        let mut group = None;
        let pair = wanted.len() == 2;
        for (order_type, reason) in wanted {
            let id = self.next_id(slot_id, ts);
            if pair && group.is_none() {
                group = Some(id);
            }
            let o = Order {
                client_order_id: id,
                slot: slot_id,
                strategy,
                symbol,
                side: Side::Sell,
                intent: Intent::Exit,
                order_type,
                time_in_force: TimeInForce::Gtc,
                quantity: Quantity::Units(whole),
                estimated_units: whole,
                reference_price: reference,
                created_ts: ts,
                reason: OrderReason::Exit(reason),
                expected_return: f64::NAN,
                group,
            };
            if !self.admit(&o, o.created_ts, false, sink) {
                continue;
            }
            let (s, y) = self.names(&o);
            sink.order(&o, s, y, OrderStatus::Submitted, "");
            self.stats.orders_submitted += 1;
            self.hand_over(o);
        }
    }

    /// The bot's own watch over the unprotected remainder of each position of `symbol`: when
    /// `bar` reaches its stop (or target), a market sell for it (the stop wins when both are
    /// reached, as for broker orders).
    pub(super) fn watch_remainders(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        for k in 0..self.symbols[symbol].slots.len() {
            let slot_id = self.symbols[symbol].slots[k];
            let slot = &self.slots[slot_id];
            let Some(pos) = slot.position.as_ref() else { continue };
            if slot.synthetic <= 0.0 || slot.pending_market {
                continue;
            }
            // Once reached, a level stays reached until the sell is out.
            let reason = if let Some(r) = slot.remainder_due {
                r
            } else if pos.stop_price.is_finite() && bar.low <= pos.stop_price {
                if pos.trailing { ExitReason::TrailingStop } else { ExitReason::StopLoss }
            } else if pos.take_profit_price.is_finite() && bar.high >= pos.take_profit_price {
                ExitReason::TakeProfit
            } else {
                continue;
            };
            let units = slot.synthetic;
            let (strategy, sym) = (slot.strategy, slot.symbol);
            self.slots[slot_id].remainder_due = Some(reason);
            let order = Order {
                client_order_id: self.next_id(slot_id, bar.ts),
                slot: slot_id,
                strategy,
                symbol: sym,
                side: Side::Sell,
                intent: Intent::Exit,
                order_type: OrderType::Market,
                time_in_force: TimeInForce::Day,
                quantity: Quantity::Units(units),
                estimated_units: units,
                reference_price: bar.close,
                created_ts: bar.ts,
                reason: OrderReason::Exit(reason),
                expected_return: f64::NAN,
                group: None,
            };
            // Watched until a sell for it is out (a refused one is tried again at the next bar).
            if self.admit(&order, order.created_ts, false, sink) && self.submit(order, bar, sink) {
                self.slots[slot_id].synthetic = 0.0;
                self.slots[slot_id].remainder_due = None;
            }
        }
    }

    /// Cancels the working protective orders of `slot_id` and journals each as cancelled with
    /// `why`: before a strategy exit sells the whole position, or before a trailing stop is
    /// placed again. The bot's watch over the remainder ends too.
    pub(super) fn cancel_protective(&mut self, slot_id: usize, ts: i64, why: &str, sink: &mut dyn EventSink) {
        self.slots[slot_id].synthetic = 0.0;
        self.slots[slot_id].remainder_due = None;
        self.cancel_working(slot_id, ts, why, |o| o.order_type != OrderType::Market, sink);
    }

    /// Cancels the working orders of `slot_id` that match `pred` (at the simulated broker, or
    /// queued for the outside one) and journals each as cancelled with `why`.
    pub(super) fn cancel_working(
        &mut self,
        slot_id: usize,
        ts: i64,
        why: &str,
        pred: impl Fn(&Order) -> bool,
        sink: &mut dyn EventSink,
    ) {
        let symbol = self.slots[slot_id].symbol;
        let cancelled = match self.external.as_mut() {
            Some(book) => book.cancel_slot_where(slot_id, pred),
            None => self.broker.cancel_where(symbol, slot_id, pred),
        };
        for o in cancelled {
            sink.order_status(o.client_order_id, OrderStatus::Cancelled, ts, why);
            self.stats.orders_cancelled += 1;
        }
    }

    /// Why the broker would refuse `order`, if it would (Alpaca's rules, see the module docs):
    /// a fractional quantity in anything but a `day` market order (equities), or a sell above
    /// the units not already held for the slot's other working sells (a one-cancels-other pair
    /// holds them once).
    pub(super) fn broker_refusal(&self, order: &Order) -> Option<String> {
        let slot: &Slot = &self.slots[order.slot];
        let crypto = is_crypto(&self.symbols[order.symbol].name);
        let units = match order.quantity {
            Quantity::Units(u) => u,
            Quantity::ClosePosition => slot.position.as_ref().map_or(0.0, |p| p.quantity),
            Quantity::AllCash => order.estimated_units,
        };
        let fractional = (units - (units + WHOLE_EPS).floor()).abs() > WHOLE_EPS;
        let market_day = order.order_type == OrderType::Market && order.time_in_force == TimeInForce::Day;
        if !crypto && fractional && order.quantity != Quantity::AllCash && !market_day {
            return Some(format!(
                "broker_rules: a fractional quantity ({units}) goes only in a day market order, not a {} {} order",
                order.time_in_force.as_str(),
                order.order_type.as_str()
            ));
        }
        if order.side != Side::Sell {
            return None;
        }
        let held = slot.position.as_ref().map_or(0.0, |p| p.quantity);
        let mut groups = Vec::new();
        let mut reserved = 0.0;
        let working: Box<dyn Iterator<Item = &Order>> = match &self.external {
            Some(book) => Box::new(book.working.iter()),
            None => Box::new(self.broker.working()),
        };
        for o in working.filter(|o| o.slot == order.slot && o.side == Side::Sell) {
            if let Some(g) = o.group {
                if groups.contains(&g) {
                    continue;
                }
                groups.push(g);
            }
            reserved += match o.quantity {
                Quantity::Units(u) => u,
                _ => o.estimated_units,
            };
        }
        let available = held - reserved;
        (units > available + WHOLE_EPS).then(|| {
            format!(
                "broker_rules: insufficient quantity available: {units} asked, {held} held, {reserved} held for other orders"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_shares_and_a_remainder() {
        let (whole, rest) = split(29.631757, false);
        assert_eq!(whole, 29.0);
        assert!((rest - 0.631757).abs() < 1e-9);
        assert_eq!(split(100.0, false), (100.0, 0.0));
        assert_eq!(split(99.999_999_999_9, false), (100.0, 0.0));
        assert_eq!(split(0.4, false), (0.0, 0.4));
        assert_eq!(split(1.5, true), (0.0, 1.5));
    }
}
