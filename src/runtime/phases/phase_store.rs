//! A bot's graduation phase in its journal database: the active phase, approvals, and the log
//! of promotions, demotions and pauses.
//!
//! Tables (defined with their migrations in `journal::schema`):
//!
//! | table | one row per |
//! | --- | --- |
//! | `phase_state` | bot: its active phase, since when (UTC seconds) and why; none until the first promotion or demotion (the manifest's `phase:` is active then) |
//! | `phase_approvals` | approval a person gave (`dsl approve`, or an approval file): phase, who, the phrase, when, the SHA-256 of the gate report approved and that report (JSON), where it came from, when a promotion used it |
//! | `phase_log` | promotion, demotion or pause: when, from and to which phase, who or which rule, why, the gate report (JSON) and its hash, the bundle revision |
//!
//! A promotion needs every gate of the active phase to pass and an unused approval of that
//! very report (same hash: the same criteria, values, phase document and bundle revision);
//! it is written in one transaction with the approval it uses. Nothing promotes on its own:
//! demotion rules only ever move a bot back ([`apply_demotions`]).

use crate::runtime::journal::db_err;
use crate::runtime::journal::schema;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::config::phase::DemotionAction;
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::engine::trading_state::TradingState;

use crate::runtime::journal::control::ControlStore;
use crate::runtime::phases::gates::GateReport;

/// An approval file, committed to git beside the documents:
///
/// ```yaml
/// kind: approval
/// bot: example
/// phase: paper_mastery
/// approved_by: Jane Trader
/// phrase: Proceed to Phase 2
/// report: 3f2a...   # the SHA-256 `dsl gate status` printed for the report approved
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFile {
    /// Must be `approval`.
    pub kind: String,
    /// The bot.
    pub bot: String,
    /// The phase whose promotion is approved.
    pub phase: String,
    /// Who approves.
    pub approved_by: String,
    /// The phase's approval phrase.
    pub phrase: String,
    /// The gate report's SHA-256 (hex).
    pub report: String,
}

/// A promotion, demotion or pause that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseChange {
    /// `promotion`, `demotion` or `pause`.
    pub kind: &'static str,
    /// From which phase.
    pub from: String,
    /// To which phase (the same for a pause).
    pub to: String,
    /// Who (a person) or which rule.
    pub actor: String,
    /// Why.
    pub reason: String,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn open(path: &Path) -> Result<Connection, Diagnostic> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| db_err(path, e))?;
    }
    let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| db_err(path, e))?;
    conn.execute_batch(schema::PHASES).map_err(|e| db_err(path, e))?;
    schema::migrate_phases(&conn).map_err(|e| db_err(path, e))?;
    Ok(conn)
}

/// The bot's active phase: the last promotion's or demotion's, else the manifest's `phase:`.
///
/// # Errors
/// When the journal cannot be read.
pub fn active_phase(path: &Path, bundle: &Bundle) -> Result<Option<String>, Diagnostic> {
    if bundle.bot.is_none() || !path.exists() {
        return Ok(bundle.bot.as_ref().and_then(|b| b.phase.as_ref()).map(|p| p.value.clone()));
    }
    // Read-only: `dsl gate status` reads journals it may not write.
    let conn = crate::runtime::journal::open_read(path)?;
    active_phase_on(&conn, path, bundle)
}

/// Like [`active_phase`], on an open connection to the journal at `path`.
///
/// # Errors
/// When the journal cannot be read.
pub fn active_phase_on(conn: &Connection, path: &Path, bundle: &Bundle) -> Result<Option<String>, Diagnostic> {
    let declared = bundle.bot.as_ref().and_then(|b| b.phase.as_ref()).map(|p| p.value.clone());
    let Some(bot) = bundle.bot.as_ref().map(|b| b.name.value.clone()) else { return Ok(declared) };
    // No table yet: no phase was ever stored.
    let stored: Option<String> = schema::absent_table_as_none(
        conn.prepare_cached("SELECT phase FROM phase_state WHERE bot = CAST(?1 AS TEXT)")
            .and_then(|mut st| st.query_row([&bot], |r| r.get(0)))
            .optional(),
    )
    .map_err(|e| db_err(path, e))?
    .flatten();
    // A phase that the documents no longer have falls back to the declared one.
    Ok(stored.filter(|p| bundle.phases.iter().any(|d| &d.name.value == p)).or(declared))
}

/// When `bot` last entered `phase` by a promotion or a demotion (UTC seconds), if it did: the
/// start of the evidence its gates count (`since: phase`). `None` for the phase the bot
/// started in and never left.
///
/// # Errors
/// SQLite's.
pub fn entered(conn: &Connection, bot: &str, phase: &str) -> rusqlite::Result<Option<Entered>> {
    let query = |last_run: &str| -> rusqlite::Result<Option<(i64, Option<i64>)>> {
        conn.prepare_cached(&format!(
            "SELECT ts, {last_run} FROM phase_log WHERE bot = CAST(?1 AS TEXT) AND to_phase = CAST(?2 AS TEXT) \
             AND kind IN ('promotion', 'demotion') ORDER BY log_id DESC LIMIT 1"
        ))?
        .query_row(params![bot, phase], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
    };
    // No table yet: the bot never changed phase. A journal written before `last_run_id` was
    // recorded has no such column.
    let row = match schema::absent_table_as_none(query("last_run_id").map(Some)) {
        Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.starts_with("no such column") => {
            schema::absent_table_as_none(query("NULL").map(Some))?
        }
        r => r?,
    }
    .flatten();
    Ok(row.map(|(ts, last_run_id)| Entered { ts, last_run_id }))
}

/// When a bot entered a phase: the evidence its gates count (`since: phase`) is the runs
/// started after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entered {
    /// When (UTC seconds, the wall clock of the promotion or demotion).
    pub ts: i64,
    /// The newest run in the journal then: only later runs count, even one started within
    /// the same second. `None` in journals written before this was recorded (then runs
    /// started at or after `ts` count).
    pub last_run_id: Option<i64>,
}

/// Records `by`'s approval of `report` (the active phase's current report).
///
/// # Errors
/// When the phase has no next phase or no approval phrase, the phrase differs, a gate fails
/// (approving a failing report approves nothing), or the journal cannot be written.
pub fn approve(path: &Path, report: &GateReport, by: &str, phrase: &str, source: &str) -> Result<i64, Diagnostic> {
    let Some(next) = &report.next else {
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("`{}` is the last phase: there is nothing to approve", report.phase),
        ));
    };
    let Some(wanted) = &report.approval_phrase else {
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("phase `{}` has no `approval` phrase", report.phase),
        )
        .help("add `approval: <phrase>` to the phase document"));
    };
    // The phrase is a deliberate act: it must be exactly the phase's (spaces around it aside).
    if phrase.trim() != wanted.trim() {
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("the phrase does not approve `{}` -> `{next}`", report.phase),
        )
        .help(format!("the phase asks for exactly \"{wanted}\" (case, spaces and punctuation count)")));
    }
    if by.trim().is_empty() {
        return Err(Diagnostic::error(codes::BAD_ARGUMENT, "an approval names who gives it (`--by NAME`)"));
    }
    if !report.passed {
        let failing: Vec<&str> = report.gates.iter().filter(|g| !g.holds).map(|g| g.id.as_str()).collect();
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("phase `{}` has failing gates: {}", report.phase, failing.join(", ")),
        )
        .help("`dsl gate status` shows why; approve once every gate passes"));
    }
    let conn = open(path)?;
    conn.execute(
        "INSERT INTO phase_approvals (bot, phase, approved_by, phrase, ts, report_hash, report, source) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            report.bot,
            report.phase,
            by.trim(),
            phrase,
            now(),
            report.hash,
            serde_json::to_string(report).unwrap_or_default(),
            source
        ],
    )
    .map_err(|e| db_err(path, e))?;
    Ok(conn.last_insert_rowid())
}

/// Promotes the bot from the report's phase to the next one: every gate must pass and an
/// unused approval of this very report must exist (given with `dsl approve`, or `file`, which
/// is recorded as the approval then). Journals the promotion with the report.
///
/// # Errors
/// A clear refusal when a gate fails, there is no matching approval, or the approval file
/// does not match; I/O errors.
pub fn promote(
    path: &Path,
    report: &GateReport,
    file: Option<(&ApprovalFile, &str)>,
) -> Result<PhaseChange, Diagnostic> {
    let Some(next) = report.next.clone() else {
        return Err(Diagnostic::error(codes::RUNTIME_REFUSED, format!("`{}` is the last phase", report.phase)));
    };
    if !report.passed {
        let failing: Vec<&str> = report.gates.iter().filter(|g| !g.holds).map(|g| g.id.as_str()).collect();
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("promotion refused: gates of `{}` fail: {}", report.phase, failing.join(", ")),
        )
        .help("`dsl gate status` shows each criterion's value and threshold"));
    }
    if let Some((f, name)) = file {
        let mismatch = |what: &str, got: &str, want: &str| {
            Diagnostic::error(
                codes::RUNTIME_REFUSED,
                format!("approval file `{name}`: {what} is `{got}`, the promotion needs `{want}`"),
            )
        };
        if f.kind != "approval" {
            return Err(mismatch("kind", &f.kind, "approval"));
        }
        if f.bot != report.bot {
            return Err(mismatch("bot", &f.bot, &report.bot));
        }
        if f.phase != report.phase {
            return Err(mismatch("phase", &f.phase, &report.phase));
        }
        if f.report != report.hash {
            return Err(mismatch("report", &f.report, &report.hash)
                .help("the gate report changed since it was approved (new trades, an edited gate or bundle): approve the current one"));
        }
        approve(path, report, &f.approved_by, &f.phrase, &format!("file {name}"))?;
    }
    let mut conn = open(path)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_err(path, e))?;
    let approval: Option<(i64, String)> = tx
        .query_row(
            "SELECT approval_id, approved_by FROM phase_approvals WHERE bot = CAST(?1 AS TEXT) AND phase = ?2 AND report_hash = ?3 \
             AND used_ts IS NULL ORDER BY approval_id DESC LIMIT 1",
            params![report.bot, report.phase, report.hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| db_err(path, e))?;
    let Some((approval_id, by)) = approval else {
        let stale: Option<String> = tx
            .query_row(
                "SELECT report_hash FROM phase_approvals WHERE bot = CAST(?1 AS TEXT) AND phase = ?2 AND used_ts IS NULL \
                 ORDER BY approval_id DESC LIMIT 1",
                params![report.bot, report.phase],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err(path, e))?;
        let help = match stale {
            Some(h) => format!(
                "the approval on record is for report {h}, the gate report is now {}: approve the current one",
                report.hash
            ),
            None => format!(
                "a person approves with `dsl approve {} --by NAME --phrase \"{}\"` (or `--approval-file`)",
                report.phase,
                report.approval_phrase.as_deref().unwrap_or("")
            ),
        };
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("promotion refused: nobody approved this gate report of `{}`", report.phase),
        )
        .help(help));
    };
    let ts = now();
    tx.execute("UPDATE phase_approvals SET used_ts = ?1 WHERE approval_id = ?2", params![ts, approval_id])
        .map_err(|e| db_err(path, e))?;
    let change = PhaseChange {
        kind: "promotion",
        from: report.phase.clone(),
        to: next.clone(),
        actor: by,
        reason: report.approval_phrase.clone().unwrap_or_default(),
    };
    write_change(&tx, &report.bot, ts, &change, report).map_err(|e| db_err(path, e))?;
    tx.commit().map_err(|e| db_err(path, e))?;
    Ok(change)
}

fn write_change(c: &Connection, bot: &str, ts: i64, ch: &PhaseChange, report: &GateReport) -> rusqlite::Result<()> {
    if ch.from != ch.to {
        c.execute(
            "INSERT INTO phase_state (bot, phase, since_ts, reason) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(bot) DO UPDATE SET phase = ?2, since_ts = ?3, reason = ?4",
            params![bot, ch.to, ts, format!("{}: {}", ch.kind, ch.reason)],
        )?;
    }
    let last_run_id: Option<i64> = if crate::runtime::journal::table_exists(c, "runs")? {
        c.query_row("SELECT MAX(run_id) FROM runs", [], |r| r.get(0))?
    } else {
        None
    };
    c.execute(
        "INSERT INTO phase_log (bot, ts, kind, from_phase, to_phase, actor, reason, report, report_hash, \
         bundle_revision, last_run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            bot,
            ts,
            ch.kind,
            ch.from,
            ch.to,
            ch.actor,
            ch.reason,
            serde_json::to_string(report).unwrap_or_default(),
            report.hash,
            report.bundle_revision,
            last_run_id
        ],
    )?;
    Ok(())
}

/// Applies the active phase's demotion rules that fire, at time `ts` (UTC seconds; bar time in
/// a running bot): `pause` halts the bot (reason `phase_pause`) until `dsl resume`; `demote`
/// moves it back to the phase whose `next` is the active one (if any) and halts it (reason
/// `phase_demotion`), since the earlier phase's mode and limits apply from the next start.
/// A bot already halted for that reason is left as it is. Returns what changed.
///
/// `running`: called by the running bot, which halts itself (its engine records the change).
/// Otherwise (after a backtest or stress run) the halt is a request to the bot: applied to its
/// state at once when no bot runs, and by the running bot at its next bar otherwise.
///
/// # Errors
/// When the journal cannot be read or written.
pub fn apply_demotions(path: &Path, bundle: &Bundle, ts: i64, running: bool) -> Result<Vec<PhaseChange>, Diagnostic> {
    if !has_demotions(bundle) {
        return Ok(Vec::new());
    }
    let conn = if path.exists() { Some(crate::runtime::journal::open_read(path)?) } else { None };
    demotions(conn.as_ref(), None, None, path, bundle, ts, running)
}

/// The bundle names a bot and some phase of it has demotion rules.
fn has_demotions(bundle: &Bundle) -> bool {
    bundle.bot.is_some() && bundle.phases.iter().any(|p| !p.demotion.is_empty())
}

/// A running bot's daily check of its active phase's demotion rules ([`apply_demotions`] with
/// `running`), on one read connection to the journal kept for the whole run: opening the
/// journal parses its schema, which cost more than the check itself when done every day.
pub struct DemotionWatch {
    path: std::path::PathBuf,
    conn: Option<Connection>,
}

impl DemotionWatch {
    /// A watch over the journal at `path` (opened at the first check that needs it).
    pub fn new(path: &Path) -> Self {
        DemotionWatch { path: path.to_path_buf(), conn: None }
    }

    /// Applies `bundle`'s active phase's demotion rules that fire at bar time `ts` (UTC
    /// seconds); returns what changed.
    ///
    /// # Errors
    /// When the journal cannot be read or written.
    /// `own`: the running bot's own evidence ([`crate::runtime::journal::run_evidence`]), read instead of the
    /// journal for its own run; `state`: its trading state now (a pause that already halted
    /// it is not repeated).
    pub fn check(
        &mut self,
        bundle: &Bundle,
        ts: i64,
        own: Option<&crate::runtime::journal::run_evidence::RunEvidence>,
        state: &crate::engine::trading_state::TradingStatus,
    ) -> Result<Vec<PhaseChange>, Diagnostic> {
        if !has_demotions(bundle) {
            return Ok(Vec::new());
        }
        if self.conn.is_none() && self.path.exists() {
            let conn = crate::runtime::journal::open_read(&self.path)?;
            // Every statement of the check stays prepared for the run (rusqlite keeps 16 by
            // default, fewer than the check uses, and re-preparing them cost more than running
            // them).
            conn.set_prepared_statement_cache_capacity(64);
            self.conn = Some(conn);
        }
        // One read transaction for the check's queries: one snapshot of the journal, one lock
        // taken instead of one per query (ended, as a rollback, when `read` drops).
        let read = match &self.conn {
            Some(c) => Some(c.unchecked_transaction().map_err(|e| db_err(&self.path, e))?),
            None => None,
        };
        demotions(read.as_deref(), own, Some(state), &self.path, bundle, ts, true)
    }
}

fn demotions(
    conn: Option<&Connection>,
    own: Option<&crate::runtime::journal::run_evidence::RunEvidence>,
    bot_state: Option<&crate::engine::trading_state::TradingStatus>,
    path: &Path,
    bundle: &Bundle,
    ts: i64,
    running: bool,
) -> Result<Vec<PhaseChange>, Diagnostic> {
    let Some(bot) = bundle.bot.as_ref().map(|b| b.name.value.clone()) else { return Ok(Vec::new()) };
    let phase = match conn {
        Some(c) => active_phase_on(c, path, bundle)?,
        None => active_phase(path, bundle)?,
    };
    let Some(phase) = phase else { return Ok(Vec::new()) };
    if !bundle.phases.iter().any(|p| p.name.value == phase && !p.demotion.is_empty()) {
        return Ok(Vec::new());
    }
    let report = crate::runtime::phases::gates::report_on(conn, own, path, &bot, bundle, &phase, false)?;
    let Some(fired) = report.demotion.iter().find(|d| d.holds) else { return Ok(Vec::new()) };
    let action = fired.action.unwrap_or(DemotionAction::Pause);
    let previous =
        bundle.phases.iter().find(|p| p.next.as_ref().is_some_and(|n| n.value == phase)).map(|p| p.name.value.clone());
    let (kind, to, reason) = match (action, previous) {
        (DemotionAction::Demote, Some(prev)) => ("demotion", prev, "phase_demotion"),
        _ => ("pause", phase.clone(), "phase_pause"),
    };
    // The running bot's own state is current; the control records may lag its journal writer.
    let already = match bot_state {
        Some(s) => s.mode == TradingState::Halted && s.reason == reason,
        None => {
            let state = ControlStore::open(path, &bot)?.state()?;
            state.mode == TradingState::Halted && state.reason == reason
        }
    };
    if already && kind == "pause" {
        return Ok(Vec::new());
    }
    let change = PhaseChange {
        kind,
        from: phase.clone(),
        to: to.clone(),
        actor: format!("{phase}/{}", fired.id),
        reason: fired.message.clone(),
    };
    let mut conn = open(path)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_err(path, e))?;
    write_change(&tx, &bot, ts, &change, &report).map_err(|e| db_err(path, e))?;
    tx.commit().map_err(|e| db_err(path, e))?;
    if !running {
        let message = format!(
            "{}: {} ({kind} from `{phase}`{})",
            change.actor,
            fired.message,
            if kind == "demotion" { format!(" to `{to}`") } else { String::new() }
        );
        // Applied to the bot's state now when no bot runs; a running bot applies it itself.
        let free = match crate::runtime::journal::lease::probe(path, &bot, "dsl phase demotion")? {
            crate::runtime::journal::lease::Probe::Free(lease) => Some(lease),
            crate::runtime::journal::lease::Probe::Held(_) => None,
        };
        ControlStore::open(path, &bot)?.request(true, reason, &message, now(), free.is_some())?;
    }
    Ok(vec![change])
}

/// One row of the phase log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// When (UTC seconds).
    pub ts: i64,
    /// `promotion`, `demotion` or `pause`.
    pub kind: String,
    /// From which phase.
    pub from: String,
    /// To which phase.
    pub to: String,
    /// Who, or which rule.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The gate report it was based on.
    pub report_hash: String,
}

/// The bot's phase log, oldest first.
///
/// # Errors
/// When the journal cannot be read.
pub fn log(path: &Path, bot: &str) -> Result<Vec<LogEntry>, Diagnostic> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = crate::runtime::journal::open_read(path)?;
    if !crate::runtime::journal::table_exists(&conn, "phase_log").map_err(|e| db_err(path, e))? {
        return Ok(Vec::new());
    }
    let mut st = conn
        .prepare("SELECT ts, kind, from_phase, to_phase, actor, reason, report_hash FROM phase_log WHERE bot = CAST(?1 AS TEXT) ORDER BY log_id")
        .map_err(|e| db_err(path, e))?;
    let rows = st
        .query_map([bot], |r| {
            Ok(LogEntry {
                ts: r.get(0)?,
                kind: r.get(1)?,
                from: r.get(2)?,
                to: r.get(3)?,
                actor: r.get(4)?,
                reason: r.get(5)?,
                report_hash: r.get(6)?,
            })
        })
        .map_err(|e| db_err(path, e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| db_err(path, e))
}
