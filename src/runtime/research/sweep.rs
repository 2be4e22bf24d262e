//! `dsl sweep`'s typed plan: the bot loaded once ([`super::backtest::BacktestPlan`]), the
//! sweep's settings (the `kind: sweep` document, then the command's flags), the deterministic
//! trial list ([`crate::engine::sweep`]) and running this shard's part of it on every core
//! over bars loaded once and shared read-only.
//!
//! Each trial runs through the same engine as `dsl backtest` ([`crate::engine::backtest`]),
//! unjournaled; the sweep journals its trials' metrics as one run (`kind = 'sweep'`).
//! A [`SweepResult`] holds what identifies the sweep (bot, revision, space, method, seed,
//! objective, data) and one row per finished trial; results of shards of one sweep merge
//! ([`merge`]) into exactly the result of one process.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::backtest::{BacktestPlan, BacktestRequest};
use crate::config::document::{Document, read_document};
use crate::config::expr_source::ExprSource;
use crate::config::search_space::SearchSpace;
use crate::config::strategy::ParamValue;
use crate::config::sweep::{Direction, Method, SweepDoc};
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::catalog::{FIELDS, FieldId};
use crate::dsl::check::TExpr;
use crate::engine::backtest::{self, BacktestOutput};
use crate::engine::events::NullSink;
use crate::engine::overfitting::{blocks_for, deflated_sharpe, pbo, returns_of, sharpe};
use crate::engine::sweep::{self as plan, SweptParam, Trial};
use crate::runtime::library::loader::read_source;
use crate::runtime::library::source::MarketData;

/// Random search's trial count when neither the document nor the flags give one.
pub const DEFAULT_TRIALS: u32 = 100;
/// The objective when neither the document nor the flags give one.
pub const DEFAULT_OBJECTIVE: &str = "metric.sharpe";

/// What the operator asked `dsl sweep` for, parsed and typed.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    /// The bot, its data and money, as for `dsl backtest` (the journal choice applies to the
    /// sweep's record).
    pub backtest: BacktestRequest,
    /// A `kind: sweep` document.
    pub sweep: Option<PathBuf>,
    /// The search method (overrides the document).
    pub method: Option<Method>,
    /// Random search: how many trials (overrides the document).
    pub trials: Option<u32>,
    /// Random search: the seed (overrides the document; default 0).
    pub seed: Option<u64>,
    /// The objective expression (overrides the document).
    pub objective: Option<String>,
    /// Maximise or minimise (overrides the document; default maximise).
    pub direction: Option<Direction>,
    /// More constraints (added to the document's).
    pub constraints: Vec<String>,
    /// The heat map's two params (overrides the document).
    pub heatmap: Option<(String, String)>,
    /// Run only part `k` of `n` (1-based): trials whose number is `k - 1` modulo `n`.
    pub shard: Option<(usize, usize)>,
}

/// One searched param as a result file describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// Its name in the sweep (see [`SweptParam::name`]).
    pub name: String,
    /// The strategy that declares it.
    pub strategy: String,
    /// Its space, as a short text (`[5, 30] step 5`, `choices [20, 25]`).
    pub space: String,
}

/// What identifies a sweep: two results merge only when these are equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepIdentity {
    /// The sweep's name (the document's, else `sweep`).
    pub name: String,
    /// The bot.
    pub bot: String,
    /// The bundle revision (hash of the documents' texts).
    pub bundle_revision: String,
    /// `grid` or `random`.
    pub method: Method,
    /// Random search's seed.
    pub seed: u64,
    /// Trials in the whole sweep (every shard).
    pub trials_total: usize,
    /// The objective expression.
    pub objective: String,
    /// Maximise or minimise.
    pub direction: Direction,
    /// The constraints.
    pub constraints: Vec<String>,
    /// The searched params.
    pub params: Vec<ParamInfo>,
    /// The heat map's params, if chosen.
    pub heatmap: Option<(String, String)>,
    /// The bars: `SYMBOL bars first_ts..last_ts` per symbol (UTC seconds).
    pub data: Vec<String>,
    /// Starting cash (currency), commission and slippage (fractions), fill timing.
    pub money: String,
}

/// One finished trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRow {
    /// Its number in the sweep's list.
    pub trial: usize,
    /// Its params: name → value.
    pub params: IndexMap<String, serde_json::Value>,
    /// The objective (`None`: undefined, e.g. a Sharpe ratio without trades).
    pub objective: Option<f64>,
    /// Every `metric.*` field (`None`: undefined).
    pub metrics: IndexMap<String, Option<f64>>,
    /// Its return on each UTC day with bars (fractions; the same days for every trial): its
    /// column of the trial matrix that PBO and the deflated Sharpe ratio read.
    pub daily_returns: Vec<f64>,
}

/// What the whole trial matrix says about the search (a complete sweep only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// Trials run (`metric.trials`).
    pub trials: usize,
    /// The best trial by the objective.
    pub best_trial: Option<usize>,
    /// Probability of backtest overfitting by CSCV over the daily returns, trials chosen
    /// in-sample by their Sharpe ratio (`metric.pbo`; [`crate::engine::overfitting`]).
    pub pbo: Option<f64>,
    /// Blocks of the CSCV split.
    pub pbo_blocks: usize,
    /// The best trial's deflated Sharpe ratio given every trial's (`metric.deflated_sharpe`).
    pub deflated_sharpe: Option<f64>,
    /// Days in the trial matrix.
    pub periods: usize,
}

/// A sweep's result, or one shard's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// What the sweep is.
    pub sweep: SweepIdentity,
    /// The shard this result covers (`K/N`), `None` for a whole sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Finished trials, by trial number.
    pub trials: Vec<TrialRow>,
    /// PBO and the deflated Sharpe ratio, once every trial is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SweepSummary>,
}

/// A loaded sweep: the bot, the trial list and how trials are judged.
pub struct SweepPlan {
    backtest: BacktestPlan,
    params: Vec<SweptParam>,
    /// The trial list (empty for TPE, whose trials are chosen as results come in).
    trials: Vec<Trial>,
    constraints: Vec<plan::Constraint>,
    count: usize,
    objective: TExpr,
    identity: SweepIdentity,
    shard: Option<(usize, usize)>,
    declared: usize,
}

impl SweepPlan {
    /// Loads the bot and the sweep document, applies the flags, and makes the trial list.
    ///
    /// # Errors
    /// Every diagnostic of documents that do not load, an objective or constraint that does
    /// not check, a search space a method cannot use, a bad shard.
    pub fn load(
        request: SweepRequest,
        market: impl FnOnce(&BacktestPlan) -> Result<MarketData, Diagnostic>,
    ) -> Result<(Self, MarketData), Vec<Diagnostic>> {
        let backtest = BacktestPlan::load(request.backtest.clone())?;
        let doc = match &request.sweep {
            Some(p) => Some(read_sweep_doc(p)?),
            None => None,
        };
        let params = plan::swept_params(backtest.bundle());
        let method = request.method.or(doc.as_ref().and_then(|d| d.method)).unwrap_or(Method::Grid);
        let count = request.trials.or(doc.as_ref().and_then(|d| d.trials)).unwrap_or(DEFAULT_TRIALS) as usize;
        let seed = request.seed.or(doc.as_ref().and_then(|d| d.seed)).unwrap_or(0);
        let direction = request.direction.or(doc.as_ref().and_then(|d| d.direction)).unwrap_or(Direction::Maximize);
        let objective_src = match (&request.objective, doc.as_ref().and_then(|d| d.objective.clone())) {
            (Some(text), _) => ExprSource::standalone("--objective", text),
            (None, Some(src)) => src,
            (None, None) => ExprSource::standalone("objective", DEFAULT_OBJECTIVE),
        };
        let objective = plan::compile_objective(&objective_src)?;
        let mut constraint_srcs: Vec<ExprSource> = doc.as_ref().map(|d| d.constraints.clone()).unwrap_or_default();
        constraint_srcs.extend(request.constraints.iter().map(|c| ExprSource::standalone("--constraint", c)));
        let defaults: Vec<ParamValue> = params
            .iter()
            .map(|p| {
                let doc = &backtest.bundle().strategies[p.strategy].doc;
                doc.param(&p.param).map(|d| d.value.value.clone()).unwrap_or(ParamValue::Bool(false))
            })
            .collect();
        let constraints = plan::compile_constraints(&constraint_srcs, &params, &defaults)?;
        let trials = match method {
            Method::Tpe => {
                if request.shard.is_some() {
                    return Err(vec![
                        Diagnostic::error(
                            codes::BAD_ARGUMENT,
                            "a TPE search cannot be split into shards: each batch depends on the results before it",
                        )
                        .help("shard a `grid` or `random` search"),
                    ]);
                }
                // Checks the space and the constraints as a random search would.
                plan::trials(&params, Method::Random, 1, seed, &constraints).map_err(|d| vec![d])?;
                Vec::new()
            }
            _ => plan::trials(&params, method, count, seed, &constraints).map_err(|d| vec![d])?,
        };
        let heatmap = request
            .heatmap
            .clone()
            .or_else(|| doc.as_ref().and_then(|d| d.heatmap.as_ref().map(|(a, b)| (a.value.clone(), b.value.clone()))));
        if let Some((a, b)) = &heatmap {
            for n in [a, b] {
                if !params.iter().any(|p| &p.name == n) {
                    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                    return Err(vec![
                        Diagnostic::error(
                            codes::UNRESOLVED_REFERENCE,
                            format!("the heat map names `{n}`, which the sweep does not search"),
                        )
                        .help(format!("searched params: {}", names.join(", "))),
                    ]);
                }
            }
        }
        if let Some((k, n)) = request.shard
            && (n == 0 || k == 0 || k > n)
        {
            return Err(vec![
                Diagnostic::error(codes::BAD_ARGUMENT, format!("shard {k}/{n} does not exist"))
                    .help("write `--shard K/N` with 1 <= K <= N"),
            ]);
        }
        let market = market(&backtest).map_err(|d| vec![d])?;
        let s = backtest.settings();
        let identity = SweepIdentity {
            name: doc.as_ref().map_or_else(|| "sweep".to_string(), |d| d.name.value.clone()),
            bot: s.bot.clone(),
            bundle_revision: backtest.bundle().revision.clone(),
            method,
            seed,
            trials_total: if method == Method::Tpe { count } else { trials.len() },
            objective: objective_src.text.trim().to_string(),
            direction,
            constraints: constraint_srcs.iter().map(|c| c.text.trim().to_string()).collect(),
            params: params
                .iter()
                .map(|p| ParamInfo {
                    name: p.name.clone(),
                    strategy: backtest.bundle().strategies[p.strategy].name().to_string(),
                    space: describe(&p.space),
                })
                .collect(),
            heatmap,
            data: market.series.iter().map(describe_bars).collect(),
            money: format!(
                "cash {} commission {} slippage {} fill {:?}",
                s.starting_cash, s.costs.commission, s.costs.slippage, s.fill
            ),
        };
        let declared = backtest.bundle().strategies.iter().map(|s| s.doc.params.len()).sum();
        Ok((
            SweepPlan {
                backtest,
                params,
                trials,
                constraints,
                count,
                objective,
                identity,
                shard: request.shard,
                declared,
            },
            market,
        ))
    }

    /// What identifies the sweep.
    pub fn identity(&self) -> &SweepIdentity {
        &self.identity
    }

    /// The underlying backtest plan (the bot, its settings, the journal choice).
    pub fn backtest(&self) -> &BacktestPlan {
        &self.backtest
    }

    /// The trials this process runs (its shard's), in trial order.
    pub fn my_trials(&self) -> Vec<&Trial> {
        self.trials.iter().filter(|t| self.shard.is_none_or(|(k, n)| t.index % n == k - 1)).collect()
    }

    /// Runs `trial` through the backtest engine over `market`.
    ///
    /// # Errors
    /// The diagnostics of a strategy that does not compile with the trial's values.
    pub fn run_trial(&self, market: &MarketData, trial: &Trial) -> Result<BacktestOutput, Vec<Diagnostic>> {
        let bundle = plan::bundle_for(self.backtest.bundle(), &self.params, trial)?;
        let settings = self.backtest.settings().clone();
        Ok(backtest::run_from(std::sync::Arc::new(bundle), &market.series, settings, market.trade_from, &mut NullSink))
    }

    /// Runs this shard's trials not in `done` on every core of the current rayon pool,
    /// calling `progress` after each; stops starting new trials once `stop` is set (those
    /// finished are kept). Returns the finished rows (`done`'s included), by trial number.
    ///
    /// # Errors
    /// The first trial whose bot does not compile (its diagnostics' first message).
    pub fn run(
        &self,
        market: &MarketData,
        done: Vec<TrialRow>,
        stop: &AtomicBool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<SweepResult, Diagnostic> {
        let mut all = done;
        if self.identity.method == Method::Tpe {
            if !all.is_empty() {
                return Err(Diagnostic::error(codes::RUNTIME_REFUSED, "a TPE search cannot be resumed").help(
                    "run it again (the same seed tries the same points), or resume a `grid` or `random` search",
                ));
            }
            all = self.search(market, stop, progress)?.into_iter().map(|(_, r)| r).collect();
        } else {
            let have: std::collections::HashSet<usize> = all.iter().map(|r| r.trial).collect();
            let todo: Vec<&Trial> = self.my_trials().into_iter().filter(|t| !have.contains(&t.index)).collect();
            all.extend(self.evaluate(market, &todo, stop, progress)?);
        }
        all.sort_by_key(|r| r.trial);
        let mut sweep = self.identity.clone();
        if sweep.method == Method::Tpe && !stop.load(Ordering::SeqCst) {
            // TPE stops early when it keeps proposing points it has tried: what it ran is
            // the whole search.
            sweep.trials_total = all.len();
        }
        Ok(SweepResult { sweep, shard: self.shard.map(|(k, n)| format!("{k}/{n}")), trials: all, summary: None }
            .summarised())
    }

    /// Runs `trials` over `market` on every core of the current rayon pool, calling
    /// `progress` after each; stops starting new trials once `stop` is set. Returns the
    /// finished rows in `trials` order.
    ///
    /// # Errors
    /// The first trial whose bot does not compile (its diagnostics' first message).
    pub fn evaluate(
        &self,
        market: &MarketData,
        trials: &[&Trial],
        stop: &AtomicBool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Vec<TrialRow>, Diagnostic> {
        let rows: Vec<Option<Result<TrialRow, Diagnostic>>> = trials
            .par_iter()
            .map(|t| {
                if stop.load(Ordering::SeqCst) {
                    return None;
                }
                let row = self.run_trial(market, t).map(|out| self.row(t, &out)).map_err(|d| {
                    d.into_iter()
                        .next()
                        .unwrap_or_else(|| Diagnostic::error(codes::RUNTIME_REFUSED, "a trial's bot does not compile"))
                });
                progress();
                Some(row)
            })
            .collect();
        rows.into_iter().flatten().collect()
    }

    /// Runs the whole search over `market` (every trial of a grid or random search; a TPE
    /// search's batches): each trial with its row, in trial order.
    ///
    /// # Errors
    /// A trial's bot that does not compile, a stop.
    pub fn search(
        &self,
        market: &MarketData,
        stop: &AtomicBool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Vec<(Trial, TrialRow)>, Diagnostic> {
        if self.identity.method == Method::Tpe {
            return super::tpe::search(self, market, self.count, self.identity.seed, &self.constraints, stop, progress);
        }
        let all: Vec<&Trial> = self.trials.iter().collect();
        let rows = self.evaluate(market, &all, stop, progress)?;
        if rows.len() < all.len() {
            return Err(Diagnostic::error(codes::RUNTIME_REFUSED, "the search was stopped"));
        }
        Ok(self.trials.iter().cloned().zip(rows).collect())
    }

    /// The searched params, in trial-value order.
    pub fn params(&self) -> &[SweptParam] {
        &self.params
    }

    /// A finished trial's row.
    pub fn row(&self, trial: &Trial, out: &BacktestOutput) -> TrialRow {
        let fields = plan::trial_fields(out, self.declared);
        let objective = plan::objective_value(&self.objective, &fields);
        TrialRow {
            trial: trial.index,
            params: self.params.iter().zip(&trial.values).map(|(p, v)| (p.name.clone(), json_value(v))).collect(),
            objective: objective.is_finite().then_some(objective),
            metrics: metric_fields()
                .map(|(path, id)| {
                    let v = fields[id as usize];
                    (path.to_string(), v.is_finite().then_some(v))
                })
                .collect(),
            daily_returns: returns_of(out.metrics.starting_cash, out.curves.daily.iter().map(|d| d.1)),
        }
    }
}

/// The `metric.*` fields a trial reports, in catalog order: those a backtest defines (the
/// stress, run-record, guardrail-activity and execution ones are another run's evidence).
fn metric_fields() -> impl Iterator<Item = (&'static str, FieldId)> {
    FIELDS.iter().filter(|f| f.path.starts_with("metric.")).map(|f| (f.path, f.id)).filter(|(_, id)| {
        !matches!(
            id,
            FieldId::MetricStressMaxDrawdown
                | FieldId::MetricStressScenarios
                | FieldId::MetricBacktestYears
                | FieldId::MetricLuck
                | FieldId::MetricAvgSlippageBps
                | FieldId::MetricDivergenceBps
                | FieldId::MetricMissingOrders
                | FieldId::MetricRiskBreaches
                | FieldId::MetricDenials
                | FieldId::MetricHalts
                | FieldId::MetricReductions
                | FieldId::MetricTrials
                | FieldId::MetricPbo
                | FieldId::MetricDeflatedSharpe
                | FieldId::MetricWfe
        )
    })
}

fn json_value(v: &ParamValue) -> serde_json::Value {
    match v {
        // Whole numbers (periods, counts) as integers.
        ParamValue::Number(x, _) if x.fract() == 0.0 && x.abs() < 9.0e15 => serde_json::json!(*x as i64),
        ParamValue::Number(x, _) => serde_json::json!(x),
        ParamValue::Bool(b) => serde_json::json!(b),
        ParamValue::Str(s) => serde_json::json!(s),
    }
}

/// A symbol's bars as a sweep's identity names them: `SYMBOL bars first_ts..last_ts`.
fn describe_bars(b: &crate::engine::market::BarSeries) -> String {
    format!("{} {} {}..{}", b.symbol, b.ts.len(), b.ts.first().copied().unwrap_or(0), b.ts.last().copied().unwrap_or(0))
}

fn describe(space: &SearchSpace) -> String {
    match space {
        SearchSpace::Choices(c) => {
            let items: Vec<String> = c.iter().map(|v| json_value(v).to_string()).collect();
            format!("choices [{}]", items.join(", "))
        }
        SearchSpace::Range { low, high, step, steps, log, .. } => {
            let mut s = format!("[{low}, {high}]");
            if let Some(st) = step {
                s.push_str(&format!(" step {st}"));
            }
            if let Some(n) = steps {
                s.push_str(&format!(" steps {n}"));
            }
            if *log {
                s.push_str(" log");
            }
            s
        }
    }
}

fn read_sweep_doc(path: &std::path::Path) -> Result<SweepDoc, Vec<Diagnostic>> {
    let file = read_source(path).map_err(|d| vec![d])?;
    let mut diags = Vec::new();
    match read_document(&file, &mut diags) {
        Some(Document::Sweep(s)) if !diags.iter().any(Diagnostic::is_error) => Ok(s),
        Some(d) if !diags.iter().any(Diagnostic::is_error) => Err(vec![
            Diagnostic::error(
                codes::UNKNOWN_KIND,
                format!("`{}` is a {} document, not a sweep", path.display(), d.kind()),
            )
            .help("`--sweep` takes a `kind: sweep` document"),
        ]),
        _ => Err(diags),
    }
}

impl TrialRow {
    /// The row with its params in the sweep's order and its metrics in catalog order, whatever
    /// order the file it was read from had: results written from rows read back are the
    /// same bytes.
    pub fn canonical(mut self, sweep: &SweepIdentity) -> TrialRow {
        let mut params = IndexMap::new();
        for p in &sweep.params {
            if let Some(v) = self.params.swap_remove(&p.name) {
                params.insert(p.name.clone(), v);
            }
        }
        params.extend(self.params);
        let mut metrics = IndexMap::new();
        for (path, _) in metric_fields() {
            if let Some(v) = self.metrics.swap_remove(path) {
                metrics.insert(path.to_string(), v);
            }
        }
        metrics.extend(self.metrics);
        TrialRow { trial: self.trial, params, objective: self.objective, metrics, daily_returns: self.daily_returns }
    }
}

impl SweepResult {
    /// The trials ranked by the objective (best first; undefined last; ties by trial number).
    pub fn ranked(&self) -> Vec<&TrialRow> {
        let mut keys: Vec<(usize, f64)> =
            self.trials.iter().enumerate().map(|(i, r)| (i, r.objective.unwrap_or(f64::NAN))).collect();
        keys.sort_by(plan::rank_order(self.sweep.direction));
        keys.into_iter().map(|(i, _)| &self.trials[i]).collect()
    }

    /// Whether every trial of the sweep is here.
    pub fn complete(&self) -> bool {
        self.trials.len() == self.sweep.trials_total
    }

    /// The result with its summary when complete (PBO, deflated Sharpe), else without.
    pub fn summarised(mut self) -> Self {
        self.summary = None;
        if !self.complete() {
            return self;
        }
        let best = self.ranked().first().map(|b| b.trial);
        let matrix: Vec<Vec<f64>> = self.trials.iter().map(|t| t.daily_returns.clone()).collect();
        let periods = matrix.first().map_or(0, Vec::len);
        let blocks = blocks_for(periods);
        let sharpes: Vec<f64> = matrix.iter().map(|r| sharpe(r)).collect();
        let deflated = best
            .and_then(|b| self.trials.iter().position(|t| t.trial == b))
            .and_then(|i| deflated_sharpe(&matrix[i], &sharpes));
        self.summary = Some(SweepSummary {
            trials: self.trials.len(),
            best_trial: best,
            pbo: pbo(&matrix, blocks).map(|p| p.pbo),
            pbo_blocks: blocks,
            deflated_sharpe: deflated,
            periods,
        });
        self
    }
}

/// Combines the results of shards of one sweep into the result one process gives.
///
/// # Errors
/// Parts of different sweeps, a trial in two parts, or trials missing from every part.
pub fn merge(parts: Vec<SweepResult>) -> Result<SweepResult, Diagnostic> {
    let Some(first) = parts.first() else {
        return Err(Diagnostic::error(codes::BAD_ARGUMENT, "no sweep results to merge"));
    };
    let sweep = first.sweep.clone();
    let mut trials: Vec<TrialRow> = Vec::new();
    for (i, p) in parts.into_iter().enumerate() {
        if p.sweep != sweep {
            return Err(Diagnostic::error(
                codes::BAD_ARGUMENT,
                format!("part {} is of another sweep than part 1 (bot, revision, space, method, seed, objective or data differ)", i + 1),
            )
            .help("merge the parts of one `dsl sweep` run with `--shard K/N` only"));
        }
        trials.extend(p.trials.into_iter().map(|t| t.canonical(&sweep)));
    }
    trials.sort_by_key(|r| r.trial);
    if let Some(w) = trials.windows(2).find(|w| w[0].trial == w[1].trial) {
        return Err(Diagnostic::error(codes::DUPLICATE, format!("trial {} is in two parts", w[0].trial)));
    }
    let missing: Vec<usize> = {
        let have: std::collections::HashSet<usize> = trials.iter().map(|r| r.trial).collect();
        (0..sweep.trials_total).filter(|i| !have.contains(i)).collect()
    };
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().take(10).map(usize::to_string).collect();
        return Err(Diagnostic::error(
            codes::BAD_ARGUMENT,
            format!("{} of {} trials are in no part (first: {})", missing.len(), sweep.trials_total, list.join(", ")),
        )
        .help("run the missing shards (`--shard K/N`), or finish an interrupted one with `--resume`"));
    }
    Ok(SweepResult { sweep, shard: None, trials, summary: None }.summarised())
}

/// Journals a whole sweep as one run (`kind = 'sweep'`): its identity as the settings, the
/// best trial and the trial count as the metrics, and every trial
/// ([`crate::runtime::journal::sweep_log`]). Returns the run id.
///
/// # Errors
/// When the journal cannot be written (nothing is recorded then).
pub fn journal(path: &std::path::Path, result: &SweepResult, symbols: &[String]) -> Result<i64, Diagnostic> {
    use crate::runtime::journal::sweep_log::{TrialRecord, record};
    let settings = serde_json::to_value(&result.sweep).unwrap_or_default();
    let best = result
        .ranked()
        .first()
        .map(|b| serde_json::json!({"trial": b.trial, "params": b.params, "objective": b.objective}));
    let s = result.summary.as_ref();
    let summary = serde_json::json!({
        "trials": result.trials.len(),
        "best": best,
        "pbo": s.and_then(|s| s.pbo),
        "pbo_blocks": s.map(|s| s.pbo_blocks),
        "deflated_sharpe": s.and_then(|s| s.deflated_sharpe),
        "periods": s.map(|s| s.periods),
    });
    let rows: Vec<(serde_json::Value, serde_json::Value)> = result
        .trials
        .iter()
        .map(|t| {
            (serde_json::to_value(&t.params).unwrap_or_default(), serde_json::to_value(&t.metrics).unwrap_or_default())
        })
        .collect();
    let records: Vec<TrialRecord<'_>> = result
        .trials
        .iter()
        .zip(&rows)
        .map(|(t, (p, m))| TrialRecord { trial: t.trial, params: p, objective: t.objective, metrics: m })
        .collect();
    record(path, &result.sweep.bot, &result.sweep.bundle_revision, &settings, symbols, &summary, &records)
}
