//! `dsl eval EXPR... --data FILE`: every expression's value on every bar, as CSV.
//!
//! Its `run` (about 170 lines) reads the arguments, the data and the expressions, then prints; a
//! sequence of steps that each end the command with their own diagnostic.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BarArgs, EXIT_INVALID, EXIT_OK, EXIT_USAGE, Out};
use crate::config::Document;
use crate::config::expr_source::ExprSource;
use crate::config::strategy::{Param, ParamValue};
use crate::diagnostics::{Diagnostic, Span, Spanned, codes};
use crate::dsl::bundle::{CompiledStrategy, compile_strategy};
use crate::dsl::catalog::Context;
use crate::dsl::check::Checker;
use crate::dsl::explain::{Values, explain, render};
use crate::dsl::parser;
use crate::dsl::program::GraphSpec;
use crate::dsl::types::ValueKind;
use crate::engine::graph::Graph;
use crate::engine::resample::BaseBars;
use crate::engine::session::Market;
use crate::runtime::data::csv_bars::{CsvOptions, load_csv};
use crate::runtime::data::timeparse::format_utc;
use crate::runtime::library::loader::{read_document_with_scripts, read_source};

/// Arguments of `dsl eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Expressions, e.g. `sma(close, 10)` `rsi(close, 14) < 30` (or use --rule).
    #[arg(required_unless_present = "rule")]
    pub exprs: Vec<String>,
    /// Evaluate the strategy's `entry` or `exit` rule (needs --strategy).
    #[arg(long, value_parser = ["entry", "exit"], requires = "strategy")]
    pub rule: Option<String>,
    /// Only this bar (`2012-12-03` or RFC 3339; the last bar at or before it).
    #[arg(long, value_parser = crate::cli::parse_time)]
    pub at: Option<i64>,
    /// Print the tree of sub-expression values on the --at bar instead of CSV.
    #[arg(long, requires = "at")]
    pub explain: bool,
    /// CSV file of bars.
    #[arg(long)]
    pub data: PathBuf,
    /// Symbol to read from a file with several.
    #[arg(long, value_parser = super::parse_name)]
    pub symbol: Option<String>,
    /// Take params from this strategy file, so its param names can be used.
    #[arg(long)]
    pub strategy: Option<PathBuf>,
    /// A param `NAME=VALUE` (repeatable; overrides the strategy's).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Period and CSV time options.
    #[command(flatten)]
    pub bars: BarArgs,
    /// Write the CSV here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// The strategy of `--strategy`, compiled (its params and custom indicators become names).
fn load_strategy(path: &Path, out: Out) -> Result<CompiledStrategy, u8> {
    let src = read_source(path).map_err(|d| out.fail(&d))?;
    let mut diags = Vec::new();
    match read_document_with_scripts(&src, &mut diags) {
        Some(Document::Strategy(s)) if !diags.iter().any(Diagnostic::is_error) => {
            compile_strategy(s, &mut diags).filter(|_| !diags.iter().any(Diagnostic::is_error)).ok_or_else(|| {
                out.diags(&diags);
                EXIT_INVALID
            })
        }
        Some(Document::Strategy(_)) | None => {
            out.diags(&diags);
            Err(EXIT_INVALID)
        }
        Some(other) => {
            eprintln!("error: `{}` is a {}, not a strategy", path.display(), other.kind());
            Err(EXIT_USAGE)
        }
    }
}

/// `--param NAME=VALUE` flags on top of the strategy's params.
fn params(args: &Args, mut ps: Vec<Param>) -> Result<Vec<Param>, u8> {
    for kv in &args.params {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("error: --param `{kv}` must look like NAME=VALUE");
            return Err(EXIT_USAGE);
        };
        let value = match crate::config::units::parse_number(v) {
            Some((x, unit)) => ParamValue::Number(x, unit),
            None if v == "true" || v == "false" => ParamValue::Bool(v == "true"),
            None => ParamValue::Str(v.to_string()),
        };
        ps.retain(|p| p.name.value != k);
        ps.push(Param {
            name: Spanned::new(k.to_string(), Span::default()),
            value: Spanned::new(value, Span::default()),
            space: None,
        });
    }
    Ok(ps)
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let strategy = match args.strategy.as_deref().map(|p| load_strategy(p, out)).transpose() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (ps, indicators) = match &strategy {
        Some(s) => (s.doc.params.clone(), s.indicators.clone()),
        None => (Vec::new(), Vec::new()),
    };
    let ps = match params(&args, ps) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // The expressions to evaluate: from the command line, or a strategy's rule.
    let mut sources: Vec<ExprSource> =
        args.exprs.iter().enumerate().map(|(i, t)| ExprSource::standalone(&format!("<expr {}>", i + 1), t)).collect();
    if let (Some(rule), Some(s)) = (&args.rule, &strategy) {
        let src = if rule == "entry" { Some(s.doc.entry.clone()) } else { s.doc.exit.clone() };
        match src {
            Some(src) => sources.insert(0, src),
            None => {
                eprintln!("error: `{}` has no {rule} rule", s.doc.source.name);
                return EXIT_USAGE;
            }
        }
    }
    // Compile every expression into one graph (shared sub-expressions are computed once).
    let mut graph = GraphSpec::new();
    let mut outputs = Vec::new();
    let mut typed = Vec::new();
    let mut diags: Vec<Diagnostic> = Vec::new();
    for src in &sources {
        let ast = match parser::parse(src) {
            Ok(a) => a,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let mut c = Checker::new(src, Context::Eval, &ps).with_indicators(&indicators);
        if let Some(s) = &strategy {
            c = c.with_timeframe(s.doc.timeframe.value, s.doc.aggregation);
        }
        if let Some(t) = c.check(&ast).filter(|_| !c.diags.iter().any(Diagnostic::is_error)) {
            outputs.push((graph.lower(&t), t.ty.kind));
            typed.push(t);
        }
        diags.extend(c.diags);
    }
    if !diags.is_empty() {
        out.diags(&diags);
        if diags.iter().any(Diagnostic::is_error) {
            return EXIT_INVALID;
        }
    }
    let opts = CsvOptions {
        symbol: args.symbol.clone(),
        timezone: args.bars.timezone,
        time_format: args.bars.time_format.clone(),
        ..Default::default()
    };
    let load = match load_csv(&args.data, &opts) {
        Ok(l) => l,
        Err(d) => return out.fail(&d),
    };
    if load.series.len() > 1 {
        let names: Vec<&str> = load.series.iter().map(|s| s.symbol.as_str()).collect();
        return out.fail(&Diagnostic::error(
            codes::MISSING_DATA,
            format!("`{}` holds several symbols ({}); pick one with --symbol", args.data.display(), names.join(", ")),
        ));
    }
    let series = &load.series[0];
    // Higher timeframes (`x@1d`) are aggregated from these bars: the strategy's timeframe, else
    // the data's own spacing, on the symbol's market.
    let base = BaseBars {
        market: Market::for_symbol(&series.symbol),
        bar_secs: strategy
            .as_ref()
            .map(|s| s.doc.timeframe.value.seconds())
            .or_else(|| series.median_spacing())
            .unwrap_or(86_400),
    };
    if let Some(at) = args.bars.to.map_or(args.at, |to| args.at.map(|a| a.min(to))) {
        // The bar to show: the last one at or before `--at`.
        let Some(i) = series.ts.iter().rposition(|&t| t <= at) else {
            return out.fail(&Diagnostic::error(
                codes::MISSING_DATA,
                format!("`{}` has no bar at or before {}", args.data.display(), format_utc(at)),
            ));
        };
        if series.ts[i] != at {
            eprintln!(
                "note: no bar at {}; showing the last bar before it, {}",
                format_utc(at),
                format_utc(series.ts[i])
            );
        }
        if args.explain {
            let mut g = Graph::new(&graph, base);
            let mut before = g.values().to_vec();
            for k in 0..=i {
                if k == i {
                    before = g.values().to_vec();
                }
                g.update(&series.bar(k));
            }
            let now = g.values().to_vec();
            println!("{} {}", series.symbol, format_utc(series.ts[i]));
            let values = Values { now: &now, before: &before, fields: &[], strings: &|_| None, given: &[] };
            for (t, src) in typed.iter().zip(&sources) {
                let x = explain(t, src, &mut graph, &values);
                print!("{}", render(&x));
            }
            return EXIT_OK;
        }
    }
    // String values are computed as ids; printed as the strings they stand for.
    let mut strings: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    for s in
        sources.iter().flat_map(|s| string_literals(&s.text)).chain(ps.iter().filter_map(|p| match &p.value.value {
            ParamValue::Str(s) => Some(s.clone()),
            _ => None,
        }))
    {
        strings.insert(crate::dsl::semantics::string_id(&s).to_bits(), s);
    }
    let mut g = Graph::new(&graph, base);
    let sink: Box<dyn Write> = match &args.output {
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                return out.fail(&Diagnostic::error(codes::IO, format!("cannot write `{}`: {e}", p.display())));
            }
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut w = csv::Writer::from_writer(sink);
    let mut header = vec!["time".to_string()];
    header.extend(sources.iter().map(|s| s.text.split_whitespace().collect::<Vec<_>>().join(" ")));
    let mut row: Vec<String> = Vec::with_capacity(header.len());
    let result = (|| -> Result<(), csv::Error> {
        w.write_record(&header)?;
        for i in 0..series.len() {
            let bar = series.bar(i);
            g.update(&bar);
            let outside = match args.at {
                Some(at) => series.ts.iter().rposition(|&t| t <= at) != Some(i),
                None => args.bars.from.is_some_and(|f| bar.ts < f) || args.bars.to.is_some_and(|t| bar.ts > t),
            };
            if outside {
                continue;
            }
            row.clear();
            row.push(format_utc(bar.ts));
            for (id, kind) in &outputs {
                let v = g.value(*id);
                row.push(if v.is_nan() {
                    String::new()
                } else {
                    match kind {
                        ValueKind::Bool => (v != 0.0).to_string(),
                        ValueKind::Str => strings.get(&v.to_bits()).cloned().unwrap_or_default(),
                        _ => format!("{v}"),
                    }
                });
            }
            w.write_record(&row)?;
        }
        w.flush()?;
        Ok(())
    })();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) if matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe) => {
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            EXIT_OK
        }
        Err(e) => out.fail(&Diagnostic::error(codes::IO, format!("cannot write CSV: {e}"))),
    }
}

/// The string literals of an expression's text (`"..."` and `'...'`; the rule language has no
/// escapes).
fn string_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['"', '\'']) {
        let q = rest.as_bytes()[i] as char;
        let after = &rest[i + 1..];
        let Some(j) = after.find(q) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + 1..];
    }
    out
}
