//! The paper-trading loop (`dsl run`): stored bars replayed into the engine with the simulated
//! broker, committed to the journal one timestamp at a time, resumable after a crash.
//!
//! **Feed.** The bot's bars, merged by time, at `speed` times real time (the gap between two
//! bar times divided by `speed`, slept with tokio) or as fast as possible. Each timestamp's
//! bars go through [`Engine::on_bar`], the streaming path a live feed uses.
//!
//! **Durability.** After each timestamp the account is valued and a [`Checkpoint`] commits
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
//! **Shape.** [`run`] is one long function (about 300 lines), on purpose: the order of its steps
//! is the recovery contract (a restart restores and dispatches before it waits for a bar; between
//! two bars, requests, reloads, the daily demotion check and the broker's news, in that order; after
//! a bar, the checkpoint, then the write-ahead sync, then the dispatch), and it is reviewed by
//! reading it top to bottom. The pieces that stand alone are functions below it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use crate::config::policy::Reset;
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::engine::curve::EquityTracker;
use crate::engine::events::EventSink;
use crate::engine::market::BarSeries;
use crate::engine::metrics::compute;
use crate::engine::pipeline::{Engine, EngineSettings, RunStats};
use crate::engine::trading_state::{TradingState, TradingStatus};

use crate::runtime::broker::gateway::{DispatchContext, Gateway};
use crate::runtime::broker::live_feed::LiveFeed;
use crate::runtime::journal::broker_log;
use crate::runtime::journal::control::ControlStore;
use crate::runtime::journal::reload_log::{self, ReloadEntry};
use crate::runtime::journal::{Checkpoint, Journal, RunInfo};
use crate::runtime::library::loader::{Stored, load_bundle_from};
use crate::runtime::library::reload::{Outcome, ReloadRecord};

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
                    codes::INVALID_VALUE,
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
    let mut restart_reload = resumed.as_ref().is_some_and(|r| r.in_force != cfg.bundle.revision);
    journal.set_revision(&start_bundle.revision);
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
    // The last request applied in this process (its mark commits with the next checkpoint;
    // one applied but not committed before a crash is pending again after the restart).
    let mut last_request = 0;
    // `require_approval` orders wait in the bot's approval queue (`dsl approvals`).
    let mut desk = ControlStore::open(&cfg.journal, &bot)?;
    desk.replaying_until(resume_at);
    engine.set_approval_desk(Box::new(desk));
    let mut revision = start_bundle.revision.clone();
    // The bundle in force (its phases' demotion rules are checked daily).
    let mut current = start_bundle.clone();
    let mut demotion_day = i64::MIN;
    let mut demotion_watch = crate::runtime::phases::phase_store::DemotionWatch::new(&cfg.journal);
    journal.keep_evidence(cfg.settings.starting_cash, resumed.is_some())?;
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
    let mut restored = resumed.is_none();
    let mut eq = EquityTracker::new(engine.starting_cash());
    let mut series = std::mem::take(&mut cfg.series);
    let mut live = cfg.live.take();
    let mut cursor = vec![0usize; series.len()];
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> =
        series.iter().enumerate().filter(|(_, s)| !s.is_empty()).map(|(i, s)| Reverse((s.ts[0], i))).collect();
    let mut timestamps = 0;
    let mut last_ts: Option<i64> = None;
    let mut stopped = false;
    loop {
        // A restarted bot sends what its last committed timestamp decided and did not send as
        // soon as the replay reaches that timestamp, before it waits for or processes a new bar.
        let next = heap.peek().map(|r| r.0.0);
        let replay_done =
            next.is_none_or(|t| resume_at.is_none_or(|r| t > r) && cfg.warmup_until.is_none_or(|w| t > w));
        if !restored && replay_done {
            restored = true;
            if let Some(g) = gateway.as_mut() {
                journal.set_muted(false);
                let _ = engine.take_requests();
                g.restore(&records, engine.external_orders(), engine.cancelling_orders(), next_seq);
                let processed = last_ts.or(resume_at).unwrap_or(i64::MIN);
                let ctx = context(&engine, &series, live.is_some(), processed);
                g.dispatch(processed, ctx, &mut journal).await;
                journal.commit();
            }
        }
        let Some(&Reverse((ts, _))) = heap.peek() else {
            // The bars so far are done: a live feed waits for the next ones.
            let Some(feed) = live.as_mut() else { break };
            if !next_bars(feed, &mut series, &mut heap, &cursor, &cfg.stop).await {
                stopped = true;
                break;
            }
            continue;
        };
        if cfg.warmup_until.is_some_and(|w| ts <= w) {
            Feed { series: &series, heap: &mut heap, cursor: &mut cursor }.warm(ts, &mut engine);
            continue;
        }
        let replaying = resume_at.is_some_and(|r| ts <= r);
        if !replaying {
            journal.set_muted(false);
            journal.record_control(true);
            if let Some(state) = carried.take() {
                carry_state(&mut engine, state, ts, &mut journal);
            }
            if let Some(account) = cfg.live_account.take() {
                let message = format!(
                    "live trading armed on account {account} (started {})",
                    crate::runtime::data::timeparse::format_utc(chrono::Utc::now().timestamp())
                );
                journal.exec(move |conn, run_id| {
                    conn.execute(
                        "INSERT INTO events (run_id, ts, kind, origin, symbol, script, message) \
                         VALUES (?1, ?2, 'live_armed', 'runtime', '', '', ?3)",
                        rusqlite::params![run_id, ts, message],
                    )
                    .map(|_| ())
                });
            }
            if cfg.stop.load(Ordering::SeqCst) {
                stopped = true;
                break;
            }
            if let (Some(speed), Some(prev)) = (cfg.speed, last_ts) {
                let gap = (ts - prev).max(0) as f64 / speed;
                tokio::time::sleep(std::time::Duration::from_secs_f64(gap.min(3600.0))).await;
            }
            // The phase's demotion rules, once per UTC day of bar time; when they cannot be
            // evaluated, the bot halts (fail closed).
            if ts.div_euclid(86_400) != demotion_day {
                demotion_day = ts.div_euclid(86_400);
                match demotion_watch.check(&current, ts, journal.evidence(), engine.trading_state()) {
                    Ok(changes) => {
                        for c in changes {
                            tracing::error!(
                                phase = %c.to,
                                "phase {}: `{}` -> `{}` by {}: {}; HALTED until `dsl resume`",
                                c.kind,
                                c.from,
                                c.to,
                                c.actor,
                                c.reason
                            );
                            let reason = if c.kind == "demotion" { "phase_demotion" } else { "phase_pause" };
                            let message = format!("{}: {} ({} from `{}`)", c.actor, c.reason, c.kind, c.from);
                            engine.escalate(TradingState::Halted, ts, reason, &message, &mut journal);
                        }
                    }
                    Err(d) => {
                        let message = format!("the phase's demotion rules cannot be evaluated: {}", d.message);
                        tracing::error!("{message}; HALTED until `dsl resume`");
                        engine.escalate(TradingState::Halted, ts, "demotion_unchecked", &message, &mut journal);
                    }
                }
            }
            for r in control.pending_requests(last_request)? {
                apply_request(&mut engine, &r, ts, &mut journal);
                last_request = r.request_id;
            }
            if std::mem::take(&mut restart_reload) {
                let record = restart_record(&revision, &cfg.bundle);
                let built = Some(limited(&cfg, cfg.bundle.clone()));
                if let Some(b) =
                    apply_reload(&mut engine, &mut revision, record, built, ts, &series, &cursor, &mut journal)
                {
                    current = b;
                }
            }
            if let Some(rx) = &cfg.reloads {
                while let Ok((record, built)) = rx.try_recv() {
                    let built = built.map(|b| limited(&cfg, b));
                    if let Some(b) =
                        apply_reload(&mut engine, &mut revision, record, built, ts, &series, &cursor, &mut journal)
                    {
                        current = b;
                    }
                }
            }
            if let Some(g) = gateway.as_mut() {
                g.sync(&mut engine, ts, &mut journal).await;
                g.reconcile(&mut engine, ts, &mut journal).await;
            }
        } else {
            while let Some(m) = manual.pop_if(|m| m.ts <= ts) {
                if m.halt && m.reason == "manual_halt" {
                    engine.halt(m.ts, &m.message, &mut journal);
                } else if m.halt {
                    engine.escalate(TradingState::Halted, m.ts, &m.reason, &m.message, &mut journal);
                } else {
                    engine.resume(m.ts, &m.message, &mut journal);
                }
            }
            while let Some((_, rev)) = replayed_reloads.pop_if(|(t, _)| *t <= ts) {
                let b = bundle_of(&cfg, &rev)?;
                current = b.clone();
                let history = |i: usize| (0..cursor[i]).map(|j| series[i].bar(j)).collect();
                engine.swap_bundle(b, &history).map_err(|m| {
                    Diagnostic::error(codes::INVALID_VALUE, format!("cannot replay the reload to bundle {rev}: {m}"))
                })?;
                journal.set_revision(&rev);
                revision = rev;
            }
            let mut due = Vec::new();
            while let Some(e) = applied.pop_if(|e| e.ts <= ts) {
                due.push(e);
            }
            Gateway::replay(&mut engine, &due, &mut journal);
        }
        let mut feed = Feed { series: &series, heap: &mut heap, cursor: &mut cursor };
        feed.step(ts, &mut engine, &mut eq, &mut journal);
        last_ts = Some(ts);
        if replaying {
            // Sent before the crash; the restored records say what became of them.
            let _ = engine.take_requests();
        } else {
            timestamps += 1;
            if let Some(g) = gateway.as_mut() {
                g.record(engine.take_requests(), &mut journal);
            }
            journal.checkpoint(checkpoint(&engine, ts));
            if let Some(why) = lost_footing(&journal, &lease) {
                return Err(stopped_on(&journal, ts, &why));
            }
            if let Some(g) = gateway.as_mut().filter(|g| g.has_work()) {
                // Write-ahead: the orders are committed before they are sent.
                journal.sync()?;
                let ctx = context(&engine, &series, live.is_some(), ts);
                g.dispatch(ts, ctx, &mut journal).await;
            }
        }
    }
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
                let ctx = context(&engine, &series, live.is_some(), end);
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

/// The moment a dispatch sends at: the newest bar time the bot knows (the last one processed,
/// or with a live feed the newest one fetched, which is later while a restarted bot catches
/// up) and whether the bot is HALTED.
fn context(engine: &Engine, series: &[BarSeries], live: bool, processed: i64) -> DispatchContext {
    let newest = if live { series.iter().filter_map(|s| s.ts.last().copied()).max() } else { None };
    DispatchContext {
        head: newest.map_or(processed, |n| n.max(processed)),
        halted: engine.trading_state().mode == TradingState::Halted,
    }
}

/// The bars still to come, merged by time.
struct Feed<'a> {
    series: &'a [BarSeries],
    heap: &'a mut BinaryHeap<Reverse<(i64, usize)>>,
    cursor: &'a mut [usize],
}

impl Feed<'_> {
    /// Feeds every bar of timestamp `ts` to the engine, then values the account and checks
    /// the account-level rules.
    fn step(&mut self, ts: i64, engine: &mut Engine, eq: &mut EquityTracker, sink: &mut dyn EventSink) {
        while let Some(&Reverse((t, i))) = self.heap.peek() {
            if t != ts {
                break;
            }
            self.heap.pop();
            let bar = self.series[i].bar(self.cursor[i]);
            engine.on_bar(i, &bar, sink);
            self.advance(i);
        }
        let (equity, open) = engine.mark();
        eq.push(ts, equity, open);
        engine.check_account(ts, sink);
    }
}

impl Feed<'_> {
    /// Feeds every bar of timestamp `ts` to the engine as warm-up history.
    fn warm(&mut self, ts: i64, engine: &mut Engine) {
        while let Some(&Reverse((t, i))) = self.heap.peek() {
            if t != ts {
                break;
            }
            self.heap.pop();
            engine.warm_up(i, &self.series[i].bar(self.cursor[i]));
            self.advance(i);
        }
    }

    fn advance(&mut self, i: usize) {
        self.cursor[i] += 1;
        if self.cursor[i] < self.series[i].len() {
            self.heap.push(Reverse((self.series[i].ts[self.cursor[i]], i)));
        }
    }
}

/// Waits for a live feed's next bars: polls every `feed.poll` until some arrive (then queues
/// them and returns true) or `stop` is set (false). A failed poll is reported and retried.
async fn next_bars(
    feed: &mut LiveFeed,
    series: &mut [BarSeries],
    heap: &mut BinaryHeap<Reverse<(i64, usize)>>,
    cursor: &[usize],
    stop: &AtomicBool,
) -> bool {
    let mut failing = false;
    loop {
        let until = tokio::time::Instant::now() + feed.poll;
        while tokio::time::Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            let left = until - tokio::time::Instant::now();
            tokio::time::sleep(left.min(std::time::Duration::from_millis(100))).await;
        }
        match feed.poll(series).await {
            Ok(0) => {}
            Ok(_) => {
                for (i, s) in series.iter().enumerate() {
                    if cursor[i] < s.len() {
                        heap.push(Reverse((s.ts[cursor[i]], i)));
                    }
                }
                if failing {
                    tracing::info!("market data: bars arrive again");
                }
                return true;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("market data poll failed: {e}; retrying every {:?}", feed.poll);
                }
                failing = true;
            }
        }
    }
}

/// The engine's account as a checkpoint.
fn checkpoint(engine: &Engine, ts: i64) -> Checkpoint {
    let positions: Vec<serde_json::Value> = engine
        .open_positions()
        .iter()
        .map(|p| {
            serde_json::json!({
                "strategy": p.strategy,
                "symbol": p.symbol,
                "quantity": p.quantity,
                "entry_price": p.entry_price,
                "entry_ts": p.entry_time,
                "last_price": p.last_price,
                "unrealized_pnl": p.unrealized_pnl,
            })
        })
        .collect();
    let equity = engine.equity();
    Checkpoint {
        ts,
        cash: equity - engine.positions_value(),
        equity,
        peak_equity: engine.peak_equity(),
        state: engine.trading_state().mode.as_str().to_string(),
        positions: serde_json::Value::Array(positions),
    }
}

/// The bundle of `revision`: the loaded documents' when they are that revision, else rebuilt
/// from the texts the journal stored for it.
fn bundle_of(cfg: &PaperConfig, revision: &str) -> Result<Arc<Bundle>, Diagnostic> {
    if revision == cfg.bundle.revision {
        return Ok(limited(cfg, cfg.bundle.clone()));
    }
    let missing = || {
        Diagnostic::error(
            codes::INVALID_VALUE,
            format!("the journal has no texts of bundle {revision}, which the unfinished run used"),
        )
        .help("restore the documents it ran with to resume it, or start over with `--fresh`")
    };
    let (manifest, texts) = reload_log::texts(&cfg.journal, revision)?.ok_or_else(missing)?;
    let loaded = load_bundle_from(std::path::Path::new(&manifest), &Stored(texts)).map_err(|_| missing())?;
    if loaded.bundle.revision != revision {
        return Err(missing());
    }
    Ok(limited(cfg, Arc::new(loaded.bundle)))
}

/// `b` with the active phase's limits.
fn limited(cfg: &PaperConfig, b: Arc<Bundle>) -> Arc<Bundle> {
    crate::runtime::phases::phase_limits::with_limits(b, cfg.phase_policy.as_ref())
}

/// The reload of a restarted bot whose documents were edited while it was down.
fn restart_record(in_force: &str, bundle: &Bundle) -> ReloadRecord {
    ReloadRecord {
        at: crate::runtime::data::timeparse::format_utc(chrono::Utc::now().timestamp()),
        outcome: Outcome::Accepted,
        old_revision: in_force.to_string(),
        new_revision: Some(bundle.revision.clone()),
        trigger: vec!["restart".into()],
        changes: Default::default(),
        errors: 0,
        warnings: 0,
        diagnostics: Vec::new(),
        build_ms: 0.0,
    }
}

/// Applies one reload before the bars of `ts`: swaps an accepted bundle into the engine
/// (refused when it cannot be: the engine is unchanged), and journals what happened either
/// way. Logs accepted ones at `info` and every rejection, with its diagnostics, at `error`.
#[allow(clippy::too_many_arguments)]
fn apply_reload(
    engine: &mut Engine,
    revision: &mut String,
    record: ReloadRecord,
    built: Option<Arc<Bundle>>,
    ts: i64,
    series: &[BarSeries],
    cursor: &[usize],
    journal: &mut Journal,
) -> Option<Arc<Bundle>> {
    let mut swapped = None;
    let changes = serde_json::to_value(&record.changes).unwrap_or_default();
    let mut entry = ReloadEntry {
        ts,
        outcome: "rejected",
        old_revision: revision.clone(),
        new_revision: record.new_revision.clone(),
        trigger: record.trigger.clone(),
        changes,
        retired: Vec::new(),
        errors: record.errors,
        warnings: record.warnings,
        message: String::new(),
    };
    let at = crate::runtime::data::timeparse::format_utc(ts);
    match (record.outcome, built) {
        (Outcome::Unchanged, _) => {}
        (Outcome::Accepted, Some(b)) if b.revision == *revision => {}
        (Outcome::Accepted, Some(b)) => {
            let history = |i: usize| (0..cursor[i]).map(|j| series[i].bar(j)).collect();
            match engine.swap_bundle(b.clone(), &history) {
                Ok(report) => {
                    entry.outcome = "accepted";
                    entry.retired = report.retired;
                    *revision = b.revision.clone();
                    journal.set_revision(revision);
                    swapped = Some(b.clone());
                    tracing::info!(
                        revision = %b.revision,
                        "reload: bundle {} in force from {at} (was {})",
                        b.revision,
                        entry.old_revision
                    );
                    for (s, sym) in &entry.retired {
                        tracing::info!(
                            strategy = %s,
                            symbol = %sym,
                            "{s} on {sym}: removed; it keeps its exits until its position closes"
                        );
                    }
                    journal.reload(entry, Some(b));
                }
                Err(m) => {
                    entry.outcome = "refused";
                    tracing::error!("reload of bundle {} refused: {m}; bundle {revision} stays", b.revision);
                    entry.message = m;
                    journal.reload(entry, None);
                }
            }
        }
        _ => {
            entry.new_revision = None;
            let text: Vec<String> =
                record.diagnostics.iter().map(|d| crate::diagnostics::render_human(d, false)).collect();
            entry.message = text.join("\n");
            tracing::error!(
                diagnostics = %entry.message,
                "reload rejected at {at}; bundle {revision} stays in force"
            );
            journal.reload(entry, None);
        }
    }
    swapped
}

/// Applies a request (a person's halt or resume, a phase's pause or demotion) at bar time
/// `ts`, and marks it applied in the timestamp's transaction.
fn apply_request(
    engine: &mut Engine,
    r: &crate::runtime::journal::control::ControlRequest,
    ts: i64,
    journal: &mut Journal,
) {
    match (r.halt, r.reason.as_str()) {
        (true, "manual_halt") => engine.halt(ts, &r.message, journal),
        (true, reason) => engine.escalate(TradingState::Halted, ts, reason, &r.message, journal),
        (false, _) => engine.resume(ts, &r.message, journal),
    }
    let id = r.request_id;
    journal.exec(move |conn, run_id| crate::runtime::journal::control::mark_applied(conn, id, run_id, ts));
}

/// Puts a new run in the bot's state (HALTED or REDUCING, set before this run) at its first
/// bar, journaled. A `reset: next_day` state entered after that bar (a replay of older
/// history) counts from it, so it still resets at the next UTC day.
fn carry_state(engine: &mut Engine, mut state: TradingStatus, ts: i64, journal: &mut Journal) {
    if state.reset == Reset::NextDay && state.since > ts {
        state.since = ts;
    }
    let message = format!("{} (carried over from the bot's state)", state.message);
    engine.escalate(state.mode, ts, &state.reason, &message, journal);
    // The reset the state was set with is kept (`escalate` records it).
    let mut kept = engine.trading_state().clone();
    kept.reset = state.reset;
    kept.since = state.since;
    engine.restore_state(kept);
}

/// Why the bot must stop trading now, if it must: its journal's writer failed, the journal
/// file was deleted or replaced, or its lease is gone.
fn lost_footing(journal: &Journal, lease: &crate::runtime::journal::lease::Lease) -> Option<String> {
    if let Some(e) = journal.failure() {
        return Some(format!("the journal could not be written: {e}"));
    }

    if !journal.file_unchanged() {
        return Some("the journal file was deleted or replaced while the bot ran".into());
    }
    if !lease.still_held() {
        return Some(format!("the journal's lock file `{}` was deleted or replaced", lease.path().display()));
    }
    None
}

/// The error a bot stops with after bar time `ts` (see [`lost_footing`]).
fn stopped_on(journal: &Journal, ts: i64, why: &str) -> Diagnostic {
    Diagnostic::error(
        codes::IO,
        format!("{why}; trading stopped at {} (fail closed)", crate::runtime::data::timeparse::format_utc(ts)),
    )
    .help(format!(
        "the run stays resumable at its last committed bar in `{}`: fix the cause, then `dsl run` again",
        journal.path().display()
    ))
}
