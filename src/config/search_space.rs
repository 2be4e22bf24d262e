//! A strategy param's search space: the values `dsl sweep` and `dsl walkforward` may try,
//! declared beside the param's default in the strategy document.
//!
//! ```yaml
//! params:
//!   fast: {value: 10, range: [5, 30], step: 5}       # 5, 10, ..., 30
//!   slow: {value: 30, range: [20, 100], steps: 5}     # 5 evenly spaced values, ends included
//!   k: {value: 0.01, range: [0.001, 0.1], log: true, steps: 3}   # 0.001, 0.01, 0.1
//!   threshold: {value: 30, choices: [20, 25, 30]}
//!   kind: {value: ema, choices: [ema, sma]}
//! ```
//!
//! A range's bounds are inclusive. `step` makes the grid `low, low + step, ...` up to `high`;
//! `steps: N` makes N points spread evenly (geometrically with `log: true`); a range with
//! neither is continuous: random search samples it (log-uniformly with `log: true`) and a grid
//! cannot enumerate it. A range whose default and bounds are whole numbers and whose step is
//! whole (or absent) holds whole numbers only (periods, counts). The default `value` must lie
//! in the space: it is what `dsl backtest` runs.

use super::node::{Node, NodeValue};
use super::reader::Reader;
use super::strategy::ParamValue;
use super::units::NumUnit;
use crate::diagnostics::{Spanned, codes};

/// Most grid points one param's space may have (a sweep multiplies them across params).
pub const MAX_POINTS: usize = 100_000;

/// The values a param may take in a search.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchSpace {
    /// Numbers from `low` to `high` (inclusive).
    Range {
        /// Lowest value.
        low: f64,
        /// Highest value.
        high: f64,
        /// Grid spacing (`low`, `low + step`, ...), if given.
        step: Option<f64>,
        /// Number of grid points spread evenly over the range, if given.
        steps: Option<u32>,
        /// Spread geometrically (`steps`) or sample log-uniformly (random search).
        log: bool,
        /// Whole numbers only (a period, a count).
        integer: bool,
        /// How the default was written (`%`, `bps` or plain): trial values are shown alike.
        unit: NumUnit,
    },
    /// One of these values.
    Choices(Vec<ParamValue>),
}

impl SearchSpace {
    /// The grid points, in increasing order (choices in written order); `None` for a
    /// continuous range (no `step` or `steps`).
    pub fn grid(&self) -> Option<Vec<ParamValue>> {
        match self {
            SearchSpace::Choices(c) => Some(c.clone()),
            SearchSpace::Range { low, high, step, steps, log, integer, unit } => {
                let mut out: Vec<f64> = Vec::new();
                if let Some(s) = step {
                    // Whole multiples of the step, computed from the index (no accumulated
                    // rounding), up to `high` with a tolerance of a millionth of a step.
                    let n = ((high - low) / s + 1e-6).floor() as usize;
                    out.extend((0..=n).map(|i| low + i as f64 * s));
                } else if let Some(k) = steps {
                    let k = *k as usize;
                    if k == 1 {
                        out.push(*low);
                    } else if *log {
                        let (a, b) = (low.ln(), high.ln());
                        out.extend((0..k).map(|i| (a + (b - a) * i as f64 / (k - 1) as f64).exp()));
                        // The ends exactly as written.
                        out[0] = *low;
                        out[k - 1] = *high;
                    } else {
                        out.extend((0..k).map(|i| low + (high - low) * i as f64 / (k - 1) as f64));
                        out[k - 1] = *high;
                    }
                } else {
                    return None;
                }
                if *integer {
                    out = out.into_iter().map(f64::round).collect();
                    out.dedup();
                }
                Some(out.into_iter().map(|v| ParamValue::Number(v, *unit)).collect())
            }
        }
    }

    /// The value at `u` in `[0, 1)` of the way through the space (uniform, or log-uniform
    /// with `log: true`; snapped to the grid when there is one): how random search samples.
    pub fn sample(&self, u: f64) -> ParamValue {
        match self {
            SearchSpace::Choices(c) => c[((u * c.len() as f64) as usize).min(c.len() - 1)].clone(),
            SearchSpace::Range { low, high, log, integer, unit, .. } => {
                if let Some(g) = self.grid() {
                    return g[((u * g.len() as f64) as usize).min(g.len() - 1)].clone();
                }
                let v = if *log { (low.ln() + (high.ln() - low.ln()) * u).exp() } else { low + (high - low) * u };
                let v = if *integer { v.round().clamp(*low, *high) } else { v.clamp(*low, *high) };
                ParamValue::Number(v, *unit)
            }
        }
    }

    /// Whether `v` lies in the space.
    pub fn contains(&self, v: &ParamValue) -> bool {
        match (self, v) {
            (SearchSpace::Choices(c), v) => c.contains(v),
            (SearchSpace::Range { low, high, integer, .. }, ParamValue::Number(x, _)) => {
                *x >= *low && *x <= *high && (!integer || x.fract() == 0.0)
            }
            _ => false,
        }
    }
}

/// Reads a param written as a mapping, `{value: DEFAULT, range: [LOW, HIGH], ...}` or
/// `{value: DEFAULT, choices: [...]}`: its default and its search space. `scalar` reads one
/// plain param value (the default, each choice).
pub fn read_space(
    r: &mut Reader<'_>,
    name: &str,
    node: &Node,
    scalar: &mut dyn FnMut(&mut Reader<'_>, &Node) -> Option<ParamValue>,
) -> Option<(Spanned<ParamValue>, Spanned<SearchSpace>)> {
    let mut m = r.map(node, "param")?;
    let value_node = m.get("value");
    let range = m.get("range");
    let step = m.get("step");
    let steps = m.get("steps");
    let log = m.get("log");
    let choices = m.get("choices");
    m.finish(r);
    let value_node = match value_node {
        Some(v) => v,
        None => {
            return r.fail(
                codes::MISSING_KEY,
                node.span,
                format!("param `{name}` has a search space but no default `value`"),
                Some("add `value:` with what `dsl backtest` runs, e.g. `{value: 10, range: [5, 30], step: 5}`".into()),
            );
        }
    };
    if matches!(value_node.value, NodeValue::Map(_) | NodeValue::Seq(_)) {
        return r.fail(
            codes::WRONG_TYPE,
            value_node.span,
            format!("the default `value` of param `{name}` must be a number, a bool or a string"),
            None,
        );
    }
    let value = Spanned::new(scalar(r, value_node)?, value_node.span);
    let space = match (range, choices) {
        (Some(_), Some(c)) => {
            return r.fail(
                codes::INVALID_VALUE,
                c.span,
                format!("param `{name}` has both `range` and `choices`"),
                Some("keep one: a range of numbers, or a list of choices".into()),
            );
        }
        (None, Some(c)) => {
            for (what, n) in [("step", step), ("steps", steps), ("log", log)] {
                if let Some(n) = n {
                    return r.fail(
                        codes::INVALID_VALUE,
                        n.span,
                        format!("`{what}` applies to a `range`, not to `choices`"),
                        Some("remove it, or write a range instead of the choices".into()),
                    );
                }
            }
            read_choices(r, name, c, &value, scalar)?
        }
        (Some(rg), None) => read_range(r, name, rg, &value, (step, steps, log))?,
        (None, None) => {
            return r.fail(
                codes::MISSING_KEY,
                node.span,
                format!("param `{name}` is written as a mapping but declares no search space"),
                Some(format!(
                    "add `range: [LOW, HIGH]` (with `step` or `steps`) or `choices: [...]`, or write the value alone: `{name}: {}`",
                    value_node.raw(r.file).trim()
                )),
            );
        }
    };
    if !space.value.contains(&value.value) {
        return r.fail(
            codes::INVALID_VALUE,
            value.span,
            format!("the default of param `{name}` is outside its search space"),
            Some("the default must be one of the values the space holds (what `dsl backtest` runs)".into()),
        );
    }
    Some((value, space))
}

fn read_choices(
    r: &mut Reader<'_>,
    name: &str,
    node: &Node,
    value: &Spanned<ParamValue>,
    scalar: &mut dyn FnMut(&mut Reader<'_>, &Node) -> Option<ParamValue>,
) -> Option<Spanned<SearchSpace>> {
    let NodeValue::Seq(items) = &node.value else {
        return r.fail(
            codes::WRONG_TYPE,
            node.span,
            format!("`choices` of param `{name}` must be a list, e.g. `[20, 25, 30]`"),
            None,
        );
    };
    if items.is_empty() {
        return r.fail(codes::INVALID_VALUE, node.span, format!("`choices` of param `{name}` is empty"), None);
    }
    let mut out: Vec<ParamValue> = Vec::new();
    for item in items {
        let v = scalar(r, item)?;
        if std::mem::discriminant(&v) != std::mem::discriminant(&value.value) {
            return r.fail(
                codes::WRONG_TYPE,
                item.span,
                format!("a choice of param `{name}` is not of the default's type ({})", kind_of(&value.value)),
                None,
            );
        }
        if out.contains(&v) {
            return r.fail(codes::DUPLICATE, item.span, format!("param `{name}` lists this choice twice"), None);
        }
        out.push(v);
    }
    Some(Spanned::new(SearchSpace::Choices(out), node.span))
}

fn kind_of(v: &ParamValue) -> &'static str {
    match v {
        ParamValue::Number(..) => "a number",
        ParamValue::Bool(_) => "a bool",
        ParamValue::Str(_) => "a string",
    }
}

fn read_range(
    r: &mut Reader<'_>,
    name: &str,
    node: &Node,
    value: &Spanned<ParamValue>,
    (step, steps, log): (Option<&Node>, Option<&Node>, Option<&Node>),
) -> Option<Spanned<SearchSpace>> {
    let ParamValue::Number(default, unit) = value.value else {
        return r.fail(
            codes::WRONG_TYPE,
            value.span,
            format!("param `{name}` has a `range`, so its default must be a number"),
            Some("for strings or bools, list the values under `choices`".into()),
        );
    };
    let bounds = match &node.value {
        NodeValue::Seq(items) if items.len() == 2 => items,
        _ => {
            return r.fail(
                codes::WRONG_TYPE,
                node.span,
                format!("`range` of param `{name}` must be two numbers, `[LOW, HIGH]`"),
                None,
            );
        }
    };
    let low = r.number(&bounds[0], "range")?.value.0;
    let high = r.number(&bounds[1], "range")?.value.0;
    if low >= high {
        return r.fail(
            codes::INVALID_VALUE,
            node.span,
            format!("`range` of param `{name}` must go from low to high, found [{low}, {high}]"),
            None,
        );
    }
    let log = match log {
        Some(n) => r.boolean(n, "log")?.value,
        None => false,
    };
    if log && low <= 0.0 {
        return r.fail(
            codes::INVALID_VALUE,
            node.span,
            format!("a log-scale range must be above zero, but param `{name}` starts at {low}"),
            None,
        );
    }
    if let (Some(_), Some(n)) = (step, steps) {
        return r.fail(
            codes::INVALID_VALUE,
            n.span,
            format!("param `{name}` has both `step` and `steps`"),
            Some("`step` is the spacing of the grid, `steps` the number of its points: keep one".into()),
        );
    }
    let step_value = match step {
        Some(n) => {
            if log {
                return r.fail(
                    codes::INVALID_VALUE,
                    n.span,
                    "a log-scale range takes `steps` (a number of points), not `step`".into(),
                    None,
                );
            }
            let s = r.number(n, "step")?.value.0;
            if s <= 0.0 || s > high - low {
                return r.fail(
                    codes::INVALID_VALUE,
                    n.span,
                    format!("`step` of param `{name}` must be above 0 and at most the range's width ({})", high - low),
                    None,
                );
            }
            Some(s)
        }
        None => None,
    };
    let steps_value = match steps {
        Some(n) => Some(r.positive_int(n, "steps")?.value),
        None => None,
    };
    let whole = |x: f64| x.fract() == 0.0;
    let integer = unit == NumUnit::Plain && whole(default) && whole(low) && whole(high) && step_value.is_none_or(whole);
    let space = SearchSpace::Range { low, high, step: step_value, steps: steps_value, log, integer, unit };
    if let Some(points) = space.grid().map(|g| g.len())
        && points > MAX_POINTS
    {
        return r.fail(
            codes::INVALID_VALUE,
            node.span,
            format!("the grid of param `{name}` has {points} points, more than {MAX_POINTS}"),
            Some("take a larger `step` or fewer `steps`, or search it at random".into()),
        );
    }
    Some(Spanned::new(space, node.span))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(low: f64, high: f64, step: Option<f64>, steps: Option<u32>, log: bool, integer: bool) -> SearchSpace {
        SearchSpace::Range { low, high, step, steps, log, integer, unit: NumUnit::Plain }
    }

    fn nums(v: Vec<ParamValue>) -> Vec<f64> {
        v.into_iter()
            .map(|p| match p {
                ParamValue::Number(x, _) => x,
                _ => f64::NAN,
            })
            .collect()
    }

    #[test]
    fn grids_include_both_ends() {
        assert_eq!(nums(range(5.0, 30.0, Some(5.0), None, false, true).grid().unwrap()), [5., 10., 15., 20., 25., 30.]);
        // A step that does not divide the width stops below the top.
        assert_eq!(nums(range(5.0, 30.0, Some(10.0), None, false, true).grid().unwrap()), [5., 15., 25.]);
        // A decimal step: no accumulated rounding error at the top.
        let g = nums(range(0.1, 0.3, Some(0.1), None, false, false).grid().unwrap());
        assert_eq!(g.len(), 3);
        assert!((g[2] - 0.3).abs() < 1e-12);
        assert_eq!(nums(range(20.0, 100.0, None, Some(5), false, true).grid().unwrap()), [20., 40., 60., 80., 100.]);
        let g = nums(range(0.001, 0.1, None, Some(3), true, false).grid().unwrap());
        assert_eq!(g[0], 0.001);
        assert!((g[1] - 0.01).abs() < 1e-15);
        assert_eq!(g[2], 0.1);
        // Whole numbers only: rounded, duplicates dropped.
        assert_eq!(nums(range(1.0, 3.0, None, Some(5), false, true).grid().unwrap()), [1., 2., 3.]);
        assert!(range(1.0, 3.0, None, None, false, false).grid().is_none());
    }

    #[test]
    fn samples_stay_in_the_space() {
        let continuous = range(0.001, 0.1, None, None, true, false);
        let gridded = range(5.0, 30.0, Some(5.0), None, false, true);
        let choices = SearchSpace::Choices(vec![ParamValue::Str("a".into()), ParamValue::Str("b".into())]);
        for i in 0..1000 {
            let u = i as f64 / 1000.0;
            assert!(continuous.contains(&continuous.sample(u)));
            assert!(gridded.contains(&gridded.sample(u)));
            assert!(choices.contains(&choices.sample(u)));
        }
        // Log-uniform: the middle of the unit interval is the geometric middle.
        let ParamValue::Number(mid, _) = continuous.sample(0.5) else { panic!() };
        assert!((mid - 0.01).abs() < 1e-12);
        assert_eq!(choices.sample(0.999_999), ParamValue::Str("b".into()));
    }
}
