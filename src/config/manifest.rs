//! The bot manifest: which strategies and policies run together, on which data, with which
//! money and costs.
//!
//! ```yaml
//! kind: bot
//! name: example
//! strategies:                                      # paths relative to this file
//!   - ../strategies/sma_crossover.yaml
//!   - path: ../strategies/sma_crossover.yaml         # the same strategy again, adapted:
//!     name: sma_fast                                 #   a new name (names are unique)
//!     universe: [AAPL, MSFT]                         #   other symbols
//!     params: {fast: 5, slow: 20}                    #   other values of declared params
//!     sizing: {percent_of_equity: 4%}                #   other sizing
//! policies: [../policies/always_on_caps.yaml]
//! phases: [../phases/1_paper.yaml, ../phases/2_backtest.yaml]
//! phase: paper_mastery                               # the active phase
//! data:
//!   csv: { AAPL: data/AAPL.csv }                     # per-symbol CSV files, or
//!   store: bars.sqlite                               # a bar store made by `dsl import`
//! starting_cash: 100000
//! costs: { commission: 0.1%, slippage: 5bps }         # also: commission_per_share: 0.005,
//!                                                    #   spread: 10bps, impact: 0.5bps
//! fill: next_open                                    # or `close`
//! database: journal.sqlite
//! broker: sim                                        # or `alpaca` (paper host unless live)
//! mode: paper                                        # `live` is one of four live gates
//! ```

use std::sync::Arc;

use super::node::{Node, NodeValue};
use super::reader::Reader;
use super::strategy::{Param, Sizing, SizingLimits, SizingScale, read_params, read_sizing};
use super::units::Rate;
use crate::diagnostics::{Diagnostic, SourceFile, Spanned, codes};

/// Most a commission or slippage may be, as a fraction of a fill's notional (10%).
pub const MAX_COST_RATE: f64 = 0.1;
/// Most a starting cash may be (currency): 1e15, beyond any account.
pub const MAX_CASH: f64 = 1e15;

/// A bot: a bundle of strategies and policies plus its data, money and costs.
#[derive(Debug, Clone, PartialEq)]
pub struct BotDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Bot name; part of every `client_order_id`.
    pub name: Spanned<String>,
    /// Free text.
    pub description: Option<String>,
    /// Strategies: files relative to the manifest, with optional overrides.
    pub strategies: Vec<StrategyRef>,
    /// Policy files, relative to the manifest, applied in this order.
    pub policies: Vec<Spanned<String>>,
    /// Phase files, relative to the manifest.
    pub phases: Vec<Spanned<String>>,
    /// The active phase's name.
    pub phase: Option<Spanned<String>>,
    /// Where bars come from.
    pub data: DataSpec,
    /// Cash at the start, in the account currency.
    pub starting_cash: Spanned<f64>,
    /// Trading costs applied to fills.
    pub costs: Costs,
    /// When market orders fill.
    pub fill: Spanned<FillTiming>,
    /// Journal database path, relative to the manifest.
    pub database: Option<Spanned<String>>,
    /// Where `dsl run` sends orders: the simulated broker or Alpaca.
    pub broker: Spanned<BrokerKind>,
    /// `paper` (default) or `live`. `live` is only one of the gates of live trading; see
    /// `runtime::live_gate`.
    pub mode: Spanned<TradingMode>,
    /// Scheduled jobs: a rebalance to target weights, reports.
    pub schedule: Option<super::schedule::ScheduleDoc>,
    /// Where a running bot sends alerts.
    pub alerts: Option<super::alerts::AlertsDoc>,
}

/// The broker of a running bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The internal simulated broker (the backtester's fill model).
    Sim,
    /// Alpaca's Trading API (the paper host unless every live gate holds).
    Alpaca,
}

/// The money a bot asks to trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradingMode {
    /// Simulated money (the default).
    Paper,
    /// Real money, when every live gate holds.
    Live,
}

/// A strategy file used by a bot, possibly adapted.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyRef {
    /// File path, relative to the manifest.
    pub path: Spanned<String>,
    /// A new name for this use of the strategy.
    pub name: Option<Spanned<String>>,
    /// Symbols to trade instead of the file's universe.
    pub universe: Option<Vec<Spanned<String>>>,
    /// New values for params the strategy declares.
    pub params: Vec<Param>,
    /// Sizing (and its caps) instead of the file's.
    pub sizing: Option<(Spanned<Sizing>, SizingLimits, Option<SizingScale>)>,
}

/// Sources of bar data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataSpec {
    /// Per-symbol CSV files.
    pub csv: Vec<CsvSource>,
    /// A SQLite bar store written by `dsl import`, relative to the manifest.
    pub store: Option<Spanned<String>>,
}

/// One CSV file for one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvSource {
    /// The symbol the file holds.
    pub symbol: Spanned<String>,
    /// File path, relative to the manifest.
    pub path: Spanned<String>,
    /// strftime-style format of the time column, when detection is not wanted.
    pub time_format: Option<Spanned<String>>,
    /// IANA zone of naive timestamps (default UTC).
    pub timezone: Option<Spanned<String>>,
}

/// Trading costs (seed 003's cost model; see `engine::costs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// Commission as a fraction of each fill's notional (0.001 = 0.1%).
    pub commission: Rate,
    /// Commission per share (or coin) filled, in the account currency.
    pub commission_per_share: f64,
    /// Slippage as a fraction of price, against the trader on every market fill (5bps = 0.0005).
    pub slippage: Rate,
    /// Estimated full bid-ask spread as a fraction of price, used when there are no quotes.
    pub spread: Rate,
    /// Market-impact floor as a fraction of price, each way.
    pub impact: Rate,
}

impl Default for Costs {
    fn default() -> Self {
        let zero = Rate::fraction(0.0);
        Costs { commission: zero, commission_per_share: 0.0, slippage: zero, spread: zero, impact: zero }
    }
}

/// When a market order placed at a bar's close fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillTiming {
    /// At the next bar's open (default; no look-ahead).
    NextOpen,
    /// At the same bar's close.
    Close,
}

impl FillTiming {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FillTiming::NextOpen => "next_open",
            FillTiming::Close => "close",
        }
    }
}

/// Reads a bot manifest from its root mapping.
pub fn read_bot(r: &mut Reader<'_>, root: &Node) -> Option<BotDoc> {
    let mut m = r.map(root, "bot")?;
    m.get("kind");
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    let description = m.get("description").and_then(|n| r.string(n, "description")).map(|s| s.value);
    // A bot with a schedule (a rebalance) may have no strategy of its own.
    let rebalances =
        matches!(&root.value, NodeValue::Map(entries) if entries.iter().any(|(k, _)| k.name == "schedule"));
    let strategies = match m.get("strategies") {
        Some(n) => read_strategy_refs(r, n),
        None if rebalances => Some(Vec::new()),
        None => m.required(r, "strategies").and_then(|n| read_strategy_refs(r, n)),
    };
    let policies = match m.get("policies") {
        Some(n) if n.value != NodeValue::Null => r.string_list(n, "policies"),
        _ => Some(Vec::new()),
    };
    let phases = match m.get("phases") {
        Some(n) if n.value != NodeValue::Null => r.string_list(n, "phases"),
        _ => Some(Vec::new()),
    };
    let phase = m.get("phase").map(|n| r.name(n, "phase"));
    let data = match m.get("data") {
        Some(n) => read_data(r, n),
        None => Some(DataSpec::default()),
    };
    let starting_cash = m.required(r, "starting_cash").and_then(|n| r.positive_number(n, "starting_cash"));
    let starting_cash = match starting_cash {
        Some(c) if c.value > MAX_CASH => r.fail(
            codes::INVALID_VALUE,
            c.span,
            format!("`starting_cash` must be at most {MAX_CASH:e}, found {}", c.value),
            Some("an account's cash is a finite amount; a larger one makes every figure meaningless".into()),
        ),
        other => other,
    };
    let costs = match m.get("costs") {
        Some(n) => read_costs(r, n),
        None => Some(Costs::default()),
    };
    let span = m.span();
    let fill = match m.get("fill") {
        Some(n) => r.choice(n, "fill", &["next_open", "close"]).map(|c| {
            let t = if c.value == "close" { FillTiming::Close } else { FillTiming::NextOpen };
            Spanned::new(t, c.span)
        }),
        None => Some(Spanned::new(FillTiming::NextOpen, span)),
    };
    let database = match m.get("database") {
        Some(n) => r.name(n, "database").map(Some),
        None => Some(None),
    };
    let broker = match m.get("broker") {
        Some(n) => r.choice(n, "broker", &["sim", "alpaca"]).map(|c| {
            let b = if c.value == "alpaca" { BrokerKind::Alpaca } else { BrokerKind::Sim };
            Spanned::new(b, c.span)
        }),
        None => Some(Spanned::new(BrokerKind::Sim, span)),
    };
    let mode = match m.get("mode") {
        Some(n) => r.choice(n, "mode", &["paper", "live"]).map(|c| {
            let b = if c.value == "live" { TradingMode::Live } else { TradingMode::Paper };
            Spanned::new(b, c.span)
        }),
        None => Some(Spanned::new(TradingMode::Paper, span)),
    };
    let schedule = m.get("schedule").map(|n| super::schedule::read_schedule(r, n));
    let alerts = m.get("alerts").map(|n| super::alerts::read_alerts(r, n));
    m.finish(r);
    // On errors, go on with placeholders so that every referenced document is still checked;
    // callers must not use a manifest read with errors.
    if strategies.as_ref().is_some_and(Vec::is_empty) && !rebalances {
        r.push(
            Diagnostic::error(codes::INVALID_VALUE, "`strategies` must list at least one strategy").at(r.file, span),
        );
    }
    let strategies = strategies.unwrap_or_default();
    Some(BotDoc {
        source: r.file.clone(),
        name: name.unwrap_or_else(|| Spanned::new(String::new(), span)),
        description,
        strategies,
        policies: policies.unwrap_or_default(),
        phases: phases.unwrap_or_default(),
        phase: phase.flatten(),
        data: data.unwrap_or_default(),
        starting_cash: starting_cash.unwrap_or(Spanned::new(1.0, span)),
        costs: costs.unwrap_or_default(),
        fill: fill.unwrap_or(Spanned::new(FillTiming::NextOpen, span)),
        database: database.flatten(),
        broker: broker.unwrap_or(Spanned::new(BrokerKind::Sim, span)),
        mode: mode.unwrap_or(Spanned::new(TradingMode::Paper, span)),
        schedule: schedule.flatten(),
        alerts: alerts.flatten(),
    })
}

fn read_strategy_refs(r: &mut Reader<'_>, node: &Node) -> Option<Vec<StrategyRef>> {
    let items: Vec<&Node> = match &node.value {
        NodeValue::Seq(items) => items.iter().collect(),
        NodeValue::Str(_) | NodeValue::Map(_) => vec![node],
        _ => {
            return r.fail(
                codes::WRONG_TYPE,
                node.span,
                format!("`strategies` must be a list of files, found {}", node.kind_name()),
                None,
            );
        }
    };
    // The valid entries (every problem is in `r.diags`).
    let out = items
        .into_iter()
        .filter_map(|item| {
            if let NodeValue::Map(_) = item.value {
                read_strategy_ref(r, item)
            } else {
                r.name(item, "strategies").map(|path| StrategyRef {
                    path,
                    name: None,
                    universe: None,
                    params: Vec::new(),
                    sizing: None,
                })
            }
        })
        .collect();
    Some(out)
}

fn read_strategy_ref(r: &mut Reader<'_>, node: &Node) -> Option<StrategyRef> {
    let mut m = r.map(node, "strategy entry")?;
    let path = m.required(r, "path").and_then(|n| r.name(n, "path"));
    let name = m.get("name").map(|n| r.name(n, "name"));
    let universe = m.get("universe").map(|n| r.string_list(n, "universe"));
    let params = match m.get("params") {
        Some(n) => read_params(r, n, false),
        None => Some(Vec::new()),
    };
    let sizing = m.get("sizing").map(|n| read_sizing(r, n));
    m.finish(r);
    let name = match name {
        Some(n) => Some(n?),
        None => None,
    };
    let universe = match universe {
        Some(u) => Some(u?),
        None => None,
    };
    let sizing = match sizing {
        Some(s) => Some(s?),
        None => None,
    };
    Some(StrategyRef { path: path?, name, universe, params: params?, sizing })
}

fn read_costs(r: &mut Reader<'_>, node: &Node) -> Option<Costs> {
    let mut m = r.map(node, "costs")?;
    let commission = m.get("commission").map(|n| r.rate_in(n, "commission", 0.0, MAX_COST_RATE));
    let slippage = m.get("slippage").map(|n| r.rate_in(n, "slippage", 0.0, MAX_COST_RATE));
    let spread = m.get("spread").map(|n| r.rate_in(n, "spread", 0.0, 0.2));
    let impact = m.get("impact").map(|n| r.rate_in(n, "impact", 0.0, 0.1));
    let per_share = m.get("commission_per_share").map(|n| r.number(n, "commission_per_share"));
    m.finish(r);
    let mut costs = Costs::default();
    if let Some(s) = spread {
        costs.spread = s?.value;
    }
    if let Some(i) = impact {
        costs.impact = i?.value;
    }
    if let Some(p) = per_share {
        let p = p?;
        let v = p.value.0;
        if !(v >= 0.0 && v.is_finite()) {
            return r.fail(codes::INVALID_VALUE, p.span, "`commission_per_share` must be 0 or more".into(), None);
        }
        costs.commission_per_share = v;
    }
    if let Some(c) = commission {
        costs.commission = c?.value;
    }
    if let Some(s) = slippage {
        costs.slippage = s?.value;
    }
    Some(costs)
}

fn read_data(r: &mut Reader<'_>, node: &Node) -> Option<DataSpec> {
    let mut m = r.map(node, "data")?;
    let csv = m.get("csv");
    let store = m.get("store").map(|n| r.name(n, "store"));
    m.finish(r);
    let mut spec = DataSpec::default();
    let mut ok = true;
    if let Some(csv) = csv {
        let mut files = r.map(csv, "data.csv")?;
        for (key, value) in files.rest() {
            let symbol = Spanned::new(key.name.clone(), key.span);
            match read_csv_source(r, symbol, value) {
                Some(s) => spec.csv.push(s),
                None => ok = false,
            }
        }
        files.finish(r);
    }
    if let Some(store) = store {
        spec.store = Some(store?);
    }
    ok.then_some(spec)
}

fn read_csv_source(r: &mut Reader<'_>, symbol: Spanned<String>, node: &Node) -> Option<CsvSource> {
    if let NodeValue::Map(_) = node.value {
        let mut m = r.map(node, "csv source")?;
        let path = m.required(r, "path").and_then(|n| r.name(n, "path"));
        let time_format = m.get("time_format").map(|n| r.name(n, "time_format"));
        let timezone = m.get("timezone").map(|n| r.name(n, "timezone"));
        m.finish(r);
        let time_format = match time_format {
            Some(t) => Some(t?),
            None => None,
        };
        let timezone = match timezone {
            Some(t) => Some(t?),
            None => None,
        };
        return Some(CsvSource { symbol, path: path?, time_format, timezone });
    }
    let path = r.name(node, "csv path")?;
    Some(CsvSource { symbol, path, time_format: None, timezone: None })
}
