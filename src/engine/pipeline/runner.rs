//! The strategy runner: per bar, each slot's exit checks (max holding, exit rule) or entry rule,
//! the entry filter script, then sizing (fixed notional, risk per trade with an ATR stop,
//! Kelly, expected return) into an order intent with its `client_order_id`.

use super::*;

impl Engine {
    /// Feeds a bar of history to symbol index `symbol` before trading starts (a live feed's
    /// warm-up): indicators, the last close and the day's reference move on; no rule is
    /// evaluated, no order fills and nothing is journaled.
    pub fn warm_up(&mut self, symbol: usize, bar: &Bar) {
        self.advance_clock(bar.ts);
        let st = &mut self.symbols[symbol];
        st.graph.update(bar);
        st.row = None;
        st.block_len = 0;
        self.track_bar(symbol, bar);
    }

    /// Records a bar's close and time in its symbol's state.
    #[inline]
    pub(super) fn track_bar(&mut self, symbol: usize, bar: &Bar) {
        let st = &mut self.symbols[symbol];
        if bar.ts >= st.day_end {
            st.day_end = day_end(bar.ts);
            st.day_base = if st.last_close.is_nan() { bar.open } else { st.last_close };
        }
        st.last_close = bar.close;
        st.last_ts = bar.ts;
        st.bars += 1;
    }

    #[inline]
    pub(super) fn after_update(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        self.track_bar(symbol, bar);
        if self.symbols[symbol].slots.iter().any(|&s| self.slots[s].synthetic > 0.0) {
            self.watch_remainders(symbol, bar, sink);
        }
        for k in 0..self.symbols[symbol].slots.len() {
            let slot = self.symbols[symbol].slots[k];
            self.evaluate_slot(slot, bar, sink);
        }
        if self.symbols[symbol].limit_entries {
            self.expire_entries(symbol, bar, sink);
        }
        if self.symbols[symbol].trailing {
            self.ratchet_trailing_stops(symbol, bar, sink);
        }
    }

    #[inline]
    pub(super) fn evaluate_slot(&mut self, slot_id: usize, bar: &Bar, sink: &mut dyn EventSink) {
        let slot = &mut self.slots[slot_id];
        if slot.pending_market || (slot.retired && slot.position.is_none()) {
            return;
        }
        let bars_held = slot.position.as_mut().map(|p| {
            p.bars_held += 1;
            p.bars_held
        });
        let (max_holding, exit, entry, symbol) = (slot.max_holding, slot.exit, slot.entry, slot.symbol);
        let signal = decide(bars_held, max_holding, |kind| {
            let rule = if kind == RuleKind::Entry { Some(entry) } else { exit };
            rule.map(|r| match r {
                RuleRef::Node(id) => fires(self.symbols[symbol].value(id)),
                RuleRef::Program => self.eval_program(slot_id, kind == RuleKind::Entry),
            })
        });
        match signal {
            Some(Signal::Entry) if !self.entry_passes_filter(slot_id, bar, sink) => {}
            Some(Signal::Entry) => self.signal_entry(slot_id, bar, sink),
            Some(Signal::Exit(reason)) => self.signal_exit(slot_id, reason, bar, sink),
            None => {}
        }
    }

    /// Runs the strategy's entry filter script, if any: `false` or a failure vetoes the entry
    /// (and is noted).
    pub(super) fn entry_passes_filter(&mut self, slot_id: usize, bar: &Bar, sink: &mut dyn EventSink) -> bool {
        let (strategy, symbol) = (self.slots[slot_id].strategy, self.slots[slot_id].symbol);
        let Some(filter) = self.bundle.strategies[strategy].filter.clone() else { return true };
        let mut fields = NO_FIELDS;
        self.account_fields(&mut fields);
        let ctx = FilterContext {
            symbol: self.symbols[symbol].name.to_string(),
            strategy: self.bundle.strategies[strategy].name().to_string(),
            time: bar.ts,
            bar: [bar.open, bar.high, bar.low, bar.close, bar.volume],
            fields: fields.to_vec(),
        };
        let sandbox = Sandbox::shared();
        let (kind, message) = match self.budgets.run(&filter, &sandbox.limits(), || filter.filter(sandbox, &ctx)) {
            Ok(true) => return true,
            Ok(false) => {
                self.stats.entries_filtered += 1;
                (NoteKind::EntryFiltered, "the filter returned false".to_string())
            }
            Err(ScriptError::Disabled { first: false, .. }) => {
                // Disabled earlier in the run (journaled then): every entry is skipped.
                self.stats.script_errors += 1;
                return false;
            }
            Err(e @ ScriptError::Disabled { .. }) => {
                self.stats.script_errors += 1;
                (NoteKind::ScriptDisabled, format!("{e}; entries are skipped (fail closed)"))
            }
            Err(e) => {
                self.stats.script_errors += 1;
                (NoteKind::ScriptError, format!("{e}; the entry is skipped"))
            }
        };
        sink.note(&Note {
            ts: bar.ts,
            kind,
            origin: &ctx.strategy,
            symbol: &ctx.symbol,
            script: &filter.source.name,
            message: &message,
        });
        false
    }

    /// Reports the failures of custom indicator scripts on the symbol's graph.
    pub(super) fn report_script_failures(&mut self, symbol: usize, sink: &mut dyn EventSink) {
        let st = &mut self.symbols[symbol];
        let (failures, dropped) = st.graph.take_script_failures();
        self.stats.script_errors += failures.len() as u64 + dropped;
        for f in &failures {
            let (kind, message) = if f.disabled {
                (NoteKind::ScriptDisabled, format!("{}; the indicator is undefined from this bar on", f.message))
            } else {
                (NoteKind::ScriptError, format!("{}; the indicator is undefined on this bar", f.message))
            };
            sink.note(&Note {
                ts: f.ts,
                kind,
                origin: "indicator",
                symbol: &st.name,
                script: &f.script,
                message: &message,
            });
        }
        if dropped > 0 {
            let message = format!("{dropped} more script failures were not recorded");
            let ts = failures.last().map_or(st.last_ts, |f| f.ts);
            sink.note(&Note {
                ts,
                kind: NoteKind::ScriptError,
                origin: "indicator",
                symbol: &st.name,
                script: "",
                message: &message,
            });
        }
    }

    /// Evaluates a slot's entry (or exit) rule that reads context fields.
    pub(super) fn eval_program(&mut self, slot_id: usize, entry: bool) -> bool {
        let slot = &self.slots[slot_id];
        let sym = &self.symbols[slot.symbol];
        let Some(rules) = sym.program.strategies[slot.strategy].as_ref() else { return false };
        let rule = if entry { Some(&rules.entry) } else { rules.exit.as_ref() };
        let Some(rule) = rule else { return false };
        let fields = self.fields_for_slot(slot_id);
        let mut scratch = std::mem::take(&mut self.scratch);
        let v = eval_rule(rule, &self.symbols[self.slots[slot_id].symbol].current(), &fields, &mut scratch);
        self.scratch = scratch;
        fires(v)
    }

    /// The value of the slot's sizing input (ATR or volatility) on the current bar.
    pub(super) fn sizing_input(&self, slot_id: usize) -> f64 {
        self.series_value(slot_id, |r| r.sizing_input.as_ref())
    }

    /// The current-bar value of the built-in series `pick` takes from the slot's compiled
    /// rules (a graph slot: ATR, volatility); `NaN` when there is none.
    pub(super) fn series_value(&self, slot_id: usize, pick: impl Fn(&StrategyRules) -> Option<&CompiledRule>) -> f64 {
        let slot = &self.slots[slot_id];
        let sym = &self.symbols[slot.symbol];
        match sym.program.strategies[slot.strategy].as_ref().and_then(pick) {
            Some(CompiledRule { eval: RuleEval::Slot(id), .. }) => sym.value(*id),
            _ => f64::NAN,
        }
    }

    /// Full Kelly `W - (1 - W) / R` for a strategy: from its own closed trades once it has
    /// `min_trades`, else from the priors.
    pub(super) fn kelly(&self, strategy: usize, win_rate: f64, payoff: f64, min_trades: u32) -> f64 {
        let name = &self.strategy_names[strategy];
        let (mut n, mut wins, mut won, mut lost) = (0u32, 0u32, 0.0, 0.0);
        for t in self.trades.iter().filter(|t| &t.strategy == name) {
            n += 1;
            if t.pnl > 0.0 {
                wins += 1;
                won += t.pnl;
            } else {
                lost -= t.pnl;
            }
        }
        let (w, r) = if n >= min_trades && n > 0 {
            let w = f64::from(wins) / f64::from(n);
            let losses = n - wins;
            let avg_win = if wins > 0 { won / f64::from(wins) } else { 0.0 };
            let avg_loss = if losses > 0 { lost / f64::from(losses) } else { 0.0 };
            (w, if avg_loss > 0.0 { avg_win / avg_loss } else { f64::INFINITY })
        } else {
            (win_rate, payoff)
        };
        if r.is_infinite() { w } else { w - (1.0 - w) / r }
    }

    /// Runs `eval` over the compiled rules of `slot_id`'s strategy on its symbol, on the
    /// current bar with the slot's fields, when `has` says they hold what it reads (the fields
    /// are gathered only then: they cost a walk over the account); `None` otherwise.
    pub(super) fn eval_slot<R>(
        &mut self,
        slot_id: usize,
        has: impl Fn(&StrategyRules) -> bool,
        eval: impl FnOnce(&StrategyRules, &[f64], &FieldValues, &mut Vec<f64>) -> R,
    ) -> Option<R> {
        let slot = &self.slots[slot_id];
        if !self.symbols[slot.symbol].program.strategies[slot.strategy].as_ref().is_some_and(has) {
            return None;
        }
        let fields = self.fields_for_slot(slot_id);
        let mut scratch = std::mem::take(&mut self.scratch);
        let slot = &self.slots[slot_id];
        let sym = &self.symbols[slot.symbol];
        let out =
            sym.program.strategies[slot.strategy].as_ref().map(|r| eval(r, &sym.current(), &fields, &mut scratch));
        self.scratch = scratch;
        out
    }

    /// The strategy's `expected_return` on the current bar (`NaN` when not declared).
    pub(super) fn expected_return(&mut self, slot_id: usize) -> f64 {
        self.eval_slot(
            slot_id,
            |r| r.expected_return.is_some(),
            |r, slots, f, scratch| r.expected_return.as_ref().map_or(f64::NAN, |e| eval_rule(e, slots, f, scratch)),
        )
        .unwrap_or(f64::NAN)
    }

    /// The strategy's sizing scale on the current bar (see [`crate::engine::rules::eval_scale`]).
    pub(super) fn sizing_scale(&mut self, slot_id: usize) -> f64 {
        self.eval_slot(
            slot_id,
            |r| !r.sizing_scale.is_empty(),
            |r, slots, f, scratch| crate::engine::rules::eval_scale(&r.sizing_scale, slots, f, scratch),
        )
        .unwrap_or(1.0)
    }

    pub(super) fn next_id(&mut self, slot_id: usize, ts: i64) -> ClientOrderId {
        let slot = &mut self.slots[slot_id];
        if slot.seq_ts != ts {
            slot.seq_ts = ts;
            slot.seq = 0;
        }
        let seq = slot.seq;
        slot.seq += 1;
        slot.ids.id(ts, seq)
    }

    pub(super) fn signal_entry(&mut self, slot_id: usize, bar: &Bar, sink: &mut dyn EventSink) {
        let (strategy, symbol) = (self.slots[slot_id].strategy, self.slots[slot_id].symbol);
        // A limit or stop entry is sized, and seen by the guardrails, at its own price.
        let (order_type, time_in_force) = self.entry_order_type(slot_id);
        let price = order_type.price().unwrap_or(bar.close);
        let doc = &self.bundle.strategies[strategy].doc;
        let (sizing, limits) = (doc.sizing.value, doc.sizing_limits);
        let equity = self.equity();
        let input = self.sizing_input(slot_id);
        let per_equity = |f: f64| if price > 0.0 { f * equity / price } else { 0.0 };
        let mut stop_distance = f64::NAN;
        let (mut quantity, mut units) = match sizing {
            Sizing::FixedQuantity(q) => (Quantity::Units(q), q),
            Sizing::PercentOfEquity(f) => {
                let u = per_equity(f);
                (Quantity::Units(u), u)
            }
            Sizing::AllCash => {
                let est = self.broker.model.slipped(Side::Buy, price);
                let per_unit = self.settings.costs.cash_per_unit(est);
                (Quantity::AllCash, if est > 0.0 { self.portfolio.cash().max(0.0) / per_unit } else { 0.0 })
            }
            Sizing::AtrRisk { risk, atr_multiple, .. } => {
                stop_distance = atr_multiple * input;
                let u = if stop_distance > 0.0 { risk * equity / stop_distance } else { f64::NAN };
                (Quantity::Units(u), u)
            }
            Sizing::VolatilityTarget { target, .. } => {
                let u = if input > 0.0 { per_equity((target / input).min(1.0)) } else { f64::NAN };
                (Quantity::Units(u), u)
            }
            Sizing::Kelly { fraction, win_rate, payoff, min_trades } => {
                let f = fraction * self.kelly(strategy, win_rate, payoff, min_trades);
                let u = per_equity(f.max(0.0));
                (Quantity::Units(u), u)
            }
        };
        // The scale multiplies the method's size before the caps; undefined or negative sizes
        // nothing.
        let scale = self.sizing_scale(slot_id);
        if scale != 1.0 {
            units = if scale >= 0.0 && scale.is_finite() { units * scale } else { f64::NAN };
            quantity = Quantity::Units(units);
        }
        if let Some(cap) = limits.max_percent_of_equity
            && units * price > cap * equity
        {
            units = per_equity(cap);
            quantity = Quantity::Units(units);
        }
        // Alpaca takes fractional quantities only in day market orders: a limit or stop entry
        // in equities is for whole shares.
        let crypto = super::protect::is_crypto(&self.symbols[symbol].name);
        if (limits.whole_units || (order_type != OrderType::Market && !crypto)) && units.is_finite() {
            units = units.floor();
            quantity = Quantity::Units(units);
        }
        self.slots[slot_id].pending_stop = stop_distance;
        let order = Order {
            client_order_id: self.next_id(slot_id, bar.ts),
            slot: slot_id,
            strategy,
            symbol,
            side: Side::Buy,
            intent: Intent::Entry,
            order_type,
            time_in_force,
            quantity,
            estimated_units: units,
            reference_price: price,
            created_ts: bar.ts,
            reason: OrderReason::EntryRule,
            expected_return: self.expected_return(slot_id),
            group: None,
        };
        if !(units > 0.0 && units.is_finite()) {
            // The order sized nothing: it is journaled with a quantity of 0, never NaN.
            let mut order = order;
            order.estimated_units = 0.0;
            order.quantity = Quantity::Units(0.0);
            let why = match sizing {
                _ if !(price > 0.0 && price.is_finite()) => {
                    "nothing_to_trade: the entry's limit or stop price is undefined or not positive on this bar"
                }
                Sizing::AtrRisk { .. } | Sizing::VolatilityTarget { .. } if input.is_nan() || input <= 0.0 => {
                    "nothing_to_trade: the sizing input (ATR or volatility) is undefined or zero on this bar"
                }
                _ if !(scale >= 0.0 && scale.is_finite()) => {
                    "nothing_to_trade: the sizing scale is undefined, negative or not finite on this bar"
                }
                _ if scale == 0.0 => "nothing_to_trade: the sizing scale is 0 on this bar",
                Sizing::Kelly { .. } => "nothing_to_trade: the Kelly fraction is not positive (no edge)",
                _ => "nothing_to_trade: the sized quantity is zero (no cash?)",
            };
            self.reject(&order, why, sink);
            return;
        }
        if units * price < limits.min_notional {
            let why = format!(
                "below_min_notional: {:.2} is below the minimum order notional {:.2}",
                units * price,
                limits.min_notional
            );
            self.reject(&order, &why, sink);
            return;
        }
        let working = order.order_type != OrderType::Market;
        self.route(order, bar, sink);
        if working && self.slots[slot_id].pending_market && self.slots[slot_id].position.is_none() {
            self.start_entry_clock(slot_id, bar.ts);
        }
    }

    pub(super) fn signal_exit(&mut self, slot_id: usize, reason: ExitReason, bar: &Bar, sink: &mut dyn EventSink) {
        let slot = &self.slots[slot_id];
        let Some(pos) = slot.position.as_ref() else {
            return;
        };
        let units = pos.quantity;
        let (strategy, symbol) = (slot.strategy, slot.symbol);
        let order = Order {
            client_order_id: self.next_id(slot_id, bar.ts),
            slot: slot_id,
            strategy,
            symbol,
            side: Side::Sell,
            intent: Intent::Exit,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            quantity: Quantity::ClosePosition,
            estimated_units: units,
            reference_price: bar.close,
            created_ts: bar.ts,
            reason: OrderReason::Exit(reason),
            expected_return: f64::NAN,
            group: None,
        };
        self.route(order, bar, sink);
    }
}
