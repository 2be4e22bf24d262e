//! A bot's control records in its journal database: the sticky trading state and the
//! approval queue.
//!
//! Tables (created on first use, next to the journal's; defined with their migrations in
//! [`super::schema`]):
//!
//! | table | one row per |
//! | --- | --- |
//! | `bot_state` | bot: its current mode (`ACTIVE`, `REDUCING`, `HALTED`), since when (UTC seconds), reason code, message and reset (`manual`, `next_day`) |
//! | `bot_state_log` | change of a bot's state, with its source (`cli` for `dsl halt`/`dsl resume`, `engine` for a rule) |
//! | `approvals` | order parked by a `require_approval` rule: the order, the rule, the expiry, and the decision (`pending`, `approved`, `rejected`, `expired`) with its time and note |
//! | `control_requests` | halt or resume asked of a bot (`dsl halt`, `dsl resume`, a phase's demotion rule): reason, message, when asked, and when applied (`pending` until a bot applies it: the run and the bar time) |
//!
//! **The state belongs to the bot, not to a run.** A bot starts every run, `--fresh` or not,
//! in the state `bot_state` holds, so a HALTED or REDUCING bot stays so across runs until a
//! person resumes it (a `reset: next_day` state resets by its own rule). While a bot runs it
//! is the only writer of `bot_state`: every change it makes goes there in the transaction of
//! the timestamp that caused it. A person's halt or resume is a **request**: each is applied
//! exactly once, at one bar, by the running bot (or, when no bot runs, to `bot_state` at once
//! and to an unfinished run at its first new bar), and journaled there.

use crate::runtime::journal::db_err;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::policy::Reset;
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::approvals::{ApprovalDesk, ApprovalOutcome, ApprovalRequest};
use crate::engine::orders::ClientOrderId;
use crate::engine::trading_state::{StateChange, TradingState, TradingStatus};

/// A halt or resume asked of a bot, waiting for (or applied by) a running bot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControlRequest {
    /// Its number (applied in this order).
    pub request_id: i64,
    /// `true` for a halt, `false` for a resume.
    pub halt: bool,
    /// Reason code: `manual_halt` and `resume` (a person), `phase_pause` and
    /// `phase_demotion` (a phase's demotion rule).
    pub reason: String,
    /// Why, in words.
    pub message: String,
}

/// Marks request `request_id` applied by run `run_id` at bar time `ts`, on `conn` (a running
/// bot's journal, in the transaction of that bar).
///
/// # Errors
/// SQLite's.
pub fn mark_applied(conn: &Connection, request_id: i64, run_id: i64, ts: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE control_requests SET status = 'applied', run_id = ?2, applied_ts = ?3 WHERE request_id = ?1",
    )?
    .execute(params![request_id, run_id, ts])
    .map(|_| ())
}

/// One row of the approval queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApprovalRow {
    /// Short id people type (`dsl approvals approve 3`).
    pub request_id: i64,
    /// The parked order's id.
    pub client_order_id: String,
    /// When it was parked (UTC seconds).
    pub created_ts: i64,
    /// When it is denied if nobody decides (UTC seconds).
    pub expires_ts: i64,
    /// Strategy name.
    pub strategy: String,
    /// Symbol.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `entry` or `exit`.
    pub intent: String,
    /// Estimated units.
    pub quantity: f64,
    /// Estimated notional (currency).
    pub notional: f64,
    /// `policy/rule_id` that asked for approval.
    pub rule: String,
    /// The rule's message.
    pub message: String,
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: String,
    /// When it was decided (UTC seconds).
    pub decided_ts: Option<i64>,
    /// The approver's note.
    pub note: Option<String>,
}

/// Writes a change of `bot`'s state (its row and its log row) on `conn`, inside whatever
/// transaction the caller holds (a running bot's journal commits it with the timestamp that
/// caused it).
///
/// # Errors
/// The database's.
pub fn write_state(conn: &Connection, bot: &str, c: &StateChange, source: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO bot_state (bot, mode, since_ts, reason, message, reset) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(bot) DO UPDATE SET mode = ?2, since_ts = ?3, reason = ?4, message = ?5, reset = ?6",
    )?
    .execute(params![bot, c.to.as_str(), c.ts, c.reason, c.message, c.reset.as_str()])?;
    conn.prepare_cached(
        "INSERT INTO bot_state_log (bot, ts, from_state, to_state, reason, message, reset, source) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![bot, c.ts, c.from.as_str(), c.to.as_str(), c.reason, c.message, c.reset.as_str(), source])?;
    Ok(())
}

/// The trading state of `bot` in the journal open on `conn` (at `path`, for messages): ACTIVE
/// when none was ever recorded (or the journal has no control records yet).
///
/// # Errors
/// When the database cannot be read or holds a mode or reset it does not know.
pub fn read_state(conn: &Connection, path: &Path, bot: &str) -> Result<TradingStatus, Diagnostic> {
    if !crate::runtime::journal::table_exists(conn, "bot_state").map_err(|e| db_err(path, e))? {
        return Ok(TradingStatus::default());
    }
    let row = conn
        .query_row(
            "SELECT mode, since_ts, reason, message, reset FROM bot_state WHERE bot = CAST(?1 AS TEXT)",
            params![bot],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )
        .optional()
        .map_err(|e| db_err(path, e))?;
    let Some((mode, since, reason, message, reset)) = row else { return Ok(TradingStatus::default()) };
    let corrupt = |what: &str, v: &str| {
        Diagnostic::error(codes::IO, format!("journal `{}`: bot `{bot}` has an unknown {what} `{v}`", path.display()))
    };
    Ok(TradingStatus {
        mode: TradingState::parse(&mode).ok_or_else(|| corrupt("mode", &mode))?,
        since,
        reason,
        message,
        reset: Reset::parse(&reset).ok_or_else(|| corrupt("reset", &reset))?,
    })
}

/// The approval queue of `bot` in the journal open on `conn` (at `path`, for messages):
/// pending requests only, or every request, oldest first; none when the journal has no
/// queue yet.
///
/// # Errors
/// When the database cannot be read.
pub fn read_approvals(conn: &Connection, path: &Path, bot: &str, all: bool) -> Result<Vec<ApprovalRow>, Diagnostic> {
    if !crate::runtime::journal::table_exists(conn, "approvals").map_err(|e| db_err(path, e))? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT request_id, client_order_id, created_ts, expires_ts, strategy, symbol, side, intent, quantity, \
             notional, rule, message, status, decided_ts, note FROM approvals WHERE bot = CAST(?1 AS TEXT) {} ORDER BY request_id",
        if all { "" } else { "AND status = 'pending'" }
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| db_err(path, e))?;
    let rows = stmt
        .query_map(params![bot], |r| {
            Ok(ApprovalRow {
                request_id: r.get(0)?,
                client_order_id: r.get(1)?,
                created_ts: r.get(2)?,
                expires_ts: r.get(3)?,
                strategy: r.get(4)?,
                symbol: r.get(5)?,
                side: r.get(6)?,
                intent: r.get(7)?,
                quantity: r.get(8)?,
                notional: r.get(9)?,
                rule: r.get(10)?,
                message: r.get(11)?,
                status: r.get(12)?,
                decided_ts: r.get(13)?,
                note: r.get(14)?,
            })
        })
        .map_err(|e| db_err(path, e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| db_err(path, e))
}

/// A bot's control records in a journal database.
pub struct ControlStore {
    conn: Connection,
    path: PathBuf,
    bot: String,
    /// As an approval desk: bar times up to this one are a restart's replay (see
    /// [`ControlStore::replaying_until`]).
    replay_until: i64,
    /// Decisions delivered by this process (a decision delivered after the last checkpoint
    /// before a crash is delivered again once, at the first new bar).
    delivered_here: std::collections::HashSet<String>,
}

impl ControlStore {
    /// Opens (creating if needed) the control tables of bot `bot` in the database at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or the tables cannot be created.
    pub fn open(path: &Path, bot: &str) -> Result<ControlStore, Diagnostic> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Diagnostic::error(codes::IO, format!("cannot create `{}`: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| db_err(path, e))?;
        conn.execute_batch(super::schema::CONTROL).map_err(|e| db_err(path, e))?;
        super::schema::migrate_control(&conn).map_err(|e| db_err(path, e))?;
        Ok(ControlStore {
            conn,
            path: path.to_path_buf(),
            bot: bot.to_string(),
            replay_until: i64::MIN,
            delivered_here: Default::default(),
        })
    }

    /// As an approval desk of a restarted bot: bar times up to `ts` (its last checkpoint) are
    /// replayed. There the desk hands out the decisions at the bar times they were delivered
    /// before, parks nothing new (the requests exist) and expires nothing (that was recorded),
    /// so the replay decides exactly as the run did.
    pub fn replaying_until(&mut self, ts: Option<i64>) {
        self.replay_until = ts.unwrap_or(i64::MIN);
    }

    /// The bot's clock: the last bar time its unfinished paper run committed, if it has one.
    /// Approval windows are measured on it (a replay runs on historical bar times).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn bot_clock(&self) -> Result<Option<i64>, Diagnostic> {
        let has_runs = crate::runtime::journal::table_exists(&self.conn, "run_status").map_err(|e| self.err(e))?;
        if !has_runs {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT s.ts FROM runs r JOIN run_status s ON s.run_id = r.run_id \
                 WHERE r.bot = CAST(?1 AS TEXT) AND r.status = 'running' ORDER BY r.run_id DESC LIMIT 1",
                params![self.bot],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn err(&self, e: rusqlite::Error) -> Diagnostic {
        db_err(&self.path, e)
    }

    /// The bot's stored trading state (ACTIVE when none was ever recorded).
    ///
    /// # Errors
    /// When the database cannot be read or holds a mode or reset it does not know.
    pub fn state(&self) -> Result<TradingStatus, Diagnostic> {
        read_state(&self.conn, &self.path, &self.bot)
    }

    /// Records a change of the bot's state (`source`: `cli` or `engine`), state row and log row
    /// in one transaction.
    ///
    /// # Errors
    /// When the database cannot be written; nothing is changed then.
    pub fn record(&mut self, c: &StateChange, source: &str) -> Result<(), Diagnostic> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&path, e))?;
        write_state(&tx, &self.bot, c, source).map_err(|e| db_err(&path, e))?;
        tx.commit().map_err(|e| db_err(&path, e))
    }

    /// Records a halt or resume for the bot (wall-clock time `ts`). With `apply_now` (no bot
    /// runs: the caller holds the bot's lease) the bot's state changes at once too, in the
    /// same transaction; either way the request stays `pending` for an unfinished run, which
    /// applies it at its next bar. Returns the request and the change made now, if any.
    ///
    /// # Errors
    /// When the database cannot be written; nothing is changed then.
    pub fn request(
        &mut self,
        halt: bool,
        reason: &str,
        message: &str,
        ts: i64,
        apply_now: bool,
    ) -> Result<(ControlRequest, Option<StateChange>), Diagnostic> {
        let mut state = if apply_now { self.state()? } else { TradingStatus::default() };
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&path, e))?;
        tx.execute(
            "INSERT INTO control_requests (bot, action, reason, message, requested_ts) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![self.bot, if halt { "halt" } else { "resume" }, reason, message, ts],
        )
        .map_err(|e| db_err(&path, e))?;
        let request = ControlRequest {
            request_id: tx.last_insert_rowid(),
            halt,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let change = if !apply_now {
            None
        } else if !halt {
            state.resume(ts, message)
        } else if reason == "manual_halt" {
            state.halt(ts, message)
        } else {
            state.escalate(TradingState::Halted, ts, reason, message, Reset::Manual)
        };
        if let Some(c) = &change {
            write_state(&tx, &self.bot, c, "cli").map_err(|e| db_err(&path, e))?;
        }
        tx.commit().map_err(|e| db_err(&path, e))?;
        Ok((request, change))
    }

    /// The bot's requests not yet applied with a number above `after`, oldest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn pending_requests(&self, after: i64) -> Result<Vec<ControlRequest>, Diagnostic> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT request_id, action, reason, message FROM control_requests \
                 WHERE bot = CAST(?1 AS TEXT) AND status = 'pending' AND request_id > ?2 ORDER BY request_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![self.bot, after], |r| {
                Ok(ControlRequest {
                    request_id: r.get(0)?,
                    halt: r.get::<_, String>(1)? == "halt",
                    reason: r.get(2)?,
                    message: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The approval queue: pending requests only, or every request, oldest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn approvals(&self, all: bool) -> Result<Vec<ApprovalRow>, Diagnostic> {
        read_approvals(&self.conn, &self.path, &self.bot, all)
    }

    /// Approves or rejects pending request `id` (its number or its `client_order_id`) at `ts`
    /// (UTC seconds, recorded as the decision's time). The request has expired when the bot's
    /// clock ([`ControlStore::bot_clock`]; `ts` when no run is open) reached its expiry.
    ///
    /// # Errors
    /// When there is no such request, it is no longer pending (decided or expired), or the
    /// database cannot be written.
    pub fn decide(&mut self, id: &str, approve: bool, note: &str, ts: i64) -> Result<ApprovalRow, Diagnostic> {
        let all = self.approvals(true)?;
        let Some(row) = all.iter().find(|r| r.request_id.to_string() == id || r.client_order_id == id) else {
            let pending: Vec<String> =
                all.iter().filter(|r| r.status == "pending").map(|r| r.request_id.to_string()).collect();
            let help = if pending.is_empty() {
                "the queue has no pending request".to_string()
            } else {
                format!("pending requests: {}", pending.join(", "))
            };
            return Err(Diagnostic::error(
                codes::JOURNAL_CONFLICT,
                format!("no approval request `{id}` for bot `{}`", self.bot),
            )
            .help(help));
        };
        if row.status != "pending" {
            return Err(Diagnostic::error(
                codes::JOURNAL_CONFLICT,
                format!("approval request {} is already {}", row.request_id, row.status),
            ));
        }
        // The window is measured on the bot's clock (its last committed bar) when it runs.
        if self.bot_clock()?.unwrap_or(ts) >= row.expires_ts {
            return Err(Diagnostic::error(
                codes::JOURNAL_CONFLICT,
                format!(
                    "approval request {} expired at {}; it is denied",
                    row.request_id,
                    crate::engine::market::format_utc(row.expires_ts)
                ),
            ));
        }
        let status = if approve { "approved" } else { "rejected" };
        let n = self
            .conn
            .execute(
                "UPDATE approvals SET status = ?1, decided_ts = ?2, note = ?3 WHERE request_id = ?4 AND status = 'pending'",
                params![status, ts, note, row.request_id],
            )
            .map_err(|e| self.err(e))?;
        if n != 1 {
            return Err(Diagnostic::error(
                codes::JOURNAL_CONFLICT,
                format!("approval request {} changed meanwhile", row.request_id),
            ));
        }
        Ok(ApprovalRow { status: status.into(), decided_ts: Some(ts), note: Some(note.into()), ..row.clone() })
    }
}

impl ApprovalDesk for ControlStore {
    fn park(&mut self, q: &ApprovalRequest) -> bool {
        // A request parked before a restart is the same request (same `client_order_id`).
        self.conn
            .execute(
                "INSERT INTO approvals (bot, client_order_id, created_ts, expires_ts, strategy, symbol, side, intent, \
                 quantity, notional, rule, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT(client_order_id) DO NOTHING",
                params![
                    self.bot,
                    q.client_order_id.as_str(),
                    q.created_ts,
                    q.expires_ts,
                    q.strategy,
                    q.symbol,
                    q.side,
                    q.intent,
                    q.quantity,
                    q.notional,
                    q.rule,
                    q.message
                ],
            )
            .is_ok()
    }

    fn decisions(&mut self, ts: i64) -> Vec<(ClientOrderId, ApprovalOutcome)> {
        let replaying = ts <= self.replay_until;
        // Read first, without a write lock: this runs at every bar while an order waits, and
        // the journal's writer may hold the lock until its commit window ends. A decision,
        // once made, does not change, so the rows read stay true for the write below.
        let rows: Vec<(String, String, Option<String>)> = {
            // Replaying: what was delivered at this bar time. Live: what was never delivered,
            // or delivered after the last checkpoint by a process that died before committing.
            let sql = if replaying {
                "SELECT client_order_id, status, note FROM approvals \
                 WHERE bot = CAST(?1 AS TEXT) AND status IN ('approved', 'rejected') AND delivered_ts = ?2"
            } else {
                "SELECT client_order_id, status, note FROM approvals \
                 WHERE bot = CAST(?1 AS TEXT) AND status IN ('approved', 'rejected') AND (delivered = 0 OR delivered_ts > ?3)"
            };
            let Ok(mut stmt) = self.conn.prepare_cached(sql) else {
                return Vec::new();
            };
            // Without a restart nothing delivered is delivered again.
            let after = if self.replay_until == i64::MIN { i64::MAX } else { self.replay_until };
            let args = if replaying { params![self.bot, ts] } else { params![self.bot, ts, after] };
            let Ok(rows) = stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))) else {
                return Vec::new();
            };
            rows.filter_map(Result::ok)
                .filter(|(id, _, _): &(String, _, _)| !self.delivered_here.contains(id))
                .collect()
        };
        if rows.is_empty() {
            return Vec::new();
        }
        let Ok(tx) = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (id, status, note) in rows {
            if !replaying {
                let set = "UPDATE approvals SET delivered = 1, delivered_ts = ?2 WHERE client_order_id = ?1";
                if tx.execute(set, params![id, ts]).is_err() {
                    return Vec::new();
                }
                self.delivered_here.insert(id.clone());
            }
            let Some(cid) = ClientOrderId::parse(&id) else { continue };
            let note = note.unwrap_or_default();
            out.push((
                cid,
                if status == "approved" {
                    ApprovalOutcome::Approved { note }
                } else {
                    ApprovalOutcome::Rejected { note }
                },
            ));
        }
        if tx.commit().is_err() {
            return Vec::new();
        }
        out
    }

    fn expire(&mut self, client_order_id: ClientOrderId, ts: i64) {
        if ts <= self.replay_until {
            return; // recorded before the restart
        }
        // Best effort: the engine has already refused the order; a failed write leaves the
        // row pending past its expiry, which `decide` refuses too.
        let _ = self.conn.execute(
            "UPDATE approvals SET status = 'expired', decided_ts = ?1, delivered = 1 \
             WHERE client_order_id = ?2 AND status = 'pending'",
            params![ts, client_order_id.as_str()],
        );
    }
}

/// An [`EventSink`](crate::engine::events::EventSink) in front of another that also records
/// every change of the trading state in the bot's control records, so that a restarted bot
/// continues in the same state ([`ControlStore::state`]).
///
/// A failed write is kept ([`StateRecorder::error`]); the driver must stop trading then (a
/// state that cannot be made durable must not be relied on).
pub struct StateRecorder<'a> {
    /// The sink every event goes to.
    pub inner: &'a mut dyn crate::engine::events::EventSink,
    /// Where state changes are recorded.
    pub store: &'a mut ControlStore,
    /// The first failed write, if any.
    pub error: Option<Diagnostic>,
}

impl StateRecorder<'_> {
    /// The first write that failed.
    pub fn error(&self) -> Option<&Diagnostic> {
        self.error.as_ref()
    }
}

impl crate::engine::events::EventSink for StateRecorder<'_> {
    fn order(
        &mut self,
        order: &crate::engine::orders::Order,
        strategy: &str,
        symbol: &str,
        status: crate::engine::events::OrderStatus,
        reason: &str,
    ) {
        self.inner.order(order, strategy, symbol, status, reason);
    }
    fn order_status(&mut self, id: ClientOrderId, status: crate::engine::events::OrderStatus, ts: i64, reason: &str) {
        self.inner.order_status(id, status, ts, reason);
    }
    fn fill(&mut self, fill: &crate::engine::orders::Fill, order: &crate::engine::orders::Order, symbol: &str) {
        self.inner.fill(fill, order, symbol);
    }
    fn trade(&mut self, trade: &crate::engine::orders::Trade) {
        self.inner.trade(trade);
    }
    fn decision(&mut self, d: &crate::engine::events::Decision<'_>) {
        self.inner.decision(d);
    }
    fn note(&mut self, n: &crate::engine::events::Note<'_>) {
        self.inner.note(n);
    }
    fn state_change(&mut self, c: &StateChange) {
        self.inner.state_change(c);
        if let Err(e) = self.store.record(c, "engine")
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }
}
