//! The journal's own tables and views, their migrations from earlier versions, and opening a
//! journal to write or to read (read-only journals stay readable; regular files only).
//!
//! Every table the journal file holds is defined here, with its migrations: the journal's own
//! ([`SCHEMA`]), the bot's control records ([`CONTROL`]), broker records ([`BROKER`]), reload
//! records ([`RELOADS`]), graduation records ([`PHASES`]) and research records ([`SWEEPS`]). The modules that read and write
//! them create them through this module.
//!
//! **Queries that run every bar or every day** compare text columns with
//! `CAST(?n AS TEXT)`, not a bare `?n`: for `bot = ?1 … ORDER BY`, SQLite's WHERE-clause
//! constant propagation ties the plan to the bound text, so a cached statement is compiled
//! again at every run (measured: the running bot's daily demotion check and per-bar request
//! poll re-prepared each time, about half of their cost).

use std::path::Path;

use rusqlite::Connection;

use crate::diagnostics::{Diagnostic, codes};

use super::db_err;

/// The journal's own tables: runs, orders, fills, trades, decisions, events, state changes,
/// the running bot's status and daily equity.
pub const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS heartbeat (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id),
    wall_ts INTEGER NOT NULL,
    bar_ts INTEGER,
    state TEXT NOT NULL,
    broker TEXT NOT NULL,
    bar_secs INTEGER NOT NULL,
    live INTEGER NOT NULL
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

/// Whether the database has a table (or view) called `name`: readers of journals written by
/// other commands or earlier versions check before they query.
///
/// # Errors
/// SQLite's.
pub fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE name = ?1")?.exists([name])
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
    crate::runtime::files::open_regular(path)?;
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| db_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| db_err(path, e))?;
    Ok(conn)
}

/// Brings a journal written by an earlier version up to the current tables: adds
/// `state_changes.reset` and `policy_decisions.bundle_revision` (and rebuilds their views)
/// when missing.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
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
pub(super) fn open(path: &Path) -> Result<Connection, Diagnostic> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot create `{}`: {e}", dir.display())))?;
    }
    if path.exists() {
        crate::runtime::files::open_regular(path)?;
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
    conn.execute_batch(BROKER).map_err(|e| db_err(path, e))?;
    conn.execute_batch(RELOADS).map_err(|e| db_err(path, e))?;
    // The graduation tables exist from the first run on: a running bot's daily demotion check
    // reads them, and a query on a missing table fails before SQLite can keep it prepared.
    conn.execute_batch(PHASES).map_err(|e| db_err(path, e))?;
    conn.execute_batch(SWEEPS).map_err(|e| db_err(path, e))?;
    migrate(&conn).map_err(|e| db_err(path, e))?;
    migrate_phases(&conn).map_err(|e| db_err(path, e))?;
    Ok(conn)
}

/// The bot's control records: its trading state, requests to halt or resume it, the approval
/// queue ([`super::control`]).
pub const CONTROL: &str = "
CREATE TABLE IF NOT EXISTS bot_state (
    bot TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    since_ts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    reset TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bot_state_log (
    bot TEXT NOT NULL,
    ts INTEGER NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    reset TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    request_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    client_order_id TEXT NOT NULL UNIQUE,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    intent TEXT NOT NULL,
    quantity REAL NOT NULL,
    notional REAL NOT NULL,
    rule TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_ts INTEGER,
    note TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    delivered_ts INTEGER
);
CREATE TABLE IF NOT EXISTS control_requests (
    request_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    requested_ts INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    run_id INTEGER,
    applied_ts INTEGER
);
";

/// Broker records: each order sent and what the broker said of it ([`super::broker_log`]).
pub const BROKER: &str = "
CREATE TABLE IF NOT EXISTS broker_orders (
    run_id INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    quantity REAL NOT NULL,
    limit_price REAL,
    stop_price REAL,
    state TEXT NOT NULL,
    broker_order_id TEXT,
    broker_status TEXT,
    message TEXT,
    bid REAL,
    ask REAL,
    mid REAL,
    fill_ts INTEGER,
    fill_price REAL,
    filled_qty REAL,
    slippage_bps REAL,
    PRIMARY KEY (run_id, client_order_id)
);
CREATE TABLE IF NOT EXISTS broker_events (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    quantity REAL,
    price REAL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
";

/// Reload records and the texts of every bundle a run used ([`super::reload_log`]).
pub const RELOADS: &str = "
CREATE TABLE IF NOT EXISTS bundle_texts (
    revision TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    sources TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reloads (
    run_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    old_revision TEXT NOT NULL,
    new_revision TEXT,
    trigger TEXT NOT NULL,
    changes TEXT NOT NULL,
    retired TEXT NOT NULL,
    errors INTEGER NOT NULL,
    warnings INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS v_reloads AS SELECT run_id,
    strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, outcome, old_revision, new_revision,
    trigger, changes, retired, errors, warnings, message FROM reloads;
";

/// Research records: every trial of a sweep run (`runs.kind = 'sweep'`; the run's settings
/// hold the search space, method, seed and objective) ([`super::sweep_log`]).
pub const SWEEPS: &str = "
CREATE TABLE IF NOT EXISTS sweep_trials (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    trial INTEGER NOT NULL,
    params TEXT NOT NULL,
    objective REAL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, trial)
);
";

/// Graduation records: the phase each bot is in, approvals, the phase log
/// (`phases::phase_store`), the verdicts of switchover tests (`journal::switchover_log`), divergence checks
/// (`journal::divergence_log`).
pub const PHASES: &str = "
CREATE TABLE IF NOT EXISTS phase_state (
    bot TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    since_ts INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS phase_approvals (
    approval_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    phase TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    phrase TEXT NOT NULL,
    ts INTEGER NOT NULL,
    report_hash TEXT NOT NULL,
    report TEXT NOT NULL,
    source TEXT NOT NULL,
    used_ts INTEGER
);
CREATE TABLE IF NOT EXISTS phase_log (
    log_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    from_phase TEXT NOT NULL,
    to_phase TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    report TEXT NOT NULL,
    report_hash TEXT NOT NULL,
    bundle_revision TEXT NOT NULL,
    last_run_id INTEGER
);
CREATE TABLE IF NOT EXISTS switchover_checks (
    check_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    ts INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    live_account TEXT,
    checked_at TEXT NOT NULL,
    mock INTEGER NOT NULL,
    gates TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS divergence_checks (
    check_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    divergence_bps REAL NOT NULL,
    missing_orders INTEGER NOT NULL,
    fills INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS v_phase_log AS SELECT log_id, bot,
    strftime('%Y-%m-%dT%H:%M:%SZ', ts, 'unixepoch') AS time, kind, from_phase, to_phase, actor, reason,
    report_hash, bundle_revision FROM phase_log;
";

/// Brings the control tables of an earlier version up to [`CONTROL`] (`approvals.delivered_ts`).
///
/// # Errors
/// SQLite's.
pub fn migrate_control(conn: &Connection) -> rusqlite::Result<()> {
    if !conn.prepare("SELECT 1 FROM pragma_table_info('approvals') WHERE name = 'delivered_ts'")?.exists([])? {
        conn.execute_batch("ALTER TABLE approvals ADD COLUMN delivered_ts INTEGER")?;
    }
    Ok(())
}

/// Brings the graduation tables of an earlier version up to [`PHASES`]
/// (`phase_log.last_run_id`; older entries compare by time only).
///
/// # Errors
/// SQLite's.
pub fn migrate_phases(conn: &Connection) -> rusqlite::Result<()> {
    if !has_last_run(conn)? {
        conn.execute_batch("ALTER TABLE phase_log ADD COLUMN last_run_id INTEGER")?;
    }
    Ok(())
}

/// `Ok(None)` when `result` is the error of a query on a table that does not exist yet (the
/// journal's tables of a kind are created by their first write), else `result`. Cheaper than
/// asking [`table_exists`] before every query of a check that runs every day.
///
/// # Errors
/// Any other error of `result`.
pub fn absent_table_as_none<T>(result: rusqlite::Result<Option<T>>) -> rusqlite::Result<Option<T>> {
    match result {
        Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.starts_with("no such table") => Ok(None),
        r => r,
    }
}

/// `phase_log` has `last_run_id` (the newest run when the entry was written).
///
/// # Errors
/// SQLite's.
pub fn has_last_run(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM pragma_table_info('phase_log') WHERE name = 'last_run_id'")?.exists([])
}
