//! Alpaca's JSON shapes, as far as the runtime reads them.
//!
//! The Trading API sends decimals as strings (`"qty": "2"`) and some SDK mocks send numbers;
//! both are read into `f64`. Market data sends numbers. Times are RFC 3339 with up to
//! nanosecond precision, kept as text and turned into UTC seconds with [`utc_seconds`].

use serde::{Deserialize, Deserializer, Serialize};

/// RFC 3339 text as UTC seconds (fraction dropped), or `None` when it does not parse.
pub fn utc_seconds(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp())
}

/// A decimal sent as a string or a number.
fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    opt_decimal(d)?.ok_or_else(|| serde::de::Error::custom("expected a decimal, found null"))
}

/// A decimal sent as a string, a number or null.
fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        N(f64),
        S(String),
    }
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(Num::N(v)) => Ok(Some(v)),
        Some(Num::S(s)) if s.trim().is_empty() => Ok(None),
        Some(Num::S(s)) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected a decimal, found {s:?}"))),
    }
}

/// `GET /v2/account`: the fields the runtime uses (currency amounts in the account currency).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Account {
    /// Account id (UUID).
    pub id: String,
    /// Account number, e.g. `PA3...` for paper accounts; `--confirm-live` must match it.
    pub account_number: String,
    /// `ACTIVE`, `ACCOUNT_UPDATED`, ...
    pub status: String,
    /// ISO 4217 currency.
    #[serde(default)]
    pub currency: String,
    /// Cash (currency).
    #[serde(deserialize_with = "decimal")]
    pub cash: f64,
    /// Equity (currency).
    #[serde(deserialize_with = "decimal")]
    pub equity: f64,
    /// Buying power (currency).
    #[serde(deserialize_with = "decimal")]
    pub buying_power: f64,
    /// Trading is blocked on the account.
    #[serde(default)]
    pub trading_blocked: bool,
    /// The account is blocked.
    #[serde(default)]
    pub account_blocked: bool,
}

/// An order as Alpaca reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    /// Alpaca's order id (UUID).
    pub id: String,
    /// Our `client_order_id`.
    pub client_order_id: String,
    /// Symbol (`AAPL`, `BTC/USD`).
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `market`, `limit`, `stop`, ... (the `type` field; bodies repeat it as `order_type`).
    #[serde(rename = "type")]
    pub order_type: String,
    /// `day`, `gtc`, ...
    pub time_in_force: String,
    /// Ordered quantity (None for notional orders).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub qty: Option<f64>,
    /// Filled quantity so far.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub filled_qty: Option<f64>,
    /// Average fill price so far.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub filled_avg_price: Option<f64>,
    /// Limit price.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub limit_price: Option<f64>,
    /// Stop price.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub stop_price: Option<f64>,
    /// Order status (`new`, `partially_filled`, `filled`, `canceled`, ...).
    pub status: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Submission time (RFC 3339).
    #[serde(default)]
    pub submitted_at: Option<String>,
    /// Fill time (RFC 3339).
    #[serde(default)]
    pub filled_at: Option<String>,
    /// `simple` (or empty), `bracket`, `oco`, `oto`.
    #[serde(default)]
    pub order_class: Option<String>,
    /// The other orders of a bracket or OCO order (the parent carries them): for an OCO exit,
    /// the stop-loss leg.
    #[serde(default)]
    pub legs: Option<Vec<Order>>,
}

impl Order {
    /// The status is final: nothing more will fill.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "filled" | "canceled" | "expired" | "rejected" | "done_for_day" | "replaced" | "stopped" | "suspended"
        )
    }

    /// Filled quantity (0 when none).
    pub fn filled(&self) -> f64 {
        self.filled_qty.unwrap_or(0.0)
    }
}

/// `POST /v2/orders` body. Quantities and prices go as strings, as Alpaca recommends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderRequest {
    /// Symbol.
    pub symbol: String,
    /// Units, as a decimal string.
    pub qty: String,
    /// `buy` or `sell`.
    pub side: &'static str,
    /// `market`, `limit` or `stop`.
    #[serde(rename = "type")]
    pub order_type: &'static str,
    /// `day`, `gtc`, `ioc`, ...
    pub time_in_force: &'static str,
    /// Limit price (2 decimals at or above $1, 4 below: Alpaca rejects sub-penny prices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// Stop price (same rounding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<String>,
    /// Our id, at most 128 characters.
    pub client_order_id: String,
    /// `oco` for a one-cancels-other exit pair (`None`: a simple order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_class: Option<&'static str>,
    /// The take-profit leg of an OCO pair (`{"limit_price"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<PriceLeg>,
    /// The stop-loss leg of an OCO pair (`{"stop_price"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<PriceLeg>,
}

/// A leg of an OCO or bracket request: `take_profit: {"limit_price": ...}` or
/// `stop_loss: {"stop_price": ...}` (prices as strings, sub-penny rules as for the order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceLeg {
    /// The take-profit's limit price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// The stop-loss's stop price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<String>,
}

/// A price as Alpaca accepts it: 2 decimals at or above $1, 4 below (no sub-penny prices).
pub fn price_text(price: f64) -> String {
    if price >= 1.0 { format!("{price:.2}") } else { format!("{price:.4}") }
}

/// A quantity as a decimal string: whole units without a fraction, else up to 9 decimals.
pub fn qty_text(qty: f64) -> String {
    if qty.fract() == 0.0 {
        format!("{qty:.0}")
    } else {
        let s = format!("{qty:.9}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `GET /v2/positions` item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Position {
    /// Symbol.
    pub symbol: String,
    /// Units (negative for shorts on some payloads; `side` says).
    #[serde(deserialize_with = "decimal")]
    pub qty: f64,
    /// `long` or `short`.
    #[serde(default)]
    pub side: String,
    /// Average entry price.
    #[serde(deserialize_with = "decimal")]
    pub avg_entry_price: f64,
    /// Market value (currency).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub market_value: Option<f64>,
    /// Current price.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub current_price: Option<f64>,
}

impl Position {
    /// Signed units: negative for a short.
    pub fn signed_qty(&self) -> f64 {
        if self.side == "short" { -self.qty.abs() } else { self.qty }
    }
}

/// `GET /v2/clock`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Clock {
    /// Current time (RFC 3339).
    pub timestamp: String,
    /// The market is open.
    pub is_open: bool,
    /// Next open (RFC 3339).
    pub next_open: String,
    /// Next close (RFC 3339).
    pub next_close: String,
}

/// One item of the 207 `DELETE /v2/orders` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CancelResult {
    /// Order id.
    pub id: String,
    /// HTTP status of this cancellation (200 done, 404 not found, 422 not cancelable).
    pub status: u16,
    /// Error body when it failed.
    #[serde(default)]
    pub body: Option<ErrorBody>,
}

/// Alpaca's error body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorBody {
    /// Error code (`40410000`, ...).
    #[serde(default)]
    pub code: Option<i64>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
}

/// A market-data bar (`t`, `o`, `h`, `l`, `c`, `v`; `v` may be fractional for crypto).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DataBar {
    /// Bar start (RFC 3339, UTC).
    pub t: String,
    /// Open.
    pub o: f64,
    /// High.
    pub h: f64,
    /// Low.
    pub l: f64,
    /// Close.
    pub c: f64,
    /// Volume.
    #[serde(default)]
    pub v: f64,
}

/// A market-data quote (`bp`/`ap`: bid and ask prices, `bs`/`as`: sizes).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Quote {
    /// Quote time (RFC 3339).
    pub t: String,
    /// Bid price.
    pub bp: f64,
    /// Ask price.
    pub ap: f64,
    /// Bid size.
    #[serde(default)]
    pub bs: f64,
    /// Ask size.
    #[serde(default, rename = "as")]
    pub ask_size: f64,
}

impl Quote {
    /// `(bid + ask) / 2`, or the one side present when the other is 0.
    pub fn mid(&self) -> f64 {
        match (self.bp > 0.0, self.ap > 0.0) {
            (true, true) => (self.bp + self.ap) / 2.0,
            (true, false) => self.bp,
            (false, true) => self.ap,
            _ => f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_quantities_as_alpaca_wants_them() {
        assert_eq!(price_text(123.456), "123.46");
        assert_eq!(price_text(0.123456), "0.1235");
        assert_eq!(qty_text(10.0), "10");
        assert_eq!(qty_text(0.5), "0.5");
        assert_eq!(qty_text(1.0 / 3.0), "0.333333333");
    }

    #[test]
    fn nanosecond_times() {
        assert_eq!(utc_seconds("2023-12-12T22:31:24.668464435Z"), Some(1_702_420_284));
        assert_eq!(utc_seconds("yesterday"), None);
    }
}
