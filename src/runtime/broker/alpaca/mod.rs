//! Alpaca's REST APIs: the Trading API v2 (account, orders, positions, clock) and the Market
//! Data API (v2 stock bars and quotes, v1beta3 crypto bars and quotes).
//!
//! Hosts (`../shared/alpaca/README.md`, "Essentials"): paper trading at
//! [`PAPER_TRADING_URL`], live trading at [`LIVE_TRADING_URL`], market data for both at
//! [`DATA_URL`]. Anything that is not the paper host is live money, so [`Environment`] is the
//! only way to pick a host and `Live` is only built by the live gates
//! (`crate::runtime::broker::live_gate`).
//!
//! Every request carries the `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` headers from
//! [`Credentials`], which come from the environment and are never printed (their `Debug` and
//! every error message leave the secret out). Rate limits (HTTP 429, whose body is not always
//! JSON) are retried after the `X-RateLimit-Reset` time; a timed-out or 5xx `POST /v2/orders`
//! is never retried blindly: the caller looks the order up by `client_order_id` first
//! ([`BrokerError::outcome_unknown`]).

mod credentials;
mod error;
mod http;
pub mod market_data;
pub mod model;
pub mod trading;

pub use credentials::{Credentials, KEY_ID_VAR, PAPER_KEY_ID_VAR, PAPER_SECRET_VAR, SECRET_VAR};
pub use error::BrokerError;
pub use http::RetryPolicy;
pub use market_data::MarketDataClient;
pub use trading::TradingClient;

/// Trading API host for paper accounts.
pub const PAPER_TRADING_URL: &str = "https://paper-api.alpaca.markets";
/// Trading API host for live accounts (real money).
pub const LIVE_TRADING_URL: &str = "https://api.alpaca.markets";
/// Market Data API host (paper and live alike).
pub const DATA_URL: &str = "https://data.alpaca.markets";

/// Which trading host a client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `paper-api.alpaca.markets`: simulated money.
    Paper,
    /// `api.alpaca.markets`: real money.
    Live,
}

impl Environment {
    /// `paper` or `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Paper => "paper",
            Environment::Live => "live",
        }
    }
}
