//! The sweep document: how `dsl sweep` searches the params' spaces (declared in the strategy
//! documents, see [`super::search_space`]) and what it ranks the trials by.
//!
//! ```yaml
//! kind: sweep
//! name: sma_grid
//! method: grid                   # every point of the spaces; `random` (seeded); `tpe`
//! trials: 100                    # random, tpe: how many distinct points to try
//! seed: 7                        # random, tpe: the same seed tries the same points
//! objective: metric.sharpe       # a number expression over `metric.*`
//! direction: maximize            # or `minimize`
//! constraints: [fast < slow]     # rules over the params a trial must satisfy
//! heatmap: [fast, slow]          # the two params of the HTML report's heat map
//! ```
//!
//! Every key but `kind` and `name` is optional; `dsl sweep` flags override them.

use std::sync::Arc;

use super::expr_source::ExprSource;
use super::node::{Node, NodeValue};
use super::reader::Reader;
use crate::diagnostics::{SourceFile, Spanned, codes};

/// How trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every point of the params' grids (their cartesian product), in declaration order.
    Grid,
    /// Points drawn uniformly (log-uniformly on log ranges) from a seeded generator.
    Random,
    /// Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio and Kégl 2011): each
    /// batch of points is drawn where the best results so far are denser than the rest (the
    /// `tpe` crate, by an author of Optuna, whose default sampler this is).
    Tpe,
}

/// Whether the objective is maximised or minimised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is better.
    Maximize,
    /// Lower is better.
    Minimize,
}

/// A sweep document (see the module doc). `None` fields take `dsl sweep`'s defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Its name.
    pub name: Spanned<String>,
    /// The search method.
    pub method: Option<Method>,
    /// Random search: how many distinct points.
    pub trials: Option<u32>,
    /// Random search: the generator's seed.
    pub seed: Option<u64>,
    /// The objective, a number expression over `metric.*`.
    pub objective: Option<ExprSource>,
    /// Maximise or minimise the objective.
    pub direction: Option<Direction>,
    /// Rules over the params a trial must satisfy.
    pub constraints: Vec<ExprSource>,
    /// The two params of the heat map.
    pub heatmap: Option<(Spanned<String>, Spanned<String>)>,
}

/// Reads a sweep document from its root mapping.
pub fn read_sweep(r: &mut Reader<'_>, root: &Node) -> Option<SweepDoc> {
    let mut m = r.map(root, "sweep")?;
    m.get("kind");
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    m.get("description");
    let method = m.get("method").map(|n| {
        r.choice(n, "method", &["grid", "random", "tpe"]).map(|c| match c.value {
            "grid" => Method::Grid,
            "random" => Method::Random,
            _ => Method::Tpe,
        })
    });
    let trials = m.get("trials").map(|n| r.positive_int(n, "trials"));
    let seed = m.get("seed").map(|n| read_seed(r, n));
    let objective = m.get("objective").map(|n| r.expr(n, "objective"));
    let direction = m.get("direction").map(|n| {
        r.choice(n, "direction", &["maximize", "minimize"])
            .map(|c| if c.value == "maximize" { Direction::Maximize } else { Direction::Minimize })
    });
    let constraints = m.get("constraints").map(|n| read_constraints(r, n));
    let heatmap = m.get("heatmap").map(|n| read_heatmap(r, n));
    m.finish(r);
    Some(SweepDoc {
        source: r.file.clone(),
        name: name?,
        method: given(method)?,
        trials: given(trials)?.map(|t| t.value),
        seed: given(seed)?,
        objective: given(objective)?,
        direction: given(direction)?,
        constraints: given(constraints)?.unwrap_or_default(),
        heatmap: given(heatmap)?,
    })
}

/// An optional key read: `Some(None)` when absent, `None` when present and invalid (the
/// error is already reported).
fn given<T>(read: Option<Option<T>>) -> Option<Option<T>> {
    match read {
        None => Some(None),
        Some(v) => v.map(Some),
    }
}

fn read_seed(r: &mut Reader<'_>, node: &Node) -> Option<u64> {
    match node.value {
        NodeValue::Int(i) if i >= 0 => Some(i as u64),
        _ => r.fail(codes::INVALID_VALUE, node.span, "`seed` must be a whole number of at least 0".into(), None),
    }
}

fn read_constraints(r: &mut Reader<'_>, node: &Node) -> Option<Vec<ExprSource>> {
    match &node.value {
        NodeValue::Seq(items) => {
            let mut out = Vec::new();
            let mut ok = true;
            for item in items {
                match r.expr(item, "constraint") {
                    Some(e) => out.push(e),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        NodeValue::Str(_) => r.expr(node, "constraints").map(|e| vec![e]),
        _ => r.fail(
            codes::WRONG_TYPE,
            node.span,
            "`constraints` must be a list of rules, e.g. `[fast < slow]`".into(),
            None,
        ),
    }
}

fn read_heatmap(r: &mut Reader<'_>, node: &Node) -> Option<(Spanned<String>, Spanned<String>)> {
    let names = r.string_list(node, "heatmap")?;
    match <[Spanned<String>; 2]>::try_from(names) {
        Ok([a, b]) if a.value != b.value => Some((a, b)),
        _ => r.fail(
            codes::INVALID_VALUE,
            node.span,
            "`heatmap` names two different params, e.g. `[fast, slow]`".into(),
            None,
        ),
    }
}
