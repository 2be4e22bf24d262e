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
//!
//! A backtest writes its run inside one transaction: a run that fails leaves no trace, and a
//! finished run is complete. Rows are written by a background thread so the engine does not
//! wait for SQLite; an order row is written once, at its final state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};

use crate::diagnostics::{Diagnostic, codes};
use crate::engine::events::{Decision, EventSink, Note, OrderStatus};
use crate::engine::orders::{ClientOrderId, Fill, Order, OrderType, Quantity, Trade};
use crate::engine::trading_state::StateChange;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    bot TEXT NOT NULL,
    bundle_revision TEXT NOT NULL,
    started_ts INTEGER NOT NULL,
    finished_ts INTEGER,
    status TEXT NOT NULL,
    settings TEXT NOT NULL,
    symbols TEXT NOT NULL,
    first_bar_ts INTEGER,
    last_bar_ts INTEGER,
    metrics TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    order_no INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    intent TEXT NOT NULL,
    order_type TEXT NOT NULL,
    stop_price REAL,
    limit_price REAL,
    time_in_force TEXT NOT NULL,
    quantity REAL NOT NULL,
    quantity_kind TEXT NOT NULL,
    reference_price REAL NOT NULL,
    notional REAL NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    updated_ts INTEGER NOT NULL,
    bundle_revision TEXT NOT NULL,
    PRIMARY KEY (run_id, order_no)
);
CREATE TABLE IF NOT EXISTS fills (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    client_order_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity REAL NOT NULL,
    price REAL NOT NULL,
    commission REAL NOT NULL,
    slippage_cost REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trades (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    trade_no INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    entry_ts INTEGER NOT NULL,
    entry_price REAL NOT NULL,
    exit_ts INTEGER NOT NULL,
    exit_price REAL NOT NULL,
    quantity REAL NOT NULL,
    pnl REAL NOT NULL,
    pnl_pct REAL NOT NULL,
    fees REAL NOT NULL,
    exit_reason TEXT NOT NULL,
    holding_bars INTEGER NOT NULL,
    entry_order_id TEXT NOT NULL,
    exit_order_id TEXT NOT NULL,
    PRIMARY KEY (run_id, trade_no)
);
CREATE TABLE IF NOT EXISTS policy_decisions (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    client_order_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    policy TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    fired INTEGER NOT NULL,
    action TEXT NOT NULL,
    message TEXT NOT NULL,
    seen_values TEXT NOT NULL,
    bundle_revision TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    symbol TEXT NOT NULL,
    script TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state_changes (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    ts INTEGER NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    reset TEXT NOT NULL DEFAULT 'manual'
);
CREATE TABLE IF NOT EXISTS run_status (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id),
    ts INTEGER NOT NULL,
    cash REAL NOT NULL,
    equity REAL NOT NULL,
    peak_equity REAL NOT NULL,
    state TEXT NOT NULL,
    positions TEXT NOT NULL,
    checkpoints INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS daily_equity (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    day INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    open_equity REAL NOT NULL,
    close_equity REAL NOT NULL,
    close_cash REAL NOT NULL,
    PRIMARY KEY (run_id, day)
);
CREATE VIEW IF NOT EXISTS v_state_changes AS SELECT run_id,
    strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, from_state, to_state, reason, message, reset
    FROM state_changes;
CREATE VIEW IF NOT EXISTS v_events AS SELECT run_id,
    strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, kind, origin, symbol, script, message FROM events;
CREATE VIEW IF NOT EXISTS v_runs AS SELECT run_id, kind, bot, bundle_revision,
    strftime('%Y-%m-%dT%H:%M:%SZ', started_ts, 'unixepoch') AS started_at,
    strftime('%Y-%m-%dT%H:%M:%SZ', finished_ts, 'unixepoch') AS finished_at, status, settings, symbols,
    strftime('%Y-%m-%dT%H:%M:%SZ', first_bar_ts, 'unixepoch') AS first_bar,
    strftime('%Y-%m-%dT%H:%M:%SZ', last_bar_ts, 'unixepoch') AS last_bar, metrics FROM runs;
CREATE VIEW IF NOT EXISTS v_orders AS SELECT run_id, order_no, client_order_id,
    strftime('%Y-%m-%dT%H:%M:%SZ', created_ts, 'unixepoch') AS created_at, strategy, symbol, side, intent,
    order_type, stop_price, limit_price, time_in_force, quantity, quantity_kind, reference_price, notional,
    reason, status, status_reason, strftime('%Y-%m-%dT%H:%M:%SZ', updated_ts, 'unixepoch') AS updated_at,
    bundle_revision FROM orders;
CREATE VIEW IF NOT EXISTS v_fills AS SELECT run_id, client_order_id,
    strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, symbol, side, quantity, price, commission,
    slippage_cost FROM fills;
CREATE VIEW IF NOT EXISTS v_trades AS SELECT run_id, trade_no, strategy, symbol,
    strftime('%Y-%m-%dT%H:%M:%SZ', entry_ts, 'unixepoch') AS entry_time, entry_price,
    strftime('%Y-%m-%dT%H:%M:%SZ', exit_ts, 'unixepoch') AS exit_time, exit_price, quantity, pnl, pnl_pct,
    fees, exit_reason, holding_bars, entry_order_id, exit_order_id FROM trades;
CREATE VIEW IF NOT EXISTS v_policy_decisions AS SELECT run_id, client_order_id,
    strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, policy, rule_id, fired, action, message,
    seen_values, bundle_revision FROM policy_decisions;
";

/// Facts about a run, written when it starts.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `backtest` for now.
    pub kind: String,
    /// Bot name.
    pub bot: String,
    /// Bundle revision.
    pub bundle_revision: String,
    /// Settings as JSON.
    pub settings: serde_json::Value,
    /// Symbols traded.
    pub symbols: Vec<String>,
}

/// An order row, complete once its final status is known.
struct OrderRow {
    order_no: i64,
    client_order_id: ClientOrderId,
    created_ts: i64,
    strategy: Arc<str>,
    symbol: Arc<str>,
    side: &'static str,
    intent: &'static str,
    order_type: &'static str,
    stop_price: Option<f64>,
    limit_price: Option<f64>,
    time_in_force: &'static str,
    quantity: f64,
    quantity_kind: &'static str,
    reference_price: f64,
    notional: f64,
    reason: &'static str,
    status: &'static str,
    status_reason: Option<String>,
    updated_ts: i64,
    /// Revision of the bundle that created it.
    bundle_revision: Arc<str>,
}

/// A write of the caller's own, given the connection and the run id.
type Write = Box<dyn FnOnce(&Connection, i64) -> rusqlite::Result<()> + Send>;

/// A row for the writer thread.
enum Row {
    Order(OrderRow),
    Fill {
        client_order_id: ClientOrderId,
        ts: i64,
        symbol: Arc<str>,
        side: &'static str,
        quantity: f64,
        price: f64,
        commission: f64,
        slippage_cost: f64,
    },
    Trade(i64, Box<Trade>),
    Decision {
        /// `None` for a rule checked on the account at a mark (no order).
        client_order_id: Option<ClientOrderId>,
        ts: i64,
        policy: Arc<str>,
        rule_id: Arc<str>,
        fired: bool,
        action: Arc<str>,
        message: Arc<str>,
        seen: String,
        bundle_revision: Arc<str>,
    },
    Note {
        ts: i64,
        kind: &'static str,
        origin: Arc<str>,
        symbol: Arc<str>,
        script: Arc<str>,
        message: String,
    },
    State(Box<StateChange>),
    /// Commit point of a long-running run: everything before it is durable together.
    Checkpoint(Box<Checkpoint>),
    /// A state change the engine made, for the bot's control records.
    Control(Box<StateChange>),
    /// Any other write, in the current transaction (broker records: `super::broker_log`).
    Exec(Write),
    /// Commits what was written so far (a transaction starts again with the next row).
    Commit,
    /// A barrier: answered once every row before it is written (and committed, when a
    /// checkpoint came just before).
    Sync(SyncSender<Result<(), String>>),
}

/// What a restarted bot needs from its unfinished run ([`Journal::resume`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// The run's id.
    pub run_id: i64,
    /// The bundle revision the run was started with.
    pub revision: String,
    /// The revision in force at the last checkpoint (the last accepted reload's, or
    /// `revision`).
    pub in_force: String,
    /// Time of the last committed checkpoint (UTC seconds); `None` before the first.
    pub last_checkpoint: Option<i64>,
    /// A person's halts and resumes, at the bar times the bot applied them, oldest first.
    pub manual: Vec<ManualChange>,
}

/// A `dsl halt` or `dsl resume`, or a halt of the runtime, as the running bot applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualChange {
    /// Bar time at which it took effect (UTC seconds).
    pub ts: i64,
    /// `true` for a halt, `false` for a resume.
    pub halt: bool,
    /// `manual_halt` and `resume` (a person), or `broker_unavailable` and
    /// `reconcile_mismatch` (the runtime's own halts, which replaying the bars cannot redo).
    pub reason: String,
    /// The person's reason.
    pub message: String,
}

/// The account after the bars of one timestamp, committed with that timestamp's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Time of the last bars processed (UTC seconds).
    pub ts: i64,
    /// Cash (currency).
    pub cash: f64,
    /// Equity at the last closes (currency).
    pub equity: f64,
    /// Highest equity so far (currency).
    pub peak_equity: f64,
    /// Trading state (`ACTIVE`, `REDUCING`, `HALTED`).
    pub state: String,
    /// Open positions as a JSON array.
    pub positions: serde_json::Value,
}

/// Rows per message to the writer thread.
const BATCH: usize = 256;

/// At most this many checkpoints share one commit (see the writer's group commit).
const GROUP_COMMIT: usize = 64;

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn write_row(conn: &Connection, run_id: i64, bot: &str, row: &Row) -> rusqlite::Result<usize> {
    match row {
        Row::Order(o) => conn
            .prepare_cached(
                "INSERT INTO orders (run_id, order_no, client_order_id, created_ts, strategy, symbol, side, intent, \
                 order_type, stop_price, limit_price, time_in_force, quantity, quantity_kind, reference_price, notional, \
                 reason, status, status_reason, updated_ts, bundle_revision) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            )?
            .execute(params![
                run_id,
                o.order_no,
                o.client_order_id.as_str(),
                o.created_ts,
                &*o.strategy,
                &*o.symbol,
                o.side,
                o.intent,
                o.order_type,
                o.stop_price,
                o.limit_price,
                o.time_in_force,
                finite(o.quantity),
                o.quantity_kind,
                finite(o.reference_price),
                finite(o.notional),
                o.reason,
                o.status,
                o.status_reason,
                o.updated_ts,
                &*o.bundle_revision
            ]),
        Row::Fill { client_order_id, ts, symbol, side, quantity, price, commission, slippage_cost } => conn
            .prepare_cached(
                "INSERT INTO fills (run_id, client_order_id, ts, symbol, side, quantity, price, commission, slippage_cost) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![run_id, client_order_id.as_str(), ts, &**symbol, side, quantity, price, commission, slippage_cost]),
        Row::Trade(no, t) => conn
            .prepare_cached(
                "INSERT INTO trades (run_id, trade_no, strategy, symbol, entry_ts, entry_price, exit_ts, exit_price, \
                 quantity, pnl, pnl_pct, fees, exit_reason, holding_bars, entry_order_id, exit_order_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                run_id,
                no,
                &*t.strategy,
                &*t.symbol,
                t.entry_time,
                t.entry_price,
                t.exit_time,
                t.exit_price,
                t.quantity,
                t.pnl,
                t.pnl_pct,
                t.fees,
                t.exit_reason,
                t.holding_bars as i64,
                t.entry_order_id.as_str(),
                t.exit_order_id.as_str()
            ]),
        Row::Decision { client_order_id, ts, policy, rule_id, fired, action, message, seen, bundle_revision } => conn
            .prepare_cached(
                "INSERT INTO policy_decisions (run_id, client_order_id, ts, policy, rule_id, fired, action, message, \
                 seen_values, bundle_revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                run_id,
                client_order_id.as_ref().map_or("", |c| c.as_str()),
                ts,
                &**policy,
                &**rule_id,
                fired,
                &**action,
                &**message,
                seen,
                &**bundle_revision
            ]),
        Row::State(c) => conn
            .prepare_cached(
                "INSERT INTO state_changes (run_id, ts, from_state, to_state, reason, message, reset) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![run_id, c.ts, c.from.as_str(), c.to.as_str(), c.reason, c.message, c.reset.as_str()]),
        Row::Checkpoint(c) => {
            conn.prepare_cached(
                "INSERT INTO run_status (run_id, ts, cash, equity, peak_equity, state, positions, checkpoints) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1) ON CONFLICT(run_id) DO UPDATE SET ts = ?2, cash = ?3, \
                 equity = ?4, peak_equity = ?5, state = ?6, positions = ?7, checkpoints = checkpoints + 1",
            )?
            .execute(params![run_id, c.ts, c.cash, c.equity, c.peak_equity, c.state, c.positions.to_string()])?;
            conn.prepare_cached(
                "UPDATE runs SET first_bar_ts = COALESCE(first_bar_ts, ?1), last_bar_ts = ?1 WHERE run_id = ?2",
            )?
            .execute(params![c.ts, run_id])?;
            // The day's first and last equity (UTC day), for the daily P&L summary.
            conn.prepare_cached(
                "INSERT INTO daily_equity (run_id, day, first_ts, last_ts, open_equity, close_equity, close_cash) \
                 VALUES (?1, ?2, ?3, ?3, ?4, ?4, ?5) ON CONFLICT(run_id, day) DO UPDATE \
                 SET last_ts = ?3, close_equity = ?4, close_cash = ?5",
            )?
            .execute(params![run_id, c.ts.div_euclid(86_400), c.ts, c.equity, c.cash])?;
            Ok(1)
        }
        Row::Control(c) => super::control::write_state(conn, bot, c, "engine").map(|()| 1),
        // Handled by the writer loop.
        Row::Exec(_) | Row::Sync(_) | Row::Commit => Ok(0),
        Row::Note { ts, kind, origin, symbol, script, message } => conn
            .prepare_cached(
                "INSERT INTO events (run_id, ts, kind, origin, symbol, script, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![run_id, ts, kind, &**origin, &**symbol, &**script, message]),
    }
}

/// What the writer thread hands back: the connection (still inside the run's transaction)
/// and the first write error.
/// The writer thread's result: the connection, its first error, and whether a transaction is
/// still open (a checkpoint commits; the next row opens the next transaction).
type WriterResult = (Connection, Option<rusqlite::Error>, bool);

/// An open journal with a run in progress. Implements [`EventSink`].
///
/// Nothing is visible to readers before [`Journal::finish`] commits the run's transaction.
pub struct Journal {
    path: PathBuf,
    run_id: i64,
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
    evidence: Option<super::run_evidence::RunEvidence>,
}

/// Whether the database has a table (or view) called `name`: readers of journals written by
/// other commands or earlier versions check before they query.
///
/// # Errors
/// SQLite's.
pub fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE name = ?1")?.exists([name])
}

fn db_err(path: &Path, e: rusqlite::Error) -> Diagnostic {
    journal_error(path, &e)
}

/// A journal error as what it is: a file that is not a SQLite database or is damaged, a
/// read-only file, a full disk, a lock another process held past the busy timeout, or SQLite's
/// own words for the rest.
pub fn journal_error(path: &Path, e: &rusqlite::Error) -> Diagnostic {
    use rusqlite::ErrorCode as C;
    let what = match e.sqlite_error_code() {
        Some(C::NotADatabase) => "is not a SQLite journal (damaged, or another kind of file)".to_string(),
        Some(C::DatabaseCorrupt) => "is damaged (SQLite reports corruption)".to_string(),
        Some(C::ReadOnly) => "is read-only here, and this command writes to it".to_string(),
        Some(C::DiskFull) => "cannot grow: the disk is full".to_string(),
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            "is locked by another process (longer than the 10 s busy timeout)".to_string()
        }
        Some(C::CannotOpen) => format!("cannot be opened ({e})"),
        _ => format!("failed: {e}"),
    };
    let d = Diagnostic::error(codes::IO, format!("journal `{}` {what}", path.display()));
    match e.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => {
            d.help("it is left as it is: move it aside (or restore a backup) and point the bot at a new journal")
        }
        Some(C::DiskFull) => d.help("free some space; the run resumes from its last committed bar"),
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            d.help("another program holds a write lock on it; close it, then start again")
        }
        _ => d,
    }
}

/// Checks a journal's integrity (`PRAGMA quick_check`) on an open connection.
///
/// # Errors
/// A diagnostic with SQLite's first complaint when the file is damaged.
pub fn check_integrity(conn: &Connection, path: &Path) -> Result<(), Diagnostic> {
    let first: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(|e| db_err(path, e))?;
    if first == "ok" {
        return Ok(());
    }
    Err(Diagnostic::error(codes::IO, format!("journal `{}` is damaged: {first}", path.display()))
        .help("it is left as it is: move it aside (or restore a backup) and point the bot at a new journal"))
}

/// Opens a journal to read it, even when the file is read-only, and checks its integrity
/// first (what a command a person runs does; a running bot checked it when it started).
///
/// # Errors
/// A missing file, a file that is not a journal, a damaged journal.
pub fn open_read_checked(path: &Path) -> Result<Connection, Diagnostic> {
    let conn = open_read(path)?;
    check_integrity(&conn, path)?;
    Ok(conn)
}

/// Opens a journal to read it, even when the file is read-only.
///
/// # Errors
/// A missing file, a file that is not a journal.
pub fn open_read(path: &Path) -> Result<Connection, Diagnostic> {
    if !path.exists() {
        return Err(Diagnostic::error(codes::IO, format!("journal `{}` does not exist", path.display()))
            .help("the bot has not run yet, or the path is wrong: `dsl run BOT.yaml` starts it"));
    }
    super::files::open_regular(path)?;
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| db_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| db_err(path, e))?;
    Ok(conn)
}

/// Brings a journal written by an earlier version up to the current tables: adds
/// `state_changes.reset` and `policy_decisions.bundle_revision` (and rebuilds their views)
/// when missing.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_revision = conn
        .prepare("SELECT 1 FROM pragma_table_info('policy_decisions') WHERE name = 'bundle_revision'")?
        .exists([])?;
    if !has_revision {
        conn.execute_batch(
            "ALTER TABLE policy_decisions ADD COLUMN bundle_revision TEXT NOT NULL DEFAULT '';
             DROP VIEW IF EXISTS v_policy_decisions;
             CREATE VIEW v_policy_decisions AS SELECT run_id, client_order_id,
                 strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, policy, rule_id, fired, action, message,
                 seen_values, bundle_revision FROM policy_decisions;",
        )?;
    }
    let has_checkpoints =
        conn.prepare("SELECT 1 FROM pragma_table_info('run_status') WHERE name = 'checkpoints'")?.exists([])?;
    if !has_checkpoints {
        conn.execute_batch("ALTER TABLE run_status ADD COLUMN checkpoints INTEGER NOT NULL DEFAULT 0")?;
    }
    let has_reset = conn.prepare("SELECT 1 FROM pragma_table_info('state_changes') WHERE name = 'reset'")?.exists([])?;
    if !has_reset {
        conn.execute_batch(
            "ALTER TABLE state_changes ADD COLUMN reset TEXT NOT NULL DEFAULT 'manual';
             DROP VIEW IF EXISTS v_state_changes;
             CREATE VIEW v_state_changes AS SELECT run_id,
                 strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, from_state, to_state, reason, message, reset
                 FROM state_changes;",
        )?;
    }
    Ok(())
}

/// Opens (creating if needed) a journal database with its schema.
fn open(path: &Path) -> Result<Connection, Diagnostic> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot create `{}`: {e}", dir.display())))?;
    }
    if path.exists() {
        super::files::open_regular(path)?;
    }
    let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| db_err(path, e))?;
    check_integrity(&conn, path)?;
    // Large pages for a new file (fewer, larger writes), WAL so readers never block the
    // writer, and a page cache big enough that a whole run stays in memory until COMMIT
    // instead of spilling page by page.
    conn.pragma_update(None, "page_size", 16384).map_err(|e| db_err(path, e))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db_err(path, e))?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| db_err(path, e))?;
    conn.pragma_update(None, "cache_size", -262_144).map_err(|e| db_err(path, e))?;
    // A size cap in pages, for tests that make the disk "full" where no small file system
    // can be mounted (`TRADEDSL_JOURNAL_MAX_PAGES`; SQLite then fails as on a full disk).
    if let Some(pages) = std::env::var("TRADEDSL_JOURNAL_MAX_PAGES").ok().and_then(|v| v.parse::<i64>().ok()) {
        conn.pragma_update(None, "max_page_count", pages).map_err(|e| db_err(path, e))?;
    }
    conn.execute_batch(SCHEMA).map_err(|e| db_err(path, e))?;
    conn.execute_batch(super::broker_log::SCHEMA).map_err(|e| db_err(path, e))?;
    conn.execute_batch(super::reload_log::SCHEMA).map_err(|e| db_err(path, e))?;
    migrate(&conn).map_err(|e| db_err(path, e))?;
    Ok(conn)
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
        conn.execute(
            "INSERT INTO runs (kind, bot, bundle_revision, started_ts, status, settings, symbols) \
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
            params![
                info.kind,
                info.bot,
                info.bundle_revision,
                now(),
                info.settings.to_string(),
                serde_json::to_string(&info.symbols).unwrap_or_default()
            ],
        )
        .map_err(|e| db_err(path, e))?;
        let run_id = conn.last_insert_rowid();
        Journal::start(path, conn, run_id, &info.bundle_revision, info.bot.clone(), true)
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
        let found: Option<(i64, String, Option<i64>)> = conn
            .query_row(
                "SELECT run_id, bundle_revision, last_bar_ts FROM runs WHERE kind = ?1 AND bot = ?2 AND status = 'running' \
                 ORDER BY run_id DESC LIMIT 1",
                params![kind, bot],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(|e| db_err(path, e))?;
        let Some((run_id, revision, last)) = found else { return Ok(None) };
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
        let in_force = super::reload_log::in_force(&conn, run_id, &revision).map_err(|e| db_err(path, e))?;
        // No transaction until the first row after the replay: the bot's control records
        // (approval requests) are written meanwhile.
        // Numbering restarts at 0: the muted replay up to the checkpoint counts again.
        let mut j = Journal::start(path, conn, run_id, &revision, bot.to_string(), false)?;
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
        let failed = failure.clone();
        let journal_path = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                let mut err: Option<rusqlite::Error> = None;
                let mut in_tx = in_tx;
                // The first failure rolls the open transaction back (the timestamp it belonged
                // to is not durable, the last checkpoint is) and stops all writing.
                let fail = |e: rusqlite::Error, in_tx: &mut bool, err: &mut Option<rusqlite::Error>| {
                    if *in_tx {
                        let _ = conn.execute_batch("ROLLBACK");
                        *in_tx = false;
                    }
                    let why = journal_error(&journal_path, &e).message;
                    *failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
                    *err = Some(e);
                };
                let commit = |in_tx: &mut bool, err: &mut Option<rusqlite::Error>| {
                    if *in_tx && err.is_none() {
                        match conn.execute_batch("COMMIT") {
                            Ok(()) => *in_tx = false,
                            Err(e) => fail(e, in_tx, err),
                        }
                    }
                };
                // Group commit: a checkpoint commits at once when the writer has caught up, else
                // with the checkpoints already queued behind it (at most GROUP_COMMIT of them), so
                // that a replay at full speed does not pay one commit per timestamp. A commit
                // only ever follows a checkpoint (or an explicit commit or sync): what is durable
                // is always whole timestamps.
                let mut uncommitted = 0usize;
                let mut queued: Option<Vec<Row>> = None;
                while let Some(rows) = queued.take().or_else(|| rx.recv().ok()) {
                    let mut rows = rows.into_iter().peekable();
                    while let Some(row) = rows.next() {
                        let row = match row {
                            Row::Commit => {
                                commit(&mut in_tx, &mut err);
                                uncommitted = 0;
                                continue;
                            }
                            Row::Sync(reply) => {
                                // Write-ahead: what was queued before is durable before the reply.
                                commit(&mut in_tx, &mut err);
                                uncommitted = 0;
                                let _ =
                                    reply.send(err.as_ref().map_or(Ok(()), |e: &rusqlite::Error| Err(e.to_string())));
                                continue;
                            }
                            Row::Checkpoint(c) if err.is_none() => {
                                if !in_tx && let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                                    fail(e, &mut in_tx, &mut err);
                                    continue;
                                }
                                in_tx = true;
                                if let Err(e) = write_row(&conn, run_id, &bot, &Row::Checkpoint(c)) {
                                    fail(e, &mut in_tx, &mut err);
                                    continue;
                                }
                                uncommitted += 1;
                                if rows.peek().is_none() && queued.is_none() {
                                    queued = rx.try_recv().ok();
                                }
                                if queued.is_none() || uncommitted >= GROUP_COMMIT {
                                    commit(&mut in_tx, &mut err);
                                    uncommitted = 0;
                                }
                                continue;
                            }
                            row => row,
                        };
                        if err.is_some() {
                            continue;
                        }
                        if !in_tx && let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                            fail(e, &mut in_tx, &mut err);
                            continue;
                        }
                        in_tx = true;
                        let written = match row {
                            Row::Exec(f) => f(&conn, run_id),
                            row => write_row(&conn, run_id, &bot, &row).map(|_| ()),
                        };
                        if let Err(e) = written {
                            fail(e, &mut in_tx, &mut err);
                        }
                    }
                }
                (conn, err, in_tx)
            })
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot start the journal writer: {e}")))?;
        Ok(Journal {
            identity: super::lease::file_identity(path),
            failure,
            path: path.to_path_buf(),
            run_id,
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
        })
    }

    /// The settings (JSON) of `bot`'s unfinished run of `kind`, if there is one: what a
    /// restart must start the same way (a live feed's history window).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn unfinished_settings(path: &Path, kind: &str, bot: &str) -> Result<Option<serde_json::Value>, Diagnostic> {
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
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
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
    /// ([`super::run_evidence`]): what the journal already holds of the run (a resumed run's,
    /// up to its last checkpoint, when `resumed`), then every row as it is queued.
    /// `starting_cash` is the run's (currency).
    ///
    /// # Errors
    /// When the journal cannot be read.
    pub fn keep_evidence(&mut self, starting_cash: f64, resumed: bool) -> Result<(), Diagnostic> {
        let mut e = if resumed {
            let conn = open_read(&self.path)?;
            super::run_evidence::RunEvidence::load(&conn, self.run_id).map_err(|e| db_err(&self.path, e))?
        } else {
            super::run_evidence::RunEvidence::new(self.run_id, starting_cash)
        };
        e.starting_cash = starting_cash;
        self.evidence = Some(e);
        Ok(())
    }

    /// The run's own evidence, when kept ([`Journal::keep_evidence`]).
    pub fn evidence(&self) -> Option<&super::run_evidence::RunEvidence> {
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

    /// Commits everything queued so far now (a new paper run commits its start, so that the
    /// bot's control records can be written before its first checkpoint); not while muted.
    pub fn commit(&mut self) {
        self.push(Row::Commit);
        self.send();
    }

    /// Stores the texts of `bundle` (the bundle a run starts with), so that a restart can
    /// rebuild it after a reload replaced the files; dropped while muted.
    pub fn store_bundle(&mut self, bundle: Arc<crate::dsl::bundle::Bundle>) {
        self.exec(move |conn, _| super::reload_log::store_texts(conn, &bundle));
    }

    /// Records a reload the bot saw, and the new bundle's texts when one was swapped in
    /// (see [`super::reload_log`]); dropped while muted.
    pub fn reload(
        &mut self,
        entry: super::reload_log::ReloadEntry,
        swapped_in: Option<Arc<crate::dsl::bundle::Bundle>>,
    ) {
        self.exec(move |conn, run_id| {
            if let Some(b) = &swapped_in {
                super::reload_log::store_texts(conn, b)?;
            }
            super::reload_log::insert(conn, run_id, &entry)
        });
    }

    /// Queues a write of the caller's own (given the connection and the run id) in the
    /// current transaction; dropped while muted.
    pub fn exec(&mut self, f: impl FnOnce(&Connection, i64) -> rusqlite::Result<()> + Send + 'static) {
        self.push(Row::Exec(Box::new(f)));
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
            Some(id) => super::lease::file_identity(&self.path) == Some(id),
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
                Row::Trade(_, t) => e.trades.push(crate::engine::gate_metrics::TradeRecord {
                    strategy: t.strategy.to_string(),
                    exit_ts: t.exit_time,
                    pnl: t.pnl,
                    ret: t.pnl_pct / 100.0,
                }),
                Row::Checkpoint(c) => e.checkpoint(c.ts, c.equity),
                Row::Decision { client_order_id, ts, fired: true, action, .. } => {
                    e.fired.push((*ts, action.clone(), *client_order_id))
                }
                Row::State(c) if c.to == crate::engine::trading_state::Mode::Halted => e.halts.push(c.ts),
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
        let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
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

impl EventSink for Journal {
    fn order(&mut self, o: &Order, strategy: &str, symbol: &str, status: OrderStatus, reason: &str) {
        self.order_no += 1;
        let (stop_price, limit_price) = match o.order_type {
            OrderType::Stop(p) => (finite(p), None),
            OrderType::Limit(p) => (None, finite(p)),
            OrderType::Market => (None, None),
        };
        let row = OrderRow {
            order_no: self.order_no,
            client_order_id: o.client_order_id,
            created_ts: o.created_ts,
            strategy: self.name(strategy),
            symbol: self.name(symbol),
            side: o.side.as_str(),
            intent: o.intent.as_str(),
            order_type: o.order_type.as_str(),
            stop_price,
            limit_price,
            time_in_force: o.time_in_force.as_str(),
            quantity: o.estimated_units,
            quantity_kind: match o.quantity {
                Quantity::Units(_) => "units",
                Quantity::AllCash => "all_cash",
                Quantity::ClosePosition => "close_position",
            },
            reference_price: o.reference_price,
            notional: o.notional(),
            reason: o.reason.as_str(),
            status: status.as_str(),
            status_reason: (!reason.is_empty()).then(|| reason.to_string()),
            updated_ts: o.created_ts,
            bundle_revision: self.revision.clone(),
        };
        if let Some(e) = self.evidence.as_mut().filter(|_| !self.muted) {
            e.order_strategy.insert(o.client_order_id, row.strategy.clone());
        }
        if status == OrderStatus::Submitted {
            self.working.insert(o.client_order_id, row);
        } else {
            self.push(Row::Order(row));
        }
    }

    fn order_status(&mut self, id: ClientOrderId, status: OrderStatus, ts: i64, reason: &str) {
        if let Some(mut row) = self.working.remove(&id) {
            row.status = status.as_str();
            row.status_reason = (!reason.is_empty()).then(|| reason.to_string());
            row.updated_ts = ts;
            self.push(Row::Order(row));
        }
    }

    fn fill(&mut self, f: &Fill, o: &Order, symbol: &str) {
        let symbol = self.name(symbol);
        self.push(Row::Fill {
            client_order_id: f.client_order_id,
            ts: f.ts,
            symbol,
            side: o.side.as_str(),
            quantity: f.quantity,
            price: f.price,
            commission: f.commission,
            slippage_cost: f.slippage_cost,
        });
    }

    fn trade(&mut self, t: &Trade) {
        self.trade_no += 1;
        self.push(Row::Trade(self.trade_no, Box::new(t.clone())));
    }

    fn decision(&mut self, d: &Decision<'_>) {
        use crate::engine::events::Seen;
        let seen: serde_json::Map<String, serde_json::Value> = d
            .values
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Seen::Number(x) if x.is_finite() => serde_json::json!(x),
                    Seen::Number(_) => serde_json::Value::Null,
                    Seen::Text(t) => serde_json::Value::String(t.clone()),
                };
                (k.clone(), v)
            })
            .collect();
        let row = Row::Decision {
            client_order_id: d.order.map(|o| o.client_order_id),
            ts: d.ts,
            policy: self.name(d.policy),
            rule_id: self.name(d.rule_id),
            fired: d.fired,
            action: self.name(d.action),
            // Script messages vary per order: not worth interning.
            message: Arc::from(d.message),
            seen: serde_json::Value::Object(seen).to_string(),
            bundle_revision: self.revision.clone(),
        };
        self.push(row);
    }

    fn state_change(&mut self, c: &StateChange) {
        self.push(Row::State(Box::new(c.clone())));
        // A running bot is the only writer of its state: every change goes to the control
        // records in the transaction of its timestamp, and to its console.
        if self.control {
            self.push(Row::Control(Box::new(c.clone())));
            if !self.muted {
                let at = super::timeparse::format_utc(c.ts);
                let (from, to) = (c.from.as_str(), c.to.as_str());
                let line = format!("state: {from} -> {to} at {at} ({}): {}", c.reason, c.message);
                match c.to {
                    crate::engine::trading_state::Mode::Active => {
                        tracing::info!(from, to, reason = %c.reason, "{line}")
                    }
                    crate::engine::trading_state::Mode::Reducing => {
                        tracing::warn!(from, to, reason = %c.reason, "{line}")
                    }
                    _ => tracing::error!(from, to, reason = %c.reason, "{line}"),
                }
            }
        }
    }

    fn note(&mut self, n: &Note<'_>) {
        let row = Row::Note {
            ts: n.ts,
            kind: n.kind.as_str(),
            origin: self.name(n.origin),
            symbol: self.name(n.symbol),
            script: self.name(n.script),
            message: n.message.to_string(),
        };
        self.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::orders::{Intent, OrderReason, Side, TimeInForce, client_order_id};

    fn order(id: ClientOrderId) -> Order {
        Order {
            client_order_id: id,
            slot: 0,
            strategy: 0,
            symbol: 0,
            side: Side::Buy,
            intent: Intent::Entry,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            quantity: Quantity::Units(2.0),
            estimated_units: 2.0,
            reference_price: 10.0,
            created_ts: 86_400,
            reason: OrderReason::EntryRule,
            expected_return: f64::NAN,
            group: None,
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            kind: "backtest".into(),
            bot: "b".into(),
            bundle_revision: "rev".into(),
            settings: serde_json::json!({}),
            symbols: vec!["X".into()],
        }
    }

    #[test]
    fn writes_a_complete_run_and_readable_views() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.sqlite");
        let (a, b) = (client_order_id("b", "s", "X", 0, 0), client_order_id("b", "s", "X", 0, 1));
        let mut j = Journal::begin(&db, &info()).unwrap();
        j.order(&order(a), "s", "X", OrderStatus::Submitted, "");
        j.order_status(a, OrderStatus::Filled, 172_800, "");
        j.order(&order(b), "s", "X", OrderStatus::Rejected, "denied by p/r: too big");
        let id = j.finish(Some(0), Some(86_400), &serde_json::json!({"x": 1})).unwrap();
        let c = Connection::open(&db).unwrap();
        let rows: Vec<(String, String, String)> = c
            .prepare("SELECT client_order_id, status, updated_at FROM v_orders WHERE run_id = ?1 ORDER BY order_no")
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0], (a.to_string(), "filled".into(), "1970-01-03T00:00:00Z".into()));
        assert_eq!(rows[1].1, "rejected");
        let status: String = c.query_row("SELECT status FROM runs WHERE run_id = ?1", [id], |r| r.get(0)).unwrap();
        assert_eq!(status, "completed");
    }

    /// The evidence a running bot keeps in memory is what the journal holds of the run.
    #[test]
    fn kept_evidence_equals_the_journaled_run() {
        use crate::engine::events::Seen;
        use crate::engine::trading_state::{Mode, StateChange};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.sqlite");
        let info = RunInfo { kind: "paper".into(), settings: serde_json::json!({"starting_cash": 1000.0}), ..info() };
        let mut j = Journal::begin(&db, &info).unwrap();
        j.keep_evidence(1000.0, false).unwrap();
        let (a, b) = (client_order_id("b", "s", "X", 0, 0), client_order_id("b", "t", "X", 0, 1));
        j.order(&order(a), "s", "X", OrderStatus::Submitted, "");
        j.order_status(a, OrderStatus::Filled, 86_400, "");
        j.order(&order(b), "t", "X", OrderStatus::Rejected, "denied");
        let values = [("order.notional".to_string(), Seen::Number(20.0))];
        for (order, fired, action) in [(Some(&order(b)), true, "deny"), (None, true, "halt"), (None, false, "pass")] {
            let d =
                Decision { order, ts: 86_400, policy: "p", rule_id: "r", fired, action, message: "m", values: &values };
            j.decision(&d);
        }
        j.state_change(&StateChange {
            ts: 86_400,
            from: Mode::Active,
            to: Mode::Halted,
            reason: "p/r".into(),
            message: "m".into(),
            reset: crate::config::policy::Reset::Manual,
        });
        let trade = |exit: i64, pnl: f64| Trade {
            strategy: Arc::from("s"),
            symbol: Arc::from("X"),
            entry_time: 86_400,
            entry_price: 10.0,
            exit_time: exit,
            exit_price: 10.0 + pnl / 2.0,
            quantity: 2.0,
            pnl,
            pnl_pct: pnl / 20.0 * 100.0,
            fees: 0.0,
            exit_reason: "exit_rule",
            holding_bars: 1,
            entry_order_id: a,
            exit_order_id: a,
        };
        j.trade(&trade(172_800, 2.0));
        j.trade(&trade(172_700, -1.0));
        for (ts, equity) in [(86_400, 1000.0), (90_000, 1001.0), (172_800, 1003.0)] {
            let positions = serde_json::json!([]);
            let state = "HALTED".to_string();
            j.checkpoint(Checkpoint { ts, cash: equity, equity, peak_equity: equity, state, positions });
        }
        let kept = j.evidence().cloned().unwrap();
        let id = j.run_id();
        j.close().unwrap();
        let c = open_read(&db).unwrap();
        let loaded = crate::runtime::run_evidence::RunEvidence::load(&c, id).unwrap();
        assert_eq!(kept, loaded);
        assert_eq!(kept.daily, vec![(1, 90_000, 1001.0), (2, 172_800, 1003.0)]);
        assert_eq!((kept.fired.len(), kept.halts.len(), kept.trades.len()), (2, 1, 2));
        assert_eq!(kept.fired_count("deny", i64::MIN, Some("t")), 1);
    }

    #[test]
    fn an_unfinished_run_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.sqlite");
        {
            let mut j = Journal::begin(&db, &info()).unwrap();
            j.order(&order(client_order_id("b", "s", "X", 0, 0)), "s", "X", OrderStatus::Rejected, "x");
            // dropped without finish: the transaction is rolled back
        }
        let c = Connection::open(&db).unwrap();
        let n: i64 = c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }
}
