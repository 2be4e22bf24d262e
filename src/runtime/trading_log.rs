//! A running bot's day-by-day record, read from its journal: the daily P&L summary
//! (`dsl report daily`) and the markdown trading log (`dsl report log`) of trades, orders,
//! the guardrails that fired, and every state change, hot reload and approval, each with its
//! rationale (the rule that fired and its message, the exit reason, the person's note).
//!
//! Days are UTC days. A day's P&L is its closing equity (at its last committed timestamp)
//! minus the previous day's closing equity, or minus the starting cash on the first day; in
//! account currency, and as a fraction of the previous close in `pnl_fraction`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};
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

fn db_err(path: &Path, e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::error(codes::IO, format!("journal `{}`: {e}", path.display()))
}

/// Opens the journal read-only and finds the run: `run_id`, or the bot's latest paper run.
///
/// # Errors
/// When the journal cannot be read, or the bot has no paper run.
pub fn open_run(path: &Path, bot: &str, run_id: Option<i64>) -> Result<(Connection, i64), Diagnostic> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| db_err(path, e))?;
    let found: Option<i64> = conn
        .query_row(
            "SELECT run_id FROM runs WHERE bot = ?1 AND kind = 'paper' AND (?2 IS NULL OR run_id = ?2) \
             ORDER BY run_id DESC LIMIT 1",
            params![bot, run_id],
            |r| r.get(0),
        )
        .ok();
    let id = found.ok_or_else(|| {
        let which = run_id.map_or("no paper run".to_string(), |r| format!("no paper run {r}"));
        Diagnostic::error(codes::INVALID_VALUE, format!("bot `{bot}` has {which} in `{}`", path.display()))
            .help("`dsl run BOT.yaml` starts one; `dsl status BOT.yaml` shows the latest")
    })?;
    Ok((conn, id))
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

/// Text of a query's rows, keyed by UTC day of their first column (a time).
type ByDay = BTreeMap<i64, Vec<Vec<String>>>;

fn by_day(conn: &Connection, sql: &str, run_id: i64) -> rusqlite::Result<ByDay> {
    let mut st = conn.prepare(sql)?;
    let n = st.column_count();
    let mut out: ByDay = BTreeMap::new();
    let mut rows = st.query(params![run_id])?;
    while let Some(r) = rows.next()? {
        let ts: i64 = r.get(0)?;
        let mut cells = vec![format_utc(ts)[11..16].to_string()];
        for i in 1..n {
            cells.push(match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => format!("{v:.2}"),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    String::from_utf8_lossy(t).replace('|', "\\|").replace('\n', " ")
                }
            });
        }
        out.entry(ts.div_euclid(86_400)).or_default().push(cells);
    }
    Ok(out)
}

fn table(o: &mut String, title: &str, header: &[&str], rows: Option<&Vec<Vec<String>>>) {
    let Some(rows) = rows.filter(|r| !r.is_empty()) else { return };
    let _ = writeln!(o, "\n### {title}\n");
    let _ = writeln!(o, "| {} |", header.join(" | "));
    let _ = writeln!(o, "|{}", " --- |".repeat(header.len()));
    for r in rows {
        let _ = writeln!(o, "| {} |", r.join(" | "));
    }
}

/// The markdown trading log of run `run_id`: per UTC day with activity, the day's P&L, then
/// trades closed, orders, guardrails that fired, and events (state changes, reloads,
/// approvals, script errors), each with its reason.
///
/// # Errors
/// When the journal cannot be read.
pub fn markdown(conn: &Connection, run_id: i64) -> rusqlite::Result<String> {
    let (bot, revision, status): (String, String, String) =
        conn.query_row("SELECT bot, bundle_revision, status FROM runs WHERE run_id = ?1", params![run_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let days = daily(conn, run_id)?;
    let trades = by_day(
        conn,
        "SELECT exit_ts, strategy, symbol, strftime('%Y-%m-%d', entry_ts, 'unixepoch'), entry_price, exit_price, \
         quantity, pnl, exit_reason FROM trades WHERE run_id = ?1 ORDER BY exit_ts, trade_no",
        run_id,
    )?;
    let orders = by_day(
        conn,
        "SELECT created_ts, strategy, symbol, side, intent, order_type, quantity, reason, status, \
         COALESCE(status_reason, ''), bundle_revision FROM orders WHERE run_id = ?1 ORDER BY created_ts, order_no",
        run_id,
    )?;
    let fired = by_day(
        conn,
        "SELECT p.ts, o.symbol, p.policy || '/' || p.rule_id, p.action, p.message FROM policy_decisions p \
         LEFT JOIN orders o ON o.run_id = p.run_id AND o.client_order_id = p.client_order_id \
         WHERE p.run_id = ?1 AND p.fired = 1 ORDER BY p.ts",
        run_id,
    )?;
    let has_reloads = super::journal::table_exists(conn, "reloads")?;
    let reloads = if has_reloads {
        "UNION ALL SELECT ts, 'reload ' || outcome, COALESCE(new_revision, old_revision), \
         CASE WHEN outcome = 'accepted' THEN 'bundle ' || new_revision || ' in force (was ' || old_revision || ')' \
         ELSE substr(message, 1, 200) END FROM reloads WHERE run_id = ?1"
    } else {
        ""
    };
    let events = by_day(
        conn,
        &format!(
            "SELECT ts, kind, origin, message FROM (\
             SELECT ts, 'state ' || from_state || ' -> ' || to_state AS kind, reason AS origin, message FROM state_changes \
             WHERE run_id = ?1 UNION ALL SELECT ts, kind, origin, message FROM events WHERE run_id = ?1 {reloads}) \
             ORDER BY ts"
        ),
        run_id,
    )?;
    let mut o = String::new();
    let _ = writeln!(o, "# Trading log: bot `{bot}`, run {run_id}\n");
    let _ = writeln!(o, "Started with bundle `{revision}`; status {status}. Times are UTC.");
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let total = last.close_equity - first.start_equity;
        let _ = writeln!(
            o,
            "\n{} to {}: equity {:.2} -> {:.2} ({:+.2}, {:+.2}%).",
            first.date,
            last.date,
            first.start_equity,
            last.close_equity,
            total,
            total / first.start_equity * 100.0
        );
    }
    for d in &days {
        let day = d.day;
        let active = [&trades, &orders, &fired, &events].iter().any(|m| m.contains_key(&day));
        if !active {
            continue;
        }
        let _ = writeln!(
            o,
            "\n## {}\n\nEquity {:.2} -> {:.2} ({:+.2}, {:+.2}%); cash {:.2}.",
            d.date,
            d.start_equity,
            d.close_equity,
            d.pnl,
            d.pnl_fraction * 100.0,
            d.close_cash
        );
        table(
            &mut o,
            "Trades closed",
            &["time", "strategy", "symbol", "entered", "entry", "exit", "quantity", "pnl", "why it exited"],
            trades.get(&day),
        );
        table(
            &mut o,
            "Orders",
            &[
                "time", "strategy", "symbol", "side", "intent", "type", "quantity", "why", "status", "reason",
                "revision",
            ],
            orders.get(&day),
        );
        table(&mut o, "Guardrails that fired", &["time", "symbol", "rule", "action", "message"], fired.get(&day));
        table(&mut o, "Events", &["time", "what", "by", "detail"], events.get(&day));
    }
    Ok(o)
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
