//! The SQLite journal: every run, order, fill, round-trip trade and policy decision.
//!
//! Tables (`schema_version` 1). Times are `INTEGER` UTC seconds (`*_ts` columns); the views
//! `v_runs`, `v_orders`, `v_fills`, `v_trades`, `v_policy_decisions`, `v_events` and
//! `v_state_changes` show the same rows with
//! RFC 3339 text times, for people querying with `sqlite3`.
//!
//! | table | one row per |
//! | --- | --- |
//! | `runs` | run: kind, bot, bundle revision, settings, symbols, period, status, metrics (JSON) |
//! | `orders` | order: deterministic `client_order_id`, strategy, symbol, side, intent, type, stop/limit price, `time_in_force`, quantity, reference price, notional, reason, final status, bundle revision |
//! | `fills` | fill: time, quantity, price, commission, slippage cost |
//! | `trades` | round trip: entry/exit time and price, quantity, pnl, pnl % (percent points), fees, exit reason, holding bars |
//! | `policy_decisions` | policy rule applied to an order: rule id, fired, action, message, the values it saw (JSON), bundle revision |
//! | `events` | anything else worth knowing: a rhai script that failed (`script_error`) and what failed closed, an entry an entry filter vetoed (`entry_filtered`) |
//! | `state_changes` | change of the trading state: time, from, to (`ACTIVE`, `REDUCING`, `HALTED`), reason code (`policy/rule_id`, `resume`, `reset:next_day`), message |
//! | `run_status` | running run: the account at its last checkpoint, and how many checkpoints it committed |
//! | `daily_equity` | UTC day (days since 1970-01-01) of a running run: first and last checkpoint time, equity at both, cash at the last |
//! | `heartbeat` | running run: the wall-clock time of its last sign of life (each checkpoint, and every 30 s while a live bot waits for bars), its last bar, trading state, broker health, bar length and whether it is on a live feed |
//!
//! A backtest writes its run inside one transaction: a run that fails leaves no trace, and a
//! finished run is complete. Rows are written by a background thread so the engine does not
//! wait for SQLite; an order row is written once, at its final state.

pub mod broker_log;
pub mod control;
pub mod divergence_log;
pub mod error;
pub mod html;
pub mod lease;
pub mod reload_log;
pub mod report;
pub mod run_evidence;
pub mod settings;
pub mod sweep_log;
pub mod switchover_log;
pub mod trading_log;
pub mod watchdog_log;

pub use error::{JournalError, db_err, journal_error};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};

use crate::diagnostics::{Diagnostic, codes};
use crate::engine::orders::ClientOrderId;

mod rows;
pub mod schema;
mod sink;
#[cfg(test)]
mod tests;
mod writer;

use rows::{BATCH, OrderRow, Row};
pub use rows::{Checkpoint, ManualChange, Resumed, RunInfo};
use schema::open;
pub use schema::{check_integrity, open_read, open_read_checked, table_exists};
use writer::{Writer, WriterResult};

/// An open journal with a run in progress. Implements [`crate::engine::events::EventSink`].
///
/// Nothing is visible to readers before [`Journal::finish`] commits the run's transaction.
pub struct Journal {
    path: PathBuf,
    run_id: i64,
    /// When the run started (`runs.started_ts`, UTC seconds).
    started_ts: i64,
    trade_no: i64,
    order_no: i64,
    working: HashMap<ClientOrderId, OrderRow>,
    names: HashMap<String, Arc<str>>,
    batch: Vec<Row>,
    tx: Option<SyncSender<Vec<Row>>>,
    writer: Option<JoinHandle<WriterResult>>,
    /// While true, rows are not written (they already were, before a restart) but the
    /// bookkeeping (order and trade numbers, working orders) goes on.
    muted: bool,
    /// Also record the engine's state changes in the bot's control records.
    control: bool,
    /// Bundle revision of the decisions from now on.
    revision: Arc<str>,
    /// The journal file's (device, inode) when it was opened.
    identity: Option<(u64, u64)>,
    /// The writer's first failure (it stops writing then).
    failure: Arc<std::sync::Mutex<Option<String>>>,
    /// The run's own evidence for its demotion rules, kept as rows are queued (a running bot;
    /// see [`Journal::keep_evidence`]).
    evidence: Option<crate::runtime::journal::run_evidence::RunEvidence>,
    /// Another sink that sees every event not muted (a running bot's metrics).
    observer: Option<Box<dyn crate::engine::events::EventSink + Send>>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and starts a run in a transaction.
    ///
    /// # Errors
    /// When the file cannot be opened or the schema cannot be created.
    pub fn begin(path: &Path, info: &RunInfo) -> Result<Journal, Diagnostic> {
        let conn = open(path)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| db_err(path, e))?;
        let started_ts = now();
        conn.execute(
            "INSERT INTO runs (kind, bot, bundle_revision, started_ts, status, settings, symbols) \
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
            params![
                info.kind,
                info.bot,
                info.bundle_revision,
                started_ts,
                info.settings.to_string(),
                serde_json::to_string(&info.symbols).unwrap_or_default()
            ],
        )
        .map_err(|e| db_err(path, e))?;
        let run_id = conn.last_insert_rowid();
        let mut j = Journal::start(path, conn, run_id, &info.bundle_revision, info.bot.clone(), true)?;
        j.started_ts = started_ts;
        Ok(j)
    }

    /// Reopens the unfinished run of `kind` for `bot` (status `running`), if there is one,
    /// for a restarted bot: the journal (muted: see [`Journal::set_muted`]) and what the
    /// restart needs to replay up to the last checkpoint ([`Resumed`]).
    ///
    /// # Errors
    /// When the file cannot be opened or read.
    pub fn resume(path: &Path, kind: &str, bot: &str) -> Result<Option<(Journal, Resumed)>, Diagnostic> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = open(path)?;
        let found: Option<(i64, String, Option<i64>, i64)> = conn
            .query_row(
                "SELECT run_id, bundle_revision, last_bar_ts, started_ts FROM runs WHERE kind = ?1 AND bot = ?2 \
                 AND status = 'running' ORDER BY run_id DESC LIMIT 1",
                params![kind, bot],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(|e| db_err(path, e))?;
        let Some((run_id, revision, last, started_ts)) = found else { return Ok(None) };
        let manual = {
            let mut st = conn
                .prepare(
                    "SELECT ts, from_state, to_state, reason, message, reset FROM state_changes \
                     WHERE run_id = ?1 AND reason IN ('manual_halt', 'resume', 'broker_unavailable', 'reconcile_mismatch', \
                     'broker_anomaly', 'demotion_unchecked', 'phase_pause', 'phase_demotion') \
                     AND ts <= ?2 ORDER BY rowid",
                )
                .map_err(|e| db_err(path, e))?;
            let rows = st
                .query_map(params![run_id, last.unwrap_or(i64::MIN)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?))
                })
                .map_err(|e| db_err(path, e))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(|e| db_err(path, e))?
        };
        let in_force =
            crate::runtime::journal::reload_log::in_force(&conn, run_id, &revision).map_err(|e| db_err(path, e))?;
        // No transaction until the first row after the replay: the bot's control records
        // (approval requests) are written meanwhile.
        // Numbering restarts at 0: the muted replay up to the checkpoint counts again.
        let mut j = Journal::start(path, conn, run_id, &revision, bot.to_string(), false)?;
        j.started_ts = started_ts;
        j.muted = true;
        let manual = manual
            .into_iter()
            .map(|(ts, to, reason, message)| ManualChange { ts, halt: to == "HALTED", reason, message })
            .collect();
        Ok(Some((j, Resumed { run_id, revision, in_force, last_checkpoint: last, manual })))
    }

    /// `in_tx`: the caller opened the first transaction.
    fn start(
        path: &Path,
        conn: Connection,
        run_id: i64,
        revision: &str,
        bot: String,
        in_tx: bool,
    ) -> Result<Journal, Diagnostic> {
        let (tx, rx) = sync_channel::<Vec<Row>>(64);
        let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let (journal_path, failed) = (path.to_path_buf(), failure.clone());
        let writer = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || Writer::new(conn, journal_path, run_id, bot, in_tx, failed).run(&rx))
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot start the journal writer: {e}")))?;
        Ok(Journal {
            identity: crate::runtime::journal::lease::file_identity(path),
            failure,
            path: path.to_path_buf(),
            run_id,
            started_ts: 0,
            trade_no: 0,
            order_no: 0,
            working: HashMap::new(),
            names: HashMap::new(),
            batch: Vec::with_capacity(BATCH),
            tx: Some(tx),
            writer: Some(writer),
            muted: false,
            control: false,
            revision: Arc::from(revision),
            evidence: None,
            observer: None,
        })
    }

    /// The settings (JSON) of `bot`'s unfinished run of `kind`, if there is one: what a
    /// restart must start the same way (a live feed's history window).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn unfinished_settings(
        path: &Path,
        kind: &str,
        bot: &str,
    ) -> Result<Option<settings::RunSettings>, Diagnostic> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = open(path)?;
        let text: Option<String> = conn
            .query_row(
                "SELECT settings FROM runs WHERE kind = ?1 AND bot = ?2 AND status = 'running' \
                 ORDER BY run_id DESC LIMIT 1",
                params![kind, bot],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err(path, e))?;
        Ok(text.and_then(|t| settings::RunSettings::parse(&t)))
    }

    /// Marks the unfinished runs of `kind` for `bot` as `abandoned` (a bot started over with
    /// `--fresh`); their rows stay.
    ///
    /// # Errors
    /// When the database cannot be opened or written.
    pub fn abandon(path: &Path, kind: &str, bot: &str) -> Result<usize, Diagnostic> {
        if !path.exists() {
            return Ok(0);
        }
        let conn = open(path)?;
        conn.execute(
            "UPDATE runs SET status = 'abandoned', finished_ts = ?3 WHERE kind = ?1 AND bot = ?2 AND status = 'running'",
            params![kind, bot, now()],
        )
        .map_err(|e| db_err(path, e))
    }

    /// Records the engine's state changes in the bot's control records too, in the same
    /// transaction as the timestamp that caused them (a running bot).
    pub fn record_control(&mut self, on: bool) {
        self.control = on;
    }

    /// Mutes or unmutes the journal. A restarted bot replays what it had already journaled
    /// (to rebuild its state exactly); muted, those rows are not written twice, while order
    /// and trade numbers and the orders still working are tracked as before.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Keeps the run's own evidence for its demotion rules in memory from now on
    /// ([`crate::runtime::journal::run_evidence`]): what the journal already holds of the run (a resumed run's,
    /// up to its last checkpoint, when `resumed`), then every row as it is queued.
    /// `starting_cash` is the run's (currency); `live`: the run trades a live account.
    ///
    /// # Errors
    /// When the journal cannot be read.
    pub fn keep_evidence(&mut self, starting_cash: f64, live: bool, resumed: bool) -> Result<(), Diagnostic> {
        let mut e = if resumed {
            let conn = open_read(&self.path)?;
            crate::runtime::journal::run_evidence::RunEvidence::load(&conn, self.run_id)
                .map_err(|e| db_err(&self.path, e))?
        } else {
            crate::runtime::journal::run_evidence::RunEvidence::new(self.run_id, starting_cash)
        };
        e.starting_cash = starting_cash;
        e.started_ts = self.started_ts;
        e.live = live;
        self.evidence = Some(e);
        Ok(())
    }

    /// The run's own evidence, when kept ([`Journal::keep_evidence`]).
    pub fn evidence(&self) -> Option<&crate::runtime::journal::run_evidence::RunEvidence> {
        self.evidence.as_ref()
    }

    /// Commits everything written so far together with the account at `c.ts` (the
    /// `run_status` row and the run's last bar time), then opens the next transaction. A run
    /// killed at any point restarts from its last checkpoint ([`Journal::resume`]).
    pub fn checkpoint(&mut self, c: Checkpoint) {
        if self.muted {
            return;
        }
        self.push(Row::Checkpoint(Box::new(c)));
        self.send();
    }

    /// The bundle revision recorded with the decisions (orders, policy decisions) made from
    /// now on: a hot reload swapped in `revision`. Applies while muted too (a restart
    /// replaying the reloads).
    pub fn set_revision(&mut self, revision: &str) {
        self.revision = Arc::from(revision);
    }

    /// Shows every event from now on (not those of a muted replay) to `observer` too, after
    /// the journal queued its row.
    pub fn set_observer(&mut self, observer: Box<dyn crate::engine::events::EventSink + Send>) {
        self.observer = Some(observer);
    }

    /// Commits everything queued so far now (a new paper run commits its start, so that the
    /// bot's control records can be written before its first checkpoint); not while muted.
    pub fn commit(&mut self) {
        self.push(Row::Commit);
        self.send();
    }

    /// Stores the texts of `bundle` (the bundle a run starts with), so that a restart can
    /// rebuild it after a reload replaced the files; dropped while muted.
    pub fn store_bundle(&mut self, bundle: Arc<crate::dsl::bundle::Bundle>) {
        self.exec(move |conn, _| crate::runtime::journal::reload_log::store_texts(conn, &bundle));
    }

    /// Records a reload the bot saw, and the new bundle's texts when one was swapped in
    /// (see [`crate::runtime::journal::reload_log`]); dropped while muted.
    pub fn reload(
        &mut self,
        entry: crate::runtime::journal::reload_log::ReloadEntry,
        swapped_in: Option<Arc<crate::dsl::bundle::Bundle>>,
    ) {
        self.exec(move |conn, run_id| {
            if let Some(b) = &swapped_in {
                crate::runtime::journal::reload_log::store_texts(conn, b)?;
            }
            crate::runtime::journal::reload_log::insert(conn, run_id, &entry)
        });
    }

    /// Queues a write of the caller's own (given the connection and the run id) in the
    /// current transaction; dropped while muted.
    pub fn exec(&mut self, f: impl FnOnce(&Connection, i64) -> rusqlite::Result<()> + Send + 'static) {
        self.push(Row::Exec(Box::new(f)));
    }

    /// Records the bot's heartbeat (committed with the next commit or checkpoint): the wall
    /// clock now, the last bar time, the trading state, the broker's health (`sim`, `ok` or
    /// `failing: ...`), the bars' length (seconds) and whether the bot is on a live feed.
    pub fn heartbeat(&mut self, bar_ts: Option<i64>, state: &str, broker: String, bar_secs: i64, live: bool) {
        let wall = chrono::Utc::now().timestamp();
        let state = state.to_string();
        self.exec(move |conn, run_id| {
            conn.prepare_cached(
                "INSERT INTO heartbeat (run_id, wall_ts, bar_ts, state, broker, bar_secs, live) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(run_id) DO UPDATE SET wall_ts = ?2, \
                 bar_ts = ?3, state = ?4, broker = ?5, bar_secs = ?6, live = ?7",
            )?
            .execute(params![run_id, wall, bar_ts, state, broker, bar_secs, live])
            .map(|_| ())
        });
    }

    /// Waits until everything queued so far is written (and committed, after a
    /// [`Journal::checkpoint`]): the write-ahead point before an order goes to a broker.
    ///
    /// # Errors
    /// The writer's first error, or a writer that stopped.
    pub fn sync(&mut self) -> Result<(), Diagnostic> {
        let (reply, wait) = sync_channel(1);
        self.batch.push(Row::Sync(reply));
        self.send();
        let err = |m: String| Diagnostic::error(codes::IO, format!("journal `{}`: {m}", self.path.display()));
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(err(e)),
            Err(_) => Err(err("the writer thread stopped".into())),
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The writer's first failure, if any: nothing is written after it, and what was not
    /// committed at its last checkpoint is rolled back. A running bot stops trading then.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether the journal file is still the one opened: not deleted, not replaced by another
    /// file (unix; elsewhere, that a file is there).
    pub fn file_unchanged(&self) -> bool {
        match self.identity {
            Some(id) => crate::runtime::journal::lease::file_identity(&self.path) == Some(id),
            None => self.path.exists(),
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn name(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(s.to_string(), a.clone());
        a
    }

    fn push(&mut self, row: Row) {
        if self.muted {
            return;
        }
        if let Some(e) = self.evidence.as_mut() {
            match &row {
                Row::Trade(_, t) => e.trades.push((
                    t.strategy.clone(),
                    crate::engine::gate_metrics::TradeRecord {
                        exit_ts: t.exit_time,
                        pnl: t.pnl,
                        ret: t.pnl_pct / 100.0,
                    },
                )),
                Row::Checkpoint(c) => e.checkpoint(c.ts, c.equity),
                Row::Decision { client_order_id, ts, fired: true, action, .. } => {
                    e.fired.push((*ts, action.clone(), *client_order_id))
                }
                Row::State(c) if c.to == crate::engine::trading_state::TradingState::Halted => e.halts.push(c.ts),
                _ => {}
            }
        }
        self.batch.push(row);
        if self.batch.len() >= BATCH {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        // A fresh batch grows as it fills: a running bot sends a few rows per timestamp, and a
        // full-size buffer for each send cost it more than the rows.
        let rows = std::mem::take(&mut self.batch);
        if let Some(tx) = &self.tx {
            // A send only fails when the writer stopped; `finish` reports why.
            let _ = tx.send(rows);
        }
    }

    /// Commits what was written and closes the journal, leaving the run `running` so that the
    /// bot resumes it when it starts again (a stop by Ctrl-C, or the end of a feed that may
    /// go on).
    ///
    /// # Errors
    /// The first write error, or a commit failure.
    pub fn close(mut self) -> Result<(), Diagnostic> {
        let (conn, err, in_tx) = self.join()?;
        if let Some(e) = err {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(db_err(&self.path, e));
        }
        if in_tx {
            conn.execute_batch("COMMIT").map_err(|e| db_err(&self.path, e))?;
        }
        Ok(())
    }

    /// Flushes the batch and waits for the writer: its connection and first error.
    fn join(&mut self) -> Result<WriterResult, Diagnostic> {
        self.send();
        self.tx = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(r)) => Ok(r),
            _ => Err(Diagnostic::error(
                codes::IO,
                format!("journal `{}`: the writer thread failed", self.path.display()),
            )),
        }
    }

    /// Writes the run's end (period and metrics) and commits everything.
    ///
    /// # Errors
    /// The first write error of the run, or a commit failure; then the run is rolled back.
    pub fn finish(
        mut self,
        first: Option<i64>,
        last: Option<i64>,
        metrics: &serde_json::Value,
    ) -> Result<i64, Diagnostic> {
        let mut still_working: Vec<OrderRow> = self.working.drain().map(|(_, r)| r).collect();
        still_working.sort_by_key(|r| r.order_no);
        for r in still_working {
            self.push(Row::Order(r));
        }
        let (conn, err, in_tx) = self.join()?;
        if let Some(e) = err {
            // The run is not complete: nothing more is written (a completed status over
            // missing rows would lie), the open transaction is rolled back.
            if in_tx {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(db_err(&self.path, e));
        }
        if !in_tx {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| db_err(&self.path, e))?;
        }
        let r = conn.execute(
            "UPDATE runs SET finished_ts = ?1, status = 'completed', first_bar_ts = ?2, last_bar_ts = ?3, metrics = ?4 \
             WHERE run_id = ?5",
            params![now(), first, last, metrics.to_string(), self.run_id],
        );
        if let Err(e) = r {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(db_err(&self.path, e));
        }
        conn.execute_batch("COMMIT").map_err(|e| db_err(&self.path, e))?;
        Ok(self.run_id)
    }
}

impl Drop for Journal {
    /// A journal dropped without [`Journal::finish`] (an aborted run) waits for its writer,
    /// whose connection then closes with the transaction rolled back.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
