//! Alerts sent by the watchdog (`dsl status --check --alert`), one `watchdog_alerts` row per
//! channel tried: the bot, the wall-clock time (UTC seconds), the episode (the stale run's last
//! heartbeat, or the time the bot was halted), the message, the channel and the error (`NULL`
//! when delivered). A failing check alerts once per episode: a timer running the check every
//! few minutes does not repeat it while nothing changed.

use std::path::Path;

use rusqlite::params;

use super::{db_err, now, schema};
use crate::diagnostics::Diagnostic;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS watchdog_alerts (
    alert_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    ts INTEGER NOT NULL,
    episode INTEGER NOT NULL,
    message TEXT NOT NULL,
    channel TEXT NOT NULL,
    error TEXT
);";

/// Whether an alert of `bot` for `episode` with `message` was delivered on some channel.
///
/// # Errors
/// When the journal cannot be read.
pub fn delivered(path: &Path, bot: &str, episode: i64, message: &str) -> Result<bool, Diagnostic> {
    let conn = schema::open_read(path)?;
    if !schema::table_exists(&conn, "watchdog_alerts").map_err(|e| db_err(path, e))? {
        return Ok(false);
    }
    conn.prepare(
        "SELECT 1 FROM watchdog_alerts WHERE bot = ?1 AND episode = ?2 AND message = ?3 AND error IS NULL LIMIT 1",
    )
    .and_then(|mut st| st.exists(params![bot, episode, message]))
    .map_err(|e| db_err(path, e))
}

/// Records what became of an alert on each channel (`(channel, error)`).
///
/// # Errors
/// When the journal cannot be written.
pub fn record(
    path: &Path,
    bot: &str,
    episode: i64,
    message: &str,
    outcomes: &[(&str, Option<String>)],
) -> Result<(), Diagnostic> {
    let conn = schema::open(path)?;
    conn.execute_batch(TABLE).map_err(|e| db_err(path, e))?;
    for (channel, error) in outcomes {
        conn.execute(
            "INSERT INTO watchdog_alerts (bot, ts, episode, message, channel, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![bot, now(), episode, message, channel, error],
        )
        .map_err(|e| db_err(path, e))?;
    }
    Ok(())
}
