//! The risk gate: an order intent passes the trading state (REDUCING lets only exits through,
//! HALTED nothing but flattening), then every policy rule in order (the first that fires
//! decides; an undefined value denies: fail closed) and the allocation buckets, before it is
//! handed to the broker.

use super::*;

impl Engine {
    /// The trading state, the policies, then the broker (or an immediate fill at the close).
    /// A strategy exit first cancels the position's protective orders (they hold its shares).
    pub(super) fn route(&mut self, order: Order, bar: &Bar, sink: &mut dyn EventSink) {
        if !self.admit(&order, order.created_ts, false, sink) {
            return;
        }
        if order.intent == Intent::Exit && order.quantity == Quantity::ClosePosition {
            self.cancel_protective(order.slot, order.created_ts, "cancelled before the strategy's exit", sink);
        }
        let _ = self.submit(order, bar, sink);
    }

    /// Hands an admitted order to the broker (or fills it at the close with close timing);
    /// `false` when the broker refused it (an outage, a rule of the broker's).
    pub(super) fn submit(&mut self, order: Order, bar: &Bar, sink: &mut dyn EventSink) -> bool {
        if self.risk.broker_out(order.created_ts) {
            *self.stats.blocked_by_state.entry("broker_outage".into()).or_insert(0) += 1;
            self.reject(&order, "broker_outage: the broker did not accept the order", sink);
            return false;
        }
        if let Some(why) = self.broker_refusal(&order) {
            self.reject(&order, &why, sink);
            return false;
        }
        let slot = order.slot;
        let (strategy, symbol) = self.names(&order);
        sink.order(&order, strategy, symbol, OrderStatus::Submitted, "");
        self.stats.orders_submitted += 1;
        self.risk.count_order(order.created_ts);
        if order.holds_slot() {
            self.slots[slot].pending_market = true;
            self.touch(slot);
            self.slots[slot].pending_notional = order.notional();
            if order.order_type == OrderType::Market
                && self.settings.fill == FillTiming::Close
                && self.external.is_none()
            {
                let price = self.broker.model.slipped(order.side, bar.close);
                self.execute(Execution { order, price, base_price: bar.close }, bar.ts, sink);
                return true;
            }
        }
        self.hand_over(order);
        true
    }

    /// Gives a submitted order to the simulated broker, or queues it for the outside one.
    pub(super) fn hand_over(&mut self, order: Order) {
        match self.external.as_mut() {
            Some(book) => {
                book.working.push(order.clone());
                book.outbox.push(BrokerRequest::Submit(order));
            }
            None => self.broker.submit(order),
        }
    }

    pub(super) fn names(&self, order: &Order) -> (&str, &str) {
        (self.bundle.strategies[order.strategy].name(), &self.symbols[order.symbol].name)
    }

    pub(super) fn reject(&mut self, order: &Order, reason: &str, sink: &mut dyn EventSink) {
        let (strategy, symbol) = self.names(order);
        sink.order(order, strategy, symbol, OrderStatus::Rejected, reason);
        self.stats.orders_rejected += 1;
    }

    /// Whether `order` may go to the broker: the trading state, then the policy rules (and
    /// what a deciding `reduce`/`halt`/`require_approval` rule does). Refusals are recorded.
    ///
    /// `ts` is the time of the decision (a state change is stamped with it); `approved`: a
    /// person approved the order, so `require_approval` rules no longer decide.
    pub(super) fn admit(&mut self, order: &Order, ts: i64, approved: bool, sink: &mut dyn EventSink) -> bool {
        // Stop-loss and take-profit orders pass in every state (the bot's own for a remainder
        // too): they only lower risk, as the strategy declared.
        let protective = order.order_type != OrderType::Market
            || matches!(
                order.reason,
                OrderReason::Exit(ExitReason::StopLoss | ExitReason::TrailingStop | ExitReason::TakeProfit)
            );
        if !protective && let Err(b) = self.risk.status().admits(order) {
            *self.stats.blocked_by_state.entry(b.code.to_string()).or_insert(0) += 1;
            if order.intent == Intent::Exit {
                *self.stats.blocked_exits.entry(b.code.to_string()).or_insert(0) += 1;
            }
            self.reject(order, &b.reason, sink);
            return false;
        }
        if order.reason == OrderReason::Exit(ExitReason::Flatten) {
            // Flattening is what a halting rule asked for: no rule may stand in its way.
            return true;
        }
        let Some(d) = self.check_policies(order, approved, sink) else { return true };
        let mut reason = d.reason(&self.bundle.policies);
        match d.action {
            Action::Reduce | Action::Halt => self.trip(&d, ts, sink),
            Action::RequireApproval if self.approvals.has_desk() => {
                let expires = order.created_ts + self.bundle.policies[d.policy].doc.rules[d.rule].expires_after;
                if self.park(order, expires, &d, sink) {
                    return false;
                }
                reason = format!("{reason}; the approval queue could not record it: denied (fail closed)");
            }
            Action::RequireApproval => {
                // No approver is attached to this engine (a backtest): the order waits out
                // its approval window and is denied by default.
                let rule = &self.bundle.policies[d.policy].doc.rules[d.rule];
                self.stats.approvals_expired += 1;
                reason = format!(
                    "{reason}; no approval within {} min: denied on timeout",
                    rule.expires_after.div_euclid(60).max(1)
                );
            }
            Action::Deny | Action::Warn => {}
        }
        // A `reduce` rule lets an order through that lowers exposure.
        if d.action == Action::Reduce && order.intent == Intent::Exit {
            return true;
        }
        *self.stats.denials.entry(d.key(&self.bundle.policies)).or_insert(0) += 1;
        if order.intent == Intent::Exit {
            *self.stats.denied_exits.entry(d.key(&self.bundle.policies)).or_insert(0) += 1;
        }
        self.reject(order, &reason, sink);
        false
    }

    /// Evaluates every policy rule on an order. Returns the deciding rule, if any.
    pub(super) fn check_policies(&mut self, order: &Order, approved: bool, sink: &mut dyn EventSink) -> Option<Denial> {
        if self.bundle.policies.is_empty() {
            return None;
        }
        let fields = self.fields_for_order(order);
        let mut scratch = std::mem::take(&mut self.scratch);
        let sym = &self.symbols[order.symbol];
        let values = sym.current();
        let policies = &self.bundle.policies;
        let strategy = self.bundle.strategies[order.strategy].name();
        let names = |path: &str| -> Option<String> {
            Some(match path {
                "order.symbol" => sym.name.to_string(),
                "order.strategy" => strategy.to_string(),
                "order.side" => order.side.as_str().to_string(),
                "order.intent" => order.intent.as_str().to_string(),
                _ => return None,
            })
        };
        let mut script_errors = 0;
        let mut warned = Vec::new();
        let detail = sink.wants_decisions();
        let check = |v: &RuleVerdict, compiled: &CompiledRule| {
            let doc = &policies[v.policy].doc;
            let rule = &doc.rules[v.rule];
            if v.error.is_some() && matches!(compiled.eval, RuleEval::Script(_)) {
                script_errors += 1;
            }
            if let (Some(error), RuleEval::Script(script), None | Some(true)) = (&v.error, &compiled.eval, v.disabled) {
                let origin = format!("{}/{}", doc.name.value, rule.id.value);
                let kind = if v.disabled.is_some() { NoteKind::ScriptDisabled } else { NoteKind::ScriptError };
                sink.note(&Note {
                    ts: order.created_ts,
                    kind,
                    origin: &origin,
                    symbol: &sym.name,
                    script: &script.source.name,
                    message: error,
                });
            }
            if v.fired && rule.action.value == Action::Warn {
                warned.push(format!("{}/{}", doc.name.value, rule.id.value));
            }
            if !detail {
                return;
            }
            let seen = seen_values(compiled, &values, &fields, &names);
            sink.decision(&Decision {
                order: Some(order),
                ts: order.created_ts,
                policy: &doc.name.value,
                rule_id: &rule.id.value,
                fired: v.fired,
                action: if v.fired { rule.action.value.as_str() } else { "pass" },
                message: v.message.as_deref().unwrap_or(&rule.message.value),
                values: &seen,
            });
        };
        let denial = check_order(
            policies,
            &sym.program.policies,
            &values,
            &fields,
            &names,
            &mut scratch,
            approved,
            &self.budgets,
            check,
        );
        self.scratch = scratch;
        self.stats.script_errors += script_errors;
        for w in warned {
            *self.stats.warnings.entry(w).or_insert(0) += 1;
        }
        if denial.is_some() || order.intent != Intent::Entry || self.risk.allocations().is_empty() {
            return denial;
        }
        self.check_allocations(order, &fields, sink)
    }

    /// Checks an entry against every policy's allocation buckets; journals each verdict.
    pub(super) fn check_allocations(
        &self,
        order: &Order,
        fields: &FieldValues,
        sink: &mut dyn EventSink,
    ) -> Option<Denial> {
        let held = self.holdings();
        let h = held.view(fields[FieldId::AccountEquity as usize]);
        for a in self.risk.allocations() {
            let verdict = a.check_entry(order.symbol, order.notional(), &h);
            let policy = &self.bundle.policies[a.policy].doc.name.value;
            let weight = a.bucket_weight(order.symbol, &h);
            let seen = [
                ("bucket.weight".to_string(), Seen::Number(weight)),
                ("order.notional".to_string(), Seen::Number(order.notional())),
                ("account.equity".to_string(), Seen::Number(h.equity)),
            ];
            let (rule_id, message) = match &verdict {
                Ok(()) => ("allocation".to_string(), "within the allocation buckets".to_string()),
                Err(b) => (format!("allocation.{}", b.code), b.message.clone()),
            };
            sink.decision(&Decision {
                order: Some(order),
                ts: order.created_ts,
                policy,
                rule_id: &rule_id,
                fired: verdict.is_err(),
                action: if verdict.is_err() { "deny" } else { "pass" },
                message: &message,
                values: &seen,
            });
            if let Err(b) = verdict {
                return Some(Denial {
                    policy: a.policy,
                    rule: 0,
                    action: Action::Deny,
                    undefined: false,
                    message: Some(b.message),
                    allocation: Some(b.code),
                });
            }
        }
        None
    }

    /// What the account holds now, for allocation weights (see [`Held`]).
    pub(super) fn holdings(&self) -> Held {
        let mut pending = 0.0;
        let mut values = vec![0.0; self.symbols.len()];
        let mut leaving = vec![0.0; self.symbols.len()];
        // Slots are numbered symbol by symbol: this adds in the same order as a walk over
        // each symbol's slots.
        for slot in self.active_slots() {
            let si = slot.symbol;
            match &slot.position {
                Some(p) => {
                    let v = (p.quantity * self.symbols[si].last_close).abs();
                    values[si] += v;
                    if slot.pending_market {
                        leaving[si] += v;
                    }
                }
                None if slot.pending_market => {
                    values[si] += slot.pending_notional.abs();
                    pending += slot.pending_notional.abs();
                }
                None => {}
            }
        }
        Held { values, leaving, free_cash: self.portfolio.cash() - pending }
    }

    /// [`Engine::holdings`], when a rule reads the `bucket.*` fields.
    pub(super) fn bucket_holdings(&self) -> Option<Held> {
        self.risk.reads_buckets().then(|| self.holdings())
    }
}
