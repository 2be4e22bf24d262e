//! `dsl stress BOT.yaml --scenarios FILE.yaml`: replays the bot on its real data once as is
//! and once per scenario (a crash, a gap, volatility, missing bars, a broker outage; see
//! `engine::stress`), and reports each run's drawdown against the file's threshold and the
//! guardrails that fired. Every run is journaled (`runs.kind = 'stress'`, its scenario and
//! verdict in `metrics`) for phase gates to read. Exit code 1 when a scenario breaches the
//! threshold.
//!
//! Its `run` (about 140 lines) is the command's sequence: load, baseline run, one run per
//! scenario with its journal, the verdict table; kept in order.

use std::path::PathBuf;
use std::sync::Arc;

use super::{EXIT_INVALID, EXIT_OK, Out, exit_code_for};
use crate::config::stress::{Scenario, ShockSpec, StressDoc};
use crate::config::{Document, read_document};
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::backtest::{BacktestOutput, run_engine};
use crate::engine::costs::CostModel;
use crate::engine::events::{EventSink, NullSink};
use crate::engine::market::{BarSeries, format_utc};
use crate::engine::pipeline::{Engine, EngineSettings};
use crate::engine::stress::{apply, outage_window};
use crate::runtime::data::timeparse::parse_bound;
use crate::runtime::journal::report::metrics_json;
use crate::runtime::journal::{Journal, RunInfo};
use crate::runtime::library::loader::{load_bundle, read_source};
use crate::runtime::library::source::{DataRequest, load_for_bundle};

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
}

/// One run's outcome.
struct Outcome {
    name: String,
    what: String,
    result: BacktestOutput,
}

fn read_scenarios(path: &std::path::Path) -> Result<StressDoc, Vec<Diagnostic>> {
    let src = read_source(path).map_err(|d| vec![d])?;
    let mut diags = Vec::new();
    match read_document(&src, &mut diags) {
        Some(Document::Stress(s)) if !diags.iter().any(Diagnostic::is_error) => Ok(s),
        Some(other) if !diags.iter().any(Diagnostic::is_error) => Err(vec![
            Diagnostic::error(
                codes::UNKNOWN_KIND,
                format!("`{}` is a {} file, not a stress file", path.display(), other.kind()),
            )
            .help("give a `kind: stress` file with `scenarios`"),
        ]),
        _ => Err(diags),
    }
}

fn describe(s: &Scenario, at: i64) -> String {
    let when = format_utc(at);
    let on = if s.symbols.is_empty() {
        "every symbol".to_string()
    } else {
        s.symbols.iter().map(|x| x.value.as_str()).collect::<Vec<_>>().join(", ")
    };
    match s.shock.value {
        ShockSpec::Crash(d) => format!("{on} crash {:.0}% within the bar of {when}", d * 100.0),
        ShockSpec::GapDown(d) => format!("{on} gap down {:.0}% at the open of {when}", d * 100.0),
        ShockSpec::Volatility(f) => format!("{on} volatility x{f} from {when}"),
        ShockSpec::MissingBars(n) => format!("{on} missing {n} bars from {when}"),
        ShockSpec::BrokerOutage(n) => format!("broker refuses orders for {n} bars from {when}"),
    }
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
    let doc = match read_scenarios(&args.scenarios) {
        Ok(d) => d,
        Err(diags) => {
            out.diags(&diags);
            return exit_code_for(&diags);
        }
    };
    let bundle = Arc::new(loaded.bundle.clone());
    let Some(bot) = bundle.bot.as_ref() else {
        return out.fail(&Diagnostic::error(codes::UNKNOWN_KIND, "`dsl stress` runs a bot manifest (`kind: bot`)"));
    };
    let settings = EngineSettings {
        bot: bot.name.value.clone(),
        run: 0,
        starting_cash: bot.starting_cash.value,
        costs: CostModel::from(&bot.costs),
        fill: bot.fill.value,
    };
    let req = DataRequest { data: vec![], store: None, from: None, to: None, timezone: None, time_format: None };
    let market = match load_for_bundle(&loaded, &req) {
        Ok(m) => m,
        Err(d) => return out.fail(&d),
    };
    let series = market.series;
    let symbols: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
    let Some(first) = series.iter().max_by_key(|s| s.len()) else {
        return out.fail(&Diagnostic::error(codes::IO, "the bot has no bars"));
    };
    let middle = first.ts[first.len() / 2];

    // Resolve every scenario before running any.
    let mut plans = Vec::new();
    let mut diags = Vec::new();
    let time = |s: &Option<crate::diagnostics::Spanned<String>>, diags: &mut Vec<Diagnostic>| match s {
        None => None,
        Some(t) => match parse_bound(&t.value) {
            Ok(v) => Some(v),
            Err(e) => {
                diags.push(Diagnostic::error(codes::INVALID_VALUE, e).at(&doc.source, t.span));
                None
            }
        },
    };
    for s in &doc.scenarios {
        for sym in &s.symbols {
            if !symbols.contains(&sym.value) {
                diags.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("the bot has no data for `{}`", sym.value))
                        .at(&doc.source, sym.span)
                        .help(format!("symbols: {}", symbols.join(", "))),
                );
            }
        }
        let at = time(&s.at, &mut diags).unwrap_or(middle);
        let until = time(&s.until, &mut diags);
        plans.push((s, at, until));
    }
    if !diags.is_empty() {
        out.diags(&diags);
        return EXIT_INVALID;
    }

    let journal_path = if args.no_journal { None } else { loaded.journal(args.journal.as_deref()) };
    let mut outcomes = Vec::new();
    let runs = std::iter::once(None).chain(plans.iter().map(Some));
    for plan in runs {
        let mut shocked: Vec<BarSeries> = series.clone();
        let mut outages = Vec::new();
        let (name, what) = match plan {
            None => ("baseline".to_string(), "the real data, unchanged".to_string()),
            Some((s, at, until)) => {
                for ser in shocked.iter_mut() {
                    if !s.symbols.is_empty() && !s.symbols.iter().any(|x| x.value == ser.symbol) {
                        continue;
                    }
                    match s.shock.value {
                        ShockSpec::BrokerOutage(n) => outages.extend(outage_window(ser, *at, n)),
                        shock => apply(ser, shock, *at, *until),
                    }
                }
                (s.name.value.clone(), describe(s, *at))
            }
        };
        let mut journal = match &journal_path {
            Some(p) => {
                let info = RunInfo {
                    kind: "stress".into(),
                    bot: settings.bot.clone(),
                    bundle_revision: bundle.revision.clone(),
                    settings: serde_json::to_value(crate::runtime::journal::settings::StressSettings {
                        stress: doc.name.value.clone(),
                        scenario: name.clone(),
                        shock: what.clone(),
                    })
                    .unwrap_or_default(),
                    symbols: symbols.clone(),
                };
                match Journal::begin(p, &info) {
                    Ok(j) => Some(j),
                    Err(d) => return out.fail(&d),
                }
            }
            None => None,
        };
        // Each run's orders carry its own run in their ids.
        let run = EngineSettings { run: journal.as_ref().map_or(0, |j| j.run_id()), ..settings.clone() };
        let mut engine = Engine::new(bundle.clone(), &symbols, run);
        engine.set_outages(outages);
        let mut null = NullSink;
        let sink: &mut dyn EventSink = match journal.as_mut() {
            Some(j) => j,
            None => &mut null,
        };
        let result = run_engine(engine, &shocked, sink);
        if let Some(j) = journal {
            let mut m = metrics_json(&result.metrics);
            m["scenario"] = serde_json::json!(name);
            m["max_drawdown_threshold"] = serde_json::json!(doc.max_drawdown);
            m["passed"] = serde_json::json!(result.metrics.max_drawdown <= doc.max_drawdown);
            m["guardrails"] = serde_json::json!({
                "denials": result.stats.denials,
                "blocked_by_state": result.stats.blocked_by_state,
                "state_changes": result.stats.state_changes,
            });
            if let Err(d) = j.finish(result.first_ts, result.last_ts, &m) {
                return out.fail(&d);
            }
        }
        outcomes.push(Outcome { name, what, result });
    }
    print!("{}", report(&doc, &settings.bot, &outcomes, journal_path.as_ref()));
    if let Some(p) = &journal_path {
        super::gate::after_run(p, &bundle);
    }
    if outcomes.iter().any(|o| o.result.metrics.max_drawdown > doc.max_drawdown) { EXIT_INVALID } else { EXIT_OK }
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
