//! Allocation buckets (seed 003's barbell): a policy's `allocation:` section.
//!
//! ```yaml
//! allocation:
//!   buckets:
//!     safe:        {symbols: [SHY, BIL, IEF], min: 75%, max: 95%, cash: true}
//!     core:        {symbols: [MSFT, XOM], max: 20%}
//!     speculative: {symbols: [AAPL, BTC/USD], max: 10%}
//!   markets:                      # optional caps across buckets
//!     ngx: {symbols: [DANGCEM, MTNN], max: 5%}
//! ```
//!
//! A bucket's weight is the market value of its symbols' positions (all strategies, plus the
//! notional of entries still working or awaiting approval) over equity; a bucket with
//! `cash: true` also holds the uninvested cash (cash less the notional of working entries).
//! Every symbol is in at most one bucket; markets group symbols across buckets. Weights are
//! fractions (`75%` = 0.75) of equity. How orders are checked against these is
//! [`crate::engine::allocation`].

use std::collections::HashSet;

use super::node::Node;
use super::reader::Reader;
use crate::diagnostics::{Diagnostic, Spanned, codes};

/// A policy's allocation: buckets that partition symbols, and optional market caps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AllocationDoc {
    /// Buckets in document order.
    pub buckets: Vec<BucketDoc>,
    /// Market caps in document order.
    pub markets: Vec<MarketDoc>,
}

/// A bucket of symbols with a minimum and a maximum weight.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketDoc {
    /// Its name (`safe`, `core`, ...).
    pub name: Spanned<String>,
    /// Member symbols as the data names them.
    pub symbols: Vec<Spanned<String>>,
    /// Minimum weight (fraction of equity; 0 when not given).
    pub min: f64,
    /// Maximum weight (fraction of equity; 1 when not given).
    pub max: f64,
    /// Uninvested cash counts towards this bucket.
    pub cash: bool,
}

/// A cap on the weight of a group of symbols (one exchange or country), across buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketDoc {
    /// Its name (`ngx`, ...).
    pub name: Spanned<String>,
    /// Member symbols.
    pub symbols: Vec<Spanned<String>>,
    /// Maximum weight (fraction of equity).
    pub max: f64,
}

/// Reads an `allocation:` mapping; every problem is reported and `None` returned.
pub fn read_allocation(r: &mut Reader<'_>, node: &Node) -> Option<AllocationDoc> {
    let errors = error_count(r);
    let mut m = r.map(node, "allocation")?;
    let buckets_node = m.required(r, "buckets");
    let markets_node = m.get("markets");
    m.finish(r);
    let mut doc = AllocationDoc::default();
    if let Some(n) = buckets_node {
        for (name, value) in named(r, n, "buckets") {
            let mut b = r.map(value, "bucket")?;
            let symbols = b.required(r, "symbols").and_then(|n| r.string_list(n, "symbols"));
            let min = b.get("min").and_then(|n| r.rate_in(n, "min", 0.0, 1.0)).map_or(0.0, |v| v.value.value);
            let max_node = b.get("max");
            let max = max_node.and_then(|n| r.rate_in(n, "max", 0.0, 1.0)).map_or(1.0, |v| v.value.value);
            let cash = b.get("cash").and_then(|n| r.boolean(n, "cash")).is_some_and(|c| c.value);
            b.finish(r);
            if min > max {
                r.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("bucket `{}` has a minimum above its maximum", name.value),
                    )
                    .at(r.file, max_node.map_or(name.span, |n| n.span))
                    .help("`min` must not exceed `max`"),
                );
            }
            doc.buckets.push(BucketDoc { name, symbols: symbols.unwrap_or_default(), min, max, cash });
        }
    }
    if let Some(n) = markets_node {
        for (name, value) in named(r, n, "markets") {
            let mut mk = r.map(value, "market")?;
            let symbols = mk.required(r, "symbols").and_then(|n| r.string_list(n, "symbols"));
            let max = mk.required(r, "max").and_then(|n| r.rate_in(n, "max", 0.0, 1.0)).map_or(1.0, |v| v.value.value);
            mk.finish(r);
            doc.markets.push(MarketDoc { name, symbols: symbols.unwrap_or_default(), max });
        }
    }
    check(r, &doc, node);
    (error_count(r) == errors).then_some(doc)
}

fn error_count(r: &Reader<'_>) -> usize {
    r.diags.iter().filter(|d| d.is_error()).count()
}

/// The entries of a name → mapping section.
fn named<'n>(r: &mut Reader<'_>, node: &'n Node, what: &str) -> Vec<(Spanned<String>, &'n Node)> {
    let Some(mut m) = r.map(node, what) else { return Vec::new() };
    let out = m.rest().into_iter().map(|(k, v)| (Spanned::new(k.name.clone(), k.span), v)).collect();
    m.finish(r);
    out
}

/// Whole-document checks: one bucket per symbol, at most one cash bucket, minimums that can hold.
fn check(r: &mut Reader<'_>, doc: &AllocationDoc, node: &Node) {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for b in &doc.buckets {
        for s in &b.symbols {
            if let Some((_, other)) = seen.iter().find(|(sym, _)| *sym == s.value) {
                r.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("`{}` is in two buckets: `{other}` and `{}`", s.value, b.name.value),
                    )
                    .at(r.file, s.span)
                    .help("a symbol belongs to one bucket; use `markets` for caps across buckets"),
                );
            } else {
                seen.push((&s.value, &b.name.value));
            }
        }
    }
    let cash: Vec<&BucketDoc> = doc.buckets.iter().filter(|b| b.cash).collect();
    if let Some(second) = cash.get(1) {
        r.push(
            Diagnostic::error(codes::INVALID_VALUE, "only one bucket can hold the cash".to_string())
                .at(r.file, second.name.span)
                .help(format!("`{}` already has `cash: true`", cash[0].name.value)),
        );
    }
    let mins: f64 = doc.buckets.iter().map(|b| b.min).sum();
    if mins > 1.0 + 1e-12 {
        r.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                format!("the buckets' minimums add up to {:.4}%, more than all of equity", mins * 100.0),
            )
            .at(r.file, node.span)
            .help("lower the `min` weights so that they can all hold at once"),
        );
    }
    let mut names = HashSet::new();
    for n in doc.buckets.iter().map(|b| &b.name).chain(doc.markets.iter().map(|m| &m.name)) {
        if !names.insert(n.value.as_str()) {
            r.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{}` names both a bucket and a market", n.value))
                    .at(r.file, n.span)
                    .help("give buckets and markets distinct names"),
            );
        }
    }
}
