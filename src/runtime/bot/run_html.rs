//! `dsl report html BOT.yaml [--run N]`: the HTML report of a paper (or live) run, from its
//! journal: the same page as a backtest's ([`crate::runtime::journal::html`]), with the
//! equity at each UTC day's close as the curve, the run's closed trades, and the prices of
//! its symbols read again from the manifest's data (left out, with a note, when the data no
//! longer covers them).

use std::path::PathBuf;

use rusqlite::{Connection, params};

use crate::diagnostics::{Diagnostic, codes};
use crate::runtime::data::timeparse::format_utc;
use crate::runtime::journal::db_err;
use crate::runtime::journal::html::{HtmlReport, TradeView, buy_and_hold, price_lines, render};
use crate::runtime::library::source::load_for_bundle;

/// Which run to draw.
#[derive(Debug, Clone)]
pub struct RunHtmlRequest {
    /// The bot manifest.
    pub manifest: PathBuf,
    /// The journal (default: the manifest's `database`).
    pub journal: Option<PathBuf>,
    /// The run (default: the bot's latest paper run).
    pub run: Option<i64>,
}

fn trades(conn: &Connection, run_id: i64) -> rusqlite::Result<Vec<TradeView>> {
    let mut st = conn.prepare(
        "SELECT strategy, symbol, entry_ts, entry_price, exit_ts, exit_price, quantity, pnl, pnl_pct, exit_reason, \
         holding_bars FROM trades WHERE run_id = ?1 ORDER BY trade_no",
    )?;
    let rows = st.query_map(params![run_id], |r| {
        Ok(TradeView {
            strategy: r.get(0)?,
            symbol: r.get(1)?,
            entry_ts: r.get(2)?,
            entry_price: r.get(3)?,
            exit_ts: r.get(4)?,
            exit_price: r.get(5)?,
            quantity: r.get(6)?,
            pnl: r.get(7)?,
            pnl_pct: r.get(8)?,
            exit_reason: r.get(9)?,
            holding_bars: r.get::<_, i64>(10)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

/// The run's page, and the run's number.
///
/// # Errors
/// Documents that do not load, no journal, no such run, a journal that cannot be read, a
/// chart that cannot be drawn.
pub fn run_html(req: &RunHtmlRequest) -> Result<(i64, String), Diagnostic> {
    let crate::runtime::journal::trading_log::BotRun { loaded, bot, journal, conn, run_id, record } =
        crate::runtime::journal::trading_log::open_bot_run(
            &req.manifest,
            req.journal.as_deref(),
            req.run,
            "`dsl report html`",
        )?;
    let name = bot.name.value.clone();
    let read = |e| db_err(&journal, e);
    let (settings, first) = (&record.settings, record.first);
    let daily: Vec<(i64, f64)> = {
        let mut st = conn
            .prepare("SELECT last_ts, close_equity FROM daily_equity WHERE run_id = ?1 ORDER BY day")
            .map_err(read)?;
        let rows = st.query_map(params![run_id], |r| Ok((r.get(0)?, r.get(1)?))).map_err(read)?;
        rows.collect::<rusqlite::Result<_>>().map_err(read)?
    };
    let trades = trades(&conn, run_id).map_err(read)?;
    let cash = settings.starting_cash;
    let last = daily.last().map(|d| d.0);
    let mut equity = Vec::with_capacity(daily.len() + 1);
    if let Some(f) = first {
        equity.push((f - 1, cash));
    }
    equity.extend(daily.iter().copied());
    // Prices: the manifest's data read again, as the run read it.
    let (series, note) = match load_for_bundle(&loaded, &settings.bars_request()) {
        Ok(m) => (m.series, None),
        Err(d) => (Vec::new(), Some(format!("no price charts: {}", d.message))),
    };
    let summary = summary(&name, run_id, &record.status, first, &daily, cash, &trades, note.as_deref());
    render(&HtmlReport {
        title: format!("Paper run {run_id}: {name}"),
        revision: record.revision.clone(),
        summary,
        settings: record.settings_json.clone(),
        starting_cash: cash,
        benchmark: buy_and_hold(&series, first, last, cash),
        prices: price_lines(&series, first, last),
        equity,
        daily,
        trades,
    })
    .map(|h| (run_id, h))
    .map_err(|e| Diagnostic::error(codes::IO, format!("cannot draw the HTML report: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn summary(
    bot: &str,
    run_id: i64,
    status: &str,
    first: Option<i64>,
    daily: &[(i64, f64)],
    cash: f64,
    trades: &[TradeView],
    note: Option<&str>,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let last = daily.last().copied();
    let equity = last.map_or(cash, |d| d.1);
    let mut peak = cash;
    let mut max_dd = 0.0_f64;
    for (_, e) in daily {
        peak = peak.max(*e);
        if peak > 0.0 {
            max_dd = max_dd.max((peak - e) / peak);
        }
    }
    let wins = trades.iter().filter(|t| t.pnl > 0.0).count();
    let _ = writeln!(s, "paper run {run_id} of {bot} ({status})");
    let _ = writeln!(
        s,
        "  period         {} .. {} ({} days with a close)",
        first.map(format_utc).unwrap_or_else(|| "-".into()),
        last.map(|d| format_utc(d.0)).unwrap_or_else(|| "-".into()),
        daily.len()
    );
    let _ = writeln!(s, "  starting cash  {cash:.2}");
    let _ = writeln!(s, "  equity         {equity:.2}");
    if cash > 0.0 {
        let _ = writeln!(s, "  total return   {:.2}%", (equity / cash - 1.0) * 100.0);
    }
    let _ = writeln!(s, "  max drawdown   {:.2}% (daily closes)", max_dd * 100.0);
    let _ = writeln!(s, "  trades         {} closed, {} won", trades.len(), wins);
    let _ = writeln!(s, "  net pnl        {:.2}", trades.iter().map(|t| t.pnl).sum::<f64>());
    if let Some(n) = note {
        let _ = writeln!(s, "  note           {n}");
    }
    s
}
