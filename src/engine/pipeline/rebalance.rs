//! The bot's scheduled rebalance (`schedule.rebalance`): at each due time, the positions of the
//! rebalance's strategy are traded toward their target weights.
//!
//! The schedule runs on the clock the loop gives it: after the bars of a timestamp, the moment
//! is the bars' close (their start plus the rebalance's timeframe). A rebalance is due on the
//! first timestamp of the run (the portfolio is built at once), then at each occurrence of its
//! cadence: it fires on the first timestamp whose close is at or after the occurrence, once
//! (occurrences missed meanwhile, a weekend, a holiday, a stopped bot, fire once, not each).
//! Being part of the engine, it is replayed with the bars: a bot restarted after a crash
//! rebuilds the same state and never rebalances twice for one occurrence.
//!
//! A rebalance is two steps. On the due timestamp, each symbol's weight is evaluated on its
//! last bar and compared with what the position is worth at that close (`quantity x close /
//! equity`). When no symbol is off target by more than the band, nothing is traded. Otherwise
//! every symbol goes back to its target (trades under 0.01% of equity are skipped): the
//! overweight ones are sold down first (market orders, filled at the next open like any
//! other); on the next timestamp, with the sales' cash in, the weights are evaluated again and
//! the underweight symbols bought (capped by the cash the fill finds). Without sales, the buys
//! go out on the due timestamp. Every order passes the
//! trading state, the guardrails and the allocation buckets like a strategy's: REDUCING lets
//! the sales through and stops the buys.
//!
//! Failing closed: a symbol whose weight is undefined (or negative) on the bar is not traded
//! (its position stays as it is), and when the defined weights add up to more than 100% no
//! order is made at all; both are journaled as notes. A symbol whose order still works is left
//! alone.

use super::*;

/// The rebalance's state in the engine.
#[derive(Debug, Clone)]
pub(super) struct RebalanceState {
    /// Index of the strategy holding the positions.
    pub strategy: usize,
    /// The compiled schedule and weights.
    pub spec: Arc<crate::dsl::rebalance::CompiledRebalance>,
    /// The next due time (UTC seconds); `None` before the first timestamp (due at once).
    pub next_due: Option<i64>,
    /// The buys of a rebalance whose sales went out are due on the next timestamp.
    pub buys_due: bool,
    /// Length of the bars the weights are evaluated on (seconds).
    pub bar_secs: i64,
}

impl RebalanceState {
    /// The state for `bundle`'s rebalance, if it has one.
    pub fn of(bundle: &Bundle) -> Option<Self> {
        bundle.strategies.iter().enumerate().find_map(|(i, s)| {
            Some(RebalanceState {
                strategy: i,
                spec: s.rebalance.clone()?,
                next_due: None,
                buys_due: false,
                bar_secs: s.doc.timeframe.value.seconds(),
            })
        })
    }
}

/// Which orders a rebalance step makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Sells,
    Buys,
}

impl Engine {
    /// Runs what the schedule has due after the bars of timestamp `ts` (UTC seconds), once the
    /// account is marked: the buys of a rebalance whose sales went out on the last timestamp,
    /// then a rebalance due by the bars' close.
    #[inline]
    pub fn run_schedule(&mut self, ts: i64, sink: &mut dyn EventSink) {
        if self.rebalance.is_some() {
            self.run_rebalance(ts, sink);
        }
    }

    fn run_rebalance(&mut self, ts: i64, sink: &mut dyn EventSink) {
        let Some(st) = self.rebalance.as_mut() else { return };
        let now = ts.saturating_add(st.bar_secs);
        let buys_due = std::mem::take(&mut st.buys_due);
        let due = st.next_due.is_none_or(|d| now >= d);
        if due {
            st.next_due = Some(st.spec.cadence.next_after(now).unwrap_or(i64::MAX));
        }
        if buys_due {
            self.rebalance_step(ts, Step::Buys, sink);
        }
        if due {
            match self.rebalance_step(ts, Step::Sells, sink) {
                Some(true) => {
                    if let Some(st) = self.rebalance.as_mut() {
                        st.buys_due = true;
                    }
                }
                Some(false) => {
                    self.rebalance_step(ts, Step::Buys, sink);
                }
                None => {}
            }
        }
    }

    /// The next time the rebalance is due (UTC seconds): `None` without one, `Some(None)`
    /// before the first timestamp (due at once).
    pub fn rebalance_due(&self) -> Option<Option<i64>> {
        self.rebalance.as_ref().map(|r| r.next_due)
    }

    /// Makes one step's orders. For the sales: `None` when every symbol is within the band
    /// of its target (no rebalance), else whether some sale went to the broker (or filled).
    fn rebalance_step(&mut self, ts: i64, step: Step, sink: &mut dyn EventSink) -> Option<bool> {
        let st = self.rebalance.as_ref()?;
        let (strategy, band, whole) = (st.strategy, st.spec.band, st.spec.whole_units);
        let name = self.strategy_names[strategy].clone();
        let equity = self.equity();
        let slots: Vec<usize> = (0..self.slots.len()).filter(|&k| self.slots[k].strategy == strategy).collect();
        // Each symbol's weight on its last bar.
        let mut targets = Vec::with_capacity(slots.len());
        for &k in &slots {
            let w = self
                .eval_slot(
                    k,
                    |r| r.target_weight.is_some(),
                    |r, v, f, scratch| r.target_weight.as_ref().map_or(f64::NAN, |e| eval_rule(e, v, f, scratch)),
                )
                .unwrap_or(f64::NAN);
            targets.push(w);
        }
        let total: f64 = targets.iter().filter(|w| w.is_finite() && **w >= 0.0).sum();
        if total > 1.0 + 1e-9 {
            let message = format!(
                "rebalance refused: the weights add up to {:.2}% on this bar, more than the account; nothing traded",
                total * 100.0
            );
            self.rebalance_note(ts, &name, "", &message, sink);
            return None;
        }
        if !(equity > 0.0 && equity.is_finite()) {
            self.rebalance_note(ts, &name, "", "rebalance refused: the account's equity is not positive", sink);
            return None;
        }
        // The band decides whether the portfolio is rebalanced; once it is, every symbol is
        // traded back to its target (the buys need what the sales free).
        let off = |k: usize, w: f64| {
            let price = self.symbols[self.slots[k].symbol].last_close;
            let held = self.slots[k].position.as_ref().map_or(0.0, |p| p.quantity);
            (w * equity - held * price).abs()
        };
        if step == Step::Sells
            && !slots.iter().zip(&targets).any(|(&k, &w)| w.is_finite() && w >= 0.0 && off(k, w) > band * equity)
        {
            return None;
        }
        // Trades smaller than this are not worth their commission (fraction of equity).
        const DUST: f64 = 1e-4;
        let mut sent = false;
        for (&k, &w) in slots.iter().zip(&targets) {
            let symbol = self.slots[k].symbol;
            let price = self.symbols[symbol].last_close;
            if self.slots[k].pending_market || !(price > 0.0 && price.is_finite()) {
                continue;
            }
            if !(w.is_finite() && w >= 0.0) {
                if step == Step::Sells {
                    let sym = self.symbols[symbol].name.clone();
                    let message =
                        "rebalance: the weight is undefined or negative on this bar; the position is left as it is";
                    self.rebalance_note(ts, &name, &sym, message, sink);
                }
                continue;
            }
            let held = self.slots[k].position.as_ref().map_or(0.0, |p| p.quantity);
            let diff = w * equity / price - held;
            if (diff * price).abs() <= DUST * equity {
                continue;
            }
            let (side, quantity) = match step {
                Step::Sells if diff < 0.0 => {
                    let q = if whole { (-diff).floor() } else { -diff };
                    if w == 0.0 || q >= held * (1.0 - 1e-9) {
                        (Side::Sell, Quantity::ClosePosition)
                    } else {
                        (Side::Sell, Quantity::Units(q))
                    }
                }
                Step::Buys if diff > 0.0 => (Side::Buy, Quantity::Units(if whole { diff.floor() } else { diff })),
                _ => continue,
            };
            let units = match quantity {
                Quantity::Units(q) => q,
                _ => held,
            };
            if units <= 0.0 {
                continue;
            }
            let bar = Bar {
                ts: self.symbols[symbol].last_ts,
                open: price,
                high: price,
                low: price,
                close: price,
                volume: f64::NAN,
            };
            let order = Order {
                client_order_id: self.next_id(k, ts),
                slot: k,
                strategy,
                symbol,
                side,
                intent: if side == Side::Buy { Intent::Entry } else { Intent::Exit },
                order_type: OrderType::Market,
                time_in_force: TimeInForce::Day,
                quantity,
                estimated_units: units,
                reference_price: price,
                created_ts: ts,
                reason: OrderReason::Rebalance,
                expected_return: f64::NAN,
                group: None,
            };
            self.route(order, &bar, sink);
            sent |= self.slots[k].pending_market || self.slots[k].position.as_ref().map(|p| p.quantity) != Some(held);
        }
        Some(sent)
    }

    fn rebalance_note(&self, ts: i64, origin: &str, symbol: &str, message: &str, sink: &mut dyn EventSink) {
        sink.note(&Note { ts, kind: NoteKind::Rebalance, origin, symbol, script: "", message });
    }
}
