//! `dsl validate PATH...`, and `dsl validate --watch PATH...` (hot reload: see
//! [`crate::runtime::library::reload`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE, Out};
use crate::diagnostics::{Diagnostic, codes, to_json};
use crate::runtime::library::loader::validate_paths;
use crate::runtime::library::reload::{LibrarySource, Outcome, ReloadRecord, Reloader};

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
    /// Files or directories (every `.yaml`/`.yml` below them, but other tools' manifests: a
    /// top-level `apiVersion:`, as in Kubernetes files).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Keep running: watch the directories and revalidate on every change, swapping in each
    /// valid bundle and keeping the last good one otherwise (stop with Ctrl-C).
    #[arg(long)]
    pub watch: bool,
    /// With --watch: how long to wait for changes to settle, in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS", requires = "watch")]
    pub debounce: u64,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    if args.watch {
        return watch(args, out);
    }
    let v = match validate_paths(&args.paths) {
        Ok(v) => v,
        Err(d) => {
            out.diags(&[d]);
            return EXIT_USAGE;
        }
    };
    if v.files.is_empty() {
        let names: Vec<String> = args.paths.iter().map(|p| format!("`{}`", p.display())).collect();
        eprintln!("error: no documents (`*.yaml`, `*.yml`) found in {}", names.join(", "));
        return super::EXIT_NOTHING;
    }
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

/// `--watch`: validate, then revalidate on every change until interrupted.
fn watch(args: Args, out: Out) -> u8 {
    if let Some(missing) = args.paths.iter().find(|p| !p.exists()) {
        out.diags(&[Diagnostic::error(codes::IO, format!("`{}` does not exist", missing.display()))]);
        return EXIT_USAGE;
    }
    let (reloader, first) = Reloader::new(LibrarySource(args.paths.clone()));
    let reloader = Arc::new(reloader);
    let format = args.format;
    let dirs: Vec<String> = reloader.watch_dirs().iter().map(|w| w.path.display().to_string()).collect();
    // Watch first, then report: once the first record is out, every edit is seen.
    let handle =
        match crate::runtime::library::reload::watch(reloader, Duration::from_millis(args.debounce), move |r| {
            print_record(r, format, out, false)
        }) {
            Ok(h) => h,
            Err(d) => {
                out.diags(&[d]);
                return EXIT_USAGE;
            }
        };
    print_record(&first, format, out, true);
    if format == Format::Human {
        eprintln!("watching {} (Ctrl-C to stop)", dirs.join(", "));
    }
    loop {
        std::thread::park();
        // Spurious wake-ups: keep watching.
        let _ = &handle;
    }
}

fn print_record(r: &ReloadRecord, format: Format, out: Out, first: bool) {
    match format {
        Format::Human => {
            out.diags(&r.diagnostics);
            let short = |rev: &str| if rev.is_empty() { "(none)".to_string() } else { rev.to_string() };
            let head = match (first, r.outcome) {
                (true, Outcome::Rejected) => {
                    format!("invalid: {} error(s), {} warning(s); waiting for fixes", r.errors, r.warnings)
                }
                (true, _) => {
                    format!("valid: bundle {} ({} warning(s))", r.new_revision.as_deref().unwrap_or(""), r.warnings)
                }
                (false, Outcome::Accepted) => format!(
                    "reload accepted: {} -> {} in {:.1} ms ({} warning(s))",
                    short(&r.old_revision),
                    r.new_revision.as_deref().unwrap_or(""),
                    r.build_ms,
                    r.warnings
                ),
                (false, Outcome::Rejected) => {
                    format!("reload rejected: {} error(s); keeping {}", r.errors, short(&r.old_revision))
                }
                (false, Outcome::Unchanged) => format!("reload unchanged: still {}", short(&r.old_revision)),
            };
            // Progress goes to stdout, one line per reload plus its changes, so tools can follow it.
            println!("[{}] {head}", r.at);
            for l in r.changes.lines() {
                println!("    {l}");
            }
        }
        Format::Json => {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["diagnostics"] = serde_json::Value::Array(r.diagnostics.iter().map(to_json).collect());
            println!("{}", serde_json::to_string(&v).unwrap_or_default());
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
