//! Orders, fills, positions and round-trip trades.

use std::fmt;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_128;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// `"buy"` or `"sell"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// Whether an order opens (or adds to) a position or reduces (or closes) one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    /// Opens or adds.
    Entry,
    /// Reduces or closes.
    Exit,
}

impl Intent {
    /// `"entry"` or `"exit"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Entry => "entry",
            Intent::Exit => "exit",
        }
    }
}

/// Order type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrderType {
    /// Fill at the next available price.
    Market,
    /// Becomes a market order when the price trades at or through `stop_price` (a sell stop
    /// triggers at or below it).
    Stop(f64),
    /// Fills at `limit_price` or better (a sell limit at or above it).
    Limit(f64),
}

impl OrderType {
    /// `"market"`, `"stop"` or `"limit"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Stop(_) => "stop",
            OrderType::Limit(_) => "limit",
        }
    }

    /// The stop or limit price, if any.
    pub fn price(&self) -> Option<f64> {
        match *self {
            OrderType::Market => None,
            OrderType::Stop(p) | OrderType::Limit(p) => Some(p),
        }
    }
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeInForce {
    /// Until filled or the end of the session (market orders).
    Day,
    /// Until filled or cancelled (protective stops and targets).
    Gtc,
}

impl TimeInForce {
    /// `"day"` or `"gtc"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Day => "day",
            TimeInForce::Gtc => "gtc",
        }
    }
}

/// How many units an order is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// A number of units.
    Units(f64),
    /// All available cash at the fill price, net of commission.
    AllCash,
    /// Whatever the position holds when the order fills.
    ClosePosition,
}

/// Why a position was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The strategy's exit rule fired.
    ExitRule,
    /// The stop-loss order filled.
    StopLoss,
    /// The trailing stop filled (its level above the fixed stop, if any).
    TrailingStop,
    /// The take-profit order filled.
    TakeProfit,
    /// `max_holding` bars elapsed.
    MaxHolding,
    /// A `halt` rule with `flatten: true` closed every position.
    Flatten,
    /// The bot's scheduled rebalance sold the position down to a weight of 0.
    Rebalance,
}

impl ExitReason {
    /// snake_case name used in reports and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::ExitRule => "exit_rule",
            ExitReason::StopLoss => "stop_loss",
            ExitReason::TrailingStop => "trailing_stop",
            ExitReason::TakeProfit => "take_profit",
            ExitReason::MaxHolding => "max_holding",
            ExitReason::Flatten => "flatten",
            ExitReason::Rebalance => "rebalance",
        }
    }
}

/// Why an order was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderReason {
    /// The entry rule fired.
    EntryRule,
    /// An exit (rule, max holding, or a protective order).
    Exit(ExitReason),
    /// The bot's scheduled rebalance: a buy toward the target weight, or a sell of part of the
    /// position.
    Rebalance,
}

impl OrderReason {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderReason::EntryRule => "entry_rule",
            OrderReason::Exit(r) => r.as_str(),
            OrderReason::Rebalance => "rebalance",
        }
    }
}

/// An order as the engine tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Deterministic id, see [`OrderIds`].
    pub client_order_id: ClientOrderId,
    /// Strategy-on-symbol slot that owns it.
    pub slot: usize,
    /// Strategy index in the bundle.
    pub strategy: usize,
    /// Symbol index.
    pub symbol: usize,
    /// Buy or sell.
    pub side: Side,
    /// Entry or exit.
    pub intent: Intent,
    /// Market, stop or limit.
    pub order_type: OrderType,
    /// Day or GTC.
    pub time_in_force: TimeInForce,
    /// Requested quantity.
    pub quantity: Quantity,
    /// Units estimated at `reference_price` (what policies see as `order.quantity`).
    pub estimated_units: f64,
    /// Close of the bar the order was created on (currency per unit).
    pub reference_price: f64,
    /// Creation time (UTC seconds).
    pub created_ts: i64,
    /// Why.
    pub reason: OrderReason,
    /// The strategy's `expected_return` for an entry (fraction of price); `NaN` otherwise.
    pub expected_return: f64,
    /// A one-cancels-other pair (a stop-loss and a take-profit for the same shares): the id of
    /// the pair's first order, on both. The pair holds the shares once; when one fills, the
    /// other is cancelled.
    pub group: Option<ClientOrderId>,
}

impl Order {
    /// True when the order keeps its slot busy while it works: a market order (its fill is
    /// due at the next open) or an entry of any type (no second entry while one works).
    pub fn holds_slot(&self) -> bool {
        self.order_type == OrderType::Market || self.intent == Intent::Entry
    }

    /// `estimated_units * reference_price`.
    pub fn notional(&self) -> f64 {
        self.estimated_units * self.reference_price
    }
}

/// A fill of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    /// The order's id.
    pub client_order_id: ClientOrderId,
    /// Fill time (UTC seconds): the bar's open time for open fills, the bar time for others.
    pub ts: i64,
    /// Units filled.
    pub quantity: f64,
    /// Fill price, slippage included (currency per unit).
    pub price: f64,
    /// Commission paid (currency).
    pub commission: f64,
    /// Cost of slippage against the unslipped price (currency, >= 0).
    pub slippage_cost: f64,
}

/// What has been sold of a position so far (it may close in several fills).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Exited {
    /// Units sold.
    pub quantity: f64,
    /// Their value at the fill prices (currency).
    pub gross: f64,
    /// Commission on those fills (currency).
    pub fees: f64,
    /// Why the first of them was sold.
    pub reason: Option<ExitReason>,
}

/// An open position of one strategy in one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// Units still held (> 0; long only for now).
    pub quantity: f64,
    /// Average entry fill price.
    pub entry_price: f64,
    /// Entry fill time (UTC seconds).
    pub entry_ts: i64,
    /// Symbol bar index of the entry fill.
    pub entry_bar: u64,
    /// Cash paid at entry, commission included (for the whole position, also after part of it
    /// was sold).
    pub entry_cost: f64,
    /// Commission paid at entry.
    pub entry_fees: f64,
    /// Bars closed while held.
    pub bars_held: u32,
    /// The entry order's id.
    pub entry_order_id: ClientOrderId,
    /// Stop price (currency per unit), `NaN` without one: the fixed stop-loss set at the entry
    /// fill, or the trailing stop's level when that is higher.
    pub stop_price: f64,
    /// The highest high since the entry fill (the fill price at first), for a trailing stop;
    /// `NaN` without one.
    pub high_water: f64,
    /// `stop_price` is the trailing stop's level (not the fixed stop-loss).
    pub trailing: bool,
    /// Take-profit price (currency per unit), `NaN` without one.
    pub take_profit_price: f64,
    /// What was sold so far; the round trip is recorded when nothing is left.
    pub exited: Exited,
}

/// A closed round trip.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Trade {
    /// Strategy name.
    pub strategy: Arc<str>,
    /// Symbol.
    pub symbol: Arc<str>,
    /// Entry fill time (UTC seconds).
    pub entry_time: i64,
    /// Entry fill price.
    pub entry_price: f64,
    /// Exit fill time (UTC seconds).
    pub exit_time: i64,
    /// Exit fill price.
    pub exit_price: f64,
    /// Units.
    pub quantity: f64,
    /// Net profit: exit proceeds after commission minus entry cost with commission (currency).
    pub pnl: f64,
    /// `pnl / entry cost * 100` (percent points).
    pub pnl_pct: f64,
    /// Commissions of both fills (currency).
    pub fees: f64,
    /// Why it closed.
    pub exit_reason: &'static str,
    /// Symbol bars between the entry and exit fills.
    pub holding_bars: u64,
    /// Entry order id.
    pub entry_order_id: ClientOrderId,
    /// Exit order id.
    pub exit_order_id: ClientOrderId,
}

/// A `client_order_id`: `td-` and 24 lowercase hex digits (27 ASCII bytes), stored inline so
/// that orders, fills and trades can carry it without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientOrderId([u8; 27]);

impl ClientOrderId {
    /// Parses an id written by [`ClientOrderId::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<ClientOrderId> {
        let b = s.as_bytes();
        let ok = b.len() == 27
            && b.starts_with(b"td-")
            && b[3..].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        ok.then(|| {
            let mut id = [0u8; 27];
            id.copy_from_slice(b);
            ClientOrderId(id)
        })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII: built only from `td-` and hex digits.
        std::str::from_utf8(&self.0).unwrap_or("td-invalid")
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl serde::Serialize for ClientOrderId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for ClientOrderId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// Derives the `client_order_id`s of one strategy on one symbol of one run of one bot.
///
/// The id of an order is `td-` and 24 hex digits (96 bits) of the XXH3-128 hash of the hash of
/// `bot`, the journal run, `strategy` and `symbol` (each length-prefixed), the bar time and the
/// intent's sequence number on that bar. The same decision of the same run always gets the
/// same id, so a restarted bot cannot submit it twice; another run (`--fresh`, a new run after
/// a completed one) gets other ids, so it never adopts a previous run's orders at the broker
/// (Alpaca keeps `client_order_id`s unique per account, cancelled orders included). 96 bits make
/// an accidental collision negligible; the ids need determinism and uniqueness, not secrecy,
/// so a fast non-cryptographic hash is enough.
#[derive(Clone, Copy)]
pub struct OrderIds {
    prefix: u128,
}

impl OrderIds {
    /// The id generator for `strategy` trading `symbol` in run `run` of `bot`.
    pub fn new(bot: &str, run: i64, strategy: &str, symbol: &str) -> Self {
        let run = run.to_string();
        let mut buf = Vec::with_capacity(bot.len() + run.len() + strategy.len() + symbol.len() + 16);
        for part in [bot, run.as_str(), strategy, symbol] {
            buf.extend_from_slice(&(part.len() as u32).to_le_bytes());
            buf.extend_from_slice(part.as_bytes());
        }
        OrderIds { prefix: xxh3_128(&buf) }
    }

    /// The id of intent number `seq` on the bar at `bar_ts`.
    #[inline]
    pub fn id(&self, bar_ts: i64, seq: u32) -> ClientOrderId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut input = [0u8; 28];
        input[..16].copy_from_slice(&self.prefix.to_le_bytes());
        input[16..24].copy_from_slice(&bar_ts.to_le_bytes());
        input[24..].copy_from_slice(&seq.to_le_bytes());
        let d = xxh3_128(&input).to_be_bytes();
        let mut id = [0u8; 27];
        id[..3].copy_from_slice(b"td-");
        for (i, b) in d.iter().take(12).enumerate() {
            id[3 + 2 * i] = HEX[(b >> 4) as usize];
            id[4 + 2 * i] = HEX[(b & 15) as usize];
        }
        ClientOrderId(id)
    }
}

/// The `client_order_id` of one intent of run 0; see [`OrderIds`].
pub fn client_order_id(bot: &str, strategy: &str, symbol: &str, bar_ts: i64, seq: u32) -> ClientOrderId {
    OrderIds::new(bot, 0, strategy, symbol).id(bar_ts, seq)
}

/// `price` on the US equity tick grid (Alpaca's and SEC Rule 612's: $0.01 at or above $1,
/// $0.0001 below), rounded up or down; non-finite prices are returned as they are.
pub fn to_tick(price: f64, up: bool) -> f64 {
    if !price.is_finite() {
        return price;
    }
    let scale = if price >= 1.0 { 100.0 } else { 10_000.0 };
    // The epsilon keeps a price already on the grid (float noise included) where it is.
    let steps = price * scale;
    let steps = if up { (steps - 1e-6).ceil() } else { (steps + 1e-6).floor() };
    steps / scale
}

/// True for a crypto pair (`BTC/USD`): traded in fractions at any price, no tick grid.
pub fn is_crypto(symbol: &str) -> bool {
    symbol.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = client_order_id("bot", "s", "GOOG", 100, 0);
        assert_eq!(a, client_order_id("bot", "s", "GOOG", 100, 0));
        assert_ne!(a, client_order_id("bot", "s", "GOOG", 100, 1));
        assert_ne!(a, client_order_id("bot", "sG", "OOG", 100, 0));
        assert_ne!(a, OrderIds::new("bot", 2, "s", "GOOG").id(100, 0), "another run, another id");
        assert_eq!(a.as_str().len(), 27);
        assert!(a.as_str().starts_with("td-"));
    }
}
