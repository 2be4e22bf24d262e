//! The stress document: scenarios `dsl stress` replays a bot through.
//!
//! ```yaml
//! kind: stress
//! name: black_swans
//! max_drawdown: 20%              # what a scenario may cost at most (seed 001: under 20%)
//! scenarios:
//!   - name: crash
//!     crash: 50%                 # or gap_down: 15%, volatility: 3, missing_bars: 10,
//!     symbols: [NVDA]            #    broker_outage: 5 (bars); symbols: default all
//!     at: 2016-01-04             # first shocked bar (default: the middle of the data)
//!     until: 2016-06-30          # end of a volatility window (default: the end)
//! ```

use std::sync::Arc;

use super::node::{Node, NodeValue};
use super::reader::Reader;
use crate::diagnostics::{Diagnostic, SourceFile, Spanned, codes};

/// What a scenario does to the market or the broker (see `engine::stress`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShockSpec {
    /// Instant fall by this fraction within one bar.
    Crash(f64),
    /// Gap down by this fraction at the open.
    GapDown(f64),
    /// Returns multiplied by this factor.
    Volatility(f64),
    /// This many bars missing.
    MissingBars(u32),
    /// Orders fail for this many bars.
    BrokerOutage(u32),
}

/// One scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name (unique in the file).
    pub name: Spanned<String>,
    /// The shock.
    pub shock: Spanned<ShockSpec>,
    /// Symbols it hits (empty: all).
    pub symbols: Vec<Spanned<String>>,
    /// When it starts, as written (`2016-01-04` or RFC 3339); the middle of the data if unset.
    pub at: Option<Spanned<String>>,
    /// When a volatility shock ends, as written.
    pub until: Option<Spanned<String>>,
}

/// A stress document.
#[derive(Debug, Clone, PartialEq)]
pub struct StressDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Its name.
    pub name: Spanned<String>,
    /// Largest drawdown (fraction) a scenario may reach and pass.
    pub max_drawdown: f64,
    /// The scenarios, in order.
    pub scenarios: Vec<Scenario>,
}

/// Reads a stress document from its root mapping.
pub fn read_stress(r: &mut Reader<'_>, root: &Node) -> Option<StressDoc> {
    let mut m = r.map(root, "stress")?;
    m.get("kind");
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    m.get("description");
    let max_dd = m.required(r, "max_drawdown").and_then(|n| r.rate_in(n, "max_drawdown", 1e-6, 1.0));
    let list = m.required(r, "scenarios");
    m.finish(r);
    let items: Vec<&Node> = match list.map(|n| &n.value) {
        Some(NodeValue::Seq(items)) if !items.is_empty() => items.iter().collect(),
        Some(_) => {
            let n = list?;
            return r.fail(codes::WRONG_TYPE, n.span, "`scenarios` must be a list of scenarios".into(), None);
        }
        None => return None,
    };
    let mut scenarios = Vec::new();
    let mut ok = true;
    for item in items {
        match read_scenario(r, item) {
            Some(s) => {
                if scenarios.iter().any(|x: &Scenario| x.name.value == s.name.value) {
                    r.push(
                        Diagnostic::error(codes::DUPLICATE, format!("scenario `{}` is named twice", s.name.value))
                            .at(r.file, s.name.span),
                    );
                    ok = false;
                }
                scenarios.push(s);
            }
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(StressDoc { source: r.file.clone(), name: name?, max_drawdown: max_dd?.value.value, scenarios })
}

fn read_scenario(r: &mut Reader<'_>, node: &Node) -> Option<Scenario> {
    const SHOCKS: &str =
        "give one of `crash: 50%`, `gap_down: 15%`, `volatility: 3`, `missing_bars: 10`, `broker_outage: 5`";
    let mut m = r.map(node, "scenario")?;
    let span = m.span();
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    let crash = m.get("crash").map(|n| (n, r.rate_in(n, "crash", 1e-6, 0.99).map(|v| ShockSpec::Crash(v.value.value))));
    let gap =
        m.get("gap_down").map(|n| (n, r.rate_in(n, "gap_down", 1e-6, 0.99).map(|v| ShockSpec::GapDown(v.value.value))));
    let vol =
        m.get("volatility").map(|n| (n, r.positive_number(n, "volatility").map(|v| ShockSpec::Volatility(v.value))));
    let missing =
        m.get("missing_bars").map(|n| (n, r.positive_int(n, "missing_bars").map(|v| ShockSpec::MissingBars(v.value))));
    let outage = m
        .get("broker_outage")
        .map(|n| (n, r.positive_int(n, "broker_outage").map(|v| ShockSpec::BrokerOutage(v.value))));
    let symbols = m.get("symbols").map(|n| r.string_list(n, "symbols"));
    let at = m.get("at").map(|n| r.string(n, "at"));
    let until = m.get("until").map(|n| r.string(n, "until"));
    m.finish(r);
    let shocks: Vec<_> = [crash, gap, vol, missing, outage].into_iter().flatten().collect();
    if shocks.len() != 1 {
        return r.fail(codes::INVALID_VALUE, span, "a scenario needs exactly one shock".into(), Some(SHOCKS.into()));
    }
    let (node, shock) = shocks.into_iter().next()?;
    let shock = Spanned::new(shock?, node.span);
    let symbols = match symbols {
        Some(s) => s?,
        None => Vec::new(),
    };
    let at = match at {
        Some(a) => Some(a?),
        None => None,
    };
    let until = match until {
        Some(u) => Some(u?),
        None => None,
    };
    Some(Scenario { name: name?, shock, symbols, at, until })
}
