//! The paper-trading loop (`dsl run`): stored bars replayed into the engine with the simulated
//! broker, committed to the journal one timestamp at a time, resumable after a crash.
//!
//! **Feed.** The bot's bars, merged by time, at `speed` times real time (the gap between two
//! bar times divided by `speed`, slept with tokio) or as fast as possible. Each timestamp's
//! bars go through [`Engine::on_bar`], the streaming path a live feed uses.
//!
//! **Durability.** After each timestamp the account is valued and a [`crate::runtime::journal::Checkpoint`] commits
//! that timestamp's journal rows together with the account (`run_status`); when the replay
//! outruns the disk, up to 64 checkpoints share one commit, and orders for a broker are always
//! committed before they are sent. A run killed at any point, even with SIGKILL, loses at most
//! the uncommitted timestamps, which a restart replays.
//!
//! **Recovery.** On start, an unfinished run of the bot (status `running`) is resumed: the bars
//! up to its last checkpoint are replayed into a fresh engine with the journal muted (the rows
//! exist already), applying a person's halts and resumes at the bar times they took effect.
//! The engine and the simulated broker are deterministic, so positions, cash, working orders,
//! `client_order_id` sequences, daily counters and breaker states come back exactly as they
//! were; then the run goes on from the next timestamp. The replay runs the bundles the run
//! ran under, swapped in at the bar times they were (the journal keeps every revision's
//! texts). Documents edited while the bot was down are swapped in at the first new bar when
//! the bot watches them (`--watch`); otherwise the run is not resumed.
//!
//! **Hot reload.** With `reloads`, each reload of the watched documents is applied between
//! timestamps, before the bars of the next one: a valid bundle is swapped into the engine
//! ([`Engine::swap_bundle`]: positions stay managed, a removed strategy only exits), an
//! invalid one changes nothing. Both are journaled (`reloads`, see [`crate::runtime::journal::reload_log`]) in
//! the transaction of that timestamp, and every order and policy decision records the
//! revision it was made under.
//!
//! **Controls.** The bot's trading state is the bot's, not the run's: a new run (also with
//! `--fresh`) starts in the state the control records hold, so a breaker's HALT set with
//! `reset: manual` outlives its run. Between timestamps the loop reads the requests a person
//! (`dsl halt`, `dsl resume`) or a phase's demotion rule made; each is applied exactly once,
//! at the next bar time, journaled, and marked applied in that timestamp's transaction. A
//! resume re-bases the drawdown peak to the equity at that moment (see
//! [`Engine::resume`]). Orders a `require_approval` rule parks wait in the bot's approval queue
//! (`dsl approvals`): a decision is applied at the next bar (and its bar time recorded, so a
//! restart replays it there), an unanswered request is denied when its window ends on the
//! bot's clock, and one still waiting when the feed ends is refused. State changes the engine
//! makes (a breaker) are recorded there too, in the transaction of the timestamp that caused
//! them, so a restarted bot and `dsl status` see exactly what was committed.
//!
//! **Failing closed.** The bot holds its journal's lease ([`crate::runtime::journal::lease`]) for its whole
//! life. After each timestamp it checks that the journal's writer has not failed (a full
//! disk, a lock held past the busy timeout), that the journal file is still the one it opened
//! (not deleted or replaced) and that it still holds its lease: otherwise it stops at once,
//! the run stays resumable at its last committed bar, and [`run`] returns the cause. The
//! phase's demotion rules that cannot be evaluated halt the bot.
//!
//! **Shape.** The bars go through the one event loop every driver runs
//! ([`crate::engine::event_loop`], the backtest's too). [`run`] sets the bot up (journal, lease,
//! the state to resume, the broker) and ends the run; what the bot does around each timestamp
//! is its driver's (`paper_driver`), in the order of the recovery contract: a restart
//! restores and dispatches before it waits for a bar; between two bars, requests, reloads, the
//! daily demotion check and the broker's news, in that order; after a bar, the checkpoint, then
//! the write-ahead sync, then the dispatch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;

use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::engine::curve::EquityTracker;
use crate::engine::event_loop::{self, BarPath, Ended, SeriesFeed};
use crate::engine::market::BarSeries;
use crate::engine::metrics::compute;
use crate::engine::pipeline::{Engine, EngineSettings, RunStats};
use crate::engine::trading_state::TradingState;

use crate::runtime::broker::gateway::Gateway;
use crate::runtime::broker::live_feed::LiveFeed;
use crate::runtime::journal::broker_log;
use crate::runtime::journal::control::ControlStore;
use crate::runtime::journal::reload_log;
use crate::runtime::journal::{Journal, RunInfo};
use crate::runtime::library::reload::ReloadRecord;

use super::paper_driver::{PaperDriver, bundle_of, checkpoint, context, limited};

/// The journal's run kind of a paper run.
pub const KIND: &str = "paper";

/// What a paper run needs.
pub struct PaperConfig {
    /// The compiled bot.
    pub bundle: Arc<Bundle>,
    /// Bars per symbol (the symbols the engine trades, in this order).
    pub series: Vec<BarSeries>,
    /// Engine settings (bot name, cash, costs, fill timing).
    pub settings: EngineSettings,
    /// The journal database (control records included).
    pub journal: PathBuf,
    /// Settings as JSON, for the run row.
    pub run_settings: crate::runtime::journal::settings::RunSettings,
    /// Replay speed: `Some(n)` sleeps (gap between bar times) / n; `None` runs flat out.
    pub speed: Option<f64>,
    /// Abandon an unfinished run instead of resuming it.
    pub fresh: bool,
    /// Set to stop after the current timestamp (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// An outside broker (Alpaca or a mock of it) instead of the simulated one.
    pub gateway: Option<Gateway>,
    /// Hot reload (`--watch`): each reload the watcher made, with the bundle it swapped in
    /// when valid. `None`: the documents stay as loaded.
    pub reloads: Option<Receiver<ReloadMessage>>,
    /// A live feed: when the bars in `series` run out, the loop waits for the next ones
    /// from it (and ends only when stopped).
    pub live: Option<LiveFeed>,
    /// Bars up to this time (UTC seconds) only warm the indicators up: no rule runs on
    /// them (a live feed's history).
    pub warmup_until: Option<i64>,
    /// The active phase's limits, added to every bundle the run uses
    /// ([`crate::runtime::phases::phase_limits`]).
    pub phase_policy: Option<crate::dsl::bundle::CompiledPolicy>,
    /// The live account number when every live gate passed: the start is journaled as a
    /// `live_armed` event (each start, at its first new bar).
    pub live_account: Option<String>,
    /// The journal's lease, held for the run's life (`None`: taken by [`run`] itself).
    pub lease: Option<crate::runtime::journal::lease::Lease>,
    /// The metrics a `--metrics` endpoint serves, updated at every heartbeat and event.
    pub metrics: Option<super::metrics::BotMetrics>,
}

/// A reload from the file watcher and, when it was accepted, the bundle it built.
pub type ReloadMessage = (ReloadRecord, Option<Arc<Bundle>>);

/// How a paper run ended.
#[derive(Debug, Clone)]
pub struct PaperOutcome {
    /// The journal run.
    pub run_id: i64,
    /// The checkpoint a restart resumed from, if it did.
    pub resumed_from: Option<i64>,
    /// Timestamps processed in this process after the resume point.
    pub timestamps: usize,
    /// Last bar time processed (UTC seconds).
    pub last_ts: Option<i64>,
    /// True when the feed ran out (the run is completed); false when stopped (resumable).
    pub completed: bool,
    /// Equity at the end (currency).
    pub equity: f64,
    /// Order and denial counts since the run began (the replayed part included).
    pub stats: RunStats,
}

/// Runs (or resumes) the bot's paper run until the feed ends or `stop` is set.
///
/// # Errors
/// When the journal or the control records cannot be opened or written (trading stops then:
/// a state that cannot be made durable must not be relied on), or when the unfinished run was
/// started with other documents.
pub async fn run(mut cfg: PaperConfig) -> Result<PaperOutcome, Diagnostic> {
    // Alerts: refused before anything starts when a variable they read is missing.
    let alerts = match cfg.bundle.bot.as_ref().and_then(|b| b.alerts.as_ref()) {
        Some(doc) => Some(super::alerts::Alerter::start(doc, &cfg.settings.bot)?),
        None => None,
    };
    let bot = cfg.settings.bot.clone();
    let lease = match cfg.lease.take() {
        Some(l) => l,
        None => {
            crate::runtime::journal::lease::acquire(&cfg.journal, &bot, "dsl run", std::time::Duration::from_secs(3))?
        }
    };
    if cfg.fresh {
        Journal::abandon(&cfg.journal, KIND, &bot)?;
    }
    // Opened first: it creates the control tables, which the journal then writes to.
    let control = ControlStore::open(&cfg.journal, &bot)?;
    let (mut journal, resumed) = match Journal::resume(&cfg.journal, KIND, &bot)? {
        Some((j, r)) => {
            if r.in_force != cfg.bundle.revision && cfg.reloads.is_none() {
                return Err(Diagnostic::error(
                    codes::RUNTIME_REFUSED,
                    format!(
                        "run {} of bot `{bot}` was running bundle {}, but the documents now give {}",
                        r.run_id, r.in_force, cfg.bundle.revision
                    ),
                )
                .help(
                    "restore the documents it ran with to resume it, resume with `--watch` to swap the edited \
                     documents in at the next bar, or start over with `--fresh`",
                ));
            }
            (j, Some(r))
        }
        None => {
            let info = RunInfo {
                kind: KIND.into(),
                bot: bot.clone(),
                bundle_revision: cfg.bundle.revision.clone(),
                settings: cfg.run_settings.to_json(),
                symbols: cfg.series.iter().map(|s| s.symbol.clone()).collect(),
            };
            let mut j = Journal::begin(&cfg.journal, &info)?;
            j.store_bundle(cfg.bundle.clone());
            j.commit();
            (j, None)
        }
    };
    // The bundles the unfinished run ran under, swapped in again at the same bar times.
    let start_bundle = match &resumed {
        Some(r) => bundle_of(&cfg, &r.revision)?,
        None => limited(&cfg, cfg.bundle.clone()),
    };
    let mut replayed_reloads = match &resumed {
        Some(r) => reload_log::accepted(&cfg.journal, r.run_id, r.last_checkpoint.unwrap_or(i64::MIN))?,
        None => Vec::new(),
    };
    replayed_reloads.reverse();
    // Documents edited while the bot was down: swapped in at the first new bar (`--watch`).
    let restart_reload = resumed.as_ref().is_some_and(|r| r.in_force != cfg.bundle.revision);
    journal.set_revision(&start_bundle.revision);
    if let Some(m) = &cfg.metrics {
        journal.set_observer(Box::new(m.tap()));
    }
    let resume_at = resumed.as_ref().and_then(|r| r.last_checkpoint);
    let mut manual = resumed.as_ref().map(|r| r.manual.clone()).unwrap_or_default();
    manual.reverse();
    journal.set_muted(resume_at.is_some());

    tracing::Span::current().record("run", journal.run_id());
    let symbols: Vec<String> = cfg.series.iter().map(|s| s.symbol.clone()).collect();
    // The run's orders carry the journal run in their ids (a resumed run keeps its own).
    cfg.settings.run = journal.run_id();
    let mut engine = Engine::new(start_bundle.clone(), &symbols, cfg.settings.clone());
    // A new run starts in the bot's state (a resumed one rebuilds it by replaying).
    let mut carried = None;
    if resumed.is_none() {
        let state = control.state()?;
        if state.mode != TradingState::Active {
            carried = Some(state);
        }
    }
    // `require_approval` orders wait in the bot's approval queue (`dsl approvals`).
    let mut desk = ControlStore::open(&cfg.journal, &bot)?;
    desk.replaying_until(resume_at);
    engine.set_approval_desk(Box::new(desk));
    let revision = start_bundle.revision.clone();
    // The bundle in force (its phases' demotion rules are checked daily).
    let current = start_bundle.clone();
    let demotion_watch = crate::runtime::phases::phase_store::DemotionWatch::new(&cfg.journal);
    journal.keep_evidence(
        cfg.settings.starting_cash,
        cfg.run_settings.environment.as_deref() == Some("live"),
        resumed.is_some(),
    )?;
    let mut gateway = cfg.gateway.take();
    // Broker outcomes the unfinished run applied, replayed at their bar times.
    let (mut records, mut applied, mut next_seq) = (Vec::new(), Vec::new(), 0);
    if let Some(g) = gateway.as_mut() {
        g.set_symbols(symbols.clone());
        engine.use_external_broker();
        if let Some(r) = &resumed {
            (records, applied, next_seq) = broker_log::load(&cfg.journal, r.run_id, resume_at.unwrap_or(i64::MIN))?;
            applied.reverse();
        }
    }
    let mut eq = EquityTracker::new(engine.starting_cash());
    let mut feed = SeriesFeed::new(std::mem::take(&mut cfg.series), BarPath::Streaming);
    let live = cfg.live.take();
    let current_for_reports = current.clone();

    // Reports are due by the close of a timestamp's bars: their start plus the bars' length.
    let report_bar_secs = current_for_reports.strategies.first().map_or(86_400, |s| s.doc.timeframe.value.seconds());
    let mut driver = PaperDriver {
        journal,
        control,
        lease,
        gateway,
        live,
        resume_at,
        carried,
        last_request: 0,
        revision,
        current,
        demotion_day: i64::MIN,
        demotion_watch,
        records,
        applied,
        next_seq,
        restored: resumed.is_none(),
        manual,
        replayed_reloads,
        restart_reload,
        timestamps: 0,
        last_ts: None,
        reports: super::reports::ReportJobs::of(&current_for_reports),
        report_bar_secs,
        feed_failing: false,
        alerts,
        seen_state: None,
        seen_broker_failing: false,
        seen_parked: 0,
        repeats_flushed: chrono::Utc::now().timestamp(),
        newest_bar: None,
        day_pnl: None,
        cfg,
    };
    let ended = event_loop::run(&mut engine, &mut feed, &mut eq, &mut driver).await;
    // The last alerts (a halt that ended the run) get up to 15 s to go out (a failing
    // receiver's retries take under 4 s), and are journaled, whatever ended the loop.
    if let Some(alerts) = driver.alerts.take() {
        let ts = driver.last_ts.unwrap_or(0);
        let left = alerts.finish(std::time::Duration::from_secs(15), ts).await;
        super::paper_driver::journal_deliveries(&mut driver.journal, left, ts);
        driver.journal.commit();
    }
    let ended = ended?;
    let PaperDriver { mut journal, mut gateway, live, timestamps, last_ts, lease: _lease, .. } = driver;
    let series = feed.series();
    let stopped = ended == Ended::Stopped;
    let completed = !stopped;
    if completed {
        let end = last_ts.unwrap_or(0);
        engine.finish(end, &mut journal);
        if let Some(g) = gateway.as_mut() {
            // Working orders are cancelled at the broker too; an order that filled before its
            // cancellation arrived is booked (then anything that fill left working is
            // cancelled in turn), so the journal ends with the broker's positions.
            for _ in 0..3 {
                g.record(engine.take_requests(), &mut journal);
                journal.checkpoint(checkpoint(&engine, end));
                journal.sync()?;
                let ctx = context(&engine, series, live.is_some(), end);
                g.dispatch(end, ctx, &mut journal).await;
                g.sync(&mut engine, end, &mut journal).await;
                engine.finish(end, &mut journal);
                if !g.has_work() {
                    break;
                }
            }
            journal.checkpoint(checkpoint(&engine, end));
        }
        let (stats, equity) = (engine.stats().clone(), engine.equity());
        let trades = engine.take_trades();
        let metrics = compute(&eq, &trades, !engine.open_positions().is_empty());
        let run_id = journal.run_id();
        journal.finish(eq.first_ts, eq.last_ts, &crate::runtime::journal::report::metrics_json(&metrics))?;
        return Ok(PaperOutcome { run_id, resumed_from: resume_at, timestamps, last_ts, completed, equity, stats });
    }
    let (stats, equity) = (engine.stats().clone(), engine.equity());
    let run_id = journal.run_id();
    journal.close()?;
    Ok(PaperOutcome { run_id, resumed_from: resume_at, timestamps, last_ts, completed, equity, stats })
}
