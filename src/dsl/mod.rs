//! The rule language: parsing, type checking, compilation and the reference interpreter.
//!
//! Pipeline: rule text → [`parser`] (pest, `grammar/rules.pest`) → [`ast::Expr`] →
//! [`check`] (names, arity, types, params, constant folding) → [`check::TExpr`] →
//! [`program`] (shared per-symbol indicator graph + scalar programs). [`bundle`] does this for
//! whole documents and identifies the result by a content hash. [`interp`] is a deliberately
//! naive interpreter over whole price histories, kept as a test oracle for the compiled form.
//!
//! Nothing in this module does I/O.

pub mod ast;
pub mod bundle;
pub mod bundle_diff;
pub mod catalog;
pub mod check;
pub mod explain;
pub mod interp;
pub mod lint;
pub mod parser;
pub mod program;
pub mod rebalance;
pub mod script;
pub mod semantics;
pub mod types;
