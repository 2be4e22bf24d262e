//! YAML documents read into typed, spanned values.
//!
//! Seven document kinds exist, chosen by the top-level `kind:` key: [`strategy`],
//! [`policy`], [`manifest`] (`kind: bot`), [`phase`], [`rule_test`] (`kind: test`), [`stress`]
//! and [`sweep`]. Reading never stops at the first problem: every
//! schema error of a file (unknown keys with a "did you mean", wrong types, out-of-range values)
//! is collected as a [`crate::diagnostics::Diagnostic`]. Rule expressions are kept as
//! [`expr_source::ExprSource`] values and compiled later by [`crate::dsl`].
//!
//! This layer does no file I/O: callers pass [`crate::diagnostics::SourceFile`]s in.

pub mod alerts;
pub mod allocation;
pub mod document;
pub mod expr_source;
pub mod manifest;
pub mod node;
pub mod order_types;
pub mod phase;
pub mod policy;
pub mod reader;
pub mod rule_test;
pub mod schedule;
pub mod script_ref;
pub mod search_space;
pub mod strategy;
pub mod stress;
pub mod sweep;
pub mod timeframe;
pub mod units;

pub use document::{Document, read_document};
