//! Swapping in a new bundle between bars (hot reload in a running bot).
//!
//! [`Engine::swap_bundle`] replaces the strategies and policies the engine evaluates while
//! keeping everything that is money or history: cash, positions, working and parked orders,
//! closed trades, counters, the trading state and its breakers, the day's figures, and each
//! slot's `client_order_id` sequence. The new bundle's indicator graphs are warmed on the bars
//! each symbol has seen, so an indicator reads the same values it would have had if the new
//! rules had been in force from the start; the first bar after the swap is decided by them.
//!
//! A strategy that the new bundle drops while it still holds a position, or has an order
//! working or awaiting approval, is **retired**: it stays in the engine with its last rules,
//! its exits and protective orders keep managing the position, and it makes no new entries.
//! A strategy kept by the new bundle manages its positions with its new rules, also on a
//! symbol its new universe drops (retired there the same way: exits only). A swap that would trade a symbol the run has no bars for is refused
//! (nothing changes).

use std::collections::HashMap;
use std::sync::Arc;

use crate::diagnostics::Spanned;
use crate::dsl::bundle::Bundle;

use super::{Engine, Order};
use crate::engine::market::Bar;

/// What a swap did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwapReport {
    /// `(strategy, symbol)` pairs kept only to close what they hold (no new entries).
    pub retired: Vec<(String, String)>,
    /// `(strategy, symbol)` pairs whose position, orders and order sequence carried over.
    pub carried: Vec<(String, String)>,
}

impl Engine {
    /// Replaces the bundle by `new` between two bars, as described in the module docs.
    /// `history(i)` gives the bars symbol index `i` has seen so far, oldest first (the new
    /// graphs are warmed on them).
    ///
    /// # Errors
    /// A message (and no change) when a strategy of `new` trades a symbol this engine was not
    /// built with: its bars are not in the feed.
    pub fn swap_bundle(&mut self, new: Arc<Bundle>, history: &dyn Fn(usize) -> Vec<Bar>) -> Result<SwapReport, String> {
        let names: Vec<String> = self.symbols.iter().map(|s| s.name.to_string()).collect();
        for s in &new.strategies {
            if let Some(u) = s.doc.universe.iter().find(|u| !names.contains(&u.value)) {
                return Err(format!(
                    "strategy `{}` trades {}, which this run has no bars for; restart the bot to add a symbol",
                    s.name(),
                    u.value
                ));
            }
        }
        let key = |e: &Engine, slot: usize| {
            let s = &e.slots[slot];
            key_of(&e.strategy_names, &names, s.strategy, s.symbol)
        };
        // Old slots that hold something: a position, a working or parked order.
        let mut busy: Vec<bool> = self.slots.iter().map(|s| s.position.is_some() || s.pending_market).collect();
        let mut mark = |o: &Order| busy[o.slot] = true;
        self.broker.working().for_each(&mut mark);
        self.external.iter().flat_map(|b| b.working.iter().chain(&b.cancelling)).for_each(&mut mark);
        self.approvals.orders().for_each(&mut mark);

        // The bundle the engine runs: the new one, plus what must stay to close positions.
        let mut merged = (*new).clone();
        let mut retired = Vec::new();
        for (k, _) in busy.iter().enumerate().filter(|(_, b)| **b) {
            let (strategy, symbol) = key(self, k);
            if new.strategies.iter().any(|s| s.name() == strategy && s.trades(&symbol)) {
                continue;
            }
            let i = match merged.strategies.iter().position(|s| s.name() == strategy) {
                Some(i) => i,
                None => {
                    let mut old = self.bundle.strategies[self.slots[k].strategy].clone();
                    old.doc.universe.clear();
                    merged.strategies.push(old);
                    merged.strategies.len() - 1
                }
            };
            let doc = &mut merged.strategies[i].doc;
            doc.universe.push(Spanned { value: symbol.clone(), span: Default::default() });
            retired.push((strategy, symbol));
        }
        let mut next = Engine::new(Arc::new(merged), &names, self.settings.clone());
        // The schedule goes on where it was: a reload never makes a rebalance due again.
        if let (Some(old), Some(new)) = (&self.rebalance, next.rebalance.as_mut()) {
            new.next_due = old.next_due;
            new.buys_due = old.buys_due;
        }
        for (i, st) in next.symbols.iter_mut().enumerate() {
            for bar in history(i) {
                st.graph.update(&bar);
            }
            let old = &self.symbols[i];
            st.last_close = old.last_close;
            st.bars = old.bars;
            st.last_ts = old.last_ts;
            st.quote = old.quote;
            st.day_end = old.day_end;
            st.day_base = old.day_base;
        }
        // Old slot -> new slot, by strategy name and symbol.
        let index: HashMap<(String, String), usize> = (0..next.slots.len()).map(|k| (key(&next, k), k)).collect();
        let mut map: Vec<Option<usize>> = vec![None; self.slots.len()];
        let mut carried = Vec::new();
        for k in 0..self.slots.len() {
            let pair = key(self, k);
            let Some(&n) = index.get(&pair) else { continue };
            let slot = &mut self.slots[k];
            map[k] = Some(n);
            let to = &mut next.slots[n];
            to.position = slot.position.take();
            to.pending_market = slot.pending_market;
            to.pending_notional = slot.pending_notional;
            to.pending_stop = slot.pending_stop;
            to.synthetic = slot.synthetic;
            to.remainder_due = slot.remainder_due;
            to.seq_ts = slot.seq_ts;
            to.seq = slot.seq;
            if to.position.is_some() || to.pending_market || busy[k] {
                carried.push(pair);
            }
        }
        for (strategy, symbol) in &retired {
            if let Some(&n) = index.get(&(strategy.clone(), symbol.clone())) {
                next.slots[n].retired = true;
            }
        }
        let slots_of_next: Vec<usize> = next.slots.iter().map(|s| s.strategy).collect();
        let renumber = |o: &mut Order| {
            if let Some(n) = map[o.slot] {
                o.slot = n;
            }
            o.strategy = slots_of_next[o.slot];
        };
        std::mem::swap(&mut next.broker, &mut self.broker);
        next.broker.for_each_working(renumber);
        next.external = self.external.take();
        if let Some(b) = next.external.as_mut() {
            b.working.iter_mut().chain(b.cancelling.iter_mut()).for_each(renumber);
            for r in &mut b.outbox {
                match r {
                    crate::engine::external::BrokerRequest::Submit(o)
                    | crate::engine::external::BrokerRequest::Cancel(o) => renumber(o),
                }
            }
        }
        self.approvals.hand_over(&mut next.approvals, renumber);
        self.hand_account_to(&mut next);
        *self = next;
        self.rebuild_active();
        Ok(SwapReport { retired, carried })
    }

    /// Moves the account, the trading state, the day's figures, the counters and the desk to
    /// the engine of the new bundle.
    fn hand_account_to(&mut self, next: &mut Engine) {
        next.portfolio = self.portfolio.clone();
        next.trades = std::mem::take(&mut self.trades);
        next.stats = self.stats.clone();
        next.now = self.now;
        self.risk.hand_over(&mut next.risk);
    }
}

/// A slot's identity across bundles: its strategy's name and its symbol.
fn key_of(strategies: &[Arc<str>], symbols: &[String], strategy: usize, symbol: usize) -> (String, String) {
    (strategies[strategy].to_string(), symbols[symbol].clone())
}
