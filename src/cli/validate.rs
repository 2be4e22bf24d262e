//! `dsl validate PATH...`

use std::path::PathBuf;

use clap::ValueEnum;

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE, Out};
use crate::diagnostics::to_json;
use crate::runtime::loader::validate_paths;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Source snippets with the offending token underlined.
    Human,
    /// One JSON document with every diagnostic.
    Json,
}

/// Arguments of `dsl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories (every `.yaml`/`.yml` below them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let v = match validate_paths(&args.paths) {
        Ok(v) => v,
        Err(d) => {
            out.diags(&[d]);
            return EXIT_USAGE;
        }
    };
    let io_error = v.diags.iter().any(|d| d.is_error() && d.code == crate::diagnostics::codes::IO);
    let failed = v.errors() > 0 || (args.deny_warnings && v.warnings() > 0);
    match args.format {
        Format::Human => {
            out.diags(&v.diags);
            let status = if failed { "invalid" } else { "valid" };
            eprintln!(
                "{status}: checked {} file(s): {} error(s), {} warning(s)",
                v.files.len(),
                v.errors(),
                v.warnings()
            );
        }
        Format::Json => {
            let doc = serde_json::json!({
                "valid": !failed,
                "files": v.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "errors": v.errors(),
                "warnings": v.warnings(),
                "diagnostics": v.diags.iter().map(to_json).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
    }
    if io_error {
        EXIT_USAGE
    } else if failed {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}
