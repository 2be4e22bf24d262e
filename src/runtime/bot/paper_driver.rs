//! The paper bot's [`Driver`] of the one event loop ([`crate::engine::event_loop`]): what the
//! bot does around each timestamp, in the order the recovery contract of [`super::paper`]
//! fixes.
//!
//! - **Restoring** a restarted bot: once the replay reaches its last committed timestamp, what
//!   that timestamp decided and did not send goes to the broker, before any new bar.
//! - **Before** a new timestamp: the bot's first bar takes over its carried state and
//!   journals a live start; a stop request ends the run; the replay is paced (`--speed`);
//!   then the phase's daily demotion check, a person's requests, reloads, and the broker's
//!   news, in that order. Before a replayed timestamp: the person's controls, reloads and
//!   broker outcomes the unfinished run applied there.
//! - **After** a timestamp (replayed too): the reports due by its bars' close; then, for a new
//!   one, the checkpoint, the journal's health (fail closed), the write-ahead sync and the
//!   orders sent.
//! - **Idle**: a live feed waits for its next bars, writing the reports due on the wall clock
//!   meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::policy::Reset;
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::engine::event_loop::{Driver, Ended, Flow, SeriesFeed};
use crate::engine::events::EventSink;
use crate::engine::market::BarSeries;
use crate::engine::pipeline::Engine;
use crate::engine::trading_state::{TradingState, TradingStatus};
use crate::runtime::broker::gateway::{DispatchContext, Gateway};
use crate::runtime::broker::live_feed::LiveFeed;
use crate::runtime::journal::broker_log::{AppliedEvent, BrokerOrderRecord};
use crate::runtime::journal::control::ControlStore;
use crate::runtime::journal::lease::Lease;
use crate::runtime::journal::reload_log::{self, ReloadEntry};
use crate::runtime::journal::{Checkpoint, Journal, ManualChange};
use crate::runtime::library::reload::{Outcome, ReloadRecord};
use crate::runtime::phases::phase_store::DemotionWatch;

use super::paper::PaperConfig;

/// The paper bot around the event loop: its journal, control records, broker and feed.
pub(super) struct PaperDriver {
    pub cfg: PaperConfig,
    pub journal: Journal,
    pub control: ControlStore,
    /// Held for the run's life.
    pub lease: Lease,
    pub gateway: Option<Gateway>,
    pub live: Option<LiveFeed>,
    /// The unfinished run's last checkpoint (bars up to it are replayed muted).
    pub resume_at: Option<i64>,
    /// The bot's state, put in force at a new run's first bar.
    pub carried: Option<TradingStatus>,
    /// The last request applied in this process (its mark commits with the next checkpoint;
    /// one applied but not committed before a crash is pending again after the restart).
    pub last_request: i64,
    /// The bundle revision in force, and the bundle (its phases' demotion rules are checked
    /// daily).
    pub revision: String,
    pub current: Arc<Bundle>,
    pub demotion_day: i64,
    pub demotion_watch: DemotionWatch,
    /// Broker outcomes the unfinished run recorded and applied (replayed at their bar times),
    /// and its next broker sequence number.
    pub records: Vec<BrokerOrderRecord>,
    pub applied: Vec<AppliedEvent>,
    pub next_seq: i64,
    /// The restart's unsent orders went out (or there was nothing to restore).
    pub restored: bool,
    /// A person's halts and resumes of the unfinished run, latest first.
    pub manual: Vec<ManualChange>,
    /// Reloads the unfinished run accepted, latest first.
    pub replayed_reloads: Vec<(i64, String)>,
    /// Documents edited while the bot was down: swapped in at the first new bar.
    pub restart_reload: bool,
    /// New timestamps processed in this process.
    pub timestamps: usize,
    pub last_ts: Option<i64>,
    /// The manifest's scheduled reports, if any.
    pub reports: Option<super::reports::ReportJobs>,
    /// Length of the bot's bars (seconds): a timestamp's bars close this long after it.
    pub report_bar_secs: i64,
    /// The live feed's last poll failed (reported once until bars arrive again).
    pub feed_failing: bool,
    /// The manifest's alerts, if any, and what they last saw: the trading state, the broker
    /// failing, the orders waiting for approval.
    pub alerts: Option<super::alerts::Alerter>,
    pub seen_state: Option<TradingState>,
    pub seen_broker_failing: bool,
    pub seen_parked: usize,
    /// When repeated log lines were last summarised (wall clock, UTC seconds).
    pub repeats_flushed: i64,
    /// The newest bar of the feed (warm-up bars included), seen while idle.
    pub newest_bar: Option<i64>,
    /// The daily alert's day (UTC days since 1970), the equity it opened with and its latest.
    pub day_pnl: Option<(i64, f64, f64)>,
}

impl PaperDriver {
    /// A restarted bot sends what its last committed timestamp decided and did not send as
    /// soon as the replay reaches that timestamp, before it waits for or processes a new bar.
    async fn restore(&mut self, engine: &mut Engine, feed: &SeriesFeed<'_>) {
        if std::mem::replace(&mut self.restored, true) {
            return;
        }
        if let Some(g) = self.gateway.as_mut() {
            self.journal.set_muted(false);
            let _ = engine.take_requests();
            g.restore(&self.records, engine.external_orders(), engine.cancelling_orders(), self.next_seq);
            let processed = self.last_ts.or(self.resume_at).unwrap_or(i64::MIN);
            let ctx = context(engine, feed.series(), self.live.is_some(), processed);
            g.dispatch(processed, ctx, &mut self.journal).await;
            self.journal.commit();
        }
    }

    fn replaying(&self, ts: i64) -> bool {
        self.resume_at.is_some_and(|r| ts <= r)
    }

    /// Records a heartbeat: the wall clock, the last bar, the state and the broker's health.
    fn heartbeat(&mut self, engine: &Engine) {
        let broker = self.gateway.as_ref().map_or_else(|| "sim".to_string(), Gateway::health);
        let state = engine.trading_state().mode.as_str();
        let wall = chrono::Utc::now().timestamp();
        if wall >= self.repeats_flushed + 60 {
            crate::runtime::log_repeats::flush();
            self.repeats_flushed = wall;
        }
        // The newest bar the bot has: its last traded one, or a newer one it only warmed up on
        // (a live bot whose feed stalled right after its warm-up is stale too).
        let last_bar = self.last_ts.max(self.newest_bar);
        if let Some(m) = &self.cfg.metrics {
            m.observe(super::metrics::Snapshot {
                equity: engine.equity(),
                peak_equity: engine.peak_equity(),
                positions_value: engine.positions_value(),
                state,
                last_bar,
                broker_failing: broker.starts_with("failing"),
                wall,
            });
        }
        self.journal.heartbeat(last_bar, state, broker, self.report_bar_secs, self.live.is_some());
    }

    /// Sends the alerts a new timestamp `ts` calls for: a change of the trading state, the
    /// broker failing or answering again, more orders waiting for a person, and on a new UTC
    /// day the previous day's P&L.
    fn check_alerts(&mut self, ts: i64, engine: &Engine) {
        let Some(alerts) = self.alerts.as_mut() else { return };
        let bot = &self.cfg.settings.bot;
        let st = engine.trading_state();
        if let Some(before) = self.seen_state.replace(st.mode)
            && before != st.mode
        {
            let text = format!(
                "{bot}: {} -> {} ({}): {}",
                before.as_str(),
                st.mode.as_str(),
                if st.reason.is_empty() { "-" } else { &st.reason },
                st.message
            );
            alerts.send(super::alerts::Alert { kind: "state", ts, text });
        }
        let health = self.gateway.as_ref().map(Gateway::health);
        let failing = health.as_deref().is_some_and(|h| h.starts_with("failing"));
        if failing != self.seen_broker_failing {
            self.seen_broker_failing = failing;
            let text = match &health {
                Some(h) if failing => format!("{bot}: broker {h}"),
                _ => format!("{bot}: the broker answers again"),
            };
            alerts.send(super::alerts::Alert { kind: "broker", ts, text });
        }
        // The day's P&L, once the next UTC day's first bar is in: (day, equity it opened with,
        // equity now).
        let (day, equity) = (ts.div_euclid(86_400), engine.equity());
        self.day_pnl = match self.day_pnl {
            Some((d, open, last)) if day > d => {
                let date = crate::engine::market::format_utc(d * 86_400);
                let pct = if open != 0.0 { (last / open - 1.0) * 100.0 } else { 0.0 };
                let text = format!("{bot}: {} P&L {:+.2} ({pct:+.2}%), equity {last:.2}", &date[..10], last - open);
                alerts.send(super::alerts::Alert { kind: "daily", ts, text });
                Some((day, last, equity))
            }
            Some((d, open, _)) => Some((d, open, equity)),
            None => Some((day, equity, equity)),
        };
        let parked = engine.parked_orders();
        if parked > self.seen_parked {
            let text = format!("{bot}: {parked} order(s) wait for a person's approval (`dsl approvals list`)");
            alerts.send(super::alerts::Alert { kind: "approval", ts, text });
        }
        self.seen_parked = parked;
    }

    /// Journals what became of the alerts since the last call.
    fn journal_alerts(&mut self, ts: i64) {
        let Some(alerts) = self.alerts.as_mut() else { return };
        journal_deliveries(&mut self.journal, alerts.drain(), ts);
    }

    /// Writes the reports due by `now` (UTC seconds) and journals each (at bar time `ts`); a
    /// report that cannot be written is logged and journaled, and the bot goes on.
    fn write_reports(&mut self, now: i64, ts: i64, engine: &Engine, replayed: bool) {
        let Some(reports) = self.reports.as_mut() else { return };
        let (kind, messages) = match reports.run(now, engine, replayed) {
            Ok(written) => {
                if let Some(alerts) = self.alerts.as_mut().filter(|_| !replayed) {
                    for w in &written {
                        alerts.send(super::alerts::Alert { kind: "report", ts, text: w.summary.clone() });
                    }
                }
                ("report", written.iter().map(|w| format!("{} written to {}", w.job, w.path.display())).collect())
            }
            Err(d) => {
                tracing::warn!("{}", d.message);
                ("report_failed", vec![d.message])
            }
        };
        for message in messages {
            tracing::info!("{message}");
            self.journal.exec(move |conn, run_id| {
                conn.execute(
                    "INSERT INTO events (run_id, ts, kind, origin, symbol, script, message) \
                     VALUES (?1, ?2, ?3, 'schedule', '', '', ?4)",
                    rusqlite::params![run_id, ts, kind, message],
                )
                .map(|_| ())
            });
        }
    }

    /// Before a new timestamp (see the module doc).
    async fn before_new(&mut self, ts: i64, engine: &mut Engine, feed: &SeriesFeed<'_>) -> Result<Flow, Diagnostic> {
        self.journal.set_muted(false);
        self.journal.record_control(true);
        if let Some(state) = self.carried.take() {
            carry_state(engine, state, ts, &mut self.journal);
        }
        if let Some(account) = self.cfg.live_account.take() {
            let message = format!(
                "live trading armed on account {account} (started {})",
                crate::runtime::data::timeparse::format_utc(chrono::Utc::now().timestamp())
            );
            self.journal.exec(move |conn, run_id| {
                conn.execute(
                    "INSERT INTO events (run_id, ts, kind, origin, symbol, script, message) \
                     VALUES (?1, ?2, 'live_armed', 'runtime', '', '', ?3)",
                    rusqlite::params![run_id, ts, message],
                )
                .map(|_| ())
            });
        }
        if self.cfg.stop.load(Ordering::SeqCst) {
            return Ok(Flow::End(Ended::Stopped));
        }
        if let (Some(speed), Some(prev)) = (self.cfg.speed, self.last_ts) {
            // Paced: the wait is slept in steps, with a heartbeat after each (a slow replay is
            // not a stalled one).
            let gap = std::time::Duration::from_secs_f64(((ts - prev).max(0) as f64 / speed).min(3600.0));
            // Ctrl-C and SIGTERM are seen within a quarter second, not at the end of the wait.
            let until = tokio::time::Instant::now() + gap;
            let mut beat = tokio::time::Instant::now() + REPORT_CHECK;
            while tokio::time::Instant::now() < until {
                if self.cfg.stop.load(Ordering::SeqCst) {
                    return Ok(Flow::End(Ended::Stopped));
                }
                let step = (until - tokio::time::Instant::now()).min(std::time::Duration::from_millis(250));
                tokio::time::sleep(step).await;
                let now = tokio::time::Instant::now();
                if now < until && now >= beat {
                    self.heartbeat(engine);
                    self.journal.commit();
                    beat = now + REPORT_CHECK;
                }
            }
        }
        // The phase's demotion rules, once per UTC day of bar time; when they cannot be
        // evaluated, the bot halts (fail closed).
        if ts.div_euclid(86_400) != self.demotion_day {
            self.demotion_day = ts.div_euclid(86_400);
            self.check_demotion(ts, engine);
        }
        for r in self.control.pending_requests(self.last_request)? {
            apply_request(engine, &r, ts, &mut self.journal);
            self.last_request = r.request_id;
        }
        if std::mem::take(&mut self.restart_reload) {
            let record = restart_record(&self.revision, &self.cfg.bundle);
            let built = Some(limited(&self.cfg, self.cfg.bundle.clone()));
            self.reload(engine, record, built, ts, feed);
        }
        if let Some(rx) = &self.cfg.reloads {
            let pending: Vec<_> = rx.try_iter().collect();
            for (record, built) in pending {
                let built = built.map(|b| limited(&self.cfg, b));
                self.reload(engine, record, built, ts, feed);
            }
        }
        if let Some(g) = self.gateway.as_mut() {
            g.sync(engine, ts, &mut self.journal).await;
            g.reconcile(engine, ts, &mut self.journal).await;
        }
        // A live feed's bars are now: rules that read the spread see the latest quotes.
        if let Some(live) = self.live.as_ref().filter(|_| engine.reads_quotes()) {
            live.refresh_quotes(engine).await;
        }
        Ok(Flow::Go)
    }

    /// Applies a reload at bar time `ts` ([`apply_reload`]) and counts it in the metrics.
    fn reload(
        &mut self,
        engine: &mut Engine,
        record: ReloadRecord,
        built: Option<Arc<Bundle>>,
        ts: i64,
        feed: &SeriesFeed<'_>,
    ) {
        let counted = record.outcome != Outcome::Unchanged;
        let swapped = apply_reload(engine, &mut self.revision, record, built, ts, feed, &mut self.journal);
        if let Some(m) = self.cfg.metrics.as_ref().filter(|_| counted) {
            m.reload(swapped.is_some());
        }
        if let Some(b) = swapped {
            self.current = b;
        }
    }

    /// The phase's demotion rules at bar time `ts`: a demotion or pause halts the bot, and so
    /// does a check that cannot be made.
    fn check_demotion(&mut self, ts: i64, engine: &mut Engine) {
        match self.demotion_watch.check(&self.current, ts, self.journal.evidence(), engine.trading_state()) {
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
                    engine.escalate(TradingState::Halted, ts, reason, &message, &mut self.journal);
                }
            }
            Err(d) => {
                let message = format!("the phase's demotion rules cannot be evaluated: {}", d.message);
                tracing::error!("{message}; HALTED until `dsl resume`");
                engine.escalate(TradingState::Halted, ts, "demotion_unchecked", &message, &mut self.journal);
            }
        }
    }

    /// Before a replayed timestamp: what the unfinished run applied at it.
    fn before_replayed(&mut self, ts: i64, engine: &mut Engine, feed: &SeriesFeed<'_>) -> Result<(), Diagnostic> {
        while let Some(m) = self.manual.pop_if(|m| m.ts <= ts) {
            if m.halt && m.reason == "manual_halt" {
                engine.halt(m.ts, &m.message, &mut self.journal);
            } else if m.halt {
                engine.escalate(TradingState::Halted, m.ts, &m.reason, &m.message, &mut self.journal);
            } else {
                engine.resume(m.ts, &m.message, &mut self.journal);
            }
        }
        while let Some((_, rev)) = self.replayed_reloads.pop_if(|(t, _)| *t <= ts) {
            let b = bundle_of(&self.cfg, &rev)?;
            self.current = b.clone();
            engine.swap_bundle(b, &|i| feed.history(i)).map_err(|m| {
                Diagnostic::error(codes::JOURNAL_CONFLICT, format!("cannot replay the reload to bundle {rev}: {m}"))
            })?;
            self.journal.set_revision(&rev);
            self.revision = rev;
        }
        let mut due = Vec::new();
        while let Some(e) = self.applied.pop_if(|e| e.ts <= ts) {
            due.push(e);
        }
        Gateway::replay(engine, &due, &mut self.journal);
        Ok(())
    }
}

impl Driver for PaperDriver {
    type Error = Diagnostic;

    fn sink(&mut self) -> &mut dyn EventSink {
        &mut self.journal
    }

    fn warming(&self, ts: i64) -> bool {
        self.cfg.warmup_until.is_some_and(|w| ts <= w)
    }

    async fn idle(&mut self, engine: &mut Engine, feed: &mut SeriesFeed<'_>) -> Result<Flow, Diagnostic> {
        self.restore(engine, feed).await;
        // The bars so far are done: a live feed waits for the next ones, writing the reports
        // that fall due on the wall clock meanwhile.
        if self.live.is_none() {
            return Ok(Flow::End(Ended::Drained));
        }
        loop {
            self.newest_bar = feed.series().iter().filter_map(|s| s.ts.last().copied()).max();
            let ts = self.last_ts.unwrap_or(0);
            self.write_reports(chrono::Utc::now().timestamp(), ts, engine, false);
            self.journal_alerts(ts);
            self.heartbeat(engine);
            self.journal.commit();
            let Some(live) = self.live.as_mut() else { return Ok(Flow::End(Ended::Drained)) };
            match next_bars(live, feed, &self.cfg.stop, REPORT_CHECK, &mut self.feed_failing).await {
                Some(true) => return Ok(Flow::Go),
                Some(false) => return Ok(Flow::End(Ended::Stopped)),
                None => {}
            }
        }
    }

    async fn before(&mut self, ts: i64, engine: &mut Engine, feed: &SeriesFeed<'_>) -> Result<Flow, Diagnostic> {
        if self.replaying(ts) {
            self.before_replayed(ts, engine, feed)?;
            return Ok(Flow::Go);
        }
        self.restore(engine, feed).await;
        self.before_new(ts, engine, feed).await
    }

    async fn after(&mut self, ts: i64, engine: &mut Engine, feed: &SeriesFeed<'_>) -> Result<Flow, Diagnostic> {
        self.last_ts = Some(ts);
        let replayed = self.replaying(ts);
        self.write_reports(ts.saturating_add(self.report_bar_secs), ts, engine, replayed);
        if replayed {
            // Sent before the crash; the restored records say what became of them.
            let _ = engine.take_requests();
            return Ok(Flow::Go);
        }
        self.timestamps += 1;
        if let Some(g) = self.gateway.as_mut() {
            g.record(engine.take_requests(), &mut self.journal);
        }
        self.check_alerts(ts, engine);
        self.journal_alerts(ts);
        self.heartbeat(engine);
        self.journal.checkpoint(checkpoint(engine, ts));
        if let Some(why) = lost_footing(&self.journal, &self.lease) {
            return Err(stopped_on(&self.journal, ts, &why));
        }
        if let Some(g) = self.gateway.as_mut().filter(|g| g.has_work()) {
            // Write-ahead: the orders are committed before they are sent.
            self.journal.sync()?;
            let ctx = context(engine, feed.series(), self.live.is_some(), ts);
            g.dispatch(ts, ctx, &mut self.journal).await;
        }
        Ok(Flow::Go)
    }
}

/// The moment a dispatch sends at: the newest bar time the bot knows (the last one processed,
/// or with a live feed the newest one fetched, which is later while a restarted bot catches
/// up) and whether the bot is HALTED.
pub(super) fn context(engine: &Engine, series: &[BarSeries], live: bool, processed: i64) -> DispatchContext {
    let newest = if live { series.iter().filter_map(|s| s.ts.last().copied()).max() } else { None };
    DispatchContext {
        head: newest.map_or(processed, |n| n.max(processed)),
        halted: engine.trading_state().mode == TradingState::Halted,
    }
}

/// Journals alert outcomes as events at bar time `ts`: `alert_sent`, `alert_failed` or
/// `alert_dropped`, the channel as origin.
pub(super) fn journal_deliveries(journal: &mut Journal, deliveries: Vec<super::alerts::Delivery>, ts: i64) {
    for d in deliveries {
        let kind = match (&d.error, d.channel) {
            (_, "queue") => "alert_dropped",
            (None, _) => "alert_sent",
            (Some(_), _) => "alert_failed",
        };
        let message = match &d.error {
            None => format!("{}: {}", d.alert.kind, d.alert.text),
            Some(e) => format!("{}: {} ({e})", d.alert.kind, d.alert.text),
        };
        if d.error.is_some() {
            tracing::warn!(channel = d.channel, "alert not delivered: {message}");
        }
        let channel = d.channel;
        journal.exec(move |conn, run_id| {
            conn.execute(
                "INSERT INTO events (run_id, ts, kind, origin, symbol, script, message) VALUES (?1, ?2, ?3, ?4, '', '', ?5)",
                rusqlite::params![run_id, ts, kind, channel, message],
            )
            .map(|_| ())
        });
    }
}

/// How often a live bot waiting for bars writes its heartbeat and checks its reports'
/// wall-clock due times.
const REPORT_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for a live feed's next bars: polls every `feed.poll` until some arrive (then queues
/// them and returns `Some(true)`), `stop` is set (`Some(false)`), or `give_up` has passed
/// without bars (`None`). A failed poll is reported once (`failing` remembers it across
/// calls) and retried.
async fn next_bars(
    live: &mut LiveFeed,
    feed: &mut SeriesFeed<'_>,
    stop: &AtomicBool,
    give_up: std::time::Duration,
    failing: &mut bool,
) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + give_up;
    loop {
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        let until = tokio::time::Instant::now() + live.poll;
        while tokio::time::Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return Some(false);
            }
            let left = until - tokio::time::Instant::now();
            tokio::time::sleep(left.min(std::time::Duration::from_millis(100))).await;
        }
        match live.poll(feed.series_mut()).await {
            Ok(0) => {}
            Ok(_) => {
                feed.requeue();
                if std::mem::take(failing) {
                    tracing::info!("market data: bars arrive again");
                }
                return Some(true);
            }
            Err(e) => {
                if !*failing {
                    tracing::warn!("market data poll failed: {e}; retrying every {:?}", live.poll);
                }
                *failing = true;
            }
        }
    }
}

/// The engine's account as a checkpoint.
pub(super) fn checkpoint(engine: &Engine, ts: i64) -> Checkpoint {
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
pub(super) fn bundle_of(cfg: &PaperConfig, revision: &str) -> Result<Arc<Bundle>, Diagnostic> {
    if revision == cfg.bundle.revision {
        return Ok(limited(cfg, cfg.bundle.clone()));
    }
    let missing = || {
        Diagnostic::error(
            codes::JOURNAL_CONFLICT,
            format!("the journal has no texts of bundle {revision}, which the unfinished run used"),
        )
        .help("restore the documents it ran with to resume it, or start over with `--fresh`")
    };
    let bundle = reload_log::rebuild(&cfg.journal, revision)?.ok_or_else(missing)?;
    Ok(limited(cfg, Arc::new(bundle)))
}

/// `b` with the active phase's limits.
pub(super) fn limited(cfg: &PaperConfig, b: Arc<Bundle>) -> Arc<Bundle> {
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
    feed: &SeriesFeed<'_>,
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
        (Outcome::Accepted, Some(b)) => match engine.swap_bundle(b.clone(), &|i| feed.history(i)) {
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
        },
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
