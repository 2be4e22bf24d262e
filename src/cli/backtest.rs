//! `dsl backtest BOT.yaml [VARIANT.yaml ...]`
//!
//! With one manifest: the summary, and the JSON and HTML reports on request. With several
//! (variants of one bot, such as seed 003's regime on/off A/B): each is run and journaled as its
//! own run, and the metrics are printed side by side (the JSON report then holds every
//! variant's metrics).

use std::path::PathBuf;

use clap::ValueEnum;

use super::validate::Format;
use super::{BarArgs, EXIT_OK, Out, exit_code_for, parse_cash, parse_cost_rate, print_json, write_file};
use crate::config::manifest::FillTiming;
use crate::engine::backtest;
use crate::runtime::journal::report::{self, ReportContext};
use crate::runtime::library::source::DataArg;
use crate::runtime::research::backtest::{BacktestPlan, BacktestRequest, JournalChoice};

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
    /// The bars, the money and the fills.
    #[command(flatten)]
    pub inputs: InputArgs,
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
    /// Output format: the summary (`human`) or the JSON report on standard output (`json`,
    /// the document `--json FILE` writes).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// The bars a run reads and its money and fills (shared by `backtest`, `sweep` and
/// `walkforward`).
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
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
}

impl InputArgs {
    /// The typed request for the bot at `manifest`, journaled as `journal` says.
    pub fn request(&self, manifest: &std::path::Path, journal: JournalChoice) -> BacktestRequest {
        BacktestRequest {
            manifest: manifest.to_path_buf(),
            data: self.bars.request(self.data.clone(), self.store.clone()),
            cash: self.cash,
            commission: self.commission,
            slippage: self.slippage,
            fill: self.fill.map(|f| match f {
                Fill::Close => FillTiming::Close,
                Fill::NextOpen => FillTiming::NextOpen,
            }),
            journal,
        }
    }
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
    /// The bars, kept for the HTML report's price charts (empty without `--html`).
    series: Vec<crate::engine::market::BarSeries>,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    if args.paths.len() > 1 {
        return compare(&args, out);
    }
    let mut timer = Timer::new(args.timings);
    let Ran { ctx, result, series } = match run_one(&args.paths[0], &args, out, &mut timer) {
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
        match report::to_html(&ctx, &result, &series) {
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
    if args.format == Format::Json {
        print_json(&report::to_json(&ctx, &result));
    } else if !args.quiet {
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
    if args.format == Format::Json {
        print_json(&report::comparison_json(&pairs));
    } else if !args.quiet {
        print!("{}", report::comparison(&pairs));
        if let Some(p) = &args.json {
            println!("  json report   {}", p.display());
        }
    }
    EXIT_OK
}

/// The typed request of these arguments for the bot at `path`.
fn request(path: &std::path::Path, args: &Args) -> BacktestRequest {
    args.inputs.request(path, super::journal_choice(args.journal.as_deref(), args.no_journal))
}

/// Loads, runs and journals one bot; `Err` holds the exit code (the problem was printed).
fn run_one(path: &std::path::Path, args: &Args, out: Out, timer: &mut Timer) -> Result<Ran, u8> {
    let plan = match BacktestPlan::load(request(path, args)) {
        Ok(p) => p,
        Err(diags) => {
            out.diags(&diags);
            return Err(exit_code_for(&diags));
        }
    };
    if !args.quiet {
        out.diags(plan.warnings());
    }
    let cash = plan.settings().starting_cash;
    if !(cash > 0.0 && cash.is_finite()) {
        eprintln!("error: --cash must be a positive number");
        return Err(super::EXIT_USAGE);
    }
    timer.lap("compile");
    let bar = super::progress(0, "loading bars {bar:30} {pos}/{len} symbols  {elapsed}", args.quiet);
    let market = plan
        .market_with(&mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(|d| out.fail(&d))?;
    bar.finish_and_clear();
    timer.lap("load data");
    if !args.quiet {
        for n in &market.notes {
            eprintln!("note: {n}");
        }
    }
    let spin = super::progress(0, "{spinner} running the backtest  {elapsed}", args.quiet);
    spin.enable_steady_tick(std::time::Duration::from_millis(120));
    let run = plan.run(&market);
    spin.finish_and_clear();
    let run = run.map_err(|d| out.fail(&d))?;
    timer.lap("run");
    if let Some(p) = &run.journal {
        super::gate::after_run(p, plan.bundle());
    }
    let series = if args.html.is_some() { market.series } else { Vec::new() };
    Ok(Ran { ctx: run.context, result: run.output, series })
}
