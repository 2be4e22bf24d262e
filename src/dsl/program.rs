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
//!
//! Every node runs on a **clock**: 0 is the symbol's own bars; `k >= 1` is the higher timeframe
//! [`GraphSpec::resamples`]`[k - 1]` of an `x@1d`. A bar series inside `@1d` reads the daily
//! bars; an indicator, history or operation whose non-constant inputs all run on one clock runs
//! on it too (it advances once per closed daily bar and holds its value in between); mixing
//! clocks (`close > sma(close, 50)@1d`) runs on the symbol's bars and reads the held values.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::{BarField, FieldId, Func};
use super::check::{TExpr, TKind};
use super::script::Script;
use super::semantics::{BinOp, UnOp};
use super::types::Variability;
use crate::config::expr_source::ExprSource;
use crate::config::timeframe::Resample;

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

/// The clock a node runs on: 0 for the symbol's own bars, `k` for
/// [`GraphSpec::resamples`]`[k - 1]`.
pub type Clock = u16;

/// The nodes of one symbol's graph, in evaluation (topological) order.
#[derive(Debug, Clone, Default)]
pub struct GraphSpec {
    /// Nodes; a node only refers to nodes before it.
    pub nodes: Vec<NodeOp>,
    /// The clock of each node (same length as `nodes`).
    pub clocks: Vec<Clock>,
    /// The higher timeframes the nodes read, in order of first use: clock `k` is
    /// `resamples[k - 1]`.
    pub resamples: Vec<Resample>,
    /// The scripts of [`NodeOp::Script`] nodes, by hash.
    pub scripts: HashMap<u64, Arc<Script>>,
    index: HashMap<(NodeOp, Clock), NodeId>,
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

    /// Adds a node on the symbol's own bars, or returns the existing identical one.
    pub fn intern(&mut self, op: NodeOp) -> NodeId {
        self.intern_on(op, 0)
    }

    /// Adds a node running on `clock`, or returns the existing identical one.
    pub fn intern_on(&mut self, op: NodeOp, clock: Clock) -> NodeId {
        // Constants never change: one node serves every clock.
        let clock = if matches!(op, NodeOp::Const(_)) { 0 } else { clock };
        let key = (op, clock);
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let id = self.nodes.len() as NodeId;
        self.nodes.push(key.0.clone());
        self.clocks.push(clock);
        self.index.insert(key, id);
        id
    }

    /// The clock of node `id`, `None` for a constant (which fits any clock).
    fn clock_of(&self, id: NodeId) -> Option<Clock> {
        match self.nodes.get(id as usize) {
            Some(NodeOp::Const(_)) | None => None,
            Some(_) => self.clocks.get(id as usize).copied(),
        }
    }

    /// The clock of a node computed from `inputs` inside a context on `ctx`: the inputs' one
    /// clock when they agree, the symbol's own bars when they differ, `ctx` without any.
    fn join(&self, inputs: &[NodeId], ctx: Clock) -> Clock {
        let mut clocks = inputs.iter().filter_map(|&i| self.clock_of(i));
        match clocks.next() {
            None => ctx,
            Some(first) if clocks.all(|c| c == first) => first,
            Some(_) => 0,
        }
    }

    /// The clock of higher timeframe `r`, registering it on first use.
    fn clock_for(&mut self, r: Resample) -> Clock {
        if let Some(k) = self.resamples.iter().position(|x| *x == r) {
            return (k + 1) as Clock;
        }
        self.resamples.push(r);
        self.resamples.len() as Clock
    }

    /// Lowers a constant or series expression into graph nodes and returns its node.
    ///
    /// Scalar (context-dependent) expressions must go through [`lower_rule`] instead; given
    /// one here, its context fields lower to undefined constants.
    pub fn lower(&mut self, e: &TExpr) -> NodeId {
        self.lower_in(e, 0)
    }

    /// [`GraphSpec::lower`] inside a context on clock `ctx` (bar series read its bars).
    fn lower_in(&mut self, e: &TExpr, ctx: Clock) -> NodeId {
        let (op, clock) = match &e.kind {
            TKind::Const(v) => (NodeOp::Const(v.to_bits()), 0),
            TKind::Bar(f) => (NodeOp::Bar(*f), ctx),
            TKind::Field(_) => (NodeOp::Const(f64::NAN.to_bits()), 0),
            TKind::Unary(op, a) => {
                let a = self.lower_in(a, ctx);
                (NodeOp::Unary(*op, a), self.join(&[a], ctx))
            }
            TKind::Binary(op, a, b) => {
                let a = self.lower_in(a, ctx);
                let b = self.lower_in(b, ctx);
                (NodeOp::Binary(*op, a, b), self.join(&[a, b], ctx))
            }
            TKind::Lag(x, k) => {
                let x = self.lower_in(x, ctx);
                (NodeOp::Lag(x, *k), self.join(&[x], ctx))
            }
            TKind::Script { script, window } => {
                self.scripts.entry(script.hash).or_insert_with(|| script.clone());
                (NodeOp::Script { hash: script.hash, window: *window }, ctx)
            }
            TKind::Resample(r, x) => {
                let clock = self.clock_for(*r);
                return self.lower_in(x, clock);
            }
            TKind::Indicator { func, args, consts, output } => {
                let args: Vec<NodeId> = args.iter().map(|a| self.lower_in(a, ctx)).collect();
                let clock = self.join(&args, ctx);
                let ind = self.intern_on(
                    NodeOp::Indicator { func: *func, args, consts: consts.iter().map(|c| c.to_bits()).collect() },
                    clock,
                );
                if matches!(func, Func::Macd | Func::BBands) {
                    (NodeOp::Output(ind, *output), clock)
                } else {
                    return ind;
                }
            }
        };
        self.intern_on(op, clock)
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

/// Where the builder takes an operand from (resolved to a register by [`lower_rule`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Operand {
    /// The result of an earlier operation.
    Op(u16),
    /// A context field or graph slot, loaded at the start.
    Input(Input),
    /// A constant.
    Const(f64),
}

/// One operation of a [`ScalarProgram`]; operands are register numbers. Operation `i` writes
/// register `ScalarProgram::first_op() + i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalarOp {
    /// A unary operation.
    Unary(UnOp, u16),
    /// A binary operation.
    Binary(BinOp, u16, u16),
    /// Short-circuit: when register `cond` equals `when`, continue at operation `to` (the
    /// `and` or `or` that `cond` decides; Kleene logic lets it ignore its unevaluated right
    /// side). Writes nothing.
    JumpIf {
        /// Register of the left side of the `and` / `or`.
        cond: u16,
        /// `FALSE` for `and`, `TRUE` for `or`.
        when: f64,
        /// Index of the deciding operation.
        to: u16,
    },
}

/// A short register program over graph slots and context fields.
///
/// Registers: first the constants, then the inputs (fields and graph slots, loaded when the
/// evaluation starts), then one per operation. The value is register [`ScalarProgram::result`].
/// `and` / `or` skip their right side when the left decides (see [`ScalarOp::JumpIf`]);
/// sub-expressions computed on every path are computed once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScalarProgram {
    /// Constants, in registers `0..consts.len()`.
    pub consts: Vec<f64>,
    /// Inputs, in the registers after the constants.
    pub loads: Vec<Input>,
    /// Operations in order.
    pub ops: Vec<ScalarOp>,
    /// The register holding the value.
    pub result: u16,
}

impl ScalarProgram {
    /// The register of the first operation's result.
    pub fn first_op(&self) -> usize {
        self.consts.len() + self.loads.len()
    }

    /// Number of registers.
    pub fn registers(&self) -> usize {
        self.first_op() + self.ops.len()
    }

    /// A program whose value is always `v`.
    pub fn constant(v: f64) -> Self {
        ScalarProgram { consts: vec![v], loads: Vec::new(), ops: Vec::new(), result: 0 }
    }
}

/// A builder operation, with symbolic operands.
#[derive(Debug, Clone, Copy)]
enum BuildOp {
    Unary(UnOp, Operand),
    Binary(BinOp, Operand, Operand),
    JumpIf { cond: Operand, when: f64, to: u16 },
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
        CompiledRule { eval: RuleEval::Program(ScalarProgram::constant(f64::NAN)), inputs: Vec::new() }
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
    let mut b = ProgramBuilder { graph, src, ops: Vec::new(), memo: HashMap::new(), inputs: &mut inputs };
    let result = b.lower(e);
    let ops = b.ops;
    // Registers: constants, then inputs, then operations.
    let mut consts: Vec<f64> = Vec::new();
    let mut loads: Vec<Input> = Vec::new();
    let mut note = |o: Operand| match o {
        Operand::Const(c) if !consts.iter().any(|k| k.to_bits() == c.to_bits()) => consts.push(c),
        Operand::Input(i) if !loads.contains(&i) => loads.push(i),
        _ => {}
    };
    for op in &ops {
        match *op {
            BuildOp::Unary(_, a) | BuildOp::JumpIf { cond: a, .. } => note(a),
            BuildOp::Binary(_, a, b) => {
                note(a);
                note(b);
            }
        }
    }
    note(result);
    let first = consts.len() + loads.len();
    let reg = |o: Operand| -> u16 {
        (match o {
            Operand::Const(c) => consts.iter().position(|k| k.to_bits() == c.to_bits()).unwrap_or(0),
            Operand::Input(i) => consts.len() + loads.iter().position(|k| *k == i).unwrap_or(0),
            Operand::Op(k) => first + k as usize,
        }) as u16
    };
    let ops = ops
        .iter()
        .map(|op| match *op {
            BuildOp::Unary(o, a) => ScalarOp::Unary(o, reg(a)),
            BuildOp::Binary(o, a, b) => ScalarOp::Binary(o, reg(a), reg(b)),
            BuildOp::JumpIf { cond, when, to } => ScalarOp::JumpIf { cond: reg(cond), when, to },
        })
        .collect();
    let result = reg(result);
    CompiledRule { eval: RuleEval::Program(ScalarProgram { consts, loads, ops, result }), inputs }
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
    ops: Vec<BuildOp>,
    /// Operands already computed on every path to the current operation, by structure.
    memo: HashMap<String, Operand>,
    inputs: &'a mut Vec<(String, Input)>,
}

impl ProgramBuilder<'_> {
    fn push(&mut self, key: String, op: BuildOp) -> Operand {
        if let Some(&r) = self.memo.get(&key) {
            return r;
        }
        let r = Operand::Op(self.ops.len() as u16);
        self.ops.push(op);
        self.memo.insert(key, r);
        r
    }

    fn key(o: Operand) -> String {
        match o {
            Operand::Op(r) => format!("r{r}"),
            Operand::Input(Input::Field(f)) => format!("f{f:?}"),
            Operand::Input(Input::Slot(s)) => format!("s{s}"),
            Operand::Const(c) => format!("c{}", c.to_bits()),
        }
    }

    /// Lowers `e` to an operand: constants, fields and graph slots are registers loaded up
    /// front; operations get their own.
    fn lower(&mut self, e: &TExpr) -> Operand {
        if e.ty.var != Variability::Scalar {
            if let Some(v) = e.as_const() {
                return Operand::Const(v);
            }
            let id = self.graph.lower(e);
            push_input(self.inputs, label(self.src, e), Input::Slot(id));
            return Operand::Input(Input::Slot(id));
        }
        match &e.kind {
            TKind::Field(f) => {
                push_input(self.inputs, super::catalog::field_spec(*f).path.to_string(), Input::Field(*f));
                Operand::Input(Input::Field(*f))
            }
            TKind::Unary(op, a) => {
                let a = self.lower(a);
                self.push(format!("u{op:?}{}", Self::key(a)), BuildOp::Unary(*op, a))
            }
            TKind::Binary(op @ (BinOp::And | BinOp::Or), a, b) => {
                let a = self.lower(a);
                let when = if *op == BinOp::And { super::semantics::FALSE } else { super::semantics::TRUE };
                let jump = self.ops.len();
                self.ops.push(BuildOp::JumpIf { cond: a, when, to: 0 });
                // What the right side computes is not computed when the jump is taken: it
                // must not be shared with what follows.
                let before: std::collections::HashSet<String> = self.memo.keys().cloned().collect();
                let b = self.lower(b);
                self.memo.retain(|k, _| before.contains(k));
                let to = self.ops.len() as u16;
                self.ops[jump] = BuildOp::JumpIf { cond: a, when, to };
                self.push(format!("b{op:?}{},{}", Self::key(a), Self::key(b)), BuildOp::Binary(*op, a, b))
            }
            TKind::Binary(op, a, b) => {
                let a = self.lower(a);
                let b = self.lower(b);
                self.push(format!("b{op:?}{},{}", Self::key(a), Self::key(b)), BuildOp::Binary(*op, a, b))
            }
            // Other kinds are never scalar (the checker guarantees it); lower as undefined.
            _ => Operand::Const(f64::NAN),
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
        // `position.entry_price * 1.05`, then `close > that`; the constant and both inputs
        // are registers loaded up front.
        assert_eq!(p.ops.len(), 2);
        assert_eq!((p.consts.len(), p.loads.len()), (1, 2));
        assert_eq!(r.inputs.len(), 2);
        assert_eq!(r.inputs[1].0, "position.entry_price");
    }
}
