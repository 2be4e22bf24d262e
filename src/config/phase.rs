//! The phase document: one step of the graduation plan from paper trading to live.
//!
//! ```yaml
//! kind: phase
//! name: paper_mastery
//! description: Demonstrate reliable performance in simulation.
//! mode: paper                     # backtest | paper | live: what a bot in this phase may do
//! next: backtest_and_stress       # the phase a promotion leads to (none for the last)
//! approval: Proceed to Phase 2    # the phrase a person writes to approve that promotion
//! limits:                         # applied by `dsl run` while the phase is active
//!   min_order_notional: 100       # entries below are denied (currency)
//!   max_order_notional: 500       # entries above are denied (currency)
//!   approval_above: 500           # entries above wait for a person's approval (currency)
//!   max_exposure: 20%             # entries that would take exposure / equity above are denied
//!   max_orders_per_day: 10        # entries beyond the day's count are denied
//!   scale_up:                     # a larger max_order_notional once earned:
//!     after_winning_trades: 10    #   this many winning trades in this phase's mode
//!     max_loss: 5%                #   and no trade lost more than this
//!     max_order_notional: 1000
//! gates:                          # exit criteria: every one must pass to promote to `next`
//!   - id: three_positive_months
//!     from: paper                 # the runs read: backtest | stress | paper | live (default: mode)
//!     window: 3 months            # or `50 trades`; months are calendar months of event time
//!     strategy: rsi_reversion     # only this strategy's trades (optional)
//!     when: metric.months_positive >= 3 and metric.max_drawdown < 10%
//!     message: three positive months under 10% drawdown
//! demotion:                       # checked automatically; a breach pauses or demotes the bot
//!   - id: drawdown
//!     from: paper
//!     when: metric.max_drawdown > 10%
//!     action: pause               # pause (HALTED until `dsl resume`) | demote (back a phase)
//!     message: drawdown above 10%, pause and review
//! ```
//!
//! Gate and demotion rules are rule expressions over `metric.*` fields (see the catalog),
//! computed from the bot's journal; they are type-checked with the bundle. A demotion rule
//! fires when its `when` is true; a gate passes when its `when` is true.

use std::sync::Arc;

use super::expr_source::ExprSource;
use super::node::{Node, NodeValue};
use super::reader::Reader;
use crate::diagnostics::{Diagnostic, SourceFile, Spanned, codes};

/// What a bot may do in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseMode {
    /// Historical replays only.
    Backtest,
    /// Paper trading (simulated or broker paper account).
    Paper,
    /// Live trading with real money.
    Live,
}

impl PhaseMode {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseMode::Backtest => "backtest",
            PhaseMode::Paper => "paper",
            PhaseMode::Live => "live",
        }
    }
}

/// One graduation phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Unique phase name.
    pub name: Spanned<String>,
    /// Free text.
    pub description: Option<String>,
    /// What the bot may do in this phase.
    pub mode: Spanned<PhaseMode>,
    /// The phase a promotion leads to.
    pub next: Option<Spanned<String>>,
    /// The phrase that approves the promotion to `next`.
    pub approval: Option<Spanned<String>>,
    /// What `dsl run` allows while the phase is active.
    pub limits: PhaseLimits,
    /// Exit criteria (all must pass to promote).
    pub gates: Vec<GateRule>,
    /// Rules checked automatically that pause or demote the bot.
    pub demotion: Vec<GateRule>,
}

/// Which runs of the journal a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// `dsl backtest` runs.
    Backtest,
    /// `dsl stress` runs.
    Stress,
    /// `dsl run` on a paper account or the simulated broker.
    Paper,
    /// `dsl run` on a live account.
    Live,
    /// `dsl walkforward` runs: their out-of-sample trades.
    Walkforward,
}

impl RunMode {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Backtest => "backtest",
            RunMode::Stress => "stress",
            RunMode::Paper => "paper",
            RunMode::Live => "live",
            RunMode::Walkforward => "walkforward",
        }
    }

    /// The runs a phase of `mode` is about.
    pub fn of(mode: PhaseMode) -> RunMode {
        match mode {
            PhaseMode::Backtest => RunMode::Backtest,
            PhaseMode::Paper => RunMode::Paper,
            PhaseMode::Live => RunMode::Live,
        }
    }
}

/// Which runs a rule counts by when they started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Since {
    /// Only runs started after the bot entered the phase (by a promotion or a demotion): the
    /// evidence for leaving a phase is gathered in it, so one old run cannot promote a bot
    /// through several phases in a row. A bot that never changed phase counts every run.
    #[default]
    Phase,
    /// Every run, whenever it started.
    Any,
}

/// The trades a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The last N closed trades.
    Trades(u32),
    /// The last N calendar months of event time, ending at the latest event.
    Months(u32),
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Trades(n) => write!(f, "last {n} trades"),
            Window::Months(n) => write!(f, "last {n} months"),
        }
    }
}

/// What a demotion rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DemotionAction {
    /// HALTED until a person runs `dsl resume` (review).
    Pause,
    /// Back to the previous phase (and HALTED).
    Demote,
}

impl DemotionAction {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DemotionAction::Pause => "pause",
            DemotionAction::Demote => "demote",
        }
    }
}

/// A gate or demotion rule.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRule {
    /// Unique id within the phase.
    pub id: Spanned<String>,
    /// Which runs it reads.
    pub from: RunMode,
    /// Which trades (all when `None`).
    pub window: Option<Window>,
    /// Only this strategy's trades.
    pub strategy: Option<Spanned<String>>,
    /// Only this stress scenario (for `metric.stress_*`).
    pub scenario: Option<Spanned<String>>,
    /// Which runs count by when they started (`since: phase`, the default, or `any`).
    pub since: Since,
    /// The condition over `metric.*` fields.
    pub when: ExprSource,
    /// What it means, for people.
    pub message: Spanned<String>,
    /// Demotion rules only: what happens when it fires.
    pub action: Option<DemotionAction>,
}

/// What a bot may do while a phase is active (every field optional; currency amounts in the
/// account currency, `max_exposure` a fraction of equity).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PhaseLimits {
    /// Entries below are denied.
    pub min_order_notional: Option<f64>,
    /// Entries above are denied.
    pub max_order_notional: Option<f64>,
    /// Entries above wait for a person's approval.
    pub approval_above: Option<f64>,
    /// Entries that would take gross exposure / equity above are denied (fraction).
    pub max_exposure: Option<f64>,
    /// Entries beyond this many market orders in the UTC day are denied.
    pub max_orders_per_day: Option<u32>,
    /// A larger `max_order_notional`, earned by trading.
    pub scale_up: Option<ScaleUp>,
}

impl PhaseLimits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == PhaseLimits::default()
    }

    /// The cap on an entry's notional: the scaled-up one once `earned`.
    pub fn order_cap(&self, earned: bool) -> Option<f64> {
        match (&self.scale_up, earned) {
            (Some(s), true) => Some(s.max_order_notional),
            _ => self.max_order_notional,
        }
    }

    /// The limits as a policy document (YAML) named `phase_<phase>`, enforced like any
    /// guardrail and journaled as its rules: deny rules first (minimum, cap, exposure, daily
    /// count), then the approval rule. `None` when there is no limit.
    pub fn policy_yaml(&self, phase: &str, earned: bool) -> Option<String> {
        let mut rules = Vec::new();
        let entry = "order.intent == \"entry\"";
        let mut rule = |id: &str, when: String, action: &str, message: String| {
            rules.push(format!(
                "  - id: {id}\n    when: '{when}'\n    action: {action}\n    message: \"{}\"\n",
                message.replace('"', "'")
            ));
        };
        if let Some(v) = self.min_order_notional {
            rule(
                "min_order",
                format!("{entry} and order.notional < {v}"),
                "deny",
                format!("phase {phase}: entries of at least {v}"),
            );
        }
        if let Some(v) = self.order_cap(earned) {
            let why = if earned && self.scale_up.is_some() { " (scaled up)" } else { "" };
            rule(
                "max_order",
                format!("{entry} and order.notional > {v}"),
                "deny",
                format!("phase {phase}: entries of at most {v}{why}"),
            );
        }
        if let Some(v) = self.max_exposure {
            rule(
                "max_exposure",
                format!("{entry} and (account.exposure + order.notional) / account.equity > {v}"),
                "deny",
                format!("phase {phase}: exposure of at most {}% of equity", v * 100.0),
            );
        }
        if let Some(v) = self.max_orders_per_day {
            rule(
                "max_orders_per_day",
                format!("{entry} and account.orders_today >= {v}"),
                "deny",
                format!("phase {phase}: at most {v} orders a day"),
            );
        }
        if let Some(v) = self.approval_above {
            rule(
                "approval_above",
                format!("{entry} and order.notional > {v}"),
                "require_approval",
                format!("phase {phase}: entries above {v} need a person's approval"),
            );
        }
        if rules.is_empty() {
            return None;
        }
        Some(format!(
            "kind: policy\nname: phase_{phase}\ndescription: the limits of phase {phase}\nrules:\n{}",
            rules.concat()
        ))
    }
}

/// Phase 3's "size increases only after 10+ successful trades with no loss above 5%".
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScaleUp {
    /// Winning trades needed (in the runs of the phase's mode).
    pub after_winning_trades: u32,
    /// No trade may have lost more than this fraction of its entry notional.
    pub max_loss: f64,
    /// The cap once earned (currency).
    pub max_order_notional: f64,
}

/// Reads a phase document from its root mapping.
pub fn read_phase(r: &mut Reader<'_>, root: &Node) -> Option<PhaseDoc> {
    let mut m = r.map(root, "phase")?;
    m.get("kind");
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    let description = m.get("description").and_then(|n| r.string(n, "description")).map(|s| s.value);
    let mode = m.required(r, "mode").and_then(|n| r.choice(n, "mode", &["backtest", "paper", "live"])).map(|c| {
        let mode = match c.value {
            "backtest" => PhaseMode::Backtest,
            "paper" => PhaseMode::Paper,
            _ => PhaseMode::Live,
        };
        Spanned::new(mode, c.span)
    });
    let next = m.get("next").map(|n| r.name(n, "next"));
    let approval = m.get("approval").map(|n| r.name(n, "approval"));
    let default_from = mode.as_ref().map_or(RunMode::Paper, |m| RunMode::of(m.value));
    let limits = m.get("limits").map(|n| read_limits(r, n)).unwrap_or_default();
    let gates = m.get("gates").map(|n| read_rules(r, n, "gates", default_from, false)).unwrap_or_default();
    let demotion = m.get("demotion").map(|n| read_rules(r, n, "demotion", default_from, true)).unwrap_or_default();
    m.finish(r);
    let next = match next {
        Some(n) => Some(n?),
        None => None,
    };
    let approval = match approval {
        Some(a) => Some(a?),
        None => None,
    };
    Some(PhaseDoc {
        source: r.file.clone(),
        name: name?,
        description,
        mode: mode?,
        next,
        approval,
        limits,
        gates,
        demotion,
    })
}

fn read_limits(r: &mut Reader<'_>, node: &Node) -> PhaseLimits {
    let Some(mut m) = r.map(node, "limits") else { return PhaseLimits::default() };
    let money =
        |r: &mut Reader<'_>, n: Option<&Node>, what: &str| n.and_then(|n| r.positive_number(n, what)).map(|v| v.value);
    let min_order_notional = money(r, m.get("min_order_notional"), "min_order_notional");
    let max_order_notional = money(r, m.get("max_order_notional"), "max_order_notional");
    let approval_above = money(r, m.get("approval_above"), "approval_above");
    let max_exposure =
        m.get("max_exposure").and_then(|n| r.rate_in(n, "max_exposure", 1e-9, 10.0)).map(|v| v.value.value);
    let max_orders_per_day =
        m.get("max_orders_per_day").and_then(|n| r.positive_int(n, "max_orders_per_day")).map(|v| v.value);
    let scale_up = m.get("scale_up").and_then(|n| {
        let mut s = r.map(n, "scale_up")?;
        let after = s.required(r, "after_winning_trades").and_then(|n| r.positive_int(n, "after_winning_trades"));
        let max_loss = s.required(r, "max_loss").and_then(|n| r.rate_in(n, "max_loss", 0.0, 1.0));
        let cap = s.required(r, "max_order_notional").and_then(|n| r.positive_number(n, "max_order_notional"));
        s.finish(r);
        Some(ScaleUp {
            after_winning_trades: after?.value,
            max_loss: max_loss?.value.value,
            max_order_notional: cap?.value,
        })
    });
    m.finish(r);
    PhaseLimits { min_order_notional, max_order_notional, approval_above, max_exposure, max_orders_per_day, scale_up }
}

fn read_rules(r: &mut Reader<'_>, node: &Node, what: &str, default_from: RunMode, demotion: bool) -> Vec<GateRule> {
    let NodeValue::Seq(items) = &node.value else {
        r.push(
            Diagnostic::error(
                codes::WRONG_TYPE,
                format!("`{what}` must be a list of rules, found {}", node.kind_name()),
            )
            .at(r.file, node.span),
        );
        return Vec::new();
    };
    let mut out: Vec<GateRule> = Vec::new();
    for item in items {
        let Some(rule) = read_rule(r, item, default_from, demotion) else { continue };
        if let Some(first) = out.iter().find(|g| g.id.value == rule.id.value) {
            let line = r.file.line_col(first.id.span.start).0;
            r.push(
                Diagnostic::error(codes::DUPLICATE, format!("rule id `{}` is used twice in `{what}`", rule.id.value))
                    .at(r.file, rule.id.span)
                    .label("duplicate id")
                    .help(format!("the first is on line {line}")),
            );
            continue;
        }
        out.push(rule);
    }
    out
}

fn read_rule(r: &mut Reader<'_>, node: &Node, default_from: RunMode, demotion: bool) -> Option<GateRule> {
    let mut m = r.map(node, if demotion { "demotion rule" } else { "gate rule" })?;
    let id = m.required(r, "id").and_then(|n| r.name(n, "id"));
    let from = m
        .get("from")
        .and_then(|n| r.choice(n, "from", &["backtest", "stress", "paper", "live", "walkforward"]))
        .map(|c| match c.value {
            "backtest" => RunMode::Backtest,
            "stress" => RunMode::Stress,
            "paper" => RunMode::Paper,
            "walkforward" => RunMode::Walkforward,
            _ => RunMode::Live,
        });
    let window = m.get("window").and_then(|n| read_window(r, n));
    let strategy = m.get("strategy").and_then(|n| r.name(n, "strategy"));
    let scenario = m.get("scenario").and_then(|n| r.name(n, "scenario"));
    let since = m.get("since").and_then(|n| r.choice(n, "since", &["phase", "any"])).map(|c| match c.value {
        "any" => Since::Any,
        _ => Since::Phase,
    });
    let when = m.required(r, "when").and_then(|n| r.expr(n, "when"));
    let message = m.required(r, "message").and_then(|n| r.name(n, "message"));
    let action = if demotion {
        m.required(r, "action").and_then(|n| r.choice(n, "action", &["pause", "demote"])).map(|c| match c.value {
            "pause" => DemotionAction::Pause,
            _ => DemotionAction::Demote,
        })
    } else {
        None
    };
    m.finish(r);
    if demotion && action.is_none() {
        return None;
    }
    Some(GateRule {
        id: id?,
        from: from.unwrap_or(default_from),
        window,
        strategy,
        scenario,
        since: since.unwrap_or_default(),
        when: when?,
        message: message?,
        action,
    })
}

/// `50 trades` or `3 months`.
fn read_window(r: &mut Reader<'_>, node: &Node) -> Option<Window> {
    let s = r.string(node, "window")?;
    let mut parts = s.value.split_whitespace();
    let n = parts.next().and_then(|n| n.parse::<u32>().ok()).filter(|n| *n > 0);
    let unit = parts.next();
    match (n, unit, parts.next()) {
        (Some(n), Some("trade" | "trades"), None) => Some(Window::Trades(n)),
        (Some(n), Some("month" | "months"), None) => Some(Window::Months(n)),
        _ => r.fail(
            codes::INVALID_VALUE,
            node.span,
            format!("`window` must be a count of trades or months, found `{}`", s.value),
            Some("write e.g. `50 trades` or `3 months`".into()),
        ),
    }
}
