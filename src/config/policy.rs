//! The policy document: an ordered list of risk rules applied to every order.
//!
//! ```yaml
//! kind: policy
//! name: always_on_caps
//! rules:
//!   - id: max_trade_notional
//!     when: order.side == "buy" and order.notional > 5% * account.equity
//!     action: deny
//!     message: a single trade may not exceed 5% of equity
//!   - id: earnings_blackout
//!     script: earnings_blackout.rhai   # a rhai guardrail, relative to this file
//!     action: deny
//!     message: no new positions in an earnings week
//! ```

use std::sync::Arc;

use super::expr_source::ExprSource;
use super::node::{Node, NodeValue};
use super::reader::Reader;
use super::script_ref::{ScriptRef, read_script_path};
use crate::diagnostics::{Diagnostic, SourceFile, Spanned, codes};

/// A named, ordered list of risk rules.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Unique policy name.
    pub name: Spanned<String>,
    /// Free text.
    pub description: Option<String>,
    /// Rules, evaluated in order for each order.
    pub rules: Vec<PolicyRule>,
}

/// One risk rule: when its condition holds for an order, `action` is taken.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    /// Id, unique within the policy; journaled with every decision.
    pub id: Spanned<String>,
    /// When the rule fires.
    pub condition: Condition,
    /// What to do when the condition holds.
    pub action: Spanned<Action>,
    /// Human-readable reason, journaled and shown with the decision.
    pub message: Spanned<String>,
}

/// What decides whether a policy rule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `when:` a bool rule expression over the order and the account; true fires the rule.
    When(ExprSource),
    /// `script:` a rhai guardrail (see [`crate::dsl::script`]) that allows or denies.
    Script(ScriptRef),
}

impl Condition {
    /// The rule expression, for `when:` rules.
    pub fn expr(&self) -> Option<&ExprSource> {
        match self {
            Condition::When(e) => Some(e),
            Condition::Script(_) => None,
        }
    }
}

/// What a policy rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Reject the order.
    Deny,
    /// Let through only orders that lower exposure (not supported yet).
    Reduce,
    /// Stop new orders until resumed (not supported yet).
    Halt,
    /// Park the order until a person approves it (not supported yet).
    RequireApproval,
}

impl Action {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Reduce => "reduce",
            Action::Halt => "halt",
            Action::RequireApproval => "require_approval",
        }
    }
}

/// Reads a policy document from its root mapping.
pub fn read_policy(r: &mut Reader<'_>, root: &Node) -> Option<PolicyDoc> {
    let mut m = r.map(root, "policy")?;
    m.get("kind");
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    let description = m.get("description").and_then(|n| r.string(n, "description")).map(|s| s.value);
    let rules = m.required(r, "rules").map(|n| read_rules(r, n));
    let span = m.span();
    m.finish(r);
    // On errors, go on with what is valid so that every rule is still checked; callers must not
    // use a document read with errors.
    Some(PolicyDoc {
        source: r.file.clone(),
        name: name.unwrap_or_else(|| Spanned::new(String::new(), span)),
        description,
        rules: rules.unwrap_or_default(),
    })
}

/// The rules that could be read (every problem is in `r.diags`).
fn read_rules(r: &mut Reader<'_>, node: &Node) -> Vec<PolicyRule> {
    let NodeValue::Seq(items) = &node.value else {
        r.push(
            Diagnostic::error(
                codes::WRONG_TYPE,
                format!("`rules` must be a list of rules, found {}", node.kind_name()),
            )
            .at(r.file, node.span),
        );
        return Vec::new();
    };
    items.iter().filter_map(|item| read_rule(r, item)).collect()
}

fn read_rule(r: &mut Reader<'_>, node: &Node) -> Option<PolicyRule> {
    let mut m = r.map(node, "policy rule")?;
    let id = m.required(r, "id").and_then(|n| r.name(n, "id"));
    let script_node = m.get("script");
    // Without a script, `when` is required (a misspelling of it is reported as such).
    let when_node = if script_node.is_some() { m.get("when") } else { m.required(r, "when") };
    let when = when_node.and_then(|n| r.expr(n, "when"));
    let script = script_node.and_then(|n| read_script_path(r, n, "script"));
    let action = m.required(r, "action").and_then(|n| read_action(r, n));
    let message = m.required(r, "message").and_then(|n| r.name(n, "message"));
    let span = m.span();
    m.finish(r);
    let condition = match (when_node.is_some(), script_node.is_some()) {
        (true, false) => Condition::When(when?),
        (false, true) => Condition::Script(script?),
        (true, true) => {
            return r.fail(
                codes::INVALID_VALUE,
                script_node.map_or(span, |n| n.span),
                "a rule has either a `when` condition or a `script`, not both".into(),
                Some("split it into two rules".into()),
            );
        }
        // Reported by `finish` as a missing `when`.
        (false, false) => return None,
    };
    let placeholder = || Spanned::new(String::new(), span);
    Some(PolicyRule {
        id: id.unwrap_or_else(placeholder),
        condition,
        action: action.unwrap_or(Spanned::new(Action::Deny, span)),
        message: message.unwrap_or_else(placeholder),
    })
}

fn read_action(r: &mut Reader<'_>, node: &Node) -> Option<Spanned<Action>> {
    let c = r.choice(node, "action", &["deny", "reduce", "halt", "require_approval"])?;
    let action = match c.value {
        "deny" => Action::Deny,
        "reduce" => Action::Reduce,
        "halt" => Action::Halt,
        _ => Action::RequireApproval,
    };
    if action != Action::Deny {
        r.push(
            Diagnostic::error(codes::UNSUPPORTED, format!("action `{}` is not supported yet", c.value))
                .at(r.file, c.span)
                .help("use `deny` for now"),
        );
        return None;
    }
    Some(Spanned::new(action, c.span))
}
