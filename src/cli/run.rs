//! `dsl run BOT.yaml`: paper-trade a bot ([`crate::runtime::bot::paper`]).
//!
//! The feed is the bot's stored bars (its `data:`), replayed at `--speed N` times real time or
//! as fast as possible, or Alpaca's market data (`--feed alpaca`: a warm-up history, then each
//! new bar once complete). The broker is the simulated one, with the backtester's fill model,
//! or Alpaca (`broker: alpaca`, behind the live gates). Every timestamp is committed to the
//! journal as it completes; a bot stopped by Ctrl-C or killed resumes where its journal ends
//! when started again. `--watch` hot-reloads edited documents.
//!
//! Its `run` (about 200 lines) is the command's sequence of checks and refusals before a bot
//! may start (the lease, the phase, the live gates, the feed), each ending the command with its
//! own diagnostic; they read best in the order they are made.

use crate::runtime::journal::settings::{self, RunSettings};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{BarArgs, EXIT_OK, EXIT_USAGE, Out, exit_code_for};
use crate::config::manifest::{BrokerKind, TradingMode};
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::costs::CostModel;
use crate::engine::market::BarSeries;
use crate::engine::market::format_utc;
use crate::engine::pipeline::EngineSettings;
use crate::runtime::bot::paper::{self, PaperConfig, ReloadMessage};
use crate::runtime::broker::alpaca::{self, Credentials, Environment, MarketDataClient, RetryPolicy, TradingClient};
use crate::runtime::broker::gateway::Gateway;
use crate::runtime::broker::live_feed::LiveFeed;
use crate::runtime::broker::live_gate::{self, GateDecision};
use crate::runtime::journal::Journal;
use crate::runtime::library::loader::load_bundle;
use crate::runtime::library::reload::{self, ManifestSource, Outcome, Reloader, Watch};
use crate::runtime::library::source::{DataRequest, load_for_bundle};
use crate::runtime::phases::phase_limits::{self, PhaseRun};
use crate::runtime::phases::phase_store;
use std::sync::mpsc::Receiver;

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

/// Writes a line about money (a refused live start, the live banner) to stderr whatever the
/// log level; a closed stderr is ignored, never a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.as_secs() >= 1 && d.as_secs() <= 366 * 86_400 => Ok(d),
        Ok(_) => Err("the staleness window must be between 1s and 366d".into()),
        Err(e) => Err(format!("{e}: write a count and a unit, e.g. `90s`, `15m`, `2h` or `1d`")),
    }
}

/// The default staleness window of a bot's orders: one bar of its strategies' shortest
/// timeframe, or four days for daily and longer bars (seconds).
fn default_order_age(bundle: &crate::dsl::bundle::Bundle) -> i64 {
    let step = bundle.strategies.iter().map(|s| s.doc.timeframe.value.seconds()).min().unwrap_or(86_400);
    if step >= 86_400 { 4 * 86_400 } else { step }
}

/// The outside broker of a bot with `broker: alpaca`, after the live gates: the gateway and
/// (environment, trading URL). `None` for the simulated broker.
async fn connect(
    bot: &crate::config::manifest::BotDoc,
    phases: &[crate::config::phase::PhaseDoc],
    active_phase: Option<&str>,
    args: &Args,
    symbols: Vec<String>,
    settings: &EngineSettings,
    max_order_age: i64,
) -> Result<(Option<Gateway>, Option<(Environment, String)>), Diagnostic> {
    let armed = std::env::var(live_gate::ARM_VAR).ok();
    if bot.broker.value == BrokerKind::Sim {
        if bot.mode.value == TradingMode::Live || args.confirm_live.is_some() {
            say(
                "warning: live trading refused: the bot's broker is `sim` (set `broker: alpaca`); simulated broker used",
            );
        }
        return Ok((None, None));
    }
    let decision = live_gate::decide(bot, phases, active_phase, armed.as_deref(), args.confirm_live.as_deref());
    let env = match &decision {
        GateDecision::Paper { missing } => {
            if !missing.is_empty() {
                say("warning: live trading refused, using the PAPER host. Missing gates:");
                for m in missing {
                    say(&format!("  - {m}"));
                }
            }
            Environment::Paper
        }
        GateDecision::LiveIfAccountMatches { .. } => Environment::Live,
    };
    let creds = Credentials::from_env().map_err(|e| {
        Diagnostic::error(codes::MISSING_KEY, e.to_string())
            .help("export APCA_API_KEY_ID and APCA_API_SECRET_KEY (the paper account's keys for paper trading)")
    })?;
    let override_url = std::env::var(live_gate::TRADING_URL_VAR).ok();
    let url = live_gate::trading_url(env, override_url.as_deref())?;
    let client = TradingClient::new(&url, creds.clone(), RetryPolicy::default())
        .map_err(|e| Diagnostic::error(codes::IO, e.to_string()))?;
    if let GateDecision::LiveIfAccountMatches { account } = &decision {
        let reported = client.account().await.map_err(|e| {
            Diagnostic::error(codes::IO, format!("cannot verify the live account: {e}; nothing was traded"))
        })?;
        live_gate::confirm_account(account, &reported.account_number)?;
        say(&live_gate::banner(&bot.name.value, account));
        tracing::warn!(account = %account, "live trading armed");
    }
    // Quotes for execution quality: Alpaca's market data, unless the trading side is a mock
    // without a data mock (then bar-based estimates).
    let data_override = std::env::var(live_gate::DATA_URL_VAR).ok();
    let data_url = match (&data_override, &override_url) {
        (None, Some(_)) => None,
        _ => Some(live_gate::data_url(env, data_override.as_deref())?),
    };
    let quotes = match data_url {
        Some(u) => Some(
            MarketDataClient::new(&u, creds, RetryPolicy::default())
                .map_err(|e| Diagnostic::error(codes::IO, e.to_string()))?,
        ),
        None => None,
    };
    if env == Environment::Paper {
        tracing::info!("Alpaca paper account at {url}");
    }
    let mut gateway = Gateway::new(client, quotes, symbols, settings.costs.spread / 2.0);
    gateway.max_order_age = max_order_age;
    Ok((Some(gateway), Some((env, url))))
}

/// The live feed of `--feed alpaca`: its history (the warm-up) and the feed that polls for
/// new bars, and the end of the warm-up. A restarted bot fetches the same history window as
/// its unfinished run (recorded in the run's settings), so that its replay rebuilds the same
/// state.
async fn live_feed(
    env: Environment,
    bundle: &crate::dsl::bundle::Bundle,
    symbols: Vec<String>,
    args: &Args,
    previous: Option<&RunSettings>,
    run_settings: &mut RunSettings,
) -> Result<(Vec<BarSeries>, LiveFeed, i64), Diagnostic> {
    let timeframe =
        bundle.strategies.iter().map(|s| s.doc.timeframe.value).min_by_key(|t| t.seconds()).ok_or_else(|| {
            Diagnostic::error(codes::INVALID_VALUE, "the bot has no strategy, so no timeframe to fetch bars for")
        })?;
    if alpaca::market_data::timeframe_param(timeframe).is_none() {
        return Err(Diagnostic::error(codes::INVALID_VALUE, format!("Alpaca has no {timeframe} bars"))
            .help("use 1-59 minutes, 1-23 hours, 1 day, 1 week or 1, 2, 3, 4, 6 or 12 months"));
    }
    let creds = Credentials::from_env().map_err(|e| {
        Diagnostic::error(codes::MISSING_KEY, e.to_string())
            .help("export APCA_API_KEY_ID and APCA_API_SECRET_KEY (market data needs an Alpaca account's keys)")
    })?;
    let url = live_gate::data_url(env, std::env::var(live_gate::DATA_URL_VAR).ok().as_deref())?;
    let client = MarketDataClient::new(&url, creds, RetryPolicy::default())
        .map_err(|e| Diagnostic::error(codes::IO, e.to_string()))?;
    let step = timeframe.seconds();
    let poll = args.poll.unwrap_or((step as f64 / 4.0).clamp(5.0, 60.0));
    if !(poll > 0.0 && poll.is_finite()) {
        return Err(Diagnostic::error(codes::INVALID_VALUE, "--poll must be a number of seconds above 0"));
    }
    let mut feed = LiveFeed::new(client, symbols, timeframe, std::time::Duration::from_secs_f64(poll));
    let window = previous
        .filter(|p| p.feed == Some(settings::FeedKind::Alpaca))
        .and_then(|p| Some((p.history_from?, p.warmup_until?)));
    let now = feed.now();
    let days = args.warmup_days.unwrap_or(if step >= 86_400 { 400 } else { 10 });
    let history_from = window.map_or(now - i64::from(days) * 86_400, |w| w.0);
    let series = feed
        .history(history_from)
        .await
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot fetch the warm-up history from Alpaca: {e}")))?;
    // The warm-up is the history there was at the first start; later bars are traded.
    let last = series.iter().filter_map(|s| s.ts.last().copied()).max().unwrap_or(now - step);
    let warmup_until = window.map_or(last, |w| w.1);
    run_settings.feed = Some(settings::FeedKind::Alpaca);
    run_settings.timeframe = Some(timeframe.to_string());
    run_settings.history_from = Some(history_from);
    run_settings.warmup_until = Some(warmup_until);
    Ok((series, feed, warmup_until))
}

/// The active phase's limits for this run: the unfinished run's phase (`previous`: its
/// settings), else the active one.
fn run_phase(
    journal: &std::path::Path,
    bundle: &crate::dsl::bundle::Bundle,
    bot: &str,
    previous: Option<&RunSettings>,
) -> Result<Option<PhaseRun>, Diagnostic> {
    let kept = previous.and_then(|p| p.phase.as_ref()).map(|p| p.phase.clone());
    let name = match kept {
        Some(k) => Some(k),
        None => phase_store::active_phase(journal, bundle)?,
    };
    let Some(doc) = name.and_then(|n| bundle.phases.iter().find(|p| p.name.value == n)) else { return Ok(None) };
    phase_limits::for_run(journal, bot, bundle, doc).map(Some)
}

/// Starts watching the bot's documents: every reload, with the bundle when it was accepted.
/// `loaded`: the revision the bot was started with (an edit made since is sent at once).
fn watch_documents(
    manifest: &std::path::Path,
    loaded: &str,
    debounce: std::time::Duration,
) -> Result<(Watch, Receiver<ReloadMessage>), Diagnostic> {
    let (reloader, mut first) = Reloader::new(ManifestSource(manifest.to_path_buf()));
    let reloader = Arc::new(reloader);
    let (tx, rx) = std::sync::mpsc::channel();
    if first.new_revision.as_deref() != Some(loaded) {
        first.old_revision = loaded.to_string();
        let built = (first.outcome == Outcome::Accepted).then(|| reloader.current());
        let _ = tx.send((first, built));
    }
    let current = reloader.clone();
    let watch = reload::watch(reloader, debounce, move |record| {
        let built = (record.outcome == Outcome::Accepted).then(|| current.current());
        let _ = tx.send((record.clone(), built));
    })?;
    Ok((watch, rx))
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
    let Some(journal) = loaded.journal(args.journal.as_deref()) else {
        return out.fail(
            &Diagnostic::error(codes::MISSING_KEY, "a running bot needs a journal")
                .help("set `database:` in the manifest or pass `--journal FILE`"),
        );
    };
    // One bot per journal, for the whole run: taken before anything is read from it.
    let lease = match crate::runtime::journal::lease::acquire(
        &journal,
        &bot.name.value,
        "dsl run",
        std::time::Duration::from_secs(3),
    ) {
        Ok(l) => l,
        Err(d) => return out.fail(&d),
    };
    let settings = EngineSettings {
        bot: bot.name.value.clone(),
        run: 0,
        starting_cash: bot.starting_cash.value,
        costs: CostModel::from(&bot.costs),
        fill: bot.fill.value,
    };
    let mut run_settings = RunSettings {
        feed: Some(settings::FeedKind::Replay),
        broker: Some(settings::BrokerKind::Sim),
        ..RunSettings::of(&settings)
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().enable_io().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_USAGE;
        }
    };
    let symbols: Vec<String> = loaded.bundle.symbols();
    // The active phase (an unfinished run keeps the one it started in): its mode gates live
    // trading, its limits become a policy of the run.
    // What the unfinished run (if any) started with: it resumes the same way.
    let previous = match args.fresh {
        true => None,
        false => match Journal::unfinished_settings(&journal, paper::KIND, &bot.name.value) {
            Ok(p) => p,
            Err(d) => return out.fail(&d),
        },
    };
    let phase_run = match run_phase(&journal, &loaded.bundle, &bot.name.value, previous.as_ref()) {
        Ok(p) => p,
        Err(d) => return out.fail(&d),
    };
    if let Some(p) = &phase_run {
        run_settings.phase = Some(p.settings.clone());
    }
    let active = phase_run.as_ref().map(|p| p.phase.clone());
    // A phase of `mode: backtest` allows historical replays only: no broker, no live data.
    if let Some(p) = phase_run.as_ref().filter(|p| p.mode == crate::config::phase::PhaseMode::Backtest)
        && (bot.broker.value == BrokerKind::Alpaca || args.feed == FeedKind::Alpaca)
    {
        return out.fail(
            &Diagnostic::error(
                codes::INVALID_VALUE,
                format!("the active phase `{}` allows historical replays only (mode: backtest)", p.phase),
            )
            .help("run on the replayed bars with the simulated broker, or promote the bot to a paper phase"),
        );
    }
    let max_order_age = args.max_order_age.map_or_else(|| default_order_age(&loaded.bundle), |d| d.as_secs() as i64);
    let connected = runtime.block_on(connect(
        bot,
        &loaded.bundle.phases,
        active.as_deref(),
        &args,
        symbols,
        &settings,
        max_order_age,
    ));
    let (gateway, description) = match connected {
        Ok(c) => c,
        Err(d) => return out.fail(&d),
    };
    if let Some((env, _)) = &description {
        run_settings.broker = Some(settings::BrokerKind::Alpaca);
        run_settings.environment = Some(env.as_str().to_string());
    }
    let (series, live, warmup_until) = if args.feed == FeedKind::Alpaca {
        let symbols = loaded.bundle.symbols();
        let env = description.as_ref().map_or(Environment::Paper, |d| d.0);
        match runtime.block_on(live_feed(env, &loaded.bundle, symbols, &args, previous.as_ref(), &mut run_settings)) {
            Ok((series, feed, warmup_until)) => (series, Some(feed), Some(warmup_until)),
            Err(d) => return out.fail(&d),
        }
    } else {
        let req = DataRequest {
            data: vec![],
            store: None,
            from: args.bars.from,
            to: args.bars.to,
            timezone: args.bars.timezone,
            time_format: args.bars.time_format.clone(),
        };
        match load_for_bundle(&loaded, &req) {
            // Bars before `--from` warm the indicators up without trading.
            Ok(m) => (m.series, None, m.trade_from.map(|f| f - 1)),
            Err(d) => return out.fail(&d),
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let bot_name = bot.name.value.clone();
    let mut cfg = PaperConfig {
        bundle: bundle.clone(),
        series,
        settings,
        journal: journal.clone(),
        run_settings,
        speed: match args.speed {
            Speed::Times(v) if args.feed == FeedKind::Replay => Some(v),
            _ => None,
        },
        fresh: args.fresh,
        stop: stop.clone(),
        gateway,
        reloads: None,
        live,
        warmup_until,
        // Every gate passed and the account matched (else `connect` refused): journaled.
        phase_policy: phase_run.as_ref().and_then(|p| p.policy.clone()),
        live_account: match &description {
            Some((Environment::Live, _)) => args.confirm_live.clone(),
            _ => None,
        },
        lease: Some(lease),
    };
    // Kept alive for the whole run: dropping it stops watching.
    let mut _watch = None;
    if args.watch {
        match watch_documents(&args.path, &bundle.revision, std::time::Duration::from_millis(args.debounce)) {
            Ok((w, rx)) => {
                _watch = Some(w);
                cfg.reloads = Some(rx);
            }
            Err(d) => return out.fail(&d),
        }
    }
    let broker = match &description {
        Some((env, url)) => format!("Alpaca {} account at {url}", env.as_str()),
        None => "simulated broker".into(),
    };
    let bars = match args.feed {
        FeedKind::Replay => "replayed bars".to_string(),
        FeedKind::Alpaca => {
            format!("Alpaca market data, polled every {:?}", cfg.live.as_ref().map(|l| l.poll).unwrap_or_default())
        }
    };
    let span = tracing::info_span!("bot", bot = %bot_name, run = tracing::field::Empty);
    span.in_scope(|| {
        tracing::info!("trading `{}` on {bars} ({broker}); journal {}", cfg.settings.bot, journal.display());
        tracing::info!("press Ctrl-C to stop; starting again resumes where it stopped");
        if args.watch {
            tracing::info!("watching the bot's documents: a valid edit takes effect at the next bar");
        }
    });
    let result = runtime.block_on(async move {
        let watcher = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                watcher.store(true, Ordering::SeqCst);
            }
        });
        tracing::Instrument::instrument(paper::run(cfg), span).await
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
