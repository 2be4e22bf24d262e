//! A sweep's record in the journal: one `runs` row (`kind = 'sweep'`, the search space,
//! method, seed, objective and data in `settings`, the best trial and the trial count in
//! `metrics`) and one `sweep_trials` row per trial (its params and every metric, JSON), written
//! in one transaction: a sweep that fails to record leaves no trace.

use std::path::Path;

use rusqlite::params;

use super::{db_err, now, schema};
use crate::diagnostics::Diagnostic;

/// One trial as journaled.
pub struct TrialRecord<'a> {
    /// Its number in the sweep's list.
    pub trial: usize,
    /// Its params (JSON object: name → value).
    pub params: &'a serde_json::Value,
    /// Its objective (`None`: undefined).
    pub objective: Option<f64>,
    /// Its metrics (JSON object: `metric.*` name → value or null).
    pub metrics: &'a serde_json::Value,
}

/// Records a finished sweep of `bot` (bundle `revision`) with `settings` and `summary`, and
/// its trials. Returns the run id.
///
/// # Errors
/// When the journal cannot be opened or written (nothing is then recorded).
pub fn record(
    path: &Path,
    bot: &str,
    revision: &str,
    settings: &serde_json::Value,
    symbols: &[String],
    summary: &serde_json::Value,
    trials: &[TrialRecord<'_>],
) -> Result<i64, Diagnostic> {
    let mut conn = schema::open(path)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_err(path, e))?;
    let run_id = {
        tx.execute(
            "INSERT INTO runs (kind, bot, bundle_revision, started_ts, finished_ts, status, settings, symbols, metrics) \
             VALUES ('sweep', ?1, ?2, ?3, ?3, 'completed', ?4, ?5, ?6)",
            params![
                bot,
                revision,
                now(),
                settings.to_string(),
                serde_json::to_string(symbols).unwrap_or_default(),
                summary.to_string()
            ],
        )
        .map_err(|e| db_err(path, e))?;
        let run_id = tx.last_insert_rowid();
        let mut st = tx
            .prepare("INSERT INTO sweep_trials (run_id, trial, params, objective, metrics) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(|e| db_err(path, e))?;
        for t in trials {
            st.execute(params![run_id, t.trial as i64, t.params.to_string(), t.objective, t.metrics.to_string()])
                .map_err(|e| db_err(path, e))?;
        }
        run_id
    };
    tx.commit().map_err(|e| db_err(path, e))?;
    Ok(run_id)
}
