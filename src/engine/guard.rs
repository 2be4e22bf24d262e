//! Guardrails: every policy rule of a bundle applied to one order.
//!
//! Rules run in order: policies in bundle order, rules in document order. Every rule is
//! evaluated (each decision is journaled), and the first rule that fires with a blocking action
//! (`deny`, `reduce`, `halt`, `require_approval`) decides; a `warn` rule that fires is only
//! journaled. A rule whose
//! condition is undefined (`NaN`, e.g. an indicator still warming up or a missing field) counts
//! as firing, and so does a rhai guardrail that fails or hits a limit: guardrails fail closed.
//! The backtester, the paper and live drivers and `dsl test` all check orders through
//! [`check_order`].

use crate::config::policy::Action;
use crate::dsl::bundle::CompiledPolicy;
use crate::dsl::program::{CompiledRule, RuleEval};
use crate::dsl::script::{Sandbox, ScriptBudgets, ScriptError, Verdict};
use crate::dsl::semantics::fires;

use super::rules::{FieldValues, eval_rule};

/// One rule's verdict on an order.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleVerdict {
    /// Policy index in the bundle.
    pub policy: usize,
    /// Rule index in the policy.
    pub rule: usize,
    /// The condition's value (`1`/`0`, or `NaN` when undefined).
    pub value: f64,
    /// True when the rule fires (condition true or undefined, or a script denied or failed).
    pub fired: bool,
    /// A guardrail script's own denial message.
    pub message: Option<String>,
    /// Why a guardrail script failed (it then fires).
    pub error: Option<String>,
    /// The script is disabled for the run ([`ScriptBudgets`]): `Some(true)` on the call that
    /// disabled it, `Some(false)` on later calls (the rule fires without calling it).
    pub disabled: Option<bool>,
}

/// The rule that decided an order's fate (the first blocking rule that fired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Policy index in the bundle.
    pub policy: usize,
    /// Rule index in the policy.
    pub rule: usize,
    /// The rule's action (never [`Action::Warn`]).
    pub action: Action,
    /// The condition was undefined, or its script failed (the rule fired by failing closed).
    pub undefined: bool,
    /// The message to show instead of the rule's (a script's message, or its error).
    pub message: Option<String>,
    /// Set when the policy's allocation decided, not a rule (then `rule` means nothing): the
    /// breach code ([`super::allocation::Breach::code`]).
    pub allocation: Option<&'static str>,
}

impl Denial {
    /// `policy/rule_id`, the key of denial counts (`policy/allocation.code` when the
    /// policy's allocation decided).
    pub fn key(&self, policies: &[CompiledPolicy]) -> String {
        format!("{}/{}", policies[self.policy].doc.name.value, self.rule_id(policies))
    }

    /// The deciding rule's id, or `allocation.code`.
    pub fn rule_id(&self, policies: &[CompiledPolicy]) -> String {
        match self.allocation {
            Some(code) => format!("allocation.{code}"),
            None => policies[self.policy].doc.rules[self.rule].id.value.clone(),
        }
    }

    /// The reason shown with the rejected order: `denied by policy/rule: message` (`halted
    /// by`, `reducing by`, `approval required by` for the other actions).
    pub fn reason(&self, policies: &[CompiledPolicy]) -> String {
        let message = match &self.message {
            Some(m) => m.as_str(),
            None => &policies[self.policy].doc.rules[self.rule].message.value,
        };
        let undefined = if self.undefined { " (fail closed)" } else { "" };
        let undefined =
            if self.undefined && self.message.is_none() { " (condition undefined: fail closed)" } else { undefined };
        let verb = match self.action {
            Action::Deny | Action::Warn => "denied by",
            Action::Reduce => "reducing by",
            Action::Halt => "halted by",
            Action::RequireApproval => "approval required by",
        };
        format!("{verb} {}: {message}{undefined}", self.key(policies))
    }
}

/// Checks an order against every policy rule.
///
/// `compiled[p][r]` is rule `r` of `policies[p]` compiled for the order's symbol; `slots` are
/// that symbol's graph values on the current bar; `fields` the order's context fields; `names`
/// the order's string fields by path (`order.symbol`, `order.side`, ...) for guardrail
/// scripts, whose calls count against `budgets` (the run's). `each` sees every rule's
/// verdict (for the journal). `approved`: a person approved the order, so `require_approval`
/// rules no longer decide. Returns the deciding rule, if any.
#[allow(clippy::too_many_arguments)]
pub fn check_order(
    policies: &[CompiledPolicy],
    compiled: &[Vec<CompiledRule>],
    slots: &[f64],
    fields: &FieldValues,
    names: &dyn Fn(&str) -> Option<String>,
    scratch: &mut Vec<f64>,
    approved: bool,
    budgets: &ScriptBudgets,
    mut each: impl FnMut(&RuleVerdict, &CompiledRule),
) -> Option<Denial> {
    let mut denial = None;
    let sandbox = Sandbox::shared();
    for (pi, policy) in policies.iter().enumerate() {
        for (ri, rule) in compiled[pi].iter().enumerate().take(policy.doc.rules.len()) {
            let v = match &rule.eval {
                RuleEval::Script(script) => {
                    match budgets.run(script, &sandbox.limits(), || script.guard(sandbox, fields, names)) {
                        Ok(Verdict::Allow) => verdict(pi, ri, 0.0, None, None),
                        Ok(Verdict::Deny(message)) => verdict(pi, ri, 1.0, message, None),
                        Err(e) => {
                            let first = match &e {
                                ScriptError::Disabled { first, .. } => Some(*first),
                                _ => None,
                            };
                            let e = e.to_string();
                            RuleVerdict { disabled: first, ..verdict(pi, ri, f64::NAN, Some(e.clone()), Some(e)) }
                        }
                    }
                }
                _ => {
                    let value = eval_rule(rule, slots, fields, scratch);
                    verdict(pi, ri, value, None, None)
                }
            };
            each(&v, rule);
            let action = policy.doc.rules[ri].action.value;
            let decides = match action {
                Action::Warn => false,
                Action::RequireApproval => !approved,
                _ => true,
            };
            if v.fired && denial.is_none() && decides {
                denial = Some(Denial {
                    policy: pi,
                    rule: ri,
                    action,
                    undefined: v.value.is_nan(),
                    message: v.message,
                    allocation: None,
                });
            }
        }
    }
    denial
}

fn verdict(policy: usize, rule: usize, value: f64, message: Option<String>, error: Option<String>) -> RuleVerdict {
    RuleVerdict { policy, rule, value, fired: value.is_nan() || fires(value), message, error, disabled: None }
}
