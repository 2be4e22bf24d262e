//! Reconciliation: the broker's positions and cash against the engine's, net of the bot's own
//! orders in flight, so it can run while protective orders work.
//!
//! At the first timestamp after every start, then at the first timestamp at least
//! [`RECONCILE_EVERY`] seconds of bar time after the last completed check (every bar for daily
//! bars), [`Gateway::reconcile`] reads the open orders, the positions, the account and the
//! open orders again. When a fill moved between the two reads of the orders, the comparison
//! would mix two moments: it is tried again at the next bar. Otherwise, per symbol, the
//! broker's position must equal the engine's plus the units filled at the broker and not yet
//! applied (partial fills of working orders, fills of orders that ended since the last sync),
//! and the broker's cash must cover the engine's (with the same in-flight fills). A mismatch
//! HALTs the bot (`reconcile_mismatch`, with the figures); a position in a symbol the bot does
//! not trade is a broker anomaly and halts it too. Every result is journaled (`reconcile`)
//! and logged (a passing one at `info`, a failing one at `error`).

use std::collections::HashMap;

use crate::engine::orders::Side;
use crate::engine::pipeline::Engine;
use crate::engine::trading_state::TradingState;

use super::{Gateway, State};
use crate::runtime::broker::alpaca::model::{Order as BrokerOrder, qty_text};
use crate::runtime::data::timeparse::format_utc;
use crate::runtime::journal::Journal;

/// Seconds of bar time between two reconciliations after the one at start.
pub const RECONCILE_EVERY: i64 = 3600;

/// A symbol as positions and orders may spell it (`BTC/USD` and `BTCUSD` are one).
fn plain(symbol: &str) -> String {
    symbol.replace('/', "").to_ascii_uppercase()
}

/// True when two reads of the open orders show the same orders with the same fills.
fn same(a: &HashMap<String, BrokerOrder>, b: &HashMap<String, BrokerOrder>) -> bool {
    a.len() == b.len() && a.iter().all(|(k, o)| b.get(k).is_some_and(|p| p.filled() == o.filled()))
}

impl Gateway {
    /// Compares the broker's account with the engine's at bar time `ts` (after
    /// [`Gateway::sync`]); see the module docs. Broker failures count toward the breaker and
    /// leave the check for the next bar; a mismatch is a HALT.
    pub async fn reconcile(&mut self, engine: &mut Engine, ts: i64, journal: &mut Journal) {
        if ts < self.next_reconcile {
            return;
        }
        if self.orders.values().any(|t| matches!(t.state, State::Pending { maybe_sent: true } | State::Final(_))) {
            // An order whose fate is unknown, or a final word not applied yet: next bar.
            return;
        }
        let Some(before) = self.open_orders(journal, ts).await else { return };
        let positions = match self.client.positions().await {
            Ok(p) => p,
            Err(e) => return self.failed(journal, ts, "", &e),
        };
        let account = match self.client.account().await {
            Ok(a) => a,
            Err(e) => return self.failed(journal, ts, "", &e),
        };
        let Some(after) = self.open_orders(journal, ts).await else { return };
        if !same(&before, &after) {
            return;
        }
        // Fills at the broker the engine has not applied yet.
        let mut units_in_flight = vec![0.0; self.symbols.len()];
        let mut cash_in_flight = 0.0;
        let sent: Vec<(usize, Side, String)> = self
            .sequence
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter_map(|t| match &t.state {
                State::Sent(bid) | State::Cancelling(bid) => Some((t.order.symbol, t.order.side, bid.clone())),
                _ => None,
            })
            .collect();
        for (symbol, side, bid) in sent {
            let o = match after.get(&bid) {
                Some(o) => o.clone(),
                None => match self.client.order(&bid).await {
                    Ok(o) => o,
                    Err(e) => return self.failed(journal, ts, "", &e),
                },
            };
            let sign = if side == Side::Buy { 1.0 } else { -1.0 };
            units_in_flight[symbol] += sign * o.filled();
            cash_in_flight -= sign * o.filled() * o.filled_avg_price.unwrap_or(0.0);
        }
        self.answered();
        self.next_reconcile = ts.saturating_add(RECONCILE_EVERY);
        let units = engine.units_by_symbol();
        let mut problems = Vec::new();
        for (i, symbol) in self.symbols.iter().enumerate() {
            let broker: f64 =
                positions.iter().filter(|p| plain(&p.symbol) == plain(symbol)).map(|p| p.signed_qty()).sum();
            let ours = units[i] + units_in_flight[i];
            if (broker - ours).abs() > 1e-6 * ours.abs().max(1.0) {
                problems.push(format!(
                    "{symbol}: the broker holds {} units, the bot {}",
                    qty_text(broker + 0.0),
                    qty_text(ours + 0.0)
                ));
            }
        }
        let ours: Vec<String> = self.symbols.iter().map(|s| plain(s)).collect();
        let foreign: Vec<String> = positions
            .iter()
            .filter(|p| p.qty != 0.0 && !ours.contains(&plain(&p.symbol)))
            .map(|p| format!("{} units of {}", qty_text(p.signed_qty() + 0.0), p.symbol))
            .collect();
        let cash = engine.cash() + cash_in_flight;
        let tolerance = (cash.abs() * 1e-4).max(1.0);
        if account.cash < cash - tolerance {
            problems.push(format!("cash: the broker has {:.2}, the bot counts on {:.2}", account.cash, cash));
        }
        let at = format_utc(ts);
        let message = if problems.is_empty() && foreign.is_empty() {
            format!(
                "positions match in {} symbols; broker cash {:.2}, bot cash {:.2}",
                self.symbols.len(),
                account.cash,
                cash
            )
        } else {
            let mut all = problems.clone();
            if !foreign.is_empty() {
                all.push(format!("positions in symbols the bot does not trade: {}", foreign.join(", ")));
            }
            all.join("; ")
        };
        self.event(journal, ts, "", "reconcile", None, None, message.clone());
        if problems.is_empty() && foreign.is_empty() {
            tracing::info!("reconciliation at {at}: {message}");
            return;
        }
        tracing::error!("reconciliation at {at} failed: {message}; HALTED until `dsl resume`");
        if !foreign.is_empty() {
            let what = format!("positions in symbols the bot never traded: {}", foreign.join(", "));
            self.anomaly(engine, journal, ts, "", &what);
        }
        if !problems.is_empty() {
            engine.escalate(
                TradingState::Halted,
                ts,
                "reconcile_mismatch",
                &format!("reconciliation with the broker failed: {message}; check the account, then `dsl resume`"),
                journal,
            );
        }
    }
}
