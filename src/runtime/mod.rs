//! The runtime layer: every piece of I/O.
//!
//! Files and time zones ([`csv_bars`], [`timeparse`]), the SQLite bar store ([`bar_store`]) and
//! journal ([`journal`]), loading documents from disk ([`loader`]), finding a bundle's market
//! data ([`data`]), writing reports ([`report`]), running rule tests ([`rule_tests`]) and
//! hot-reloading bundles ([`reload`]), the paper-trading loop ([`paper`]) and a bot's status ([`status`]).

pub mod alpaca;
pub mod bar_store;
pub mod broker_log;
pub mod control;
pub mod csv_bars;
pub mod data;
pub mod execution;
pub mod files;
pub mod gates;
pub mod gateway;
pub mod journal;
pub mod lease;
pub mod live_feed;
pub mod live_gate;
pub mod loader;
pub mod paper;
pub mod phase_limits;
pub mod phase_store;
pub mod reload;
pub mod reload_log;
pub mod report;
pub mod rule_tests;
pub mod run_evidence;
pub mod status;
pub mod timeparse;
pub mod trading_log;
