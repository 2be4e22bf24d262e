//! Evaluating compiled rules against a graph's values and a context's field values.

use crate::dsl::catalog::{FIELD_COUNT, FieldId};
use crate::dsl::program::{CompiledRule, Input, RuleEval, ScalarOp};
use crate::dsl::semantics::{binary, unary};
use crate::dsl::types::ValueKind;

use super::events::Seen;

/// Values of the context fields, indexed by [`crate::dsl::catalog::FieldId`]. Fields that do not
/// apply (e.g. `position.*` while flat) are `NaN` (undefined).
pub type FieldValues = [f64; FIELD_COUNT];

/// All fields undefined.
pub const NO_FIELDS: FieldValues = [f64::NAN; FIELD_COUNT];

/// Reads one input.
#[inline]
pub fn read(input: Input, slots: &[f64], fields: &FieldValues) -> f64 {
    match input {
        Input::Slot(id) => slots[id as usize],
        Input::Field(f) => fields[f as usize],
    }
}

/// A sizing scale's value (see [`crate::config::strategy::SizingScale`]): 1 without cases;
/// the scale of the first case whose `when` holds; `NaN` when a `when` tried is undefined
/// (fail closed: the entry sizes nothing).
pub fn eval_scale(
    cases: &[(Option<CompiledRule>, CompiledRule)],
    slots: &[f64],
    fields: &FieldValues,
    scratch: &mut Vec<f64>,
) -> f64 {
    if cases.is_empty() {
        return 1.0;
    }
    for (when, scale) in cases {
        let holds = match when {
            None => Some(true),
            Some(w) => crate::dsl::semantics::truth(eval_rule(w, slots, fields, scratch)),
        };
        match holds {
            Some(true) => return eval_rule(scale, slots, fields, scratch),
            Some(false) => {}
            None => return f64::NAN,
        }
    }
    f64::NAN
}

/// Evaluates a rule; `scratch` is reused between calls to avoid allocation.
#[inline]
pub fn eval_rule(rule: &CompiledRule, slots: &[f64], fields: &FieldValues, scratch: &mut Vec<f64>) -> f64 {
    match &rule.eval {
        RuleEval::Slot(id) => slots[*id as usize],
        RuleEval::Program(p) => {
            let n = p.registers();
            if scratch.len() < n {
                scratch.resize(n, f64::NAN);
            }
            let regs = &mut scratch[..n];
            let (c, first) = (p.consts.len(), p.first_op());
            regs[..c].copy_from_slice(&p.consts);
            for (r, i) in regs[c..first].iter_mut().zip(&p.loads) {
                *r = read(*i, slots, fields);
            }
            let mut pc = 0;
            while let Some(op) = p.ops.get(pc) {
                match *op {
                    ScalarOp::Unary(o, a) => regs[first + pc] = unary(o, regs[a as usize]),
                    ScalarOp::Binary(o, a, b) => regs[first + pc] = binary(o, regs[a as usize], regs[b as usize]),
                    ScalarOp::JumpIf { cond, when, to } => {
                        // Skipped registers keep stale values; the deciding `and`/`or` ignores
                        // its right side exactly when the jump is taken.
                        if regs[cond as usize] == when {
                            pc = to as usize;
                            continue;
                        }
                    }
                }
                pc += 1;
            }
            regs[p.result as usize]
        }
        // Scripts need the order's context: see `super::guard`. Undefined here (fails closed).
        RuleEval::Script(_) => f64::NAN,
    }
}

/// The labelled input values a rule saw, for the journal: string fields as their text
/// (`names` gives it by field path), the rest as numbers.
pub fn seen_values(
    rule: &CompiledRule,
    slots: &[f64],
    fields: &FieldValues,
    names: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, Seen)> {
    rule.inputs
        .iter()
        .map(|(label, i)| {
            let v = match *i {
                Input::Field(f) if crate::dsl::catalog::field_spec(f).kind == ValueKind::Str => {
                    Seen::Text(names(crate::dsl::catalog::field_spec(f).path).unwrap_or_default())
                }
                _ => Seen::Number(read(*i, slots, fields)),
            };
            (label.clone(), v)
        })
        .collect()
}

/// Sets the `position.*` fields from a position of `qty` units bought at `entry` (average fill
/// price), marked at `last`, held `bars` bars: notional `qty * last` (currency), unrealized pnl
/// `(last - entry) * qty` (currency), unrealized return `last / entry - 1` (fraction).
pub fn position_fields(f: &mut FieldValues, qty: f64, entry: f64, last: f64, bars: f64) {
    f[FieldId::PositionQuantity as usize] = qty;
    f[FieldId::PositionEntryPrice as usize] = entry;
    f[FieldId::PositionNotional as usize] = qty * last;
    f[FieldId::PositionUnrealizedPnl as usize] = if qty > 0.0 { (last - entry) * qty } else { 0.0 };
    f[FieldId::PositionUnrealizedReturn as usize] = if entry > 0.0 { last / entry - 1.0 } else { f64::NAN };
    f[FieldId::PositionBarsHeld as usize] = bars;
}
