//! Backtest reports: a printed summary, a JSON document and an HTML page with charts
//! ([`super::html`]).
//!
//! The JSON has `metrics` (see [`crate::engine::metrics`] for definitions; ratios are
//! fractions, `avg_pnl_pct` and `pnl_pct` are percent points) and `trades`, whose items carry
//! `symbol`, `strategy`, `entry_time`, `entry_price`, `exit_time`, `exit_price`, `quantity`,
//! `pnl`, `pnl_pct`, `fees`, `exit_reason` and `holding_bars`, with times in RFC 3339 UTC.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::engine::backtest::BacktestOutput;
use crate::engine::metrics::Metrics;

use crate::runtime::data::timeparse::format_utc;

/// Context printed alongside the numbers.
#[derive(Debug, Clone)]
pub struct ReportContext {
    /// Bot or strategy name.
    pub bot: String,
    /// Bundle revision.
    pub revision: String,
    /// Strategy names.
    pub strategies: Vec<String>,
    /// Symbols.
    pub symbols: Vec<String>,
    /// Settings as JSON (cash, costs, fill timing).
    pub settings: Value,
    /// Journal run id, when journaled.
    pub run_id: Option<i64>,
    /// Journal path, when journaled.
    pub journal: Option<String>,
    /// Bars that only warmed the indicators up (summed over symbols) and the first time
    /// traded, with `--from`.
    pub warmup: Option<(usize, i64)>,
}

fn opt(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.is_finite() => json!(x),
        _ => Value::Null,
    }
}

/// The metrics as a JSON object (snake_case names; undefined values are `null`).
pub fn metrics_json(m: &Metrics) -> Value {
    json!({
        "starting_cash": m.starting_cash,
        "final_equity": m.final_equity,
        "total_return": m.total_return,
        "cagr": opt(m.cagr),
        "max_drawdown": m.max_drawdown,
        "sharpe": opt(m.sharpe),
        "sortino": opt(m.sortino),
        "win_rate": opt(m.win_rate),
        "profit_factor": opt(m.profit_factor),
        "avg_pnl_pct": opt(m.avg_pnl_pct),
        "avg_win": opt(m.avg_win),
        "avg_loss": opt(m.avg_loss),
        "win_loss_ratio": opt(m.win_loss_ratio),
        "exposure_time": m.exposure_time,
        "trade_count": m.trade_count,
        "open_at_end": m.open_at_end,
        "bars": m.bars,
        "years": m.years,
        "periods_per_year": opt(m.periods_per_year),
    })
}

/// The full JSON report.
pub fn to_json(ctx: &ReportContext, out: &BacktestOutput) -> Value {
    let trades: Vec<Value> = out
        .trades
        .iter()
        .map(|t| {
            json!({
                "strategy": t.strategy,
                "symbol": t.symbol,
                "entry_time": format_utc(t.entry_time),
                "entry_price": t.entry_price,
                "exit_time": format_utc(t.exit_time),
                "exit_price": t.exit_price,
                "quantity": t.quantity,
                "pnl": t.pnl,
                "pnl_pct": t.pnl_pct,
                "fees": t.fees,
                "exit_reason": t.exit_reason,
                "holding_bars": t.holding_bars,
                "entry_order_id": t.entry_order_id,
                "exit_order_id": t.exit_order_id,
            })
        })
        .collect();
    let open: Vec<Value> = out
        .open_positions
        .iter()
        .map(|p| {
            json!({
                "strategy": p.strategy,
                "symbol": p.symbol,
                "quantity": p.quantity,
                "entry_time": format_utc(p.entry_time),
                "entry_price": p.entry_price,
                "last_price": p.last_price,
                "unrealized_pnl": p.unrealized_pnl,
            })
        })
        .collect();
    json!({
        "bot": ctx.bot,
        "bundle_revision": ctx.revision,
        "run_id": ctx.run_id,
        "journal": ctx.journal,
        "strategies": ctx.strategies,
        "symbols": ctx.symbols,
        "settings": ctx.settings,
        "start": out.first_ts.map(format_utc),
        "end": out.last_ts.map(format_utc),
        "metrics": metrics_json(&out.metrics),
        "orders": out.stats,
        "trades": trades,
        "open_positions": open,
    })
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn opt_num(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.filter(|x| x.is_finite()).map(f).unwrap_or_else(|| "n/a".into())
}

/// Variants side by side: `(name, context, output)` each, the first being the baseline.
pub type Variant<'a> = (&'a str, &'a ReportContext, &'a BacktestOutput);

/// The printed comparison of variants: one column per variant, and with two variants a
/// column of differences (second minus first; percent points for ratios in percent).
pub fn comparison(variants: &[Variant<'_>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "comparison of {} variants", variants.len());
    for (name, ctx, out) in variants {
        let period = match (out.first_ts, out.last_ts) {
            (Some(a), Some(b)) => format!("{} .. {}", format_utc(a), format_utc(b)),
            _ => "no bars".into(),
        };
        let journal = match (&ctx.journal, ctx.run_id) {
            (Some(j), Some(id)) => format!(", run {id} in {j}"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {name}: {} on {} (bundle {}), {period}{journal}",
            ctx.strategies.join(", "),
            ctx.symbols.join(", "),
            ctx.revision
        );
    }
    let periods: Vec<_> = variants.iter().map(|(_, _, o)| (o.first_ts, o.last_ts)).collect();
    if periods.windows(2).any(|w| w[0] != w[1]) {
        let _ = writeln!(s, "  note: the variants cover different periods; compare with care");
    }
    let _ = writeln!(s);
    // (label, value as a number for the difference, formatted, difference unit)
    type Row = (&'static str, fn(&BacktestOutput) -> Option<f64>, fn(f64) -> String, Diff);
    let rows: [Row; 12] = [
        ("final equity", |o| Some(o.metrics.final_equity), |x| format!("{x:.2}"), Diff::Plain(2)),
        ("total return", |o| Some(o.metrics.total_return), pct, Diff::Points),
        ("CAGR", |o| o.metrics.cagr, pct, Diff::Points),
        ("max drawdown", |o| Some(o.metrics.max_drawdown), pct, Diff::Points),
        ("Sharpe", |o| o.metrics.sharpe, |x| format!("{x:.2}"), Diff::Plain(2)),
        ("Sortino", |o| o.metrics.sortino, |x| format!("{x:.2}"), Diff::Plain(2)),
        ("trades", |o| Some(o.metrics.trade_count as f64), |x| format!("{x:.0}"), Diff::Plain(0)),
        ("win rate", |o| o.metrics.win_rate, pct, Diff::Points),
        ("profit factor", |o| o.metrics.profit_factor, |x| format!("{x:.2}"), Diff::Plain(2)),
        ("avg pnl/trade", |o| o.metrics.avg_pnl_pct.map(|x| x / 100.0), pct, Diff::Points),
        ("exposure time", |o| Some(o.metrics.exposure_time), pct, Diff::Points),
        (
            "orders denied",
            |o| Some(o.stats.denials.values().sum::<u64>() as f64),
            |x| format!("{x:.0}"),
            Diff::Plain(0),
        ),
    ];
    let width = variants.iter().map(|v| v.0.len()).max().unwrap_or(0).max(12) + 2;
    let _ = write!(s, "  {:<15}", "");
    for (name, _, _) in variants {
        let _ = write!(s, "{name:>width$}");
    }
    if variants.len() == 2 {
        let _ = write!(s, "{:>width$}", "difference");
    }
    let _ = writeln!(s);
    for (label, get, fmt, diff) in rows {
        let _ = write!(s, "  {label:<15}");
        for (_, _, out) in variants {
            let _ = write!(s, "{:>width$}", opt_num(get(out), fmt));
        }
        if let [(_, _, a), (_, _, b)] = variants {
            let d = match (get(a), get(b)) {
                (Some(x), Some(y)) if x.is_finite() && y.is_finite() => match diff {
                    Diff::Points => format!("{:+.2} pp", (y - x) * 100.0),
                    Diff::Plain(p) => format!("{:+.*}", p, y - x),
                },
                _ => "n/a".into(),
            };
            let _ = write!(s, "{d:>width$}");
        }
        let _ = writeln!(s);
    }
    s
}

/// How a comparison row's difference is shown.
#[derive(Clone, Copy)]
enum Diff {
    /// Percent points of a fraction.
    Points,
    /// A plain number with this many decimals.
    Plain(usize),
}

/// The JSON comparison: `{"variants": [{"name", "bot", "revision", "run_id", "first_bar",
/// "last_bar", "metrics", "denials"}]}`, metrics as in [`metrics_json`].
pub fn comparison_json(variants: &[Variant<'_>]) -> Value {
    let items: Vec<Value> = variants
        .iter()
        .map(|(name, ctx, out)| {
            json!({
                "name": name,
                "bot": ctx.bot,
                "revision": ctx.revision,
                "run_id": ctx.run_id,
                "first_bar": out.first_ts.map(format_utc),
                "last_bar": out.last_ts.map(format_utc),
                "metrics": metrics_json(&out.metrics),
                "denials": out.stats.denials,
            })
        })
        .collect();
    json!({ "variants": items })
}

/// The printed summary.
pub fn summary(ctx: &ReportContext, out: &BacktestOutput) -> String {
    let m = &out.metrics;
    let mut s = String::new();
    let period = match (out.first_ts, out.last_ts) {
        (Some(a), Some(b)) => format!("{} .. {}", format_utc(a), format_utc(b)),
        _ => "no bars".into(),
    };
    let _ = writeln!(s, "backtest {} (bundle {})", ctx.bot, ctx.revision);
    let _ = writeln!(s, "  strategies    {}", ctx.strategies.join(", "));
    let _ = writeln!(s, "  symbols       {}", ctx.symbols.join(", "));
    let _ = writeln!(s, "  period        {period} ({} bars, {:.2} years)", m.bars, m.years);
    if let Some((bars, from)) = ctx.warmup {
        let _ = writeln!(s, "  warm-up       {bars} bars before {} (indicators only, no trading)", format_utc(from));
    }
    let _ = writeln!(s);
    let rows: Vec<(&str, String)> = vec![
        ("starting cash", format!("{:.2}", m.starting_cash)),
        ("final equity", format!("{:.2}", m.final_equity)),
        ("total return", pct(m.total_return)),
        ("CAGR", opt_num(m.cagr, pct)),
        ("max drawdown", pct(m.max_drawdown)),
        ("Sharpe", opt_num(m.sharpe, |x| format!("{x:.2}"))),
        ("Sortino", opt_num(m.sortino, |x| format!("{x:.2}"))),
        ("trades", m.trade_count.to_string()),
        ("win rate", opt_num(m.win_rate, pct)),
        ("profit factor", opt_num(m.profit_factor, |x| format!("{x:.2}"))),
        ("avg pnl/trade", opt_num(m.avg_pnl_pct, |x| format!("{x:.2}%"))),
        ("avg win", opt_num(m.avg_win, |x| format!("{x:.2}"))),
        ("avg loss", opt_num(m.avg_loss, |x| format!("{x:.2}"))),
        ("exposure time", pct(m.exposure_time)),
        ("open at end", if m.open_at_end { "yes".into() } else { "no".into() }),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "  {k:<15}{v:>16}");
    }
    let st = &out.stats;
    let _ = writeln!(
        s,
        "\n  orders        {} submitted, {} filled, {} rejected, {} cancelled",
        st.orders_submitted, st.orders_filled, st.orders_rejected, st.orders_cancelled
    );
    if st.orders_cancelled > 0 {
        let _ =
            writeln!(s, "                (cancelled: stops and targets of closed positions, or unfilled at the end)");
    }
    // Exits refused keep positions open: said apart from entries.
    let exits = |n: Option<&u64>| match n.copied().unwrap_or(0) {
        0 => String::new(),
        1 => " (1 of them an exit: its position stayed open)".to_string(),
        k => format!(" ({k} of them exits: their positions stayed open)"),
    };
    for (rule, n) in &st.denials {
        let _ = writeln!(s, "  denied        {n} by {rule}{}", exits(st.denied_exits.get(rule)));
    }
    for (rule, n) in &st.warnings {
        let _ = writeln!(s, "  warned        {n} by {rule} (the orders went on)");
    }
    if st.approvals_expired > 0 {
        let _ = writeln!(
            s,
            "  approvals     {} orders needed an approval; none came in time (denied)",
            st.approvals_expired
        );
    }
    for (state, n) in &st.blocked_by_state {
        let _ = writeln!(
            s,
            "  blocked       {n} orders while {}{}",
            state.to_uppercase(),
            exits(st.blocked_exits.get(state))
        );
    }
    // The first changes of the trading state; the journal has them all.
    const SHOWN: usize = 6;
    for c in st.state_changes.iter().take(SHOWN) {
        let _ = writeln!(
            s,
            "  state         {} {} -> {} by {}: {}",
            format_utc(c.ts),
            c.from.as_str(),
            c.to.as_str(),
            c.reason,
            c.message
        );
    }
    if st.state_changes.len() > SHOWN {
        let _ = writeln!(
            s,
            "                ... {} state changes in all (the journal's v_state_changes has each)",
            st.state_changes.len()
        );
    }
    if st.entries_filtered > 0 {
        let _ = writeln!(s, "  filtered      {} entries vetoed by entry filters", st.entries_filtered);
    }
    if st.script_errors > 0 {
        let _ = writeln!(
            s,
            "  script errors {} (each failed closed; see the `events` table of the journal)",
            st.script_errors
        );
    }
    for p in &out.open_positions {
        let _ = writeln!(
            s,
            "  open          {} {} x {:.6} since {} at {:.4} (unrealized {:.2})",
            p.strategy,
            p.symbol,
            p.quantity,
            format_utc(p.entry_time),
            p.entry_price,
            p.unrealized_pnl
        );
    }
    if let (Some(id), Some(j)) = (ctx.run_id, &ctx.journal) {
        let _ = writeln!(s, "  journal       run {id} in {j}");
    }
    s
}

pub use super::html::esc;

/// A self-contained HTML report of a backtest (see [`super::html`]): the summary, equity with
/// a buy-and-hold benchmark of `series`, the underwater curve, monthly returns, each symbol's
/// prices with its trades, and the trades. `series`: the bars the backtest ran on (empty: no
/// price charts and no benchmark).
///
/// # Errors
/// When a chart cannot be drawn.
pub fn to_html(
    ctx: &ReportContext,
    out: &BacktestOutput,
    series: &[crate::engine::market::BarSeries],
) -> Result<String, String> {
    use super::html::{HtmlReport, TradeView, buy_and_hold, price_lines, render};
    let from = ctx.warmup.map(|w| w.1).or(out.first_ts);
    let trades = out
        .trades
        .iter()
        .map(|t| TradeView {
            strategy: t.strategy.to_string(),
            symbol: t.symbol.to_string(),
            entry_ts: t.entry_time,
            entry_price: t.entry_price,
            exit_ts: t.exit_time,
            exit_price: t.exit_price,
            quantity: t.quantity,
            pnl: t.pnl,
            pnl_pct: t.pnl_pct,
            exit_reason: t.exit_reason.to_string(),
            holding_bars: t.holding_bars,
        })
        .collect();
    render(&HtmlReport {
        title: format!("Backtest: {}", ctx.bot),
        revision: ctx.revision.clone(),
        summary: summary(ctx, out),
        settings: ctx.settings.clone(),
        starting_cash: out.metrics.starting_cash,
        equity: out.curves.chart.clone(),
        daily: out.curves.daily.clone(),
        benchmark: buy_and_hold(series, from, out.last_ts, out.metrics.starting_cash),
        trades,
        prices: price_lines(series, from, out.last_ts),
    })
}
