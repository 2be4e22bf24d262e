//! The verdicts of switchover tests (`dsl run --switchover`), one `switchover_checks` row per
//! start: the bot, the wall-clock time (UTC seconds), whether every live gate held, the live
//! account number the live API reported, where it was asked (and whether that was a mock) and
//! the four gates as checked (JSON list of `{gate, held, detail}`).

use std::path::Path;

use rusqlite::{OptionalExtension, params};

use super::{db_err, schema};
use crate::diagnostics::Diagnostic;

/// A journaled verdict, as read back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckRow {
    /// When the gates were checked (UTC seconds, wall clock).
    pub ts: i64,
    /// Every gate held.
    pub passed: bool,
    /// The live account the live API reported, when it answered.
    pub live_account: Option<String>,
    /// Where the account was looked up.
    pub checked_at: String,
    /// That was a mock, not Alpaca's live host.
    pub mock: bool,
    /// The gates (JSON list).
    pub gates: serde_json::Value,
}

/// Records the verdict `check` of bot `bot` (committed at once).
///
/// # Errors
/// When the journal cannot be opened or written.
pub fn record(path: &Path, bot: &str, check: &CheckRow) -> Result<(), Diagnostic> {
    let conn = schema::open(path)?;
    conn.execute(
        "INSERT INTO switchover_checks (bot, ts, passed, live_account, checked_at, mock, gates) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![bot, check.ts, check.passed, check.live_account, check.checked_at, check.mock, check.gates.to_string()],
    )
    .map_err(|e| db_err(path, e))?;
    Ok(())
}

/// The newest verdict of `bot` on an open (read) connection, `None` when it never ran a
/// switchover test (or the journal predates them).
///
/// # Errors
/// SQLite's.
pub fn latest(conn: &rusqlite::Connection, bot: &str) -> rusqlite::Result<Option<CheckRow>> {
    if !schema::table_exists(conn, "switchover_checks")? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT ts, passed, live_account, checked_at, mock, gates FROM switchover_checks \
         WHERE bot = CAST(?1 AS TEXT) ORDER BY check_id DESC LIMIT 1",
        [bot],
        |r| {
            let gates: String = r.get(5)?;
            Ok(CheckRow {
                ts: r.get(0)?,
                passed: r.get(1)?,
                live_account: r.get(2)?,
                checked_at: r.get(3)?,
                mock: r.get(4)?,
                gates: serde_json::from_str(&gates).unwrap_or(serde_json::Value::Null),
            })
        },
    )
    .optional()
}
