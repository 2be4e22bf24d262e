//! Market data: CSV bars in the layouts found in the wild ([`csv_bars`]), time parsing and
//! time zones ([`timeparse`]), the SQLite bar store ([`bar_store`]), the bars a bundle trades
//! ([`crate::runtime::library::source`]) and the live Alpaca bar feed ([`crate::runtime::broker::live_feed`]). Bars are validated on the way in
//! (OHLC order, finite prices, increasing UTC times): everything downstream may trust them.

pub mod bar_store;
pub mod csv_bars;
pub mod timeparse;
