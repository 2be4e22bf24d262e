//! tradedsl: a trading system whose behaviour is data and whose machinery is code.
//!
//! Strategies, risk guardrails and (later) graduation gates are YAML documents holding small
//! rule expressions. They are parsed by the pest grammar in `grammar/rules.pest`, type-checked,
//! compiled once into a per-symbol indicator graph plus small scalar programs, and evaluated by
//! the fixed runtime in this crate.
//!
//! Layers, with dependencies pointing one way only:
//!
//! ```text
//! cli -> runtime -> engine -> dsl -> config -> diagnostics
//!                      \-> indicators
//! ```
//!
//! - [`diagnostics`]: source files, spans and user-facing errors (miette).
//! - [`config`]: YAML documents (strategy, policy, bot manifest) read into typed, spanned values.
//! - [`dsl`]: the rule language: parser, type checker, compiler, reference interpreter, bundle.
//! - [`indicators`]: streaming TA-Lib-compatible indicators (pure maths, no I/O).
//! - [`engine`]: the event pipeline (graph evaluation, strategies, risk, fills, accounting,
//!   metrics). No I/O: it talks to the outside through the [`engine::events::EventSink`] trait.
//! - [`runtime`]: all I/O: CSV and SQLite bar stores, the SQLite journal, reports, file loading.
//! - [`cli`]: the `dsl` command line.
//!
//! Units: fractions internally (0.05 means 5%); the rule language accepts `5%` and `30bps`.
//! Prices and cash are in the account currency. Timestamps are UTC seconds since the Unix epoch.

pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod dsl;
pub mod engine;
pub mod fuzz;
pub mod indicators;
pub mod runtime;
