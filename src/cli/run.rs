//! `dsl run BOT.yaml`: paper-trade a bot ([`crate::runtime::bot::paper`]).
//!
//! The feed is the bot's stored bars (its `data:`), replayed at `--speed N` times real time or
//! as fast as possible, or Alpaca's market data (`--feed alpaca`: a warm-up history, then each
//! new bar once complete). The broker is the simulated one, with the backtester's fill model,
//! or Alpaca (`broker: alpaca`, behind the live gates). Every timestamp is committed to the
//! journal as it completes; a bot stopped by Ctrl-C or killed resumes where its journal ends
//! when started again. `--watch` hot-reloads edited documents.
//!
//! The command is thin: it turns its arguments into a typed [`RunRequest`]; the runtime's
//! plan ([`crate::runtime::bot::plan`]) makes every check and refusal of a start, in order,
//! and runs the bot; the command prints what the run did.

use std::path::PathBuf;

use super::{BarArgs, EXIT_OK, Out, exit_code_for};
use crate::engine::market::format_utc;
use crate::runtime::bot::plan::{FeedRequest, LoadedBot, RunRequest};

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
    /// Where bars come from: the bot's stored bars (`replay`), or Alpaca's Market Data API
    /// (`alpaca`: history for the warm-up, then each new bar once complete; needs
    /// APCA_API_KEY_ID and APCA_API_SECRET_KEY).
    #[arg(long, value_enum, default_value_t = FeedKind::Replay)]
    pub feed: FeedKind,
    /// With `--feed alpaca`: seconds between polls for new bars (default: a quarter of the
    /// timeframe, 5 s to 60 s).
    #[arg(long, value_name = "SECONDS")]
    pub poll: Option<f64>,
    /// With `--feed alpaca`: days of history that warm the indicators up before trading
    /// (default: 400 for daily bars and longer, 10 for intraday bars).
    #[arg(long, value_name = "DAYS")]
    pub warmup_days: Option<u32>,
    /// Watch the manifest and every document and script it uses: a valid edit is swapped in
    /// at the next bar (open positions stay managed; a removed strategy only exits), an
    /// invalid one changes nothing; both are journaled (`reloads`).
    #[arg(long)]
    pub watch: bool,
    /// With --watch: how long to wait for changes to settle, in milliseconds.
    #[arg(long, default_value_t = 200, value_name = "MS", requires = "watch")]
    pub debounce: u64,
    /// Confirms live trading on this Alpaca account number (one of the four live gates; the
    /// others are `mode: live`, TRADEDSL_ARM_LIVE=<bot name> and a live active phase).
    #[arg(long, value_name = "ACCOUNT_NUMBER")]
    pub confirm_live: Option<String>,
    /// With `broker: alpaca`: the staleness window. An order decided on a bar older than this
    /// (counted back from the newest bar) is not sent but journaled as expired, e.g. after a
    /// restart that follows a long outage (`90s`, `15m`, `2h`, `1d`; default: one bar of the
    /// strategies' shortest timeframe, or 4d for daily bars: the next session across a
    /// weekend or a holiday).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub max_order_age: Option<std::time::Duration>,
    /// Switchover test of a live manifest: check all four live gates for real (the manifest's
    /// `mode: live`, TRADEDSL_ARM_LIVE, a live active phase, and `--confirm-live` against the
    /// account the live API reports for APCA_API_KEY_ID/APCA_API_SECRET_KEY), print and
    /// journal the verdict, then trade on the PAPER account (keys in APCA_PAPER_API_KEY_ID and
    /// APCA_PAPER_API_SECRET_KEY). No order reaches the live host.
    #[arg(long)]
    pub switchover: bool,
    /// Serve the bot's metrics for Prometheus (OpenMetrics text at `GET /metrics`: equity,
    /// drawdown, exposure, state, orders, fills, rejections by rule, slippage, heartbeat age,
    /// reloads) at this address (`127.0.0.1:9464`), or on this port of 127.0.0.1 (`9464`).
    /// Loopback addresses only, unless --metrics-allow-remote.
    #[arg(long, value_name = "ADDR|PORT", value_parser = parse_metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Allow --metrics on an address that is not loopback (the endpoint has no
    /// authentication: the bot's equity and positions are readable by whoever reaches it).
    #[arg(long, requires = "metrics")]
    pub metrics_allow_remote: bool,
    /// Commission as a fraction of notional (`0.001`, `0.1%`, `10bps`) instead of the
    /// manifest's, for a new run (recorded in its settings; `dsl report divergence` shows it).
    #[arg(long, value_parser = super::parse_cost_rate)]
    pub commission: Option<f64>,
    /// Slippage as a fraction of price, each way (`0.0005`, `5bps`) instead of the
    /// manifest's, for a new run.
    #[arg(long, value_parser = super::parse_cost_rate)]
    pub slippage: Option<f64>,
    /// Output format of the closing summary: `human`, or `json` (one document on standard
    /// output: run, bot, resumed_from, last_bar, timestamps, equity, orders, completed).
    #[arg(long, value_enum, default_value_t = super::validate::Format::Human)]
    pub format: super::validate::Format,
}

/// Where a running bot's bars come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeedKind {
    /// The bot's stored bars, replayed.
    Replay,
    /// Alpaca's Market Data API, live.
    Alpaca,
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

fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!(
            "`{s}` is not an address: write IP:PORT (`127.0.0.1:9464`, `[::1]:9464`) or a port of 127.0.0.1 (`9464`)"
        )
    })
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.as_secs() >= 1 && d.as_secs() <= 366 * 86_400 => Ok(d),
        Ok(_) => Err("the staleness window must be between 1s and 366d".into()),
        Err(e) => Err(format!("{e}: write a count and a unit, e.g. `90s`, `15m`, `2h` or `1d`")),
    }
}

/// The typed request of these arguments.
fn request(args: &Args) -> RunRequest {
    RunRequest {
        manifest: args.path.clone(),
        journal: args.journal.clone(),
        bars: args.bars.request(vec![], None),
        feed: match args.feed {
            FeedKind::Replay => FeedRequest::Replay {
                speed: match args.speed {
                    Speed::Times(v) => Some(v),
                    Speed::Max => None,
                },
            },
            FeedKind::Alpaca => FeedRequest::Alpaca { poll: args.poll, warmup_days: args.warmup_days },
        },
        fresh: args.fresh,
        watch: args.watch.then(|| std::time::Duration::from_millis(args.debounce)),
        confirm_live: args.confirm_live.clone(),
        max_order_age: args.max_order_age,
        switchover: args.switchover,
        metrics: args.metrics.map(|a| (a, args.metrics_allow_remote)),
        commission: args.commission,
        slippage: args.slippage,
    }
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let loaded = match LoadedBot::load(request(&args)) {
        Ok(l) => l,
        Err(diags) => {
            out.diags(&diags);
            return exit_code_for(&diags);
        }
    };
    if !args.quiet {
        out.diags(loaded.warnings());
    }
    let plan = match loaded.prepare() {
        Ok(p) => p,
        Err(d) => return out.fail(&d),
    };
    let bot_name = plan.bot().to_string();
    let outcome = match plan.start() {
        Ok(o) => o,
        Err(d) => return out.fail(&d),
    };
    if args.format == super::validate::Format::Json {
        let st = &outcome.stats;
        super::print_json(&serde_json::json!({
            "run": outcome.run_id,
            "bot": bot_name,
            "resumed_from": outcome.resumed_from.map(format_utc),
            "last_bar": outcome.last_ts.map(format_utc),
            "timestamps": outcome.timestamps,
            "equity": outcome.equity,
            "orders": {
                "submitted": st.orders_submitted,
                "filled": st.orders_filled,
                "rejected": st.orders_rejected,
            },
            "completed": outcome.completed,
        }));
    } else if !args.quiet {
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
