//! `dsl test [PATH...]`: run rule-test files and report pass/fail per case.

use std::path::PathBuf;

use super::validate::Format;
use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE, Out};
use crate::diagnostics::{codes, to_json};
use crate::runtime::library::rule_tests::{FileReport, discover, run_file};

/// Arguments of `dsl test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Test files, or directories to search for them (default: the current directory).
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Show the rules' sub-expression values for passing cases too.
    #[arg(long)]
    pub explain_all: bool,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };
    let files = match discover(&paths) {
        Ok(f) => f,
        Err(d) => {
            out.diags(&[d]);
            return EXIT_USAGE;
        }
    };
    if files.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
        eprintln!("error: no rule tests (`*.test.yaml` or `kind: test` documents) found in {}", names.join(", "));
        return super::EXIT_NOTHING;
    }
    let reports: Vec<FileReport> = files.iter().map(|f| run_file(f)).collect();
    let cases: usize = reports.iter().map(|r| r.cases.len()).sum();
    let failed_cases: usize = reports.iter().map(|r| r.cases.iter().filter(|c| !c.passed).count()).sum();
    let broken_files = reports.iter().filter(|r| r.diags.iter().any(|d| d.is_error())).count();
    let io_error = reports.iter().any(|r| r.diags.iter().any(|d| d.is_error() && d.code == codes::IO));
    match args.format {
        Format::Human => {
            for r in &reports {
                let target =
                    r.target.as_ref().map(|(k, p)| format!(" ({} {})", k.as_str(), p.display())).unwrap_or_default();
                println!("{}{target}", r.path.display());
                out.diags(&r.diags);
                for c in &r.cases {
                    let mark = if c.passed { "ok  " } else { "FAIL" };
                    println!("  {mark} {} (line {})", c.name, c.line);
                    if !c.passed {
                        println!("       expected: {}", c.expected);
                        println!("       got:      {}", c.got);
                    }
                    if !c.passed || args.explain_all {
                        let text = if args.explain_all { &c.full_explanation } else { &c.explanation };
                        for l in text.lines() {
                            println!("         {l}");
                        }
                    }
                }
            }
            let status = if failed_cases > 0 || broken_files > 0 { "FAILED" } else { "ok" };
            println!(
                "{status}: {} file(s), {cases} case(s): {} passed, {failed_cases} failed{}",
                reports.len(),
                cases - failed_cases,
                if broken_files > 0 { format!("; {broken_files} file(s) with errors") } else { String::new() }
            );
        }
        Format::Json => {
            let doc = serde_json::json!({
                "passed": failed_cases == 0 && broken_files == 0,
                "cases": cases,
                "failed": failed_cases,
                "files": reports.iter().map(|r| serde_json::json!({
                    "file": r.path.display().to_string(),
                    "name": r.name,
                    "target": r.target.as_ref().map(|(_, p)| p.display().to_string()),
                    "cases": r.cases,
                    "diagnostics": r.diags.iter().map(to_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
    }
    if io_error {
        EXIT_USAGE
    } else if failed_cases > 0 || broken_files > 0 {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}
