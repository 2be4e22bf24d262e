//! Execution quality of a bot's run (`dsl report execution`), by symbol and by hour of day.
//!
//! For each filled market order: the mid at submission, the average fill price, the slippage
//! against that mid in basis points (positive = paid: a buy above the mid, a sell below it),
//! the cost of that slippage in account currency (`|fill - mid| * quantity`, signed the same
//! way) and the time from submission to fill in seconds.
//!
//! Where the mid comes from:
//! - orders sent to Alpaca: the latest quote at submission (`broker_orders.mid`, source
//!   `quote`), else the close of the bar the order was created on (its reference price, source
//!   `signal_bar`: the move until the fill counts as slippage then);
//! - the simulated broker: the mid at the fill (source `fill_bar`), i.e. the unslipped price of
//!   each fill (the fill bar's open with `fill: next_open`, the bar's close with `fill: close`;
//!   the fill price less the cost model's half spread and slippage). The overnight move from
//!   the signal bar's close to the next open is the market's, not the execution's, and is left
//!   out.
//!
//! Stop and limit orders are left out: they wait for a price by design, so their distance
//! from the mid at submission is not slippage. Hours are the UTC hour of submission.

use crate::runtime::journal::db_err;
use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::diagnostics::Diagnostic;

/// One filled market order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    /// Symbol.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// Submission (bar) time, UTC seconds.
    pub created_ts: i64,
    /// Mid at submission (currency per unit).
    pub mid: f64,
    /// `quote` (the broker's latest quote at submission), `fill_bar` (the simulated broker's
    /// unslipped fill price) or `signal_bar` (the close the order was created on).
    pub mid_source: &'static str,
    /// Average fill price (currency per unit).
    pub fill_price: f64,
    /// Units filled.
    pub quantity: f64,
    /// Fill time, UTC seconds.
    pub fill_ts: i64,
}

impl Execution {
    /// Slippage against the mid in basis points; positive = paid.
    pub fn slippage_bps(&self) -> f64 {
        self.sign() * (self.fill_price - self.mid) / self.mid * 1e4
    }

    /// Slippage cost in currency; positive = paid.
    pub fn slippage_cost(&self) -> f64 {
        self.sign() * (self.fill_price - self.mid) * self.quantity
    }

    fn sign(&self) -> f64 {
        if self.side == "sell" { -1.0 } else { 1.0 }
    }
}

/// Figures of one group of executions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The symbol, or the hour (`"14"`: 14:00-14:59 UTC).
    pub key: String,
    /// Filled market orders.
    pub fills: usize,
    /// Mean slippage, bps (positive = paid).
    pub mean_bps: f64,
    /// Median slippage, bps.
    pub median_bps: f64,
    /// Worst (highest) slippage, bps.
    pub worst_bps: f64,
    /// Total slippage cost, currency.
    pub cost: f64,
    /// Traded notional at the fill prices, currency.
    pub notional: f64,
    /// Mean time from submission to fill, seconds.
    pub mean_seconds_to_fill: f64,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionReport {
    /// The run.
    pub run_id: i64,
    /// Every group of all executions together.
    pub total: Group,
    /// By symbol, alphabetical.
    pub by_symbol: Vec<Group>,
    /// By UTC hour of submission.
    pub by_hour: Vec<Group>,
}

/// The filled market orders of run `run_id` (the bot's latest paper run when `None`).
///
/// # Errors
/// When the journal cannot be read, or the bot has no such paper run.
pub fn executions(path: &Path, bot: &str, run_id: Option<i64>) -> Result<(i64, Vec<Execution>), Diagnostic> {
    let (conn, run_id) = crate::runtime::journal::trading_log::open_run(path, bot, run_id)?;
    executions_on(&conn, run_id).map_err(|e| db_err(path, e))
}

/// The filled market orders of run `run_id` in an open journal: `(run_id, executions)`.
///
/// # Errors
/// SQLite's.
pub fn executions_on(conn: &Connection, run_id: i64) -> rusqlite::Result<(i64, Vec<Execution>)> {
    let has_broker = crate::runtime::journal::table_exists(conn, "broker_orders")?;
    // Fills are aggregated per order (an order may fill in parts); the broker's quote is
    // preferred to the bar estimate when there is one.
    let (quote, at_broker) = if has_broker {
        (
            "(SELECT b.mid FROM broker_orders b WHERE b.run_id = o.run_id AND b.client_order_id = o.client_order_id)",
            "EXISTS (SELECT 1 FROM broker_orders b WHERE b.run_id = o.run_id AND b.client_order_id = o.client_order_id)",
        )
    } else {
        ("NULL", "0")
    };
    // The unslipped price of a simulated fill: the fill price less its slippage per unit,
    // against the side.
    let sql = format!(
        "SELECT o.symbol, o.side, o.created_ts, o.reference_price, {quote}, \
         SUM(f.price * f.quantity) / SUM(f.quantity), SUM(f.quantity), MAX(f.ts), {at_broker}, \
         SUM(f.price * f.quantity + CASE o.side WHEN 'sell' THEN f.slippage_cost ELSE -f.slippage_cost END) \
             / SUM(f.quantity) \
         FROM orders o JOIN fills f ON f.run_id = o.run_id AND f.client_order_id = o.client_order_id \
         WHERE o.run_id = ?1 AND o.order_type = 'market' GROUP BY o.run_id, o.client_order_id ORDER BY o.order_no"
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(params![run_id], |r| {
        let quote: Option<f64> = r.get::<_, Option<f64>>(4)?.filter(|q| *q > 0.0);
        let reference: f64 = r.get(3)?;
        let at_broker: bool = r.get(8)?;
        let unslipped: Option<f64> = r.get(9)?;
        let (mid, mid_source) = match (quote, at_broker) {
            (Some(q), _) => (q, "quote"),
            (None, true) => (reference, "signal_bar"),
            (None, false) => (unslipped.unwrap_or(reference), "fill_bar"),
        };
        Ok(Execution {
            symbol: r.get(0)?,
            side: r.get(1)?,
            created_ts: r.get(2)?,
            mid,
            mid_source,
            fill_price: r.get(5)?,
            quantity: r.get(6)?,
            fill_ts: r.get(7)?,
        })
    })?;
    let out = rows.collect::<Result<Vec<_>, _>>()?;
    Ok((run_id, out.into_iter().filter(|e| e.mid > 0.0 && e.quantity > 0.0).collect()))
}

/// Summarizes `execs` of run `run_id`.
pub fn report(run_id: i64, execs: &[Execution]) -> ExecutionReport {
    let mut by_symbol: BTreeMap<String, Vec<&Execution>> = BTreeMap::new();
    let mut by_hour: BTreeMap<i64, Vec<&Execution>> = BTreeMap::new();
    for e in execs {
        by_symbol.entry(e.symbol.clone()).or_default().push(e);
        by_hour.entry(e.created_ts.rem_euclid(86_400) / 3600).or_default().push(e);
    }
    ExecutionReport {
        run_id,
        total: group("all".into(), &execs.iter().collect::<Vec<_>>()),
        by_symbol: by_symbol.into_iter().map(|(k, v)| group(k, &v)).collect(),
        by_hour: by_hour.into_iter().map(|(h, v)| group(format!("{h:02}"), &v)).collect(),
    }
}

fn group(key: String, execs: &[&Execution]) -> Group {
    let n = execs.len();
    let mut bps: Vec<f64> = execs.iter().map(|e| e.slippage_bps()).collect();
    bps.sort_by(f64::total_cmp);
    let mean = |v: f64| if n == 0 { 0.0 } else { v / n as f64 };
    let median = match n {
        0 => 0.0,
        _ if n % 2 == 1 => bps[n / 2],
        _ => (bps[n / 2 - 1] + bps[n / 2]) / 2.0,
    };
    Group {
        key,
        fills: n,
        mean_bps: mean(bps.iter().sum()),
        median_bps: median,
        worst_bps: bps.last().copied().unwrap_or(0.0),
        cost: execs.iter().map(|e| e.slippage_cost()).sum(),
        notional: execs.iter().map(|e| e.fill_price * e.quantity).sum(),
        mean_seconds_to_fill: mean(execs.iter().map(|e| (e.fill_ts - e.created_ts) as f64).sum()),
    }
}

/// The report as text tables.
pub fn human(r: &ExecutionReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "execution quality, run {} (filled market orders; slippage vs mid, + = paid)", r.run_id);
    let table = |o: &mut String, title: &str, rows: &[Group]| {
        let _ = writeln!(
            o,
            "\n{title:<8} {:>6} {:>10} {:>10} {:>10} {:>12} {:>14} {:>9}",
            "fills", "mean bps", "median", "worst", "cost", "notional", "to fill"
        );
        for g in rows {
            let _ = writeln!(
                o,
                "{:<8} {:>6} {:>10.2} {:>10.2} {:>10.2} {:>12.2} {:>14.2} {:>9}",
                g.key,
                g.fills,
                g.mean_bps,
                g.median_bps,
                g.worst_bps,
                g.cost,
                g.notional,
                duration(g.mean_seconds_to_fill)
            );
        }
    };
    table(&mut o, "symbol", &r.by_symbol);
    table(&mut o, "hour UTC", &r.by_hour);
    table(&mut o, "total", std::slice::from_ref(&r.total));
    o
}

/// A duration for people: seconds, minutes, hours or days.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0}s"),
        s if s < 7200.0 => format!("{:.0}m", s / 60.0),
        s if s < 172_800.0 => format!("{:.1}h", s / 3600.0),
        s => format!("{:.1}d", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(side: &str, mid: f64, fill: f64, ts: i64) -> Execution {
        Execution {
            symbol: "X".into(),
            side: side.into(),
            created_ts: ts,
            mid,
            mid_source: "bar",
            fill_price: fill,
            quantity: 10.0,
            fill_ts: ts + 60,
        }
    }

    #[test]
    fn slippage_is_positive_when_paid_on_either_side() {
        assert!((e("buy", 100.0, 100.1, 0).slippage_bps() - 10.0).abs() < 1e-9);
        assert!((e("sell", 100.0, 99.9, 0).slippage_bps() - 10.0).abs() < 1e-9);
        assert!((e("sell", 100.0, 100.2, 0).slippage_bps() + 20.0).abs() < 1e-9);
        assert!((e("buy", 100.0, 100.1, 0).slippage_cost() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn groups_by_symbol_and_utc_hour() {
        let xs = [
            e("buy", 100.0, 100.1, 14 * 3600),
            e("sell", 100.0, 99.8, 14 * 3600 + 1800),
            e("buy", 50.0, 50.0, 86_400 + 15 * 3600),
        ];
        let r = report(7, &xs);
        assert_eq!(r.by_hour.iter().map(|g| (g.key.as_str(), g.fills)).collect::<Vec<_>>(), [("14", 2), ("15", 1)]);
        assert!((r.by_hour[0].mean_bps - 15.0).abs() < 1e-9);
        assert!((r.total.median_bps - 10.0).abs() < 1e-9);
        assert!((r.total.worst_bps - 20.0).abs() < 1e-9);
        assert!((r.total.mean_seconds_to_fill - 60.0).abs() < 1e-9);
    }
}
