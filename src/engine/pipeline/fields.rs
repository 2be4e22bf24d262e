//! The context fields rules read (`account.*`, `symbol.*`, `position.*`, `order.*`,
//! `bucket.*`), gathered from the engine's state for one slot or one order.

use super::*;

/// The ids of `symbol.spread_source`'s two values, hashed once.
static QUOTE: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| string_id("quote"));
static ESTIMATE: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| string_id("estimate"));

impl Engine {
    pub(super) fn account_fields(&self, f: &mut FieldValues) {
        let pv = self.positions_value();
        let mut exposure = 0.0;
        let mut open = 0.0;
        for s in self.active_slots() {
            if let Some(p) = &s.position {
                exposure += (p.quantity * self.symbols[s.symbol].last_close).abs();
                open += 1.0;
            } else if s.pending_market {
                exposure += s.pending_notional.abs();
            }
        }
        let equity = self.portfolio.equity(pv);
        let peak = self.portfolio.peak_equity().max(equity);
        f[FieldId::AccountEquity as usize] = equity;
        f[FieldId::AccountCash as usize] = self.portfolio.cash();
        f[FieldId::AccountExposure as usize] = exposure;
        f[FieldId::AccountPeakEquity as usize] = peak;
        f[FieldId::AccountDrawdown as usize] = if peak > 0.0 { (peak - equity) / peak } else { 0.0 };
        f[FieldId::AccountOpenPositions as usize] = open;
        let start = self.portfolio.day_start_equity();
        f[FieldId::AccountDailyPnl as usize] = equity - start;
        f[FieldId::AccountDailyReturn as usize] = if start > 0.0 { equity / start - 1.0 } else { f64::NAN };
        f[FieldId::AccountLossStreak as usize] = f64::from(self.risk.loss_streak());
        let now = self.now;
        let within = |secs: i64| self.risk.orders_within(now, secs) as f64;
        f[FieldId::AccountOrdersLastMinute as usize] = within(60);
        f[FieldId::AccountOrdersLastHour as usize] = within(3_600);
        f[FieldId::AccountOrdersToday as usize] = f64::from(self.risk.orders_today());
    }

    /// Sets the `symbol.*` fields for symbol index `si` (the account fields must be set), and
    /// the `bucket.*` fields when `held` is given.
    pub(super) fn symbol_fields(&self, si: usize, f: &mut FieldValues, held: Option<&Held>) {
        let sym = &self.symbols[si];
        let mut value = 0.0;
        for &s in &sym.slots {
            let slot = &self.slots[s];
            match &slot.position {
                Some(p) => value += (p.quantity * sym.last_close).abs(),
                None if slot.pending_market => value += slot.pending_notional.abs(),
                None => {}
            }
        }
        let equity = f[FieldId::AccountEquity as usize];
        f[FieldId::SymbolName as usize] = sym.name_id;
        f[FieldId::SymbolDailyChange as usize] = sym.last_close / sym.day_base - 1.0;
        f[FieldId::SymbolWeight as usize] = if equity > 0.0 { value / equity } else { f64::NAN };
        let (bid, ask, spread, quoted) = self.settings.costs.market(sym.quote, sym.last_close);
        f[FieldId::SymbolBid as usize] = bid;
        f[FieldId::SymbolAsk as usize] = ask;
        f[FieldId::SymbolSpread as usize] = spread;
        f[FieldId::SymbolSpreadSource as usize] = if quoted { *QUOTE } else { *ESTIMATE };
        if let Some(clock) = &sym.session {
            let s = clock.fields(sym.last_ts, sym.bar_secs);
            f[FieldId::SessionIsOpen as usize] = s.is_open;
            f[FieldId::SessionMinutesSinceOpen as usize] = s.minutes_since_open;
            f[FieldId::SessionMinutesToClose as usize] = s.minutes_to_close;
            f[FieldId::SessionDayOfWeek as usize] = s.day_of_week;
            f[FieldId::SessionDate as usize] = s.date;
            f[FieldId::SessionEarlyClose as usize] = s.early_close;
        }
        if let (Some(a), Some(held)) = (self.risk.allocations().first(), held) {
            f[FieldId::BucketName as usize] = self.risk.bucket_id(si);
            f[FieldId::BucketWeight as usize] = a.bucket_weight(si, &held.view(equity));
        }
    }

    pub(super) fn fields_for_slot(&self, slot_id: usize) -> FieldValues {
        let mut f = NO_FIELDS;
        self.account_fields(&mut f);
        let slot = &self.slots[slot_id];
        self.symbol_fields(slot.symbol, &mut f, self.bucket_holdings().as_ref());
        if let Some(p) = &slot.position {
            let last = self.symbols[slot.symbol].last_close;
            position_fields(&mut f, p.quantity, p.entry_price, last, p.bars_held as f64);
        }
        f
    }

    pub(super) fn fields_for_order(&self, order: &Order) -> FieldValues {
        let mut f = NO_FIELDS;
        self.account_fields(&mut f);
        self.symbol_fields(order.symbol, &mut f, self.bucket_holdings().as_ref());
        let sym = &self.symbols[order.symbol];
        let (mut qty, mut cost) = (0.0, 0.0);
        for &s in &sym.slots {
            if let Some(p) = &self.slots[s].position {
                qty += p.quantity;
                cost += p.quantity * p.entry_price;
            }
        }
        let entry = if qty > 0.0 { cost / qty } else { f64::NAN };
        position_fields(&mut f, qty, entry, sym.last_close, f64::NAN);
        f[FieldId::OrderSymbol as usize] = sym.name_id;
        f[FieldId::OrderStrategy as usize] = self.strategy_ids[order.strategy];
        f[FieldId::OrderSide as usize] = string_id(order.side.as_str());
        f[FieldId::OrderIntent as usize] = string_id(order.intent.as_str());
        f[FieldId::OrderQuantity as usize] = order.estimated_units;
        f[FieldId::OrderPrice as usize] = order.reference_price;
        f[FieldId::OrderNotional as usize] = order.notional();
        if order.intent == Intent::Entry {
            let atr_stop = self.slots[order.slot].pending_stop;
            if atr_stop.is_finite() && order.reference_price > 0.0 {
                f[FieldId::OrderStopLoss as usize] = atr_stop / order.reference_price;
            } else if let Some(stop) = &self.bundle.strategies[order.strategy].doc.stop_loss {
                f[FieldId::OrderStopLoss as usize] = stop.value.value;
            }
            // A trailing stop starts its distance below the fill: the nearer stop applies.
            let distance = self.trail_distance(order.slot, order.reference_price);
            if distance.is_finite() {
                let f = &mut f[FieldId::OrderStopLoss as usize];
                *f = if f.is_nan() { distance } else { f.min(distance) };
            }
        }
        let costs = &self.settings.costs;
        let spread = costs.spread_for(sym.quote);
        f[FieldId::OrderRoundTripCost as usize] = costs.round_trip(order.reference_price, spread);
        f[FieldId::OrderExpectedReturn as usize] = order.expected_return;
        f
    }
}
