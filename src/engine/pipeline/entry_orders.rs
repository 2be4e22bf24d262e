//! Limit and stop entries (`order: {type: limit, price: EXPR, expires_after: 3}` in a
//! strategy): the order's type and price from the strategy, evaluated on the signal bar, and
//! its expiry.
//!
//! The order works from the bar after the signal; the simulated broker fills a buy limit at
//! its price when a bar trades down through it (at the open when the bar opens below it) and a
//! buy stop when a bar trades up through it (at the stop, or the open when the bar opens above
//! it, with slippage) — never at a price the bar did not trade
//! ([`crate::engine::broker::SimBroker::in_range`]). While it works the slot takes no other
//! entry, and its notional counts as exposure. Unfilled after `expires_after` bars of its
//! symbol (or at the first bar of a later UTC day with `time_in_force: day`), it is cancelled,
//! journaled as `cancelled` with the reason, and at an outside broker a cancellation is sent.

use super::*;
use crate::config::strategy::EntryOrderType;
use crate::engine::orders::to_tick;

impl Engine {
    /// The type (with its price, evaluated on the current bar) and time in force of the
    /// entry order of `slot_id`: a day market order unless the strategy says otherwise. An
    /// undefined price is `NaN` (the entry then sizes nothing: fail closed).
    pub(super) fn entry_order_type(&mut self, slot_id: usize) -> (OrderType, TimeInForce) {
        let slot = &self.slots[slot_id];
        let Some(o) = self.bundle.strategies[slot.strategy].doc.entry_order.as_ref() else {
            return (OrderType::Market, TimeInForce::Day);
        };
        let (kind, day) = (o.order_type.value, o.day);
        let price = self
            .eval_slot(
                slot_id,
                |r| r.entry_price.is_some(),
                |r, slots, f, scratch| r.entry_price.as_ref().map_or(f64::NAN, |p| eval_rule(p, slots, f, scratch)),
            )
            .unwrap_or(f64::NAN);
        // Equity prices go to the broker in whole cents (hundredths of a cent below $1): a
        // buy limit rounds down (never pays more than asked), a buy stop up (never triggers
        // below the level asked), so the journal's price is the broker's.
        let equity = !super::protect::is_crypto(&self.symbols[self.slots[slot_id].symbol].name);
        let order_type = match kind {
            EntryOrderType::Limit => OrderType::Limit(if equity { to_tick(price, false) } else { price }),
            EntryOrderType::Stop => OrderType::Stop(if equity { to_tick(price, true) } else { price }),
        };
        (order_type, if day { TimeInForce::Day } else { TimeInForce::Gtc })
    }

    /// Starts the expiry clock of the limit or stop entry just submitted for `slot_id` at the
    /// bar of `ts`.
    pub(super) fn start_entry_clock(&mut self, slot_id: usize, ts: i64) {
        let slot = &self.slots[slot_id];
        let Some(o) = self.bundle.strategies[slot.strategy].doc.entry_order.as_ref() else { return };
        let bars = self.symbols[slot.symbol].bars;
        let at_bar = o.expires_after.as_ref().map_or(u64::MAX, |n| bars + u64::from(n.value));
        let at_ts = if o.day { day_end(ts) } else { i64::MAX };
        self.slots[slot_id].entry_expiry = Some((at_bar, at_ts));
    }

    /// Cancels the limit and stop entries of `symbol` whose time is up after `bar` (see the
    /// module docs).
    pub(super) fn expire_entries(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        let bars = self.symbols[symbol].bars;
        for k in 0..self.symbols[symbol].slots.len() {
            let slot_id = self.symbols[symbol].slots[k];
            let Some((at_bar, at_ts)) = self.slots[slot_id].entry_expiry else { continue };
            if self.slots[slot_id].position.is_some() || !self.slots[slot_id].pending_market {
                self.slots[slot_id].entry_expiry = None;
                continue;
            }
            if bars < at_bar && bar.ts < at_ts {
                continue;
            }
            let why = if bars >= at_bar {
                "expired: the entry did not fill within its `expires_after` bars"
            } else {
                "expired: the day ended before the entry filled (time_in_force: day)"
            };
            self.cancel_working(slot_id, bar.ts, why, |o| o.intent == Intent::Entry, sink);
            let slot = &mut self.slots[slot_id];
            slot.entry_expiry = None;
            slot.pending_market = false;
            slot.pending_notional = 0.0;
            self.touch(slot_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::orders::to_tick;

    #[test]
    fn prices_round_to_the_tick_in_the_safe_direction() {
        assert_eq!(to_tick(104.82325, false), 104.82);
        assert_eq!(to_tick(104.82325, true), 104.83);
        assert_eq!(to_tick(65.16, false), 65.16);
        assert_eq!(to_tick(65.16, true), 65.16);
        assert_eq!(to_tick(0.123456, false), 0.1234);
        assert!(to_tick(f64::NAN, true).is_nan());
    }
}
