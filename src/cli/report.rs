//! `dsl report execution|daily|log|divergence|html BOT.yaml`: what a running bot's journal says
//! about its execution quality ([`crate::runtime::broker::execution`]), its daily P&L and its
//! day-by-day trading log in markdown ([`crate::runtime::journal::trading_log`]), and how its
//! run differs from the backtest of the same bundle on the same bars
//! ([`crate::runtime::phases::divergence`]), and its HTML report
//! ([`crate::runtime::bot::run_html`]).

use std::path::PathBuf;

use super::control::Target;
use super::validate::Format;
use super::{EXIT_OK, Out};
use crate::diagnostics::{Diagnostic, codes};
use crate::runtime::broker::execution;
use crate::runtime::journal::trading_log;

/// Arguments of `dsl report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

/// Which report.
#[derive(Debug, clap::Subcommand)]
enum What {
    /// Slippage against the mid and time to fill of filled market orders, by symbol and by
    /// UTC hour of submission.
    Execution(Common),
    /// Equity, P&L, trades and orders per UTC day.
    Daily(Common),
    /// The markdown trading log: per day, trades, orders, guardrails that fired and events,
    /// with their reasons.
    Log {
        #[command(flatten)]
        common: Common,
        /// Write the log to this file instead of stdout (`-`: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The HTML report of a paper or live run: equity with a buy-and-hold benchmark, the
    /// underwater curve, monthly returns, each symbol's prices with entries, exits and stop
    /// exits, and a sortable trade table; one self-contained file.
    Html {
        /// The bot manifest.
        manifest: PathBuf,
        /// Journal database (default: the manifest's `database`).
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// The run (default: the bot's latest paper run).
        #[arg(long)]
        run: Option<i64>,
        /// Where to write it (`-`: standard output; default `BOT-run-N.html` here).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The run against the backtest of the same bundle revisions on the same bars: missing,
    /// extra and differently ended orders, fill price (bps), timing and fee differences,
    /// trades and daily equity; journaled for gates (`metric.divergence_bps`,
    /// `metric.missing_orders`). Exits 1 when anything differs.
    Divergence {
        /// The bot manifest.
        manifest: PathBuf,
        /// Journal database (default: the manifest's `database`).
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// The run (default: the bot's latest paper run).
        #[arg(long)]
        run: Option<i64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    #[command(flatten)]
    target: Target,
    /// The run (default: the bot's latest paper run).
    #[arg(long)]
    run: Option<i64>,
    /// Output format (`human`: the log is markdown).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    match report(args) {
        Ok(code) => code,
        Err(d) => out.fail(&d),
    }
}

fn db_err(e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::error(codes::IO, format!("journal: {e}"))
}

/// Prints the report; the exit code (`dsl report divergence` exits 1 when the run differs).
fn report(args: Args) -> Result<u8, Diagnostic> {
    match args.what {
        What::Html { manifest, journal, run, out: path } => {
            let req = crate::runtime::bot::run_html::RunHtmlRequest { manifest: manifest.clone(), journal, run };
            let (run_id, html) = crate::runtime::bot::run_html::run_html(&req)?;
            let stem = manifest.file_stem().map_or("bot".into(), |s| s.to_string_lossy().into_owned());
            let path = path.unwrap_or_else(|| PathBuf::from(format!("{stem}-run-{run_id}.html")));
            super::write_file(&path, &html)?;
            if path.as_os_str() != "-" {
                println!("html report of run {run_id}: {}", path.display());
            }
        }
        What::Divergence { manifest, journal, run, format } => {
            let req = crate::runtime::phases::divergence::DivergenceRequest { manifest, journal, run };
            let r = crate::runtime::phases::divergence::compare(&req)?;
            match format {
                Format::Json => super::print_json(&r),
                Format::Human => print!("{}", crate::runtime::phases::divergence::human(&r)),
            }
            if !r.identical() {
                return Ok(super::EXIT_INVALID);
            }
        }
        What::Execution(c) => {
            let (db, bot) = c.target.resolve()?;
            let (run_id, execs) = execution::executions(&db, &bot, c.run)?;
            let r = execution::report(run_id, &execs);
            match c.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
                Format::Human => print!("{}", execution::human(&r)),
            }
        }
        What::Daily(c) => {
            let (db, bot) = c.target.resolve()?;
            let (conn, run_id) = trading_log::open_run(&db, &bot, c.run)?;
            let days = trading_log::daily(&conn, run_id).map_err(db_err)?;
            match c.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&days).unwrap_or_default()),
                Format::Human => print!("{}", trading_log::daily_human(run_id, &days)),
            }
        }
        What::Log { common, out } => {
            let (db, bot) = common.target.resolve()?;
            let (conn, run_id) = trading_log::open_run(&db, &bot, common.run)?;
            let log = trading_log::log(&conn, run_id).map_err(db_err)?;
            let text = match common.format {
                Format::Json => serde_json::to_string_pretty(&log).unwrap_or_default() + "\n",
                Format::Human => trading_log::render_markdown(&log),
            };
            match out {
                Some(path) => super::write_file(&path, &text)?,
                None => print!("{text}"),
            }
        }
    }
    Ok(EXIT_OK)
}
