//! A parameter sweep as a deterministic list of trials: which params are searched, which
//! points are tried (every grid point, or seeded random draws), which of them satisfy the
//! constraints, the bot each point makes, and the metrics and objective of a finished trial.
//!
//! The list depends only on the bundle, the method, the trial count and the seed, so a
//! sweep split into shards (trial `i` belongs to shard `i mod N`) and merged gives exactly
//! the single-process result. Running the trials (in parallel, over bars loaded once) is the
//! runtime's job (`runtime::research::sweep`).

use std::collections::HashSet;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::config::expr_source::ExprSource;
use crate::config::search_space::SearchSpace;
use crate::config::strategy::{Param, ParamValue};
use crate::config::sweep::{Direction, Method};
use crate::diagnostics::{Diagnostic, Span, Spanned, codes};
use crate::dsl::bundle::{Bundle, compile_strategy};
use crate::dsl::catalog::Context;
use crate::dsl::catalog::{FIELD_COUNT, FieldId};
use crate::dsl::check::Checker;
use crate::dsl::check::TExpr;
use crate::dsl::interp::eval_at;
use crate::dsl::parser;
use crate::dsl::semantics::fires;
use crate::engine::backtest::BacktestOutput;
use crate::engine::gate_metrics::{MetricInputs, TradeRecord, compute};

/// Most trials one sweep may hold (a grid's points multiply across params).
pub const MAX_TRIALS: usize = 1_000_000;

/// Draws per requested trial before a random search gives up finding new points that
/// satisfy the constraints.
const DRAWS_PER_TRIAL: usize = 100;

/// One searched param: the strategy that declares it and its space.
#[derive(Debug, Clone, PartialEq)]
pub struct SweptParam {
    /// Index of the strategy in the bundle.
    pub strategy: usize,
    /// The param's name in its strategy.
    pub param: String,
    /// Its name in constraints, tables and reports: the param's own name when no other
    /// strategy of the bot searches one of that name, else `strategy.param`.
    pub name: String,
    /// The values it may take.
    pub space: SearchSpace,
}

/// The params of `bundle` that declare a search space, in strategy then declaration order.
pub fn swept_params(bundle: &Bundle) -> Vec<SweptParam> {
    let mut out: Vec<SweptParam> = Vec::new();
    for (i, s) in bundle.strategies.iter().enumerate() {
        for p in &s.doc.params {
            if let Some(space) = &p.space {
                out.push(SweptParam {
                    strategy: i,
                    param: p.name.value.clone(),
                    name: p.name.value.clone(),
                    space: space.value.clone(),
                });
            }
        }
    }
    let names: Vec<String> = out.iter().map(|p| p.param.clone()).collect();
    for p in &mut out {
        if names.iter().filter(|n| **n == p.param).count() > 1 {
            p.name = format!("{}.{}", bundle.strategies[p.strategy].name(), p.param);
        }
    }
    out
}

/// One point of the search: a value for each swept param, in [`swept_params`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Its number in the sweep's list (0-based; shards split by it).
    pub index: usize,
    /// The values.
    pub values: Vec<ParamValue>,
}

/// A constraint compiled once against the swept params' names (its type and names checked
/// like every rule), then evaluated per point.
pub struct Constraint {
    src: ExprSource,
    ast: crate::dsl::ast::Expr,
}

/// Compiles `constraints` over the swept `params` (checked with their defaults: names, types).
///
/// # Errors
/// The diagnostics of a constraint that does not parse, names no swept param, or is not a
/// bool rule.
pub fn compile_constraints(
    constraints: &[ExprSource],
    params: &[SweptParam],
    defaults: &[ParamValue],
) -> Result<Vec<Constraint>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for src in constraints {
        let ast = match parser::parse(src) {
            Ok(a) => a,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let c = Constraint { src: src.clone(), ast };
        if let Err(mut d) = c.holds(params, defaults) {
            diags.append(&mut d);
            continue;
        }
        out.push(c);
    }
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

impl Constraint {
    /// Whether the constraint holds for `values` of `params`.
    fn holds(&self, params: &[SweptParam], values: &[ParamValue]) -> Result<bool, Vec<Diagnostic>> {
        let ps: Vec<Param> = params
            .iter()
            .zip(values)
            .map(|(p, v)| Param {
                name: Spanned::new(p.name.clone(), Span::default()),
                value: Spanned::new(v.clone(), Span::default()),
                space: None,
            })
            .collect();
        let mut c = Checker::new(&self.src, Context::Gate, &ps);
        let t = c.check_rule(&self.ast, "constraint");
        if c.diags.iter().any(Diagnostic::is_error) || t.is_none() {
            return Err(c.diags);
        }
        let t = t.unwrap_or_else(|| unreachable!("checked above"));
        Ok(fires(eval_at(&t, None, 0, &[f64::NAN; FIELD_COUNT])))
    }
}

/// The sweep's trials: every grid point (last param varying fastest) or `count` distinct
/// random points drawn from `seed`, those that satisfy every constraint, numbered from 0.
///
/// # Errors
/// A grid over a continuous range, more than [`MAX_TRIALS`] points, no point satisfying the
/// constraints, or no swept param at all.
pub fn trials(
    params: &[SweptParam],
    method: Method,
    count: usize,
    seed: u64,
    constraints: &[Constraint],
) -> Result<Vec<Trial>, Diagnostic> {
    if params.is_empty() {
        return Err(Diagnostic::error(codes::INVALID_VALUE, "the bot's strategies declare no search space")
            .help("give a param a space in its strategy document, e.g. `fast: {value: 10, range: [5, 30], step: 5}`"));
    }
    let ok = |values: &[ParamValue]| satisfies(constraints, params, values);
    let mut out: Vec<Vec<ParamValue>> = Vec::new();
    match method {
        Method::Grid => {
            let mut grids = Vec::new();
            for p in params {
                match p.space.grid() {
                    Some(g) => grids.push(g),
                    None => {
                        return Err(Diagnostic::error(
                            codes::INVALID_VALUE,
                            format!("param `{}` is a continuous range: a grid cannot enumerate it", p.name),
                        )
                        .help("give its range a `step` or `steps`, or search at random (`--method random`)"));
                    }
                }
            }
            let total = grids.iter().try_fold(1usize, |n, g| n.checked_mul(g.len()).filter(|n| *n <= MAX_TRIALS));
            if total.is_none() {
                return Err(Diagnostic::error(
                    codes::INVALID_VALUE,
                    format!("the grid has more than {MAX_TRIALS} points"),
                )
                .help("take larger steps, fix some params, or search at random (`--method random --trials N`)"));
            }
            let mut idx = vec![0usize; grids.len()];
            loop {
                let point: Vec<ParamValue> = idx.iter().zip(&grids).map(|(i, g)| g[*i].clone()).collect();
                if ok(&point)? {
                    out.push(point);
                }
                // Odometer: the last param varies fastest.
                let mut k = grids.len();
                loop {
                    if k == 0 {
                        return finish(out);
                    }
                    k -= 1;
                    idx[k] += 1;
                    if idx[k] < grids[k].len() {
                        break;
                    }
                    idx[k] = 0;
                }
            }
        }
        Method::Random | Method::Tpe => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut seen: HashSet<String> = HashSet::new();
            let count = count.min(MAX_TRIALS);
            for _ in 0..count.saturating_mul(DRAWS_PER_TRIAL) {
                if out.len() == count {
                    break;
                }
                let point: Vec<ParamValue> = params.iter().map(|p| p.space.sample(unit(&mut rng))).collect();
                if seen.insert(format!("{point:?}")) && ok(&point)? {
                    out.push(point);
                }
            }
        }
    }
    finish(out)
}

/// Whether `values` of `params` satisfy every constraint.
///
/// # Errors
/// A constraint that cannot be evaluated with these values.
pub fn satisfies(constraints: &[Constraint], params: &[SweptParam], values: &[ParamValue]) -> Result<bool, Diagnostic> {
    for c in constraints {
        match c.holds(params, values) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(d) => {
                return Err(d
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Diagnostic::error(codes::INVALID_VALUE, "a constraint cannot be evaluated")));
            }
        }
    }
    Ok(true)
}

fn finish(points: Vec<Vec<ParamValue>>) -> Result<Vec<Trial>, Diagnostic> {
    if points.is_empty() {
        return Err(Diagnostic::error(codes::INVALID_VALUE, "no point of the search space satisfies the constraints")
            .help("loosen the constraints or widen the ranges"));
    }
    Ok(points.into_iter().enumerate().map(|(index, values)| Trial { index, values }).collect())
}

/// A uniform draw in `[0, 1)` with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The bot of `trial`: `base` with the trial's values set on the swept params (those params
/// then have no space) and the touched strategies compiled again.
///
/// # Errors
/// The diagnostics of a strategy that does not compile with those values.
pub fn bundle_for(base: &Bundle, params: &[SweptParam], trial: &Trial) -> Result<Bundle, Vec<Diagnostic>> {
    let mut bundle = base.clone();
    let mut diags = Vec::new();
    let mut touched: Vec<usize> = params.iter().map(|p| p.strategy).collect();
    touched.dedup();
    for s in touched {
        let mut doc = base.strategies[s].doc.clone();
        for (p, v) in params.iter().zip(&trial.values).filter(|(p, _)| p.strategy == s) {
            if let Some(d) = doc.params.iter_mut().find(|d| d.name.value == p.param) {
                d.value.value = v.clone();
                d.space = None;
            }
        }
        match compile_strategy(doc, &mut diags) {
            Some(c) if !diags.iter().any(Diagnostic::is_error) => bundle.strategies[s] = c,
            _ => return Err(diags),
        }
    }
    Ok(bundle)
}

/// Compiles a sweep objective: a number expression over `metric.*` fields.
///
/// # Errors
/// Its diagnostics (syntax, unknown fields with a did-you-mean, a bool where a number is
/// expected).
pub fn compile_objective(src: &ExprSource) -> Result<TExpr, Vec<Diagnostic>> {
    let ast = parser::parse(src).map_err(|d| vec![d])?;
    let mut c = Checker::new(src, Context::Gate, &[]);
    let t = c.check_number(&ast, "objective");
    if c.diags.iter().any(Diagnostic::is_error) {
        return Err(c.diags);
    }
    t.ok_or(c.diags)
}

/// The `metric.*` fields of a finished trial: the gate metrics of its closed trades
/// ([`crate::engine::gate_metrics`]), with the engine's bar-level figures where both exist
/// (max drawdown, total return: [`crate::engine::metrics`]) and Sharpe, Sortino, CAGR and
/// exposure added. `params`: how many params the trial's strategies declare.
pub fn trial_fields(out: &BacktestOutput, params: usize) -> Vec<f64> {
    let m = &out.metrics;
    let trades: Vec<TradeRecord> =
        out.trades.iter().map(|t| TradeRecord { exit_ts: t.exit_time, pnl: t.pnl, ret: t.pnl_pct / 100.0 }).collect();
    let inputs = MetricInputs {
        trades,
        start_equity: m.starting_cash,
        run_max_drawdown: Some(m.max_drawdown),
        params,
        ..Default::default()
    };
    let mut f = compute(&inputs);
    let mut set = |id: FieldId, v: Option<f64>| f[id as usize] = v.unwrap_or(f64::NAN);
    set(FieldId::MetricMaxDrawdown, Some(m.max_drawdown));
    set(FieldId::MetricTotalReturn, Some(m.total_return));
    set(FieldId::MetricSharpe, m.sharpe);
    set(FieldId::MetricSortino, m.sortino);
    set(FieldId::MetricCagr, m.cagr);
    set(FieldId::MetricExposure, Some(m.exposure_time));
    f
}

/// The objective's value for `fields` (NaN when undefined: such a trial ranks last).
pub fn objective_value(objective: &TExpr, fields: &[f64]) -> f64 {
    eval_at(objective, None, 0, fields)
}

/// Trial order for a ranking: the better objective first (NaN last), ties by trial number.
pub fn rank_order(direction: Direction) -> impl Fn(&(usize, f64), &(usize, f64)) -> std::cmp::Ordering {
    move |a, b| {
        let key = |v: f64| match direction {
            Direction::Maximize => -v,
            Direction::Minimize => v,
        };
        match (a.1.is_nan(), b.1.is_nan()) {
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (true, true) => a.0.cmp(&b.0),
            (false, false) => key(a.1).total_cmp(&key(b.1)).then(a.0.cmp(&b.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::NumUnit;

    fn space(low: f64, high: f64, step: f64) -> SearchSpace {
        SearchSpace::Range { low, high, step: Some(step), steps: None, log: false, integer: true, unit: NumUnit::Plain }
    }

    fn params() -> Vec<SweptParam> {
        let p = |n: &str, s| SweptParam { strategy: 0, param: n.into(), name: n.into(), space: s };
        vec![p("fast", space(5.0, 15.0, 5.0)), p("slow", space(10.0, 20.0, 5.0))]
    }

    fn num(v: &ParamValue) -> f64 {
        match v {
            ParamValue::Number(x, _) => *x,
            _ => f64::NAN,
        }
    }

    #[test]
    fn a_grid_is_the_product_filtered_by_the_constraints() {
        let ps = params();
        let all = trials(&ps, Method::Grid, 0, 0, &[]).unwrap();
        assert_eq!(all.len(), 9);
        assert_eq!((num(&all[1].values[0]), num(&all[1].values[1])), (5.0, 15.0), "last param fastest");
        let src = ExprSource::standalone("constraint", "fast < slow");
        let defaults = vec![ParamValue::Number(5.0, NumUnit::Plain), ParamValue::Number(10.0, NumUnit::Plain)];
        let cs = compile_constraints(&[src], &ps, &defaults).unwrap();
        let kept = trials(&ps, Method::Grid, 0, 0, &cs).unwrap();
        assert!(kept.iter().all(|t| num(&t.values[0]) < num(&t.values[1])));
        assert_eq!(kept.len(), 6);
        assert_eq!(kept.iter().map(|t| t.index).collect::<Vec<_>>(), (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn random_points_are_distinct_and_repeat_with_the_seed() {
        let ps = params();
        let a = trials(&ps, Method::Random, 5, 7, &[]).unwrap();
        let b = trials(&ps, Method::Random, 5, 7, &[]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 5);
        let keys: HashSet<String> = a.iter().map(|t| format!("{:?}", t.values)).collect();
        assert_eq!(keys.len(), 5);
        // More trials than points: every point once.
        assert_eq!(trials(&ps, Method::Random, 50, 7, &[]).unwrap().len(), 9);
    }

    #[test]
    fn constraints_name_swept_params_only() {
        let ps = params();
        let src = ExprSource::standalone("constraint", "fats < slow");
        let defaults = vec![ParamValue::Number(5.0, NumUnit::Plain), ParamValue::Number(10.0, NumUnit::Plain)];
        let err = compile_constraints(&[src], &ps, &defaults).err().unwrap();
        assert!(err[0].message.contains("fats"), "{:?}", err[0].message);
        let src = ExprSource::standalone("constraint", "fast + slow");
        assert!(compile_constraints(&[src], &ps, &defaults).is_err(), "a number is not a rule");
    }

    #[test]
    fn rankings_put_undefined_objectives_last() {
        let mut v = [(0, 1.0), (1, f64::NAN), (2, 3.0), (3, 3.0)];
        v.sort_by(rank_order(Direction::Maximize));
        assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), [2, 3, 0, 1]);
        v.sort_by(rank_order(Direction::Minimize));
        assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 2, 3, 1]);
    }

    #[test]
    fn objectives_read_metrics() {
        let t = compile_objective(&ExprSource::standalone("objective", "metric.sharpe - 0.1 * metric.max_drawdown"))
            .unwrap();
        let mut f = vec![f64::NAN; FIELD_COUNT];
        f[FieldId::MetricSharpe as usize] = 1.5;
        f[FieldId::MetricMaxDrawdown as usize] = 0.2;
        assert!((objective_value(&t, &f) - 1.48).abs() < 1e-12);
        assert!(compile_objective(&ExprSource::standalone("objective", "metric.sharpe > 1")).is_err());
        assert!(compile_objective(&ExprSource::standalone("objective", "metric.sharp")).is_err());
    }
}
