//! `dsl backtest`'s typed plan: from what the operator asked for ([`BacktestRequest`], the
//! command's parsed arguments) to a finished, journaled run ([`BacktestRun`]).
//!
//! 1. [`BacktestPlan::load`] loads and compiles the documents (their warnings go to the
//!    operator) and settles the run's money: the manifest's starting cash, costs and fill
//!    timing, each overridden by the request;
//! 2. [`BacktestPlan::market`] loads the bars the bot names (or the request's), bars before
//!    the trading start only warming the indicators up;
//! 3. [`BacktestPlan::run`] runs the engine over them ([`crate::engine::backtest`]) and, unless
//!    the request turned the journal off, journals the run (`kind = 'backtest'`) with its
//!    typed settings.
//!
//! The bars are loaded once and only read by a run, so several runs of one plan (variants,
//! sweeps) share them.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::manifest::FillTiming;
use crate::diagnostics::Diagnostic;
use crate::dsl::bundle::Bundle;
use crate::engine::backtest::{self, BacktestOutput};
use crate::engine::costs::CostModel;
use crate::engine::events::{EventSink, NullSink};
use crate::engine::pipeline::EngineSettings;
use crate::runtime::journal::report::{self, ReportContext};
use crate::runtime::journal::settings::RunSettings;
use crate::runtime::journal::{Journal, RunInfo};
use crate::runtime::library::loader::{Loaded, load_bundle};
use crate::runtime::library::source::{DataRequest, MarketData, load_for_bundle};

/// Starting cash when neither the request nor a bot manifest gives one (currency).
pub const DEFAULT_CASH: f64 = 100_000.0;

/// Where a backtest is journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalChoice {
    /// The manifest's `database`, if it names one.
    Manifest,
    /// This file.
    At(PathBuf),
    /// Not journaled.
    Off,
}

/// What the operator asked `dsl backtest` for, parsed and typed.
#[derive(Debug, Clone)]
pub struct BacktestRequest {
    /// A bot manifest or a single strategy document.
    pub manifest: PathBuf,
    /// The bars: `--data`/`--store` sources, the period, CSV reading options.
    pub data: DataRequest,
    /// Starting cash (currency; default the manifest's, else [`DEFAULT_CASH`]).
    pub cash: Option<f64>,
    /// Commission (fraction of each fill's notional; default the manifest's).
    pub commission: Option<f64>,
    /// Slippage (fraction of the price; default the manifest's).
    pub slippage: Option<f64>,
    /// When market orders fill (default the manifest's, else the next bar's open).
    pub fill: Option<FillTiming>,
    /// Where the run is journaled.
    pub journal: JournalChoice,
}

/// A loaded backtest: the compiled documents and the run's money and costs.
pub struct BacktestPlan {
    request: BacktestRequest,
    loaded: Loaded,
    bundle: Arc<Bundle>,
    settings: EngineSettings,
}

/// A finished backtest: what it produced, and what its reports say it was.
pub struct BacktestRun {
    /// The run as reports describe it (bot, revision, settings, journal run).
    pub context: ReportContext,
    /// What the engine produced.
    pub output: BacktestOutput,
    /// The journal the run went to, if any.
    pub journal: Option<PathBuf>,
}

impl BacktestPlan {
    /// Loads and compiles the request's documents and settles the run's settings.
    ///
    /// # Errors
    /// Every diagnostic of documents that do not load.
    pub fn load(request: BacktestRequest) -> Result<Self, Vec<Diagnostic>> {
        let loaded = load_bundle(&request.manifest)?;
        let bundle = Arc::new(loaded.bundle.clone());
        let bot = bundle.bot.as_ref();
        let manifest = bot.map(|b| CostModel::from(&b.costs)).unwrap_or_default();
        let settings = EngineSettings {
            bot: bot.map_or_else(|| bundle.strategies[0].name().to_string(), |b| b.name.value.clone()),
            run: 0,
            starting_cash: request.cash.or(bot.map(|b| b.starting_cash.value)).unwrap_or(DEFAULT_CASH),
            costs: CostModel {
                commission: request.commission.unwrap_or(manifest.commission),
                slippage: request.slippage.unwrap_or(manifest.slippage),
                ..manifest
            },
            fill: request.fill.or(bot.map(|b| b.fill.value)).unwrap_or(FillTiming::NextOpen),
        };
        Ok(BacktestPlan { request, loaded, bundle, settings })
    }

    /// The documents' warnings.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.loaded.warnings
    }

    /// The run's settings (bot name, cash, costs, fill timing).
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The compiled bot.
    pub fn bundle(&self) -> &Arc<Bundle> {
        &self.bundle
    }

    /// Loads the bars of every symbol the bot trades.
    ///
    /// # Errors
    /// A symbol without data, an unreadable or invalid file, a bar store problem.
    pub fn market(&self) -> Result<MarketData, Diagnostic> {
        load_for_bundle(&self.loaded, &self.request.data)
    }

    /// [`BacktestPlan::market`], telling `progress(done, total)` after each symbol.
    ///
    /// # Errors
    /// As [`BacktestPlan::market`].
    pub fn market_with(&self, progress: &mut dyn FnMut(usize, usize)) -> Result<MarketData, Diagnostic> {
        crate::runtime::library::source::load_for_bundle_with(&self.loaded, &self.request.data, progress)
    }

    /// The journal the run goes to, if any.
    pub fn journal_path(&self) -> Option<PathBuf> {
        match &self.request.journal {
            JournalChoice::Off => None,
            JournalChoice::Manifest => self.loaded.journal(None),
            JournalChoice::At(p) => self.loaded.journal(Some(p)),
        }
    }

    /// Runs the bot over `market` and journals the run (see the module doc).
    ///
    /// # Errors
    /// When the journal cannot be opened or the run cannot be recorded in it (the run's
    /// output is then not reported as journaled).
    pub fn run(&self, market: &MarketData) -> Result<BacktestRun, Diagnostic> {
        let mut settings = self.settings.clone();
        let settings_json = RunSettings::of(&settings).to_json();
        let journal_path = self.journal_path();
        let symbols: Vec<String> = market.series.iter().map(|s| s.symbol.clone()).collect();
        let mut journal = match &journal_path {
            Some(p) => Some(Journal::begin(
                p,
                &RunInfo {
                    kind: "backtest".into(),
                    bot: settings.bot.clone(),
                    bundle_revision: self.bundle.revision.clone(),
                    settings: settings_json.clone(),
                    symbols: symbols.clone(),
                },
            )?),
            None => None,
        };
        // The run's orders carry the journal run in their ids.
        settings.run = journal.as_ref().map_or(0, Journal::run_id);
        let mut null = NullSink;
        let sink: &mut dyn EventSink = match journal.as_mut() {
            Some(j) => j,
            None => &mut null,
        };
        let output = backtest::run_from(self.bundle.clone(), &market.series, settings.clone(), market.trade_from, sink);
        let run_id = match journal {
            Some(j) => Some(j.finish(output.first_ts, output.last_ts, &report::metrics_json(&output.metrics))?),
            None => None,
        };
        let context = ReportContext {
            bot: settings.bot.clone(),
            revision: self.bundle.revision.clone(),
            strategies: self.bundle.strategies.iter().map(|s| s.name().to_string()).collect(),
            symbols,
            settings: settings_json,
            run_id,
            journal: journal_path.as_ref().map(|p| p.display().to_string()),
            warmup: market.trade_from.map(|f| (market.warmup_bars, f)),
        };
        Ok(BacktestRun { context, output, journal: journal_path })
    }
}
