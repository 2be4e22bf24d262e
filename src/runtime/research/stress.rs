//! `dsl stress`'s typed plan: the bot replayed on its real data once as is (the baseline) and
//! once per scenario of a `kind: stress` file (a crash, a gap, volatility, missing bars, a
//! broker outage; see [`crate::engine::stress`]), each run journaled (`runs.kind = 'stress'`,
//! its scenario and verdict in `metrics`) for phase gates to read.
//!
//! [`StressPlan::load`] loads the bot, the scenarios and the bars and resolves every scenario
//! (its symbols and times) before any runs, so a bad scenario file changes nothing;
//! [`StressPlan::run`] runs them in file order after the baseline.

use std::path::{Path, PathBuf};

use crate::config::stress::{Scenario, ShockSpec, StressDoc};
use crate::config::{Document, read_document};
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::backtest::{BacktestOutput, run_engine};
use crate::engine::events::{EventSink, NullSink};
use crate::engine::market::{BarSeries, format_utc};
use crate::engine::pipeline::{Engine, EngineSettings};
use crate::engine::stress::{apply, outage_window};
use crate::runtime::data::timeparse::parse_bound;
use crate::runtime::journal::report::metrics_json;
use crate::runtime::journal::{Journal, RunInfo};
use crate::runtime::library::loader::read_source;
use crate::runtime::library::source::DataRequest;

use super::backtest::{BacktestPlan, BacktestRequest, JournalChoice};

/// What the operator asked `dsl stress` for.
#[derive(Debug, Clone)]
pub struct StressRequest {
    /// The bot manifest (`kind: bot`).
    pub manifest: PathBuf,
    /// The scenarios (`kind: stress`).
    pub scenarios: PathBuf,
    /// Where the runs are journaled.
    pub journal: JournalChoice,
}

/// One run's outcome: the scenario's name (`baseline` first), what it did, what the engine
/// produced.
pub struct StressOutcome {
    /// Scenario name.
    pub name: String,
    /// The shock in words (symbols, size, time in UTC).
    pub what: String,
    /// The run's output.
    pub result: BacktestOutput,
}

/// A resolved scenario: the scenario, its start and end (UTC seconds).
type Resolved = (Scenario, i64, Option<i64>);

/// A stress test ready to run: the bot, its bars, every scenario resolved.
pub struct StressPlan {
    backtest: BacktestPlan,
    doc: StressDoc,
    series: Vec<BarSeries>,
    scenarios: Vec<Resolved>,
}

impl StressPlan {
    /// Loads the bot, the scenarios and the bars, and resolves every scenario.
    ///
    /// # Errors
    /// Every diagnostic found: documents that do not load, a manifest that is not a bot, a
    /// scenario naming a symbol without data or a time that does not parse, bars that cannot
    /// be loaded.
    pub fn load(request: StressRequest) -> Result<Self, Vec<Diagnostic>> {
        let backtest = BacktestPlan::load(BacktestRequest {
            manifest: request.manifest.clone(),
            data: DataRequest::default(),
            cash: None,
            commission: None,
            slippage: None,
            fill: None,
            journal: request.journal.clone(),
        })?;
        let doc = read_scenarios(&request.scenarios)?;
        if backtest.bundle().bot.is_none() {
            return Err(vec![Diagnostic::error(
                codes::RUNTIME_REFUSED,
                "`dsl stress` runs a bot manifest (`kind: bot`)",
            )]);
        }
        let series = backtest.market().map_err(|d| vec![d])?.series;
        let symbols: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
        let Some(first) = series.iter().max_by_key(|s| s.len()) else {
            return Err(vec![Diagnostic::error(codes::IO, "the bot has no bars")]);
        };
        let middle = first.ts[first.len() / 2];
        let mut scenarios = Vec::new();
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
            scenarios.push((s.clone(), at, until));
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        Ok(StressPlan { backtest, doc, series, scenarios })
    }

    /// The documents' warnings.
    pub fn warnings(&self) -> &[Diagnostic] {
        self.backtest.warnings()
    }

    /// The scenario file.
    pub fn doc(&self) -> &StressDoc {
        &self.doc
    }

    /// The bot's run settings.
    pub fn settings(&self) -> &EngineSettings {
        self.backtest.settings()
    }

    /// The journal the runs go to, if any.
    pub fn journal_path(&self) -> Option<PathBuf> {
        self.backtest.journal_path()
    }

    /// The compiled bot.
    pub fn bundle(&self) -> &std::sync::Arc<crate::dsl::bundle::Bundle> {
        self.backtest.bundle()
    }

    /// Runs the baseline, then every scenario, each journaled as its own `stress` run.
    ///
    /// # Errors
    /// When a run cannot be journaled (the runs before it are).
    pub fn run(&self) -> Result<Vec<StressOutcome>, Diagnostic> {
        self.run_with(&mut |_, _, _| {})
    }

    /// [`StressPlan::run`], telling `progress(done, total, scenario)` after each replay (the
    /// baseline counts as one).
    ///
    /// # Errors
    /// As [`StressPlan::run`].
    pub fn run_with(&self, progress: &mut dyn FnMut(usize, usize, &str)) -> Result<Vec<StressOutcome>, Diagnostic> {
        let journal_path = self.journal_path();
        let settings = self.settings();
        let bundle = self.bundle();
        let symbols: Vec<String> = self.series.iter().map(|s| s.symbol.clone()).collect();
        let mut outcomes = Vec::new();
        for scenario in std::iter::once(None).chain(self.scenarios.iter().map(Some)) {
            let mut shocked: Vec<BarSeries> = self.series.clone();
            let mut outages = Vec::new();
            let (name, what) = match scenario {
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
                Some(p) => Some(Journal::begin(
                    p,
                    &RunInfo {
                        kind: "stress".into(),
                        bot: settings.bot.clone(),
                        bundle_revision: bundle.revision.clone(),
                        settings: serde_json::to_value(crate::runtime::journal::settings::StressSettings {
                            stress: self.doc.name.value.clone(),
                            scenario: name.clone(),
                            shock: what.clone(),
                        })
                        .unwrap_or_default(),
                        symbols: symbols.clone(),
                    },
                )?),
                None => None,
            };
            // Each run's orders carry its own run in their ids.
            let run = EngineSettings { run: journal.as_ref().map_or(0, Journal::run_id), ..settings.clone() };
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
                m["max_drawdown_threshold"] = serde_json::json!(self.doc.max_drawdown);
                m["passed"] = serde_json::json!(result.metrics.max_drawdown <= self.doc.max_drawdown);
                m["guardrails"] = serde_json::json!({
                    "denials": result.stats.denials,
                    "blocked_by_state": result.stats.blocked_by_state,
                    "state_changes": result.stats.state_changes,
                });
                j.finish(result.first_ts, result.last_ts, &m)?;
            }
            progress(outcomes.len() + 1, self.scenarios.len() + 1, &name);
            outcomes.push(StressOutcome { name, what, result });
        }
        Ok(outcomes)
    }
}

/// Reads a `kind: stress` file.
fn read_scenarios(path: &Path) -> Result<StressDoc, Vec<Diagnostic>> {
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

/// The shock of `s` starting at `at` (UTC seconds), in words.
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
