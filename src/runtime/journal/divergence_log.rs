//! The divergence checks of a bot's runs (`dsl report divergence`), one `divergence_checks` row
//! per check: the bot, the run, the wall-clock time (UTC seconds), the mean absolute fill price
//! difference (bps), the orders placed on one side only, the orders filled on both sides, and
//! the whole report (JSON). Gate rules read the newest check of each run
//! (`metric.divergence_bps`, `metric.missing_orders`).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{db_err, now, schema};
use crate::diagnostics::Diagnostic;

/// Records one check (committed at once).
///
/// # Errors
/// When the journal cannot be opened or written.
pub fn record(
    path: &Path,
    bot: &str,
    run_id: i64,
    divergence_bps: f64,
    missing_orders: i64,
    fills: i64,
    report: &serde_json::Value,
) -> Result<(), Diagnostic> {
    let conn = schema::open(path)?;
    conn.execute(
        "INSERT INTO divergence_checks (bot, run_id, ts, divergence_bps, missing_orders, fills, report) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![bot, run_id, now(), divergence_bps, missing_orders, fills, report.to_string()],
    )
    .map_err(|e| db_err(path, e))?;
    Ok(())
}

/// The newest check of run `run_id`: `(divergence_bps, missing_orders, fills)`; `None` when
/// the run was never checked (or the journal predates checks).
///
/// # Errors
/// SQLite's.
pub fn latest(conn: &Connection, run_id: i64) -> rusqlite::Result<Option<(f64, i64, i64)>> {
    if !schema::table_exists(conn, "divergence_checks")? {
        return Ok(None);
    }
    conn.prepare_cached(
        "SELECT divergence_bps, missing_orders, fills FROM divergence_checks WHERE run_id = ?1 \
         ORDER BY check_id DESC LIMIT 1",
    )?
    .query_row(params![run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .optional()
}
