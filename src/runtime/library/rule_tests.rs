//! `dsl test`: finding rule-test files, loading the documents they test, running their cases.
//!
//! A directory is searched recursively (hidden directories and `target/` skipped) for YAML
//! files whose top level says `kind: test`, and for any `*.test.yaml`. A file named on the
//! command line is always taken as a test file. Each file's `strategy:` or `policy:` path is
//! relative to the file. Cases run through [`crate::engine::case`], so they decide exactly as
//! the engine does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::rule_test::{BarsSpec, TargetKind, TestCase, TestDoc};
use crate::config::{Document, read_document};
use crate::diagnostics::{Diagnostic, SourceFile, codes};
use crate::dsl::bundle::{compile_policy, compile_strategy};
use crate::engine::case::{Prepared, Target, prepare, run};
use crate::engine::market::{Bar, BarSeries};

use crate::runtime::data::csv_bars::{CsvOptions, load_csv};
use crate::runtime::data::timeparse::{format_utc, parse_bound};
use crate::runtime::library::loader::{read_document_with_scripts, read_source, resolve};

/// The result of one case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseReport {
    /// Case name.
    pub name: String,
    /// 1-based line of the case in its file.
    pub line: usize,
    /// True when the outcome matched the expectation.
    pub passed: bool,
    /// The expected outcome, in words.
    pub expected: String,
    /// The actual outcome, in words.
    pub got: String,
    /// Why: the rules' values and the value trees of the rules that matter (see
    /// [`crate::engine::case::CaseRun::explanation`]).
    pub explanation: String,
    /// The value trees of every rule.
    pub full_explanation: String,
}

/// The results of one test file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// The test name.
    pub name: String,
    /// `strategy` or `policy`, and the tested file.
    pub target: Option<(TargetKind, PathBuf)>,
    /// Case results (empty when the file has errors).
    pub cases: Vec<CaseReport>,
    /// Problems with the file, its target or its cases (errors mean nothing ran).
    pub diags: Vec<Diagnostic>,
}

impl FileReport {
    /// True when the file had no errors and every case passed.
    pub fn passed(&self) -> bool {
        !self.diags.iter().any(Diagnostic::is_error) && self.cases.iter().all(|c| c.passed)
    }
}

/// Finds test files under `paths` (see the module docs), sorted.
///
/// # Errors
/// An I/O diagnostic when a path does not exist or cannot be listed.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(Diagnostic::error(codes::IO, format!("`{}` does not exist", p.display())));
        }
        if p.is_dir() {
            walk(p, &mut out)
                .map_err(|e| Diagnostic::error(codes::IO, format!("cannot list `{}`: {e}", p.display())))?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk(&path, out)?;
            }
        } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && is_test_file(&path, name) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_test_file(path: &Path, name: &str) -> bool {
    if name.ends_with(".test.yaml") || name.ends_with(".test.yml") {
        return true;
    }
    crate::runtime::files::read_document_text(path).is_ok_and(|t| {
        t.lines().any(|l| {
            let l = l.split('#').next().unwrap_or("").trim_end();
            l.strip_prefix("kind:").is_some_and(|k| k.trim().trim_matches(['"', '\'']) == "test")
        })
    })
}

/// Loads and compiles the document a test file tests.
fn load_target(doc: &TestDoc, diags: &mut Vec<Diagnostic>) -> Option<(Target, PathBuf)> {
    let base = Path::new(&doc.source.name).parent().map(Path::to_path_buf).unwrap_or_default();
    let path = resolve(&base, &doc.target.path.value);
    let want = doc.target.kind.as_str();
    let reference = |msg: String| {
        Diagnostic::error(codes::UNRESOLVED_REFERENCE, msg)
            .at(&doc.source, doc.target.path.span)
            .label("tested document")
            .help("the path is relative to the test file")
    };
    let src = match read_source(&path) {
        Ok(s) => s,
        Err(_) => {
            diags.push(reference(format!("cannot read {want} file `{}`", path.display())));
            return None;
        }
    };
    let mut more = Vec::new();
    let target = match (read_document_with_scripts(&src, &mut more), doc.target.kind) {
        (Some(Document::Strategy(s)), TargetKind::Strategy) => {
            compile_strategy(s, &mut more).map(|c| Target::Strategy(Box::new(c)))
        }
        (Some(Document::Policy(p)), TargetKind::Policy) => {
            compile_policy(p, &mut more).map(|c| Target::Policy(Box::new(c)))
        }
        (Some(other), _) => {
            diags.push(reference(format!("`{}` is a {}, not a {want}", path.display(), other.kind())));
            return None;
        }
        (None, _) => None,
    };
    // The tested document's own warnings belong to `dsl validate`; its errors stop the tests.
    let errors: Vec<Diagnostic> = more.into_iter().filter(Diagnostic::is_error).collect();
    if !errors.is_empty() {
        diags.extend(errors);
        return None;
    }
    Some((target?, path))
}

/// CSV files already read, by path and symbol.
type CsvCache = HashMap<(PathBuf, Option<String>), Result<Vec<BarSeries>, Diagnostic>>;

/// The bars of a case, oldest first. Written bars are `spacing` seconds apart (the tested
/// strategy's timeframe, a day for a policy) from 1970-01-01 00:00 UTC.
fn case_bars(
    doc: &TestDoc,
    case: &TestCase,
    spacing: i64,
    cache: &mut CsvCache,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<Bar>> {
    let synthetic = |i: usize| i as i64 * spacing;
    match &case.bars {
        None => Some(Vec::new()),
        Some(BarsSpec::Closes(closes, _)) => Some(
            closes
                .iter()
                .enumerate()
                .map(|(i, &c)| Bar { ts: synthetic(i), open: c, high: c, low: c, close: c, volume: f64::NAN })
                .collect(),
        ),
        Some(BarsSpec::Bars(rows, span)) => {
            let bad = rows
                .iter()
                .position(|r| !(r.low <= r.open && r.low <= r.close && r.high >= r.open && r.high >= r.close));
            if let Some(i) = bad {
                diags.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("bar {} has its open or close outside low..high", i + 1),
                    )
                    .at(&doc.source, *span)
                    .help("check the order of the prices"),
                );
                return None;
            }
            Some(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| Bar {
                        ts: synthetic(i),
                        open: r.open,
                        high: r.high,
                        low: r.low,
                        close: r.close,
                        volume: r.volume,
                    })
                    .collect(),
            )
        }
        Some(BarsSpec::Csv { path, at, symbol }) => {
            let at_ts = match parse_bound(&at.value) {
                Ok(t) => t,
                Err(e) => {
                    diags.push(
                        Diagnostic::error(codes::INVALID_VALUE, format!("invalid time `{}`: {e}", at.value))
                            .at(&doc.source, at.span)
                            .help("write a date such as `2012-12-03` or an RFC 3339 time"),
                    );
                    return None;
                }
            };
            let base = Path::new(&doc.source.name).parent().map(Path::to_path_buf).unwrap_or_default();
            let file = resolve(&base, &path.value);
            let sym = symbol.as_ref().map(|s| s.value.clone());
            let loaded = cache.entry((file.clone(), sym.clone())).or_insert_with(|| {
                load_csv(&file, &CsvOptions { symbol: sym.clone(), ..Default::default() }).map(|l| l.series)
            });
            let series = match loaded {
                Ok(s) if s.len() == 1 => &s[0],
                Ok(s) => {
                    let names: Vec<&str> = s.iter().map(|x| x.symbol.as_str()).collect();
                    diags.push(
                        Diagnostic::error(codes::MISSING_DATA, format!("`{}` holds several symbols", file.display()))
                            .at(&doc.source, path.span)
                            .help(format!("pick one with `symbol:` ({})", names.join(", "))),
                    );
                    return None;
                }
                Err(d) => {
                    // A missing file is a bad reference in the test file, not an I/O failure.
                    let code = if d.code == codes::IO { codes::UNRESOLVED_REFERENCE } else { d.code };
                    diags.push(
                        Diagnostic::error(code, d.message.clone())
                            .at(&doc.source, path.span)
                            .help("the path is relative to the test file"),
                    );
                    return None;
                }
            };
            let Some(last) = series.ts.iter().rposition(|&t| t <= at_ts) else {
                diags.push(
                    Diagnostic::error(
                        codes::MISSING_DATA,
                        format!("`{}` has no bar at or before {}", file.display(), format_utc(at_ts)),
                    )
                    .at(&doc.source, at.span),
                );
                return None;
            };
            Some((0..=last).map(|i| series.bar(i)).collect())
        }
    }
}

/// Resolves every case of a test file. Problems go to `diags`.
fn prepare_all(doc: &TestDoc, diags: &mut Vec<Diagnostic>) -> (Option<(TargetKind, PathBuf)>, Vec<Option<Prepared>>) {
    let Some((target, path)) = load_target(doc, diags) else {
        return (None, Vec::new());
    };
    let mut cache = CsvCache::new();
    let spacing = match &target {
        Target::Strategy(s) => s.doc.timeframe.value.seconds(),
        Target::Policy(_) => 86_400,
    };
    let prepared = doc
        .cases
        .iter()
        .map(|case| {
            let bars = case_bars(doc, case, spacing, &mut cache, diags)?;
            prepare(&target, case, bars, &doc.source, diags)
        })
        .collect();
    (Some((doc.target.kind, path)), prepared)
}

/// Checks a test file without running it (for `dsl validate`): the tested document loads and
/// compiles, and every case resolves against it.
pub fn check(doc: &TestDoc, diags: &mut Vec<Diagnostic>) {
    prepare_all(doc, diags);
}

fn line_of(file: &Arc<SourceFile>, offset: usize) -> usize {
    file.text[..offset.min(file.text.len())].matches('\n').count() + 1
}

/// Reads and runs one test file.
pub fn run_file(path: &Path) -> FileReport {
    let mut report = FileReport {
        path: path.to_path_buf(),
        name: path.display().to_string(),
        target: None,
        cases: Vec::new(),
        diags: Vec::new(),
    };
    let src = match read_source(path) {
        Ok(s) => s,
        Err(d) => {
            report.diags.push(d);
            return report;
        }
    };
    let doc = match read_document(&src, &mut report.diags) {
        // Cases with schema errors are left out; the rest are still resolved, so that one run
        // reports every problem of the file.
        Some(Document::Test(t)) => t,
        None => return report,
        Some(other) => {
            report.diags.push(
                Diagnostic::error(
                    codes::UNKNOWN_KIND,
                    format!("`{}` is a {}, not a test file", path.display(), other.kind()),
                )
                .help("test files say `kind: test`"),
            );
            return report;
        }
    };
    report.name = doc.name.value.clone();
    let (target, prepared) = prepare_all(&doc, &mut report.diags);
    report.target = target;
    if report.diags.iter().any(Diagnostic::is_error) {
        return report;
    }
    for (case, prepared) in doc.cases.iter().zip(prepared) {
        let Some(prepared) = prepared else { continue };
        let result = run(&prepared);
        report.cases.push(CaseReport {
            name: case.name.value.clone(),
            line: line_of(&doc.source, case.name.span.start),
            passed: result.passes(&case.expect.value),
            expected: case.expect.value.describe(),
            got: result.describe(&case.expect.value),
            explanation: result.explanation(&case.expect.value, false),
            full_explanation: result.explanation(&case.expect.value, true),
        });
    }
    report
}
