//! The SQLite bar store written by `dsl import` and read by backtests.
//!
//! Schema (`schema_version` 1):
//!
//! ```sql
//! bars(symbol, timeframe, ts, open, high, low, close, volume)  -- key (symbol, timeframe, ts)
//! imports(id, imported_at, source, sha256, symbol, timeframe, rows, first_ts, last_ts)
//! meta(key, value)
//! ```
//!
//! `ts` is the bar open time in UTC seconds. An import runs in one transaction: either every
//! bar of every file lands, or none does. Re-importing a bar replaces it.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::timeframe::Timeframe;
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::market::BarSeries;

use crate::runtime::data::timeparse::format_utc;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bars (
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    ts INTEGER NOT NULL,
    open REAL NOT NULL,
    high REAL NOT NULL,
    low REAL NOT NULL,
    close REAL NOT NULL,
    volume REAL NOT NULL,
    PRIMARY KEY (symbol, timeframe, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY,
    imported_at TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    rows INTEGER NOT NULL,
    first_ts TEXT NOT NULL,
    last_ts TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
";

fn db_err(path: &Path, e: rusqlite::Error) -> Diagnostic {
    Diagnostic::error(codes::IO, format!("bar store `{}`: {e}", path.display()))
}

/// One file's series to import, with its source for the `imports` table.
pub struct ImportItem<'a> {
    /// The bars.
    pub series: &'a BarSeries,
    /// Timeframe label to store them under.
    pub timeframe: Timeframe,
    /// Source file name.
    pub source: String,
    /// SHA-256 of the source file.
    pub sha256: String,
}

/// Counts of one import.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportCounts {
    /// Bars written (new or replaced).
    pub written: usize,
    /// Bars that replaced an existing one.
    pub replaced: usize,
}

fn open(path: &Path) -> Result<Connection, Diagnostic> {
    let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db_err(path, e))?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| db_err(path, e))?;
    conn.execute_batch(SCHEMA).map_err(|e| db_err(path, e))?;
    Ok(conn)
}

/// Writes every item in one transaction.
///
/// # Errors
/// Any SQLite error; then nothing was written.
pub fn import(path: &Path, items: &[ImportItem<'_>]) -> Result<ImportCounts, Diagnostic> {
    let mut conn = open(path)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| db_err(path, e))?;
    let mut counts = ImportCounts::default();
    {
        let mut exists = tx
            .prepare_cached("SELECT 1 FROM bars WHERE symbol = ?1 AND timeframe = ?2 AND ts = ?3")
            .map_err(|e| db_err(path, e))?;
        let mut insert = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO bars (symbol, timeframe, ts, open, high, low, close, volume) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(|e| db_err(path, e))?;
        for item in items {
            let s = item.series;
            let tf = item.timeframe.to_string();
            for i in 0..s.len() {
                if exists.exists(params![s.symbol, tf, s.ts[i]]).map_err(|e| db_err(path, e))? {
                    counts.replaced += 1;
                }
                insert
                    .execute(params![s.symbol, tf, s.ts[i], s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i]])
                    .map_err(|e| db_err(path, e))?;
                counts.written += 1;
            }
            tx.execute(
                "INSERT INTO imports (imported_at, source, sha256, symbol, timeframe, rows, first_ts, last_ts) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    item.source,
                    item.sha256,
                    s.symbol,
                    tf,
                    s.len() as i64,
                    s.ts.first().map(|t| format_utc(*t)).unwrap_or_default(),
                    s.ts.last().map(|t| format_utc(*t)).unwrap_or_default(),
                ],
            )
            .map_err(|e| db_err(path, e))?;
        }
    }
    tx.commit().map_err(|e| db_err(path, e))?;
    Ok(counts)
}

/// Timeframes stored for a symbol.
///
/// # Errors
/// SQLite errors.
pub fn timeframes(path: &Path, symbol: &str) -> Result<Vec<String>, Diagnostic> {
    let conn = open_existing(path)?;
    let mut st = conn
        .prepare("SELECT DISTINCT timeframe FROM bars WHERE symbol = ?1 ORDER BY timeframe")
        .map_err(|e| db_err(path, e))?;
    let rows = st.query_map([symbol], |r| r.get::<_, String>(0)).map_err(|e| db_err(path, e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| db_err(path, e))
}

/// The last bar time stored for `symbol` in `timeframe` (UTC seconds); `None` without one (or
/// without a store).
///
/// # Errors
/// SQLite errors.
pub fn last_ts(path: &Path, symbol: &str, timeframe: Timeframe) -> Result<Option<i64>, Diagnostic> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = open(path)?;
    conn.query_row(
        "SELECT MAX(ts) FROM bars WHERE symbol = ?1 AND timeframe = ?2",
        params![symbol, timeframe.to_string()],
        |r| r.get::<_, Option<i64>>(0),
    )
    .map_err(|e| db_err(path, e))
}

/// One series the store holds: its symbol, timeframe and bar times (UTC seconds, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Symbol.
    pub symbol: String,
    /// Timeframe label (`1d`, `5m`).
    pub timeframe: String,
    /// Bar open times, oldest first.
    pub ts: Vec<i64>,
}

/// Every series of the store, by symbol then timeframe.
///
/// # Errors
/// A missing store, SQLite errors.
pub fn list(path: &Path) -> Result<Vec<Stored>, Diagnostic> {
    let conn = open_existing(path)?;
    let mut st = conn
        .prepare("SELECT symbol, timeframe, ts FROM bars ORDER BY symbol, timeframe, ts")
        .map_err(|e| db_err(path, e))?;
    let mut rows = st.query([]).map_err(|e| db_err(path, e))?;
    let mut out: Vec<Stored> = Vec::new();
    while let Some(r) = rows.next().map_err(|e| db_err(path, e))? {
        let (symbol, timeframe, ts): (String, String, i64) = (
            r.get(0).map_err(|e| db_err(path, e))?,
            r.get(1).map_err(|e| db_err(path, e))?,
            r.get(2).map_err(|e| db_err(path, e))?,
        );
        match out.last_mut() {
            Some(s) if s.symbol == symbol && s.timeframe == timeframe => s.ts.push(ts),
            _ => out.push(Stored { symbol, timeframe, ts: vec![ts] }),
        }
    }
    Ok(out)
}

fn open_existing(path: &Path) -> Result<Connection, Diagnostic> {
    if !path.exists() {
        return Err(Diagnostic::error(codes::IO, format!("bar store `{}` does not exist", path.display()))
            .help("create it with `dsl import FILE.csv --db PATH`"));
    }
    open(path)
}

/// Loads a symbol's bars. With `timeframe` `None`, the symbol must have exactly one timeframe.
///
/// # Errors
/// A missing store, no bars for the symbol, several timeframes, or SQLite errors.
pub fn load(path: &Path, symbol: &str, timeframe: Option<Timeframe>) -> Result<BarSeries, Diagnostic> {
    let conn = open_existing(path)?;
    let tf = match timeframe {
        Some(tf) => {
            let have: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM bars WHERE symbol = ?1 AND timeframe = ?2 LIMIT 1",
                    params![symbol, tf.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| db_err(path, e))?;
            if have.is_none() {
                let others = timeframes(path, symbol)?;
                return Err(Diagnostic::error(
                    codes::MISSING_DATA,
                    format!("no {tf} bars for `{symbol}` in `{}`", path.display()),
                )
                .help(if others.is_empty() {
                    format!("import them with `dsl import FILE.csv --symbol {symbol} --db {}`", path.display())
                } else {
                    format!("the store has {} bars for `{symbol}`", others.join(", "))
                }));
            }
            tf.to_string()
        }
        None => {
            let all = timeframes(path, symbol)?;
            match all.len() {
                1 => all[0].clone(),
                0 => {
                    return Err(Diagnostic::error(
                        codes::MISSING_DATA,
                        format!("no bars for `{symbol}` in `{}`", path.display()),
                    ));
                }
                _ => {
                    return Err(Diagnostic::error(
                        codes::MISSING_DATA,
                        format!("`{symbol}` has bars in several timeframes ({}); say which", all.join(", ")),
                    ));
                }
            }
        }
    };
    let mut st = conn
        .prepare("SELECT ts, open, high, low, close, volume FROM bars WHERE symbol = ?1 AND timeframe = ?2 ORDER BY ts")
        .map_err(|e| db_err(path, e))?;
    let mut rows = st.query(params![symbol, tf]).map_err(|e| db_err(path, e))?;
    let mut s = BarSeries::new(symbol);
    s.timeframe = tf.parse().ok();
    while let Some(r) = rows.next().map_err(|e| db_err(path, e))? {
        s.push(crate::engine::market::Bar {
            ts: r.get(0).map_err(|e| db_err(path, e))?,
            open: r.get(1).map_err(|e| db_err(path, e))?,
            high: r.get(2).map_err(|e| db_err(path, e))?,
            low: r.get(3).map_err(|e| db_err(path, e))?,
            close: r.get(4).map_err(|e| db_err(path, e))?,
            volume: r.get(5).map_err(|e| db_err(path, e))?,
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::market::Bar;

    fn series(sym: &str, n: i64) -> BarSeries {
        let mut s = BarSeries::new(sym);
        for i in 0..n {
            s.push(Bar { ts: i * 86_400, open: 1.0, high: 2.0, low: 0.5, close: 1.5 + i as f64, volume: 10.0 });
        }
        s
    }

    #[test]
    fn import_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bars.sqlite");
        let s = series("GOOG", 5);
        let item = ImportItem { series: &s, timeframe: Timeframe::DAILY, source: "g.csv".into(), sha256: "x".into() };
        let c = import(&db, &[item]).unwrap();
        assert_eq!(c, ImportCounts { written: 5, replaced: 0 });
        let item = ImportItem { series: &s, timeframe: Timeframe::DAILY, source: "g.csv".into(), sha256: "x".into() };
        assert_eq!(import(&db, &[item]).unwrap().replaced, 5);
        let back = load(&db, "GOOG", None).unwrap();
        assert_eq!(back.close, s.close);
        assert!(load(&db, "MSFT", None).is_err());
        assert!(load(&db, "GOOG", Some("1h".parse().unwrap())).unwrap_err().help.unwrap().contains("1d"));
    }
}
