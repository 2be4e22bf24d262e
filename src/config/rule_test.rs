//! The rule-test document (`kind: test`): fixtures that pin down what a strategy or a policy
//! decides in a given situation, run by `dsl test`.
//!
//! ```yaml
//! kind: test
//! name: always_on_caps            # optional; defaults to the file name
//! policy: always_on_caps.yaml     # or `strategy:`; relative to this file
//! cases:
//!   - name: a 6% entry is too large
//!     account: { equity: 100000, exposure: 0 }
//!     position: { quantity: 0 }
//!     order: { intent: entry, side: buy, quantity: 60, price: 100 }
//!     expect: { deny: max_trade_notional }
//!   - name: a 4% entry passes
//!     account: { equity: 100000, exposure: 0 }
//!     position: { quantity: 0 }
//!     order: { intent: entry, side: buy, notional: 4000 }
//!     expect: allow
//! ```
//!
//! A case gives the situation: context fields under `account`, `position` and `order` (names
//! as in the rule language, without the prefix); bar history as `closes: [...]`, as `bars:`
//! (maps with `open`, `high`, `low`, `close`, `volume`), or as `data: {csv: file, at: time}`;
//! sub-expression values under `values:` (keys are expressions as a rule would write them,
//! e.g. `"rsi(close, rsi_period)": 25`); and strategy param overrides under `params:`. It then
//! states the expected outcome: for a policy `allow` or `{deny: rule_id}` (optionally with
//! `message:`, a substring of the denial message); for a strategy `entry`, `exit`, `none`, or
//! `{exit: reason}` with reason `exit_rule`, `stop_loss`, `take_profit` or `max_holding`.
//!
//! This module only reads the document; names are resolved and cases run by
//! `crate::runtime::library::rule_tests`.

use std::sync::Arc;

use super::expr_source::ExprSource;
use super::node::{Node, NodeValue};
use super::reader::Reader;
use super::strategy::{Param, read_params};
use super::units::NumUnit;
use crate::diagnostics::{SourceFile, Span, Spanned, codes};

/// A file of rule tests for one strategy or one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Name shown in reports (the file stem when not given).
    pub name: Spanned<String>,
    /// What the cases test.
    pub target: TestTarget,
    /// The cases, in document order.
    pub cases: Vec<TestCase>,
}

/// Which document a test file exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `strategy: path`
    Strategy,
    /// `policy: path`
    Policy,
}

impl TargetKind {
    /// The key / document kind word.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Strategy => "strategy",
            TargetKind::Policy => "policy",
        }
    }
}

/// The tested document: its kind and its path as written (relative to the test file).
#[derive(Debug, Clone, PartialEq)]
pub struct TestTarget {
    /// Strategy or policy.
    pub kind: TargetKind,
    /// Path as written.
    pub path: Spanned<String>,
}

/// One situation and its expected outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// Case name, shown with pass/fail.
    pub name: Spanned<String>,
    /// Span of the whole case mapping.
    pub span: Span,
    /// Strategy param overrides for this case.
    pub params: Vec<Param>,
    /// Bar history, oldest first; the last bar is the one evaluated.
    pub bars: Option<BarsSpec>,
    /// Sub-expression values: the expression (as a rule would write it) and its value.
    pub values: Vec<(ExprSource, Spanned<CaseValue>)>,
    /// Context fields: `account.equity`, `order.side`, ... with their values.
    pub fields: Vec<(Spanned<String>, Spanned<CaseValue>)>,
    /// The expected outcome.
    pub expect: Spanned<Expect>,
}

/// A value given in a case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseValue {
    /// A number (`5%` is 0.05).
    Number(f64),
    /// A bool.
    Bool(bool),
    /// A string (for `order.side` and the like).
    Str(String),
}

/// Bar history of a case.
#[derive(Debug, Clone, PartialEq)]
pub enum BarsSpec {
    /// Closing prices only: each bar has open = high = low = close and no volume.
    Closes(Vec<f64>, Span),
    /// Full bars; missing `open`/`high`/`low` default to `close`, missing `volume` is undefined.
    Bars(Vec<BarRow>, Span),
    /// Bars of a CSV file (relative to the test file) up to the last bar at or before `at`.
    Csv {
        /// CSV path as written.
        path: Spanned<String>,
        /// Time as written (`2012-12-03` or RFC 3339).
        at: Spanned<String>,
        /// Symbol to read from a file with several.
        symbol: Option<Spanned<String>>,
    },
}

/// One bar written in a case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarRow {
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing price.
    pub close: f64,
    /// Volume (`NaN` when not given).
    pub volume: f64,
}

/// The expected outcome of a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Policy: no rule fires.
    Allow,
    /// Policy: this rule is the first to fire; the message must contain `message` when given.
    Deny {
        /// Rule id.
        rule: Spanned<String>,
        /// Substring of the denial message.
        message: Option<Spanned<String>>,
    },
    /// Policy: the order passes and this `warn` rule fires.
    Warn {
        /// Rule id.
        rule: Spanned<String>,
    },
    /// Strategy: the entry rule fires; with `scale`, the strategy's sizing scale on that bar is
    /// this number, with `price`, the limit or stop price its entry order carries (on the
    /// broker's tick grid, as the journal shows it); each within 1e-9.
    Entry {
        /// The expected sizing scale.
        scale: Option<Spanned<f64>>,
        /// The expected limit or stop price (currency per unit).
        price: Option<Spanned<f64>>,
    },
    /// Strategy: the position is closed; `reason` (`exit_rule`, `stop_loss`, ...) when given.
    Exit(Option<&'static str>),
    /// Strategy: nothing happens.
    Nothing,
}

/// Exit reasons a strategy case can expect.
pub const EXIT_REASONS: [&str; 5] = ["exit_rule", "stop_loss", "trailing_stop", "take_profit", "max_holding"];

/// Reads a test document from its root mapping; every problem goes to `r.diags`.
pub fn read_test(r: &mut Reader<'_>, root: &Node) -> Option<TestDoc> {
    let mut m = r.map(root, "test")?;
    let span = m.span();
    m.get("kind");
    let name = m.get("name").and_then(|n| r.name(n, "name"));
    let strategy = m.get("strategy").and_then(|n| r.name(n, "strategy"));
    let policy = m.get("policy").and_then(|n| r.name(n, "policy"));
    let cases_node = m.required(r, "cases");
    m.finish(r);
    let target = match (strategy, policy) {
        (Some(path), None) => TestTarget { kind: TargetKind::Strategy, path },
        (None, Some(path)) => TestTarget { kind: TargetKind::Policy, path },
        (Some(_), Some(p)) => {
            return r.fail(
                codes::INVALID_VALUE,
                p.span,
                "a test file tests one document: give `strategy` or `policy`, not both".into(),
                Some("split the cases into two test files".into()),
            );
        }
        (None, None) => {
            return r.fail(
                codes::MISSING_KEY,
                span,
                "missing key `strategy` or `policy`: which document do these cases test?".into(),
                Some("add e.g. `policy: ../policies/always_on_caps.yaml` (relative to this file)".into()),
            );
        }
    };
    let cases = match cases_node.map(|n| &n.value) {
        Some(NodeValue::Seq(items)) => items.iter().filter_map(|c| read_case(r, c, target.kind)).collect(),
        Some(_) => {
            let n = cases_node?;
            return r.fail(
                codes::WRONG_TYPE,
                n.span,
                format!("`cases` must be a list of cases, found {}", n.kind_name()),
                None,
            );
        }
        None => return None,
    };
    let stem = std::path::Path::new(&r.file.name)
        .file_name()
        .and_then(|s| s.to_str())
        .map(|s| s.trim_end_matches(".yaml").trim_end_matches(".yml").trim_end_matches(".test").to_string())
        .unwrap_or_default();
    Some(TestDoc { source: r.file.clone(), name: name.unwrap_or_else(|| Spanned::new(stem, span)), target, cases })
}

fn read_case(r: &mut Reader<'_>, node: &Node, kind: TargetKind) -> Option<TestCase> {
    let mut m = r.map(node, "test case")?;
    let span = m.span();
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    let params = match m.get("params") {
        Some(n) if kind == TargetKind::Policy => {
            r.fail::<()>(codes::INVALID_VALUE, n.span, "policies have no params".into(), None);
            None
        }
        Some(n) => read_params(r, n, false),
        None => Some(Vec::new()),
    };
    let closes = m.get("closes");
    let bars = m.get("bars");
    let data = m.get("data");
    let values = m.get("values").map(|n| read_values(r, n));
    let mut fields = Vec::new();
    let mut fields_ok = true;
    for group in ["account", "position", "order", "symbol", "bucket", "session"] {
        if let Some(n) = m.get(group) {
            fields_ok &= read_fields(r, n, group, &mut fields);
        }
    }
    let expect = m.required(r, "expect").and_then(|n| read_expect(r, n, kind));
    m.finish(r);
    let given = [closes, bars, data].iter().filter(|n| n.is_some()).count();
    let bars = if given > 1 {
        r.fail(
            codes::INVALID_VALUE,
            span,
            "give the bar history once: `closes`, `bars` or `data`".into(),
            Some("`closes` is the short form of `bars` with only closing prices".into()),
        )
    } else if let Some(n) = closes {
        read_closes(r, n)
    } else if let Some(n) = bars {
        read_bars(r, n)
    } else if let Some(n) = data {
        read_data(r, n)
    } else {
        Some(None)
    };
    let (name, expect, params, bars, values) = (name?, expect?, params?, bars?, values.unwrap_or(Some(Vec::new()))?);
    fields_ok.then_some(TestCase { name, span, params, bars, values, fields, expect })
}

fn read_number(r: &mut Reader<'_>, node: &Node, what: &str) -> Option<f64> {
    r.number(node, what).map(|n| n.value.0)
}

fn read_closes(r: &mut Reader<'_>, node: &Node) -> Option<Option<BarsSpec>> {
    let NodeValue::Seq(items) = &node.value else {
        return r.fail(
            codes::WRONG_TYPE,
            node.span,
            format!("`closes` must be a list of prices, found {}", node.kind_name()),
            Some("write e.g. `closes: [100, 101.5, 99]` (oldest first)".into()),
        );
    };
    let v: Option<Vec<f64>> = items.iter().map(|i| read_number(r, i, "close")).collect();
    Some(Some(BarsSpec::Closes(v?, node.span)))
}

fn read_bars(r: &mut Reader<'_>, node: &Node) -> Option<Option<BarsSpec>> {
    let NodeValue::Seq(items) = &node.value else {
        return r.fail(
            codes::WRONG_TYPE,
            node.span,
            format!("`bars` must be a list of bars, found {}", node.kind_name()),
            Some("write e.g. `bars: [{open: 10, high: 11, low: 9, close: 10.5}]` (oldest first)".into()),
        );
    };
    let mut rows = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(mut m) = r.map(item, "bar") else {
            ok = false;
            continue;
        };
        let get = |m: &mut super::reader::MapView<'_>, key: &'static str, r: &mut Reader<'_>| {
            m.get(key).map(|n| read_number(r, n, key))
        };
        let open = get(&mut m, "open", r);
        let high = get(&mut m, "high", r);
        let low = get(&mut m, "low", r);
        let close = m.required(r, "close").map(|n| read_number(r, n, "close"));
        let volume = get(&mut m, "volume", r);
        m.finish(r);
        let Some(Some(close)) = close else {
            ok = false;
            continue;
        };
        let pick = |v: Option<Option<f64>>, default: f64, ok: &mut bool| match v {
            Some(Some(x)) => x,
            Some(None) => {
                *ok = false;
                default
            }
            None => default,
        };
        rows.push(BarRow {
            open: pick(open, close, &mut ok),
            high: pick(high, close, &mut ok),
            low: pick(low, close, &mut ok),
            close,
            volume: pick(volume, f64::NAN, &mut ok),
        });
    }
    ok.then_some(Some(BarsSpec::Bars(rows, node.span)))
}

fn read_data(r: &mut Reader<'_>, node: &Node) -> Option<Option<BarsSpec>> {
    let mut m = r.map(node, "data")?;
    let path = m.required(r, "csv").and_then(|n| r.name(n, "csv"));
    let at = m.required(r, "at").and_then(|n| r.name(n, "at"));
    let symbol = m.get("symbol").and_then(|n| r.name(n, "symbol"));
    m.finish(r);
    Some(Some(BarsSpec::Csv { path: path?, at: at?, symbol }))
}

fn read_value(r: &mut Reader<'_>, node: &Node, what: &str) -> Option<CaseValue> {
    match &node.value {
        NodeValue::Bool(b) => Some(CaseValue::Bool(*b)),
        NodeValue::Int(_) | NodeValue::Float(_) => read_number(r, node, what).map(CaseValue::Number),
        NodeValue::Str(s) => match super::units::parse_number(s) {
            Some((v, _)) if !node.is_quoted(r.file) => Some(CaseValue::Number(v)),
            _ => Some(CaseValue::Str(s.clone())),
        },
        _ => r.fail(
            codes::WRONG_TYPE,
            node.span,
            format!("`{what}` must be a number, a bool or a string, found {}", node.kind_name()),
            None,
        ),
    }
}

fn read_values(r: &mut Reader<'_>, node: &Node) -> Option<Vec<(ExprSource, Spanned<CaseValue>)>> {
    let mut m = r.map(node, "values")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in m.rest() {
        let expr = ExprSource::new(r.file, key.name.clone(), key.span);
        match read_value(r, value, &key.name) {
            Some(v) => out.push((expr, Spanned::new(v, value.span))),
            None => ok = false,
        }
    }
    m.finish(r);
    ok.then_some(out)
}

fn read_fields(
    r: &mut Reader<'_>,
    node: &Node,
    group: &str,
    out: &mut Vec<(Spanned<String>, Spanned<CaseValue>)>,
) -> bool {
    let Some(mut m) = r.map(node, group) else { return false };
    let mut ok = true;
    for (key, value) in m.rest() {
        let path = format!("{group}.{}", key.name);
        match read_value(r, value, &path) {
            Some(v) => out.push((Spanned::new(path, key.span), Spanned::new(v, value.span))),
            None => ok = false,
        }
    }
    m.finish(r);
    ok
}

fn read_expect(r: &mut Reader<'_>, node: &Node, kind: TargetKind) -> Option<Spanned<Expect>> {
    const POLICY: &str = "write `allow`, `{deny: rule_id}` or `{warn: rule_id}`";
    const STRATEGY: &str = "write `entry`, `exit`, `none`, `{entry: {scale: 1.2}}` (the entry and its sizing \
                            scale), or `{exit: reason}` with reason one of `exit_rule`, `stop_loss`, \
                            `take_profit`, `max_holding`";
    if let NodeValue::Map(_) = node.value {
        let mut m = r.map(node, "expect")?;
        // The span is the value's (the rule id, the exit reason), which is what errors point at.
        let out = match kind {
            TargetKind::Policy if m.get("warn").is_some() => {
                let warn = m.get("warn").and_then(|n| r.name(n, "warn"));
                warn.map(|rule| {
                    let span = rule.span;
                    Spanned::new(Expect::Warn { rule }, span)
                })
            }
            TargetKind::Policy => {
                let deny = m.required(r, "deny").and_then(|n| r.name(n, "deny"));
                let message = m.get("message").and_then(|n| r.name(n, "message"));
                deny.map(|rule| {
                    let span = rule.span;
                    Spanned::new(Expect::Deny { rule, message }, span)
                })
            }
            TargetKind::Strategy if m.get("entry").is_some() => {
                let entry = m.get("entry").and_then(|n| r.map(n, "entry"));
                entry.and_then(|mut e| {
                    let span = e.span();
                    let scale = e.get("scale").map(|n| r.number(n, "scale"));
                    let price = e.get("price").map(|n| r.number(n, "price"));
                    e.finish(r);
                    let num = |x: Option<Option<Spanned<(f64, NumUnit)>>>| match x {
                        Some(Some(k)) => Some(Some(Spanned::new(k.value.0, k.span))),
                        Some(None) => None,
                        None => Some(None),
                    };
                    let (scale, price) = (num(scale)?, num(price)?);
                    if scale.is_none() && price.is_none() {
                        return r.fail(
                            codes::MISSING_KEY,
                            span,
                            "`entry:` expects the entry's `scale`, its `price`, or both".into(),
                            Some("e.g. `expect: {entry: {price: 65.15}}`, or `expect: entry`".into()),
                        );
                    }
                    Some(Spanned::new(Expect::Entry { scale, price }, span))
                })
            }
            TargetKind::Strategy => {
                let reason = m.required(r, "exit").and_then(|n| r.choice(n, "exit reason", &EXIT_REASONS));
                reason.map(|c| Spanned::new(Expect::Exit(Some(c.value)), c.span))
            }
        };
        m.finish(r);
        return out;
    }
    let (allowed, help): (&[&'static str], &str) = match kind {
        TargetKind::Policy => (&["allow"], POLICY),
        TargetKind::Strategy => (&["entry", "exit", "none"], STRATEGY),
    };
    let Some(word) = node.scalar_text(r.file) else {
        return r.fail(
            codes::WRONG_TYPE,
            node.span,
            format!("`expect` must be a word or a mapping, found {}", node.kind_name()),
            Some(help.into()),
        );
    };
    if kind == TargetKind::Policy && word == "deny" {
        return r.fail(
            codes::INVALID_VALUE,
            node.span,
            "`expect: deny` must name the rule that denies".into(),
            Some("write `{deny: rule_id}`".into()),
        );
    }
    let c = r.choice(node, "expected outcome", allowed)?;
    let e = match c.value {
        "allow" => Expect::Allow,
        "entry" => Expect::Entry { scale: None, price: None },
        "exit" => Expect::Exit(None),
        _ => Expect::Nothing,
    };
    Some(Spanned::new(e, c.span))
}

impl Expect {
    /// How the outcome reads in reports: `allow`, `deny by max_trade_notional`, `exit (stop_loss)`.
    pub fn describe(&self) -> String {
        match self {
            Expect::Allow => "allow".into(),
            Expect::Deny { rule, message: None } => format!("deny by `{}`", rule.value),
            Expect::Deny { rule, message: Some(m) } => {
                format!("deny by `{}` with a message containing `{}`", rule.value, m.value)
            }
            Expect::Warn { rule } => format!("allow with a warning by `{}`", rule.value),
            Expect::Entry { scale, price } => {
                let mut s = "entry".to_string();
                if let Some(k) = scale {
                    s.push_str(&format!(" with sizing scale {}", super::units::trim_float(k.value)));
                }
                if let Some(p) = price {
                    let and = if scale.is_some() { " and" } else { "" };
                    s.push_str(&format!("{and} at price {}", super::units::trim_float(p.value)));
                }
                s
            }
            Expect::Exit(None) => "exit".into(),
            Expect::Exit(Some(r)) => format!("exit ({r})"),
            Expect::Nothing => "none".into(),
        }
    }
}
