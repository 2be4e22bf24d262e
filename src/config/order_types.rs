//! How a strategy's orders go out beyond the market default: limit and stop entries
//! (`order: {type: limit, price: EXPR, expires_after: 3 bars}`) and trailing stops
//! (`trailing_stop: 5%` or `{atr_multiple: 3, atr_period: 14}`), and their reading from YAML.

use super::expr_source::ExprSource;
use super::node::{Node, NodeValue};
use super::reader::Reader;
use crate::diagnostics::{Spanned, codes};

/// A trailing stop: a sell stop that follows the highest high since the entry fill (the fill
/// price at first) and never moves down. Checked against each bar's low like the fixed stop,
/// with the level set at the previous bar's close (no lookahead); with a fixed `stop_loss` too,
/// the higher of the two applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrailingStop {
    /// This fraction below the highest high (`trailing_stop: 5%`).
    Percent(f64),
    /// This many ATRs (Wilder, `period` bars, of the bar before the move) below the highest
    /// high (`trailing_stop: {atr_multiple: 3, atr_period: 14}`).
    Atr {
        /// Distance in ATRs.
        multiple: f64,
        /// ATR period in bars.
        period: u32,
    },
}

/// The type of an entry order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOrderType {
    /// A buy limit: fills at `price` or lower.
    Limit,
    /// A buy stop: becomes a market order once the price trades at or above `price`
    /// (a breakout entry).
    Stop,
}

/// A strategy's entry order when it is not a market order: `order: {type: limit, price:
/// close * 0.99, expires_after: 3, time_in_force: gtc}`.
///
/// `price` is a number expression evaluated on the signal bar (currency per unit); the order
/// works from the next bar. A limit fills at its price when a later bar trades through it, or
/// at that bar's open when the open is already better; a stop triggers when a bar trades at or
/// above it and fills at the stop (or the open when the bar opens above it), with slippage. An
/// order still unfilled after `expires_after` bars (or, with `time_in_force: day`, at the first
/// bar of a later UTC day) is cancelled, and the cancellation journaled. Limit and stop orders
/// are for whole shares at Alpaca, so an equity entry's quantity is rounded down.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryOrder {
    /// Limit or stop.
    pub order_type: Spanned<EntryOrderType>,
    /// The limit or stop price.
    pub price: ExprSource,
    /// Bars the order works before it is cancelled (`None`: until filled, or the day's end with
    /// `time_in_force: day`).
    pub expires_after: Option<Spanned<u32>>,
    /// `day` (cancelled at the day's end) or `gtc` (the default).
    pub day: bool,
}

/// Reads `order`: `{type: limit|stop|market, price, expires_after, time_in_force}`; `None` for a
/// market order.
pub(super) fn read_entry_order(r: &mut Reader<'_>, node: &Node) -> Option<Option<EntryOrder>> {
    let mut m = r.map(node, "order")?;
    let kind =
        m.required(r, "type").and_then(|n| r.choice(n, "order type", &["market", "limit", "stop", "stop_limit"]));
    let price = m.get("price").map(|n| r.expr(n, "price"));
    let expires = m.get("expires_after").map(|n| read_bars(r, n, "expires_after"));
    let tif = m.get("time_in_force").map(|n| r.choice(n, "time_in_force", &["day", "gtc"]));
    let span = m.span();
    m.finish(r);
    let kind = kind?;
    let order_type = match kind.value {
        "market" => {
            if price.is_some() || expires.is_some() {
                return r.fail(
                    codes::INVALID_VALUE,
                    span,
                    "a market entry takes no `price` or `expires_after`".into(),
                    Some("write `type: limit` or `type: stop` to enter at a price".into()),
                );
            }
            return Some(None);
        }
        "stop_limit" => {
            return r.fail(
                codes::UNSUPPORTED,
                kind.span,
                "stop-limit entries are not supported yet".into(),
                Some("use `type: stop` (a stop that becomes a market order) or `type: limit`".into()),
            );
        }
        "limit" => EntryOrderType::Limit,
        _ => EntryOrderType::Stop,
    };
    let Some(price) = price else {
        return r.fail(
            codes::MISSING_KEY,
            span,
            format!("a {} entry needs a `price`", kind.value),
            Some("e.g. `price: close * 0.99` (a number expression evaluated on the signal bar)".into()),
        );
    };
    let expires_after = match expires {
        Some(e) => Some(e?),
        None => None,
    };
    let day = match tif {
        Some(t) => t?.value == "day",
        None => false,
    };
    Some(Some(EntryOrder { order_type: Spanned::new(order_type, kind.span), price: price?, expires_after, day }))
}

/// A count of bars: `3` or `3 bars`.
fn read_bars(r: &mut Reader<'_>, node: &Node, what: &str) -> Option<Spanned<u32>> {
    if let NodeValue::Str(text) = &node.value {
        let t = text.trim();
        let n = t.strip_suffix("bars").or_else(|| t.strip_suffix("bar")).map(str::trim);
        return match n.and_then(|n| n.parse::<u32>().ok()).filter(|n| *n >= 1) {
            Some(v) => Some(Spanned::new(v, node.span)),
            None => r.fail(
                codes::INVALID_VALUE,
                node.span,
                format!("`{what}` must be a whole number of bars, found `{t}`"),
                Some("write `3` or `3 bars`".into()),
            ),
        };
    }
    r.positive_int(node, what)
}

/// Reads `trailing_stop`: a fraction (`5%`) or `{atr_multiple: 3, atr_period: 14}`.
pub(super) fn read_trailing_stop(r: &mut Reader<'_>, node: &Node) -> Option<Spanned<TrailingStop>> {
    if let NodeValue::Map(_) = node.value {
        let mut m = r.map(node, "trailing_stop")?;
        let multiple = m.required(r, "atr_multiple").and_then(|n| r.positive_number(n, "atr_multiple"));
        let period = m.get("atr_period").map(|n| r.positive_int(n, "atr_period"));
        m.finish(r);
        let period = match period {
            Some(p) => p?.value,
            None => 14,
        };
        return Some(Spanned::new(TrailingStop::Atr { multiple: multiple?.value, period }, node.span));
    }
    let p = r.rate_in(node, "trailing_stop", 1e-6, 0.99)?;
    Some(Spanned::new(TrailingStop::Percent(p.value.value), p.span))
}
