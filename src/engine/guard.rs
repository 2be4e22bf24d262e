//! Guardrails: every policy rule of a bundle applied to one order.
//!
//! Rules run in order: policies in bundle order, rules in document order. Every rule is
//! evaluated (each decision is journaled), and the first rule that fires decides. A rule whose
//! condition is undefined (`NaN`, e.g. an indicator still warming up or a missing field) counts
//! as firing: guardrails fail closed. The backtester, the paper and live drivers and `dsl test`
//! all check orders through [`check_order`].

use crate::dsl::bundle::CompiledPolicy;
use crate::dsl::program::CompiledRule;
use crate::dsl::semantics::fires;

use super::rules::{FieldValues, eval_rule};

/// One rule's verdict on an order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleVerdict {
    /// Policy index in the bundle.
    pub policy: usize,
    /// Rule index in the policy.
    pub rule: usize,
    /// The condition's value (`1`/`0`, or `NaN` when undefined).
    pub value: f64,
    /// True when the rule fires (condition true or undefined).
    pub fired: bool,
}

/// The rule that stopped an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    /// Policy index in the bundle.
    pub policy: usize,
    /// Rule index in the policy.
    pub rule: usize,
    /// The condition was undefined (the rule fired by failing closed).
    pub undefined: bool,
}

impl Denial {
    /// `policy/rule_id`, the key of denial counts.
    pub fn key(&self, policies: &[CompiledPolicy]) -> String {
        let p = &policies[self.policy].doc;
        format!("{}/{}", p.name.value, p.rules[self.rule].id.value)
    }

    /// The reason shown with the rejected order: `denied by policy/rule: message`.
    pub fn reason(&self, policies: &[CompiledPolicy]) -> String {
        let message = &policies[self.policy].doc.rules[self.rule].message.value;
        let undefined = if self.undefined { " (condition undefined: fail closed)" } else { "" };
        format!("denied by {}: {message}{undefined}", self.key(policies))
    }
}

/// Checks an order against every policy rule.
///
/// `compiled[p][r]` is rule `r` of `policies[p]` compiled for the order's symbol; `slots` are
/// that symbol's graph values on the current bar; `fields` the order's context fields.
/// `each` sees every rule's verdict (for the journal). Returns the deciding rule, if any.
pub fn check_order(
    policies: &[CompiledPolicy],
    compiled: &[Vec<CompiledRule>],
    slots: &[f64],
    fields: &FieldValues,
    scratch: &mut Vec<f64>,
    mut each: impl FnMut(&RuleVerdict, &CompiledRule),
) -> Option<Denial> {
    let mut denial = None;
    for (pi, policy) in policies.iter().enumerate() {
        for (ri, rule) in compiled[pi].iter().enumerate().take(policy.doc.rules.len()) {
            let value = eval_rule(rule, slots, fields, scratch);
            let fired = value.is_nan() || fires(value);
            each(&RuleVerdict { policy: pi, rule: ri, value, fired }, rule);
            if fired && denial.is_none() {
                denial = Some(Denial { policy: pi, rule: ri, undefined: value.is_nan() });
            }
        }
    }
    denial
}
