//! What the journal writes: the rows the engine's events become, queued for the writer thread
//! and written by [`write_row`] inside the current transaction.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use rusqlite::{Connection, params};

use crate::engine::orders::{ClientOrderId, Trade};
use crate::engine::trading_state::StateChange;

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
pub(super) struct OrderRow {
    pub(super) order_no: i64,
    pub(super) client_order_id: ClientOrderId,
    pub(super) created_ts: i64,
    pub(super) strategy: Arc<str>,
    pub(super) symbol: Arc<str>,
    pub(super) side: &'static str,
    pub(super) intent: &'static str,
    pub(super) order_type: &'static str,
    pub(super) stop_price: Option<f64>,
    pub(super) limit_price: Option<f64>,
    pub(super) time_in_force: &'static str,
    pub(super) quantity: f64,
    pub(super) quantity_kind: &'static str,
    pub(super) reference_price: f64,
    pub(super) notional: f64,
    pub(super) reason: &'static str,
    pub(super) status: &'static str,
    pub(super) status_reason: Option<String>,
    pub(super) updated_ts: i64,
    /// Revision of the bundle that created it.
    pub(super) bundle_revision: Arc<str>,
}

/// A write of the caller's own, given the connection and the run id.
pub(super) type Write = Box<dyn FnOnce(&Connection, i64) -> rusqlite::Result<()> + Send>;

/// A row for the writer thread.
pub(super) enum Row {
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
    /// Any other write, in the current transaction (broker records: `crate::runtime::journal::broker_log`).
    Exec(Write),
    /// Commits what was written so far (a transaction starts again with the next row).
    Commit,
    /// A barrier: answered once every row before it is written (and committed, when a
    /// checkpoint came just before).
    Sync(SyncSender<Result<(), String>>),
}

/// What a restarted bot needs from its unfinished run ([`super::Journal::resume`]).
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
pub(super) const BATCH: usize = 256;

/// At most this many checkpoints share one commit (see the writer's group commit).
pub(super) const GROUP_COMMIT: usize = 1024;

/// The longest a checkpoint waits for the checkpoints that share its commit (wall time; see
/// the writer's group commit).
pub(super) const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

pub(super) fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

pub(super) fn write_row(conn: &Connection, run_id: i64, bot: &str, row: &Row) -> rusqlite::Result<usize> {
    match row {
        Row::Order(o) => insert_order(&mut *conn.prepare_cached(INSERT_ORDER)?, run_id, o),
        Row::Fill { .. } => insert_fill(&mut *conn.prepare_cached(INSERT_FILL)?, run_id, row),
        Row::Trade(no, t) => insert_trade(&mut *conn.prepare_cached(INSERT_TRADE)?, run_id, *no, t),
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
        Row::Control(c) => crate::runtime::journal::control::write_state(conn, bot, c, "engine").map(|()| 1),
        // Handled by the writer loop.
        Row::Exec(_) | Row::Sync(_) | Row::Commit => Ok(0),
        Row::Note { ts, kind, origin, symbol, script, message } => conn
            .prepare_cached(
                "INSERT INTO events (run_id, ts, kind, origin, symbol, script, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![run_id, ts, kind, &**origin, &**symbol, &**script, message]),
    }
}

/// `INSERT` of an order row (also kept prepared by the writer: the rows of every order).
pub(super) const INSERT_ORDER: &str = "INSERT INTO orders (run_id, order_no, client_order_id, created_ts, strategy, symbol, side, intent, \
     order_type, stop_price, limit_price, time_in_force, quantity, quantity_kind, reference_price, notional, \
     reason, status, status_reason, updated_ts, bundle_revision) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)";

/// `INSERT` of a fill row.
pub(super) const INSERT_FILL: &str = "INSERT INTO fills (run_id, client_order_id, ts, symbol, side, quantity, price, \
     commission, slippage_cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// `INSERT` of a round-trip trade row.
pub(super) const INSERT_TRADE: &str = "INSERT INTO trades (run_id, trade_no, strategy, symbol, entry_ts, entry_price, \
     exit_ts, exit_price, quantity, pnl, pnl_pct, fees, exit_reason, holding_bars, entry_order_id, exit_order_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// Writes order `o` of run `run_id` with [`INSERT_ORDER`] prepared in `st`.
pub(super) fn insert_order(st: &mut rusqlite::Statement<'_>, run_id: i64, o: &OrderRow) -> rusqlite::Result<usize> {
    st.execute(params![
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
    ])
}

/// Writes a [`Row::Fill`] of run `run_id` with [`INSERT_FILL`] prepared in `st` (other rows: 0).
pub(super) fn insert_fill(st: &mut rusqlite::Statement<'_>, run_id: i64, row: &Row) -> rusqlite::Result<usize> {
    let Row::Fill { client_order_id, ts, symbol, side, quantity, price, commission, slippage_cost } = row else {
        return Ok(0);
    };
    st.execute(params![
        run_id,
        client_order_id.as_str(),
        ts,
        &**symbol,
        side,
        quantity,
        price,
        commission,
        slippage_cost
    ])
}

/// Writes trade `t` (number `no`) of run `run_id` with [`INSERT_TRADE`] prepared in `st`.
pub(super) fn insert_trade(
    st: &mut rusqlite::Statement<'_>,
    run_id: i64,
    no: i64,
    t: &Trade,
) -> rusqlite::Result<usize> {
    st.execute(params![
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
    ])
}
