//! The document library on disk: loading a bot or a lone document with everything it
//! references ([`loader`]), running rule tests ([`rule_tests`]) and hot-reloading edited
//! documents ([`reload`]).

pub mod loader;
pub mod reload;
pub mod rule_tests;
pub mod source;
