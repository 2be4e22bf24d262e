//! A running bot's day-by-day record, read from its journal: the daily P&L summary
//! (`dsl report daily`) and the markdown trading log (`dsl report log`) of trades, orders,
//! the guardrails that fired, and every state change, hot reload and approval, each with its
//! rationale (the rule that fired and its message, the exit reason, the person's note).
//!
//! Days are UTC days. A day's P&L is its closing equity (at its last committed timestamp)
//! minus the previous day's closing equity, or minus the starting cash on the first day; in
//! account currency, and as a fraction of the previous close in `pnl_fraction`.

use crate::runtime::journal::db_err;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::diagnostics::{Diagnostic, codes};
use crate::engine::market::format_utc;

/// One UTC day of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Equity at the previous day's close (the starting cash on the first day), currency.
    pub start_equity: f64,
    /// Equity at the day's last committed timestamp, currency.
    pub close_equity: f64,
    /// `close_equity - start_equity`, currency.
    pub pnl: f64,
    /// `pnl / start_equity` (fraction, not percent).
    pub pnl_fraction: f64,
    /// Cash at the close, currency.
    pub close_cash: f64,
    /// Round trips closed that day.
    pub trades_closed: i64,
    /// Their realized pnl, currency.
    pub realized_pnl: f64,
    /// Orders created that day.
    pub orders: i64,
    /// Of those, refused (by a guardrail, the trading state, the broker or a person).
    pub rejected: i64,
}

/// Opens the journal read-only and finds the run: `run_id`, or the bot's latest paper run.
///
/// # Errors
/// When the journal cannot be read, or the bot has no paper run.
pub fn open_run(path: &Path, bot: &str, run_id: Option<i64>) -> Result<(Connection, i64), Diagnostic> {
    let conn = crate::runtime::journal::open_read_checked(path)?;
    // A journal without runs has none; any other failure is reported as what it is.
    let found: Option<i64> = if crate::runtime::journal::table_exists(&conn, "runs").map_err(|e| db_err(path, e))? {
        conn.query_row(
            "SELECT run_id FROM runs WHERE bot = CAST(?1 AS TEXT) AND kind = 'paper' AND (?2 IS NULL OR run_id = ?2) \
             ORDER BY run_id DESC LIMIT 1",
            params![bot, run_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| db_err(path, e))?
    } else {
        None
    };
    let id = found.ok_or_else(|| {
        let which = run_id.map_or("no paper run".to_string(), |r| format!("no paper run {r}"));
        Diagnostic::error(codes::JOURNAL_CONFLICT, format!("bot `{bot}` has {which} in `{}`", path.display()))
            .help("`dsl run BOT.yaml` starts one; `dsl status BOT.yaml` shows the latest")
    })?;
    Ok((conn, id))
}

/// A bot named by its manifest, with a run of it opened to read.
pub struct BotRun {
    /// The loaded documents.
    pub loaded: crate::runtime::library::loader::Loaded,
    /// The bot manifest.
    pub bot: crate::config::manifest::BotDoc,
    /// The journal.
    pub journal: std::path::PathBuf,
    /// The journal, open to read.
    pub conn: Connection,
    /// The run.
    pub run_id: i64,
    /// What the journal says of it.
    pub record: RunRecord,
}

/// A run's identity and what it was started with, as journaled.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The bundle revision it started with.
    pub revision: String,
    /// Its settings, typed (defaults where unreadable).
    pub settings: crate::runtime::journal::settings::RunSettings,
    /// Its settings as journaled (JSON).
    pub settings_json: serde_json::Value,
    /// The symbols it traded, in the engine's order.
    pub symbols: Vec<String>,
    /// `running`, `completed` or `abandoned`.
    pub status: String,
    /// Its last checkpointed bar (UTC seconds).
    pub until: Option<i64>,
    /// Its first traded bar (UTC seconds).
    pub first: Option<i64>,
}

/// The record of run `run_id`.
///
/// # Errors
/// SQLite's (a run that does not exist included).
pub fn run_record(conn: &Connection, run_id: i64) -> rusqlite::Result<RunRecord> {
    let (revision, settings, symbols, status): (String, String, String, String) = conn.query_row(
        "SELECT bundle_revision, settings, symbols, status FROM runs WHERE run_id = ?1",
        params![run_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let until: Option<i64> =
        conn.query_row("SELECT ts FROM run_status WHERE run_id = ?1", params![run_id], |r| r.get(0)).optional()?;
    let first: Option<i64> = conn
        .query_row("SELECT MIN(first_ts) FROM daily_equity WHERE run_id = ?1", params![run_id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(RunRecord {
        revision,
        settings: crate::runtime::journal::settings::RunSettings::parse(&settings).unwrap_or_default(),
        settings_json: serde_json::from_str(&settings).unwrap_or_default(),
        symbols: serde_json::from_str(&symbols).unwrap_or_default(),
        status,
        until,
        first,
    })
}

/// Loads the bot at `manifest` and opens its run `run_id` and reads its record (default: its latest paper run) in
/// `journal` (default: the manifest's `database`), for `what` (a command, e.g. `dsl report
/// html`).
///
/// # Errors
/// Documents that do not load (the first error), not a bot, no journal, no such run.
pub fn open_bot_run(
    manifest: &Path,
    journal: Option<&Path>,
    run_id: Option<i64>,
    what: &str,
) -> Result<BotRun, Diagnostic> {
    let loaded = crate::runtime::library::loader::load_bundle(manifest).map_err(|d| {
        d.into_iter().find(Diagnostic::is_error).unwrap_or_else(|| Diagnostic::error(codes::IO, "cannot load the bot"))
    })?;
    let Some(bot) = loaded.bundle.bot.clone() else {
        return Err(Diagnostic::error(codes::RUNTIME_REFUSED, format!("{what} reads a bot's run (`kind: bot`)")));
    };
    let Some(journal) = loaded.journal(journal) else {
        return Err(Diagnostic::error(codes::RUNTIME_REFUSED, "the bot has no journal")
            .help("set `database:` in the manifest or pass `--journal FILE`"));
    };
    let (conn, run_id) = open_run(&journal, &bot.name.value, run_id)?;
    let record = run_record(&conn, run_id).map_err(|e| db_err(&journal, e))?;
    Ok(BotRun { loaded, bot, journal, conn, run_id, record })
}

fn date(day: i64) -> String {
    format_utc(day * 86_400)[..10].to_string()
}

/// The run's days, oldest first.
///
/// # Errors
/// When the journal cannot be read.
pub fn daily(conn: &Connection, run_id: i64) -> rusqlite::Result<Vec<Day>> {
    let starting_cash: f64 = conn
        .query_row(
            "SELECT json_extract(settings, '$.starting_cash') FROM runs WHERE run_id = ?1",
            params![run_id],
            |r| r.get::<_, Option<f64>>(0),
        )?
        .unwrap_or(f64::NAN);
    let count = |sql: &str| -> rusqlite::Result<BTreeMap<i64, (i64, f64)>> {
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map(params![run_id], |r| Ok((r.get::<_, i64>(0)?, (r.get::<_, i64>(1)?, r.get(2)?))))?;
        rows.collect()
    };
    let trades = count(
        "SELECT exit_ts / 86400, COUNT(*), COALESCE(SUM(pnl), 0) FROM trades WHERE run_id = ?1 GROUP BY exit_ts / 86400",
    )?;
    let orders = count(
        "SELECT created_ts / 86400, COUNT(*), SUM(status = 'rejected') FROM orders WHERE run_id = ?1 \
         GROUP BY created_ts / 86400",
    )?;
    let mut st =
        conn.prepare("SELECT day, close_equity, close_cash FROM daily_equity WHERE run_id = ?1 ORDER BY day")?;
    let rows =
        st.query_map(params![run_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?, r.get::<_, f64>(2)?)))?;
    let mut prev = starting_cash;
    let mut out = Vec::new();
    for row in rows {
        let (day, close, cash) = row?;
        let (trades_closed, realized_pnl) = trades.get(&day).copied().unwrap_or((0, 0.0));
        let (n, rejected) = orders.get(&day).copied().unwrap_or((0, 0.0));
        out.push(Day {
            day,
            date: date(day),
            start_equity: prev,
            close_equity: close,
            pnl: close - prev,
            pnl_fraction: (close - prev) / prev,
            close_cash: cash,
            trades_closed,
            realized_pnl,
            orders: n,
            rejected: rejected as i64,
        });
        prev = close;
    }
    Ok(out)
}

/// The daily summary as a text table, with totals.
pub fn daily_human(run_id: i64, days: &[Day]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "daily P&L, run {run_id} (UTC days; pnl vs the previous close)");
    let _ = writeln!(
        o,
        "{:<10} {:>14} {:>12} {:>8} {:>7} {:>12} {:>7} {:>9}",
        "day", "equity", "pnl", "pnl %", "trades", "realized", "orders", "rejected"
    );
    for d in days {
        let _ = writeln!(
            o,
            "{:<10} {:>14.2} {:>12.2} {:>7.2}% {:>7} {:>12.2} {:>7} {:>9}",
            d.date,
            d.close_equity,
            d.pnl,
            d.pnl_fraction * 100.0,
            d.trades_closed,
            d.realized_pnl,
            d.orders,
            d.rejected
        );
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let total = last.close_equity - first.start_equity;
        let up = days.iter().filter(|d| d.pnl > 0.0).count();
        let _ = writeln!(
            o,
            "{} days ({} up, {} down): {:.2} -> {:.2}, pnl {:.2} ({:.2}%)",
            days.len(),
            up,
            days.iter().filter(|d| d.pnl < 0.0).count(),
            first.start_equity,
            last.close_equity,
            total,
            total / first.start_equity * 100.0
        );
    }
    o
}

/// One row of a log table: column name to its text, in column order.
pub type LogRow = indexmap::IndexMap<&'static str, String>;

/// Rows of a query, keyed by UTC day of their first column (a time, written RFC 3339).
type ByDay = BTreeMap<i64, Vec<LogRow>>;

fn by_day(conn: &Connection, sql: &str, run_id: i64, names: &[&'static str]) -> rusqlite::Result<ByDay> {
    let mut st = conn.prepare(sql)?;
    let mut out: ByDay = BTreeMap::new();
    let mut rows = st.query(params![run_id])?;
    while let Some(r) = rows.next()? {
        let ts: i64 = r.get(0)?;
        let mut row = LogRow::new();
        row.insert(names[0], format_utc(ts));
        for (i, name) in names.iter().enumerate().skip(1) {
            let cell = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => format!("{v:.2}"),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    String::from_utf8_lossy(t).into_owned()
                }
            };
            row.insert(name, cell);
        }
        out.entry(ts.div_euclid(86_400)).or_default().push(row);
    }
    Ok(out)
}

/// A run's trading log (`dsl report log`): the run, then each UTC day with activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradingLog {
    /// The bot.
    pub bot: String,
    /// The journal run.
    pub run_id: i64,
    /// The bundle revision it started with.
    pub bundle_revision: String,
    /// `running`, `completed` or `abandoned`.
    pub status: String,
    /// Days with trades, orders, guardrails that fired or events, oldest first.
    pub days: Vec<LogDay>,
    /// Equity at the start of the first day and the close of the last (currency).
    pub equity: Option<(f64, f64)>,
}

/// One UTC day of the trading log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogDay {
    /// The day's P&L summary.
    #[serde(flatten)]
    pub summary: Day,
    /// Round trips closed: `time`, `strategy`, `symbol`, `entered` (date), `entry_price`,
    /// `exit_price`, `quantity`, `pnl` (currency), `exit_reason`.
    pub trades: Vec<LogRow>,
    /// Orders created: `time`, `strategy`, `symbol`, `side`, `intent`, `type`, `quantity`,
    /// `reason`, `status`, `status_reason`, `revision`.
    pub orders: Vec<LogRow>,
    /// Guardrails that fired: `time`, `symbol`, `rule`, `action`, `message`.
    pub guardrails: Vec<LogRow>,
    /// State changes, reloads, approvals, script errors: `time`, `what`, `by`, `detail`.
    pub events: Vec<LogRow>,
}

/// The trading log of run `run_id` (see [`TradingLog`]).
///
/// # Errors
/// When the journal cannot be read.
pub fn log(conn: &Connection, run_id: i64) -> rusqlite::Result<TradingLog> {
    let (bot, revision, status): (String, String, String) =
        conn.query_row("SELECT bot, bundle_revision, status FROM runs WHERE run_id = ?1", params![run_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let days = daily(conn, run_id)?;
    let mut trades = by_day(
        conn,
        "SELECT exit_ts, strategy, symbol, strftime('%Y-%m-%d', entry_ts, 'unixepoch'), entry_price, exit_price, \
         quantity, pnl, exit_reason FROM trades WHERE run_id = ?1 ORDER BY exit_ts, trade_no",
        run_id,
        &["time", "strategy", "symbol", "entered", "entry_price", "exit_price", "quantity", "pnl", "exit_reason"],
    )?;
    let mut orders = by_day(
        conn,
        "SELECT created_ts, strategy, symbol, side, intent, order_type, quantity, reason, status, \
         COALESCE(status_reason, ''), bundle_revision FROM orders WHERE run_id = ?1 ORDER BY created_ts, order_no",
        run_id,
        &[
            "time",
            "strategy",
            "symbol",
            "side",
            "intent",
            "type",
            "quantity",
            "reason",
            "status",
            "status_reason",
            "revision",
        ],
    )?;
    let mut fired = by_day(
        conn,
        "SELECT p.ts, COALESCE(o.symbol, ''), p.policy || '/' || p.rule_id, p.action, p.message FROM policy_decisions p \
         LEFT JOIN orders o ON o.run_id = p.run_id AND o.client_order_id = p.client_order_id \
         WHERE p.run_id = ?1 AND p.fired = 1 ORDER BY p.ts",
        run_id,
        &["time", "symbol", "rule", "action", "message"],
    )?;
    let has_reloads = crate::runtime::journal::table_exists(conn, "reloads")?;
    let reloads = if has_reloads {
        "UNION ALL SELECT ts, 'reload ' || outcome, COALESCE(new_revision, old_revision), \
         CASE WHEN outcome = 'accepted' THEN 'bundle ' || new_revision || ' in force (was ' || old_revision || ')' \
         ELSE substr(message, 1, 200) END FROM reloads WHERE run_id = ?1"
    } else {
        ""
    };
    let mut events = by_day(
        conn,
        &format!(
            "SELECT ts, kind, origin, message FROM (\
             SELECT ts, 'state ' || from_state || ' -> ' || to_state AS kind, reason AS origin, message FROM state_changes \
             WHERE run_id = ?1 UNION ALL SELECT ts, kind, origin, message FROM events WHERE run_id = ?1 {reloads}) \
             ORDER BY ts"
        ),
        run_id,
        &["time", "what", "by", "detail"],
    )?;
    let equity = days.first().zip(days.last()).map(|(f, l)| (f.start_equity, l.close_equity));
    let days = days
        .into_iter()
        .filter_map(|d| {
            let day = d.day;
            let active = [&trades, &orders, &fired, &events].iter().any(|m| m.contains_key(&day));
            active.then(|| LogDay {
                summary: d,
                trades: trades.remove(&day).unwrap_or_default(),
                orders: orders.remove(&day).unwrap_or_default(),
                guardrails: fired.remove(&day).unwrap_or_default(),
                events: events.remove(&day).unwrap_or_default(),
            })
        })
        .collect();
    Ok(TradingLog { bot, run_id, bundle_revision: revision, status, days, equity })
}

/// A markdown table of `rows` under `title`, times shown as `HH:MM` (the day is the section).
fn table(o: &mut String, title: &str, header: &[&str], rows: &[LogRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n### {title}\n");
    let _ = writeln!(o, "| {} |", header.join(" | "));
    let _ = writeln!(o, "|{}", " --- |".repeat(header.len()));
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .map(|(k, v)| {
                if *k == "time" && v.len() >= 16 {
                    v[11..16].to_string()
                } else {
                    v.replace('|', "\\|").replace('\n', " ")
                }
            })
            .collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
}

/// The markdown trading log of run `run_id`: per UTC day with activity, the day's P&L, then
/// trades closed, orders, guardrails that fired, and events (state changes, reloads,
/// approvals, script errors), each with its reason.
///
/// # Errors
/// When the journal cannot be read.
pub fn markdown(conn: &Connection, run_id: i64) -> rusqlite::Result<String> {
    Ok(render_markdown(&log(conn, run_id)?))
}

/// Renders a [`TradingLog`] as markdown.
pub fn render_markdown(log: &TradingLog) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Trading log: bot `{}`, run {}\n", log.bot, log.run_id);
    let _ = writeln!(o, "Started with bundle `{}`; status {}. Times are UTC.", log.bundle_revision, log.status);
    if let (Some((start, close)), Some(first), Some(last)) = (log.equity, log.days.first(), log.days.last()) {
        let total = close - start;
        let _ = writeln!(
            o,
            "\n{} to {}: equity {:.2} -> {:.2} ({:+.2}, {:+.2}%).",
            first.summary.date,
            last.summary.date,
            start,
            close,
            total,
            total / start * 100.0
        );
    }
    for d in &log.days {
        let s = &d.summary;
        let _ = writeln!(
            o,
            "\n## {}\n\nEquity {:.2} -> {:.2} ({:+.2}, {:+.2}%); cash {:.2}.",
            s.date,
            s.start_equity,
            s.close_equity,
            s.pnl,
            s.pnl_fraction * 100.0,
            s.close_cash
        );
        table(
            &mut o,
            "Trades closed",
            &["time", "strategy", "symbol", "entered", "entry", "exit", "quantity", "pnl", "why it exited"],
            &d.trades,
        );
        table(
            &mut o,
            "Orders",
            &[
                "time", "strategy", "symbol", "side", "intent", "type", "quantity", "why", "status", "reason",
                "revision",
            ],
            &d.orders,
        );
        table(&mut o, "Guardrails that fired", &["time", "symbol", "rule", "action", "message"], &d.guardrails);
        table(&mut o, "Events", &["time", "what", "by", "detail"], &d.events);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_364_774_400 / 86_400), "2013-04-01");
    }
}
