//! A bot's status read from its journal database (`dsl status`).
//!
//! Reads only: the trading state from the control records ([`crate::runtime::journal::control`]), the bot's
//! latest paper run with its last committed checkpoint (`run_status`), its closed trades and
//! its pending approvals. A running bot commits a checkpoint per timestamp, so this shows the
//! bot as of its last completed timestamp. Amounts are in the account currency; drawdown is a
//! fraction of the peak.

use crate::runtime::journal::db_err;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::diagnostics::Diagnostic;

/// The bot's state and latest run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BotStatus {
    /// Bot name.
    pub bot: String,
    /// `ACTIVE`, `REDUCING` or `HALTED`.
    pub state: String,
    /// Since when (UTC seconds).
    pub state_since: i64,
    /// Reason code of the last change (`policy/rule_id`, `manual_halt`, `resume`, ...).
    pub state_reason: String,
    /// Its message.
    pub state_message: String,
    /// The latest paper run, if any.
    pub run: Option<RunStatus>,
    /// Approval requests waiting for a person.
    pub pending_approvals: i64,
    /// The phase a promotion or demotion set, with its reason (none before the first: the
    /// manifest's `phase:` is active then).
    pub phase: Option<(String, String)>,
}

/// A run as of its last checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunStatus {
    /// Journal run id.
    pub run_id: i64,
    /// Run kind (`paper`).
    pub kind: String,
    /// `running`, `completed` or `abandoned`.
    pub status: String,
    /// Bundle revision it runs under (after any hot reload).
    pub bundle_revision: String,
    /// Last bar time committed (UTC seconds).
    pub last_ts: Option<i64>,
    /// Cash (currency).
    pub cash: f64,
    /// Equity at the last closes (currency).
    pub equity: f64,
    /// Highest equity (currency).
    pub peak_equity: f64,
    /// `(peak - equity) / peak` (fraction).
    pub drawdown: f64,
    /// Sum of closed trades' pnl after costs (currency).
    pub realized_pnl: f64,
    /// Closed round trips.
    pub closed_trades: i64,
    /// Open positions.
    pub positions: Vec<PositionStatus>,
}

/// An open position at the last checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionStatus {
    /// Strategy holding it.
    pub strategy: String,
    /// Symbol.
    pub symbol: String,
    /// Units held.
    pub quantity: f64,
    /// Average entry fill price (currency per unit).
    pub entry_price: f64,
    /// Last close (currency per unit).
    pub last_price: f64,
    /// `(last - entry) * quantity` (currency).
    pub unrealized_pnl: f64,
}

/// Reads the status of `bot` from the journal at `path`.
///
/// # Errors
/// When the database does not exist or cannot be read.
pub fn read_status(path: &Path, bot: &str) -> Result<BotStatus, Diagnostic> {
    // Read-only: a journal the reader may not write (a copy, a read-only mount) can be read.
    let conn = crate::runtime::journal::open_read_checked(path)?;
    let state = crate::runtime::journal::control::read_state(&conn, path, bot)?;
    let has_runs = crate::runtime::journal::table_exists(&conn, "run_status").map_err(|e| db_err(path, e))?;
    let run = if has_runs { latest_run(&conn, bot).map_err(|e| db_err(path, e))? } else { None };
    let has_approvals = crate::runtime::journal::table_exists(&conn, "approvals").map_err(|e| db_err(path, e))?;
    let pending_approvals = if has_approvals {
        conn.query_row(
            "SELECT COUNT(*) FROM approvals WHERE bot = CAST(?1 AS TEXT) AND status = 'pending'",
            params![bot],
            |r| r.get(0),
        )
        .map_err(|e| db_err(path, e))?
    } else {
        0
    };
    let has_phase = crate::runtime::journal::table_exists(&conn, "phase_state").map_err(|e| db_err(path, e))?;
    let phase = if has_phase {
        conn.query_row("SELECT phase, reason FROM phase_state WHERE bot = CAST(?1 AS TEXT)", params![bot], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(|e| db_err(path, e))?
    } else {
        None
    };
    Ok(BotStatus {
        phase,
        bot: bot.to_string(),
        state: state.mode.as_str().to_string(),
        state_since: state.since,
        state_reason: state.reason,
        state_message: state.message,
        run,
        pending_approvals,
    })
}

fn latest_run(conn: &Connection, bot: &str) -> rusqlite::Result<Option<RunStatus>> {
    let row = conn
        .query_row(
            "SELECT r.run_id, r.kind, r.status, r.bundle_revision, s.ts, s.cash, s.equity, s.peak_equity, s.positions \
             FROM runs r LEFT JOIN run_status s ON s.run_id = r.run_id \
             WHERE r.bot = CAST(?1 AS TEXT) AND r.kind = 'paper' ORDER BY r.run_id DESC LIMIT 1",
            params![bot],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                    r.get::<_, Option<f64>>(6)?,
                    r.get::<_, Option<f64>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            },
        )
        .optional()?;
    let Some((run_id, kind, status, bundle_revision, last_ts, cash, equity, peak, positions)) = row else {
        return Ok(None);
    };
    // The revision in force: the last accepted hot reload's (journals from before hot reload
    // have no `reloads` table).
    let bundle_revision =
        crate::runtime::journal::reload_log::in_force(conn, run_id, &bundle_revision).unwrap_or(bundle_revision);
    let (realized_pnl, closed_trades) =
        conn.query_row("SELECT COALESCE(SUM(pnl), 0), COUNT(*) FROM trades WHERE run_id = ?1", params![run_id], |r| {
            Ok((r.get::<_, f64>(0)?, r.get::<_, i64>(1)?))
        })?;
    let positions: Vec<PositionStatus> = positions.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default();
    let (cash, equity) = (cash.unwrap_or(f64::NAN), equity.unwrap_or(f64::NAN));
    let peak_equity = peak.unwrap_or(f64::NAN);
    let drawdown = if peak_equity > 0.0 { (peak_equity - equity) / peak_equity } else { 0.0 };
    Ok(Some(RunStatus {
        run_id,
        kind,
        status,
        bundle_revision,
        last_ts,
        cash,
        equity,
        peak_equity,
        drawdown,
        realized_pnl,
        closed_trades,
        positions,
    }))
}
