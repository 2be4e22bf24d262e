//! `dsl walkforward BOT.yaml --in-sample SPAN --out-of-sample SPAN`
//!
//! Optimises the bot's search spaces (the same search as `dsl sweep`) on each window's
//! in-sample span and trades the winner on the out-of-sample span after it (see
//! `runtime::research::walkforward`); prints each window's choice and out-of-sample result,
//! the params' stability, the stitched out-of-sample metrics and the walk-forward efficiency;
//! writes them to `--json`; journals the walk (`kind = 'walkforward'`, the out-of-sample trades).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::sweep::{SearchArgs, progress_bar, watch_ctrl_c};
use super::{EXIT_OK, EXIT_USAGE, Out, exit_code_for, write_file};
use crate::engine::walkforward::Span;
use crate::runtime::research::sweep::SweepPlan;
use crate::runtime::research::walkforward::{WalkForwardResult, WindowSpec, journal, walk};

/// Arguments of `dsl walkforward`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bot manifest (or a single strategy file) whose params' search spaces are optimised.
    #[arg(value_name = "BOT")]
    pub path: PathBuf,
    /// In-sample span: bars (`500`) or calendar time (`90d`, `12w`, `6mo`, `2y`).
    #[arg(long, value_parser = Span::parse, value_name = "SPAN")]
    pub in_sample: Span,
    /// Out-of-sample span after each in-sample span.
    #[arg(long, value_parser = Span::parse, value_name = "SPAN")]
    pub out_of_sample: Span,
    /// How far each window starts after the previous one (default: the out-of-sample span).
    #[arg(long, value_parser = Span::parse, value_name = "SPAN")]
    pub step: Option<Span>,
    /// Every in-sample span starts at the first bar (anchored), instead of rolling.
    #[arg(long)]
    pub anchored: bool,
    /// The search: its document, method, objective, constraints, and the bars and money.
    #[command(flatten)]
    pub search: SearchArgs,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write the windows, the stitched equity, metrics and out-of-sample trades and the
    /// params' stability as JSON (`-`: standard output, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Journal database (default: the manifest's `database`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Do not journal the walk.
    #[arg(long, conflicts_with = "journal")]
    pub no_journal: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let choice = super::journal_choice(args.journal.as_deref(), args.no_journal);
    let request = args.search.request(args.path.clone(), choice, None);
    let (plan, market) = match SweepPlan::load(request, |b| b.market()) {
        Ok(p) => p,
        Err(diags) => {
            out.diags(&diags);
            return exit_code_for(&diags);
        }
    };
    if !args.quiet {
        out.diags(plan.backtest().warnings());
    }
    let spec = WindowSpec {
        in_sample: args.in_sample,
        out_of_sample: args.out_of_sample,
        step: args.step,
        anchored: args.anchored,
    };
    let stop = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(stop.clone());
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(args.jobs.unwrap_or(0)).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot start the worker threads: {e}");
            return EXIT_USAGE;
        }
    };
    let bar = progress_bar(0, args.quiet);
    let tick = || bar.inc(1);
    let walked = pool.install(|| walk(&plan, &market, spec, &stop, &tick));
    bar.finish_and_clear();
    let result = match walked {
        Ok(r) => r,
        Err(d) => return out.fail(&d),
    };
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&result).unwrap_or_default() + "\n";
        if let Err(d) = write_file(p, &text) {
            return out.fail(&d);
        }
    }
    let mut run_id = None;
    if let Some(j) = plan.backtest().journal_path() {
        let symbols = market.series.iter().map(|s| s.symbol.clone()).collect();
        match journal(&j, &result, symbols) {
            Ok(id) => run_id = Some((id, j)),
            Err(d) => return out.fail(&d),
        }
    }
    // `--json -`: standard output holds the JSON document alone.
    let json_out = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if !args.quiet && !json_out {
        print!("{}", table(&result));
        if let Some((id, j)) = run_id {
            println!("  journal       {} (run {id}, kind walkforward)", j.display());
        }
        if let Some(p) = &args.json {
            println!("  json          {}", p.display());
        }
    }
    EXIT_OK
}

fn count(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.0}"))
}

fn table(r: &WalkForwardResult) -> String {
    use std::fmt::Write;
    let f = |v: Option<f64>, pct: bool| match v {
        Some(x) if pct => format!("{:.2}%", x * 100.0),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "walk-forward of `{}` ({}): {} windows, {:?} search of {} trials per window, {:?} `{}`",
        r.sweep.bot,
        r.sweep.bundle_revision,
        r.windows.len(),
        r.sweep.method,
        r.sweep.trials_total,
        r.sweep.direction,
        r.sweep.objective
    );
    for (i, w) in r.windows.iter().enumerate() {
        let params: Vec<String> = w.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            t,
            "  {:>3}  {}  chose {} (in-sample {} {}): out-of-sample return {}, max dd {}, trades {}, WFE {}",
            i + 1,
            w.period,
            params.join(" "),
            r.sweep.objective,
            f(w.in_sample_objective, false),
            f(w.out_of_sample.get("metric.total_return").copied().flatten(), true),
            f(w.out_of_sample.get("metric.max_drawdown").copied().flatten(), true),
            count(w.out_of_sample.get("metric.trades").copied().flatten()),
            f(w.wfe, false),
        );
    }
    for (name, s) in &r.stability {
        let values: Vec<String> = s.values.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            t,
            "  stability of {name}: {} distinct of {} ({}), coefficient of variation {}",
            s.distinct,
            s.values.len(),
            values.join(", "),
            f(s.cv, false)
        );
    }
    let m = |k: &str| r.metrics.get(k).copied().flatten();
    let _ = writeln!(
        t,
        "  out-of-sample, stitched: return {}, CAGR {}, max drawdown {}, Sharpe {}, trades {}, win rate {}, profit factor {}",
        f(m("metric.total_return"), true),
        f(m("metric.cagr"), true),
        f(m("metric.max_drawdown"), true),
        f(m("metric.sharpe"), false),
        count(m("metric.trades")),
        f(m("metric.win_rate"), true),
        f(m("metric.profit_factor"), false),
    );
    let _ =
        writeln!(t, "  walk-forward efficiency (out-of-sample CAGR / in-sample CAGR): {}", f(m("metric.wfe"), false));
    t
}
