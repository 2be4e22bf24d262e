//! `dsl sweep BOT.yaml` and `dsl sweep merge PART.json...`
//!
//! A sweep runs every trial of the bot's search spaces (see `runtime::research::sweep`) on
//! every core, prints the best trials, writes every trial to `--json` and `--csv` (and a heat
//! map to `--html`), and journals the sweep as one run (`kind = 'sweep'`). With `--shard K/N`
//! it runs one part and writes the part to `--json` without journaling; `dsl sweep merge`
//! combines the parts into exactly the single-process result and journals it with
//! `--journal`. Ctrl-C stops starting trials; the finished ones are written to `--json`, and
//! `--resume` carries on from that file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;

use super::backtest::InputArgs;
use super::{EXIT_OK, EXIT_USAGE, Out, exit_code_for, write_file};
use crate::config::sweep::{Direction, Method};
use crate::diagnostics::{Diagnostic, codes};
use crate::runtime::research::sweep::{SweepPlan, SweepRequest, SweepResult, merge};

/// Exit code of a sweep stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The search method flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Every grid point.
    Grid,
    /// Seeded random draws.
    Random,
    /// Tree-structured Parzen Estimator: batches drawn where the best results so far are.
    Tpe,
}

/// The objective's direction flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Higher is better.
    Maximize,
    /// Lower is better.
    Minimize,
}

/// Arguments of `dsl sweep`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// `merge`: combine shard results.
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// The bot manifest (or a single strategy file) whose params' search spaces are swept.
    #[arg(required = true, value_name = "BOT")]
    pub path: Option<PathBuf>,
    /// The search: its document, method, objective, constraints, and the bars and money.
    #[command(flatten)]
    pub search: SearchArgs,
    /// Run part K of N (1-based) of the trial list and write it to `--json`; combine the parts
    /// with `dsl sweep merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Carry on from the trials already in `--json` (a sweep stopped by Ctrl-C).
    #[arg(long, requires = "json")]
    pub resume: bool,
    /// Outputs and journal.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What a sweep searches and on which bars (shared by `dsl sweep` and `dsl walkforward`).
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// A `kind: sweep` document: method, trials, seed, objective, constraints, heat map.
    #[arg(long, value_name = "FILE")]
    pub sweep: Option<PathBuf>,
    /// Search method (overrides the sweep document; default grid).
    #[arg(long, value_enum)]
    pub method: Option<MethodArg>,
    /// Random search: how many distinct trials (default 100).
    #[arg(long)]
    pub trials: Option<u32>,
    /// Random search: the seed (default 0): the same seed tries the same points.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The objective, a number expression over `metric.*` (default `metric.sharpe`).
    #[arg(long, value_name = "EXPR")]
    pub objective: Option<String>,
    /// Maximise or minimise the objective (default maximize).
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// A rule over the params every trial must satisfy, e.g. `fast < slow` (repeatable).
    #[arg(long, value_name = "RULE")]
    pub constraint: Vec<String>,
    /// The heat map's two params, `A,B`.
    #[arg(long, value_name = "A,B", value_parser = parse_pair)]
    pub heatmap: Option<(String, String)>,
    /// The bars, the money and the fills.
    #[command(flatten)]
    pub inputs: InputArgs,
}

impl SearchArgs {
    /// The typed request for the bot at `path`.
    pub fn request(
        &self,
        path: PathBuf,
        journal: crate::runtime::research::backtest::JournalChoice,
        shard: Option<(usize, usize)>,
    ) -> SweepRequest {
        SweepRequest {
            backtest: self.inputs.request(&path, journal),
            sweep: self.sweep.clone(),
            method: self.method.map(|m| match m {
                MethodArg::Grid => Method::Grid,
                MethodArg::Random => Method::Random,
                MethodArg::Tpe => Method::Tpe,
            }),
            trials: self.trials,
            seed: self.seed,
            objective: self.objective.clone(),
            direction: self.direction.map(|d| match d {
                DirectionArg::Maximize => Direction::Maximize,
                DirectionArg::Minimize => Direction::Minimize,
            }),
            constraints: self.constraint.clone(),
            heatmap: self.heatmap.clone(),
            shard,
        }
    }
}

/// Where a sweep's results go.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Write every trial (params, objective, every metric) and the sweep's identity as JSON
    /// (`-`: standard output, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write every trial as CSV, best first.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write an HTML page: overfitting figures, a heat map of the objective over two params
    /// (`--heatmap A,B`, default the first two), its distribution, the best trials.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Journal database (default: the manifest's `database`; `merge`: none unless given).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Do not journal the sweep.
    #[arg(long, conflicts_with = "journal")]
    pub no_journal: bool,
    /// Rows of the printed ranking.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print nothing but errors (no progress bar, no table).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `dsl sweep`'s subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SweepCommand {
    /// Combine the `--json` results of `--shard K/N` runs into the single-process result.
    Merge(MergeArgs),
}

/// Arguments of `dsl sweep merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The parts' `--json` files.
    #[arg(required = true, value_name = "PART.json")]
    pub parts: Vec<PathBuf>,
    /// Outputs and journal.
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once(',') {
        Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => Ok((a.trim().into(), b.trim().into())),
        _ => Err(format!("`{s}` is not two params; write `A,B`, e.g. `fast,slow`")),
    }
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not a shard; write `K/N` with 1 <= K <= N, e.g. `2/3`");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    if let Some(SweepCommand::Merge(m)) = args.command {
        return run_merge(m, out);
    }
    let Some(path) = args.path.clone() else {
        eprintln!("error: give the bot to sweep: `dsl sweep BOT.yaml`");
        return EXIT_USAGE;
    };
    let o = &args.output;
    let request = args.search.request(path, super::journal_choice(o.journal.as_deref(), o.no_journal), args.shard);
    let (plan, market) = match SweepPlan::load(request, |b| b.market()) {
        Ok(p) => p,
        Err(diags) => {
            out.diags(&diags);
            return exit_code_for(&diags);
        }
    };
    if !o.quiet {
        out.diags(plan.backtest().warnings());
        for n in &market.notes {
            eprintln!("note: {n}");
        }
    }
    let done = match (args.resume, &o.json) {
        (true, Some(p)) => match resumed(p, &plan) {
            Ok(rows) => rows,
            Err(d) => return out.fail(&d),
        },
        _ => Vec::new(),
    };
    let todo = plan.my_trials().len().saturating_sub(done.len());
    let bar = progress_bar(todo as u64, o.quiet);
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(args.jobs.unwrap_or(0)).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot start the worker threads: {e}");
            return EXIT_USAGE;
        }
    };
    let tick = || bar.inc(1);
    let result = pool.install(|| plan.run(&market, done, &stop, &tick));
    bar.finish_and_clear();
    let result = match result {
        Ok(r) => r,
        Err(d) => return out.fail(&d),
    };
    let mine = plan.my_trials().len();
    if result.trials.len() < mine {
        // Stopped: keep what finished for `--resume`.
        if let Some(p) = &o.json
            && let Err(d) = write_json(p, &result)
        {
            return out.fail(&d);
        }
        eprintln!(
            "stopped after {} of {mine} trials{}",
            result.trials.len(),
            match &o.json {
                Some(p) => format!("; the finished ones are in `{}`: add `--resume` to carry on", p.display()),
                None => "; give `--json FILE` to keep finished trials and `--resume` to carry on".into(),
            }
        );
        return EXIT_INTERRUPTED;
    }
    let journal = if result.complete() { plan.backtest().journal_path() } else { None };
    let symbols: Vec<String> = market.series.iter().map(|s| s.symbol.clone()).collect();
    finish(&result, o, journal.as_deref(), &symbols, out)
}

fn run_merge(m: MergeArgs, out: Out) -> u8 {
    let mut parts = Vec::new();
    for p in &m.parts {
        match read_result(p) {
            Ok(r) => parts.push(r),
            Err(d) => return out.fail(&d),
        }
    }
    let result = match merge(parts) {
        Ok(r) => r,
        Err(d) => return out.fail(&d),
    };
    let journal = if m.output.no_journal { None } else { m.output.journal.clone() };
    let symbols: Vec<String> =
        result.sweep.data.iter().map(|d| d.split_whitespace().next().unwrap_or_default().to_string()).collect();
    finish(&result, &m.output, journal.as_deref(), &symbols, out)
}

/// Writes the outputs, journals a whole sweep, prints the ranking.
fn finish(result: &SweepResult, o: &OutputArgs, journal: Option<&Path>, symbols: &[String], out: Out) -> u8 {
    if let Some(p) = &o.json
        && let Err(d) = write_json(p, result)
    {
        return out.fail(&d);
    }
    if let Some(p) = &o.csv
        && let Err(d) = write_csv(p, result)
    {
        return out.fail(&d);
    }
    if let Some(p) = &o.html {
        match crate::runtime::research::sweep_report::to_html(result, o.top.max(20)) {
            Ok(h) => {
                if let Err(d) = write_file(p, &h) {
                    return out.fail(&d);
                }
            }
            Err(e) => {
                eprintln!("error: cannot draw the HTML page: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let mut run_id = None;
    if result.shard.is_none()
        && let Some(j) = journal
    {
        match crate::runtime::research::sweep::journal(j, result, symbols) {
            Ok(id) => run_id = Some(id),
            Err(d) => return out.fail(&d),
        }
    }
    // `--json -`: standard output holds the JSON document alone.
    let json_out = o.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if !o.quiet && !json_out {
        print!("{}", table(result, o.top));
        if let (Some(id), Some(j)) = (run_id, journal) {
            println!("  journal       {} (run {id})", j.display());
        }
        for (what, p) in [("json", &o.json), ("csv", &o.csv), ("html", &o.html)] {
            if let Some(p) = p {
                println!("  {what:<13} {}", p.display());
            }
        }
    }
    EXIT_OK
}

pub(super) fn progress_bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    super::progress(len, "{bar:30} {pos}/{len} trials  {per_sec}  {elapsed} elapsed, {eta} left", quiet)
}

/// Sets `stop` on Ctrl-C (a thread of its own; the sweep's workers check it between trials).
pub(super) fn watch_ctrl_c(stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new().name("ctrl-c".into()).spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.store(true, Ordering::SeqCst);
                }
            });
        }
    });
}

fn read_result(path: &Path) -> Result<SweepResult, Diagnostic> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot read `{}`: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Diagnostic::error(
            codes::BAD_ARGUMENT,
            format!("`{}` is not a sweep result: {e} (line {}, column {})", path.display(), e.line(), e.column()),
        )
        .help("give the `--json` files that `dsl sweep` wrote")
    })
}

/// The trials already in `path` for `--resume`: of the same sweep and shard.
fn resumed(path: &Path, plan: &SweepPlan) -> Result<Vec<crate::runtime::research::sweep::TrialRow>, Diagnostic> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let r = read_result(path)?;
    if &r.sweep != plan.identity() {
        return Err(Diagnostic::error(
            codes::BAD_ARGUMENT,
            format!(
                "`{}` holds another sweep (bot, revision, space, method, seed, objective or data differ)",
                path.display()
            ),
        )
        .help("resume with the same documents, data and flags, or write to another `--json` file"));
    }
    let mine: std::collections::HashSet<usize> = plan.my_trials().iter().map(|t| t.index).collect();
    Ok(r.trials.into_iter().filter(|t| mine.contains(&t.trial)).map(|t| t.canonical(plan.identity())).collect())
}

fn write_json(path: &Path, result: &SweepResult) -> Result<(), Diagnostic> {
    let mut text = serde_json::to_string_pretty(result)
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot encode the result: {e}")))?;
    text.push('\n');
    write_file(path, &text)
}

fn write_csv(path: &Path, result: &SweepResult) -> Result<(), Diagnostic> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Diagnostic::error(codes::IO, format!("cannot write `{}`: {e}", path.display()));
    let first = result.trials.first();
    let params: Vec<String> = result.sweep.params.iter().map(|p| p.name.clone()).collect();
    let metrics: Vec<String> = first.map(|t| t.metrics.keys().cloned().collect()).unwrap_or_default();
    let mut header = vec!["rank".to_string(), "trial".to_string()];
    header.extend(params.iter().cloned());
    header.push("objective".into());
    header.extend(metrics.iter().cloned());
    w.write_record(&header).map_err(io)?;
    for (rank, t) in result.ranked().into_iter().enumerate() {
        let mut row = vec![(rank + 1).to_string(), t.trial.to_string()];
        row.extend(params.iter().map(|p| t.params.get(p).map_or_else(String::new, value_text)));
        row.push(num(t.objective));
        row.extend(metrics.iter().map(|m| num(t.metrics.get(m).copied().flatten())));
        w.write_record(&row).map_err(io)?;
    }
    let bytes = w.into_inner().map_err(|e| Diagnostic::error(codes::IO, format!("cannot write the CSV: {e}")))?;
    write_file(path, &String::from_utf8_lossy(&bytes))
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| x.to_string())
}

/// The ranking as people read it: the best `top` trials.
fn table(result: &SweepResult, top: usize) -> String {
    use std::fmt::Write;
    let s = &result.sweep;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "sweep `{}` of `{}` ({}): {} of {} trials{}, {:?} `{}`",
        s.name,
        s.bot,
        s.bundle_revision,
        result.trials.len(),
        s.trials_total,
        result.shard.as_ref().map_or_else(String::new, |k| format!(" (shard {k})")),
        s.direction,
        s.objective
    );
    if let Some(sum) = &result.summary {
        let f = |v: Option<f64>| v.map_or_else(|| "undefined".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            t,
            "  overfitting: PBO {} (CSCV, {} blocks of {} days), deflated Sharpe of the best {} ({} trials)",
            f(sum.pbo),
            sum.pbo_blocks,
            sum.periods,
            f(sum.deflated_sharpe),
            sum.trials
        );
    }
    let names: Vec<&str> = s.params.iter().map(|p| p.name.as_str()).collect();
    let _ = write!(t, "  {:>4} {:>6}", "rank", "trial");
    for n in &names {
        let _ = write!(t, " {n:>10}");
    }
    let _ = writeln!(t, " {:>10} {:>8} {:>9} {:>8} {:>7}", "objective", "sharpe", "return", "max dd", "trades");
    let metric = |r: &crate::runtime::research::sweep::TrialRow, k: &str| r.metrics.get(k).copied().flatten();
    let fmt = |v: Option<f64>, pct: bool| match v {
        Some(x) if pct => format!("{:.2}%", x * 100.0),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    };
    for (i, r) in result.ranked().into_iter().take(top).enumerate() {
        let _ = write!(t, "  {:>4} {:>6}", i + 1, r.trial);
        for n in &names {
            let _ = write!(t, " {:>10}", r.params.get(*n).map_or_else(String::new, value_text));
        }
        let _ = writeln!(
            t,
            " {:>10} {:>8} {:>9} {:>8} {:>7}",
            fmt(r.objective, false),
            fmt(metric(r, "metric.sharpe"), false),
            fmt(metric(r, "metric.total_return"), true),
            fmt(metric(r, "metric.max_drawdown"), true),
            metric(r, "metric.trades").map_or_else(|| "-".into(), |v| format!("{v}")),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_and_pairs_parse() {
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        assert!(parse_shard("0/3").is_err());
        assert!(parse_shard("4/3").is_err());
        assert!(parse_shard("x").is_err());
        assert_eq!(parse_pair("fast, slow"), Ok(("fast".into(), "slow".into())));
        assert!(parse_pair("fast").is_err());
    }
}
