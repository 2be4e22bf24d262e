//! References from documents to rhai scripts (`script: checks/no_fridays.rhai`).
//!
//! A document names a script by a path relative to its own file. Reading the document keeps
//! the path; the runtime loader reads the file into [`ScriptRef::source`], and the compiler
//! ([`crate::dsl::script`]) compiles it. See that module for what scripts may do.

use std::sync::Arc;

use super::node::Node;
use super::reader::Reader;
use crate::diagnostics::{SourceFile, Spanned, codes};

/// Largest `window` of a custom indicator: its arrays must stay well inside the sandbox's
/// array size limit.
pub const MAX_WINDOW: u32 = 5_000;

/// A script named by a document.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptRef {
    /// The path as written, relative to the document's file.
    pub path: Spanned<String>,
    /// The script's text, once the loader has read it.
    pub source: Option<Arc<SourceFile>>,
}

/// Reads a script path: a non-empty string ending in `.rhai`.
pub fn read_script_path(r: &mut Reader<'_>, node: &Node, what: &str) -> Option<ScriptRef> {
    let path = r.name(node, what)?;
    if !path.value.ends_with(".rhai") {
        return r.fail(
            codes::INVALID_VALUE,
            path.span,
            format!("`{what}` must name a `.rhai` file, found `{}`", path.value),
            Some("write the path of a rhai script, relative to this file".into()),
        );
    }
    Some(ScriptRef { path, source: None })
}
