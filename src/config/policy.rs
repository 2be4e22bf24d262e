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
//!   - id: drawdown_breaker
//!     when: account.drawdown > 10%
//!     action: halt          # deny | warn | reduce | halt | require_approval
//!     flatten: false        # halt only: also close every position
//!     reset: manual         # reduce/halt only: `manual` (dsl resume) or `next_day` (UTC)
//!     message: drawdown from the peak above 10%
//! ```
//!
//! Actions, when the condition holds (or is undefined: guardrails fail closed):
//! - `deny` rejects the order;
//! - `warn` journals the decision and lets the order through;
//! - `reduce` puts trading in the REDUCING state: only orders that lower exposure pass;
//! - `halt` puts trading in the HALTED state: no new orders pass (working protective stops stay,
//!   and with `flatten: true` every position is closed);
//! - `require_approval` parks the order for a person to approve within `expires_after`
//!   (default 15 minutes); without an approval it is denied when that expires.
//!
//! REDUCING and HALTED are sticky: they last until `dsl resume` or the rule's `reset`.
//!
//! A policy may also declare `allocation:` buckets (see [`super::allocation`]); entries that
//! would break a bucket's or market's limits are then denied after the rules have run.

use std::sync::Arc;

use super::allocation::{AllocationDoc, read_allocation};
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
    /// Allocation buckets and market caps checked on every entry, after the rules.
    pub allocation: Option<AllocationDoc>,
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
    /// How the state a `reduce` or `halt` rule sets re-arms (`Manual` for other actions).
    pub reset: Reset,
    /// `halt` only: close every position when the rule trips.
    pub flatten: bool,
    /// `require_approval` only: how long an approval may take, in seconds.
    pub expires_after: i64,
}

/// How a sticky trading state (REDUCING, HALTED) set by a rule re-arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// Only by a person: `dsl resume --reason TEXT`.
    #[default]
    Manual,
    /// Automatically at the first bar of a later UTC calendar day (a daily loss limit). For
    /// daily bars of an exchange this is the next session.
    NextDay,
}

impl Reset {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reset::Manual => "manual",
            Reset::NextDay => "next_day",
        }
    }

    /// Parses [`Reset::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Reset> {
        match s {
            "manual" => Some(Reset::Manual),
            "next_day" => Some(Reset::NextDay),
            _ => None,
        }
    }
}

/// Default approval window of `require_approval` rules: 15 minutes.
pub const DEFAULT_APPROVAL_WINDOW: i64 = 15 * 60;

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
    /// Journal the decision and let the order through.
    Warn,
    /// Enter the REDUCING state: only orders that lower exposure pass, this one included.
    Reduce,
    /// Enter the HALTED state: no new orders pass until resumed.
    Halt,
    /// Park the order until a person approves it; denied when the approval window expires.
    RequireApproval,
}

impl Action {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
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
    let allocation_node = m.get("allocation");
    // A policy that only declares an allocation needs no rules.
    let rules_node = if allocation_node.is_some() { m.get("rules") } else { m.required(r, "rules") };
    let rules = rules_node.map(|n| read_rules(r, n));
    let allocation = allocation_node.and_then(|n| read_allocation(r, n));
    let span = m.span();
    m.finish(r);
    // On errors, go on with what is valid so that every rule is still checked; callers must not
    // use a document read with errors.
    Some(PolicyDoc {
        source: r.file.clone(),
        name: name.unwrap_or_else(|| Spanned::new(String::new(), span)),
        description,
        rules: rules.unwrap_or_default(),
        allocation,
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
    let reset_node = m.get("reset");
    let flatten_node = m.get("flatten");
    let expires_node = m.get("expires_after");
    let reset = reset_node.and_then(|n| r.choice(n, "reset", &["manual", "next_day"]));
    let flatten = flatten_node.and_then(|n| r.boolean(n, "flatten"));
    let expires = expires_node.and_then(|n| read_duration(r, n, "expires_after"));
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
    let act = action.as_ref().map(|a| a.value);
    // Options that only make sense with one action are errors elsewhere: a trader who writes
    // `flatten: true` on a `deny` rule believes positions will be closed.
    let misplaced = |key: &str, node: Option<&Node>, fits: &[Action], r: &mut Reader<'_>| {
        if let (Some(n), Some(a)) = (node, act)
            && !fits.contains(&a)
        {
            let allowed: Vec<&str> = fits.iter().map(|f| f.as_str()).collect();
            r.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{key}` has no effect on a `{}` rule", a.as_str()))
                    .at(r.file, n.span)
                    .help(format!("`{key}` applies to `{}` rules", allowed.join("` and `"))),
            );
        }
    };
    misplaced("reset", reset_node, &[Action::Reduce, Action::Halt], r);
    misplaced("flatten", flatten_node, &[Action::Halt], r);
    misplaced("expires_after", expires_node, &[Action::RequireApproval], r);
    Some(PolicyRule {
        id: id.unwrap_or_else(placeholder),
        condition,
        action: action.unwrap_or(Spanned::new(Action::Deny, span)),
        message: message.unwrap_or_else(placeholder),
        reset: match reset.map(|c| c.value) {
            Some("next_day") => Reset::NextDay,
            _ => Reset::Manual,
        },
        flatten: flatten.is_some_and(|f| f.value),
        expires_after: expires.unwrap_or(DEFAULT_APPROVAL_WINDOW),
    })
}

/// A duration such as `90s`, `15m`, `2h` or `1d`, in seconds.
fn read_duration(r: &mut Reader<'_>, node: &Node, what: &str) -> Option<i64> {
    let s = r.string(node, what)?;
    let t = s.value.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match digits.parse::<i64>() {
        Ok(n) if n > 0 && scale > 0 => Some(n * scale),
        _ => r.fail(
            codes::INVALID_VALUE,
            s.span,
            format!("`{}` is not a duration", s.value),
            Some("write a whole number with a unit: `90s`, `15m`, `2h` or `1d`".into()),
        ),
    }
}

fn read_action(r: &mut Reader<'_>, node: &Node) -> Option<Spanned<Action>> {
    let c = r.choice(node, "action", &["deny", "warn", "reduce", "halt", "require_approval"])?;
    let action = match c.value {
        "deny" => Action::Deny,
        "warn" => Action::Warn,
        "reduce" => Action::Reduce,
        "halt" => Action::Halt,
        _ => Action::RequireApproval,
    };
    Some(Spanned::new(action, c.span))
}
