//! What a bot did with an outside broker, in its journal: the write-ahead order records and
//! the broker outcomes the engine applied.
//!
//! | table | one row per |
//! | --- | --- |
//! | `broker_orders` | order meant for the broker, written (state `pending`) in the same transaction as the timestamp that created it, before it is sent; then `sent` (with Alpaca's order id; an OCO pair's stop leg gets the id Alpaca gave the leg), `rejected`, `expired` (decided on a bar older than the staleness window, never sent), `withheld` (an entry not sent because the bot was HALTED), `cancel_sent`, `cancelled_unsent`; `quantity` is what was sent (an exit whose protective order filled first is sent for the rest); with the quote at submission (`bid`, `ask`, `mid`), the fill (`fill_price`, `filled_qty`, `fill_ts`) and `slippage_bps` against the mid (positive = paid) |
//! | `broker_events` | broker outcome applied to the engine at bar time `ts` (`fill`, `cancelled`, `rejected`, `expired`, `withheld`), and anything else the broker did worth knowing (`partial_fill`, `broker_error`, `broker_anomaly`, `resubmit`, `reconcile`, `fill_before_cancel`) |
//!
//! A restarted bot replays the applied outcomes at the bar times they were applied, so its
//! rebuilt state equals the state it had; `pending` records are looked up at the broker by
//! `client_order_id` before anything is sent again.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::diagnostics::{Diagnostic, codes};

/// A `broker_orders` row as a restart reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerOrderRecord {
    /// Our id.
    pub client_order_id: String,
    /// `pending`, `sent`, `rejected`, `expired`, `withheld`, `cancel_sent`, `cancelled_unsent`.
    pub state: String,
    /// Alpaca's id, once known.
    pub broker_order_id: Option<String>,
    /// Last message (a rejection's reason).
    pub message: Option<String>,
    /// Mid at submission.
    pub mid: Option<f64>,
    /// Units sent (or to send).
    pub quantity: f64,
}

/// A `broker_events` row the engine applied (`fill`, `cancelled`, `rejected`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedEvent {
    /// Order of the events.
    pub seq: i64,
    /// Bar time it was applied at (UTC seconds).
    pub ts: i64,
    /// Our id.
    pub client_order_id: String,
    /// `fill`, `cancelled`, `rejected`, `expired` or `withheld`.
    pub kind: String,
    /// Units filled.
    pub quantity: Option<f64>,
    /// Average fill price.
    pub price: Option<f64>,
    /// Reason.
    pub message: String,
}

/// What a restart needs from the broker tables of run `run_id`: every order record, the
/// outcomes applied up to bar time `until` (inclusive), and the next event number.
///
/// # Errors
/// When the database cannot be read.
pub fn load(
    path: &Path,
    run_id: i64,
    until: i64,
) -> Result<(Vec<BrokerOrderRecord>, Vec<AppliedEvent>, i64), Diagnostic> {
    let err = |e: rusqlite::Error| Diagnostic::error(codes::IO, format!("journal `{}`: {e}", path.display()));
    let conn = Connection::open(path).map_err(err)?;
    conn.execute_batch(super::schema::BROKER).map_err(err)?;
    let mut st = conn
        .prepare(
            "SELECT client_order_id, state, broker_order_id, message, mid, quantity FROM broker_orders \
             WHERE run_id = ?1 ORDER BY rowid",
        )
        .map_err(err)?;
    let orders = st
        .query_map(params![run_id], |r| {
            Ok(BrokerOrderRecord {
                client_order_id: r.get(0)?,
                state: r.get(1)?,
                broker_order_id: r.get(2)?,
                message: r.get(3)?,
                mid: r.get(4)?,
                quantity: r.get(5)?,
            })
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut st = conn
        .prepare(
            "SELECT seq, ts, client_order_id, kind, quantity, price, message FROM broker_events \
             WHERE run_id = ?1 AND ts <= ?2 AND kind IN ('fill', 'cancelled', 'rejected', 'expired', 'withheld') ORDER BY seq",
        )
        .map_err(err)?;
    let events = st
        .query_map(params![run_id, until], |r| {
            Ok(AppliedEvent {
                seq: r.get(0)?,
                ts: r.get(1)?,
                client_order_id: r.get(2)?,
                kind: r.get(3)?,
                quantity: r.get(4)?,
                price: r.get(5)?,
                message: r.get(6)?,
            })
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let next: Option<i64> = conn
        .query_row("SELECT MAX(seq) FROM broker_events WHERE run_id = ?1", params![run_id], |r| r.get(0))
        .optional()
        .map_err(err)?
        .flatten();
    Ok((orders, events, next.map_or(0, |n| n + 1)))
}

/// Inserts a write-ahead record (state `pending`).
#[allow(clippy::too_many_arguments)]
pub fn insert_pending(conn: &Connection, run_id: i64, r: &PendingRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO broker_orders (run_id, client_order_id, created_ts, symbol, side, order_type, \
         time_in_force, quantity, limit_price, stop_price, state, bid, ask, mid) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?12, ?13)",
    )?
    .execute(params![
        run_id,
        r.client_order_id,
        r.created_ts,
        r.symbol,
        r.side,
        r.order_type,
        r.time_in_force,
        r.quantity,
        r.limit_price,
        r.stop_price,
        r.bid,
        r.ask,
        r.mid
    ])?;
    Ok(())
}

/// The fields of a write-ahead record.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRecord {
    /// Our id.
    pub client_order_id: String,
    /// Bar time it was created (UTC seconds).
    pub created_ts: i64,
    /// Broker symbol.
    pub symbol: String,
    /// `buy` / `sell`.
    pub side: &'static str,
    /// `market`, `limit`, `stop`.
    pub order_type: &'static str,
    /// `day`, `gtc`.
    pub time_in_force: &'static str,
    /// Units.
    pub quantity: f64,
    /// Limit price.
    pub limit_price: Option<f64>,
    /// Stop price.
    pub stop_price: Option<f64>,
    /// Bid at submission (a quote, or the bar-based estimate).
    pub bid: f64,
    /// Ask at submission.
    pub ask: f64,
    /// Mid at submission.
    pub mid: f64,
}

/// Moves a record to `state`, with the broker's id and status when known.
pub fn set_state(
    conn: &Connection,
    run_id: i64,
    client_order_id: &str,
    state: &str,
    broker_order_id: Option<&str>,
    broker_status: Option<&str>,
    message: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE broker_orders SET state = ?3, broker_order_id = COALESCE(?4, broker_order_id), \
         broker_status = COALESCE(?5, broker_status), message = COALESCE(?6, message) \
         WHERE run_id = ?1 AND client_order_id = ?2",
    )?
    .execute(params![run_id, client_order_id, state, broker_order_id, broker_status, message])?;
    Ok(())
}

/// Sets the units a record's order is sent for (an exit reduced by a protective order's
/// fill that raced its cancellation).
pub fn set_quantity(conn: &Connection, run_id: i64, client_order_id: &str, quantity: f64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE broker_orders SET quantity = ?3 WHERE run_id = ?1 AND client_order_id = ?2")?
        .execute(params![run_id, client_order_id, quantity])?;
    Ok(())
}

/// Replaces the bar-based quote of a record with the broker's quote at submission.
pub fn set_quote(
    conn: &Connection,
    run_id: i64,
    client_order_id: &str,
    bid: f64,
    ask: f64,
    mid: f64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE broker_orders SET bid = ?3, ask = ?4, mid = ?5 WHERE run_id = ?1 AND client_order_id = ?2",
    )?
    .execute(params![run_id, client_order_id, bid, ask, mid])?;
    Ok(())
}

/// Records a fill on the order's record, with its slippage against the mid at submission
/// (bps, positive when the fill was worse than the mid).
pub fn set_fill(
    conn: &Connection,
    run_id: i64,
    client_order_id: &str,
    ts: i64,
    qty: f64,
    price: f64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE broker_orders SET fill_ts = ?3, filled_qty = ?4, fill_price = ?5, broker_status = 'filled', \
         slippage_bps = CASE WHEN mid > 0 THEN (CASE side WHEN 'buy' THEN (?5 - mid) ELSE (mid - ?5) END) / mid * 10000.0 END \
         WHERE run_id = ?1 AND client_order_id = ?2",
    )?
    .execute(params![run_id, client_order_id, ts, qty, price])?;
    Ok(())
}

/// Appends a `broker_events` row.
#[allow(clippy::too_many_arguments)]
pub fn event(
    conn: &Connection,
    run_id: i64,
    seq: i64,
    ts: i64,
    client_order_id: &str,
    kind: &str,
    quantity: Option<f64>,
    price: Option<f64>,
    message: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO broker_events (run_id, seq, ts, client_order_id, kind, quantity, price, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![run_id, seq, ts, client_order_id, kind, quantity, price, message])?;
    Ok(())
}
