//! `dsl run`'s typed plan: from what the operator asked for ([`RunRequest`], the command's
//! parsed arguments) to a bot ready to trade ([`RunPlan`]), through every check and refusal
//! a start makes, in the order they are made:
//!
//! 1. the documents load and compile ([`LoadedBot`]; their warnings go to the operator);
//! 2. the manifest is a bot with a journal, whose lease this process takes (one bot per
//!    journal) before anything is read from it;
//! 3. the unfinished run's settings (it resumes the way it started) and the active phase (its
//!    mode allows or refuses a broker and live data; its limits become a policy of the run);
//! 4. the broker: the simulated one, or Alpaca behind the live gates (the account number
//!    confirmed against the account the keys belong to);
//! 5. the feed: the stored bars replayed, or Alpaca's market data after a warm-up history;
//! 6. the watch of the documents (`--watch`).
//!
//! Each step ends the start with its own diagnostic; nothing is traded before all passed.
//! [`RunPlan::start`] then runs the bot ([`super::paper::run`]) until its feed ends or Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use crate::config::manifest::{BrokerKind, TradingMode};
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::costs::CostModel;
use crate::engine::market::BarSeries;
use crate::engine::pipeline::EngineSettings;
use crate::runtime::bot::metrics::{BotMetrics, MetricsServer};
use crate::runtime::bot::paper::{self, PaperConfig, PaperOutcome, ReloadMessage};
use crate::runtime::broker::alpaca::{self, Credentials, Environment, MarketDataClient, RetryPolicy, TradingClient};
use crate::runtime::broker::gateway::Gateway;
use crate::runtime::broker::live_feed::LiveFeed;
use crate::runtime::broker::live_gate::{self, GateDecision};
use crate::runtime::broker::switchover;
use crate::runtime::journal::Journal;
use crate::runtime::journal::settings::{self, RunSettings};
use crate::runtime::library::loader::{Loaded, load_bundle};
use crate::runtime::library::reload::{self, ManifestSource, Outcome, Reloader, Watch};
use crate::runtime::library::source::{DataRequest, load_for_bundle};
use crate::runtime::phases::phase_limits::{self, PhaseRun};
use crate::runtime::phases::phase_store;

/// Where a running bot's bars come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedRequest {
    /// The bot's stored bars, replayed at `speed` times real time (`None`: as fast as
    /// possible).
    Replay {
        /// Times real time: the gap between two bar times is slept divided by it.
        speed: Option<f64>,
    },
    /// Alpaca's Market Data API: a warm-up history, then each new bar once complete.
    Alpaca {
        /// Seconds between polls for new bars (default: a quarter of the timeframe, 5 s to
        /// 60 s).
        poll: Option<f64>,
        /// Days of warm-up history (default: 400 for daily bars and longer, 10 intraday).
        warmup_days: Option<u32>,
    },
}

/// What the operator asked `dsl run` for, parsed and typed (the CLI builds it from its
/// arguments; nothing in it has been checked against the documents or the journal yet).
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The bot manifest (`kind: bot`).
    pub manifest: PathBuf,
    /// The journal (default: the manifest's `database`).
    pub journal: Option<PathBuf>,
    /// The replayed bars' period and CSV reading options.
    pub bars: DataRequest,
    /// The feed.
    pub feed: FeedRequest,
    /// Abandon the bot's unfinished run instead of resuming it.
    pub fresh: bool,
    /// Hot reload (`--watch`), with the time changes take to settle.
    pub watch: Option<std::time::Duration>,
    /// The Alpaca account number confirming live trading (one of the live gates).
    pub confirm_live: Option<String>,
    /// The staleness window of orders for an outside broker (default: one bar of the
    /// shortest timeframe, four days for daily bars).
    pub max_order_age: Option<std::time::Duration>,
    /// A switchover test ([`crate::runtime::broker::switchover`]): check the four live gates
    /// for real, journal the verdict, then trade on the paper account.
    pub switchover: bool,
    /// Serve the bot's metrics for Prometheus at this address
    /// ([`crate::runtime::bot::metrics`]); with `true`, an address that is not loopback is
    /// allowed.
    pub metrics: Option<(std::net::SocketAddr, bool)>,
    /// Commission (fraction of notional) instead of the manifest's, for a new run.
    pub commission: Option<f64>,
    /// Slippage (fraction of price, each way) instead of the manifest's, for a new run.
    pub slippage: Option<f64>,
}

/// A bot whose documents loaded: step 1 of a start.
pub struct LoadedBot {
    request: RunRequest,
    loaded: Loaded,
}

impl LoadedBot {
    /// Loads and compiles the request's documents.
    ///
    /// # Errors
    /// Every diagnostic of documents that do not load.
    pub fn load(request: RunRequest) -> Result<Self, Vec<Diagnostic>> {
        let loaded = load_bundle(&request.manifest)?;
        Ok(LoadedBot { request, loaded })
    }

    /// The documents' warnings.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.loaded.warnings
    }

    /// Makes every other check of a start (see the module doc) and prepares the bot.
    ///
    /// # Errors
    /// The first check that refuses the start: not a bot, no journal, the journal held by
    /// another process, a phase that allows no broker or live data, a live gate, the
    /// broker's account, the feed, the watch.
    pub fn prepare(self) -> Result<RunPlan, Diagnostic> {
        let LoadedBot { request: req, loaded } = self;
        let bundle = Arc::new(loaded.bundle.clone());
        let Some(bot) = bundle.bot.as_ref() else {
            return Err(Diagnostic::error(codes::RUNTIME_REFUSED, "`dsl run` runs a bot manifest (`kind: bot`)"));
        };
        let Some(journal) = loaded.journal(req.journal.as_deref()) else {
            return Err(Diagnostic::error(codes::RUNTIME_REFUSED, "a running bot needs a journal")
                .help("set `database:` in the manifest or pass `--journal FILE`"));
        };
        // One bot per journal, for the whole run: taken before anything is read from it.
        let lease = crate::runtime::journal::lease::acquire(
            &journal,
            &bot.name.value,
            "dsl run",
            std::time::Duration::from_secs(3),
        )?;
        let mut costs = CostModel::from(&bot.costs);
        costs.commission = req.commission.unwrap_or(costs.commission);
        costs.slippage = req.slippage.unwrap_or(costs.slippage);
        let settings = EngineSettings {
            bot: bot.name.value.clone(),
            run: 0,
            starting_cash: bot.starting_cash.value,
            costs,
            fill: bot.fill.value,
        };
        let mut run_settings = RunSettings {
            feed: Some(settings::FeedKind::Replay),
            broker: Some(settings::BrokerKind::Sim),
            ..RunSettings::of(&settings)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot start the async runtime: {e}")))?;
        let symbols: Vec<String> = loaded.bundle.symbols();
        // What the unfinished run (if any) started with: it resumes the same way.
        let previous = match req.fresh {
            true => None,
            false => Journal::unfinished_settings(&journal, paper::KIND, &bot.name.value)?,
        };
        // The active phase (an unfinished run keeps the one it started in): its mode gates
        // live trading, its limits become a policy of the run.
        same_switchover(previous.as_ref(), req.switchover, &bot.name.value)?;
        same_costs(previous.as_ref(), &settings.costs, &bot.name.value)?;
        run_settings.switchover = req.switchover;
        let phase_run = run_phase(&journal, &loaded.bundle, &bot.name.value, previous.as_ref())?;
        if let Some(p) = &phase_run {
            run_settings.phase = Some(p.settings.clone());
        }
        let active = phase_run.as_ref().map(|p| p.phase.clone());
        replays_only(phase_run.as_ref(), bot.broker.value == BrokerKind::Alpaca, &req.feed)?;
        let max_order_age = req.max_order_age.map_or_else(|| default_order_age(&loaded.bundle), |d| d.as_secs() as i64);
        let (gateway, description) = runtime.block_on(connect(
            bot,
            &loaded.bundle.phases,
            Gates {
                active_phase: active.as_deref(),
                confirm_live: req.confirm_live.as_deref(),
                switchover: req.switchover.then_some(journal.as_path()),
            },
            symbols,
            &settings,
            max_order_age,
        ))?;
        if let Some((env, _)) = &description {
            run_settings.broker = Some(settings::BrokerKind::Alpaca);
            run_settings.environment = Some(env.as_str().to_string());
        }
        let env = description.as_ref().map_or(Environment::Paper, |d| d.0);
        let (series, live, warmup_until) = feed(&runtime, &req, &loaded, env, previous.as_ref(), &mut run_settings)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut config = PaperConfig {
            bundle: bundle.clone(),
            series,
            settings,
            journal: journal.clone(),
            run_settings,
            speed: match req.feed {
                FeedRequest::Replay { speed } => speed,
                FeedRequest::Alpaca { .. } => None,
            },
            fresh: req.fresh,
            stop: stop.clone(),
            gateway,
            reloads: None,
            live,
            warmup_until,
            phase_policy: phase_run.as_ref().and_then(|p| p.policy.clone()),
            // Every gate passed and the account matched (else `connect` refused): journaled.
            live_account: match &description {
                Some((Environment::Live, _)) => req.confirm_live.clone(),
                _ => None,
            },
            lease: Some(lease),
            metrics: None,
        };
        // Kept alive for the whole run: dropping it stops watching.
        let mut watch = None;
        if let Some(debounce) = req.watch {
            let (w, rx) = watch_documents(&req.manifest, &bundle.revision, debounce)?;
            watch = Some(w);
            config.reloads = Some(rx);
        }
        let (bars, broker) = describe(description.as_ref(), config.live.as_ref());
        // Bound last, once every check passed: a port in use stops the start here.
        let metrics = match req.metrics {
            Some((addr, allow_remote)) => {
                let (m, server) = serve_metrics(&config.settings.bot, addr, allow_remote)?;
                config.metrics = Some(m);
                Some(server)
            }
            None => None,
        };
        Ok(RunPlan { config, runtime, stop, watch, journal, bars, broker, metrics })
    }
}

/// A bot that passed every check of a start, ready to trade.
pub struct RunPlan {
    config: PaperConfig,
    runtime: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    watch: Option<Watch>,
    journal: PathBuf,
    bars: String,
    broker: String,
    metrics: Option<MetricsServer>,
}

impl RunPlan {
    /// The bot's name.
    pub fn bot(&self) -> &str {
        &self.config.settings.bot
    }

    /// Runs the bot until its feed ends or Ctrl-C (then the run stays resumable); logs what
    /// it trades on first.
    ///
    /// # Errors
    /// What stopped the bot (see [`super::paper::run`]).
    pub fn start(self) -> Result<PaperOutcome, Diagnostic> {
        // `watch` lives until the run ends: dropping it stops watching.
        let RunPlan { config, runtime, stop, watch, journal, bars, broker, metrics } = self;
        let span = tracing::info_span!("bot", bot = %config.settings.bot, run = tracing::field::Empty);
        span.in_scope(|| {
            tracing::info!("trading `{}` on {bars} ({broker}); journal {}", config.settings.bot, journal.display());
            tracing::info!("press Ctrl-C (or send SIGTERM) to stop; starting again resumes where it stopped");
            if let Some(m) = &metrics {
                tracing::info!("metrics for Prometheus at http://{}/metrics", m.addr());
            }
            if watch.is_some() {
                tracing::info!("watching the bot's documents: a valid edit takes effect at the next bar");
            }
        });
        runtime.block_on(async move {
            let watcher = stop.clone();
            tokio::spawn(async move {
                // Ctrl-C, or SIGTERM from a service manager: finish the timestamp, commit, stop.
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    match signal(SignalKind::terminate()) {
                        Ok(mut term) => {
                            tokio::select! {
                                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                                _ = term.recv() => {}
                            }
                        }
                        Err(_) => {
                            if tokio::signal::ctrl_c().await.is_err() {
                                return;
                            }
                        }
                    }
                }
                #[cfg(not(unix))]
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                watcher.store(true, Ordering::SeqCst);
            });
            tracing::Instrument::instrument(paper::run(config), span).await
        })
    }
}

/// What the bot trades on and where, as the start's log line says it.
fn describe(broker: Option<&(Environment, String)>, live: Option<&LiveFeed>) -> (String, String) {
    let broker = match broker {
        Some((env, url)) => format!("Alpaca {} account at {url}", env.as_str()),
        None => "simulated broker".into(),
    };
    let bars = match live {
        None => "replayed bars".to_string(),
        Some(l) => format!("Alpaca market data, polled every {:?}", l.poll),
    };
    (bars, broker)
}

/// A phase of `mode: backtest` allows historical replays only: no broker, no live data.
fn replays_only(phase: Option<&PhaseRun>, outside_broker: bool, feed: &FeedRequest) -> Result<(), Diagnostic> {
    let live_feed = matches!(feed, FeedRequest::Alpaca { .. });
    match phase.filter(|p| p.mode == crate::config::phase::PhaseMode::Backtest) {
        Some(p) if outside_broker || live_feed => Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("the active phase `{}` allows historical replays only (mode: backtest)", p.phase),
        )
        .help("run on the replayed bars with the simulated broker, or promote the bot to a paper phase")),
        _ => Ok(()),
    }
}

/// A resumed run goes on the way it started: a switchover test (live configuration, paper
/// account) only with `--switchover`, an ordinary run only without.
fn same_switchover(previous: Option<&RunSettings>, switchover: bool, bot: &str) -> Result<(), Diagnostic> {
    let Some(p) = previous.filter(|p| p.switchover != switchover) else { return Ok(()) };
    let (was, now) = match p.switchover {
        true => ("a switchover test (live configuration, paper account)", "without --switchover"),
        false => ("an ordinary run", "with --switchover"),
    };
    Err(Diagnostic::error(
        codes::RUNTIME_REFUSED,
        format!("the unfinished run of bot `{bot}` is {was}, and this start asks {now}"),
    )
    .help("start it the way it was started to resume it, or start over with `--fresh`"))
}

/// A resumed run keeps the costs it started with (`--commission` and `--slippage` change a
/// new run only).
fn same_costs(previous: Option<&RunSettings>, costs: &CostModel, bot: &str) -> Result<(), Diagnostic> {
    let Some(p) = previous else { return Ok(()) };
    for (name, was, now) in [("commission", p.commission, costs.commission), ("slippage", p.slippage, costs.slippage)] {
        if (was - now).abs() > 1e-15 {
            return Err(Diagnostic::error(
                codes::RUNTIME_REFUSED,
                format!("the unfinished run of bot `{bot}` was started with {name} {was}, and this start asks {now}"),
            )
            .help("resume it with the costs it started with, or start over with `--fresh`"));
        }
    }
    Ok(())
}

/// The bot's metrics and their endpoint at `addr` (`--metrics`).
fn serve_metrics(
    bot: &str,
    addr: std::net::SocketAddr,
    allow_remote: bool,
) -> Result<(BotMetrics, MetricsServer), Diagnostic> {
    let m = BotMetrics::new(bot);
    let server = MetricsServer::start(addr, allow_remote, m.clone())?;
    Ok((m, server))
}

/// The bars a bot starts with, its live feed (if any) and the end of its warm-up.
type Bars = (Vec<BarSeries>, Option<LiveFeed>, Option<i64>);

/// Step 5: the bars (see the module doc), the live feed if any, and the end of the warm-up
/// (UTC seconds; bars up to it only warm the indicators up).
fn feed(
    runtime: &tokio::runtime::Runtime,
    req: &RunRequest,
    loaded: &Loaded,
    env: Environment,
    previous: Option<&RunSettings>,
    run_settings: &mut RunSettings,
) -> Result<Bars, Diagnostic> {
    match req.feed {
        FeedRequest::Alpaca { poll, warmup_days } => {
            let symbols = loaded.bundle.symbols();
            let (series, feed, warmup_until) =
                runtime.block_on(live_feed(env, &loaded.bundle, symbols, poll, warmup_days, previous, run_settings))?;
            Ok((series, Some(feed), Some(warmup_until)))
        }
        FeedRequest::Replay { .. } => {
            let m = load_for_bundle(loaded, &req.bars)?;
            // Bars before `--from` warm the indicators up without trading. Recorded, with the
            // CSV time options, so that `dsl report divergence` reads the same bars.
            let warmup_until = m.trade_from.map(|f| f - 1);
            run_settings.warmup_until = warmup_until;
            run_settings.csv_time_format = req.bars.time_format.clone();
            run_settings.csv_timezone = req.bars.timezone.map(|z| z.name().to_string());
            Ok((m.series, None, warmup_until))
        }
    }
}

/// Writes a line about money (a refused live start, the live banner) to stderr whatever the
/// log level; a closed stderr is ignored, never a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The default staleness window of a bot's orders: one bar of its strategies' shortest
/// timeframe, or four days for daily and longer bars (seconds).
fn default_order_age(bundle: &crate::dsl::bundle::Bundle) -> i64 {
    let step = bundle.strategies.iter().map(|s| s.doc.timeframe.value.seconds()).min().unwrap_or(86_400);
    if step >= 86_400 { 4 * 86_400 } else { step }
}

/// What the live gates are checked with: the active phase, the confirmed account number and,
/// for a switchover test, the journal its verdict goes to.
struct Gates<'a> {
    active_phase: Option<&'a str>,
    confirm_live: Option<&'a str>,
    switchover: Option<&'a std::path::Path>,
}

/// The outside broker of a bot with `broker: alpaca`, after the live gates: the gateway and
/// (environment, trading URL). `None` for the simulated broker. A switchover test checks the
/// gates for real, prints and journals the verdict, and connects to the paper account.
async fn connect(
    bot: &crate::config::manifest::BotDoc,
    phases: &[crate::config::phase::PhaseDoc],
    gates: Gates<'_>,
    symbols: Vec<String>,
    settings: &EngineSettings,
    max_order_age: i64,
) -> Result<(Option<Gateway>, Option<(Environment, String)>), Diagnostic> {
    let Gates { active_phase, confirm_live, switchover } = gates;
    let armed = std::env::var(live_gate::ARM_VAR).ok();
    if switchover.is_some() && bot.broker.value == BrokerKind::Sim {
        return Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            "a switchover test trades the live configuration on the Alpaca paper account, but the bot's broker is `sim`",
        )
        .help("set `broker: alpaca` (and `mode: live`) in the manifest"));
    }
    if let Some(journal) = switchover {
        let now = chrono::Utc::now().timestamp();
        let verdict = switchover::check(bot, phases, active_phase, armed.as_deref(), confirm_live, now).await;
        say(&verdict.render());
        tracing::info!(passed = verdict.passed, "switchover test: verdict journaled");
        crate::runtime::journal::switchover_log::record(journal, &verdict.bot, &verdict.record())?;
        let creds = switchover::paper_credentials()?;
        return open_gateway(Environment::Paper, creds, None, symbols, settings, max_order_age).await;
    }
    if bot.broker.value == BrokerKind::Sim {
        if bot.mode.value == TradingMode::Live || confirm_live.is_some() {
            say(
                "warning: live trading refused: the bot's broker is `sim` (set `broker: alpaca`); simulated broker used",
            );
        }
        return Ok((None, None));
    }
    let decision = live_gate::decide(bot, phases, active_phase, armed.as_deref(), confirm_live);
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
        Diagnostic::error(codes::RUNTIME_REFUSED, e.to_string())
            .help("export APCA_API_KEY_ID and APCA_API_SECRET_KEY (the paper account's keys for paper trading)")
    })?;
    let live = match &decision {
        GateDecision::LiveIfAccountMatches { account } => Some((bot.name.value.as_str(), account.as_str())),
        GateDecision::Paper { .. } => None,
    };
    open_gateway(env, creds, live, symbols, settings, max_order_age).await
}

/// The gateway of an Alpaca account in `env` with `creds`. For live (`live`: the bot and the
/// confirmed account number), the account the live API reports must match before anything
/// else is sent; then the banner is printed.
async fn open_gateway(
    env: Environment,
    creds: Credentials,
    live: Option<(&str, &str)>,
    symbols: Vec<String>,
    settings: &EngineSettings,
    max_order_age: i64,
) -> Result<(Option<Gateway>, Option<(Environment, String)>), Diagnostic> {
    let override_url = std::env::var(live_gate::TRADING_URL_VAR).ok();
    let url = live_gate::trading_url(env, override_url.as_deref())?;
    let client = TradingClient::new(&url, creds.clone(), RetryPolicy::default())
        .map_err(|e| Diagnostic::error(codes::IO, e.to_string()))?;
    if let Some((bot, account)) = live {
        let reported = client.account().await.map_err(|e| {
            Diagnostic::error(codes::BROKER, format!("cannot verify the live account: {e}; nothing was traded"))
        })?;
        live_gate::confirm_account(account, &reported.account_number)?;
        say(&live_gate::banner(bot, account));
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
    poll: Option<f64>,
    warmup_days: Option<u32>,
    previous: Option<&RunSettings>,
    run_settings: &mut RunSettings,
) -> Result<(Vec<BarSeries>, LiveFeed, i64), Diagnostic> {
    let timeframe =
        bundle.strategies.iter().map(|s| s.doc.timeframe.value).min_by_key(|t| t.seconds()).ok_or_else(|| {
            Diagnostic::error(codes::RUNTIME_REFUSED, "the bot has no strategy, so no timeframe to fetch bars for")
        })?;
    if alpaca::market_data::timeframe_param(timeframe).is_none() {
        return Err(Diagnostic::error(codes::RUNTIME_REFUSED, format!("Alpaca has no {timeframe} bars"))
            .help("use 1-59 minutes, 1-23 hours, 1 day, 1 week or 1, 2, 3, 4, 6 or 12 months"));
    }
    let creds = Credentials::from_env().map_err(|e| {
        Diagnostic::error(codes::RUNTIME_REFUSED, e.to_string())
            .help("export APCA_API_KEY_ID and APCA_API_SECRET_KEY (market data needs an Alpaca account's keys)")
    })?;
    let url = live_gate::data_url(env, std::env::var(live_gate::DATA_URL_VAR).ok().as_deref())?;
    let client = MarketDataClient::new(&url, creds, RetryPolicy::default())
        .map_err(|e| Diagnostic::error(codes::IO, e.to_string()))?;
    let step = timeframe.seconds();
    let poll = poll.unwrap_or((step as f64 / 4.0).clamp(5.0, 60.0));
    if !(poll > 0.0 && poll.is_finite()) {
        return Err(Diagnostic::error(codes::INVALID_VALUE, "--poll must be a number of seconds above 0"));
    }
    let mut feed = LiveFeed::new(client, symbols, timeframe, std::time::Duration::from_secs_f64(poll));
    let window = previous
        .filter(|p| p.feed == Some(settings::FeedKind::Alpaca))
        .and_then(|p| Some((p.history_from?, p.warmup_until?)));
    let now = feed.now();
    let days = warmup_days.unwrap_or(if step >= 86_400 { 400 } else { 10 });
    let history_from = window.map_or(now - i64::from(days) * 86_400, |w| w.0);
    let series = feed
        .history(history_from)
        .await
        .map_err(|e| Diagnostic::error(codes::BROKER, format!("cannot fetch the warm-up history from Alpaca: {e}")))?;
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
