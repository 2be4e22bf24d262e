//! `method: tpe`: the Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio and Kégl,
//! "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011) through the `tpe` crate (by
//! an author of Optuna, whose default sampler is this method): one estimator per param (a
//! Parzen estimator over a continuous range, in log space for `log: true`; a histogram over
//! the points of a grid or the choices), each told every result.
//!
//! Points are asked in batches of [`BATCH`], each batch run on every core and then told: the
//! batch size does not depend on the cores, so a seed gives the same trials on any machine. A
//! point that repeats one already tried is drawn again; one that breaks a constraint is told
//! as the worst result and not run. Trials are numbered in the order they are asked; a TPE
//! search cannot be split into shards (each batch depends on the results before it).

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use tpe::{TpeOptimizer, categorical_range, histogram_estimator, parzen_estimator, range};

use super::sweep::{SweepPlan, TrialRow};
use crate::config::search_space::SearchSpace;
use crate::config::strategy::ParamValue;
use crate::config::sweep::Direction;
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::sweep::{Constraint, SweptParam, Trial};
use crate::runtime::library::source::MarketData;

/// Points asked and run together.
pub const BATCH: usize = 8;

/// Draws per requested trial before the search gives up finding new points.
const DRAWS_PER_TRIAL: usize = 50;

/// How one param is asked for and mapped back to its space.
enum Axis {
    /// An index into these values (a grid or choices).
    Points(Vec<ParamValue>),
    /// A number in `[low, high]` (in log space when `log`).
    Continuous { log: bool, integer: bool, unit: crate::config::units::NumUnit },
}

fn axis(p: &SweptParam) -> Result<(Axis, TpeOptimizer), Diagnostic> {
    let bad = |e: String| Diagnostic::error(codes::INVALID_VALUE, format!("param `{}`: {e}", p.name));
    if let Some(points) = p.space.grid() {
        let r = categorical_range(points.len()).map_err(|e| bad(e.to_string()))?;
        return Ok((Axis::Points(points), TpeOptimizer::new(histogram_estimator(), r)));
    }
    let SearchSpace::Range { low, high, log, integer, unit, .. } = &p.space else {
        return Err(bad("no space".into()));
    };
    let (a, b) = if *log { (low.ln(), high.ln()) } else { (*low, *high) };
    let r = range(a, b).map_err(|e| bad(e.to_string()))?;
    Ok((Axis::Continuous { log: *log, integer: *integer, unit: *unit }, TpeOptimizer::new(parzen_estimator(), r)))
}

fn value(axis: &Axis, x: f64, space: &SearchSpace) -> ParamValue {
    match axis {
        Axis::Points(p) => p[(x.max(0.0) as usize).min(p.len() - 1)].clone(),
        Axis::Continuous { log, integer, unit } => {
            let v = if *log { x.exp() } else { x };
            let v = if *integer { v.round() } else { v };
            let v = match space {
                SearchSpace::Range { low, high, .. } => v.clamp(*low, *high),
                SearchSpace::Choices(_) => v,
            };
            ParamValue::Number(v, *unit)
        }
    }
}

/// Runs a TPE search of `count` trials over `market` (see the module doc).
///
/// # Errors
/// A param the estimators cannot take, a trial's bot that does not compile, a stop.
pub fn search(
    plan: &SweepPlan,
    market: &MarketData,
    count: usize,
    seed: u64,
    constraints: &[Constraint],
    stop: &AtomicBool,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<(Trial, TrialRow)>, Diagnostic> {
    let params = plan.params();
    let mut axes = Vec::new();
    for p in params {
        axes.push(axis(p)?);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen: HashSet<String> = HashSet::new();
    let mut out: Vec<(Trial, TrialRow)> = Vec::new();
    let mut draws = 0usize;
    let worst = f64::INFINITY;
    while out.len() < count && draws < count.saturating_mul(DRAWS_PER_TRIAL) {
        let mut batch: Vec<(Trial, Vec<f64>)> = Vec::new();
        while batch.len() < BATCH.min(count - out.len()) && draws < count.saturating_mul(DRAWS_PER_TRIAL) {
            draws += 1;
            let mut xs = Vec::new();
            for (_, o) in axes.iter_mut() {
                xs.push(o.ask(&mut rng).map_err(|e| Diagnostic::error(codes::RUNTIME_REFUSED, format!("TPE: {e}")))?);
            }
            let values: Vec<ParamValue> =
                axes.iter().zip(&xs).zip(params).map(|(((a, _), x), p)| value(a, *x, &p.space)).collect();
            if !seen.insert(format!("{values:?}")) {
                continue;
            }
            if !crate::engine::sweep::satisfies(constraints, params, &values)? {
                for ((_, o), x) in axes.iter_mut().zip(&xs) {
                    let _ = o.tell(*x, worst);
                }
                continue;
            }
            batch.push((Trial { index: out.len() + batch.len(), values }, xs));
        }
        if batch.is_empty() {
            break;
        }
        let trials: Vec<&Trial> = batch.iter().map(|(t, _)| t).collect();
        let rows = plan.evaluate(market, &trials, stop, progress)?;
        if rows.len() < batch.len() {
            return Err(Diagnostic::error(codes::RUNTIME_REFUSED, "the search was stopped"));
        }
        for ((trial, xs), row) in batch.into_iter().zip(rows) {
            // The estimators minimise: a maximised objective is told negated, none is worst.
            let v = match (row.objective, plan.identity().direction) {
                (Some(v), Direction::Maximize) => -v,
                (Some(v), Direction::Minimize) => v,
                (None, _) => worst,
            };
            for ((_, o), x) in axes.iter_mut().zip(&xs) {
                let _ = o.tell(*x, v);
            }
            out.push((trial, row));
        }
    }
    if out.is_empty() {
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            "no point of the search space satisfies the constraints",
        )
        .help("loosen the constraints or widen the ranges"));
    }
    Ok(out)
}
