//! Allocation buckets enforced on orders (seed 003's barbell).
//!
//! An [`Allocation`] is a policy's `allocation:` section ([`crate::config::allocation`])
//! resolved against the engine's symbols. [`Allocation::check_entry`] decides whether an entry
//! of a given notional may go out, from [`Holdings`]: each symbol's gross market value (all
//! strategies' positions at the last close plus the notional of entries still working or
//! awaiting approval), the uninvested cash and the equity, all in the account currency.
//!
//! The entry is valued as if filled at its reference price: its bucket (and every market that
//! holds its symbol) gains `notional / equity`, and the cash bucket, when there is one, loses
//! as much (cash pays for it; an entry into the cash bucket itself moves nothing). The entry is
//! denied, in this order, when
//! 1. its symbol is in no bucket (`unassigned`: an allocation fails closed);
//! 2. its bucket would exceed its `max` (`bucket_max`);
//! 3. a market holding its symbol would exceed its `max` (`market_max`);
//! 4. another bucket would be left below its `min` (`bucket_min`): with a safe bucket of 75%
//!    minimum, speculative entries wait until the safe bucket holds 75% of equity, and with
//!    `cash: true` they may not spend the cash that keeps it there;
//! 5. equity is not positive (`no_equity`: weights are undefined, so fail closed).
//!
//! Exits are never checked: a position can always be closed, whatever the weights.

use crate::config::allocation::AllocationDoc;

/// Why an entry breaks an allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// Reason code: `unassigned`, `bucket_max`, `market_max`, `bucket_min` or `no_equity`.
    pub code: &'static str,
    /// What a trader reads, with the weights before and after in percent.
    pub message: String,
}

/// What the account holds, valued at the last close (currency).
#[derive(Debug, Clone, Copy)]
pub struct Holdings<'a> {
    /// Gross market value per engine symbol index, working entries included.
    pub values: &'a [f64],
    /// Per symbol, the part of `values` in positions whose exit order is already working:
    /// counted for maximums (it is still held) but not for minimums (it is leaving), so that
    /// both checks err on the safe side.
    pub leaving: &'a [f64],
    /// Uninvested cash less the notional of working entries.
    pub free_cash: f64,
    /// Cash plus open positions at the last close.
    pub equity: f64,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    min: f64,
    max: f64,
    cash: bool,
    members: Vec<usize>,
}

/// One policy's buckets and market caps over the engine's symbols.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// Index of the declaring policy in the bundle.
    pub policy: usize,
    buckets: Vec<Group>,
    markets: Vec<Group>,
    bucket_of: Vec<Option<usize>>,
}

impl Allocation {
    /// Resolves `doc` (declared by policy `policy`) against `symbols`, the engine's symbol
    /// names by index. Declared symbols the engine does not trade are ignored.
    pub fn new(doc: &AllocationDoc, policy: usize, symbols: &[&str]) -> Self {
        let members = |list: &[crate::diagnostics::Spanned<String>]| -> Vec<usize> {
            symbols.iter().enumerate().filter(|(_, s)| list.iter().any(|m| m.value == **s)).map(|(i, _)| i).collect()
        };
        let buckets: Vec<Group> = doc
            .buckets
            .iter()
            .map(|b| Group {
                name: b.name.value.clone(),
                min: b.min,
                max: b.max,
                cash: b.cash,
                members: members(&b.symbols),
            })
            .collect();
        let markets = doc
            .markets
            .iter()
            .map(|m| Group {
                name: m.name.value.clone(),
                min: 0.0,
                max: m.max,
                cash: false,
                members: members(&m.symbols),
            })
            .collect();
        let bucket_of =
            (0..symbols.len()).map(|si| buckets.iter().position(|b: &Group| b.members.contains(&si))).collect();
        Allocation { policy, buckets, markets, bucket_of }
    }

    /// The name of the bucket holding symbol index `symbol`, if any.
    pub fn bucket_name(&self, symbol: usize) -> Option<&str> {
        self.bucket_of.get(symbol).copied().flatten().map(|b| self.buckets[b].name.as_str())
    }

    /// The weight (fraction of equity) of the bucket holding `symbol`; `NaN` when it is in no
    /// bucket or equity is not positive.
    pub fn bucket_weight(&self, symbol: usize, h: &Holdings<'_>) -> f64 {
        match self.bucket_of.get(symbol).copied().flatten() {
            Some(b) if h.equity > 0.0 => value(&self.buckets[b], h, false) / h.equity,
            _ => f64::NAN,
        }
    }

    /// Checks an entry of `notional` (currency, > 0) in symbol index `symbol`.
    pub fn check_entry(&self, symbol: usize, notional: f64, h: &Holdings<'_>) -> Result<(), Breach> {
        if h.equity.is_nan() || h.equity <= 0.0 {
            return Err(Breach { code: "no_equity", message: "equity is not positive: weights are undefined".into() });
        }
        let Some(b) = self.bucket_of.get(symbol).copied().flatten() else {
            return Err(Breach {
                code: "unassigned",
                message: "the symbol is in no allocation bucket (fail closed); add it to one".into(),
            });
        };
        let pct = |v: f64| format!("{:.2}%", v * 100.0);
        let add = notional.abs();
        let target = &self.buckets[b];
        let cash_bucket = self.buckets.iter().position(|g| g.cash);
        let before = value(target, h, false) / h.equity;
        let after = if cash_bucket == Some(b) { before } else { before + add / h.equity };
        if after > target.max + 1e-12 && after > before {
            return Err(Breach {
                code: "bucket_max",
                message: format!(
                    "bucket `{}` would hold {} of equity (now {}), above its {} maximum",
                    target.name,
                    pct(after),
                    pct(before),
                    pct(target.max)
                ),
            });
        }
        for m in self.markets.iter().filter(|m| m.members.contains(&symbol)) {
            let before = value(m, h, false) / h.equity;
            let after = before + add / h.equity;
            if after > m.max + 1e-12 {
                return Err(Breach {
                    code: "market_max",
                    message: format!(
                        "market `{}` would hold {} of equity (now {}), above its {} cap",
                        m.name,
                        pct(after),
                        pct(before),
                        pct(m.max)
                    ),
                });
            }
        }
        for (ci, c) in self.buckets.iter().enumerate() {
            if ci == b || c.min <= 0.0 {
                continue;
            }
            let before = value(c, h, true) / h.equity;
            let after = if c.cash { before - add / h.equity } else { before };
            if after < c.min - 1e-12 {
                let now = if after < before { format!(" (now {})", pct(before)) } else { String::new() };
                return Err(Breach {
                    code: "bucket_min",
                    message: format!(
                        "bucket `{}` would hold {} of equity{now}, below its {} minimum",
                        c.name,
                        pct(after),
                        pct(c.min)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A group's value; `staying`: without positions whose exit is working.
fn value(g: &Group, h: &Holdings<'_>, staying: bool) -> f64 {
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0);
    let held: f64 =
        g.members.iter().map(|&i| if staying { at(h.values, i) - at(h.leaving, i) } else { at(h.values, i) }).sum();
    if g.cash { held + h.free_cash.max(0.0) } else { held }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::allocation::{BucketDoc, MarketDoc};
    use crate::diagnostics::{Span, Spanned};

    fn s(v: &str) -> Spanned<String> {
        Spanned::new(v.to_string(), Span { start: 0, end: 0 })
    }

    fn barbell() -> Allocation {
        let bucket = |name: &str, syms: &[&str], min: f64, max: f64, cash: bool| BucketDoc {
            name: s(name),
            symbols: syms.iter().map(|x| s(x)).collect(),
            min,
            max,
            cash,
        };
        let doc = AllocationDoc {
            buckets: vec![
                bucket("safe", &["SHY"], 0.75, 0.95, true),
                bucket("core", &["MSFT"], 0.0, 0.20, false),
                bucket("speculative", &["AAPL", "BTC"], 0.0, 0.10, false),
            ],
            markets: vec![MarketDoc { name: s("crypto"), symbols: vec![s("BTC")], max: 0.05 }],
        };
        Allocation::new(&doc, 0, &["SHY", "MSFT", "AAPL", "BTC", "XOM"])
    }

    #[test]
    fn seed_003_barbell_limits() {
        let a = barbell();
        // 100k all in cash: the safe bucket (with cash) holds 100%.
        let values = [0.0, 0.0, 0.0, 0.0, 0.0];
        let h = Holdings { values: &values, leaving: &[], free_cash: 100_000.0, equity: 100_000.0 };
        assert_eq!(a.bucket_weight(0, &h), 1.0);
        assert_eq!(a.bucket_name(2), Some("speculative"));
        assert!(a.check_entry(1, 20_000.0, &h).is_ok());
        assert_eq!(a.check_entry(1, 20_001.0, &h).unwrap_err().code, "bucket_max");
        assert_eq!(a.check_entry(3, 6_000.0, &h).unwrap_err().code, "market_max");
        assert_eq!(a.check_entry(4, 100.0, &h).unwrap_err().code, "unassigned");
        // 18k core + 8k speculative held: safe has 74k; another 1k core would leave 73%.
        let values = [0.0, 18_000.0, 8_000.0, 0.0, 0.0];
        let h = Holdings { values: &values, leaving: &[], free_cash: 74_000.0, equity: 100_000.0 };
        let e = a.check_entry(1, 1_000.0, &h).unwrap_err();
        assert_eq!(e.code, "bucket_min");
        assert!(e.message.contains("73.00%") && e.message.contains("75.00%"), "{}", e.message);
        // Buying the safe asset with cash moves nothing.
        assert!(a.check_entry(0, 10_000.0, &h).is_ok());
        let h = Holdings { values: &values, leaving: &[], free_cash: 74_000.0, equity: 0.0 };
        assert_eq!(a.check_entry(0, 1.0, &h).unwrap_err().code, "no_equity");
    }

    #[test]
    fn a_safe_bucket_without_cash_must_be_filled_first() {
        let doc = AllocationDoc {
            buckets: vec![
                BucketDoc { name: s("safe"), symbols: vec![s("SHY")], min: 0.75, max: 0.95, cash: false },
                BucketDoc { name: s("core"), symbols: vec![s("MSFT")], min: 0.0, max: 0.20, cash: false },
            ],
            markets: vec![],
        };
        let a = Allocation::new(&doc, 0, &["SHY", "MSFT"]);
        let h = Holdings { values: &[0.0, 0.0], leaving: &[], free_cash: 100_000.0, equity: 100_000.0 };
        assert_eq!(a.check_entry(1, 1_000.0, &h).unwrap_err().code, "bucket_min");
        assert!(a.check_entry(0, 80_000.0, &h).is_ok());
        assert_eq!(a.check_entry(0, 96_000.0, &h).unwrap_err().code, "bucket_max");
        let h = Holdings { values: &[80_000.0, 0.0], leaving: &[], free_cash: 20_000.0, equity: 100_000.0 };
        assert!(a.check_entry(1, 15_000.0, &h).is_ok());
        // The ballast's exit is working: it no longer counts towards the minimum.
        let h =
            Holdings { values: &[80_000.0, 0.0], leaving: &[80_000.0, 0.0], free_cash: 20_000.0, equity: 100_000.0 };
        assert_eq!(a.check_entry(1, 15_000.0, &h).unwrap_err().code, "bucket_min");
    }
}
