//! Warnings about rules that type-check but cannot do what their author meant.
//!
//! - a rule that is constant after constant folding (`W0002`);
//! - a rule that can never fire (`W0003`): constant false, or a conjunction that contradicts
//!   itself (`order.notional > 10 and order.notional < 5`, `order.side == "buy" and
//!   order.side == "sell"`), found by intersecting the intervals each conjunct allows for the
//!   same sub-expression;
//! - a strategy exit that can never be reached (`W0004`), worst when nothing else (stop-loss,
//!   take-profit, max holding) can close a position.
//!
//! The analysis is conservative: "can never fire" is only said when it is certain.

use std::collections::BTreeMap;

use super::bundle::{CompiledPolicy, CompiledStrategy};
use super::check::{TExpr, TKind};
use super::semantics::{BinOp, FALSE, TRUE, UnOp};
use crate::config::expr_source::ExprSource;
use crate::diagnostics::{Diagnostic, codes};

/// What is known about a rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Always true.
    AlwaysTrue,
    /// Never true.
    Never,
    /// Depends on the inputs.
    Depends,
}

/// Classifies a typed bool rule.
pub fn verdict(e: &TExpr) -> Verdict {
    match e.as_const() {
        Some(v) if v == TRUE => Verdict::AlwaysTrue,
        Some(_) => Verdict::Never,
        None if !can_be_true(e) => Verdict::Never,
        None => Verdict::Depends,
    }
}

/// Whether `e` can be true for some inputs; `false` only when that is certain.
pub fn can_be_true(e: &TExpr) -> bool {
    match &e.kind {
        TKind::Const(v) => *v == TRUE,
        TKind::Binary(BinOp::Or, a, b) => can_be_true(a) || can_be_true(b),
        TKind::Binary(BinOp::And, ..) => {
            let mut conjuncts = Vec::new();
            flatten_and(e, &mut conjuncts);
            conjuncts.iter().all(|c| can_be_true(c)) && consistent(&conjuncts)
        }
        TKind::Unary(UnOp::Not, a) => a.as_const() != Some(TRUE),
        _ => true,
    }
}

fn flatten_and<'a>(e: &'a TExpr, out: &mut Vec<&'a TExpr>) {
    match &e.kind {
        TKind::Binary(BinOp::And, a, b) => {
            flatten_and(a, out);
            flatten_and(b, out);
        }
        _ => out.push(e),
    }
}

/// A canonical text for a sub-expression, ignoring spans (two occurrences of
/// `order.notional` get the same key).
fn key(e: &TExpr) -> String {
    match &e.kind {
        TKind::Const(v) => format!("{v:?}"),
        TKind::Bar(f) => format!("{f:?}"),
        TKind::Field(f) => format!("{f:?}"),
        TKind::Unary(op, a) => format!("{op:?}({})", key(a)),
        TKind::Binary(op, a, b) => format!("{op:?}({},{})", key(a), key(b)),
        TKind::Lag(a, k) => format!("Lag({},{k})", key(a)),
        TKind::Indicator { func, args, consts, output } => {
            let args: Vec<String> = args.iter().map(key).collect();
            format!("{func:?}[{output}]({};{consts:?})", args.join(","))
        }
        TKind::Script { script, window } => format!("Script({:x},{window})", script.hash),
        TKind::Resample(r, a) => format!("At({},{})({})", r.timeframe, r.aggregation.as_str(), key(a)),
    }
}

/// The values a sub-expression may take under a conjunction of comparisons with constants.
#[derive(Debug, Default)]
struct Allowed {
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
    equal: Option<f64>,
    not_equal: Vec<f64>,
    contradiction: bool,
}

impl Allowed {
    fn restrict(&mut self, op: BinOp, c: f64) {
        match op {
            BinOp::Gt | BinOp::Ge => {
                let strict = op == BinOp::Gt;
                if self.lo.is_none_or(|(l, ls)| c > l || (c == l && strict && !ls)) {
                    self.lo = Some((c, strict));
                }
            }
            BinOp::Lt | BinOp::Le => {
                let strict = op == BinOp::Lt;
                if self.hi.is_none_or(|(h, hs)| c < h || (c == h && strict && !hs)) {
                    self.hi = Some((c, strict));
                }
            }
            BinOp::Eq => match self.equal {
                Some(e) if e != c => self.contradiction = true,
                _ => self.equal = Some(c),
            },
            BinOp::Ne => self.not_equal.push(c),
            _ => {}
        }
    }

    fn empty(&self) -> bool {
        if self.contradiction {
            return true;
        }
        let inside = |v: f64| {
            self.lo.is_none_or(|(l, s)| if s { v > l } else { v >= l })
                && self.hi.is_none_or(|(h, s)| if s { v < h } else { v <= h })
        };
        if let Some(e) = self.equal {
            return !inside(e) || self.not_equal.contains(&e);
        }
        match (self.lo, self.hi) {
            (Some((l, ls)), Some((h, hs))) => l > h || (l == h && (ls || hs || self.not_equal.contains(&l))),
            _ => false,
        }
    }
}

/// Mirrors a comparison so the constant is on the right: `5 < x` is `x > 5`.
fn mirror(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::Le => BinOp::Ge,
        BinOp::Gt => BinOp::Lt,
        BinOp::Ge => BinOp::Le,
        other => other,
    }
}

/// False when the comparisons with constants among `conjuncts` contradict each other.
fn consistent(conjuncts: &[&TExpr]) -> bool {
    let mut by_term: BTreeMap<String, Allowed> = BTreeMap::new();
    for c in conjuncts {
        let TKind::Binary(op, a, b) = &c.kind else { continue };
        if !matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne) {
            continue;
        }
        let (term, value, op) = match (a.as_const(), b.as_const()) {
            (None, Some(v)) => (a, v, *op),
            (Some(v), None) => (b, v, mirror(*op)),
            _ => continue,
        };
        if value.is_nan() {
            continue;
        }
        by_term.entry(key(term)).or_default().restrict(op, value);
    }
    !by_term.values().any(Allowed::empty)
}

fn warn(code: &'static str, src: &ExprSource, msg: String, help: &str) -> Diagnostic {
    Diagnostic::warning(code, msg).at(&src.file, src.span).label("this rule").help(help)
}

/// Warnings about a strategy's entry and exit.
pub fn lint_strategy(s: &CompiledStrategy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let doc = &s.doc;
    match verdict(&s.entry) {
        Verdict::AlwaysTrue => out.push(warn(
            codes::CONSTANT_RULE,
            &doc.entry,
            "the entry rule is always true after constant folding".into(),
            "the strategy enters on every bar it is flat; check the params and literals it uses",
        )),
        Verdict::Never => out.push(warn(
            if s.entry.as_const().is_some() { codes::CONSTANT_RULE } else { codes::NEVER_FIRES },
            &doc.entry,
            "the entry rule can never fire".into(),
            "the strategy never trades; check the params and literals it uses",
        )),
        Verdict::Depends => {}
    }
    let other_exits = doc.stop_loss.is_some() || doc.take_profit.is_some() || doc.max_holding.is_some();
    if let (Some(exit), Some(src)) = (&s.exit, &doc.exit) {
        match verdict(exit) {
            Verdict::AlwaysTrue => out.push(warn(
                codes::CONSTANT_RULE,
                src,
                "the exit rule is always true after constant folding".into(),
                "every position is closed on the bar after it opens",
            )),
            Verdict::Never if other_exits => out.push(warn(
                codes::UNREACHABLE_EXIT,
                src,
                "the exit rule can never fire".into(),
                "positions close only by stop_loss, take_profit or max_holding",
            )),
            Verdict::Never => out.push(warn(
                codes::UNREACHABLE_EXIT,
                src,
                "positions can never be closed: the exit rule never fires".into(),
                "fix the rule, or add a stop_loss, take_profit or max_holding",
            )),
            Verdict::Depends => {}
        }
    }
    out
}

/// Warnings about a policy's rules.
pub fn lint_policy(p: &CompiledPolicy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (c, rule) in p.rules.iter().zip(&p.doc.rules) {
        // Scripts are opaque to this analysis.
        let (Some(t), Some(when)) = (c.expr(), rule.condition.expr()) else { continue };
        match verdict(t) {
            Verdict::AlwaysTrue => out.push(warn(
                codes::CONSTANT_RULE,
                when,
                format!("rule `{}` always fires", rule.id.value),
                "every order is denied; check the literals it compares",
            )),
            Verdict::Never if t.as_const() == Some(FALSE) => out.push(warn(
                codes::CONSTANT_RULE,
                when,
                format!("rule `{}` is always false", rule.id.value),
                "its condition only compares constants, so it guards nothing",
            )),
            Verdict::Never => out.push(warn(
                codes::NEVER_FIRES,
                when,
                format!("rule `{}` can never fire", rule.id.value),
                "its conditions contradict each other, so it guards nothing",
            )),
            Verdict::Depends => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::catalog::Context;
    use crate::dsl::check::Checker;
    use crate::dsl::parser::parse_text;

    fn v(text: &str) -> Verdict {
        let src = ExprSource::standalone("r", text);
        let mut c = Checker::new(&src, Context::Policy, &[]);
        verdict(&c.check(&parse_text(text).unwrap()).unwrap())
    }

    #[test]
    fn finds_rules_that_never_fire() {
        assert_eq!(v("order.notional > 10 and order.notional < 5"), Verdict::Never);
        assert_eq!(v("order.notional >= 10 and order.notional <= 10"), Verdict::Depends);
        assert_eq!(v("order.notional > 10 and order.notional <= 10"), Verdict::Never);
        assert_eq!(v("order.side == \"buy\" and order.side == \"sell\""), Verdict::Never);
        assert_eq!(v("order.side == \"buy\" and order.side != \"buy\""), Verdict::Never);
        assert_eq!(v("5 > order.notional and order.notional > 7"), Verdict::Never);
        assert_eq!(v("(order.notional > 10 and order.notional < 5) or account.cash < 0"), Verdict::Depends);
        assert_eq!(v("order.notional > 10 and account.cash < 5"), Verdict::Depends);
        assert_eq!(v("1 > 2"), Verdict::Never);
        assert_eq!(v("1 < 2 or order.notional > 0"), Verdict::AlwaysTrue);
        assert_eq!(v("not (1 < 2)"), Verdict::Never);
    }
}
