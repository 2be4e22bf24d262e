//! Scheduled reports of a running bot (`schedule.reports` in its manifest): the day's P&L,
//! the week's summary and the month's report, each a Markdown file written at a set time in
//! the schedule's zone.
//!
//! **When.** A report is due at each occurrence of its cadence (see
//! [`crate::config::schedule`]) and written on the first moment the bot reaches at or after
//! it: in a replay, the close of a timestamp's bars (bar time); with a live feed, also the
//! wall clock while the bot waits for bars (so the 16:15 report comes after the close even
//! though no bar does). Occurrences missed meanwhile (a holiday, a stopped bot) give one
//! report, named after the latest of them, not one each.
//!
//! **Once.** A report's file name holds its job and the date of its due time
//! (`treasury_rebalance-daily_pnl-2012-03-16.md`); the file is written whole (to a temporary
//! name, then renamed) and never rewritten: a restarted bot, which replays its bars, finds the
//! reports it wrote before the crash and leaves them, and writes one the crash prevented.
//! Each report written is journaled as an event (`report`).
//!
//! **What.** Figures of the period since the job's previous report (or the run's start):
//! equity then and now, the P&L in currency and percent, the drawdown from the peak, orders
//! submitted, filled and refused, round trips closed with their P&L, the trading state and the
//! open positions at their last closes.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;

use crate::config::schedule::{ReportJob, local_time};
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::engine::pipeline::Engine;

/// Most missed occurrences looked through to name a report after the latest (a minute
/// cadence after a long stop); past it the report takes the name of the one reached.
const MAX_COALESCED: usize = 10_000;

/// The account at the start of a report's period.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Snapshot {
    ts: i64,
    equity: f64,
    submitted: u64,
    filled: u64,
    rejected: u64,
    trades: usize,
}

impl Snapshot {
    fn of(engine: &Engine, ts: i64) -> Self {
        let s = engine.stats();
        Snapshot {
            ts,
            equity: engine.equity(),
            submitted: s.orders_submitted,
            filled: s.orders_filled,
            rejected: s.orders_rejected,
            trades: engine.trades().len(),
        }
    }
}

#[derive(Debug, Clone)]
struct JobState {
    job: ReportJob,
    /// Next due time; `None` before the first moment seen.
    next_due: Option<i64>,
    since: Option<Snapshot>,
}

/// A report written: its job's name, due time (UTC seconds) and file.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// `daily_pnl`, `weekly_summary` or `monthly_report`.
    pub job: &'static str,
    /// The occurrence it is for.
    pub due: i64,
    /// Where it is.
    pub path: PathBuf,
    /// One line for an alert: the period's equity and P&L.
    pub summary: String,
}

/// The bot's report jobs.
#[derive(Debug, Clone)]
pub struct ReportJobs {
    jobs: Vec<JobState>,
    dir: PathBuf,
    bot: String,
    zone: Tz,
}

impl ReportJobs {
    /// The report jobs of `bundle`'s manifest, writing into its `directory` (relative to the
    /// manifest); `None` without any.
    pub fn of(bundle: &Bundle) -> Option<Self> {
        let bot = bundle.bot.as_ref()?;
        let schedule = bot.schedule.as_ref()?;
        if schedule.reports.is_empty() {
            return None;
        }
        let base = Path::new(&bot.source.name).parent().map(Path::to_path_buf).unwrap_or_default();
        Some(ReportJobs {
            jobs: schedule.reports.iter().map(|j| JobState { job: j.clone(), next_due: None, since: None }).collect(),
            dir: base.join(&schedule.report_dir),
            bot: bot.name.value.clone(),
            zone: schedule.zone,
        })
    }

    /// Writes the reports due by `now` (UTC seconds). `replayed`: the moment was processed
    /// before a restart, so a report whose file exists is not written again.
    ///
    /// # Errors
    /// A report that cannot be written (the directory cannot be made, a full disk): the
    /// bot goes on trading, the caller reports it.
    pub fn run(&mut self, now: i64, engine: &Engine, replayed: bool) -> Result<Vec<Written>, Diagnostic> {
        let mut out = Vec::new();
        for k in 0..self.jobs.len() {
            let st = &mut self.jobs[k];
            let Some(due) = st.next_due else {
                st.next_due = Some(st.job.cadence.value.next_after(now).unwrap_or(i64::MAX));
                st.since = Some(Snapshot::of(engine, now));
                continue;
            };
            if now < due {
                continue;
            }
            // Occurrences missed meanwhile make one report, named after the latest of them.
            let cadence = &st.job.cadence.value;
            let mut due = due;
            for _ in 0..MAX_COALESCED {
                match cadence.next_after(due) {
                    Some(n) if n <= now => due = n,
                    _ => break,
                }
            }
            st.next_due = Some(cadence.next_after(now).unwrap_or(i64::MAX));
            let snap = Snapshot::of(engine, now);
            let since = st.since.replace(snap).unwrap_or(snap);
            let kind: &'static str = st.job.kind.as_str();
            let date = local_time(due, self.zone);
            let day = date.get(..10).unwrap_or(&date).to_string();
            let path = self.dir.join(format!("{}-{kind}-{day}.md", self.bot));
            if replayed && path.exists() {
                continue;
            }
            let text = self.render(kind, due, now, &since, engine);
            write_whole(&self.dir, &path, &text)?;
            let equity = engine.equity();
            let pnl = equity - since.equity;
            let pct = if since.equity > 0.0 { pnl / since.equity * 100.0 } else { 0.0 };
            let summary = format!(
                "{} {kind} {day}: equity {equity:.2}, P&L {pnl:+.2} ({pct:+.2}%), state {}",
                self.bot,
                engine.trading_state().mode.as_str()
            );
            out.push(Written { job: kind, due, path, summary });
        }
        Ok(out)
    }

    fn render(&self, kind: &str, due: i64, now: i64, since: &Snapshot, engine: &Engine) -> String {
        let title = match kind {
            "daily_pnl" => "daily P&L",
            "weekly_summary" => "weekly summary",
            _ => "monthly report",
        };
        let equity = engine.equity();
        let pnl = equity - since.equity;
        let pct = if since.equity > 0.0 { pnl / since.equity * 100.0 } else { 0.0 };
        let peak = engine.peak_equity();
        let drawdown = if peak > 0.0 { (peak - equity) / peak * 100.0 } else { 0.0 };
        let s = engine.stats();
        let trades = &engine.trades()[since.trades.min(engine.trades().len())..];
        let trade_pnl: f64 = trades.iter().fold(0.0, |a, t| a + t.pnl);
        let wins = trades.iter().filter(|t| t.pnl > 0.0).count();
        let mut md = format!(
            "# {} — {title}, {}\n\n| | |\n| --- | --- |\n| period | {} .. {} |\n| equity | {:.2} (from {:.2}) |\n\
             | P&L | {pnl:+.2} ({pct:+.2}%) |\n| drawdown from the peak | {drawdown:.2}% (peak {peak:.2}) |\n\
             | orders | {} submitted, {} filled, {} refused |\n| round trips closed | {} ({wins} won), P&L {trade_pnl:+.2} |\n\
             | trading state | {} |\n",
            self.bot,
            local_time(due, self.zone),
            local_time(since.ts, self.zone),
            local_time(now, self.zone),
            equity,
            since.equity,
            s.orders_submitted.saturating_sub(since.submitted),
            s.orders_filled.saturating_sub(since.filled),
            s.orders_rejected.saturating_sub(since.rejected),
            trades.len(),
            engine.trading_state().mode.as_str(),
        );
        let positions = engine.open_positions();
        md.push_str("\n## Open positions\n\n");
        if positions.is_empty() {
            md.push_str("None.\n");
        } else {
            md.push_str("| strategy | symbol | quantity | entry price | last price | unrealized P&L |\n");
            md.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
            for p in &positions {
                md.push_str(&format!(
                    "| {} | {} | {:.6} | {:.4} | {:.4} | {:+.2} |\n",
                    p.strategy, p.symbol, p.quantity, p.entry_price, p.last_price, p.unrealized_pnl
                ));
            }
        }
        if !trades.is_empty() {
            md.push_str("\n## Round trips closed\n\n| strategy | symbol | exit | P&L | reason |\n| --- | --- | --- | ---: | --- |\n");
            for t in trades {
                md.push_str(&format!(
                    "| {} | {} | {} | {:+.2} | {} |\n",
                    t.strategy,
                    t.symbol,
                    local_time(t.exit_time, self.zone),
                    t.pnl,
                    t.exit_reason
                ));
            }
        }
        md
    }
}

/// Writes `text` to `path` whole: into a temporary file beside it, then renamed over it.
fn write_whole(dir: &Path, path: &Path, text: &str) -> Result<(), Diagnostic> {
    let fail = |what: &str, e: std::io::Error| {
        Diagnostic::error(codes::IO, format!("cannot write the report `{}`: {what}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("creating its directory", e))?;
    let partial = path.with_extension("md.partial");
    std::fs::write(&partial, text).map_err(|e| fail("writing", e))?;
    std::fs::rename(&partial, path).map_err(|e| fail("renaming", e))
}
