//! The trading cost model (seed 003).
//!
//! Costs per fill, each as a fraction of the price unless said otherwise:
//!
//! - **commission**: a fraction of the fill's notional, plus an optional amount per unit
//!   (`commission_per_unit`, currency per share or coin);
//! - **spread**: the full bid-ask spread; a market order crosses half of it. From the symbol's
//!   last quote when the driver has one ([`CostModel::spread_for`]), else the configured
//!   estimate;
//! - **slippage**: further adverse movement on every market or stop fill;
//! - **impact**: the market-impact floor, each way (seed 003: 0.5 bps).
//!
//! A market buy fills at `base * (1 + spread / 2 + slippage + impact)`, a sell at
//! `base * (1 - spread / 2 - slippage - impact)`; commission is then charged on the fill.
//! The expected cost of a round trip, entering and leaving, is
//! `spread + 2 * (slippage + commission + impact)` (plus `2 * commission_per_unit / price`),
//! the quantity the edge-cost gate compares an entry's expected return with
//! (`order.round_trip_cost`).

/// Costs of trading, as fractions of price (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct CostModel {
    /// Commission as a fraction of fill notional (0.00015 = 1.5 bps).
    pub commission: f64,
    /// Commission per unit filled (currency per share or coin).
    pub commission_per_unit: f64,
    /// Slippage as a fraction of price, each way.
    pub slippage: f64,
    /// Estimated full bid-ask spread as a fraction of the mid price, used without quotes.
    pub spread: f64,
    /// Market-impact floor as a fraction of price, each way.
    pub impact: f64,
}

impl From<&crate::config::manifest::Costs> for CostModel {
    /// A bot manifest's `costs`.
    fn from(c: &crate::config::manifest::Costs) -> Self {
        CostModel {
            commission: c.commission.value,
            commission_per_unit: c.commission_per_share,
            slippage: c.slippage.value,
            spread: c.spread.value,
            impact: c.impact.value,
        }
    }
}

impl CostModel {
    /// The spread to use: `(ask - bid) / mid` of a valid quote, else the estimate.
    pub fn spread_for(&self, quote: Option<(f64, f64)>) -> f64 {
        self.market(quote, f64::NAN).2
    }

    /// `(bid, ask, spread, quoted)` around `last` (currency per unit): a valid quote's (bid
    /// above 0, ask at or above it, both finite; spread `(ask - bid) / mid`, `quoted` true),
    /// else `last` -/+ half the estimated spread (a crossed or empty quote is ignored).
    pub fn market(&self, quote: Option<(f64, f64)>, last: f64) -> (f64, f64, f64, bool) {
        match quote {
            Some((bid, ask)) if bid > 0.0 && ask >= bid && ask.is_finite() => {
                (bid, ask, (ask - bid) / ((ask + bid) / 2.0), true)
            }
            _ => {
                let half = self.spread / 2.0;
                (last * (1.0 - half), last * (1.0 + half), self.spread, false)
            }
        }
    }

    /// The price adjustment of one market fill, as a fraction: half the spread, slippage and
    /// impact.
    #[inline]
    pub fn per_side(&self, spread: f64) -> f64 {
        spread / 2.0 + self.slippage + self.impact
    }

    /// Commission of a fill of `quantity` units at `price` (currency).
    #[inline]
    pub fn commission_for(&self, quantity: f64, price: f64) -> f64 {
        quantity * (price * self.commission + self.commission_per_unit)
    }

    /// Cash needed per unit bought at `price`, commission included (currency).
    #[inline]
    pub fn cash_per_unit(&self, price: f64) -> f64 {
        price * (1.0 + self.commission) + self.commission_per_unit
    }

    /// Expected cost of entering and leaving at `price`, as a fraction of it:
    /// `spread + 2 * (slippage + commission + commission_per_unit / price + impact)`.
    pub fn round_trip(&self, price: f64, spread: f64) -> f64 {
        let per_unit = if price > 0.0 { self.commission_per_unit / price } else { f64::NAN };
        spread + 2.0 * (self.slippage + self.commission + per_unit + self.impact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_spread_plus_twice_each_side() {
        let m = CostModel {
            commission: 0.00015,
            commission_per_unit: 0.0,
            slippage: 0.0002,
            spread: 0.001,
            impact: 0.00005,
        };
        // 10 + 2 * (2 + 1.5 + 0.5) = 18 bps.
        assert!((m.round_trip(100.0, m.spread) - 0.0018).abs() < 1e-15);
        // A quote replaces the estimate: 99.95 / 100.05 is a 10 bps spread too; a crossed one is ignored.
        assert!((m.spread_for(Some((99.95, 100.05))) - 0.001).abs() < 1e-12);
        assert_eq!(m.spread_for(Some((101.0, 100.0))), 0.001);
        // 0.5 cent a share on a 50 price is 1 bp each way.
        let p = CostModel { commission_per_unit: 0.005, ..CostModel::default() };
        assert!((p.round_trip(50.0, 0.0) - 0.0002).abs() < 1e-15);
        assert!((p.commission_for(100.0, 50.0) - 0.5).abs() < 1e-12);
    }
}
