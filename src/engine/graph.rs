//! The runtime indicator graph of one symbol.
//!
//! Built from a [`GraphSpec`]; [`Graph::update`] evaluates every node once per bar in
//! topological order, writing one `f64` per node into a flat value array that rules read by
//! index. Stateful nodes (indicators, history) keep their state inline.
//!
//! Replays can use [`Graph::update_block`] instead: it advances the graph over many bars at
//! once, node by node (one dispatch per node per block instead of per bar, in tight loops over
//! contiguous columns). Both paths run the same indicator code and leave the graph in the same
//! state.
//!
//! Nodes on a higher timeframe (`x@1d`, see [`crate::dsl::program`]) advance only when a
//! [`Resampler`] hands back a closed bar of their timeframe, before the bar's own nodes, and
//! hold their value in between. Such graphs advance bar by bar in both paths.

use std::sync::Arc;

use crate::dsl::catalog::{BarField, Func};
use crate::dsl::program::{GraphSpec, NodeOp};
use crate::dsl::script::{Sandbox, Script, ScriptBudgets, ScriptError, WindowBars};
use crate::dsl::semantics::{BinOp, UnOp, binary, unary};
use crate::indicators::{
    Atr, BBands, Cross, CrossDirection, Ema, Highest, Lowest, Macd, Roc, Rsi, Sma, StdDev, Window,
};

use super::market::{Bar, BarSeries};
use super::resample::{BaseBars, Resampler};

#[derive(Debug, Clone)]
enum Node {
    Const(f64),
    Bar(BarField),
    Unary(UnOp, u32),
    Binary(BinOp, u32, u32),
    Lag { src: u32, k: usize, win: Window },
    Sma(u32, Sma),
    Ema(u32, Ema),
    Rsi(u32, Rsi),
    Macd { src: u32, ind: Macd, aux: u32 },
    Atr(Atr),
    BBands { src: u32, ind: BBands, aux: u32 },
    StdDev(u32, StdDev),
    Highest(u32, Highest),
    Lowest(u32, Lowest),
    Roc(u32, Roc),
    Cross { a: u32, b: u32, ind: Cross },
    Output { aux: u32 },
    Script(Box<ScriptNode>),
}

/// Most script failures kept per node until [`Graph::take_script_failures`] collects them;
/// later ones are only counted.
const MAX_PENDING_FAILURES: usize = 100;

/// A custom indicator node: the last `window` bars, the script, and its failures.
#[derive(Debug, Clone)]
struct ScriptNode {
    script: Arc<Script>,
    window: usize,
    /// open, high, low, close, volume; each holds at most `2 * window` values (amortized O(1)
    /// pushes, contiguous last-`window` slices).
    cols: [Vec<f64>; 5],
    failures: Vec<ScriptFailure>,
    dropped: u64,
    /// The run's script budgets (shared by every graph of an engine).
    budgets: ScriptBudgets,
}

impl ScriptNode {
    fn update(&mut self, ts: i64, bar: [f64; 5]) -> f64 {
        for (col, v) in self.cols.iter_mut().zip(bar) {
            if col.len() == 2 * self.window {
                col.drain(..self.window);
            }
            col.push(v);
        }
        let n = self.cols[0].len();
        if n < self.window {
            return f64::NAN;
        }
        let r = n - self.window..n;
        let w = WindowBars {
            open: &self.cols[0][r.clone()],
            high: &self.cols[1][r.clone()],
            low: &self.cols[2][r.clone()],
            close: &self.cols[3][r.clone()],
            volume: &self.cols[4][r],
        };
        let sandbox = Sandbox::shared();
        match self.budgets.run(&self.script, &sandbox.limits(), || self.script.indicator(sandbox, &w)) {
            Ok(v) => v,
            // Disabled earlier in the run: undefined, already reported once.
            Err(ScriptError::Disabled { first: false, .. }) => f64::NAN,
            Err(e) => {
                if self.failures.len() < MAX_PENDING_FAILURES {
                    self.failures.push(ScriptFailure {
                        ts,
                        script: self.script.source.name.clone(),
                        message: e.to_string(),
                        disabled: matches!(e, ScriptError::Disabled { .. }),
                    });
                } else {
                    self.dropped += 1;
                }
                f64::NAN
            }
        }
    }
}

/// A custom indicator's script failed on a bar; its value there is undefined.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptFailure {
    /// The bar's open time, UTC seconds.
    pub ts: i64,
    /// The script file.
    pub script: String,
    /// What went wrong.
    pub message: String,
    /// This failure disabled the script for the rest of the run.
    pub disabled: bool,
}

/// A symbol's live indicator graph.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    /// The clock of each node (0: the symbol's bars; `k`: `resamplers[k - 1]`).
    clocks: Vec<u16>,
    /// One per higher timeframe the graph reads.
    resamplers: Vec<Resampler>,
    values: Vec<f64>,
    aux: Vec<f64>,
    /// Scratch for [`Graph::update_block`]: secondary outputs per bar of a block.
    aux_rows: Vec<f64>,
}

fn c(bits: &[u64], i: usize) -> f64 {
    bits.get(i).map_or(f64::NAN, |b| f64::from_bits(*b))
}

fn period(bits: &[u64], i: usize) -> usize {
    let v = c(bits, i);
    if v.is_finite() && v >= 1.0 { v as usize } else { 1 }
}

impl Graph {
    /// Instantiates the nodes of `spec` with fresh state, for a symbol whose own bars are
    /// `base` (they bound the higher timeframes the graph reads, if any).
    pub fn new(spec: &GraphSpec, base: BaseBars) -> Self {
        let mut aux_len = 0u32;
        let mut aux_base: Vec<u32> = vec![0; spec.nodes.len()];
        let nodes = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, op)| match op {
                NodeOp::Const(bits) => Node::Const(f64::from_bits(*bits)),
                NodeOp::Bar(f) => Node::Bar(*f),
                NodeOp::Unary(op, a) => Node::Unary(*op, *a),
                NodeOp::Binary(op, a, b) => Node::Binary(*op, *a, *b),
                NodeOp::Lag(src, k) => Node::Lag { src: *src, k: *k as usize, win: Window::new(*k as usize + 1) },
                NodeOp::Output(src, k) => Node::Output { aux: aux_base[*src as usize] + *k as u32 },
                NodeOp::Script { hash, window } => match spec.scripts.get(hash) {
                    Some(script) => Node::Script(Box::new(ScriptNode {
                        script: script.clone(),
                        window: (*window as usize).max(1),
                        cols: Default::default(),
                        failures: Vec::new(),
                        dropped: 0,
                        budgets: ScriptBudgets::default(),
                    })),
                    // A spec always holds its scripts; without one the node stays undefined.
                    None => Node::Const(f64::NAN),
                },
                NodeOp::Indicator { func, args, consts } => {
                    let a0 = args.first().copied().unwrap_or(0);
                    match func {
                        Func::Sma => Node::Sma(a0, Sma::new(period(consts, 0))),
                        Func::Ema => Node::Ema(a0, Ema::new(period(consts, 0))),
                        Func::Rsi => Node::Rsi(a0, Rsi::new(period(consts, 0))),
                        Func::Macd => {
                            aux_base[i] = aux_len;
                            aux_len += 3;
                            Node::Macd {
                                src: a0,
                                ind: Macd::new(period(consts, 0), period(consts, 1), period(consts, 2)),
                                aux: aux_base[i],
                            }
                        }
                        Func::Atr => Node::Atr(Atr::new(period(consts, 0))),
                        Func::BBands => {
                            aux_base[i] = aux_len;
                            aux_len += 3;
                            let k = c(consts, 1);
                            Node::BBands { src: a0, ind: BBands::new(period(consts, 0), k, k), aux: aux_base[i] }
                        }
                        Func::StdDev => Node::StdDev(a0, StdDev::new(period(consts, 0), c(consts, 1))),
                        Func::Highest => Node::Highest(a0, Highest::new(period(consts, 0))),
                        Func::Lowest => Node::Lowest(a0, Lowest::new(period(consts, 0))),
                        Func::Roc => Node::Roc(a0, Roc::new(period(consts, 0))),
                        Func::CrossesAbove | Func::CrossesBelow => {
                            let dir =
                                if *func == Func::CrossesAbove { CrossDirection::Above } else { CrossDirection::Below };
                            Node::Cross { a: a0, b: args.get(1).copied().unwrap_or(a0), ind: Cross::new(dir) }
                        }
                        // Pure and composite functions are lowered to other nodes; never reached.
                        _ => Node::Const(f64::NAN),
                    }
                }
            })
            .collect::<Vec<_>>();
        let values = nodes.iter().map(|n| if let Node::Const(v) = n { *v } else { f64::NAN }).collect();
        let mut clocks = spec.clocks.clone();
        clocks.resize(nodes.len(), 0);
        let resamplers = spec.resamples.iter().map(|r| Resampler::new(*r, base)).collect();
        Graph { nodes, clocks, resamplers, values, aux: vec![f64::NAN; aux_len as usize], aux_rows: Vec::new() }
    }

    /// True when some node reads a higher timeframe.
    pub fn resamples(&self) -> bool {
        !self.resamplers.is_empty()
    }

    /// Makes the graph's custom indicator scripts count against `budgets` (the run's, shared
    /// by every symbol; see [`ScriptBudgets`]). A new graph has a budget table of its own.
    pub fn share_script_budgets(&mut self, budgets: &ScriptBudgets) {
        for n in &mut self.nodes {
            if let Node::Script(s) = n {
                s.budgets = budgets.clone();
            }
        }
    }

    /// True when some node runs a script (its failures must be collected).
    pub fn has_scripts(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n, Node::Script(_)))
    }

    /// Takes the script failures since the last call, oldest first, and how many more were
    /// only counted.
    pub fn take_script_failures(&mut self) -> (Vec<ScriptFailure>, u64) {
        let mut out = Vec::new();
        let mut dropped = 0;
        for n in &mut self.nodes {
            if let Node::Script(s) = n {
                out.append(&mut s.failures);
                dropped += std::mem::take(&mut s.dropped);
            }
        }
        out.sort_by_key(|f| f.ts);
        (out, dropped)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Current values, indexed by node id.
    #[inline]
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Current value of one node.
    #[inline]
    pub fn value(&self, id: u32) -> f64 {
        self.values[id as usize]
    }

    /// Advances the graph over bars `start..start + len` of `series`, writing their values to
    /// `out` column-major (`out[node * len + i]` is the value of `node` on bar `start + i`).
    /// Afterwards [`Graph::values`] holds the last bar's values, as after `len` calls of
    /// [`Graph::update`].
    pub fn update_block(&mut self, series: &BarSeries, start: usize, len: usize, out: &mut Vec<f64>) {
        let n = self.nodes.len();
        out.clear();
        out.resize(n * len, f64::NAN);
        if n == 0 || len == 0 {
            return;
        }
        if self.resamples() {
            // Higher-timeframe nodes advance on closed bars only: bar by bar.
            for i in 0..len {
                self.update(&series.bar(start + i));
                for (k, v) in self.values.iter().enumerate() {
                    out[k * len + i] = *v;
                }
            }
            return;
        }
        let end = start + len;
        // Secondary outputs of multi-output indicators, column-major like `out`.
        let na = self.aux.len();
        let mut aux_cols = std::mem::take(&mut self.aux_rows);
        aux_cols.clear();
        aux_cols.resize(na * len, f64::NAN);
        for (k, node) in self.nodes.iter_mut().enumerate() {
            // Inputs are earlier nodes, so they live in `done`; this node's column is `col`.
            let (done, rest) = out.split_at_mut(k * len);
            let col = &mut rest[..len];
            let input = |j: u32| &done[j as usize * len..(j as usize + 1) * len];
            match node {
                Node::Const(v) => col.fill(*v),
                Node::Bar(f) => col.copy_from_slice(match f {
                    BarField::Open => &series.open[start..end],
                    BarField::High => &series.high[start..end],
                    BarField::Low => &series.low[start..end],
                    BarField::Close => &series.close[start..end],
                    BarField::Volume => &series.volume[start..end],
                }),
                Node::Unary(op, a) => {
                    for (o, x) in col.iter_mut().zip(input(*a)) {
                        *o = unary(*op, *x);
                    }
                }
                Node::Binary(op, a, b) => {
                    for ((o, x), y) in col.iter_mut().zip(input(*a)).zip(input(*b)) {
                        *o = binary(*op, *x, *y);
                    }
                }
                Node::Lag { src, k: lag, win } => {
                    for (o, x) in col.iter_mut().zip(input(*src)) {
                        win.push(*x);
                        *o = win.back(*lag).unwrap_or(f64::NAN);
                    }
                }
                Node::Sma(src, ind) => col.iter_mut().zip(input(*src)).for_each(|(o, x)| *o = ind.update(*x)),
                Node::Ema(src, ind) => col.iter_mut().zip(input(*src)).for_each(|(o, x)| *o = ind.update(*x)),
                Node::Rsi(src, ind) => col.iter_mut().zip(input(*src)).for_each(|(o, x)| *o = ind.update(*x)),
                Node::StdDev(src, ind) => col.iter_mut().zip(input(*src)).for_each(|(o, x)| *o = ind.update(*x)),
                Node::Highest(src, ind) => col.iter_mut().zip(input(*src)).for_each(|(o, x)| *o = ind.update(*x)),
                Node::Lowest(src, ind) => col.iter_mut().zip(input(*src)).for_each(|(o, x)| *o = ind.update(*x)),
                Node::Roc(src, ind) => col.iter_mut().zip(input(*src)).for_each(|(o, x)| *o = ind.update(*x)),
                Node::Macd { src, ind, aux: base } => {
                    let b = *base as usize;
                    for (i, (o, x)) in col.iter_mut().zip(input(*src)).enumerate() {
                        let m = ind.update(*x);
                        aux_cols[b * len + i] = m.line;
                        aux_cols[(b + 1) * len + i] = m.signal;
                        aux_cols[(b + 2) * len + i] = m.histogram;
                        *o = m.line;
                    }
                }
                Node::BBands { src, ind, aux: base } => {
                    let b = *base as usize;
                    for (i, (o, x)) in col.iter_mut().zip(input(*src)).enumerate() {
                        let m = ind.update(*x);
                        aux_cols[b * len + i] = m.upper;
                        aux_cols[(b + 1) * len + i] = m.middle;
                        aux_cols[(b + 2) * len + i] = m.lower;
                        *o = m.middle;
                    }
                }
                Node::Atr(ind) => {
                    let (h, l, c) = (&series.high[start..end], &series.low[start..end], &series.close[start..end]);
                    for (i, o) in col.iter_mut().enumerate() {
                        *o = ind.update(h[i], l[i], c[i]);
                    }
                }
                Node::Cross { a, b, ind } => {
                    for ((o, x), y) in col.iter_mut().zip(input(*a)).zip(input(*b)) {
                        *o = ind.update(*x, *y);
                    }
                }
                Node::Output { aux: j } => {
                    let j = *j as usize;
                    col.copy_from_slice(&aux_cols[j * len..(j + 1) * len]);
                }
                Node::Script(node) => {
                    for (i, o) in col.iter_mut().enumerate() {
                        let b = start + i;
                        let bar = [series.open[b], series.high[b], series.low[b], series.close[b], series.volume[b]];
                        *o = node.update(series.ts[b], bar);
                    }
                }
            }
        }
        for (k, v) in self.values.iter_mut().enumerate() {
            *v = out[k * len + len - 1];
        }
        for (j, v) in self.aux.iter_mut().enumerate() {
            *v = aux_cols[j * len + len - 1];
        }
        self.aux_rows = aux_cols;
    }

    /// Advances every node by one bar: first the higher-timeframe nodes on each of their bars
    /// this one closes, then the nodes on the symbol's own bars.
    #[inline]
    pub fn update(&mut self, bar: &Bar) {
        if self.resamplers.is_empty() {
            self.step(bar, None);
            return;
        }
        for k in 0..self.resamplers.len() {
            for closed in self.resamplers[k].push(bar).into_iter().flatten() {
                self.step(&closed, Some(k as u16 + 1));
            }
        }
        self.step(bar, Some(0));
    }

    /// Advances the nodes on `clock` (every node when `None`) by one bar of their timeframe.
    #[inline]
    fn step(&mut self, bar: &Bar, clock: Option<u16>) {
        let values = &mut self.values;
        let aux = &mut self.aux;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if clock.is_some_and(|c| self.clocks[i] != c) {
                continue;
            }
            let v = match node {
                Node::Const(v) => *v,
                Node::Bar(f) => match f {
                    BarField::Open => bar.open,
                    BarField::High => bar.high,
                    BarField::Low => bar.low,
                    BarField::Close => bar.close,
                    BarField::Volume => bar.volume,
                },
                Node::Unary(op, a) => unary(*op, values[*a as usize]),
                Node::Binary(op, a, b) => binary(*op, values[*a as usize], values[*b as usize]),
                Node::Lag { src, k, win } => {
                    win.push(values[*src as usize]);
                    win.back(*k).unwrap_or(f64::NAN)
                }
                Node::Sma(src, ind) => ind.update(values[*src as usize]),
                Node::Ema(src, ind) => ind.update(values[*src as usize]),
                Node::Rsi(src, ind) => ind.update(values[*src as usize]),
                Node::Macd { src, ind, aux: base } => {
                    let m = ind.update(values[*src as usize]);
                    let b = *base as usize;
                    aux[b] = m.line;
                    aux[b + 1] = m.signal;
                    aux[b + 2] = m.histogram;
                    m.line
                }
                Node::Atr(ind) => ind.update(bar.high, bar.low, bar.close),
                Node::BBands { src, ind, aux: base } => {
                    let m = ind.update(values[*src as usize]);
                    let b = *base as usize;
                    aux[b] = m.upper;
                    aux[b + 1] = m.middle;
                    aux[b + 2] = m.lower;
                    m.middle
                }
                Node::StdDev(src, ind) => ind.update(values[*src as usize]),
                Node::Highest(src, ind) => ind.update(values[*src as usize]),
                Node::Lowest(src, ind) => ind.update(values[*src as usize]),
                Node::Roc(src, ind) => ind.update(values[*src as usize]),
                Node::Cross { a, b, ind } => ind.update(values[*a as usize], values[*b as usize]),
                Node::Output { aux: i } => aux[*i as usize],
                Node::Script(node) => node.update(bar.ts, [bar.open, bar.high, bar.low, bar.close, bar.volume]),
            };
            values[i] = v;
        }
    }

    /// Overrides the current values of some nodes (`(node, value)` pairs) and recomputes the
    /// nodes that are computed from them on the same bar: arithmetic, comparisons and logic.
    /// Stateful nodes (indicators, history, crossings) keep their values, since theirs depend on
    /// earlier bars. Used by `dsl test` to set sub-expression values in a fixture; the next
    /// [`Graph::update`] overwrites the pins.
    pub fn pin(&mut self, pins: &[(u32, f64)]) {
        for &(id, v) in pins {
            if let Some(slot) = self.values.get_mut(id as usize) {
                *slot = v;
            }
        }
        let pinned = |i: usize| pins.iter().any(|&(id, _)| id as usize == i);
        for (i, node) in self.nodes.iter().enumerate() {
            if pinned(i) {
                continue;
            }
            let v = match node {
                Node::Unary(op, a) => unary(*op, self.values[*a as usize]),
                Node::Binary(op, a, b) => binary(*op, self.values[*a as usize], self.values[*b as usize]),
                _ => continue,
            };
            self.values[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::expr_source::ExprSource;
    use crate::dsl::catalog::Context;
    use crate::dsl::check::Checker;
    use crate::dsl::parser::parse_text;

    #[test]
    fn pins_propagate_through_arithmetic_but_not_into_indicators() {
        let text = "rsi(close, 2) < 30 and sma(close, 2) > 0";
        let src = ExprSource::standalone("r", text);
        let t = Checker::new(&src, Context::Eval, &[]).check(&parse_text(text).unwrap()).unwrap();
        let rsi_src = ExprSource::standalone("k", "rsi(close, 2)");
        let rsi = Checker::new(&rsi_src, Context::Eval, &[]).check(&parse_text("rsi(close, 2)").unwrap()).unwrap();
        let mut spec = GraphSpec::new();
        let root = spec.lower(&t);
        let n = spec.len();
        let rsi_id = spec.lower(&rsi);
        assert!((rsi_id as usize) < n, "the key finds the rule's own node");
        let mut g = Graph::new(&spec, BaseBars::DAILY_EQUITIES);
        for c in [10.0, 11.0, 12.0, 13.0] {
            g.update(&Bar { ts: 0, open: c, high: c, low: c, close: c, volume: 0.0 });
        }
        assert_eq!(g.value(root), 0.0, "RSI of a rising series is 100");
        g.pin(&[(rsi_id, 25.0)]);
        assert_eq!(g.value(rsi_id), 25.0);
        assert_eq!(g.value(root), 1.0);
    }
}
