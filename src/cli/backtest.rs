//! `dsl backtest BOT.yaml [VARIANT.yaml ...]`
//!
//! With one manifest: the summary, and the JSON and HTML reports on request. With several
//! (variants of one bot, such as seed 003's regime on/off A/B): each is run and journaled as its
//! own run, and the metrics are printed side by side (the JSON report then holds every
//! variant's metrics).

use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;

use super::{BarArgs, EXIT_OK, Out, exit_code_for, parse_cash, parse_cost_rate, write_file};
use crate::config::manifest::FillTiming;
use crate::engine::backtest;
use crate::engine::costs::CostModel;
use crate::engine::events::{EventSink, NullSink};
use crate::engine::pipeline::EngineSettings;
use crate::runtime::journal::report::{self, ReportContext};
use crate::runtime::journal::{Journal, RunInfo};
use crate::runtime::library::loader::load_bundle;
use crate::runtime::library::source::{DataArg, DataRequest, load_for_bundle};

/// Fill timing flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fill {
    /// At the next bar's open.
    NextOpen,
    /// At the signal bar's close.
    Close,
}

/// Arguments of `dsl backtest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A bot manifest (`kind: bot`) or a single strategy file; give several to run variants
    /// side by side and compare them.
    #[arg(required = true, num_args = 1.., value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Bars to use: `SYMBOL=FILE`, or `FILE` when the bundle trades one symbol (repeatable).
    #[arg(long, value_name = "[SYMBOL=]FILE")]
    pub data: Vec<DataArg>,
    /// A SQLite bar store made by `dsl import`.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Period and CSV time options.
    #[command(flatten)]
    pub bars: BarArgs,
    /// When market orders fill (overrides the manifest).
    #[arg(long, value_enum)]
    pub fill: Option<Fill>,
    /// Starting cash (overrides the manifest; default 100000 for a lone strategy).
    #[arg(long, value_parser = parse_cash)]
    pub cash: Option<f64>,
    /// Commission as a fraction of notional: `0.001`, `0.1%` or `10bps` (overrides the manifest).
    #[arg(long, value_parser = parse_cost_rate)]
    pub commission: Option<f64>,
    /// Slippage as a fraction of price: `0.0005` or `5bps` (overrides the manifest).
    #[arg(long, value_parser = parse_cost_rate)]
    pub slippage: Option<f64>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the HTML report (equity and drawdown charts) here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Journal database (default: the manifest's `database`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Do not write a journal.
    #[arg(long, conflicts_with = "journal")]
    pub no_journal: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print how long each phase took (to standard error).
    #[arg(long)]
    pub timings: bool,
}

/// Wall-clock phase timer for `--timings`.
struct Timer {
    on: bool,
    start: std::time::Instant,
    last: std::time::Instant,
}

impl Timer {
    fn new(on: bool) -> Self {
        let now = std::time::Instant::now();
        Timer { on, start: now, last: now }
    }

    fn lap(&mut self, what: &str) {
        if self.on {
            let now = std::time::Instant::now();
            eprintln!("timing: {what:<14} {:>8.1} ms", (now - self.last).as_secs_f64() * 1e3);
            self.last = now;
        }
    }

    fn total(&self) {
        if self.on {
            eprintln!("timing: {:<14} {:>8.1} ms", "total", self.start.elapsed().as_secs_f64() * 1e3);
        }
    }
}

/// One backtest's report context and output.
struct Ran {
    ctx: ReportContext,
    result: backtest::BacktestOutput,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    if args.paths.len() > 1 {
        return compare(&args, out);
    }
    let mut timer = Timer::new(args.timings);
    let Ran { ctx, result } = match run_one(&args.paths[0], &args, out, &mut timer) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Some(p) = &args.json {
        let doc = report::to_json(&ctx, &result);
        if let Err(d) = write_file(p, &serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            return out.fail(&d);
        }
    }
    if let Some(p) = &args.html {
        match report::to_html(&ctx, &result) {
            Ok(h) => {
                if let Err(d) = write_file(p, &h) {
                    return out.fail(&d);
                }
            }
            Err(e) => {
                eprintln!("error: cannot draw the HTML report: {e}");
                return super::EXIT_USAGE;
            }
        }
    }
    timer.lap("reports");
    timer.total();
    if !args.quiet {
        print!("{}", report::summary(&ctx, &result));
        if let Some(p) = &args.json {
            println!("  json report   {}", p.display());
        }
        if let Some(p) = &args.html {
            println!("  html report   {}", p.display());
        }
    }
    EXIT_OK
}

/// Runs every variant and prints their metrics side by side.
fn compare(args: &Args, out: Out) -> u8 {
    if args.html.is_some() {
        eprintln!("error: --html draws one backtest; run the variants one at a time for their charts");
        return super::EXIT_USAGE;
    }
    let mut timer = Timer::new(args.timings);
    let mut runs = Vec::new();
    for path in &args.paths {
        match run_one(path, args, out, &mut timer) {
            Ok(r) => runs.push(r),
            Err(code) => return code,
        }
    }
    // Variants are named after their bots; the file name tells apart two of the same bot.
    let mut names: Vec<String> = runs.iter().map(|r| r.ctx.bot.clone()).collect();
    for i in 0..names.len() {
        if names.iter().filter(|n| **n == names[i]).count() > 1 {
            names[i] =
                args.paths[i].file_stem().map_or_else(|| format!("variant{}", i + 1), |s| s.to_string_lossy().into());
        }
    }
    let pairs: Vec<(&str, &report::ReportContext, &backtest::BacktestOutput)> =
        names.iter().zip(&runs).map(|(n, r)| (n.as_str(), &r.ctx, &r.result)).collect();
    if let Some(p) = &args.json {
        let doc = report::comparison_json(&pairs);
        if let Err(d) = write_file(p, &serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            return out.fail(&d);
        }
    }
    timer.total();
    if !args.quiet {
        print!("{}", report::comparison(&pairs));
        if let Some(p) = &args.json {
            println!("  json report   {}", p.display());
        }
    }
    EXIT_OK
}

/// Loads, runs and journals one bot; `Err` holds the exit code (the problem was printed).
fn run_one(path: &std::path::Path, args: &Args, out: Out, timer: &mut Timer) -> Result<Ran, u8> {
    let loaded = match load_bundle(path) {
        Ok(l) => l,
        Err(diags) => {
            out.diags(&diags);
            return Err(exit_code_for(&diags));
        }
    };
    if !args.quiet {
        out.diags(&loaded.warnings);
    }
    let bundle = Arc::new(loaded.bundle.clone());
    let bot = bundle.bot.as_ref();
    let mut settings = EngineSettings {
        bot: bot.map_or_else(|| bundle.strategies[0].name().to_string(), |b| b.name.value.clone()),
        run: 0,
        starting_cash: args.cash.or(bot.map(|b| b.starting_cash.value)).unwrap_or(100_000.0),
        costs: {
            let manifest = bot.map(|b| CostModel::from(&b.costs)).unwrap_or_default();
            CostModel {
                commission: args.commission.unwrap_or(manifest.commission),
                slippage: args.slippage.unwrap_or(manifest.slippage),
                ..manifest
            }
        },
        fill: match args.fill {
            Some(Fill::Close) => FillTiming::Close,
            Some(Fill::NextOpen) => FillTiming::NextOpen,
            None => bot.map_or(FillTiming::NextOpen, |b| b.fill.value),
        },
    };
    if !(settings.starting_cash > 0.0 && settings.starting_cash.is_finite()) {
        eprintln!("error: --cash must be a positive number");
        return Err(super::EXIT_USAGE);
    }
    let req = DataRequest {
        data: args.data.clone(),
        store: args.store.clone(),
        from: args.bars.from,
        to: args.bars.to,
        timezone: args.bars.timezone,
        time_format: args.bars.time_format.clone(),
    };
    timer.lap("compile");
    let market = match load_for_bundle(&loaded, &req) {
        Ok(m) => m,
        Err(d) => return Err(out.fail(&d)),
    };
    timer.lap("load data");
    if !args.quiet {
        for n in &market.notes {
            eprintln!("note: {n}");
        }
    }
    let settings_json = crate::runtime::journal::settings::RunSettings::of(&settings).to_json();
    let journal_path = if args.no_journal { None } else { loaded.journal(args.journal.as_deref()) };
    let symbols: Vec<String> = market.series.iter().map(|s| s.symbol.clone()).collect();
    let mut journal = match &journal_path {
        Some(p) => {
            let info = RunInfo {
                kind: "backtest".into(),
                bot: settings.bot.clone(),
                bundle_revision: bundle.revision.clone(),
                settings: settings_json.clone(),
                symbols: symbols.clone(),
            };
            match Journal::begin(p, &info) {
                Ok(j) => Some(j),
                Err(d) => return Err(out.fail(&d)),
            }
        }
        None => None,
    };
    let mut null = NullSink;
    // The run's orders carry the journal run in their ids.
    settings.run = journal.as_ref().map_or(0, Journal::run_id);
    let sink: &mut dyn EventSink = match journal.as_mut() {
        Some(j) => j,
        None => &mut null,
    };
    let result = backtest::run_from(bundle.clone(), &market.series, settings.clone(), market.trade_from, sink);
    timer.lap("run");
    let run_id = match journal {
        Some(j) => match j.finish(result.first_ts, result.last_ts, &report::metrics_json(&result.metrics)) {
            Ok(id) => Some(id),
            Err(d) => return Err(out.fail(&d)),
        },
        None => None,
    };
    timer.lap("journal commit");
    if let Some(p) = &journal_path {
        super::gate::after_run(p, &bundle);
    }
    let ctx = ReportContext {
        bot: settings.bot.clone(),
        revision: bundle.revision.clone(),
        strategies: bundle.strategies.iter().map(|s| s.name().to_string()).collect(),
        symbols,
        settings: settings_json,
        run_id,
        journal: journal_path.map(|p| p.display().to_string()),
        warmup: market.trade_from.map(|f| (market.warmup_bars, f)),
    };
    Ok(Ran { ctx, result })
}
