//! `dsl run BOT.yaml`: paper-trade a bot on replayed bars ([`crate::runtime::paper`]).
//!
//! The feed is the bot's stored bars (its `data:`), replayed at `--speed N` times real time or
//! as fast as possible; the broker is the simulated one, with the backtester's fill model.
//! Every timestamp is committed to the journal as it completes; a bot stopped by Ctrl-C or
//! killed resumes where its journal ends when started again.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{BarArgs, EXIT_OK, EXIT_USAGE, Out, exit_code_for};
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::costs::CostModel;
use crate::engine::market::format_utc;
use crate::engine::pipeline::EngineSettings;
use crate::runtime::data::{DataRequest, load_for_bundle};
use crate::runtime::loader::{load_bundle, resolve};
use crate::runtime::paper::{self, PaperConfig};

/// Arguments of `dsl run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bot manifest (`kind: bot`).
    pub path: PathBuf,
    /// Replay speed: `N` times real time (the gap between bar times divided by N), or `max`
    /// for as fast as possible.
    #[arg(long, default_value = "max", value_parser = parse_speed)]
    pub speed: Speed,
    /// Period of the replayed bars.
    #[command(flatten)]
    pub bars: BarArgs,
    /// Journal database (default: the manifest's `database`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Abandon the bot's unfinished run and start a new one instead of resuming it.
    #[arg(long)]
    pub fresh: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A replay speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as possible.
    Max,
    /// This many times real time.
    Times(f64),
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    if s == "max" {
        return Ok(Speed::Max);
    }
    match s.trim_end_matches('x').parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(Speed::Times(v)),
        _ => {
            Err(format!("`{s}` is not a speed: write a number above 0 (`60` = one minute of bars per second) or `max`"))
        }
    }
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let loaded = match load_bundle(&args.path) {
        Ok(l) => l,
        Err(diags) => {
            out.diags(&diags);
            return exit_code_for(&diags);
        }
    };
    if !args.quiet {
        out.diags(&loaded.warnings);
    }
    let bundle = Arc::new(loaded.bundle.clone());
    let Some(bot) = bundle.bot.as_ref() else {
        return out.fail(&Diagnostic::error(codes::UNKNOWN_KIND, "`dsl run` runs a bot manifest (`kind: bot`)"));
    };
    let Some(journal) =
        args.journal.clone().or_else(|| bot.database.as_ref().map(|d| resolve(&loaded.base_dir, &d.value)))
    else {
        return out.fail(
            &Diagnostic::error(codes::MISSING_KEY, "a running bot needs a journal")
                .help("set `database:` in the manifest or pass `--journal FILE`"),
        );
    };
    let settings = EngineSettings {
        bot: bot.name.value.clone(),
        starting_cash: bot.starting_cash.value,
        costs: CostModel::from(&bot.costs),
        fill: bot.fill.value,
    };
    let mut settings_json = crate::runtime::report::settings_json(&settings);
    settings_json["feed"] = "replay".into();
    settings_json["broker"] = "sim".into();
    let req = DataRequest {
        data: vec![],
        store: None,
        from: args.bars.from,
        to: args.bars.to,
        timezone: args.bars.timezone,
        time_format: args.bars.time_format.clone(),
    };
    let market = match load_for_bundle(&loaded, &req) {
        Ok(m) => m,
        Err(d) => return out.fail(&d),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let bot_name = bot.name.value.clone();
    let cfg = PaperConfig {
        bundle: bundle.clone(),
        series: market.series,
        settings,
        journal: journal.clone(),
        settings_json,
        speed: match args.speed {
            Speed::Max => None,
            Speed::Times(v) => Some(v),
        },
        fresh: args.fresh,
        stop: stop.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().enable_io().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_USAGE;
        }
    };
    if !args.quiet {
        eprintln!(
            "paper trading `{}` on replayed bars (simulated broker); journal {}",
            cfg.settings.bot,
            journal.display()
        );
        eprintln!("press Ctrl-C to stop; starting again resumes where it stopped");
    }
    let result = runtime.block_on(async move {
        let watcher = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                watcher.store(true, Ordering::SeqCst);
            }
        });
        paper::run(cfg).await
    });
    let outcome = match result {
        Ok(o) => o,
        Err(d) => return out.fail(&d),
    };
    if !args.quiet {
        let resumed = outcome.resumed_from.map_or(String::new(), |t| format!(", resumed after {}", format_utc(t)));
        let last = outcome.last_ts.map_or("no bars".into(), format_utc);
        println!("run {} of `{}`{resumed}", outcome.run_id, bot_name);
        println!("  bars through  {last} ({} timestamps in this session)", outcome.timestamps);
        println!("  equity        {:.2}", outcome.equity);
        let st = &outcome.stats;
        println!(
            "  orders        {} submitted, {} filled, {} rejected",
            st.orders_submitted, st.orders_filled, st.orders_rejected
        );
        if outcome.completed {
            println!("  status        completed (the replay ran out of bars)");
        } else {
            println!("  status        stopped; `dsl run` again resumes it, `dsl status` shows it");
        }
    }
    EXIT_OK
}
