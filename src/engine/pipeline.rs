//! The event pipeline of DESIGN.md, shared by every driver.
//!
//! For each bar of a symbol, [`Engine::on_bar`]:
//!
//! 1. fills that symbol's working market orders at the open (next-open timing), then its
//!    protective stop and take-profit orders against the bar's range;
//! 2. updates the symbol's indicator graph;
//! 3. for each strategy trading the symbol: exit checks (max holding, exit rule) when in a
//!    position, else the entry rule;
//! 4. turns a signal into an order intent (sizing), runs it through every policy rule in order
//!    (the first rule that fires denies it; a rule whose value is undefined also denies: fail
//!    closed), then hands it to the broker (or fills it at the close with close timing).
//!
//! Before the policy rules, an order must pass the [`TradingStatus`] (REDUCING lets only exits
//! through, HALTED nothing but flattening). The first blocking rule that fires decides:
//! `deny` rejects; `reduce` and `halt` also move the trading state (a `reduce` rule lets an exit
//! through); `require_approval` parks the order for a person, and with no approver (a
//! backtest) it is denied when its approval window expires; `warn` rules are only journaled.
//!
//! Fills update cash and positions; a closing fill records a round-trip [`Trade`]. After all
//! symbols of a timestamp, the driver calls [`Engine::mark`] to value the account, then
//! [`Engine::check_account`]: `halt`/`reduce` rules that read only `account.*` fields (a
//! drawdown circuit breaker) are evaluated on every mark, so they trip on equity, unrealized
//! losses included, even when no order is being placed. Every order, fill, trade, policy
//! decision and state change goes to the [`EventSink`].
//!
//! [`Engine`] is the coordinator the drivers talk to. Its records are held by parts with
//! their own fields, which the engine reaches only through their methods: the `Portfolio`
//! (`engine::portfolio`: cash, the equity peak, the day's starting equity), the `RiskGate`
//! (`engine::risk_gate`: the trading state, mark-time rules, order counters, losing streak,
//! allocation buckets, broker outages) and the `ApprovalQueue` (`engine::approvals`: parked
//! orders and the desk). The engine's own work is split by concern:
//!
//! | part | does |
//! | --- | --- |
//! | `runner` | the strategy runner: exit checks, entry rules, filters, sizing, order ids |
//! | `admission` | the risk gate: trading state, policy rules, allocation buckets, routing |
//! | `parking` | what happens to orders a person approves, rejects or lets expire |
//! | `execution` | fills, accounting, round-trip trades, the outside broker's boundary |
//! | `protect` | protective orders in the shape the broker accepts |
//! | `account` | valuation, the day's clock, moving the trading state, the mark-time rules |
//! | `rebalance` | the bot's scheduled rebalance to target weights |
//! | `fields` | the context fields rules read |
//! | `swap` | swapping in a new bundle between two bars (hot reload) |

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::manifest::FillTiming;
use crate::config::policy::Action;
use crate::config::strategy::Sizing;
use crate::dsl::bundle::{Bundle, StrategyRules, SymbolProgram};
use crate::dsl::catalog::FieldId;
use crate::dsl::program::{CompiledRule, RuleEval};
use crate::dsl::script::{FilterContext, Sandbox, ScriptBudgets, ScriptError};
use crate::dsl::semantics::{fires, string_id};

use super::allocation::Holdings;
use super::approvals::{ApprovalDesk, ApprovalOutcome, ApprovalQueue, ApprovalRequest};
use super::broker::{Execution, FillModel, SimBroker};
use super::costs::CostModel;
use super::events::{Decision, EventSink, Note, NoteKind, OrderStatus, Seen};
use super::external::{BrokerRequest, ExternalBook};
use super::graph::Graph;
use super::guard::{Denial, RuleVerdict, check_order};
use super::market::{Bar, BarSeries};
use super::orders::{
    ClientOrderId, ExitReason, Fill, Intent, Order, OrderIds, OrderReason, OrderType, Position, Quantity, Side,
    TimeInForce, Trade,
};
use super::portfolio::Portfolio;
use super::resample::BaseBars;
use super::risk_gate::{MarkRule, RiskGate};
use super::rules::{FieldValues, NO_FIELDS, eval_rule, position_fields, seen_values};
use super::session::{Market, SessionClock};
use super::signal::{RuleKind, Signal, decide, protective_orders};
use super::trading_state::{StateChange, TradingState, TradingStatus};

mod account;
mod admission;
mod entry_orders;
mod execution;
mod fields;
mod parking;
mod protect;
mod rebalance;
mod runner;
mod swap;
mod trailing;
pub use swap::SwapReport;

/// Money and costs of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// Bot name (part of every `client_order_id`).
    pub bot: String,
    /// The journal run (part of every `client_order_id`, so another run never reuses one);
    /// 0 when not journaled.
    pub run: i64,
    /// Starting cash (currency).
    pub starting_cash: f64,
    /// Trading costs.
    pub costs: CostModel,
    /// When market orders fill.
    pub fill: FillTiming,
}

/// Counts kept during a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunStats {
    /// Orders handed to the broker.
    pub orders_submitted: u64,
    /// Orders filled.
    pub orders_filled: u64,
    /// Orders refused (policy or nothing to trade).
    pub orders_rejected: u64,
    /// Working orders cancelled.
    pub orders_cancelled: u64,
    /// Denials per `policy/rule_id`.
    pub denials: BTreeMap<String, u64>,
    /// Of those, exits (a denied exit leaves a position open).
    pub denied_exits: BTreeMap<String, u64>,
    /// Entries an entry filter script vetoed.
    pub entries_filtered: u64,
    /// Script calls that failed or hit a limit (each failed closed).
    pub script_errors: u64,
    /// Orders the trading state refused, per state (`halted`, `reducing`).
    pub blocked_by_state: BTreeMap<String, u64>,
    /// Of those, exits.
    pub blocked_exits: BTreeMap<String, u64>,
    /// Warnings per `policy/rule_id` (`warn` rules that fired; the orders went on).
    pub warnings: BTreeMap<String, u64>,
    /// Orders that needed an approval nobody gave in time.
    pub approvals_expired: u64,
    /// Every change of the trading state, in order.
    pub state_changes: Vec<StateChange>,
}

/// An open position at some point in time, for reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpenPosition {
    /// Strategy name.
    pub strategy: String,
    /// Symbol.
    pub symbol: String,
    /// Units.
    pub quantity: f64,
    /// Entry fill time (UTC seconds).
    pub entry_time: i64,
    /// Entry fill price.
    pub entry_price: f64,
    /// Last close.
    pub last_price: f64,
    /// `(last - entry) * quantity` (currency).
    pub unrealized_pnl: f64,
}

struct SymbolState {
    name: Arc<str>,
    name_id: f64,
    graph: Graph,
    program: SymbolProgram,
    slots: Vec<usize>,
    last_close: f64,
    bars: u64,
    last_ts: i64,
    /// The graph runs custom indicator scripts (whose failures are reported).
    has_scripts: bool,
    /// Replay blocks: graph values of bars `block_start..block_start + block_len`, column-major.
    block: Vec<f64>,
    block_start: usize,
    block_len: usize,
    /// Row of `block` holding the current bar, or `None` when streaming (values in `graph`).
    row: Option<usize>,
    /// Last quote (bid, ask), when the driver has quotes.
    quote: Option<(f64, f64)>,
    /// End (exclusive, UTC seconds) of the UTC day of the last bar.
    day_end: i64,
    /// What `symbol.daily_change` compares with: the last close of the previous UTC day (the
    /// first open on the first day of data).
    day_base: f64,
    /// The symbol's market calendar, when a rule or script of its program may read the
    /// `session.*` fields (computed only then: the field costs a time-zone conversion).
    session: Option<SessionClock>,
    /// The length of the symbol's bars (seconds): the timeframe of the first strategy trading
    /// it, a day for a symbol only policies read.
    bar_secs: i64,
    /// A strategy trading the symbol has a trailing stop (ratcheted after each bar).
    trailing: bool,
    /// A strategy trading the symbol enters with limit or stop orders (which may expire).
    limit_entries: bool,
}

impl SymbolState {
    /// The value of graph node `id` on the current bar.
    #[inline]
    fn value(&self, id: u32) -> f64 {
        match self.row {
            Some(r) => self.block[id as usize * self.block_len + r],
            None => self.graph.value(id),
        }
    }

    /// All graph values on the current bar (gathered from the block column by column during
    /// replays; used by scalar programs and policies, which run rarely).
    fn current(&self) -> std::borrow::Cow<'_, [f64]> {
        match self.row {
            Some(r) => (0..self.graph.len()).map(|k| self.block[k * self.block_len + r]).collect(),
            None => std::borrow::Cow::Borrowed(self.graph.values()),
        }
    }
}

/// Bars per replay block for a graph of `nodes` nodes in an engine of `symbols` symbols:
/// about 128 KiB of values for one symbol, less per symbol as symbols are added (about
/// 8 MiB in all up to 2,048 symbols), so that a block is more likely still cached when its
/// rows are read. Any length gives the same values.
fn block_len(nodes: usize, symbols: usize) -> usize {
    let values = (1_048_576 / symbols.max(1)).clamp(512, 16_384);
    (values / nodes.max(1)).clamp(8, 4096)
}

/// How a slot evaluates one of its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleRef {
    /// The rule is one graph node: read its value.
    Node(u32),
    /// The rule needs the scalar program (context fields).
    Program,
}

impl RuleRef {
    fn of(rule: &crate::dsl::program::CompiledRule) -> Self {
        match rule.eval {
            RuleEval::Slot(id) => RuleRef::Node(id),
            RuleEval::Program(_) | RuleEval::Script(_) => RuleRef::Program,
        }
    }
}

struct Slot {
    strategy: usize,
    symbol: usize,
    /// Entry rule, resolved once.
    entry: RuleRef,
    /// Exit rule, if the strategy has one.
    exit: Option<RuleRef>,
    /// `max_holding` in bars (`u32::MAX` when unset).
    max_holding: u32,
    position: Option<Position>,
    /// A market order is working for this slot (or waits for approval).
    pending_market: bool,
    /// Estimated notional of that order when it is an entry (read only while
    /// `pending_market` and flat).
    pending_notional: f64,
    /// Stop distance (currency per unit) the pending entry's sizing chose (ATR risk), or NaN.
    pending_stop: f64,
    /// Bar time and count of orders created on it (for `client_order_id`).
    seq_ts: i64,
    seq: u32,
    /// Derives this slot's `client_order_id`s.
    ids: OrderIds,
    /// Kept after a bundle swap dropped it, only to close what it holds: no new entries.
    retired: bool,
    /// Units of the position the bot protects itself (the fractional remainder no broker
    /// order may hold; see [`protect`]); 0 when none.
    synthetic: f64,
    /// The remainder's stop or target was reached, and its sell is not out yet.
    remainder_due: Option<ExitReason>,
    /// A limit or stop entry is working: the symbol bar count at which it expires
    /// (`u64::MAX`: never) and the end of its day (`i64::MAX` unless `time_in_force: day`).
    entry_expiry: Option<(u64, i64)>,
}

/// The engine: strategies, risk, broker and accounting over one bundle.
pub struct Engine {
    bundle: Arc<Bundle>,
    settings: EngineSettings,
    symbols: Vec<SymbolState>,
    slots: Vec<Slot>,
    /// The slots holding a position or waiting on a market order, in slot order: what
    /// valuation and exposure walk (kept by [`Engine::touch`]), so that an order's checks cost
    /// the same with 5,000 quiet symbols as with 5.
    /// (A sorted vector: walked at every mark, changed only by orders and fills.)
    active: Vec<usize>,
    /// Cash, the equity peak, the day's starting equity.
    portfolio: Portfolio,
    /// The trading state, the mark-time rules, the order counters, allocation buckets and
    /// broker outages.
    risk: RiskGate,
    broker: SimBroker,
    scratch: Vec<f64>,
    trades: Vec<Trade>,
    stats: RunStats,
    strategy_ids: Vec<f64>,
    strategy_names: Vec<Arc<str>>,
    /// Time of the latest bar seen (UTC seconds).
    now: i64,
    /// Orders parked by `require_approval` rules, and the desk they wait on.
    approvals: ApprovalQueue,
    /// Orders go to an outside broker instead of the simulated one (see [`super::external`]).
    external: Option<ExternalBook>,
    /// Every script's budget in this run (see [`ScriptBudgets`]).
    budgets: ScriptBudgets,
    /// A rule reads the `symbol.bid`/`ask`/`spread`/`spread_source` fields.
    reads_quotes: bool,
    /// The bot's scheduled rebalance, if it has one.
    rebalance: Option<rebalance::RebalanceState>,
}

/// A mark-time trip: policy and rule index, the state it moves to, the values it saw.
type Trip = (usize, usize, TradingState, Vec<(String, Seen)>);

/// Per symbol, the gross market value (positions at the last close plus working entries) and
/// the part of it whose exit is working; and the cash not committed to working entries
/// (currency). What allocation weights are computed from.
struct Held {
    values: Vec<f64>,
    leaving: Vec<f64>,
    free_cash: f64,
}

impl Held {
    fn view(&self, equity: f64) -> Holdings<'_> {
        Holdings { values: &self.values, leaving: &self.leaving, free_cash: self.free_cash, equity }
    }
}

/// True when a rule of `program` reads a `session.*` field, or a script (which sees every
/// field) runs in it.
fn reads_session(program: &SymbolProgram) -> bool {
    program.rules().any(|r| matches!(r.eval, RuleEval::Script(_)))
        || program.reads_field(|f| {
            matches!(
                f,
                FieldId::SessionIsOpen
                    | FieldId::SessionMinutesSinceOpen
                    | FieldId::SessionMinutesToClose
                    | FieldId::SessionDayOfWeek
                    | FieldId::SessionDate
                    | FieldId::SessionEarlyClose
            )
        })
}

/// End (exclusive) of the UTC day holding `ts` (UTC seconds).
#[inline]
fn day_end(ts: i64) -> i64 {
    (ts.div_euclid(86_400) + 1) * 86_400
}

impl Engine {
    /// An engine for `bundle` trading `symbols` (every symbol any strategy trades must be
    /// listed; extra symbols only feed policies).
    pub fn new(bundle: Arc<Bundle>, symbols: &[String], settings: EngineSettings) -> Self {
        let mut slots = Vec::new();
        let mut states = Vec::new();
        let budgets = ScriptBudgets::default();
        for (si, name) in symbols.iter().enumerate() {
            let program = SymbolProgram::build(&bundle, name);
            let bar_secs =
                bundle.strategies.iter().find(|s| s.trades(name)).map_or(86_400, |s| s.doc.timeframe.value.seconds());
            let market = Market::for_symbol(name);
            let mut graph = Graph::new(&program.graph, BaseBars { market, bar_secs });
            graph.share_script_budgets(&budgets);
            let mut mine = Vec::new();
            for (ti, s) in bundle.strategies.iter().enumerate() {
                if let (true, Some(rules)) = (s.trades(name), program.strategies[ti].as_ref()) {
                    mine.push(slots.len());
                    slots.push(Slot {
                        strategy: ti,
                        symbol: si,
                        entry: RuleRef::of(&rules.entry),
                        exit: rules.exit.as_ref().map(RuleRef::of),
                        max_holding: s.doc.max_holding.as_ref().map_or(u32::MAX, |m| m.value),
                        position: None,
                        pending_market: false,
                        pending_notional: 0.0,
                        pending_stop: f64::NAN,
                        seq_ts: i64::MIN,
                        seq: 0,
                        ids: OrderIds::new(&settings.bot, settings.run, s.name(), name),
                        retired: false,
                        synthetic: 0.0,
                        remainder_due: None,
                        entry_expiry: None,
                    });
                }
            }
            let session = reads_session(&program).then(|| SessionClock::new(market));
            let trailing = bundle.strategies.iter().any(|s| s.trades(name) && s.doc.trailing_stop.is_some());
            let limit_entries = bundle.strategies.iter().any(|s| s.trades(name) && s.doc.entry_order.is_some());
            states.push(SymbolState {
                session,
                bar_secs,
                trailing,
                limit_entries,
                name: Arc::from(name.as_str()),
                name_id: string_id(name),
                has_scripts: graph.has_scripts(),
                graph,
                program,
                slots: mine,
                last_close: f64::NAN,
                bars: 0,
                last_ts: i64::MIN,
                block: Vec::new(),
                block_start: 0,
                block_len: 0,
                row: None,
                day_end: i64::MIN,
                day_base: f64::NAN,
                quote: None,
            });
        }
        let model = FillModel { costs: settings.costs, timing: settings.fill };
        let strategy_ids = bundle.strategies.iter().map(|s| string_id(s.name())).collect();
        let strategy_names = bundle.strategies.iter().map(|s| Arc::from(s.name())).collect();
        let programs: Vec<&SymbolProgram> = states.iter().map(|s| &s.program).collect();
        let reads_quotes = programs.iter().any(|p| {
            p.reads_field(|f| {
                matches!(
                    f,
                    FieldId::SymbolBid | FieldId::SymbolAsk | FieldId::SymbolSpread | FieldId::SymbolSpreadSource
                )
            })
        });
        let risk = RiskGate::new(&bundle, symbols, &programs);
        let rebalance = rebalance::RebalanceState::of(&bundle);
        Engine {
            rebalance,
            now: i64::MIN,
            approvals: ApprovalQueue::default(),
            broker: SimBroker::new(model, symbols.len()),
            portfolio: Portfolio::new(settings.starting_cash),
            risk,
            bundle,
            settings,
            symbols: states,
            slots,
            active: Vec::new(),
            scratch: Vec::with_capacity(64),
            trades: Vec::new(),
            stats: RunStats::default(),
            strategy_ids,
            strategy_names,
            external: None,
            budgets,
            reads_quotes,
        }
    }

    /// Records the latest bid and ask of symbol index `symbol` (paper and live drivers):
    /// `order.round_trip_cost` and `symbol.bid`/`ask`/`spread` then use them instead of the
    /// cost model's estimate (`symbol.spread_source` is `quote`).
    pub fn set_quote(&mut self, symbol: usize, bid: f64, ask: f64) {
        if let Some(s) = self.symbols.get_mut(symbol) {
            s.quote = Some((bid, ask));
        }
    }

    /// Forgets the quote of symbol index `symbol` (a failed quote request): its fields fall
    /// back to the cost model's estimate, never to a stale quote.
    pub fn clear_quote(&mut self, symbol: usize) {
        if let Some(s) = self.symbols.get_mut(symbol) {
            s.quote = None;
        }
    }

    /// True when a rule of the bundle reads `symbol.bid`, `symbol.ask`, `symbol.spread` or
    /// `symbol.spread_source` (a live driver then fetches quotes before each timestamp).
    pub fn reads_quotes(&self) -> bool {
        self.reads_quotes
    }

    /// Processes one bar of symbol index `symbol` (streaming: the live and paper path).
    #[inline]
    pub fn on_bar(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        self.advance_clock(bar.ts);
        if !self.approvals.is_empty() {
            self.settle_approvals(bar.ts, sink);
        }
        if self.broker.has_working(symbol) {
            self.fill_working(symbol, bar, sink);
        }
        let st = &mut self.symbols[symbol];
        st.graph.update(bar);
        st.row = None;
        if st.has_scripts {
            self.report_script_failures(symbol, sink);
        }
        self.after_update(symbol, bar, sink);
    }

    /// Processes bar `i` of `series`, the bars of symbol index `symbol` (the replay path).
    /// Bars must come in order; the graph is evaluated a block of bars at a time, with the
    /// same results as [`Engine::on_bar`].
    #[inline]
    pub fn on_series_bar(&mut self, symbol: usize, series: &BarSeries, i: usize, sink: &mut dyn EventSink) {
        let bar = series.bar(i);
        self.advance_clock(bar.ts);
        if !self.approvals.is_empty() {
            self.settle_approvals(bar.ts, sink);
        }
        if self.broker.has_working(symbol) {
            // Fills see the previous bar's values, as in streaming mode.
            self.fill_working(symbol, &bar, sink);
        }
        let symbols = self.symbols.len();
        let st = &mut self.symbols[symbol];
        if i < st.block_start || i >= st.block_start + st.block_len {
            let len = block_len(st.graph.len(), symbols).min(series.len() - i);
            st.graph.update_block(series, i, len, &mut st.block);
            st.block_start = i;
            st.block_len = len;
            if st.has_scripts {
                self.report_script_failures(symbol, sink);
            }
        }
        let st = &mut self.symbols[symbol];
        st.row = Some(i - st.block_start);
        self.after_update(symbol, &bar, sink);
    }
}
