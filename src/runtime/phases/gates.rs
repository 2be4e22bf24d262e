//! Phase gates evaluated against a bot's journal: the gate report (`dsl gate status`).
//!
//! For each gate or demotion rule of a phase, the journal is read for the runs the rule
//! names (`from`), narrowed to its strategy and window, turned into
//! [`crate::engine::gate_metrics::MetricInputs`], and the rule's expression is
//! evaluated on the metrics ([`crate::engine::gate_metrics::compute`]).
//!
//! Which runs:
//! - `backtest`, `paper`, `live`: the bot's latest run of that kind (`paper` and `live` are
//!   `dsl run` runs on a paper or live account). A restarted bot resumes its run, so the
//!   latest run holds the whole paper history; a run started over with `--fresh` starts it
//!   again.
//! - `stress` (and every `metric.stress_*`): the latest run of each scenario of the bot's
//!   stress runs (the unchanged `baseline` replay left out), or only `scenario`.
//! - `metric.backtest_years`: the latest backtest run, whatever `from` says.
//!
//! With no run of the kind a rule reads, every metric is undefined and the rule does not
//! hold: no evidence is no pass.
//!
//! Windows are in event time: `3 months` ends at the latest bar time of the runs read and
//! starts three calendar months before it; `50 trades` keeps the last 50 closed trades.
//!
//! The report carries a SHA-256 of its content (criteria, values, the phase document's text
//! and the bundle revision, not the wall-clock time), so an approval can name exactly the
//! report it approves.
//!
//! `inputs` (about 170 lines) reads every journal table a metric may need, each guarded by
//! whether a rule reads that metric (so a report makes only the reads its rules need); the guards
//! and reads are kept side by side.

use crate::runtime::journal::db_err;
use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::phase::{DemotionAction, GateRule, PhaseDoc, RunMode, Since, Window};
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::dsl::catalog::{FieldId, field_spec};
use crate::dsl::check::{TExpr, TKind};
use crate::dsl::interp::eval_at;
use crate::dsl::semantics::fires;
use crate::engine::gate_metrics::{MetricInputs, TradeRecord, compute};

use crate::runtime::journal::run_evidence::RunEvidence;

/// One criterion of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criterion {
    /// The rule's id.
    pub id: String,
    /// Which runs it read.
    pub from: RunMode,
    /// Its window, as text (`all` when none).
    pub window: String,
    /// Its strategy filter.
    pub strategy: Option<String>,
    /// Its scenario filter.
    pub scenario: Option<String>,
    /// The rule as written.
    pub rule: String,
    /// The rule's message.
    pub message: String,
    /// For a demotion rule: what it does when it fires.
    pub action: Option<DemotionAction>,
    /// The metrics it read (`null` when undefined: too little data).
    pub values: BTreeMap<String, Option<f64>>,
    /// Every comparison of a metric with a number in the rule.
    pub thresholds: Vec<Threshold>,
    /// A gate: the rule holds (it passes). A demotion rule: it fired.
    pub holds: bool,
    /// The journal runs read.
    pub runs: Vec<i64>,
    /// Only runs started at or after this time were counted (UTC seconds; when the bot
    /// entered the phase, for a rule with `since: phase`).
    pub since: Option<i64>,
    /// The span of bar time the counted data covers (UTC seconds), when there is data.
    pub period: Option<(i64, i64)>,
}

/// `metric op value`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// The metric.
    pub metric: String,
    /// `>=`, `>`, `<=`, `<`, `==` or `!=`.
    pub op: String,
    /// The number it is compared with.
    pub value: f64,
}

/// The gate report of a bot's phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    /// The bot.
    pub bot: String,
    /// The phase whose gates these are.
    pub phase: String,
    /// The phase a promotion leads to.
    pub next: Option<String>,
    /// The phrase that approves it.
    pub approval_phrase: Option<String>,
    /// The bundle revision the rules come from.
    pub bundle_revision: String,
    /// Exit criteria.
    pub gates: Vec<Criterion>,
    /// Demotion rules.
    pub demotion: Vec<Criterion>,
    /// Every gate passes (and there is at least one).
    pub passed: bool,
    /// SHA-256 of everything above and the phase document's text (hex).
    pub hash: String,
}

/// Evaluates `phase`'s gates and demotion rules against the journal at `path` for `bot`. A
/// missing journal counts as one without runs (every metric undefined or zero).
///
/// # Errors
/// When the phase is not in the bundle, or the journal cannot be read.
pub fn report(path: &Path, bot: &str, bundle: &Bundle, phase: &str) -> Result<GateReport, Diagnostic> {
    report_of(path, bot, bundle, phase, true)
}

/// Like [`report`], with the gates left out when `gates` is false (a running bot checking its
/// demotion rules; `passed` is false then).
///
/// # Errors
/// As [`report`].
pub fn report_of(path: &Path, bot: &str, bundle: &Bundle, phase: &str, gates: bool) -> Result<GateReport, Diagnostic> {
    let conn = if path.exists() { Some(crate::runtime::journal::open_read(path)?) } else { None };
    report_on(conn.as_ref(), None, path, bot, bundle, phase, gates)
}

/// Like [`report_of`], on an open read connection to the journal at `path` (`None`: no journal
/// yet). A running bot keeps one connection for its daily demotion checks instead of opening
/// the journal (and parsing its schema) every day; `own` is its own run's evidence, read
/// instead of the journal for that run ([`crate::runtime::journal::run_evidence`]).
///
/// # Errors
/// As [`report`].
pub fn report_on(
    conn: Option<&Connection>,
    own: Option<&RunEvidence>,
    path: &Path,
    bot: &str,
    bundle: &Bundle,
    phase: &str,
    gates: bool,
) -> Result<GateReport, Diagnostic> {
    let Some(pi) = bundle.phases.iter().position(|p| p.name.value == phase) else {
        let names: Vec<&str> = bundle.phases.iter().map(|p| p.name.value.as_str()).collect();
        return Err(Diagnostic::error(codes::UNRESOLVED_REFERENCE, format!("the bot has no phase `{phase}`"))
            .help(format!("its phases: {}", names.join(", "))));
    };
    let doc = &bundle.phases[pi];
    let rules = bundle.phase_rules.iter().find(|r| r.phase == phase);
    // Runs count from when the bot entered this phase (rules with `since: phase`).
    let entered = match conn {
        Some(c) => crate::runtime::phases::phase_store::entered(c, bot, phase).map_err(|e| db_err(path, e))?,
        None => None,
    };
    let eval = |rule: &GateRule, expr: Option<&TExpr>| -> Result<Criterion, Diagnostic> {
        let mut read = Vec::new();
        if let Some(e) = expr {
            fields_of(e, &mut read);
        }
        let mut filter = Filter::of(rule);
        if rule.since == Since::Phase {
            filter.since = entered.map(|e| e.ts);
            filter.after_run = entered.and_then(|e| e.last_run_id);
        }
        let (mut inputs, runs, period) = match conn {
            Some(c) => inputs(c, own, bot, bundle, &filter, Some(&read)).map_err(|e| db_err(path, e))?,
            None => (MetricInputs { params: params(bundle, &filter), ..Default::default() }, Vec::new(), None),
        };
        inputs.want_luck = read.contains(&FieldId::MetricLuck);
        inputs.skip_months = expr.is_some()
            && !read.iter().any(|f| {
                matches!(f, FieldId::MetricMonths | FieldId::MetricMonthsPositive | FieldId::MetricMonthlyReturn)
            });
        inputs.skip_t_test =
            expr.is_some() && !read.iter().any(|f| matches!(f, FieldId::MetricTStat | FieldId::MetricPValue));
        // No run of the kind the rule reads: no evidence, every metric undefined (fails).
        let fields = if runs.is_empty() { vec![f64::NAN; crate::dsl::catalog::FIELD_COUNT] } else { compute(&inputs) };
        let (holds, values, thresholds) = match expr {
            Some(e) => {
                let values = read
                    .iter()
                    .map(|id| {
                        let v = fields[*id as usize];
                        (field_spec(*id).path.to_string(), v.is_finite().then_some(v))
                    })
                    .collect();
                let mut thresholds = Vec::new();
                comparisons(e, &mut thresholds);
                (fires(eval_at(e, None, 0, &fields)), values, thresholds)
            }
            None => (false, BTreeMap::new(), Vec::new()),
        };
        Ok(Criterion {
            id: rule.id.value.clone(),
            from: rule.from,
            window: rule.window.map_or("all".into(), |w| w.to_string()),
            strategy: rule.strategy.as_ref().map(|s| s.value.clone()),
            scenario: rule.scenario.as_ref().map(|s| s.value.clone()),
            rule: rule.when.text.clone(),
            message: rule.message.value.clone(),
            action: rule.action,
            values,
            thresholds,
            holds,
            runs,
            since: filter.since,
            period,
        })
    };
    let with_gates = gates;
    let mut gates = Vec::new();
    for (i, g) in doc.gates.iter().enumerate().filter(|_| with_gates) {
        gates.push(eval(g, rules.and_then(|r| r.gates.get(i)))?);
    }
    let mut demotion = Vec::new();
    for (i, g) in doc.demotion.iter().enumerate() {
        demotion.push(eval(g, rules.and_then(|r| r.demotion.get(i)))?);
    }
    let passed = !gates.is_empty() && gates.iter().all(|g| g.holds);
    let mut r = GateReport {
        bot: bot.to_string(),
        phase: phase.to_string(),
        next: doc.next.as_ref().map(|n| n.value.clone()),
        approval_phrase: doc.approval.as_ref().map(|a| a.value.clone()),
        bundle_revision: bundle.revision.clone(),
        gates,
        demotion,
        passed,
        hash: String::new(),
    };
    // A running bot's daily check needs the hash only for a change it records.
    if with_gates || r.demotion.iter().any(|d| d.holds) {
        r.hash = hash(&r, doc);
    }
    Ok(r)
}

/// SHA-256 (hex) of the report's JSON (without the hash) and the phase document's text.
fn hash(r: &GateReport, doc: &PhaseDoc) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(r).unwrap_or_default());
    h.update(doc.source.text.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The context fields an expression reads, in order of appearance (no duplicates).
fn fields_of(e: &TExpr, out: &mut Vec<FieldId>) {
    match &e.kind {
        TKind::Field(id) if !out.contains(id) => out.push(*id),
        TKind::Unary(_, a) | TKind::Lag(a, _) => fields_of(a, out),
        TKind::Binary(_, a, b) => {
            fields_of(a, out);
            fields_of(b, out);
        }
        TKind::Indicator { args, .. } => args.iter().for_each(|a| fields_of(a, out)),
        _ => {}
    }
}

/// Every `metric op number` comparison in `e`.
fn comparisons(e: &TExpr, out: &mut Vec<Threshold>) {
    if let Some(t) = threshold(e) {
        out.push(t);
        return;
    }
    match &e.kind {
        TKind::Unary(_, a) => comparisons(a, out),
        TKind::Binary(_, a, b) => {
            comparisons(a, out);
            comparisons(b, out);
        }
        _ => {}
    }
}

/// `metric op number` (or `number op metric`, turned around).
fn threshold(e: &TExpr) -> Option<Threshold> {
    use crate::dsl::semantics::BinOp;
    let TKind::Binary(op, a, b) = &e.kind else { return None };
    let sym = |op: &BinOp| -> Option<&'static str> {
        Some(match op {
            BinOp::Ge => ">=",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Lt => "<",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            _ => return None,
        })
    };
    let flip = |s: &'static str| match s {
        ">=" => "<=",
        ">" => "<",
        "<=" => ">=",
        "<" => ">",
        other => other,
    };
    match (&a.kind, b.as_const(), a.as_const(), &b.kind) {
        (TKind::Field(id), Some(v), _, _) => {
            Some(Threshold { metric: field_spec(*id).path.into(), op: sym(op)?.into(), value: v })
        }
        (_, _, Some(v), TKind::Field(id)) => {
            Some(Threshold { metric: field_spec(*id).path.into(), op: flip(sym(op)?).into(), value: v })
        }
        _ => None,
    }
}

/// Which journal data metrics are computed from (a rule's `from`, `window`, `strategy`,
/// `scenario`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Which runs.
    pub from: RunMode,
    /// Which trades.
    pub window: Option<Window>,
    /// Only this strategy.
    pub strategy: Option<String>,
    /// Only this stress scenario.
    pub scenario: Option<String>,
    /// Only runs started at or after this time (UTC seconds).
    pub since: Option<i64>,
    /// Only runs newer than this one (the newest run when the bot entered the phase).
    pub after_run: Option<i64>,
}

impl Filter {
    /// A rule's filter (every run, whenever it started; the report narrows `since`).
    pub fn of(rule: &GateRule) -> Filter {
        Filter {
            from: rule.from,
            window: rule.window,
            strategy: rule.strategy.as_ref().map(|s| s.value.clone()),
            scenario: rule.scenario.as_ref().map(|s| s.value.clone()),
            since: None,
            after_run: None,
        }
    }
}

/// Every `metric.*` field (indexed by [`FieldId`]) for `bot` under `filter`; `luck` is
/// computed too.
///
/// # Errors
/// When the journal cannot be read.
pub fn metrics(path: &Path, bot: &str, bundle: &Bundle, filter: &Filter) -> Result<Vec<f64>, Diagnostic> {
    let mut m = if path.exists() {
        let c = crate::runtime::journal::open_read(path)?;
        inputs(&c, None, bot, bundle, filter, None).map_err(|e| db_err(path, e))?.0
    } else {
        MetricInputs { params: params(bundle, filter), ..Default::default() }
    };
    m.want_luck = true;
    Ok(compute(&m))
}

/// When `bot` entered `phase` according to the journal at `path` (see
/// [`crate::runtime::phases::phase_store::entered`]); `None` without a journal.
///
/// # Errors
/// When the journal cannot be read.
pub fn entered_at(
    path: &Path,
    bot: &str,
    phase: &str,
) -> Result<Option<crate::runtime::phases::phase_store::Entered>, Diagnostic> {
    if !path.exists() {
        return Ok(None);
    }
    let c = crate::runtime::journal::open_read(path)?;
    crate::runtime::phases::phase_store::entered(&c, bot, phase).map_err(|e| db_err(path, e))
}

/// Declared params of the strategies a filter concerns.
fn params(bundle: &Bundle, filter: &Filter) -> usize {
    bundle
        .strategies
        .iter()
        .filter(|s| filter.strategy.as_ref().is_none_or(|f| f == s.name()))
        .map(|s| s.doc.params.len())
        .sum()
}

/// The runs a rule reads: `(run_id, last_bar_ts)`, of those started at or after `since`.
fn runs_of(
    c: &Connection,
    bot: &str,
    kind: RunMode,
    scenario: Option<&str>,
    since: Option<i64>,
    after_run: Option<i64>,
) -> rusqlite::Result<Vec<(i64, i64)>> {
    let live = "COALESCE(json_extract(settings, '$.environment'), '') = 'live'";
    // `?2` is `since`, `?4` the newest run when the bot entered the phase (NULL: every run).
    let started = "started_ts >= ?2 AND run_id > ?4";
    let sql = match kind {
        RunMode::Backtest => format!(
            "SELECT run_id, COALESCE(last_bar_ts, 0) FROM runs WHERE bot = CAST(?1 AS TEXT) AND kind = 'backtest' AND {started} \
             ORDER BY run_id DESC LIMIT 1"
        ),
        RunMode::Paper => format!(
            "SELECT run_id, COALESCE(last_bar_ts, 0) FROM runs WHERE bot = CAST(?1 AS TEXT) AND kind = 'paper' AND NOT ({live}) \
             AND {started} ORDER BY run_id DESC LIMIT 1"
        ),
        RunMode::Live => format!(
            "SELECT run_id, COALESCE(last_bar_ts, 0) FROM runs WHERE bot = CAST(?1 AS TEXT) AND kind = 'paper' AND {live} \
             AND {started} ORDER BY run_id DESC LIMIT 1"
        ),
        RunMode::Walkforward => format!(
            "SELECT run_id, COALESCE(last_bar_ts, 0) FROM runs WHERE bot = CAST(?1 AS TEXT) AND kind = 'walkforward' \
             AND status = 'completed' AND {started} ORDER BY run_id DESC LIMIT 1"
        ),
        RunMode::Stress => format!(
            "SELECT MAX(run_id), COALESCE(MAX(last_bar_ts), 0) FROM runs WHERE bot = CAST(?1 AS TEXT) AND kind = 'stress' \
             AND status = 'completed' AND json_extract(settings, '$.scenario') != 'baseline' \
             AND (?3 IS NULL OR json_extract(settings, '$.scenario') = ?3) AND {started} \
             GROUP BY json_extract(settings, '$.scenario') ORDER BY 1"
        ),
    };
    let mut st = c.prepare_cached(&sql)?;
    let (since, after_run) = (since.unwrap_or(i64::MIN), after_run.unwrap_or(0));
    if kind == RunMode::Stress {
        st.query_map(params![bot, since, scenario, after_run], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    } else {
        st.query_map(params![bot, since, None::<String>, after_run], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    }
}

/// The first second of the window `w` ending at `end` (UTC seconds), for month windows.
fn months_before(end: i64, months: u32) -> i64 {
    chrono::DateTime::from_timestamp(end, 0)
        .and_then(|d| d.checked_sub_months(chrono::Months::new(months)))
        .map_or(i64::MIN, |d| d.timestamp())
}

/// What a rule's metrics are computed from, the runs read, and the span of bar time counted.
type Evidence = (MetricInputs, Vec<i64>, Option<(i64, i64)>);

/// What a rule's metrics are computed from, and the runs read.
/// `need`: the metrics wanted (`None`: all); only the journal reads they need are made.
fn inputs(
    c: &Connection,
    own: Option<&RunEvidence>,
    bot: &str,
    bundle: &Bundle,
    rule: &Filter,
    need: Option<&[FieldId]>,
) -> rusqlite::Result<Evidence> {
    use FieldId as F;
    let wants = |ids: &[FieldId]| need.is_none_or(|n| n.iter().any(|f| ids.contains(f)));
    let scenario = rule.scenario.as_deref();
    // The running bot's own run, when it is the one read: from memory (no journal read).
    let runs = match own.filter(|e| e.answers(rule.from, rule.since, rule.after_run)) {
        Some(e) => vec![(e.run_id, e.last_bar().unwrap_or(0))],
        None => runs_of(c, bot, rule.from, scenario, rule.since, rule.after_run)?,
    };
    let ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
    let end = runs.iter().map(|r| r.1).max().unwrap_or(0);
    let cutoff = match rule.window {
        Some(Window::Months(n)) => months_before(end, n),
        _ => i64::MIN,
    };
    let strategy = rule.strategy.clone();
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let mut m = MetricInputs { params: params(bundle, rule), ..Default::default() };
    let mut period = None;
    // The running bot's own run, when it is the one read: from memory.
    let mine = own.filter(|e| ids == [e.run_id]);
    // Starting cash of the first run read.
    let start_cash: f64 = match (mine, ids.first()) {
        (Some(e), _) => e.starting_cash,
        (None, None) => 0.0,
        (None, Some(id)) => c
            .query_row("SELECT json_extract(settings, '$.starting_cash') FROM runs WHERE run_id = ?1", [id], |r| {
                r.get::<_, Option<f64>>(0)
            })?
            .unwrap_or(0.0),
    };
    if !ids.is_empty() {
        let mut all: Vec<TradeRecord> = match mine {
            Some(e) => e.trades_of(strategy.as_deref()),
            None => {
                let mut st = c.prepare_cached(&format!(
                    "SELECT exit_ts, pnl, pnl_pct FROM trades WHERE run_id IN ({list}) \
                     AND (?1 IS NULL OR strategy = ?1) ORDER BY exit_ts, run_id, trade_no"
                ))?;
                st.query_map(params![strategy], crate::runtime::journal::run_evidence::trade_record)?
                    .collect::<rusqlite::Result<_>>()?
            }
        };
        let keep_from = match rule.window {
            Some(Window::Trades(n)) => all.len().saturating_sub(n as usize),
            _ => all.iter().position(|t| t.exit_ts > cutoff).unwrap_or(all.len()),
        };
        m.start_equity = start_cash + all[..keep_from].iter().map(|t| t.pnl).sum::<f64>();
        m.trades = all.split_off(keep_from);
        // The span counted: from the window's start (or the first trade kept, or the runs'
        // first bar) to the runs' last bar.
        let first_bar: Option<i64> = match mine {
            Some(e) => e.first_bar,
            None => c
                .prepare_cached(&format!("SELECT MIN(first_bar_ts) FROM runs WHERE run_id IN ({list})"))?
                .query_row([], |r| r.get(0))?,
        };
        let start = match rule.window {
            Some(Window::Trades(_)) => m.trades.first().map(|t| t.exit_ts).or(first_bar),
            Some(Window::Months(_)) => Some(cutoff),
            None => first_bar,
        };
        period = start.map(|s| (s, end));
        let since = match rule.window {
            Some(Window::Trades(_)) => m.trades.first().map_or(i64::MAX, |t| t.exit_ts),
            _ => cutoff,
        };
        // Daily marks (paper and live runs) describe the whole account: not per strategy.
        if strategy.is_none() && ids.len() == 1 && rule.from != RunMode::Stress {
            let daily: Vec<(i64, f64)> = match mine {
                Some(e) => e.daily.iter().map(|d| (d.1, d.2)).collect(),
                None => c
                    .prepare_cached("SELECT last_ts, close_equity FROM daily_equity WHERE run_id = ?1 ORDER BY day")?
                    .query_map([ids[0]], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?,
            };
            if !daily.is_empty() {
                let before = daily.iter().rev().find(|d| d.0 <= since).map(|d| d.1);
                let mut curve: Vec<(i64, f64)> = daily.into_iter().filter(|d| d.0 > since).collect();
                if let Some(b) = before.or(Some(start_cash).filter(|_| since == i64::MIN)) {
                    curve.insert(0, (curve.first().map_or(since, |p| p.0) - 1, b));
                }
                m.equity = curve;
            }
            // A running run has no final metrics yet.
            if rule.window.is_none() && mine.is_none() {
                m.run_max_drawdown = c
                    .prepare_cached("SELECT json_extract(metrics, '$.max_drawdown') FROM runs WHERE run_id = ?1")?
                    .query_row([ids[0]], |r| r.get::<_, Option<f64>>(0))?;
            }
        }
        let breaches = wants(&[F::MetricRiskBreaches, F::MetricDenials, F::MetricReductions]);
        let fired = |action: &str| -> rusqlite::Result<u64> {
            if !breaches {
                return Ok(0);
            }
            if let Some(e) = mine {
                return Ok(e.fired_count(action, since, strategy.as_deref()));
            }
            c.prepare_cached(&format!(
                "SELECT COUNT(*) FROM policy_decisions p LEFT JOIN orders o \
                     ON o.run_id = p.run_id AND o.client_order_id = p.client_order_id \
                     WHERE p.run_id IN ({list}) AND p.fired = 1 AND p.action = ?1 AND p.ts > ?2 \
                     AND (?3 IS NULL OR o.strategy = ?3)"
            ))?
            .query_row(params![action, since, strategy], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
        };
        m.denials = fired("deny")?;
        m.reductions = fired("reduce")?;
        m.halt_rules = fired("halt")?;
        m.halts = if !wants(&[F::MetricHalts]) {
            0
        } else if let Some(e) = mine {
            e.halts_after(since)
        } else {
            c.prepare_cached(&format!(
                "SELECT COUNT(*) FROM state_changes WHERE run_id IN ({list}) AND to_state = 'HALTED' AND ts > ?1"
            ))?
            .query_row([since], |r| r.get::<_, i64>(0))? as u64
        };
        if rule.from != RunMode::Stress && wants(&[F::MetricDivergenceBps, F::MetricMissingOrders]) {
            m.divergence = divergence_of(c, &ids)?;
        }
        if ids.len() == 1 && rule.from != RunMode::Stress && wants(&[F::MetricAvgSlippageBps]) {
            let (_, execs) = crate::runtime::broker::execution::executions_on(c, ids[0])?;
            m.slippage_bps = execs.iter().filter(|e| e.created_ts > since).map(|e| e.slippage_bps()).collect();
        }
    }
    // Stress: the worst drawdown per scenario, whatever `from` says.
    let stress = match (rule.from, wants(&[F::MetricStressMaxDrawdown, F::MetricStressScenarios])) {
        (_, false) => Vec::new(),
        (RunMode::Stress, true) => runs.clone(),
        (_, true) => runs_of(c, bot, RunMode::Stress, scenario, rule.since, rule.after_run)?,
    };
    for (id, _) in &stress {
        let dd: Option<f64> = c
            .prepare_cached("SELECT json_extract(metrics, '$.max_drawdown') FROM runs WHERE run_id = ?1")?
            .query_row([id], |r| r.get(0))?;
        m.stress_drawdowns.extend(dd);
    }
    // The latest completed walk-forward's efficiency, whatever `from` says.
    if wants(&[F::MetricWfe]) {
        m.wfe = c
            .prepare_cached(
                "SELECT json_extract(metrics, '$.\"metric.wfe\"') FROM runs WHERE bot = CAST(?1 AS TEXT) \
                 AND kind = 'walkforward' AND status = 'completed' AND started_ts >= ?2 AND run_id > ?3 \
                 ORDER BY run_id DESC LIMIT 1",
            )?
            .query_row(params![bot, rule.since.unwrap_or(i64::MIN), rule.after_run.unwrap_or(0)], |r| {
                r.get::<_, Option<f64>>(0)
            })
            .optional()?
            .flatten();
    }
    // The search behind the backtests: the latest completed sweep, whatever `from` says.
    if wants(&[F::MetricTrials, F::MetricPbo, F::MetricDeflatedSharpe]) {
        let sweep: Option<(Option<f64>, Option<f64>, Option<f64>)> = c
            .prepare_cached(
                "SELECT json_extract(metrics, '$.trials'), json_extract(metrics, '$.pbo'), \
                 json_extract(metrics, '$.deflated_sharpe') FROM runs WHERE bot = CAST(?1 AS TEXT) \
                 AND kind = 'sweep' AND status = 'completed' AND started_ts >= ?2 AND run_id > ?3 \
                 ORDER BY run_id DESC LIMIT 1",
            )?
            .query_row(params![bot, rule.since.unwrap_or(i64::MIN), rule.after_run.unwrap_or(0)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        m.sweep = sweep.map(|(trials, pbo, deflated_sharpe)| crate::engine::gate_metrics::SweepEvidence {
            trials: trials.unwrap_or(0.0),
            pbo,
            deflated_sharpe,
        });
    }
    let backtest = if wants(&[F::MetricBacktestYears]) {
        runs_of(c, bot, RunMode::Backtest, None, rule.since, rule.after_run)?
    } else {
        Vec::new()
    };
    if let Some((id, _)) = backtest.first() {
        let span: Option<(i64, i64)> = c
            .prepare_cached("SELECT first_bar_ts, last_bar_ts FROM runs WHERE run_id = ?1")?
            .query_row([id], |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)))?;
        m.backtest_years = span.map(|(a, b)| (b - a) as f64 / (365.25 * 86_400.0));
    }
    Ok((m, ids, period))
}

/// A metric's value for people: fractions as percent, counts as integers.
fn value_text(path: &str, v: f64) -> String {
    use crate::dsl::catalog::Scale;
    match crate::dsl::catalog::field(path).map(|f| f.scale) {
        Some(Scale::Fraction) => format!("{:.2}%", v * 100.0),
        _ if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        _ => format!("{v:.4}"),
    }
}

/// The report for people: the phase, then each criterion with its values and verdict.
pub fn human(r: &GateReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let next = r.next.as_deref().map_or("the last phase".to_string(), |n| format!("next: {n}"));
    let _ = writeln!(o, "bot {}: phase {} ({next})", r.bot, r.phase);
    let line = |o: &mut String, c: &Criterion, verdict: &str| {
        let filters: Vec<String> = [
            Some(format!("from {}", c.from.as_str())),
            Some(c.window.clone()).filter(|w| w != "all"),
            c.strategy.as_ref().map(|s| format!("strategy {s}")),
            c.scenario.as_ref().map(|s| format!("scenario {s}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let _ = writeln!(o, "  {verdict:<6} {:<28} {}  [{}]", c.id, c.rule, filters.join(", "));
        let counted = match (&c.runs[..], c.period) {
            ([], _) => "no run counted".to_string(),
            (runs, period) => {
                let ids: Vec<String> = runs.iter().map(i64::to_string).collect();
                let span = period.map_or(String::new(), |(a, b)| {
                    let a = if a == i64::MIN { "the start".into() } else { crate::engine::market::format_utc(a) };
                    format!(", bars {a} .. {}", crate::engine::market::format_utc(b))
                });
                format!("run {}{span}", ids.join(", "))
            }
        };
        let since = c.since.map_or(String::new(), |t| {
            format!(" (runs started since the bot entered the phase, {})", crate::engine::market::format_utc(t))
        });
        let _ = writeln!(o, "         counted: {counted}{since}");
        let missing = if c.runs.is_empty() {
            format!("undefined (no {} run in the journal)", c.from.as_str())
        } else {
            "undefined (not enough data)".into()
        };
        for (k, v) in &c.values {
            let v = v.map_or(missing.clone(), |v| value_text(k, v));
            let _ = writeln!(o, "         {k} = {v}");
        }
        let _ = writeln!(o, "         {}", c.message);
    };
    let _ = writeln!(o, "\ngates (all must pass to promote):");
    for g in &r.gates {
        line(&mut o, g, if g.holds { "pass" } else { "FAIL" });
    }
    if !r.demotion.is_empty() {
        let _ = writeln!(o, "\ndemotion rules (checked automatically):");
        for d in &r.demotion {
            let verdict = if d.holds {
                d.action.map_or("FIRES", |a| if a == DemotionAction::Pause { "PAUSE" } else { "DEMOTE" })
            } else {
                "ok"
            };
            line(&mut o, d, verdict);
        }
    }
    let verdict = match (&r.next, r.passed) {
        (None, _) => "this is the last phase".to_string(),
        (Some(n), true) => format!(
            "every gate passes: `dsl approve {} --by NAME --phrase \"{}\"`, then `dsl promote` moves the bot to {n}",
            r.phase,
            r.approval_phrase.as_deref().unwrap_or("")
        ),
        (Some(n), false) => format!(
            "not ready for {n}: {} of {} gates fail",
            r.gates.iter().filter(|g| !g.holds).count(),
            r.gates.len()
        ),
    };
    let _ = writeln!(o, "\n{verdict}\nreport {}", r.hash);
    o
}

/// The newest divergence checks of runs `ids` together: the fill-weighted mean of their
/// `divergence_bps` and the sum of their `missing_orders`; `None` when a run has no check
/// (the metric is then undefined and a rule reading it fails closed).
fn divergence_of(c: &rusqlite::Connection, ids: &[i64]) -> rusqlite::Result<Option<(f64, f64)>> {
    let (mut weighted, mut fills, mut missing) = (0.0, 0.0, 0.0);
    for id in ids {
        let Some((bps, miss, n)) = crate::runtime::journal::divergence_log::latest(c, *id)? else { return Ok(None) };
        weighted += bps * n as f64;
        fills += n as f64;
        missing += miss as f64;
    }
    if ids.is_empty() {
        return Ok(None);
    }
    Ok(Some((if fills > 0.0 { weighted / fills } else { 0.0 }, missing)))
}
