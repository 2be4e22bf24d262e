//! `dsl data fetch` and `dsl data list`: bars from Alpaca's Market Data API into a bar store,
//! and what a bar store holds (see [`crate::runtime::broker::fetch`]).
//!
//! The API keys come from `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY` (never a flag, never
//! printed); `TRADEDSL_ALPACA_DATA_URL` may point at a mock server on loopback. A terminal
//! shows a progress bar per symbol (indicatif); a pipe or a log file gets none.

use std::path::PathBuf;

use super::validate::Format;
use super::{EXIT_OK, EXIT_USAGE, Out};
use crate::config::timeframe::Timeframe;
use crate::diagnostics::{Diagnostic, codes};
use crate::runtime::broker::alpaca::{Credentials, MarketDataClient, RetryPolicy};
use crate::runtime::broker::fetch::{FetchPlan, SymbolFetch, fetch, summarize};
use crate::runtime::broker::live_gate;
use crate::runtime::data::bar_store;
use crate::runtime::data::timeparse::format_utc;

/// Arguments of `dsl data`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DataCommand {
    /// Download bars from Alpaca's Market Data API into a bar store (resumes where the last
    /// fetch of each symbol stopped).
    Fetch(FetchArgs),
    /// What a bar store holds: symbols, timeframes, ranges and gaps.
    List(ListArgs),
}

/// Arguments of `dsl data fetch`.
#[derive(Debug, clap::Args)]
struct FetchArgs {
    /// Symbols, comma-separated (`AAPL,MSFT`, `BTC/USD`).
    #[arg(long, value_delimiter = ',', required = true)]
    symbols: Vec<String>,
    /// Bar length: `1m` to `59m`, `1h` to `23h`, `1d`, `1w`, `1mo`.
    #[arg(long)]
    timeframe: Timeframe,
    /// First bar time (`2020-01-01` or RFC 3339, UTC).
    #[arg(long, value_parser = super::parse_time)]
    from: i64,
    /// Last bar time (default: now).
    #[arg(long, value_parser = super::parse_time)]
    to: Option<i64>,
    /// The SQLite bar store to write (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Stock feed: `iex` (free plans) or `sip`.
    #[arg(long, default_value = "iex", value_parser = ["iex", "sip"])]
    feed: String,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Arguments of `dsl data list`.
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// The SQLite bar store.
    #[arg(long)]
    db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    match args.command {
        DataCommand::Fetch(a) => run_fetch(a, out),
        DataCommand::List(a) => run_list(a, out),
    }
}

fn run_fetch(args: FetchArgs, out: Out) -> u8 {
    if crate::runtime::broker::alpaca::market_data::timeframe_param(args.timeframe).is_none() {
        return out.fail(
            &Diagnostic::error(codes::BAD_ARGUMENT, format!("Alpaca has no {} bars", args.timeframe))
                .help("use 1m to 59m, 1h to 23h, 1d, 1w, or 1mo, 2mo, 3mo, 4mo, 6mo, 12mo"),
        );
    }
    if args.symbols.iter().any(|s| s.trim().is_empty()) {
        return out.fail(&Diagnostic::error(codes::BAD_ARGUMENT, "`--symbols` names an empty symbol"));
    }
    if args.to.is_some_and(|t| t < args.from) {
        return out.fail(&Diagnostic::error(codes::BAD_ARGUMENT, "`--to` is before `--from`"));
    }
    let creds = match Credentials::from_env() {
        Ok(c) => c,
        Err(e) => return out.fail(&Diagnostic::error(codes::IO, e.to_string())),
    };
    let url = match live_gate::data_url(
        crate::runtime::broker::alpaca::Environment::Paper,
        std::env::var(live_gate::DATA_URL_VAR).ok().as_deref(),
    ) {
        Ok(u) => u,
        Err(d) => return out.fail(&d),
    };
    let mut client = match MarketDataClient::new(&url, creds, RetryPolicy::default()) {
        Ok(c) => c,
        Err(e) => return out.fail(&Diagnostic::error(codes::IO, e.to_string())),
    };
    client.feed = args.feed.clone();
    let plan = FetchPlan {
        symbols: args.symbols.iter().map(|s| s.trim().to_string()).collect(),
        timeframe: args.timeframe,
        from: args.from,
        to: args.to,
        store: args.db.clone(),
    };
    let end = args.to.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template("{prefix:>10} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let mut current: Option<(String, indicatif::ProgressBar)> = None;
    let mut progress = |symbol: &str, last: i64| {
        if current.as_ref().is_none_or(|(s, _)| s != symbol) {
            let pb = bars.add(indicatif::ProgressBar::new((end - args.from).max(1) as u64));
            pb.set_style(style.clone());
            pb.set_prefix(symbol.to_string());
            current = Some((symbol.to_string(), pb));
        }
        if let Some((_, pb)) = &current {
            pb.set_position((last - args.from).clamp(0, end - args.from) as u64);
            pb.set_message(format_utc(last));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_USAGE;
        }
    };
    let result = runtime.block_on(fetch(&client, &plan, &mut progress));
    if let Some((_, pb)) = current {
        pb.finish_and_clear();
    }
    let reports = match result {
        Ok(r) => r,
        Err(d) => return out.fail(&d),
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default()),
        Format::Human => print!("{}", human_fetch(&reports, &args)),
    }
    EXIT_OK
}

fn human_fetch(reports: &[SymbolFetch], args: &FetchArgs) -> String {
    let mut o = format!("fetched {} bars into {}\n", args.timeframe, args.db.display());
    for r in reports {
        let range = match (r.first, r.last) {
            (Some(a), Some(b)) => format!("{} .. {}", format_utc(a), format_utc(b)),
            _ => "nothing new".to_string(),
        };
        let resumed = r.resumed_after.map(|t| format!(", resumed after {}", format_utc(t))).unwrap_or_default();
        let skipped = if r.invalid + r.duplicates > 0 {
            format!(", skipped {} invalid and {} duplicate bars", r.invalid, r.duplicates)
        } else {
            String::new()
        };
        o.push_str(&format!("  {:<10} {:>7} bars  {range}{resumed}{skipped}\n", r.symbol, r.written));
    }
    o
}

fn run_list(args: ListArgs, out: Out) -> u8 {
    let stored = match bar_store::list(&args.db) {
        Ok(s) => s,
        Err(d) => return out.fail(&d),
    };
    let summary = summarize(&stored);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default()),
        Format::Human => {
            println!("bar store {}", args.db.display());
            if summary.is_empty() {
                println!("  no bars");
            }
            for s in &summary {
                println!(
                    "  {:<10} {:<4} {:>8} bars  {} .. {}  {} gap{}",
                    s.symbol,
                    s.timeframe,
                    s.bars,
                    format_utc(s.first),
                    format_utc(s.last),
                    s.gaps,
                    if s.gaps == 1 { "" } else { "s" }
                );
                for (a, b) in &s.first_gaps {
                    println!("             gap after {} (next bar {})", format_utc(*a), format_utc(*b));
                }
            }
        }
    }
    EXIT_OK
}
