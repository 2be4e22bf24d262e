//! The journal's writer thread: it takes the rows a run queues, in batches, and writes them
//! to SQLite so that the engine never waits for the disk.
//!
//! Durability follows the checkpoints. A commit only ever follows a checkpoint (or an
//! explicit commit or sync), so what is durable is always whole timestamps, and a run killed
//! at any point restarts from its last committed checkpoint. **Group commit**: a checkpoint
//! commits at once when it is the first for [`COMMIT_EVERY`] of wall time, else together with
//! the checkpoints that follow it within that window (at most [`GROUP_COMMIT`] of them), and
//! at the latest when the window ends with nothing more queued. A replay at full speed then
//! pays one commit per window instead of one per timestamp, while a live bot, whose bars come
//! seconds apart, still commits each checkpoint within one window. The write-ahead sync
//! before an order goes to a broker commits at once. Other connections that write to the
//! journal meanwhile (the control records, the phase store) begin with `BEGIN IMMEDIATE`,
//! so they wait for the window's commit instead of failing on a stale snapshot.
//!
//! The first failure rolls the open transaction back (the timestamp it belonged to is not
//! durable, the last checkpoint is) and stops all writing; the journal reports it.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rusqlite::Connection;

use super::journal_error;
use super::rows::{
    COMMIT_EVERY, GROUP_COMMIT, INSERT_FILL, INSERT_ORDER, INSERT_TRADE, Row, insert_fill, insert_order, insert_trade,
    write_row,
};

/// The writer thread's result: the connection, its first error, and whether a transaction is
/// still open (rows written after the last commit).
pub(super) type WriterResult = (Connection, Option<rusqlite::Error>, bool);

/// The writer's state. See the module doc.
pub(super) struct Writer {
    /// Shared with the statements the writer keeps prepared (one thread: `Rc`).
    conn: Rc<Connection>,
    path: PathBuf,
    run_id: i64,
    bot: String,
    /// A transaction is open.
    in_tx: bool,
    /// The first failure; nothing more is written after it.
    err: Option<rusqlite::Error>,
    /// Where the journal reads the failure's message.
    failed: Arc<Mutex<Option<String>>>,
    /// Checkpoints written since the last commit.
    uncommitted: usize,
    last_commit: Instant,
}

impl Writer {
    /// A writer on `conn` for run `run_id`; `in_tx`: the caller opened the first transaction.
    pub(super) fn new(
        conn: Connection,
        path: PathBuf,
        run_id: i64,
        bot: String,
        in_tx: bool,
        failed: Arc<Mutex<Option<String>>>,
    ) -> Self {
        // The first checkpoint commits at once (a restarted bot keeps its first new bar even
        // if it is killed again within one window).
        let last_commit = Instant::now().checked_sub(COMMIT_EVERY).unwrap_or_else(Instant::now);
        Writer { conn: Rc::new(conn), path, run_id, bot, in_tx, err: None, failed, uncommitted: 0, last_commit }
    }

    /// Writes what arrives on `rx` until the journal closes the channel.
    pub(super) fn run(mut self, rx: &Receiver<Vec<Row>>) -> WriterResult {
        let conn = Rc::clone(&self.conn);
        let mut hot = Hot::prepare(&conn);
        loop {
            let received = if self.uncommitted > 0 {
                rx.recv_timeout(COMMIT_EVERY.saturating_sub(self.last_commit.elapsed()))
            } else {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match received {
                Ok(rows) => rows.into_iter().for_each(|row| self.write(row, &mut hot)),
                Err(RecvTimeoutError::Timeout) => self.commit(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        drop(hot);
        drop(conn);
        let Writer { conn, err, in_tx, .. } = self;
        let conn =
            Rc::try_unwrap(conn).unwrap_or_else(|_| unreachable!("the statements and the loop's handle are gone"));
        (conn, err, in_tx)
    }

    fn write(&mut self, row: Row, hot: &mut Hot<'_>) {
        match row {
            Row::Commit => self.commit(),
            Row::Sync(reply) => {
                // Write-ahead: what was queued before is durable before the reply.
                self.commit();
                let _ = reply.send(self.err.as_ref().map_or(Ok(()), |e| Err(e.to_string())));
            }
            _ if self.err.is_some() => {}
            Row::Checkpoint(c) => {
                if self.begin() {
                    match write_row(&self.conn, self.run_id, &self.bot, &Row::Checkpoint(c)) {
                        Ok(_) => {
                            self.uncommitted += 1;
                            if self.uncommitted >= GROUP_COMMIT || self.last_commit.elapsed() >= COMMIT_EVERY {
                                self.commit();
                            }
                        }
                        Err(e) => self.fail(e),
                    }
                }
            }
            row => {
                if self.begin() {
                    let written = match (row, &mut hot.order, &mut hot.fill, &mut hot.trade) {
                        (Row::Exec(f), ..) => f(&self.conn, self.run_id),
                        (Row::Order(o), Some(st), _, _) => insert_order(st, self.run_id, &o).map(|_| ()),
                        (row @ Row::Fill { .. }, _, Some(st), _) => insert_fill(st, self.run_id, &row).map(|_| ()),
                        (Row::Trade(no, t), _, _, Some(st)) => insert_trade(st, self.run_id, no, &t).map(|_| ()),
                        (row, ..) => write_row(&self.conn, self.run_id, &self.bot, &row).map(|_| ()),
                    };
                    if let Err(e) = written {
                        self.fail(e);
                    }
                }
            }
        }
    }

    /// Opens a transaction unless one is open; `false` when that failed.
    fn begin(&mut self) -> bool {
        if !self.in_tx {
            if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
                self.fail(e);
                return false;
            }
            self.in_tx = true;
        }
        true
    }

    /// Commits the open transaction (nothing after a failure).
    fn commit(&mut self) {
        if self.in_tx && self.err.is_none() {
            match self.conn.execute_batch("COMMIT") {
                Ok(()) => self.in_tx = false,
                Err(e) => self.fail(e),
            }
        }
        self.uncommitted = 0;
        self.last_commit = Instant::now();
    }

    /// Rolls the open transaction back and stops all writing.
    fn fail(&mut self, e: rusqlite::Error) {
        if self.in_tx {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.in_tx = false;
        }
        let why = journal_error(&self.path, &e).message;
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
        self.err = Some(e);
    }
}

/// The statements of the rows every order writes (orders, fills, trades), prepared once for
/// the run: looked up in rusqlite's statement cache per row they cost about a sixth of the
/// writer's time on a 1M-bar backtest (hashing the SQL text, the cache's bookkeeping). `None`
/// when one cannot be prepared: that row kind then goes through the cache as the others do.
struct Hot<'c> {
    order: Option<rusqlite::Statement<'c>>,
    fill: Option<rusqlite::Statement<'c>>,
    trade: Option<rusqlite::Statement<'c>>,
}

impl<'c> Hot<'c> {
    fn prepare(conn: &'c Connection) -> Self {
        Hot {
            order: conn.prepare(INSERT_ORDER).ok(),
            fill: conn.prepare(INSERT_FILL).ok(),
            trade: conn.prepare(INSERT_TRADE).ok(),
        }
    }
}
