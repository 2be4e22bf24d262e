//! The compiled form of rules: a per-symbol indicator graph plus small scalar programs.
//!
//! Lowering splits each typed rule in two:
//!
//! - every sub-expression that depends only on bar data and constants (variability `Const` or
//!   `Series`) becomes a node of a [`GraphSpec`]. Nodes are hash-consed: `sma(close, 10)` used by
//!   two rules, or by two strategies on the same symbol, is one node and is computed once per bar;
//! - what depends on the evaluation context (`account.*`, `position.*`, `order.*`) becomes a
//!   [`ScalarProgram`]: a short list of operations whose leaves read graph slots and fields.
//!
//! A rule that is entirely a series (the common case, e.g. a crossover) compiles to a single
//! graph slot: evaluating it is one array read.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::{BarField, FieldId, Func};
use super::check::{TExpr, TKind};
use super::script::Script;
use super::semantics::{BinOp, UnOp};
use super::types::Variability;
use crate::config::expr_source::ExprSource;

/// Index of a node in a [`GraphSpec`].
pub type NodeId = u32;

/// One node of the indicator graph. Constants are stored as bit patterns so nodes can be
/// hashed for sharing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeOp {
    /// A constant (f64 bits).
    Const(u64),
    /// A bar series.
    Bar(BarField),
    /// A unary operation on another node.
    Unary(UnOp, NodeId),
    /// A binary operation on two nodes.
    Binary(BinOp, NodeId, NodeId),
    /// The value of a node `k` bars ago.
    Lag(NodeId, u32),
    /// An indicator over series nodes with constant parameters (f64 bits). Multi-output
    /// indicators (MACD, BBANDS) are read through [`NodeOp::Output`].
    Indicator {
        /// Which function.
        func: Func,
        /// Input nodes.
        args: Vec<NodeId>,
        /// Constant parameters (f64 bits).
        consts: Vec<u64>,
    },
    /// Output `k` of a multi-output indicator node.
    Output(NodeId, u8),
    /// A custom indicator: the script with this [`Script::hash`] (kept in
    /// [`GraphSpec::scripts`]) over the last `window` bars.
    Script {
        /// The script's hash.
        hash: u64,
        /// Bars per call.
        window: u32,
    },
}

/// The nodes of one symbol's graph, in evaluation (topological) order.
#[derive(Debug, Clone, Default)]
pub struct GraphSpec {
    /// Nodes; a node only refers to nodes before it.
    pub nodes: Vec<NodeOp>,
    /// The scripts of [`NodeOp::Script`] nodes, by hash.
    pub scripts: HashMap<u64, Arc<Script>>,
    index: HashMap<NodeOp, NodeId>,
}

impl GraphSpec {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a node, or returns the existing identical one.
    pub fn intern(&mut self, op: NodeOp) -> NodeId {
        if let Some(&id) = self.index.get(&op) {
            return id;
        }
        let id = self.nodes.len() as NodeId;
        self.nodes.push(op.clone());
        self.index.insert(op, id);
        id
    }

    /// Lowers a constant or series expression into graph nodes and returns its node.
    ///
    /// Scalar (context-dependent) expressions must go through [`lower_rule`] instead; given
    /// one here, its context fields lower to undefined constants.
    pub fn lower(&mut self, e: &TExpr) -> NodeId {
        let op = match &e.kind {
            TKind::Const(v) => NodeOp::Const(v.to_bits()),
            TKind::Bar(f) => NodeOp::Bar(*f),
            TKind::Field(_) => NodeOp::Const(f64::NAN.to_bits()),
            TKind::Unary(op, a) => {
                let a = self.lower(a);
                NodeOp::Unary(*op, a)
            }
            TKind::Binary(op, a, b) => {
                let a = self.lower(a);
                let b = self.lower(b);
                NodeOp::Binary(*op, a, b)
            }
            TKind::Lag(x, k) => {
                let x = self.lower(x);
                NodeOp::Lag(x, *k)
            }
            TKind::Script { script, window } => {
                self.scripts.entry(script.hash).or_insert_with(|| script.clone());
                NodeOp::Script { hash: script.hash, window: *window }
            }
            TKind::Indicator { func, args, consts, output } => {
                let args: Vec<NodeId> = args.iter().map(|a| self.lower(a)).collect();
                let ind = self.intern(NodeOp::Indicator {
                    func: *func,
                    args,
                    consts: consts.iter().map(|c| c.to_bits()).collect(),
                });
                if matches!(func, Func::Macd | Func::BBands) {
                    NodeOp::Output(ind, *output)
                } else {
                    return ind;
                }
            }
        };
        self.intern(op)
    }
}

/// A value a scalar program reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// A graph node's current value.
    Slot(NodeId),
    /// A context field.
    Field(FieldId),
}

/// One operation of a [`ScalarProgram`]; operands index earlier operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalarOp {
    /// A constant.
    Const(f64),
    /// Reads an input.
    Read(Input),
    /// Unary operation on an earlier result.
    Unary(UnOp, u16),
    /// Binary operation on two earlier results.
    Binary(BinOp, u16, u16),
}

/// A straight-line program over graph slots and context fields; its value is the last result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScalarProgram {
    /// Operations in order.
    pub ops: Vec<ScalarOp>,
}

/// A compiled rule and the labelled inputs it reads (for journaling what a rule saw and for
/// `--explain`).
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRule {
    /// How to evaluate it.
    pub eval: RuleEval,
    /// `(label, input)` pairs: field paths, and source text of series sub-expressions.
    pub inputs: Vec<(String, Input)>,
}

/// How a [`CompiledRule`] is evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleEval {
    /// The rule is one graph slot.
    Slot(NodeId),
    /// The rule is a scalar program.
    Program(ScalarProgram),
    /// The rule is a rhai guardrail, run by the caller with the order's context.
    Script(Arc<Script>),
}

impl CompiledRule {
    /// A rhai guardrail rule.
    pub fn script(script: Arc<Script>) -> Self {
        CompiledRule { eval: RuleEval::Script(script), inputs: Vec::new() }
    }

    /// A rule that is always undefined (so a guardrail fails closed).
    pub fn undefined() -> Self {
        CompiledRule {
            eval: RuleEval::Program(ScalarProgram { ops: vec![ScalarOp::Const(f64::NAN)] }),
            inputs: Vec::new(),
        }
    }
}

/// Lowers a typed rule into `graph` (for its series parts) and returns the compiled rule.
/// `src` gives the labels of series inputs.
pub fn lower_rule(graph: &mut GraphSpec, e: &TExpr, src: &ExprSource) -> CompiledRule {
    let mut inputs = Vec::new();
    if e.ty.var != Variability::Scalar {
        let id = graph.lower(e);
        collect_series_inputs(e, graph, src, &mut inputs);
        return CompiledRule { eval: RuleEval::Slot(id), inputs };
    }
    let mut b =
        ProgramBuilder { graph, src, prog: ScalarProgram::default(), memo: HashMap::new(), inputs: &mut inputs };
    b.lower(e);
    let prog = b.prog;
    CompiledRule { eval: RuleEval::Program(prog), inputs }
}

/// Labels for a pure-series rule: its top-level operands that are indicators or bars.
fn collect_series_inputs(e: &TExpr, graph: &mut GraphSpec, src: &ExprSource, out: &mut Vec<(String, Input)>) {
    match &e.kind {
        TKind::Const(_) => {}
        TKind::Unary(_, a) => collect_series_inputs(a, graph, src, out),
        TKind::Binary(BinOp::And | BinOp::Or, a, b) => {
            collect_series_inputs(a, graph, src, out);
            collect_series_inputs(b, graph, src, out);
        }
        TKind::Binary(_, a, b) => {
            for x in [a, b] {
                if x.as_const().is_none() {
                    push_input(out, label(src, x), Input::Slot(graph.lower(x)));
                }
            }
        }
        TKind::Indicator { args, .. } => {
            for x in args {
                if x.as_const().is_none() {
                    push_input(out, label(src, x), Input::Slot(graph.lower(x)));
                }
            }
        }
        _ => push_input(out, label(src, e), Input::Slot(graph.lower(e))),
    }
}

fn push_input(out: &mut Vec<(String, Input)>, label: String, input: Input) {
    if !out.iter().any(|(l, i)| *l == label && *i == input) {
        out.push((label, input));
    }
}

fn label(src: &ExprSource, e: &TExpr) -> String {
    src.text.get(e.span.start..e.span.end).unwrap_or("?").trim().to_string()
}

struct ProgramBuilder<'a> {
    graph: &'a mut GraphSpec,
    src: &'a ExprSource,
    prog: ScalarProgram,
    memo: HashMap<String, u16>,
    inputs: &'a mut Vec<(String, Input)>,
}

impl ProgramBuilder<'_> {
    fn push(&mut self, key: String, op: ScalarOp) -> u16 {
        if let Some(&i) = self.memo.get(&key) {
            return i;
        }
        let i = self.prog.ops.len() as u16;
        self.prog.ops.push(op);
        self.memo.insert(key, i);
        i
    }

    fn lower(&mut self, e: &TExpr) -> u16 {
        if e.ty.var != Variability::Scalar {
            if let Some(v) = e.as_const() {
                return self.push(format!("c{}", v.to_bits()), ScalarOp::Const(v));
            }
            let id = self.graph.lower(e);
            push_input(self.inputs, label(self.src, e), Input::Slot(id));
            return self.push(format!("s{id}"), ScalarOp::Read(Input::Slot(id)));
        }
        match &e.kind {
            TKind::Field(f) => {
                push_input(self.inputs, super::catalog::field_spec(*f).path.to_string(), Input::Field(*f));
                self.push(format!("f{f:?}"), ScalarOp::Read(Input::Field(*f)))
            }
            TKind::Unary(op, a) => {
                let a = self.lower(a);
                self.push(format!("u{op:?}{a}"), ScalarOp::Unary(*op, a))
            }
            TKind::Binary(op, a, b) => {
                let a = self.lower(a);
                let b = self.lower(b);
                self.push(format!("b{op:?}{a},{b}"), ScalarOp::Binary(*op, a, b))
            }
            // Other kinds are never scalar (the checker guarantees it); lower as undefined.
            _ => self.push("nan".into(), ScalarOp::Const(f64::NAN)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::catalog::Context;
    use crate::dsl::check::Checker;
    use crate::dsl::parser::parse_text;

    fn typed(text: &str, ctx: Context) -> (TExpr, ExprSource) {
        let src = ExprSource::standalone("r", text);
        let mut c = Checker::new(&src, ctx, &[]);
        let t = c.check(&parse_text(text).unwrap()).unwrap();
        (t, src)
    }

    #[test]
    fn identical_calls_share_nodes() {
        let mut g = GraphSpec::new();
        let (a, sa) = typed("crosses_above(sma(close, 10), sma(close, 30))", Context::Entry);
        let (b, sb) = typed("sma(close, 10) < sma(close, 30) and sma(close, 10) > 1", Context::Exit);
        lower_rule(&mut g, &a, &sa);
        let before = g.len();
        lower_rule(&mut g, &b, &sb);
        // new nodes: `<`, const 1, `>`, `and` — both SMAs are shared.
        assert_eq!(g.len(), before + 4);
        let smas = g.nodes.iter().filter(|n| matches!(n, NodeOp::Indicator { func: Func::Sma, .. })).count();
        assert_eq!(smas, 2);
    }

    #[test]
    fn macd_outputs_share_one_indicator() {
        let mut g = GraphSpec::new();
        let (a, sa) = typed("macd(close).line > macd(close).signal", Context::Entry);
        lower_rule(&mut g, &a, &sa);
        let macds = g.nodes.iter().filter(|n| matches!(n, NodeOp::Indicator { func: Func::Macd, .. })).count();
        assert_eq!(macds, 1);
    }

    #[test]
    fn scalar_rules_become_programs_reading_slots_and_fields() {
        let mut g = GraphSpec::new();
        let (t, s) = typed("close > position.entry_price * 1.05", Context::Exit);
        let r = lower_rule(&mut g, &t, &s);
        let RuleEval::Program(p) = &r.eval else { panic!() };
        assert_eq!(p.ops.len(), 5);
        assert_eq!(r.inputs.len(), 2);
        assert_eq!(r.inputs[1].0, "position.entry_price");
    }
}
