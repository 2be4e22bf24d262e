//! `dsl status BOT.yaml`: what a bot is doing, read from its journal database.
//!
//! The trading state (from the control records), and the bot's latest paper run: its status,
//! bundle revision, the last timestamp committed, its heartbeat's age (STALE past the limits of
//! [`crate::runtime::bot::status`]), cash, equity, drawdown from the peak, open positions with
//! unrealized pnl, realized pnl of closed trades, and pending approvals.
//!
//! `--check` is for cron and systemd timers: it exits 0 when the bot is healthy, and 1 (saying
//! why on stderr) when its running run is stale, it is HALTED, or its broker is failing; with
//! `--alert` it also sends the manifest's `stale` alert, once per episode.

use super::control::Target;
use super::validate::Format;
use super::{EXIT_INVALID, EXIT_OK, Out};
use crate::engine::market::format_utc;
use crate::runtime::bot::status::{BotStatus, age, read_status};

/// Arguments of `dsl status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Exit 1 when the bot is stale, HALTED or its broker is failing (for cron or a systemd
    /// timer); 0 when healthy.
    #[arg(long)]
    check: bool,
    /// Judge the heartbeat's age as of this time (`2024-01-05T16:00:00Z`; default: now).
    #[arg(long, value_parser = super::parse_time)]
    at: Option<i64>,
    /// With --check: when the check fails, send a `stale` alert through the manifest's
    /// `alerts:` (once per episode: the stale run's last heartbeat, or the halt), journaled in
    /// `watchdog_alerts`.
    #[arg(long, requires = "check")]
    alert: bool,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let (journal, bot) = match args.target.resolve() {
        Ok(t) => t,
        Err(d) => return out.fail(&d),
    };
    let now = args.at.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let status = match read_status(&journal, &bot, now) {
        Ok(s) => s,
        Err(d) => return out.fail(&d),
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default()),
        Format::Human => print!("{}", human(&status)),
    }
    if args.check && !status.problems.is_empty() {
        for p in &status.problems {
            eprintln!("check failed: {p}");
        }
        if args.alert
            && let Err(d) = alert(&args, &journal, &bot, &status)
        {
            out.fail(&d);
        }
        return EXIT_INVALID;
    }
    EXIT_OK
}

fn human(s: &BotStatus) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "bot {}", s.bot);
    if s.state_reason.is_empty() {
        let _ = writeln!(o, "  state         {} (never changed)", s.state);
    } else {
        let _ = writeln!(
            o,
            "  state         {} since {} ({}: {})",
            s.state,
            format_utc(s.state_since),
            s.state_reason,
            s.state_message
        );
    }
    match &s.run {
        None => {
            let _ = writeln!(o, "  run           none yet (`dsl run` starts one)");
        }
        Some(r) => {
            let _ =
                writeln!(o, "  run           {} ({}, {}), bundle {}", r.run_id, r.kind, r.status, r.bundle_revision);
            if let Some(ts) = r.last_ts {
                let _ = writeln!(o, "  last bar      {}", format_utc(ts));
            }
            if let Some(h) = &r.heartbeat {
                let flag = match &s.stale {
                    Some(why) => format!("STALE: {why}"),
                    None => "ok".to_string(),
                };
                let _ = writeln!(
                    o,
                    "  heartbeat     {} ago ({}), {}, broker {}",
                    age(h.age_secs),
                    format_utc(h.wall_ts),
                    flag,
                    h.broker
                );
            } else if let Some(why) = &s.stale {
                let _ = writeln!(o, "  heartbeat     STALE: {why}");
            }
            let _ = writeln!(o, "  cash          {:.2}", r.cash);
            let _ = writeln!(
                o,
                "  equity        {:.2} (peak {:.2}, drawdown {:.2}%)",
                r.equity,
                r.peak_equity,
                r.drawdown * 100.0
            );
            let _ = writeln!(o, "  realized pnl  {:.2} over {} closed trades", r.realized_pnl, r.closed_trades);
            if r.positions.is_empty() {
                let _ = writeln!(o, "  positions     none");
            }
            for p in &r.positions {
                let _ = writeln!(
                    o,
                    "  position      {} {} x {} @ {:.4}, last {:.4}, unrealized {:+.2}",
                    p.strategy, p.symbol, p.quantity, p.entry_price, p.last_price, p.unrealized_pnl
                );
            }
        }
    }
    if let Some((phase, why)) = &s.phase {
        let _ = writeln!(o, "  phase         {phase} ({why})");
    }
    if let Some(c) = &s.switchover {
        let failed: Vec<&str> = c
            .gates
            .as_array()
            .map(|g| g.iter().filter(|g| g["held"] != true).filter_map(|g| g["gate"].as_str()).collect())
            .unwrap_or_default();
        let verdict = match c.passed {
            true => "PASS".to_string(),
            false => format!("FAIL (gates not holding: {})", failed.join(", ")),
        };
        let mock = if c.mock { ", account checked against a mock" } else { "" };
        let _ = writeln!(o, "  switchover    {verdict} at {}{mock}", format_utc(c.ts));
    }
    if s.pending_approvals > 0 {
        let _ = writeln!(o, "  approvals     {} pending (`dsl approvals list`)", s.pending_approvals);
    }
    o
}

/// `--alert`: the watchdog's `stale` alert through the manifest's `alerts:`.
fn alert(
    args: &Args,
    journal: &std::path::Path,
    bot: &str,
    status: &BotStatus,
) -> Result<(), crate::diagnostics::Diagnostic> {
    use crate::diagnostics::{Diagnostic, codes};
    let Some(manifest) = &args.target.manifest else {
        return Err(Diagnostic::error(
            codes::BAD_ARGUMENT,
            "--alert reads the manifest's `alerts:`: give the bot manifest",
        ));
    };
    let src = crate::runtime::library::loader::read_source(manifest)?;
    let mut diags = Vec::new();
    let doc = match crate::config::read_document(&src, &mut diags) {
        Some(crate::config::Document::Bot(b)) => b.alerts,
        _ => None,
    };
    let Some(doc) = doc else {
        return Err(Diagnostic::error(codes::RUNTIME_REFUSED, "--alert: the manifest has no `alerts:` section"));
    };
    // The episode: the stale run's last heartbeat, else when the bot was halted.
    let episode = status.run.as_ref().and_then(|r| r.heartbeat.as_ref()).map_or(status.state_since, |h| h.wall_ts);
    for d in crate::runtime::bot::alerts::watchdog(&doc, journal, bot, &status.problems, episode)? {
        match &d.error {
            None => eprintln!("alert sent ({})", d.channel),
            Some(e) => eprintln!("alert not delivered ({}): {e}", d.channel),
        }
    }
    Ok(())
}
