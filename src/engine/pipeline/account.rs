//! The account and the trading state: valuation, equity and its peak, open positions, the
//! day's clock, halts, resumes and escalations, and the account-only `halt`/`reduce` rules
//! checked at every mark (a drawdown breaker trips on equity, unrealized losses included).

use super::*;

impl Engine {
    /// Moves the trading state to `to` for a reason outside the rules (the runtime's broker
    /// circuit breaker, a reconciliation mismatch); recorded like any change. Only a person's
    /// `dsl resume` clears it.
    pub fn escalate(&mut self, to: TradingState, ts: i64, reason: &str, message: &str, sink: &mut dyn EventSink) {
        if let Some(c) = self.risk.status_mut().escalate(to, ts, reason, message, crate::config::policy::Reset::Manual)
        {
            self.record_state(c, sink);
        }
    }

    /// Units held per symbol (all strategies together), in symbol order.
    pub fn units_by_symbol(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.symbols.len()];
        for s in &self.slots {
            if let Some(p) = &s.position {
                out[s.symbol] += p.quantity;
            }
        }
        out
    }

    /// Cash (currency).
    pub fn cash(&self) -> f64 {
        self.portfolio.cash()
    }

    /// Cash at the start (currency).
    pub fn starting_cash(&self) -> f64 {
        self.settings.starting_cash
    }

    /// Closed round trips so far.
    pub fn trades(&self) -> &[Trade] {
        &self.trades
    }

    /// Takes the closed round trips (leaves the list empty).
    pub fn take_trades(&mut self) -> Vec<Trade> {
        std::mem::take(&mut self.trades)
    }

    /// Counters.
    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// The trading state.
    pub fn trading_state(&self) -> &TradingStatus {
        self.risk.status()
    }

    /// Restores a trading state (a restarted bot continues HALTED or REDUCING).
    pub fn restore_state(&mut self, state: TradingStatus) {
        self.risk.set_status(state);
    }

    /// HALTED by a person's decision (`dsl halt`); the change is recorded.
    pub fn halt(&mut self, ts: i64, reason: &str, sink: &mut dyn EventSink) {
        if let Some(c) = self.risk.status_mut().halt(ts, reason) {
            self.record_state(c, sink);
        }
    }

    /// Back to ACTIVE by a person's decision; the change is recorded. The drawdown peak is
    /// re-based to the equity at this moment (said in the change's message), so a drawdown
    /// breaker is re-armed from here rather than firing again at the next mark: the person
    /// has accepted the loss so far.
    pub fn resume(&mut self, ts: i64, reason: &str, sink: &mut dyn EventSink) {
        const REBASED: &str = "; drawdown peak re-based";
        let equity = self.equity();
        // A replay passes the journaled message, which says it already.
        let base = reason.split(REBASED).next().unwrap_or(reason);
        let message = format!(
            "{base}{REBASED} from {:.2} to {equity:.2} (the equity at the resume)",
            self.portfolio.peak_equity()
        );
        if let Some(c) = self.risk.status_mut().resume(ts, &message) {
            self.portfolio.rebase_peak(equity);
            self.record_state(c, sink);
        }
    }

    /// After [`Engine::mark`]: applies a due `next_day` reset, then evaluates the account-only
    /// `halt`/`reduce` rules on the marked account (see the module docs).
    #[inline]
    pub fn check_account(&mut self, ts: i64, sink: &mut dyn EventSink) {
        if !self.risk.mark_rules().is_empty() || self.risk.status().mode != TradingState::Active {
            self.check_mark_rules(ts, sink);
        }
    }

    pub(super) fn check_mark_rules(&mut self, ts: i64, sink: &mut dyn EventSink) {
        if let Some(c) = self.risk.status_mut().on_time(ts) {
            self.record_state(c, sink);
        }
        if self.risk.mark_rules().is_empty() || self.risk.status().mode == TradingState::Halted {
            return;
        }
        let mut fields = NO_FIELDS;
        self.account_fields(&mut fields);
        let held = self.bucket_holdings();
        let mut scratch = std::mem::take(&mut self.scratch);
        // The deciding rule, and the values it saw (journaled with the trip).
        let mut tripped: Option<Trip> = None;
        for &MarkRule { policy: pi, rule: ri, per_symbol } in self.risk.mark_rules() {
            let mut fire = |v: f64, rule: &CompiledRule, slots: &[f64], fields: &FieldValues, symbol: &str| {
                if v.is_nan() || fires(v) {
                    let action = self.bundle.policies[pi].doc.rules[ri].action.value;
                    let to = if action == Action::Halt { TradingState::Halted } else { TradingState::Reducing };
                    if to > self.risk.status().mode && tripped.as_ref().is_none_or(|t| to > t.2) {
                        let names = |path: &str| (path == "symbol.name").then(|| symbol.to_string());
                        tripped = Some((pi, ri, to, seen_values(rule, slots, fields, &names)));
                    }
                }
            };
            if !per_symbol {
                let rule = &self.symbols[0].program.policies[pi][ri];
                fire(eval_rule(rule, &[], &fields, &mut scratch), rule, &[], &fields, "");
                continue;
            }
            for (si, sym) in self.symbols.iter().enumerate() {
                if sym.bars == 0 {
                    continue;
                }
                self.symbol_fields(si, &mut fields, held.as_ref());
                let rule = &sym.program.policies[pi][ri];
                let slots = sym.current();
                fire(eval_rule(rule, &slots, &fields, &mut scratch), rule, &slots, &fields, &sym.name);
            }
        }
        self.scratch = scratch;
        if let Some((pi, ri, _, seen)) = tripped {
            let doc = &self.bundle.policies[pi].doc;
            let rule = &doc.rules[ri];
            sink.decision(&Decision {
                order: None,
                ts,
                policy: &doc.name.value,
                rule_id: &rule.id.value,
                fired: true,
                action: rule.action.value.as_str(),
                message: &rule.message.value,
                values: &seen,
            });
            let d = Denial {
                policy: pi,
                rule: ri,
                action: self.bundle.policies[pi].doc.rules[ri].action.value,
                undefined: false,
                message: None,
                allocation: None,
            };
            self.trip(&d, ts, sink);
        }
    }

    /// Moves the trading state as a `halt`/`reduce` rule asks, and flattens if it says so.
    pub(super) fn trip(&mut self, d: &Denial, ts: i64, sink: &mut dyn EventSink) {
        let rule = &self.bundle.policies[d.policy].doc.rules[d.rule];
        let (to, reset, flatten) = match d.action {
            Action::Halt => (TradingState::Halted, rule.reset, rule.flatten),
            Action::Reduce => (TradingState::Reducing, rule.reset, false),
            _ => return,
        };
        let message = d.message.clone().unwrap_or_else(|| rule.message.value.clone());
        if let Some(c) = self.risk.status_mut().escalate(to, ts, &d.key(&self.bundle.policies), &message, reset) {
            self.record_state(c, sink);
            if flatten {
                self.flatten(ts, sink);
            }
        }
    }

    pub(super) fn record_state(&mut self, c: StateChange, sink: &mut dyn EventSink) {
        sink.state_change(&c);
        self.stats.state_changes.push(c);
    }

    /// Closes every open position with a market order (a halting rule's `flatten: true`).
    pub(super) fn flatten(&mut self, ts: i64, sink: &mut dyn EventSink) {
        for slot_id in 0..self.slots.len() {
            let slot = &self.slots[slot_id];
            if slot.position.is_none() || slot.pending_market {
                continue;
            }
            let last = self.symbols[slot.symbol].last_close;
            let bar = Bar { ts, open: last, high: last, low: last, close: last, volume: 0.0 };
            self.signal_exit(slot_id, ExitReason::Flatten, &bar, sink);
        }
    }

    /// Records whether slot `slot_id` holds a position or waits on a market order (call after
    /// every change of either).
    #[inline]
    pub(super) fn touch(&mut self, slot_id: usize) {
        let s = &self.slots[slot_id];
        let busy = s.position.is_some() || s.pending_market;
        match self.active.binary_search(&slot_id) {
            Err(k) if busy => self.active.insert(k, slot_id),
            Ok(k) if !busy => {
                self.active.remove(k);
            }
            _ => {}
        }
    }

    /// Rebuilds the set of active slots from scratch (after a bundle swap renumbered them).
    pub(super) fn rebuild_active(&mut self) {
        self.active = (0..self.slots.len())
            .filter(|&k| self.slots[k].position.is_some() || self.slots[k].pending_market)
            .collect();
    }

    /// The slots holding a position or waiting on a market order, in slot order (checked
    /// against a scan of every slot in debug builds).
    pub(super) fn active_slots(&self) -> impl Iterator<Item = &Slot> {
        debug_assert!(
            self.active.iter().copied().eq((0..self.slots.len())
                .filter(|&k| self.slots[k].position.is_some() || self.slots[k].pending_market)),
            "the active slots are out of date"
        );
        self.active.iter().map(|&k| &self.slots[k])
    }

    /// Market value of open positions at their symbols' last closes, and whether any is open.
    #[inline]
    pub(super) fn valuation(&self) -> (f64, bool) {
        let (mut value, mut open) = (0.0, false);
        for s in self.active_slots() {
            if let Some(p) = &s.position {
                value += p.quantity * self.symbols[s.symbol].last_close;
                open = true;
            }
        }
        (value, open)
    }

    /// Market value of open positions at their symbols' last closes.
    pub fn positions_value(&self) -> f64 {
        self.valuation().0
    }

    /// Highest equity marked so far, starting cash included (currency).
    pub fn peak_equity(&self) -> f64 {
        self.portfolio.peak_equity()
    }

    /// Equity: cash plus positions at the last closes.
    pub fn equity(&self) -> f64 {
        self.portfolio.equity(self.positions_value())
    }

    /// Values the account after all bars of a timestamp: returns equity (and tracks its peak)
    /// and whether any position is open.
    #[inline]
    pub fn mark(&mut self) -> (f64, bool) {
        let (value, open) = self.valuation();
        let e = self.portfolio.mark(value);
        (e, open)
    }

    /// Open positions with their unrealized pnl.
    pub fn open_positions(&self) -> Vec<OpenPosition> {
        self.slots
            .iter()
            .filter_map(|s| {
                let p = s.position.as_ref()?;
                let sym = &self.symbols[s.symbol];
                Some(OpenPosition {
                    strategy: self.bundle.strategies[s.strategy].name().to_string(),
                    symbol: sym.name.to_string(),
                    quantity: p.quantity,
                    entry_time: p.entry_ts,
                    entry_price: p.entry_price,
                    last_price: sym.last_close,
                    unrealized_pnl: (sym.last_close - p.entry_price) * p.quantity,
                })
            })
            .collect()
    }

    /// Moves the engine's clock to a bar's time; a new UTC day takes the equity at its start
    /// (positions at the previous closes) and restarts the day's order count.
    #[inline]
    pub(super) fn advance_clock(&mut self, ts: i64) {
        if ts > self.now {
            self.now = ts;
            if self.portfolio.is_new_day(ts) {
                let equity = self.equity();
                self.portfolio.start_day(ts, equity);
                self.risk.start_day();
            }
        }
    }
}
