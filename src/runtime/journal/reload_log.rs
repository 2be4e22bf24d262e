//! What a running bot's hot reloads did, in its journal, and the texts of every bundle
//! revision it ran under.
//!
//! | table | one row per |
//! | --- | --- |
//! | `bundle_texts` | bundle revision a run used: the manifest's name and every document's and script's text (JSON `[[name, text], ...]`), so a restarted bot can rebuild it exactly (the loader's `Stored` files) |
//! | `reloads` | reload the running bot saw, at the bar time `ts` before which it took effect: `outcome` (`accepted`, `rejected`: the documents had errors, `refused`: valid but not swappable mid-run), old and new revision, the files that triggered it, what changed (JSON), the strategies retired by it (JSON `[[strategy, symbol], ...]`), and a message (the errors, file:line:column) |
//!
//! Rows are written in the transaction of the timestamp they precede, so they are committed
//! together with the decisions the new rules made; a restart replays the accepted ones at the
//! same bar times.

use crate::runtime::journal::db_err;
use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::diagnostics::Diagnostic;
use crate::dsl::bundle::Bundle;

/// One reload as journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadEntry {
    /// Bar time before which it took effect (UTC seconds).
    pub ts: i64,
    /// `accepted`, `rejected` or `refused`.
    pub outcome: &'static str,
    /// Revision in force before.
    pub old_revision: String,
    /// The rebuilt revision (`None` when the documents had errors).
    pub new_revision: Option<String>,
    /// Files whose change triggered it (`restart` when a restarted bot found edited documents).
    pub trigger: Vec<String>,
    /// What changed ([`crate::dsl::bundle_diff::ChangeSummary`] as JSON).
    pub changes: serde_json::Value,
    /// `(strategy, symbol)` kept to close what they hold.
    pub retired: Vec<(String, String)>,
    /// Errors found in the documents.
    pub errors: usize,
    /// Warnings found.
    pub warnings: usize,
    /// The diagnostics or the reason for a refusal.
    pub message: String,
}

/// Writes `e` (for the journal's writer thread).
///
/// # Errors
/// SQLite's.
pub fn insert(conn: &Connection, run_id: i64, e: &ReloadEntry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO reloads (run_id, ts, outcome, old_revision, new_revision, trigger, changes, retired, errors, \
         warnings, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            run_id,
            e.ts,
            e.outcome,
            e.old_revision,
            e.new_revision,
            serde_json::to_string(&e.trigger).unwrap_or_default(),
            e.changes.to_string(),
            serde_json::to_string(&e.retired).unwrap_or_default(),
            e.errors as i64,
            e.warnings as i64,
            e.message
        ],
    )
    .map(|_| ())
}

/// Stores the texts of `bundle` under its revision (once; later calls keep the first).
///
/// # Errors
/// SQLite's.
pub fn store_texts(conn: &Connection, bundle: &Bundle) -> rusqlite::Result<()> {
    let Some(manifest) = bundle.sources.first() else { return Ok(()) };
    let sources: Vec<(&str, &str)> = bundle.sources.iter().map(|s| (s.name.as_str(), s.text.as_str())).collect();
    conn.execute(
        "INSERT OR IGNORE INTO bundle_texts (revision, manifest, sources) VALUES (?1, ?2, ?3)",
        params![bundle.revision, manifest.name, serde_json::to_string(&sources).unwrap_or_default()],
    )
    .map(|_| ())
}

/// A stored revision: the manifest's name and the texts by name.
pub type StoredBundle = (String, HashMap<String, String>);

/// The stored texts of `revision`: the manifest's name and the texts by name.
///
/// # Errors
/// When the journal cannot be read; `Ok(None)` when the revision was not stored.
pub fn texts(path: &Path, revision: &str) -> Result<Option<StoredBundle>, Diagnostic> {
    let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
    let row: Option<(String, String)> = conn
        .query_row("SELECT manifest, sources FROM bundle_texts WHERE revision = ?1", params![revision], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(|e| db_err(path, e))?;
    let Some((manifest, sources)) = row else { return Ok(None) };
    let pairs: Vec<(String, String)> = serde_json::from_str(&sources).map_err(|e| db_err(path, e))?;
    Ok(Some((manifest, pairs.into_iter().collect())))
}

/// The bundle of `revision` rebuilt from the texts the journal stored for it; `None` when
/// they were not stored, do not load, or no longer give that revision.
///
/// # Errors
/// When the journal cannot be read.
pub fn rebuild(path: &Path, revision: &str) -> Result<Option<Bundle>, Diagnostic> {
    let Some((manifest, texts)) = texts(path, revision)? else { return Ok(None) };
    let loaded = crate::runtime::library::loader::load_bundle_from(
        Path::new(&manifest),
        &crate::runtime::library::loader::Stored(texts),
    );
    Ok(loaded.ok().map(|l| l.bundle).filter(|b| b.revision == revision))
}

/// The accepted reloads of run `run_id` up to bar time `until` (inclusive), oldest first:
/// `(ts, new_revision)`.
///
/// # Errors
/// When the journal cannot be read.
pub fn accepted(path: &Path, run_id: i64, until: i64) -> Result<Vec<(i64, String)>, Diagnostic> {
    let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
    let mut st = conn
        .prepare(
            "SELECT ts, new_revision FROM reloads WHERE run_id = ?1 AND outcome = 'accepted' AND ts <= ?2 \
             ORDER BY rowid",
        )
        .map_err(|e| db_err(path, e))?;
    let rows = st.query_map(params![run_id, until], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| db_err(path, e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| db_err(path, e))
}

/// The revision run `run_id` had in force at its last committed timestamp: the last accepted
/// reload's, or `started` (the run's first) when there was none.
///
/// # Errors
/// When the journal cannot be read.
pub fn in_force(conn: &Connection, run_id: i64, started: &str) -> rusqlite::Result<String> {
    let last: Option<String> = conn
        .query_row(
            "SELECT new_revision FROM reloads WHERE run_id = ?1 AND outcome = 'accepted' ORDER BY rowid DESC LIMIT 1",
            params![run_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(last.unwrap_or_else(|| started.to_string()))
}
