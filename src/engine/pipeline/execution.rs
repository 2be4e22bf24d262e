//! Execution and accounting: fills from the simulated broker or an outside one update cash and
//! positions, close round-trip trades (several fills are one trade at the average price), and
//! set or cancel protective orders; the end of a run cancels what still works.
//!
//! `execute_qty` (about 150 lines) books one fill: cash, the position (opened, added to, reduced
//! or closed), the protective orders it cancels or resizes, and the round trip it may close; these
//! updates must happen in this order within one call, and read best together.

use super::*;

impl Engine {
    /// Routes orders to an outside broker from now on: admitted orders are queued for
    /// [`Engine::take_requests`] instead of filling in the simulated broker, and fills come
    /// from [`Engine::apply_fill`]. Call before the first bar.
    pub fn use_external_broker(&mut self) {
        self.external = Some(ExternalBook::default());
    }

    /// The broker requests queued since the last call, in the order they were made.
    pub fn take_requests(&mut self) -> Vec<BrokerRequest> {
        self.external.as_mut().map(|b| std::mem::take(&mut b.outbox)).unwrap_or_default()
    }

    /// Orders working at the outside broker (none with the simulated broker).
    pub fn external_orders(&self) -> &[Order] {
        self.external.as_ref().map_or(&[], |b| &b.working)
    }

    /// Applies the final fill of an outside order: `quantity` units at average `price`
    /// (currency per unit) at time `ts` (UTC seconds). Commission follows the cost model;
    /// slippage is measured against the order's reference price. Returns false when no
    /// working order has that id.
    pub fn apply_fill(
        &mut self,
        id: ClientOrderId,
        quantity: f64,
        price: f64,
        ts: i64,
        sink: &mut dyn EventSink,
    ) -> bool {
        let Some(book) = self.external.as_mut() else { return false };
        let Some((order, raced)) = book.take(id) else { return false };
        if raced {
            // Cancelled by the engine, filled at the broker before the cancel arrived: booked
            // all the same (the shares are gone), and counted as filled, not cancelled.
            self.stats.orders_cancelled = self.stats.orders_cancelled.saturating_sub(1);
        }
        let base_price = order.reference_price;
        self.execute_qty(Execution { order, price, base_price }, ts, Some(quantity), sink);
        true
    }

    /// Ends an outside order that will not fill (`Cancelled` or `Rejected`, with the broker's
    /// reason), or confirms the cancellation of one the engine cancelled (nothing journaled:
    /// it was journaled as cancelled then). Returns false when no such order is known.
    pub fn end_order(
        &mut self,
        id: ClientOrderId,
        status: OrderStatus,
        ts: i64,
        reason: &str,
        sink: &mut dyn EventSink,
    ) -> bool {
        let Some(book) = self.external.as_mut() else { return false };
        let Some((order, confirmed)) = book.take(id) else { return false };
        if confirmed {
            return true;
        }
        if order.holds_slot() {
            self.slots[order.slot].pending_market = false;
            self.touch(order.slot);
        }
        sink.order_status(id, status, ts, reason);
        match status {
            OrderStatus::Rejected => self.stats.orders_rejected += 1,
            _ => self.stats.orders_cancelled += 1,
        }
        true
    }

    /// Outside orders the engine cancelled whose cancellation the broker has not confirmed
    /// yet (see [`crate::engine::external`]).
    pub fn cancelling_orders(&self) -> &[Order] {
        self.external.as_ref().map_or(&[], |b| &b.cancelling)
    }

    /// Simulates broker outages: orders sent at bar times in `[from, to)` fail (a stress
    /// scenario); working orders already at the broker stay.
    pub fn set_outages(&mut self, windows: Vec<(i64, i64)>) {
        self.risk.set_outages(windows);
    }

    pub(super) fn fill_working(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        if self.settings.fill == FillTiming::NextOpen {
            for ex in self.broker.at_open(symbol, bar) {
                self.execute(ex, bar.ts, sink);
            }
        }
        for ex in self.broker.in_range(symbol, bar) {
            self.execute(ex, bar.ts, sink);
        }
    }

    /// Turns a broker execution into a fill: resolves the quantity against cash or the
    /// position, moves cash, opens or closes the position.
    pub(super) fn execute(&mut self, ex: Execution, ts: i64, sink: &mut dyn EventSink) {
        self.execute_qty(ex, ts, None, sink);
    }

    /// [`Engine::execute`] with the quantity an outside broker filled, when there is one.
    pub(super) fn execute_qty(&mut self, ex: Execution, ts: i64, filled: Option<f64>, sink: &mut dyn EventSink) {
        let Execution { order, price, base_price } = ex;
        let costs = self.settings.costs;
        let slot_id = order.slot;
        if order.holds_slot() {
            self.slots[slot_id].pending_market = false;
            self.slots[slot_id].entry_expiry = None;
            self.touch(slot_id);
        }
        let qty = match (order.quantity, order.side) {
            _ if filled.is_some() => filled.unwrap_or(0.0),
            (Quantity::AllCash, _) => self.portfolio.cash().max(0.0) / costs.cash_per_unit(price),
            (Quantity::Units(q), Side::Buy) => q.min(self.portfolio.cash().max(0.0) / costs.cash_per_unit(price)),
            (Quantity::Units(q), Side::Sell) => q,
            (Quantity::ClosePosition, _) => self.slots[slot_id].position.as_ref().map_or(0.0, |p| p.quantity),
        };
        if !(qty > 0.0 && qty.is_finite()) || price <= 0.0 {
            sink.order_status(
                order.client_order_id,
                OrderStatus::Cancelled,
                ts,
                "nothing to fill (no cash or no position)",
            );
            self.stats.orders_cancelled += 1;
            return;
        }
        let notional = qty * price;
        let commission = costs.commission_for(qty, price);
        let fill = Fill {
            client_order_id: order.client_order_id,
            ts,
            quantity: qty,
            price,
            commission,
            slippage_cost: (price - base_price).abs() * qty,
        };
        sink.fill(&fill, &order, &self.symbols[order.symbol].name);
        sink.order_status(order.client_order_id, OrderStatus::Filled, ts, "");
        self.stats.orders_filled += 1;
        let bar_index = self.symbols[order.symbol].bars;
        match order.side {
            Side::Buy => {
                self.portfolio.debit(notional + commission);
                if let Some(pos) = self.slots[slot_id].position.as_mut() {
                    // A buy into a held position (a rebalance): one position at the average
                    // price, its cost the sum of what was paid.
                    let total = pos.quantity + qty;
                    pos.entry_price = (pos.entry_price * pos.quantity + price * qty) / total;
                    pos.quantity = total;
                    pos.entry_cost += notional + commission;
                    pos.entry_fees += commission;
                    self.touch(slot_id);
                    // Protective orders held the old size: placed again for the new one.
                    self.cancel_protective(slot_id, ts, "resized after a buy into the position", sink);
                    self.place_protective(slot_id, ts, sink);
                    return;
                }
                // The protective levels are fixed at the fill: the strategy's percentages, or
                // for ATR risk sizing the stop where the sized risk is lost.
                let doc = &self.bundle.strategies[order.strategy].doc;
                let mut stop_price = f64::NAN;
                let mut take_profit_price = f64::NAN;
                for (t, _) in protective_orders(doc, price) {
                    match t {
                        OrderType::Stop(p) => stop_price = p,
                        OrderType::Limit(p) => take_profit_price = p,
                        OrderType::Market => {}
                    }
                }
                let atr_stop = std::mem::replace(&mut self.slots[slot_id].pending_stop, f64::NAN);
                if atr_stop.is_finite() {
                    stop_price = price - atr_stop;
                }
                // A trailing stop starts below the fill price; the higher stop applies.
                let high_water = if doc.trailing_stop.is_some() { price } else { f64::NAN };
                let trail = self.trail_level(slot_id, high_water);
                let trailing = super::trailing::raises(trail, stop_price);
                if trailing {
                    stop_price = trail;
                }
                let pos = Position {
                    quantity: qty,
                    entry_price: price,
                    entry_ts: ts,
                    entry_bar: bar_index,
                    entry_cost: notional + commission,
                    entry_fees: commission,
                    bars_held: 0,
                    entry_order_id: order.client_order_id,
                    stop_price,
                    high_water,
                    trailing,
                    take_profit_price,
                    exited: Default::default(),
                };
                self.slots[slot_id].position = Some(pos);
                self.touch(slot_id);
                self.place_protective(slot_id, ts, sink);
            }
            Side::Sell => {
                self.portfolio.credit(notional - commission);
                let Some(mut pos) = self.slots[slot_id].position.take() else {
                    return;
                };
                self.touch(slot_id);
                let reason = match order.reason {
                    OrderReason::Exit(r) => r,
                    OrderReason::Rebalance => ExitReason::Rebalance,
                    OrderReason::EntryRule => ExitReason::ExitRule,
                };
                // A position may close in several fills (the whole shares at the broker's
                // stop, then the remainder; an outside broker's partial fill): the round trip
                // is recorded once nothing is left, at the average exit price.
                let qty = qty.min(pos.quantity);
                pos.exited.quantity += qty;
                pos.exited.gross += qty * price;
                pos.exited.fees += commission;
                pos.exited.reason.get_or_insert(reason);
                let closed = qty >= pos.quantity * (1.0 - 1e-9);
                // The position is gone, or smaller: its protective orders (and any pending exit)
                // are cancelled; a remainder gets new ones for its size.
                let others = match self.external.as_mut() {
                    Some(book) => book.cancel_slot(slot_id),
                    None => self.broker.cancel_where(order.symbol, slot_id, |_| true),
                };
                for o in others {
                    if o.holds_slot() {
                        self.slots[slot_id].pending_market = false;
                        self.touch(slot_id);
                    }
                    let why = if closed { "position closed" } else { "resized after a partial exit" };
                    sink.order_status(o.client_order_id, OrderStatus::Cancelled, ts, why);
                    self.stats.orders_cancelled += 1;
                }
                if !closed {
                    pos.quantity -= qty;
                    self.slots[slot_id].position = Some(pos);
                    self.touch(slot_id);
                    self.place_protective(slot_id, ts, sink);
                    return;
                }
                self.slots[slot_id].synthetic = 0.0;
                let e = pos.exited;
                let proceeds = e.gross - e.fees;
                let pnl = proceeds - pos.entry_cost;
                let trade = Trade {
                    strategy: self.strategy_names[order.strategy].clone(),
                    symbol: self.symbols[order.symbol].name.clone(),
                    entry_time: pos.entry_ts,
                    entry_price: pos.entry_price,
                    exit_time: ts,
                    // One fill: its price exactly; several: their average.
                    exit_price: if e.quantity == qty { price } else { e.gross / e.quantity },
                    quantity: e.quantity,
                    pnl,
                    pnl_pct: if pos.entry_cost != 0.0 { pnl / pos.entry_cost * 100.0 } else { 0.0 },
                    fees: pos.entry_fees + e.fees,
                    exit_reason: e.reason.unwrap_or(reason).as_str(),
                    holding_bars: bar_index.saturating_sub(pos.entry_bar),
                    entry_order_id: pos.entry_order_id,
                    exit_order_id: order.client_order_id,
                };
                self.risk.record_round_trip(trade.pnl);
                sink.trade(&trade);
                self.trades.push(trade);
            }
        }
    }

    /// Cancels every working order (end of data); positions stay open.
    pub fn finish(&mut self, ts: i64, sink: &mut dyn EventSink) {
        let mut left = self.broker.drain();
        if let Some(book) = self.external.as_mut() {
            let working = std::mem::take(&mut book.working);
            book.outbox.extend(working.iter().cloned().map(BrokerRequest::Cancel));
            book.cancelling.extend(working.iter().cloned());
            left.extend(working);
        }
        for o in left {
            if o.holds_slot() {
                self.slots[o.slot].pending_market = false;
                self.touch(o.slot);
            }
            sink.order_status(o.client_order_id, OrderStatus::Cancelled, ts, "end of data");
            self.stats.orders_cancelled += 1;
        }
        // Orders still waiting for a person: the feed ended before a decision.
        for order in self.approvals.take_all(ts) {
            self.slots[order.slot].pending_market = false;
            self.touch(order.slot);
            self.reject(&order, "end of data before a decision on its approval", sink);
        }
    }
}
