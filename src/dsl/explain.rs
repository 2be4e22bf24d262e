//! "Why did (or didn't) my rule fire here?": the tree of sub-expression values on one bar.
//!
//! [`explain`] walks a typed rule and reads each series sub-expression's value from the
//! compiled graph (every sub-expression of a series rule is a graph node), so what it shows is
//! exactly what the engine computed; parts over context fields are computed from their
//! operands. Crossings and history also show the previous bar's values, which they
//! depend on.

use super::check::{TExpr, TKind};
use super::program::{GraphSpec, NodeId};
use super::semantics::{binary, unary};
use super::types::{ValueKind, Variability};
use crate::config::expr_source::ExprSource;

/// One line of an explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// The sub-expression as written.
    pub text: String,
    /// Its value on the bar (`NaN` when undefined; string ids for strings).
    pub value: f64,
    /// Its value kind.
    pub kind: ValueKind,
    /// The string a string value stands for, when known.
    pub string: Option<String>,
    /// Its value on the previous bar, when the parent looks back (crossings, history).
    pub previous: Option<f64>,
    /// The value was given (by a rule test) rather than computed.
    pub given: bool,
    /// Why the value is undefined, when this node is where undefinedness starts (an indicator
    /// warming up, history not yet available, a division by zero); `None` when it is defined
    /// or merely inherits an undefined operand.
    pub why: Option<&'static str>,
    /// Operands and arguments.
    pub children: Vec<Explained>,
}

/// What an explanation reads: graph values on the bar (`now`) and the bar before (`before`),
/// context field values (indexed by [`super::catalog::FieldId`]; empty or `NaN` when there is
/// no context), and a way to name string ids.
pub struct Values<'a> {
    /// Graph values on the explained bar, by node id.
    pub now: &'a [f64],
    /// Graph values on the bar before.
    pub before: &'a [f64],
    /// Context field values.
    pub fields: &'a [f64],
    /// The string behind a string id, if known.
    pub strings: &'a dyn Fn(f64) -> Option<String>,
    /// Nodes whose values were given rather than computed (rule tests' `values:`).
    pub given: &'a [NodeId],
}

/// Builds the explanation of `e`. Series parts read the graph: `graph` must be the spec `e` was
/// lowered into (lowering again finds the same nodes). Parts that read context fields are
/// computed from their operands with the rule language's operators.
pub fn explain(e: &TExpr, src: &ExprSource, graph: &mut GraphSpec, values: &Values<'_>) -> Explained {
    build(e, src, graph, values, false)
}

fn value(id: NodeId, values: &[f64]) -> f64 {
    values.get(id as usize).copied().unwrap_or(f64::NAN)
}

fn build(e: &TExpr, src: &ExprSource, graph: &mut GraphSpec, v: &Values<'_>, want_prev: bool) -> Explained {
    let text = src.text.get(e.span.start..e.span.end).unwrap_or("?").split_whitespace().collect::<Vec<_>>().join(" ");
    let looks_back = matches!(
        &e.kind,
        TKind::Lag(..)
            | TKind::Indicator { func: super::catalog::Func::CrossesAbove | super::catalog::Func::CrossesBelow, .. }
    );
    let children: Vec<Explained> = match &e.kind {
        TKind::Unary(_, a) | TKind::Lag(a, _) => vec![build(a, src, graph, v, looks_back)],
        TKind::Binary(_, a, b) => vec![build(a, src, graph, v, false), build(b, src, graph, v, false)],
        TKind::Indicator { args, .. } => args.iter().map(|a| build(a, src, graph, v, looks_back)).collect(),
        // The parts of `x@1d` run on the higher timeframe's bars: shown as one value.
        TKind::Const(_) | TKind::Bar(_) | TKind::Field(_) | TKind::Script { .. } | TKind::Resample(..) => Vec::new(),
    };
    let mut given = false;
    let (now, previous) = if let TKind::Const(c) = &e.kind {
        (*c, want_prev.then_some(*c))
    } else if e.ty.var == Variability::Scalar {
        let x = match &e.kind {
            TKind::Const(c) => *c,
            TKind::Field(f) => v.fields.get(*f as usize).copied().unwrap_or(f64::NAN),
            TKind::Unary(op, _) => unary(*op, children[0].value),
            TKind::Binary(op, _, _) => binary(*op, children[0].value, children[1].value),
            _ => f64::NAN,
        };
        (x, None)
    } else {
        let id = graph.lower(e);
        given = v.given.contains(&id);
        (value(id, v.now), want_prev.then(|| value(id, v.before)))
    };
    let string = if e.ty.kind == ValueKind::Str { (v.strings)(now) } else { None };
    let why = if now.is_nan() && !given { undefined_because(&e.kind, &children) } else { None };
    // A given value does not come from its operands: they would only mislead.
    let children = if given { Vec::new() } else { children };
    Explained { text, value: now, kind: e.ty.kind, string, previous, given, why, children }
}

/// Why a node is undefined although its operands are not (or it has none).
fn undefined_because(kind: &TKind, children: &[Explained]) -> Option<&'static str> {
    let operands_defined = children.iter().all(|c| !c.value.is_nan());
    match kind {
        TKind::Lag(..) if operands_defined => Some("not that many bars of history yet"),
        TKind::Binary(super::semantics::BinOp::Div, ..) if operands_defined && children[1].value == 0.0 => {
            Some("division by zero")
        }
        TKind::Indicator { func: super::catalog::Func::CrossesAbove | super::catalog::Func::CrossesBelow, .. }
            if operands_defined =>
        {
            Some("an operand is undefined on the previous bar")
        }
        TKind::Indicator { .. } if operands_defined => Some("warming up: not enough defined history yet"),
        TKind::Script { .. } => Some("the script gave no value on this bar (it returned `()` or failed)"),
        TKind::Resample(..) => {
            Some("not enough closed bars of the higher timeframe yet (a bar counts once it has closed)")
        }
        TKind::Field(_) => Some("not available in this context"),
        _ => None,
    }
}

fn show(v: f64, kind: ValueKind, string: Option<&str>) -> String {
    if v.is_nan() {
        return "undefined".into();
    }
    match kind {
        ValueKind::Bool => (v != 0.0).to_string(),
        ValueKind::Str => string.map_or_else(|| "(string)".into(), |s| format!("\"{s}\"")),
        ValueKind::Num => format!("{v}"),
    }
}

/// Renders an explanation as an indented tree.
pub fn render(x: &Explained) -> String {
    let mut out = String::new();
    line(x, "", "", &mut out);
    out
}

fn line(x: &Explained, head: &str, indent: &str, out: &mut String) {
    out.push_str(head);
    out.push_str(&x.text);
    out.push_str(" = ");
    out.push_str(&show(x.value, x.kind, x.string.as_deref()));
    let mut notes = Vec::new();
    if x.given {
        notes.push("given".to_string());
    } else if let Some(p) = x.previous {
        notes.push(format!("previous bar: {}", show(p, x.kind, None)));
    }
    if let Some(why) = x.why {
        notes.push(why.to_string());
    }
    if !notes.is_empty() {
        out.push_str(&format!("   ({})", notes.join("; ")));
    }
    out.push('\n');
    let n = x.children.len();
    for (i, c) in x.children.iter().enumerate() {
        let last = i + 1 == n;
        let (h, next) = if last { ("└─ ", "   ") } else { ("├─ ", "│  ") };
        line(c, &format!("{indent}{h}"), &format!("{indent}{next}"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::catalog::Context;
    use crate::dsl::check::Checker;
    use crate::dsl::parser::parse_text;

    #[test]
    fn renders_a_tree_with_previous_values_for_crossings() {
        let text = "crosses_above(close, 10) and volume > 5";
        let src = ExprSource::standalone("r", text);
        let mut c = Checker::new(&src, Context::Eval, &[]);
        let t = c.check(&parse_text(text).unwrap()).unwrap();
        // Values set by hand per node kind; `explain` looks the nodes up again by lowering.
        let mut graph = GraphSpec::new();
        let root = graph.lower(&t);
        let n = graph.len();
        let mut now = vec![f64::NAN; n];
        let mut before = vec![f64::NAN; n];
        for (i, op) in graph.nodes.iter().enumerate() {
            use crate::dsl::program::NodeOp;
            let (a, b) = match op {
                NodeOp::Bar(crate::dsl::catalog::BarField::Close) => (11.0, 9.0),
                NodeOp::Bar(crate::dsl::catalog::BarField::Volume) => (7.0, 1.0),
                NodeOp::Const(bits) => (f64::from_bits(*bits), f64::from_bits(*bits)),
                _ => (1.0, 0.0),
            };
            now[i] = a;
            before[i] = b;
        }
        now[root as usize] = 1.0;
        let values = Values { now: &now, before: &before, fields: &[], strings: &|_| None, given: &[] };
        let x = explain(&t, &src, &mut graph, &values);
        let out = render(&x);
        assert!(out.starts_with("crosses_above(close, 10) and volume > 5 = true\n"), "{out}");
        assert!(out.contains("│  ├─ close = 11   (previous bar: 9)"), "{out}");
        assert!(out.contains("└─ volume > 5 = true"), "{out}");
    }
}
