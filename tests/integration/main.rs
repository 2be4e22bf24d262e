//! Integration tests: one binary, a module per area. Tests read `tests/data/` and `examples/`
//! only, and drive the real `dsl` binary where the user would.

mod allocation;
mod alpaca;
mod approvals;
mod architecture;
mod backtest;
mod broker;
mod common;
mod costs;
mod fuzzing;
mod graduation;
mod guardrails;
mod hostile;
mod hot_reload;
mod import;
mod indicators;
mod library;
mod live_feed;
mod mock_broker;
mod paper;
mod partial_exit;
mod properties;
mod protective;
mod readme;
mod reference;
mod reload;
mod reports;
mod restart;
mod rule_tests;
mod safety;
mod scripts;
mod seed_guardrails;
mod sizing;
mod stress;
mod swap;
mod validate;
