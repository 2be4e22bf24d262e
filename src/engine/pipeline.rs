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
//! Before the policy rules, an order must pass the [`TradingState`] (REDUCING lets only exits
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

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::manifest::FillTiming;
use crate::config::policy::Action;
use crate::config::strategy::Sizing;
use crate::dsl::bundle::{Bundle, SymbolProgram};
use crate::dsl::catalog::FieldId;
use crate::dsl::program::{CompiledRule, RuleEval};
use crate::dsl::script::{FilterContext, Sandbox, ScriptBudgets, ScriptError};
use crate::dsl::semantics::{fires, string_id};

use super::allocation::{Allocation, Holdings};
use super::approvals::{ApprovalDesk, ApprovalOutcome, ApprovalRequest};
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
use super::rules::{FieldValues, NO_FIELDS, eval_rule, position_fields, seen_values};
use super::signal::{RuleKind, Signal, decide, protective_orders};
use super::trading_state::{Mode, StateChange, TradingState};

mod protect;
mod swap;
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

/// Bars per replay block for a graph of `nodes` nodes (about 128 KiB of values).
fn block_len(nodes: usize) -> usize {
    (16_384 / nodes.max(1)).clamp(64, 4096)
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
}

/// The engine: strategies, risk, broker and accounting over one bundle.
pub struct Engine {
    bundle: Arc<Bundle>,
    settings: EngineSettings,
    symbols: Vec<SymbolState>,
    slots: Vec<Slot>,
    cash: f64,
    peak_equity: f64,
    broker: SimBroker,
    scratch: Vec<f64>,
    trades: Vec<Trade>,
    stats: RunStats,
    strategy_ids: Vec<f64>,
    strategy_names: Vec<Arc<str>>,
    state: TradingState,
    /// `halt`/`reduce` rules checked at every mark (see [`MarkRule`]).
    mark_rules: Vec<MarkRule>,
    /// Time of the latest bar seen (UTC seconds).
    now: i64,
    /// End (exclusive) of the UTC day of `now`, equity at its start, and market orders sent
    /// on it.
    day_end: i64,
    day_start_equity: f64,
    orders_today: u32,
    /// Bar times of the market orders sent in the last hour, oldest first.
    recent_orders: std::collections::VecDeque<i64>,
    /// Consecutive losing round trips, most recent first.
    loss_streak: u32,
    /// Where `require_approval` orders wait for a person (none in a backtest).
    desk: Option<Box<dyn ApprovalDesk + Send>>,
    /// Orders waiting on the desk, with their expiry (UTC seconds).
    parked: Vec<(Order, i64)>,
    /// Times `[from, to)` in which the broker refuses new orders (stress tests).
    outages: Vec<(i64, i64)>,
    /// The policies' allocation buckets, in bundle order.
    allocations: Vec<Allocation>,
    /// Each symbol's bucket name (as a string id) in the first allocation, or `NaN`.
    bucket_ids: Vec<f64>,
    /// Some rule reads `bucket.*` (the bucket weights are then computed for its fields).
    reads_buckets: bool,
    /// Orders go to an outside broker instead of the simulated one (see [`super::external`]).
    external: Option<ExternalBook>,
    /// Every script's budget in this run (see [`ScriptBudgets`]).
    budgets: ScriptBudgets,
}

/// A mark-time trip: policy and rule index, the state it moves to, the values it saw.
type Trip = (usize, usize, Mode, Vec<(String, Seen)>);

/// A `halt`/`reduce` rule that needs no order: it reads `account.*` and `symbol.*` fields and
/// bar series only. Checked after every mark, once, or once per symbol when it reads
/// anything of a symbol (a BTC daily-move halt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MarkRule {
    policy: usize,
    rule: usize,
    per_symbol: bool,
}

/// The `halt`/`reduce` rules whose conditions read no `order.*` or `position.*` field.
fn mark_rules(bundle: &Bundle, program: Option<&SymbolProgram>) -> Vec<MarkRule> {
    use crate::dsl::program::Input;
    let Some(program) = program else { return Vec::new() };
    let mut out = Vec::new();
    for (pi, p) in bundle.policies.iter().enumerate() {
        for (ri, r) in p.doc.rules.iter().enumerate() {
            let Some(compiled) = program.policies[pi].get(ri) else { continue };
            if compiled.inputs.is_empty()
                || matches!(compiled.eval, RuleEval::Script(_))
                || !matches!(r.action.value, Action::Halt | Action::Reduce)
            {
                continue;
            }
            let account =
                |label: &str, input: &Input| matches!(input, Input::Field(_)) && label.starts_with("account.");
            let needs_order = compiled.inputs.iter().any(|(label, input)| {
                matches!(input, Input::Field(_)) && (label.starts_with("order.") || label.starts_with("position."))
            });
            if !needs_order {
                let per_symbol = !compiled.inputs.iter().all(|(l, i)| account(l, i));
                out.push(MarkRule { policy: pi, rule: ri, per_symbol });
            }
        }
    }
    out
}

/// True when a compiled rule of `program` reads `bucket.name` or `bucket.weight`.
fn reads_bucket_fields(program: &SymbolProgram) -> bool {
    use crate::dsl::program::Input;
    let reads = |r: &CompiledRule| {
        r.inputs.iter().any(|(_, i)| matches!(i, Input::Field(FieldId::BucketName | FieldId::BucketWeight)))
    };
    program.policies.iter().flatten().any(reads)
        || program.strategies.iter().flatten().any(|s| {
            reads(&s.entry) || s.exit.as_ref().is_some_and(reads) || s.expected_return.as_ref().is_some_and(reads)
        })
}

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
            let mut graph = Graph::new(&program.graph);
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
                    });
                }
            }
            states.push(SymbolState {
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
        let mark_rules = mark_rules(&bundle, states.first().map(|s: &SymbolState| &s.program));
        let names: Vec<&str> = symbols.iter().map(String::as_str).collect();
        let allocations: Vec<Allocation> = bundle
            .policies
            .iter()
            .enumerate()
            .filter_map(|(pi, p)| Some(Allocation::new(p.doc.allocation.as_ref()?, pi, &names)))
            .collect();
        let bucket_ids = (0..symbols.len())
            .map(|si| allocations.first().and_then(|a| a.bucket_name(si)).map_or(f64::NAN, string_id))
            .collect();
        let reads_buckets = !allocations.is_empty() && states.iter().any(|s| reads_bucket_fields(&s.program));
        Engine {
            allocations,
            bucket_ids,
            reads_buckets,
            state: TradingState::default(),
            mark_rules,
            now: i64::MIN,
            day_end: i64::MIN,
            day_start_equity: settings.starting_cash,
            orders_today: 0,
            recent_orders: std::collections::VecDeque::new(),
            loss_streak: 0,
            desk: None,
            parked: Vec::new(),
            outages: Vec::new(),
            broker: SimBroker::new(model, symbols.len()),
            cash: settings.starting_cash,
            peak_equity: settings.starting_cash,
            bundle,
            settings,
            symbols: states,
            slots,
            scratch: Vec::with_capacity(64),
            trades: Vec::new(),
            stats: RunStats::default(),
            strategy_ids,
            strategy_names,
            external: None,
            budgets,
        }
    }

    /// Routes orders to an outside broker from now on: admitted orders are queued for
    /// [`Engine::take_requests`] instead of filling in the simulated broker, and fills come
    /// from [`Engine::apply_fill`]. Call before the first bar.
    pub fn use_external_broker(&mut self) {
        self.external = Some(ExternalBook::default());
    }

    /// The broker requests queued since the last call, in the order they were made.
    pub fn take_requests(&mut self) -> Vec<BrokerRequest> {
        self.external.as_mut().map(|b| std::mem::take(&mut b.outbox)).unwrap_or_default()
    }

    /// Orders working at the outside broker (none with the simulated broker).
    pub fn external_orders(&self) -> &[Order] {
        self.external.as_ref().map_or(&[], |b| &b.working)
    }

    /// Applies the final fill of an outside order: `quantity` units at average `price`
    /// (currency per unit) at time `ts` (UTC seconds). Commission follows the cost model;
    /// slippage is measured against the order's reference price. Returns false when no
    /// working order has that id.
    pub fn apply_fill(
        &mut self,
        id: ClientOrderId,
        quantity: f64,
        price: f64,
        ts: i64,
        sink: &mut dyn EventSink,
    ) -> bool {
        let Some(book) = self.external.as_mut() else { return false };
        let Some((order, raced)) = book.take(id) else { return false };
        if raced {
            // Cancelled by the engine, filled at the broker before the cancel arrived: booked
            // all the same (the shares are gone), and counted as filled, not cancelled.
            self.stats.orders_cancelled = self.stats.orders_cancelled.saturating_sub(1);
        }
        let base_price = order.reference_price;
        self.execute_qty(Execution { order, price, base_price }, ts, Some(quantity), sink);
        true
    }

    /// Ends an outside order that will not fill (`Cancelled` or `Rejected`, with the broker's
    /// reason), or confirms the cancellation of one the engine cancelled (nothing journaled:
    /// it was journaled as cancelled then). Returns false when no such order is known.
    pub fn end_order(
        &mut self,
        id: ClientOrderId,
        status: OrderStatus,
        ts: i64,
        reason: &str,
        sink: &mut dyn EventSink,
    ) -> bool {
        let Some(book) = self.external.as_mut() else { return false };
        let Some((order, confirmed)) = book.take(id) else { return false };
        if confirmed {
            return true;
        }
        if order.order_type == OrderType::Market {
            self.slots[order.slot].pending_market = false;
        }
        sink.order_status(id, status, ts, reason);
        match status {
            OrderStatus::Rejected => self.stats.orders_rejected += 1,
            _ => self.stats.orders_cancelled += 1,
        }
        true
    }

    /// Outside orders the engine cancelled whose cancellation the broker has not confirmed
    /// yet (see [`super::external`]).
    pub fn cancelling_orders(&self) -> &[Order] {
        self.external.as_ref().map_or(&[], |b| &b.cancelling)
    }

    /// Moves the trading state to `to` for a reason outside the rules (the runtime's broker
    /// circuit breaker, a reconciliation mismatch); recorded like any change. Only a person's
    /// `dsl resume` clears it.
    pub fn escalate(&mut self, to: Mode, ts: i64, reason: &str, message: &str, sink: &mut dyn EventSink) {
        if let Some(c) = self.state.escalate(to, ts, reason, message, crate::config::policy::Reset::Manual) {
            self.record_state(c, sink);
        }
    }

    /// Units held per symbol (all strategies together), in symbol order.
    pub fn units_by_symbol(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.symbols.len()];
        for s in &self.slots {
            if let Some(p) = &s.position {
                out[s.symbol] += p.quantity;
            }
        }
        out
    }

    /// Cash (currency).
    pub fn cash(&self) -> f64 {
        self.cash
    }

    /// Cash at the start (currency).
    pub fn starting_cash(&self) -> f64 {
        self.settings.starting_cash
    }

    /// Closed round trips so far.
    pub fn trades(&self) -> &[Trade] {
        &self.trades
    }

    /// Takes the closed round trips (leaves the list empty).
    pub fn take_trades(&mut self) -> Vec<Trade> {
        std::mem::take(&mut self.trades)
    }

    /// Counters.
    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// The trading state.
    pub fn trading_state(&self) -> &TradingState {
        &self.state
    }

    /// Restores a trading state (a restarted bot continues HALTED or REDUCING).
    pub fn restore_state(&mut self, state: TradingState) {
        self.state = state;
    }

    /// Attaches the approval queue: `require_approval` orders then wait there for a person
    /// (see [`super::approvals`]) instead of being denied at once.
    pub fn set_approval_desk(&mut self, desk: Box<dyn ApprovalDesk + Send>) {
        self.desk = Some(desk);
    }

    /// Records the latest bid and ask of symbol index `symbol` (paper and live drivers):
    /// `order.round_trip_cost` then uses their spread instead of the configured estimate.
    pub fn set_quote(&mut self, symbol: usize, bid: f64, ask: f64) {
        if let Some(s) = self.symbols.get_mut(symbol) {
            s.quote = Some((bid, ask));
        }
    }

    /// Simulates broker outages: orders sent at bar times in `[from, to)` fail (a stress
    /// scenario); working orders already at the broker stay.
    pub fn set_outages(&mut self, windows: Vec<(i64, i64)>) {
        self.outages = windows;
    }

    /// Orders waiting for approval.
    pub fn parked_orders(&self) -> usize {
        self.parked.len()
    }

    /// HALTED by a person's decision (`dsl halt`); the change is recorded.
    pub fn halt(&mut self, ts: i64, reason: &str, sink: &mut dyn EventSink) {
        if let Some(c) = self.state.halt(ts, reason) {
            self.record_state(c, sink);
        }
    }

    /// Back to ACTIVE by a person's decision; the change is recorded. The drawdown peak is
    /// re-based to the equity at this moment (said in the change's message), so a drawdown
    /// breaker is re-armed from here rather than firing again at the next mark: the person
    /// has accepted the loss so far.
    pub fn resume(&mut self, ts: i64, reason: &str, sink: &mut dyn EventSink) {
        const REBASED: &str = "; drawdown peak re-based";
        let equity = self.equity();
        // A replay passes the journaled message, which says it already.
        let base = reason.split(REBASED).next().unwrap_or(reason);
        let message = format!("{base}{REBASED} from {:.2} to {equity:.2} (the equity at the resume)", self.peak_equity);
        if let Some(c) = self.state.resume(ts, &message) {
            self.peak_equity = equity;
            self.record_state(c, sink);
        }
    }

    /// After [`Engine::mark`]: applies a due `next_day` reset, then evaluates the account-only
    /// `halt`/`reduce` rules on the marked account (see the module docs).
    #[inline]
    pub fn check_account(&mut self, ts: i64, sink: &mut dyn EventSink) {
        if !self.mark_rules.is_empty() || self.state.mode != Mode::Active {
            self.check_mark_rules(ts, sink);
        }
    }

    fn check_mark_rules(&mut self, ts: i64, sink: &mut dyn EventSink) {
        if let Some(c) = self.state.on_time(ts) {
            self.record_state(c, sink);
        }
        if self.mark_rules.is_empty() || self.state.mode == Mode::Halted {
            return;
        }
        let mut fields = NO_FIELDS;
        self.account_fields(&mut fields);
        let held = self.bucket_holdings();
        let mut scratch = std::mem::take(&mut self.scratch);
        // The deciding rule, and the values it saw (journaled with the trip).
        let mut tripped: Option<Trip> = None;
        for &MarkRule { policy: pi, rule: ri, per_symbol } in &self.mark_rules {
            let mut fire = |v: f64, rule: &CompiledRule, slots: &[f64], fields: &FieldValues, symbol: &str| {
                if v.is_nan() || fires(v) {
                    let action = self.bundle.policies[pi].doc.rules[ri].action.value;
                    let to = if action == Action::Halt { Mode::Halted } else { Mode::Reducing };
                    if to > self.state.mode && tripped.as_ref().is_none_or(|t| to > t.2) {
                        let names = |path: &str| (path == "symbol.name").then(|| symbol.to_string());
                        tripped = Some((pi, ri, to, seen_values(rule, slots, fields, &names)));
                    }
                }
            };
            if !per_symbol {
                let rule = &self.symbols[0].program.policies[pi][ri];
                fire(eval_rule(rule, &[], &fields, &mut scratch), rule, &[], &fields, "");
                continue;
            }
            for (si, sym) in self.symbols.iter().enumerate() {
                if sym.bars == 0 {
                    continue;
                }
                self.symbol_fields(si, &mut fields, held.as_ref());
                let rule = &sym.program.policies[pi][ri];
                let slots = sym.current();
                fire(eval_rule(rule, &slots, &fields, &mut scratch), rule, &slots, &fields, &sym.name);
            }
        }
        self.scratch = scratch;
        if let Some((pi, ri, _, seen)) = tripped {
            let doc = &self.bundle.policies[pi].doc;
            let rule = &doc.rules[ri];
            sink.decision(&Decision {
                order: None,
                ts,
                policy: &doc.name.value,
                rule_id: &rule.id.value,
                fired: true,
                action: rule.action.value.as_str(),
                message: &rule.message.value,
                values: &seen,
            });
            let d = Denial {
                policy: pi,
                rule: ri,
                action: self.bundle.policies[pi].doc.rules[ri].action.value,
                undefined: false,
                message: None,
                allocation: None,
            };
            self.trip(&d, ts, sink);
        }
    }

    /// Moves the trading state as a `halt`/`reduce` rule asks, and flattens if it says so.
    fn trip(&mut self, d: &Denial, ts: i64, sink: &mut dyn EventSink) {
        let rule = &self.bundle.policies[d.policy].doc.rules[d.rule];
        let (to, reset, flatten) = match d.action {
            Action::Halt => (Mode::Halted, rule.reset, rule.flatten),
            Action::Reduce => (Mode::Reducing, rule.reset, false),
            _ => return,
        };
        let message = d.message.clone().unwrap_or_else(|| rule.message.value.clone());
        if let Some(c) = self.state.escalate(to, ts, &d.key(&self.bundle.policies), &message, reset) {
            self.record_state(c, sink);
            if flatten {
                self.flatten(ts, sink);
            }
        }
    }

    fn record_state(&mut self, c: StateChange, sink: &mut dyn EventSink) {
        sink.state_change(&c);
        self.stats.state_changes.push(c);
    }

    /// Closes every open position with a market order (a halting rule's `flatten: true`).
    fn flatten(&mut self, ts: i64, sink: &mut dyn EventSink) {
        for slot_id in 0..self.slots.len() {
            let slot = &self.slots[slot_id];
            if slot.position.is_none() || slot.pending_market {
                continue;
            }
            let last = self.symbols[slot.symbol].last_close;
            let bar = Bar { ts, open: last, high: last, low: last, close: last, volume: 0.0 };
            self.signal_exit(slot_id, ExitReason::Flatten, &bar, sink);
        }
    }

    /// Market value of open positions at their symbols' last closes, and whether any is open.
    #[inline]
    fn valuation(&self) -> (f64, bool) {
        let (mut value, mut open) = (0.0, false);
        for s in &self.slots {
            if let Some(p) = &s.position {
                value += p.quantity * self.symbols[s.symbol].last_close;
                open = true;
            }
        }
        (value, open)
    }

    /// Market value of open positions at their symbols' last closes.
    pub fn positions_value(&self) -> f64 {
        self.valuation().0
    }

    /// Highest equity marked so far, starting cash included (currency).
    pub fn peak_equity(&self) -> f64 {
        self.peak_equity
    }

    /// Equity: cash plus positions at the last closes.
    pub fn equity(&self) -> f64 {
        self.cash + self.positions_value()
    }

    /// Values the account after all bars of a timestamp: returns equity (and tracks its peak)
    /// and whether any position is open.
    #[inline]
    pub fn mark(&mut self) -> (f64, bool) {
        let (value, open) = self.valuation();
        let e = self.cash + value;
        if e > self.peak_equity {
            self.peak_equity = e;
        }
        (e, open)
    }

    /// Open positions with their unrealized pnl.
    pub fn open_positions(&self) -> Vec<OpenPosition> {
        self.slots
            .iter()
            .filter_map(|s| {
                let p = s.position.as_ref()?;
                let sym = &self.symbols[s.symbol];
                Some(OpenPosition {
                    strategy: self.bundle.strategies[s.strategy].name().to_string(),
                    symbol: sym.name.to_string(),
                    quantity: p.quantity,
                    entry_time: p.entry_ts,
                    entry_price: p.entry_price,
                    last_price: sym.last_close,
                    unrealized_pnl: (sym.last_close - p.entry_price) * p.quantity,
                })
            })
            .collect()
    }

    /// Processes one bar of symbol index `symbol` (streaming: the live and paper path).
    #[inline]
    pub fn on_bar(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        self.advance_clock(bar.ts);
        if !self.parked.is_empty() {
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
        if !self.parked.is_empty() {
            self.settle_approvals(bar.ts, sink);
        }
        if self.broker.has_working(symbol) {
            // Fills see the previous bar's values, as in streaming mode.
            self.fill_working(symbol, &bar, sink);
        }
        let st = &mut self.symbols[symbol];
        if i < st.block_start || i >= st.block_start + st.block_len {
            let len = block_len(st.graph.len()).min(series.len() - i);
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

    /// Applies the desk's decisions on parked orders, and refuses those whose window ended.
    /// An approved order is routed at the current bar: it must still pass the trading state
    /// and every rule other than the approval.
    pub fn settle_approvals(&mut self, ts: i64, sink: &mut dyn EventSink) {
        let decisions = self.desk.as_mut().map(|d| d.decisions(ts)).unwrap_or_default();
        for (id, outcome) in decisions {
            let Some(k) = self.parked.iter().position(|(o, _)| o.client_order_id == id) else { continue };
            let (order, _) = self.parked.remove(k);
            let (strategy, symbol) = self.names(&order);
            let (strategy, symbol) = (strategy.to_string(), symbol.to_string());
            let message = match &outcome {
                ApprovalOutcome::Approved { note } => format!("{id} approved: {note}"),
                ApprovalOutcome::Rejected { note } => format!("{id} rejected: {note}"),
            };
            sink.note(&Note {
                ts,
                kind: NoteKind::ApprovalDecided,
                origin: &strategy,
                symbol: &symbol,
                script: "",
                message: &message,
            });
            match outcome {
                ApprovalOutcome::Approved { .. } => self.route_approved(order, ts, sink),
                ApprovalOutcome::Rejected { note } => {
                    self.slots[order.slot].pending_market = false;
                    self.reject(&order, &format!("approval rejected: {note}"), sink);
                }
            }
        }
        let mut k = 0;
        while k < self.parked.len() {
            if self.parked[k].1 > ts {
                k += 1;
                continue;
            }
            let (order, expires) = self.parked.remove(k);
            if let Some(d) = self.desk.as_mut() {
                d.expire(order.client_order_id, ts);
            }
            self.slots[order.slot].pending_market = false;
            self.stats.approvals_expired += 1;
            let reason = format!("no approval by {}: denied on timeout", super::market::format_utc(expires));
            self.reject(&order, &reason, sink);
        }
    }

    /// Routes an order a person approved, at the last close of its symbol.
    fn route_approved(&mut self, order: Order, ts: i64, sink: &mut dyn EventSink) {
        self.slots[order.slot].pending_market = false;
        if !self.admit(&order, ts, true, sink) {
            return;
        }
        let last = self.symbols[order.symbol].last_close;
        let bar = Bar { ts, open: last, high: last, low: last, close: last, volume: 0.0 };
        let _ = self.submit(order, &bar, sink);
    }

    /// Moves the engine's clock to a bar's time; a new UTC day takes the equity at its start
    /// (positions at the previous closes) and restarts the day's order count.
    #[inline]
    fn advance_clock(&mut self, ts: i64) {
        if ts > self.now {
            self.now = ts;
            if ts >= self.day_end {
                self.day_end = day_end(ts);
                self.day_start_equity = self.equity();
                self.orders_today = 0;
            }
        }
    }

    /// Feeds a bar of history to symbol index `symbol` before trading starts (a live feed's
    /// warm-up): indicators, the last close and the day's reference move on; no rule is
    /// evaluated, no order fills and nothing is journaled.
    pub fn warm_up(&mut self, symbol: usize, bar: &Bar) {
        self.advance_clock(bar.ts);
        let st = &mut self.symbols[symbol];
        st.graph.update(bar);
        st.row = None;
        st.block_len = 0;
        self.track_bar(symbol, bar);
    }

    /// Records a bar's close and time in its symbol's state.
    #[inline]
    fn track_bar(&mut self, symbol: usize, bar: &Bar) {
        let st = &mut self.symbols[symbol];
        if bar.ts >= st.day_end {
            st.day_end = day_end(bar.ts);
            st.day_base = if st.last_close.is_nan() { bar.open } else { st.last_close };
        }
        st.last_close = bar.close;
        st.last_ts = bar.ts;
        st.bars += 1;
    }

    #[inline]
    fn after_update(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        self.track_bar(symbol, bar);
        if self.symbols[symbol].slots.iter().any(|&s| self.slots[s].synthetic > 0.0) {
            self.watch_remainders(symbol, bar, sink);
        }
        for k in 0..self.symbols[symbol].slots.len() {
            let slot = self.symbols[symbol].slots[k];
            self.evaluate_slot(slot, bar, sink);
        }
    }

    fn fill_working(&mut self, symbol: usize, bar: &Bar, sink: &mut dyn EventSink) {
        if self.settings.fill == FillTiming::NextOpen {
            for ex in self.broker.at_open(symbol, bar) {
                self.execute(ex, bar.ts, sink);
            }
        }
        for ex in self.broker.in_range(symbol, bar) {
            self.execute(ex, bar.ts, sink);
        }
    }

    #[inline]
    fn evaluate_slot(&mut self, slot_id: usize, bar: &Bar, sink: &mut dyn EventSink) {
        let slot = &mut self.slots[slot_id];
        if slot.pending_market || (slot.retired && slot.position.is_none()) {
            return;
        }
        let bars_held = slot.position.as_mut().map(|p| {
            p.bars_held += 1;
            p.bars_held
        });
        let (max_holding, exit, entry, symbol) = (slot.max_holding, slot.exit, slot.entry, slot.symbol);
        let signal = decide(bars_held, max_holding, |kind| {
            let rule = if kind == RuleKind::Entry { Some(entry) } else { exit };
            rule.map(|r| match r {
                RuleRef::Node(id) => fires(self.symbols[symbol].value(id)),
                RuleRef::Program => self.eval_program(slot_id, kind == RuleKind::Entry),
            })
        });
        match signal {
            Some(Signal::Entry) if !self.entry_passes_filter(slot_id, bar, sink) => {}
            Some(Signal::Entry) => self.signal_entry(slot_id, bar, sink),
            Some(Signal::Exit(reason)) => self.signal_exit(slot_id, reason, bar, sink),
            None => {}
        }
    }

    /// Runs the strategy's entry filter script, if any: `false` or a failure vetoes the entry
    /// (and is noted).
    fn entry_passes_filter(&mut self, slot_id: usize, bar: &Bar, sink: &mut dyn EventSink) -> bool {
        let (strategy, symbol) = (self.slots[slot_id].strategy, self.slots[slot_id].symbol);
        let Some(filter) = self.bundle.strategies[strategy].filter.clone() else { return true };
        let mut fields = NO_FIELDS;
        self.account_fields(&mut fields);
        let ctx = FilterContext {
            symbol: self.symbols[symbol].name.to_string(),
            strategy: self.bundle.strategies[strategy].name().to_string(),
            time: bar.ts,
            bar: [bar.open, bar.high, bar.low, bar.close, bar.volume],
            fields: fields.to_vec(),
        };
        let sandbox = Sandbox::shared();
        let (kind, message) = match self.budgets.run(&filter, &sandbox.limits(), || filter.filter(sandbox, &ctx)) {
            Ok(true) => return true,
            Ok(false) => {
                self.stats.entries_filtered += 1;
                (NoteKind::EntryFiltered, "the filter returned false".to_string())
            }
            Err(ScriptError::Disabled { first: false, .. }) => {
                // Disabled earlier in the run (journaled then): every entry is skipped.
                self.stats.script_errors += 1;
                return false;
            }
            Err(e @ ScriptError::Disabled { .. }) => {
                self.stats.script_errors += 1;
                (NoteKind::ScriptDisabled, format!("{e}; entries are skipped (fail closed)"))
            }
            Err(e) => {
                self.stats.script_errors += 1;
                (NoteKind::ScriptError, format!("{e}; the entry is skipped"))
            }
        };
        sink.note(&Note {
            ts: bar.ts,
            kind,
            origin: &ctx.strategy,
            symbol: &ctx.symbol,
            script: &filter.source.name,
            message: &message,
        });
        false
    }

    /// Reports the failures of custom indicator scripts on the symbol's graph.
    fn report_script_failures(&mut self, symbol: usize, sink: &mut dyn EventSink) {
        let st = &mut self.symbols[symbol];
        let (failures, dropped) = st.graph.take_script_failures();
        self.stats.script_errors += failures.len() as u64 + dropped;
        for f in &failures {
            let (kind, message) = if f.disabled {
                (NoteKind::ScriptDisabled, format!("{}; the indicator is undefined from this bar on", f.message))
            } else {
                (NoteKind::ScriptError, format!("{}; the indicator is undefined on this bar", f.message))
            };
            sink.note(&Note {
                ts: f.ts,
                kind,
                origin: "indicator",
                symbol: &st.name,
                script: &f.script,
                message: &message,
            });
        }
        if dropped > 0 {
            let message = format!("{dropped} more script failures were not recorded");
            let ts = failures.last().map_or(st.last_ts, |f| f.ts);
            sink.note(&Note {
                ts,
                kind: NoteKind::ScriptError,
                origin: "indicator",
                symbol: &st.name,
                script: "",
                message: &message,
            });
        }
    }

    /// Evaluates a slot's entry (or exit) rule that reads context fields.
    fn eval_program(&mut self, slot_id: usize, entry: bool) -> bool {
        let slot = &self.slots[slot_id];
        let sym = &self.symbols[slot.symbol];
        let Some(rules) = sym.program.strategies[slot.strategy].as_ref() else { return false };
        let rule = if entry { Some(&rules.entry) } else { rules.exit.as_ref() };
        let Some(rule) = rule else { return false };
        let fields = self.fields_for_slot(slot_id);
        let mut scratch = std::mem::take(&mut self.scratch);
        let v = eval_rule(rule, &self.symbols[self.slots[slot_id].symbol].current(), &fields, &mut scratch);
        self.scratch = scratch;
        fires(v)
    }

    /// The value of the slot's sizing input (ATR or volatility) on the current bar.
    fn sizing_input(&self, slot_id: usize) -> f64 {
        let slot = &self.slots[slot_id];
        let sym = &self.symbols[slot.symbol];
        match sym.program.strategies[slot.strategy].as_ref().and_then(|r| r.sizing_input.as_ref()) {
            Some(CompiledRule { eval: RuleEval::Slot(id), .. }) => sym.value(*id),
            _ => f64::NAN,
        }
    }

    /// Full Kelly `W - (1 - W) / R` for a strategy: from its own closed trades once it has
    /// `min_trades`, else from the priors.
    fn kelly(&self, strategy: usize, win_rate: f64, payoff: f64, min_trades: u32) -> f64 {
        let name = &self.strategy_names[strategy];
        let (mut n, mut wins, mut won, mut lost) = (0u32, 0u32, 0.0, 0.0);
        for t in self.trades.iter().filter(|t| &t.strategy == name) {
            n += 1;
            if t.pnl > 0.0 {
                wins += 1;
                won += t.pnl;
            } else {
                lost -= t.pnl;
            }
        }
        let (w, r) = if n >= min_trades && n > 0 {
            let w = f64::from(wins) / f64::from(n);
            let losses = n - wins;
            let avg_win = if wins > 0 { won / f64::from(wins) } else { 0.0 };
            let avg_loss = if losses > 0 { lost / f64::from(losses) } else { 0.0 };
            (w, if avg_loss > 0.0 { avg_win / avg_loss } else { f64::INFINITY })
        } else {
            (win_rate, payoff)
        };
        if r.is_infinite() { w } else { w - (1.0 - w) / r }
    }

    /// The strategy's `expected_return` on the current bar (`NaN` when not declared).
    fn expected_return(&mut self, slot_id: usize) -> f64 {
        let slot = &self.slots[slot_id];
        let sym = &self.symbols[slot.symbol];
        let Some(rule) = sym.program.strategies[slot.strategy].as_ref().and_then(|r| r.expected_return.as_ref()) else {
            return f64::NAN;
        };
        let fields = self.fields_for_slot(slot_id);
        let mut scratch = std::mem::take(&mut self.scratch);
        let v = eval_rule(rule, &sym.current(), &fields, &mut scratch);
        self.scratch = scratch;
        v
    }

    fn next_id(&mut self, slot_id: usize, ts: i64) -> ClientOrderId {
        let slot = &mut self.slots[slot_id];
        if slot.seq_ts != ts {
            slot.seq_ts = ts;
            slot.seq = 0;
        }
        let seq = slot.seq;
        slot.seq += 1;
        slot.ids.id(ts, seq)
    }

    fn signal_entry(&mut self, slot_id: usize, bar: &Bar, sink: &mut dyn EventSink) {
        let (strategy, symbol) = (self.slots[slot_id].strategy, self.slots[slot_id].symbol);
        let price = bar.close;
        let doc = &self.bundle.strategies[strategy].doc;
        let (sizing, limits) = (doc.sizing.value, doc.sizing_limits);
        let equity = self.equity();
        let input = self.sizing_input(slot_id);
        let per_equity = |f: f64| if price > 0.0 { f * equity / price } else { 0.0 };
        let mut stop_distance = f64::NAN;
        let (mut quantity, mut units) = match sizing {
            Sizing::FixedQuantity(q) => (Quantity::Units(q), q),
            Sizing::PercentOfEquity(f) => {
                let u = per_equity(f);
                (Quantity::Units(u), u)
            }
            Sizing::AllCash => {
                let est = self.broker.model.slipped(Side::Buy, price);
                let per_unit = self.settings.costs.cash_per_unit(est);
                (Quantity::AllCash, if est > 0.0 { self.cash.max(0.0) / per_unit } else { 0.0 })
            }
            Sizing::AtrRisk { risk, atr_multiple, .. } => {
                stop_distance = atr_multiple * input;
                let u = if stop_distance > 0.0 { risk * equity / stop_distance } else { f64::NAN };
                (Quantity::Units(u), u)
            }
            Sizing::VolatilityTarget { target, .. } => {
                let u = if input > 0.0 { per_equity((target / input).min(1.0)) } else { f64::NAN };
                (Quantity::Units(u), u)
            }
            Sizing::Kelly { fraction, win_rate, payoff, min_trades } => {
                let f = fraction * self.kelly(strategy, win_rate, payoff, min_trades);
                let u = per_equity(f.max(0.0));
                (Quantity::Units(u), u)
            }
        };
        if let Some(cap) = limits.max_percent_of_equity
            && units * price > cap * equity
        {
            units = per_equity(cap);
            quantity = Quantity::Units(units);
        }
        if limits.whole_units && units.is_finite() {
            units = units.floor();
            quantity = Quantity::Units(units);
        }
        self.slots[slot_id].pending_stop = stop_distance;
        let order = Order {
            client_order_id: self.next_id(slot_id, bar.ts),
            slot: slot_id,
            strategy,
            symbol,
            side: Side::Buy,
            intent: Intent::Entry,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            quantity,
            estimated_units: units,
            reference_price: price,
            created_ts: bar.ts,
            reason: OrderReason::EntryRule,
            expected_return: self.expected_return(slot_id),
            group: None,
        };
        if !(units > 0.0 && units.is_finite()) {
            let why = match sizing {
                Sizing::AtrRisk { .. } | Sizing::VolatilityTarget { .. } if input.is_nan() || input <= 0.0 => {
                    "nothing_to_trade: the sizing input (ATR or volatility) is undefined or zero on this bar"
                }
                Sizing::Kelly { .. } => "nothing_to_trade: the Kelly fraction is not positive (no edge)",
                _ => "nothing_to_trade: the sized quantity is zero (no cash?)",
            };
            self.reject(&order, why, sink);
            return;
        }
        if units * price < limits.min_notional {
            let why = format!(
                "below_min_notional: {:.2} is below the minimum order notional {:.2}",
                units * price,
                limits.min_notional
            );
            self.reject(&order, &why, sink);
            return;
        }
        self.route(order, bar, sink);
    }

    fn signal_exit(&mut self, slot_id: usize, reason: ExitReason, bar: &Bar, sink: &mut dyn EventSink) {
        let slot = &self.slots[slot_id];
        let Some(pos) = slot.position.as_ref() else {
            return;
        };
        let units = pos.quantity;
        let (strategy, symbol) = (slot.strategy, slot.symbol);
        let order = Order {
            client_order_id: self.next_id(slot_id, bar.ts),
            slot: slot_id,
            strategy,
            symbol,
            side: Side::Sell,
            intent: Intent::Exit,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            quantity: Quantity::ClosePosition,
            estimated_units: units,
            reference_price: bar.close,
            created_ts: bar.ts,
            reason: OrderReason::Exit(reason),
            expected_return: f64::NAN,
            group: None,
        };
        self.route(order, bar, sink);
    }

    /// The trading state, the policies, then the broker (or an immediate fill at the close).
    /// A strategy exit first cancels the position's protective orders (they hold its shares).
    fn route(&mut self, order: Order, bar: &Bar, sink: &mut dyn EventSink) {
        if !self.admit(&order, order.created_ts, false, sink) {
            return;
        }
        if order.intent == Intent::Exit && order.quantity == Quantity::ClosePosition {
            self.cancel_protective(order.slot, order.created_ts, sink);
        }
        let _ = self.submit(order, bar, sink);
    }

    /// Hands an admitted order to the broker (or fills it at the close with close timing);
    /// `false` when the broker refused it (an outage, a rule of the broker's).
    fn submit(&mut self, order: Order, bar: &Bar, sink: &mut dyn EventSink) -> bool {
        if !self.outages.is_empty() && self.outages.iter().any(|(a, b)| (*a..*b).contains(&order.created_ts)) {
            *self.stats.blocked_by_state.entry("broker_outage".into()).or_insert(0) += 1;
            self.reject(&order, "broker_outage: the broker did not accept the order", sink);
            return false;
        }
        if let Some(why) = self.broker_refusal(&order) {
            self.reject(&order, &why, sink);
            return false;
        }
        let slot = order.slot;
        let (strategy, symbol) = self.names(&order);
        sink.order(&order, strategy, symbol, OrderStatus::Submitted, "");
        self.stats.orders_submitted += 1;
        self.count_order(order.created_ts);
        if order.order_type == OrderType::Market {
            self.slots[slot].pending_market = true;
            self.slots[slot].pending_notional = order.notional();
            if self.settings.fill == FillTiming::Close && self.external.is_none() {
                let price = self.broker.model.slipped(order.side, bar.close);
                self.execute(Execution { order, price, base_price: bar.close }, bar.ts, sink);
                return true;
            }
        }
        self.hand_over(order);
        true
    }

    /// Gives a submitted order to the simulated broker, or queues it for the outside one.
    fn hand_over(&mut self, order: Order) {
        match self.external.as_mut() {
            Some(book) => {
                book.working.push(order.clone());
                book.outbox.push(BrokerRequest::Submit(order));
            }
            None => self.broker.submit(order),
        }
    }

    /// Counts a market order sent at bar time `ts` (for `account.orders_*`).
    fn count_order(&mut self, ts: i64) {
        self.orders_today += 1;
        while self.recent_orders.front().is_some_and(|t| *t <= ts - 3_600) {
            self.recent_orders.pop_front();
        }
        self.recent_orders.push_back(ts);
    }

    fn names(&self, order: &Order) -> (&str, &str) {
        (self.bundle.strategies[order.strategy].name(), &self.symbols[order.symbol].name)
    }

    fn reject(&mut self, order: &Order, reason: &str, sink: &mut dyn EventSink) {
        let (strategy, symbol) = self.names(order);
        sink.order(order, strategy, symbol, OrderStatus::Rejected, reason);
        self.stats.orders_rejected += 1;
    }

    /// Whether `order` may go to the broker: the trading state, then the policy rules (and
    /// what a deciding `reduce`/`halt`/`require_approval` rule does). Refusals are recorded.
    ///
    /// `ts` is the time of the decision (a state change is stamped with it); `approved`: a
    /// person approved the order, so `require_approval` rules no longer decide.
    fn admit(&mut self, order: &Order, ts: i64, approved: bool, sink: &mut dyn EventSink) -> bool {
        // Stop-loss and take-profit orders pass in every state (the bot's own for a remainder
        // too): they only lower risk, as the strategy declared.
        let protective = order.order_type != OrderType::Market
            || matches!(order.reason, OrderReason::Exit(ExitReason::StopLoss | ExitReason::TakeProfit));
        if !protective && let Err(b) = self.state.admits(order) {
            *self.stats.blocked_by_state.entry(b.code.to_string()).or_insert(0) += 1;
            if order.intent == Intent::Exit {
                *self.stats.blocked_exits.entry(b.code.to_string()).or_insert(0) += 1;
            }
            self.reject(order, &b.reason, sink);
            return false;
        }
        if order.reason == OrderReason::Exit(ExitReason::Flatten) {
            // Flattening is what a halting rule asked for: no rule may stand in its way.
            return true;
        }
        let Some(d) = self.check_policies(order, approved, sink) else { return true };
        let mut reason = d.reason(&self.bundle.policies);
        match d.action {
            Action::Reduce | Action::Halt => self.trip(&d, ts, sink),
            Action::RequireApproval if self.desk.is_some() => {
                let expires = order.created_ts + self.bundle.policies[d.policy].doc.rules[d.rule].expires_after;
                if self.park(order, expires, &d, sink) {
                    return false;
                }
                reason = format!("{reason}; the approval queue could not record it: denied (fail closed)");
            }
            Action::RequireApproval => {
                // No approver is attached to this engine (a backtest): the order waits out
                // its approval window and is denied by default.
                let rule = &self.bundle.policies[d.policy].doc.rules[d.rule];
                self.stats.approvals_expired += 1;
                reason = format!(
                    "{reason}; no approval within {} min: denied on timeout",
                    rule.expires_after.div_euclid(60).max(1)
                );
            }
            Action::Deny | Action::Warn => {}
        }
        // A `reduce` rule lets an order through that lowers exposure.
        if d.action == Action::Reduce && order.intent == Intent::Exit {
            return true;
        }
        *self.stats.denials.entry(d.key(&self.bundle.policies)).or_insert(0) += 1;
        if order.intent == Intent::Exit {
            *self.stats.denied_exits.entry(d.key(&self.bundle.policies)).or_insert(0) += 1;
        }
        self.reject(order, &reason, sink);
        false
    }

    /// Parks an order on the desk until `expires`; `false` if the desk could not record it.
    fn park(&mut self, order: &Order, expires: i64, d: &Denial, sink: &mut dyn EventSink) -> bool {
        let (strategy, symbol) = self.names(order);
        let rule = &self.bundle.policies[d.policy].doc.rules[d.rule];
        let request = ApprovalRequest {
            client_order_id: order.client_order_id,
            created_ts: order.created_ts,
            expires_ts: expires,
            strategy: strategy.to_string(),
            symbol: symbol.to_string(),
            side: order.side.as_str(),
            intent: order.intent.as_str(),
            quantity: order.estimated_units,
            notional: order.notional(),
            rule: d.key(&self.bundle.policies),
            message: d.message.clone().unwrap_or_else(|| rule.message.value.clone()),
        };
        let Some(desk) = self.desk.as_mut() else { return false };
        if !desk.park(&request) {
            return false;
        }
        let message = format!(
            "{} parked for approval until {}: {}",
            order.client_order_id,
            super::market::format_utc(expires),
            request.message
        );
        sink.note(&Note {
            ts: order.created_ts,
            kind: NoteKind::ApprovalRequested,
            origin: &request.rule,
            symbol: &request.symbol,
            script: "",
            message: &message,
        });
        // The slot waits for the decision as for a working order.
        self.slots[order.slot].pending_market = true;
        self.slots[order.slot].pending_notional = order.notional();
        self.parked.push((order.clone(), expires));
        true
    }

    /// Evaluates every policy rule on an order. Returns the deciding rule, if any.
    fn check_policies(&mut self, order: &Order, approved: bool, sink: &mut dyn EventSink) -> Option<Denial> {
        if self.bundle.policies.is_empty() {
            return None;
        }
        let fields = self.fields_for_order(order);
        let mut scratch = std::mem::take(&mut self.scratch);
        let sym = &self.symbols[order.symbol];
        let values = sym.current();
        let policies = &self.bundle.policies;
        let strategy = self.bundle.strategies[order.strategy].name();
        let names = |path: &str| -> Option<String> {
            Some(match path {
                "order.symbol" => sym.name.to_string(),
                "order.strategy" => strategy.to_string(),
                "order.side" => order.side.as_str().to_string(),
                "order.intent" => order.intent.as_str().to_string(),
                _ => return None,
            })
        };
        let mut script_errors = 0;
        let mut warned = Vec::new();
        let check = |v: &RuleVerdict, compiled: &CompiledRule| {
            let doc = &policies[v.policy].doc;
            let rule = &doc.rules[v.rule];
            let seen = seen_values(compiled, &values, &fields, &names);
            if v.error.is_some() && matches!(compiled.eval, RuleEval::Script(_)) {
                script_errors += 1;
            }
            if let (Some(error), RuleEval::Script(script), None | Some(true)) = (&v.error, &compiled.eval, v.disabled) {
                let origin = format!("{}/{}", doc.name.value, rule.id.value);
                let kind = if v.disabled.is_some() { NoteKind::ScriptDisabled } else { NoteKind::ScriptError };
                sink.note(&Note {
                    ts: order.created_ts,
                    kind,
                    origin: &origin,
                    symbol: &sym.name,
                    script: &script.source.name,
                    message: error,
                });
            }
            if v.fired && rule.action.value == Action::Warn {
                warned.push(format!("{}/{}", doc.name.value, rule.id.value));
            }
            sink.decision(&Decision {
                order: Some(order),
                ts: order.created_ts,
                policy: &doc.name.value,
                rule_id: &rule.id.value,
                fired: v.fired,
                action: if v.fired { rule.action.value.as_str() } else { "pass" },
                message: v.message.as_deref().unwrap_or(&rule.message.value),
                values: &seen,
            });
        };
        let denial = check_order(
            policies,
            &sym.program.policies,
            &values,
            &fields,
            &names,
            &mut scratch,
            approved,
            &self.budgets,
            check,
        );
        self.scratch = scratch;
        self.stats.script_errors += script_errors;
        for w in warned {
            *self.stats.warnings.entry(w).or_insert(0) += 1;
        }
        if denial.is_some() || order.intent != Intent::Entry || self.allocations.is_empty() {
            return denial;
        }
        self.check_allocations(order, &fields, sink)
    }

    /// Checks an entry against every policy's allocation buckets; journals each verdict.
    fn check_allocations(&self, order: &Order, fields: &FieldValues, sink: &mut dyn EventSink) -> Option<Denial> {
        let held = self.holdings();
        let h = held.view(fields[FieldId::AccountEquity as usize]);
        for a in &self.allocations {
            let verdict = a.check_entry(order.symbol, order.notional(), &h);
            let policy = &self.bundle.policies[a.policy].doc.name.value;
            let weight = a.bucket_weight(order.symbol, &h);
            let seen = [
                ("bucket.weight".to_string(), Seen::Number(weight)),
                ("order.notional".to_string(), Seen::Number(order.notional())),
                ("account.equity".to_string(), Seen::Number(h.equity)),
            ];
            let (rule_id, message) = match &verdict {
                Ok(()) => ("allocation".to_string(), "within the allocation buckets".to_string()),
                Err(b) => (format!("allocation.{}", b.code), b.message.clone()),
            };
            sink.decision(&Decision {
                order: Some(order),
                ts: order.created_ts,
                policy,
                rule_id: &rule_id,
                fired: verdict.is_err(),
                action: if verdict.is_err() { "deny" } else { "pass" },
                message: &message,
                values: &seen,
            });
            if let Err(b) = verdict {
                return Some(Denial {
                    policy: a.policy,
                    rule: 0,
                    action: Action::Deny,
                    undefined: false,
                    message: Some(b.message),
                    allocation: Some(b.code),
                });
            }
        }
        None
    }

    /// What the account holds now, for allocation weights (see [`Held`]).
    fn holdings(&self) -> Held {
        let mut pending = 0.0;
        let mut values = vec![0.0; self.symbols.len()];
        let mut leaving = vec![0.0; self.symbols.len()];
        for (si, sym) in self.symbols.iter().enumerate() {
            for &s in &sym.slots {
                let slot = &self.slots[s];
                match &slot.position {
                    Some(p) => {
                        let v = (p.quantity * sym.last_close).abs();
                        values[si] += v;
                        if slot.pending_market {
                            leaving[si] += v;
                        }
                    }
                    None if slot.pending_market => {
                        values[si] += slot.pending_notional.abs();
                        pending += slot.pending_notional.abs();
                    }
                    None => {}
                }
            }
        }
        Held { values, leaving, free_cash: self.cash - pending }
    }

    /// [`Engine::holdings`], when a rule reads the `bucket.*` fields.
    fn bucket_holdings(&self) -> Option<Held> {
        self.reads_buckets.then(|| self.holdings())
    }

    fn account_fields(&self, f: &mut FieldValues) {
        let pv = self.positions_value();
        let mut exposure = 0.0;
        let mut open = 0.0;
        for s in &self.slots {
            if let Some(p) = &s.position {
                exposure += (p.quantity * self.symbols[s.symbol].last_close).abs();
                open += 1.0;
            } else if s.pending_market {
                exposure += s.pending_notional.abs();
            }
        }
        let equity = self.cash + pv;
        let peak = self.peak_equity.max(equity);
        f[FieldId::AccountEquity as usize] = equity;
        f[FieldId::AccountCash as usize] = self.cash;
        f[FieldId::AccountExposure as usize] = exposure;
        f[FieldId::AccountPeakEquity as usize] = peak;
        f[FieldId::AccountDrawdown as usize] = if peak > 0.0 { (peak - equity) / peak } else { 0.0 };
        f[FieldId::AccountOpenPositions as usize] = open;
        let start = self.day_start_equity;
        f[FieldId::AccountDailyPnl as usize] = equity - start;
        f[FieldId::AccountDailyReturn as usize] = if start > 0.0 { equity / start - 1.0 } else { f64::NAN };
        f[FieldId::AccountLossStreak as usize] = f64::from(self.loss_streak);
        let now = self.now;
        let within = |secs: i64| self.recent_orders.iter().rev().take_while(|t| **t > now - secs).count() as f64;
        f[FieldId::AccountOrdersLastMinute as usize] = within(60);
        f[FieldId::AccountOrdersLastHour as usize] = within(3_600);
        f[FieldId::AccountOrdersToday as usize] = f64::from(self.orders_today);
    }

    /// Sets the `symbol.*` fields for symbol index `si` (the account fields must be set), and
    /// the `bucket.*` fields when `held` is given.
    fn symbol_fields(&self, si: usize, f: &mut FieldValues, held: Option<&Held>) {
        let sym = &self.symbols[si];
        let mut value = 0.0;
        for &s in &sym.slots {
            let slot = &self.slots[s];
            match &slot.position {
                Some(p) => value += (p.quantity * sym.last_close).abs(),
                None if slot.pending_market => value += slot.pending_notional.abs(),
                None => {}
            }
        }
        let equity = f[FieldId::AccountEquity as usize];
        f[FieldId::SymbolName as usize] = sym.name_id;
        f[FieldId::SymbolDailyChange as usize] = sym.last_close / sym.day_base - 1.0;
        f[FieldId::SymbolWeight as usize] = if equity > 0.0 { value / equity } else { f64::NAN };
        if let (Some(a), Some(held)) = (self.allocations.first(), held) {
            f[FieldId::BucketName as usize] = self.bucket_ids[si];
            f[FieldId::BucketWeight as usize] = a.bucket_weight(si, &held.view(equity));
        }
    }

    fn fields_for_slot(&self, slot_id: usize) -> FieldValues {
        let mut f = NO_FIELDS;
        self.account_fields(&mut f);
        let slot = &self.slots[slot_id];
        self.symbol_fields(slot.symbol, &mut f, self.bucket_holdings().as_ref());
        if let Some(p) = &slot.position {
            let last = self.symbols[slot.symbol].last_close;
            position_fields(&mut f, p.quantity, p.entry_price, last, p.bars_held as f64);
        }
        f
    }

    fn fields_for_order(&self, order: &Order) -> FieldValues {
        let mut f = NO_FIELDS;
        self.account_fields(&mut f);
        self.symbol_fields(order.symbol, &mut f, self.bucket_holdings().as_ref());
        let sym = &self.symbols[order.symbol];
        let (mut qty, mut cost) = (0.0, 0.0);
        for &s in &sym.slots {
            if let Some(p) = &self.slots[s].position {
                qty += p.quantity;
                cost += p.quantity * p.entry_price;
            }
        }
        let entry = if qty > 0.0 { cost / qty } else { f64::NAN };
        position_fields(&mut f, qty, entry, sym.last_close, f64::NAN);
        f[FieldId::OrderSymbol as usize] = sym.name_id;
        f[FieldId::OrderStrategy as usize] = self.strategy_ids[order.strategy];
        f[FieldId::OrderSide as usize] = string_id(order.side.as_str());
        f[FieldId::OrderIntent as usize] = string_id(order.intent.as_str());
        f[FieldId::OrderQuantity as usize] = order.estimated_units;
        f[FieldId::OrderPrice as usize] = order.reference_price;
        f[FieldId::OrderNotional as usize] = order.notional();
        if order.intent == Intent::Entry {
            let atr_stop = self.slots[order.slot].pending_stop;
            if atr_stop.is_finite() && order.reference_price > 0.0 {
                f[FieldId::OrderStopLoss as usize] = atr_stop / order.reference_price;
            } else if let Some(stop) = &self.bundle.strategies[order.strategy].doc.stop_loss {
                f[FieldId::OrderStopLoss as usize] = stop.value.value;
            }
        }
        let costs = &self.settings.costs;
        let spread = costs.spread_for(sym.quote);
        f[FieldId::OrderRoundTripCost as usize] = costs.round_trip(order.reference_price, spread);
        f[FieldId::OrderExpectedReturn as usize] = order.expected_return;
        f
    }

    /// Turns a broker execution into a fill: resolves the quantity against cash or the
    /// position, moves cash, opens or closes the position.
    fn execute(&mut self, ex: Execution, ts: i64, sink: &mut dyn EventSink) {
        self.execute_qty(ex, ts, None, sink);
    }

    /// [`Engine::execute`] with the quantity an outside broker filled, when there is one.
    fn execute_qty(&mut self, ex: Execution, ts: i64, filled: Option<f64>, sink: &mut dyn EventSink) {
        let Execution { order, price, base_price } = ex;
        let costs = self.settings.costs;
        let slot_id = order.slot;
        if order.order_type == OrderType::Market {
            self.slots[slot_id].pending_market = false;
        }
        let qty = match (order.quantity, order.side) {
            _ if filled.is_some() => filled.unwrap_or(0.0),
            (Quantity::AllCash, _) => self.cash.max(0.0) / costs.cash_per_unit(price),
            (Quantity::Units(q), Side::Buy) => q.min(self.cash.max(0.0) / costs.cash_per_unit(price)),
            (Quantity::Units(q), Side::Sell) => q,
            (Quantity::ClosePosition, _) => self.slots[slot_id].position.as_ref().map_or(0.0, |p| p.quantity),
        };
        if !(qty > 0.0 && qty.is_finite()) || price <= 0.0 {
            sink.order_status(
                order.client_order_id,
                OrderStatus::Cancelled,
                ts,
                "nothing to fill (no cash or no position)",
            );
            self.stats.orders_cancelled += 1;
            return;
        }
        let notional = qty * price;
        let commission = costs.commission_for(qty, price);
        let fill = Fill {
            client_order_id: order.client_order_id,
            ts,
            quantity: qty,
            price,
            commission,
            slippage_cost: (price - base_price).abs() * qty,
        };
        sink.fill(&fill, &order, &self.symbols[order.symbol].name);
        sink.order_status(order.client_order_id, OrderStatus::Filled, ts, "");
        self.stats.orders_filled += 1;
        let bar_index = self.symbols[order.symbol].bars;
        match order.side {
            Side::Buy => {
                self.cash -= notional + commission;
                // The protective levels are fixed at the fill: the strategy's percentages, or
                // for ATR risk sizing the stop where the sized risk is lost.
                let doc = &self.bundle.strategies[order.strategy].doc;
                let mut stop_price = f64::NAN;
                let mut take_profit_price = f64::NAN;
                for (t, _) in protective_orders(doc, price) {
                    match t {
                        OrderType::Stop(p) => stop_price = p,
                        OrderType::Limit(p) => take_profit_price = p,
                        OrderType::Market => {}
                    }
                }
                let atr_stop = std::mem::replace(&mut self.slots[slot_id].pending_stop, f64::NAN);
                if atr_stop.is_finite() {
                    stop_price = price - atr_stop;
                }
                let pos = Position {
                    quantity: qty,
                    entry_price: price,
                    entry_ts: ts,
                    entry_bar: bar_index,
                    entry_cost: notional + commission,
                    entry_fees: commission,
                    bars_held: 0,
                    entry_order_id: order.client_order_id,
                    stop_price,
                    take_profit_price,
                    exited: Default::default(),
                };
                self.slots[slot_id].position = Some(pos);
                self.place_protective(slot_id, ts, sink);
            }
            Side::Sell => {
                self.cash += notional - commission;
                let Some(mut pos) = self.slots[slot_id].position.take() else {
                    return;
                };
                let reason = match order.reason {
                    OrderReason::Exit(r) => r,
                    OrderReason::EntryRule => ExitReason::ExitRule,
                };
                // A position may close in several fills (the whole shares at the broker's
                // stop, then the remainder; an outside broker's partial fill): the round trip
                // is recorded once nothing is left, at the average exit price.
                let qty = qty.min(pos.quantity);
                pos.exited.quantity += qty;
                pos.exited.gross += qty * price;
                pos.exited.fees += commission;
                pos.exited.reason.get_or_insert(reason);
                let closed = qty >= pos.quantity * (1.0 - 1e-9);
                // The position is gone, or smaller: its protective orders (and any pending exit)
                // are cancelled; a remainder gets new ones for its size.
                let others = match self.external.as_mut() {
                    Some(book) => book.cancel_slot(slot_id),
                    None => self.broker.cancel_where(order.symbol, slot_id, |_| true),
                };
                for o in others {
                    if o.order_type == OrderType::Market {
                        self.slots[slot_id].pending_market = false;
                    }
                    let why = if closed { "position closed" } else { "resized after a partial exit" };
                    sink.order_status(o.client_order_id, OrderStatus::Cancelled, ts, why);
                    self.stats.orders_cancelled += 1;
                }
                if !closed {
                    pos.quantity -= qty;
                    self.slots[slot_id].position = Some(pos);
                    self.place_protective(slot_id, ts, sink);
                    return;
                }
                self.slots[slot_id].synthetic = 0.0;
                let e = pos.exited;
                let proceeds = e.gross - e.fees;
                let pnl = proceeds - pos.entry_cost;
                let trade = Trade {
                    strategy: self.strategy_names[order.strategy].clone(),
                    symbol: self.symbols[order.symbol].name.clone(),
                    entry_time: pos.entry_ts,
                    entry_price: pos.entry_price,
                    exit_time: ts,
                    // One fill: its price exactly; several: their average.
                    exit_price: if e.quantity == qty { price } else { e.gross / e.quantity },
                    quantity: e.quantity,
                    pnl,
                    pnl_pct: if pos.entry_cost != 0.0 { pnl / pos.entry_cost * 100.0 } else { 0.0 },
                    fees: pos.entry_fees + e.fees,
                    exit_reason: e.reason.unwrap_or(reason).as_str(),
                    holding_bars: bar_index.saturating_sub(pos.entry_bar),
                    entry_order_id: pos.entry_order_id,
                    exit_order_id: order.client_order_id,
                };
                self.loss_streak = if trade.pnl < 0.0 { self.loss_streak + 1 } else { 0 };
                sink.trade(&trade);
                self.trades.push(trade);
            }
        }
    }

    /// Cancels every working order (end of data); positions stay open.
    pub fn finish(&mut self, ts: i64, sink: &mut dyn EventSink) {
        let mut left = self.broker.drain();
        if let Some(book) = self.external.as_mut() {
            let working = std::mem::take(&mut book.working);
            book.outbox.extend(working.iter().cloned().map(BrokerRequest::Cancel));
            book.cancelling.extend(working.iter().cloned());
            left.extend(working);
        }
        for o in left {
            if o.order_type == OrderType::Market {
                self.slots[o.slot].pending_market = false;
            }
            sink.order_status(o.client_order_id, OrderStatus::Cancelled, ts, "end of data");
            self.stats.orders_cancelled += 1;
        }
        // Orders still waiting for a person: the feed ended before a decision.
        for (order, _) in std::mem::take(&mut self.parked) {
            if let Some(d) = self.desk.as_mut() {
                d.expire(order.client_order_id, ts);
            }
            self.slots[order.slot].pending_market = false;
            self.reject(&order, "end of data before a decision on its approval", sink);
        }
    }
}
