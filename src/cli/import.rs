//! `dsl import FILE... --db PATH`

use std::path::PathBuf;

use clap::ValueEnum;

use super::{EXIT_OK, Out, parse_tz};
use crate::config::timeframe::Timeframe;
use crate::runtime::data::bar_store::{self, ImportItem};
use crate::runtime::data::csv_bars::{CsvOptions, OnMissing, load_csv};
use crate::runtime::data::timeparse::format_utc;

/// What to do with rows missing a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Missing {
    /// Skip them and report their lines.
    Skip,
    /// Fail the import.
    Error,
}

/// Arguments of `dsl import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV files of OHLCV bars.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The SQLite bar store to write (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Symbol of the bars (default: a symbol column, else the file name).
    #[arg(long, value_parser = super::parse_name)]
    pub symbol: Option<String>,
    /// Timeframe label such as `1d` or `5m` (default: detected from the spacing of the bars).
    #[arg(long)]
    pub timeframe: Option<Timeframe>,
    /// strftime pattern of the time column, e.g. `%d.%m.%Y %H:%M:%S%.f` (default: detected).
    #[arg(long)]
    pub time_format: Option<String>,
    /// IANA zone of timestamps written without an offset (default: UTC).
    #[arg(long, value_parser = parse_tz)]
    pub timezone: Option<chrono_tz::Tz>,
    /// Field delimiter (default: detected).
    #[arg(long)]
    pub delimiter: Option<char>,
    /// The files have no header line.
    #[arg(long)]
    pub no_header: bool,
    /// Rows with a missing open, high, low or close.
    #[arg(long, value_enum, default_value_t = Missing::Skip)]
    pub on_missing: Missing,
    /// Output format: lines per file (`human`) or one JSON document (`json`: `db`, `written`,
    /// `replaced`, and per file its `path`, `layout`, `series` (symbol, timeframe, bars,
    /// first, last), skipped and bad rows with their lines, `missing_volume`, `reversed`,
    /// `sorted`, `notes`).
    #[arg(long, value_enum, default_value_t = super::validate::Format::Human)]
    pub format: super::validate::Format,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let opts = CsvOptions {
        symbol: args.symbol.clone(),
        time_format: args.time_format.clone(),
        timezone: args.timezone,
        delimiter: args.delimiter.map(|c| c as u8),
        header: args.no_header.then_some(false),
        on_missing: if args.on_missing == Missing::Error { OnMissing::Error } else { OnMissing::Skip },
        sha256: true,
    };
    // Read and check every file before writing anything.
    let mut loaded = Vec::new();
    let bar = super::progress(args.files.len() as u64, "import {bar:30} {pos}/{len} files  {msg}", false);
    for f in &args.files {
        bar.set_message(f.display().to_string());
        let read = load_csv(f, &opts);
        bar.inc(1);
        match read {
            Ok(l) => {
                let sha = l.report.sha256.clone().unwrap_or_default();
                loaded.push((f.clone(), sha, l));
            }
            Err(d) => {
                bar.finish_and_clear();
                eprintln!("nothing imported");
                return out.fail(&d);
            }
        }
    }
    let mut items = Vec::new();
    for (path, sha, l) in &loaded {
        for s in &l.series {
            let tf = args.timeframe.or(s.timeframe).unwrap_or(Timeframe::DAILY);
            items.push(ImportItem {
                series: s,
                timeframe: tf,
                source: path.display().to_string(),
                sha256: sha.clone(),
            });
        }
    }
    bar.set_message(format!("writing {}", args.db.display()));
    let counts = bar_store::import(&args.db, &items);
    bar.finish_and_clear();
    let counts = match counts {
        Ok(c) => c,
        Err(d) => {
            eprintln!("nothing imported");
            return out.fail(&d);
        }
    };
    if args.format == super::validate::Format::Json {
        super::print_json(&json_report(&args, &loaded, &counts));
        return EXIT_OK;
    }
    for (path, _, l) in &loaded {
        for s in &l.series {
            let tf = args.timeframe.or(s.timeframe).unwrap_or(Timeframe::DAILY);
            println!(
                "{}: {} {} bars of {} from {} to {}",
                path.display(),
                s.len(),
                tf,
                s.symbol,
                s.ts.first().map(|t| format_utc(*t)).unwrap_or_default(),
                s.ts.last().map(|t| format_utc(*t)).unwrap_or_default(),
            );
        }
        let r = &l.report;
        println!("  layout: {}", r.layout);
        if r.skipped > 0 {
            let lines: Vec<String> = r.skipped_lines.iter().map(|l| l.to_string()).collect();
            println!("  skipped {} row(s) with missing prices (lines {})", r.skipped, lines.join(", "));
        }
        if r.bad_rows > 0 {
            println!("  skipped {} bad row(s):", r.bad_rows);
            for l in r.bad_row_lines() {
                println!("    {l}");
            }
        }
        if r.missing_volume > 0 {
            println!("  {} missing volume cell(s) read as 0", r.missing_volume);
        }
        if r.reversed {
            println!("  newest-first file: reversed");
        }
        if r.sorted {
            println!("  rows out of order: sorted");
        }
        for n in &r.notes {
            println!("  {n}");
        }
    }
    println!(
        "imported {} bars into {} ({} replaced existing bars)",
        counts.written,
        args.db.display(),
        counts.replaced
    );
    EXIT_OK
}

/// The `--format json` document of an import (see `Args::format`).
fn json_report(
    args: &Args,
    loaded: &[(PathBuf, String, crate::runtime::data::csv_bars::CsvLoad)],
    counts: &bar_store::ImportCounts,
) -> serde_json::Value {
    let files: Vec<serde_json::Value> = loaded
        .iter()
        .map(|(path, _, l)| {
            let r = &l.report;
            let series: Vec<serde_json::Value> = l
                .series
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "symbol": s.symbol,
                        "timeframe": args.timeframe.or(s.timeframe).unwrap_or(Timeframe::DAILY).to_string(),
                        "bars": s.len(),
                        "first": s.ts.first().map(|t| format_utc(*t)),
                        "last": s.ts.last().map(|t| format_utc(*t)),
                    })
                })
                .collect();
            serde_json::json!({
                "path": path.display().to_string(),
                "layout": r.layout,
                "series": series,
                "skipped": r.skipped,
                "skipped_lines": r.skipped_lines,
                "bad_rows": r.bad_rows,
                "bad_row_lines": r.bad_row_lines(),
                "missing_volume": r.missing_volume,
                "reversed": r.reversed,
                "sorted": r.sorted,
                "notes": r.notes,
            })
        })
        .collect();
    serde_json::json!({
        "db": args.db.display().to_string(),
        "written": counts.written,
        "replaced": counts.replaced,
        "files": files,
    })
}
