//! The simulated broker: working orders and the fill model.
//!
//! Fill model (shared by backtests and the `sim` paper broker):
//!
//! - **Market orders** placed at a bar's close fill at the next bar's open of that symbol
//!   ([`FillTiming::NextOpen`]), or at the same close ([`FillTiming::Close`]).
//! - **Spread, slippage and impact** move every market and stop fill against the trader
//!   ([`super::costs::CostModel`]): buys at `price * (1 + spread / 2 + slippage + impact)`,
//!   sells at `price * (1 - ...)`. Limit fills get none of it.
//! - **Commission** is `commission * quantity * fill price` plus `commission_per_unit *
//!   quantity` on every fill.
//! - **Protective orders** (a sell stop for the stop-loss, a sell limit for the take-profit) are
//!   checked against each bar's low and high, from the bar of the entry fill on when it filled
//!   at the open. A stop fills at its price, or at the open when the bar gaps through it; a
//!   limit fills at its price, or at the open when the bar gaps beyond it. When a bar reaches
//!   both, the stop is assumed to have come first (the conservative choice).

use crate::config::manifest::FillTiming;

use super::costs::CostModel;
use super::market::Bar;
use super::orders::{Order, OrderType, Side};

/// Costs and timing of simulated fills.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillModel {
    /// Costs of every fill.
    pub costs: CostModel,
    /// When market orders fill.
    pub timing: FillTiming,
}

impl FillModel {
    /// The price a market (or triggered stop) order gets from a base price.
    #[inline]
    pub fn slipped(&self, side: Side, base: f64) -> f64 {
        let adverse = self.costs.per_side(self.costs.spread);
        match side {
            Side::Buy => base * (1.0 + adverse),
            Side::Sell => base * (1.0 - adverse),
        }
    }
}

/// An order the broker decided to fill now, at a price before quantity is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The order (removed from the working set).
    pub order: Order,
    /// Fill price, slippage included.
    pub price: f64,
    /// The price before slippage (for the slippage cost).
    pub base_price: f64,
}

/// Working orders per symbol, and the rules that fill them.
#[derive(Debug, Clone)]
pub struct SimBroker {
    /// The fill model.
    pub model: FillModel,
    working: Vec<Vec<Order>>,
}

impl SimBroker {
    /// A broker for `symbols` symbols.
    pub fn new(model: FillModel, symbols: usize) -> Self {
        SimBroker { model, working: vec![Vec::new(); symbols] }
    }

    /// True when `symbol` has working orders.
    #[inline]
    pub fn has_working(&self, symbol: usize) -> bool {
        !self.working[symbol].is_empty()
    }

    /// Accepts an order.
    pub fn submit(&mut self, order: Order) {
        self.working[order.symbol].push(order);
    }

    /// Removes and returns every working order of `slot` on `symbol` that matches `pred`.
    pub fn cancel_where(&mut self, symbol: usize, slot: usize, pred: impl Fn(&Order) -> bool) -> Vec<Order> {
        let (out, keep): (Vec<Order>, Vec<Order>) =
            std::mem::take(&mut self.working[symbol]).into_iter().partition(|o| o.slot == slot && pred(o));
        self.working[symbol] = keep;
        out
    }

    /// Every working order.
    pub fn working(&self) -> impl Iterator<Item = &Order> {
        self.working.iter().flatten()
    }

    /// Edits every working order in place (a bundle swap renumbers slots and strategies).
    pub fn for_each_working(&mut self, f: impl FnMut(&mut Order)) {
        self.working.iter_mut().flatten().for_each(f);
    }

    /// Removes every working order (end of data).
    pub fn drain(&mut self) -> Vec<Order> {
        self.working.iter_mut().flat_map(std::mem::take).collect()
    }

    /// Working market orders of `symbol` that fill at this bar's open (next-open timing).
    pub fn at_open(&mut self, symbol: usize, bar: &Bar) -> Vec<Execution> {
        let mut out = Vec::new();
        let orders = &mut self.working[symbol];
        let mut i = 0;
        while i < orders.len() {
            if orders[i].order_type == OrderType::Market {
                let order = orders.remove(i);
                let price = self.model.slipped(order.side, bar.open);
                out.push(Execution { order, price, base_price: bar.open });
            } else {
                i += 1;
            }
        }
        out
    }

    /// Protective orders of `symbol` that this bar's range reaches, at most one per slot (the
    /// stop first when both are reached).
    pub fn in_range(&mut self, symbol: usize, bar: &Bar) -> Vec<Execution> {
        let mut hits: Vec<(usize, f64, f64)> = Vec::new();
        for (i, o) in self.working[symbol].iter().enumerate() {
            let hit = match (o.order_type, o.side) {
                (OrderType::Stop(p), Side::Sell) if bar.low <= p => {
                    let base = if bar.open <= p { bar.open } else { p };
                    Some((self.model.slipped(Side::Sell, base), base))
                }
                (OrderType::Stop(p), Side::Buy) if bar.high >= p => {
                    let base = if bar.open >= p { bar.open } else { p };
                    Some((self.model.slipped(Side::Buy, base), base))
                }
                (OrderType::Limit(p), Side::Sell) if bar.high >= p => {
                    let px = if bar.open >= p { bar.open } else { p };
                    Some((px, px))
                }
                (OrderType::Limit(p), Side::Buy) if bar.low <= p => {
                    let px = if bar.open <= p { bar.open } else { p };
                    Some((px, px))
                }
                _ => None,
            };
            if let Some((price, base)) = hit {
                hits.push((i, price, base));
            }
        }
        if hits.is_empty() {
            return Vec::new();
        }
        // One execution per slot: prefer a stop (conservative), then the earliest order.
        let orders = &self.working[symbol];
        let mut chosen: Vec<(usize, f64, f64)> = Vec::new();
        for h in hits {
            let slot = orders[h.0].slot;
            match chosen.iter_mut().find(|c| orders[c.0].slot == slot) {
                Some(c) => {
                    let c_is_stop = matches!(orders[c.0].order_type, OrderType::Stop(_));
                    let h_is_stop = matches!(orders[h.0].order_type, OrderType::Stop(_));
                    // A gap through the limit at the open beats a stop reached later in the bar.
                    let h_at_open = h.2 == bar.open;
                    let c_at_open = c.2 == bar.open;
                    if (h_is_stop && !c_is_stop && !c_at_open) || (h_at_open && !c_at_open) {
                        *c = h;
                    }
                }
                None => chosen.push(h),
            }
        }
        chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut out: Vec<Execution> = chosen
            .into_iter()
            .map(|(i, price, base)| Execution { order: self.working[symbol].remove(i), price, base_price: base })
            .collect();
        out.reverse();
        out
    }
}
