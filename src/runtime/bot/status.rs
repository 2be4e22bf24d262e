//! A bot's status read from its journal database (`dsl status`).
//!
//! **Health.** A running bot writes a wall-clock heartbeat (the `heartbeat` table) at every
//! checkpoint, and every 30 s while it waits (for a live feed's bars, or between the bars of a
//! paced replay). A running run is **stale** when its heartbeat is older than
//! [`HEARTBEAT_STALE_SECS`] (the process died or hangs), or when a bot on a live feed has had no
//! new bar for three bar lengths (at least 5 minutes) while its market's session is open (the
//! feed stalled; outside the session no bar is expected). [`BotStatus::problems`] lists that
//! with a HALTED state and a failing broker: what `dsl status --check` exits non-zero for.
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

/// A heartbeat older than this (seconds) means the bot is not running: four missed 30 s beats.
pub const HEARTBEAT_STALE_SECS: i64 = 120;

/// The last sign of life of a running bot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Heartbeat {
    /// When it was written, wall clock (UTC seconds).
    pub wall_ts: i64,
    /// Seconds from it to the time the status is read for.
    pub age_secs: i64,
    /// The last bar time processed then (UTC seconds).
    pub bar_ts: Option<i64>,
    /// The trading state then.
    pub state: String,
    /// The broker's health then: `sim`, `ok` or `failing: ...`.
    pub broker: String,
    /// The bars' length (seconds).
    pub bar_secs: i64,
    /// The bot is on a live feed.
    pub live: bool,
}

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
    /// Why the running run is stale, when it is (see the module doc).
    pub stale: Option<String>,
    /// The newest switchover test's verdict (`dsl run --switchover`), when there was one.
    pub switchover: Option<crate::runtime::journal::switchover_log::CheckRow>,
    /// What `dsl status --check` fails for: staleness, a HALTED state, a failing broker.
    pub problems: Vec<String>,
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
    /// Its last heartbeat, if it wrote one.
    pub heartbeat: Option<Heartbeat>,
    /// The symbols it trades.
    pub symbols: Vec<String>,
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

/// Reads the status of `bot` from the journal at `path`, its health judged at `now` (UTC
/// seconds, the wall clock for an operator).
///
/// # Errors
/// When the database does not exist or cannot be read.
pub fn read_status(path: &Path, bot: &str, now: i64) -> Result<BotStatus, Diagnostic> {
    // Read-only: a journal the reader may not write (a copy, a read-only mount) can be read.
    let conn = crate::runtime::journal::open_read_checked(path)?;
    let state = crate::runtime::journal::control::read_state(&conn, path, bot)?;
    let has_runs = crate::runtime::journal::table_exists(&conn, "run_status").map_err(|e| db_err(path, e))?;
    let run = if has_runs { latest_run(&conn, bot, now).map_err(|e| db_err(path, e))? } else { None };
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
    let switchover = crate::runtime::journal::switchover_log::latest(&conn, bot).map_err(|e| db_err(path, e))?;
    let stale = run.as_ref().and_then(|r| staleness(r, now));
    let mut problems: Vec<String> = stale.iter().map(|s| format!("STALE: {s}")).collect();
    if state.mode == crate::engine::trading_state::TradingState::Halted {
        problems.push(format!("HALTED since {}: {}", crate::engine::market::format_utc(state.since), state.message));
    }
    if let Some(h) = run.as_ref().filter(|r| r.status == "running").and_then(|r| r.heartbeat.as_ref())
        && h.broker.starts_with("failing")
    {
        problems.push(format!("broker {}", h.broker));
    }
    Ok(BotStatus {
        switchover,
        stale,
        problems,
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

/// Why a running run is stale at `now`, if it is.
fn staleness(r: &RunStatus, now: i64) -> Option<String> {
    if r.status != "running" {
        return None;
    }
    let Some(h) = &r.heartbeat else {
        return Some("the run has written no heartbeat".into());
    };
    if h.age_secs > HEARTBEAT_STALE_SECS {
        return Some(format!(
            "no heartbeat for {} (last {}); the bot writes one at least every 30 s",
            age(h.age_secs),
            crate::engine::market::format_utc(h.wall_ts)
        ));
    }
    let bar_end = h.bar_ts? + h.bar_secs;
    let late = now - bar_end;
    let allowed = (3 * h.bar_secs).max(300);
    if h.live && late > allowed && market_open(&r.symbols, now) {
        return Some(format!(
            "no new bar for {} while the market is open (last bar {}, bars of {} s)",
            age(late),
            crate::engine::market::format_utc(h.bar_ts?),
            h.bar_secs
        ));
    }
    None
}

/// True when a session of some symbol's market is open at `now`.
fn market_open(symbols: &[String], now: i64) -> bool {
    use crate::engine::session::{Market, SessionClock};
    let mut markets: Vec<Market> = symbols.iter().map(|s| Market::for_symbol(s)).collect();
    markets.dedup();
    markets.iter().any(|m| SessionClock::new(*m).fields(now, 60).is_open == 1.0)
}

/// Seconds as `1h 2m 5s` (a negative age, a clock behind the bot's, as `0s`).
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

fn latest_run(conn: &Connection, bot: &str, now: i64) -> rusqlite::Result<Option<RunStatus>> {
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
    let heartbeat = if crate::runtime::journal::table_exists(conn, "heartbeat")? {
        conn.query_row(
            "SELECT wall_ts, bar_ts, state, broker, bar_secs, live FROM heartbeat WHERE run_id = ?1",
            params![run_id],
            |r| {
                let wall_ts: i64 = r.get(0)?;
                Ok(Heartbeat {
                    wall_ts,
                    age_secs: now.saturating_sub(wall_ts),
                    bar_ts: r.get(1)?,
                    state: r.get(2)?,
                    broker: r.get(3)?,
                    bar_secs: r.get(4)?,
                    live: r.get(5)?,
                })
            },
        )
        .optional()?
    } else {
        None
    };
    let symbols: Vec<String> = conn
        .query_row("SELECT symbols FROM runs WHERE run_id = ?1", params![run_id], |r| r.get::<_, String>(0))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
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
        heartbeat,
        symbols,
    }))
}
