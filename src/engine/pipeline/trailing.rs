//! Trailing stops: a position's stop follows the highest high since its entry fill and never
//! moves down (`trailing_stop: 5%`, or `{atr_multiple: 3}` ATRs below the high).
//!
//! After each bar of a position (its rules have run, its stop was checked against the bar's
//! low at the bar's start), the high-water mark takes the bar's high and the level is
//! recomputed; when it is above the stop in force, the stop **ratchets**: the working
//! protective orders are cancelled (journaled as cancelled, with the new level) and placed
//! again at the new level. The next bar is checked against it, so a bar's own high never
//! protects that bar (no lookahead). At an outside broker the gateway sends the cancellation
//! first and the new stop only once the cancellation is confirmed: there are never two live
//! stops for the same shares (Alpaca refuses a sell above the shares not already held).

use super::*;
use crate::config::units::trim_float;

impl Engine {
    /// The trailing stop's level for a high-water mark `high` (currency per unit); `NaN` when
    /// the strategy has none, or its ATR is not defined yet.
    pub(super) fn trail_level(&self, slot_id: usize, high: f64) -> f64 {
        use crate::config::strategy::TrailingStop;
        let slot = &self.slots[slot_id];
        let Some(trail) = self.bundle.strategies[slot.strategy].doc.trailing_stop.as_ref() else {
            return f64::NAN;
        };
        match trail.value {
            TrailingStop::Percent(p) => high * (1.0 - p),
            TrailingStop::Atr { multiple, .. } => {
                high - multiple * self.series_value(slot_id, |r| r.trail_input.as_ref())
            }
        }
    }

    /// How far below `price` the trailing stop starts, as a fraction of it: the percent
    /// itself, or k x ATR / price; `NaN` without a trailing stop (or an ATR yet).
    pub(super) fn trail_distance(&self, slot_id: usize, price: f64) -> f64 {
        use crate::config::strategy::TrailingStop;
        match self.bundle.strategies[self.slots[slot_id].strategy].doc.trailing_stop.as_ref().map(|t| t.value) {
            Some(TrailingStop::Percent(p)) => p,
            Some(TrailingStop::Atr { .. }) if price > 0.0 => 1.0 - self.trail_level(slot_id, price) / price,
            _ => f64::NAN,
        }
    }

    /// Moves the trailing stops of `symbol`'s positions after `bar` (see the module docs).
    pub(super) fn ratchet_trailing_stops(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        for k in 0..self.symbols[symbol].slots.len() {
            let slot_id = self.symbols[symbol].slots[k];
            let slot = &mut self.slots[slot_id];
            // An exit on its way sells the position: nothing left to protect.
            if slot.pending_market {
                continue;
            }
            let Some(pos) = slot.position.as_mut().filter(|p| !p.high_water.is_nan()) else { continue };
            pos.high_water = pos.high_water.max(bar.high);
            let (high, old) = (pos.high_water, pos.stop_price);
            let level = self.trail_level(slot_id, high);
            if !raises(level, old) {
                continue;
            }
            if let Some(pos) = self.slots[slot_id].position.as_mut() {
                pos.stop_price = level;
                pos.trailing = true;
            }
            let why = format!("trailing stop moved to {} (highest high {})", trim_float(level), trim_float(high));
            self.cancel_protective(slot_id, bar.ts, &why, sink);
            self.place_protective(slot_id, bar.ts, sink);
        }
    }
}

/// True when a trailing stop at `level` is above the stop in force (`stop`, `NaN` for none):
/// the stop then moves up to it.
pub(super) fn raises(level: f64, stop: f64) -> bool {
    level > stop || (stop.is_nan() && level.is_finite())
}
