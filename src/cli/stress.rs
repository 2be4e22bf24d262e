//! `dsl stress BOT.yaml --scenarios FILE.yaml`: replays the bot on its real data once as is
//! and once per scenario (a crash, a gap, volatility, missing bars, a broker outage; see
//! `engine::stress`), and reports each run's drawdown against the file's threshold and the
//! guardrails that fired. Every run is journaled (`runs.kind = 'stress'`, its scenario and
//! verdict in `metrics`) for phase gates to read. Exit code 1 when a scenario breaches the
//! threshold. The plan (loading, resolving the scenarios, the runs) is the runtime's
//! ([`crate::runtime::research::stress`]); the command prints the verdict table.

use std::path::PathBuf;

use super::{EXIT_INVALID, EXIT_OK, Out, exit_code_for};
use crate::config::stress::StressDoc;
use crate::engine::market::format_utc;
use crate::runtime::research::stress::{StressOutcome as Outcome, StressPlan, StressRequest};

/// Arguments of `dsl stress`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bot manifest.
    pub path: PathBuf,
    /// The scenarios (`kind: stress`).
    #[arg(long)]
    pub scenarios: PathBuf,
    /// Journal database (default: the manifest's `database`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Do not write a journal.
    #[arg(long, conflicts_with = "journal")]
    pub no_journal: bool,
    /// Output format: the verdict table (`human`) or one JSON document (`json`).
    #[arg(long, value_enum, default_value_t = super::validate::Format::Human)]
    pub format: super::validate::Format,
}

/// Runs the command.
pub fn run(args: Args, out: Out) -> u8 {
    let request = StressRequest {
        manifest: args.path.clone(),
        scenarios: args.scenarios.clone(),
        journal: super::journal_choice(args.journal.as_deref(), args.no_journal),
    };
    let plan = match StressPlan::load(request) {
        Ok(p) => p,
        Err(diags) => {
            out.diags(&diags);
            return exit_code_for(&diags);
        }
    };
    let bar = super::progress(0, "stress {bar:30} {pos}/{len} replays  {msg}", false);
    let outcomes = plan.run_with(&mut |done, total, name| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    });
    bar.finish_and_clear();
    let outcomes = match outcomes {
        Ok(o) => o,
        Err(d) => return out.fail(&d),
    };
    let journal_path = plan.journal_path();
    let doc = plan.doc();
    match args.format {
        super::validate::Format::Json => {
            super::print_json(&report_json(doc, &plan.settings().bot, &outcomes, journal_path.as_ref()))
        }
        super::validate::Format::Human => {
            print!("{}", report(doc, &plan.settings().bot, &outcomes, journal_path.as_ref()))
        }
    }
    if let Some(p) = &journal_path {
        super::gate::after_run(p, plan.bundle());
    }
    if outcomes.iter().any(|o| o.result.metrics.max_drawdown > doc.max_drawdown) { EXIT_INVALID } else { EXIT_OK }
}

/// The verdicts as one JSON document: `bot`, `stress`, `max_drawdown` (fraction), `breached`,
/// `journal`, and per scenario (the unchanged `baseline` first) its `name`, `shock`, `passed`,
/// `metrics` (as a backtest's), `denied`/`blocked`/`warned` counts by rule, `state_changes`
/// and `final_state`.
fn report_json(doc: &StressDoc, bot: &str, outcomes: &[Outcome], journal: Option<&PathBuf>) -> serde_json::Value {
    let scenarios: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            let st = &o.result.stats;
            let m = &o.result.metrics;
            serde_json::json!({
                "name": o.name,
                "shock": o.what,
                "passed": m.max_drawdown <= doc.max_drawdown,
                "metrics": crate::runtime::journal::report::metrics_json(m),
                "denied": st.denials,
                "blocked": st.blocked_by_state,
                "warned": st.warnings,
                "state_changes": st.state_changes.iter().map(|c| serde_json::json!({
                    "time": format_utc(c.ts),
                    "from": c.from.as_str(),
                    "to": c.to.as_str(),
                    "reason": c.reason,
                    "message": c.message,
                })).collect::<Vec<_>>(),
                "final_state": st.state_changes.last().map_or("ACTIVE", |c| c.to.as_str()),
            })
        })
        .collect();
    serde_json::json!({
        "bot": bot,
        "stress": doc.name.value,
        "max_drawdown": doc.max_drawdown,
        "breached": outcomes.iter().any(|o| o.result.metrics.max_drawdown > doc.max_drawdown),
        "journal": journal.map(|p| p.display().to_string()),
        "scenarios": scenarios,
    })
}

fn report(doc: &StressDoc, bot: &str, outcomes: &[Outcome], journal: Option<&PathBuf>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stress {bot} with {} ({} scenarios; max drawdown allowed {:.2}%)\n",
        doc.name.value,
        outcomes.len() - 1,
        doc.max_drawdown * 100.0
    );
    let _ = writeln!(
        s,
        "  {:<18} {:>9} {:>9}  {:<6} {:>6} {:>7} {:>8}  state",
        "scenario", "return", "max dd", "result", "trades", "denied", "blocked"
    );
    for o in outcomes {
        let m = &o.result.metrics;
        let st = &o.result.stats;
        let denied: u64 = st.denials.values().sum();
        let blocked: u64 = st.blocked_by_state.values().sum();
        let state = st.state_changes.last().map_or("ACTIVE".to_string(), |c| c.to.as_str().to_string());
        let _ = writeln!(
            s,
            "  {:<18} {:>8.2}% {:>8.2}%  {:<6} {:>6} {:>7} {:>8}  {}",
            o.name,
            m.total_return * 100.0,
            m.max_drawdown * 100.0,
            if m.max_drawdown <= doc.max_drawdown { "pass" } else { "FAIL" },
            m.trade_count,
            denied,
            blocked,
            state
        );
    }
    let _ = writeln!(s, "\n  guardrail activity:");
    for o in outcomes {
        let st = &o.result.stats;
        let _ = writeln!(s, "  {} ({}):", o.name, o.what);
        let mut any = false;
        for c in &st.state_changes {
            any = true;
            let _ = writeln!(
                s,
                "    {} {} -> {} by {}: {}",
                format_utc(c.ts),
                c.from.as_str(),
                c.to.as_str(),
                c.reason,
                c.message
            );
        }
        for (k, n) in &st.denials {
            any = true;
            let _ = writeln!(s, "    denied {n} x by {k}");
        }
        for (k, n) in &st.blocked_by_state {
            any = true;
            let _ = writeln!(s, "    blocked {n} x ({k})");
        }
        for (k, n) in &st.warnings {
            any = true;
            let _ = writeln!(s, "    warned {n} x by {k}");
        }
        if !any {
            let _ = writeln!(s, "    none fired");
        }
    }
    if let Some(p) = journal {
        let _ = writeln!(s, "\n  journal       {} run(s) of kind `stress` in {}", outcomes.len(), p.display());
    }
    s
}
