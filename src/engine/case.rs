//! One rule-test case (`kind: test`, run by `dsl test`), evaluated the way the engine would.
//!
//! [`prepare`] resolves a [`TestCase`] against the compiled strategy or policy it tests:
//! context fields by name (with the engine's derived fields filled in when not given),
//! sub-expression values to graph nodes of the target's own compiled rules, and strategy param
//! overrides. [`run`] then replays the case's bars through the symbol's indicator graph, pins
//! the given values, and decides with the engine's own functions: protective orders through
//! [`super::broker::SimBroker`], strategy signals through [`super::signal::decide`], policy
//! verdicts through [`super::guard::check_order`]. A case therefore passes or fails on exactly
//! what a backtest or a live bot would do in that situation.
//!
//! Derived fields, when a case does not give them: `account.peak_equity` = `account.equity`;
//! `account.drawdown` = `(peak - equity) / peak`; `order.notional` = quantity * price (and
//! `order.quantity` = notional / price); `order.price` = the last close; `position.notional`,
//! `position.unrealized_pnl` and `position.unrealized_return` from the position's quantity,
//! entry price and the last close (a quantity of 0 has notional and pnl 0).
//!
//! [`prepare`] (about 270 lines) is long on purpose: a sequence of commented steps (params,
//! context fields, the session of a case on real history, the position, the expectation, pinned
//! values) adding to one set of diagnostics and one result, which read best in order; [`run`]
//! lives in its own file.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::expr_source::ExprSource;
use crate::config::rule_test::{CaseValue, Expect, TestCase};
use crate::diagnostics::{Diagnostic, SourceFile, Span, codes, did_you_mean, one_of};
use crate::dsl::bundle::{
    Bundle, CompiledCondition, CompiledPolicy, CompiledStrategy, SymbolProgram, compile_strategy, set_params,
};
use crate::dsl::catalog::{self, Context, FIELDS, FieldId};
use crate::dsl::check::{Checker, TExpr, TKind};
use crate::dsl::explain::{Values, explain, render};
use crate::dsl::parser;
use crate::dsl::program::NodeId;
use crate::dsl::script::{CustomIndicator, FilterContext, Sandbox};
use crate::dsl::semantics::{fires, string_id};
use crate::dsl::types::{ValueKind, Variability};

use super::broker::{FillModel, SimBroker};
use super::graph::Graph;
use super::guard::check_order;
use super::market::Bar;
use super::orders::{Intent, Order, OrderIds, OrderReason, Quantity, Side, TimeInForce};
use super::rules::{FieldValues, NO_FIELDS, eval_rule, position_fields};
use super::signal::{RuleKind, Signal, decide, protective_orders};

/// What a test file exercises, compiled.
#[derive(Debug, Clone)]
pub enum Target {
    /// A strategy (its entry and exit decisions).
    Strategy(Box<CompiledStrategy>),
    /// A policy (its verdict on an order).
    Policy(Box<CompiledPolicy>),
}

/// A case resolved against its target, ready to [`run`].
#[derive(Debug, Clone)]
pub struct Prepared {
    target: Target,
    program: SymbolProgram,
    pins: Vec<(NodeId, f64)>,
    fields: FieldValues,
    /// `(quantity, entry_price, bars_held)` when a strategy case is in a position.
    position: Option<(f64, f64, u32)>,
    bars: Vec<Bar>,
    /// What the bars are: their market and length (higher timeframes are aggregated from them).
    base: super::resample::BaseBars,
    /// The symbol the case trades (`order.symbol` or `symbol.name` when given, else the
    /// strategy's first).
    symbol: String,
    strings: HashMap<u64, String>,
}

/// What the target decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Policy: no blocking rule fired; the ids of the `warn` rules that fired.
    Allow {
        /// Ids of the `warn` rules that fired.
        warned: Vec<String>,
    },
    /// Policy: the first rule that fired.
    Deny {
        /// Its id.
        rule: String,
        /// The denial reason as the journal shows it.
        reason: String,
    },
    /// Strategy: the signal, if any.
    Signal(Option<Signal>),
}

impl Outcome {
    /// How the outcome reads in reports, in the words of [`Expect::describe`].
    pub fn describe(&self) -> String {
        match self {
            Outcome::Allow { warned } if warned.is_empty() => "allow".into(),
            Outcome::Allow { warned } => format!("allow with a warning by `{}`", warned.join("`, `")),
            Outcome::Deny { rule, reason } => format!("deny by `{rule}` ({reason})"),
            Outcome::Signal(None) => "none".into(),
            Outcome::Signal(Some(Signal::Entry)) => "entry".into(),
            Outcome::Signal(Some(Signal::Exit(r))) => format!("exit ({})", r.as_str()),
        }
    }

    /// True when the outcome is what `expect` asks for.
    pub fn matches(&self, expect: &Expect) -> bool {
        match (expect, self) {
            (Expect::Allow, Outcome::Allow { warned }) => warned.is_empty(),
            (Expect::Warn { rule }, Outcome::Allow { warned }) => warned.contains(&rule.value),
            (Expect::Deny { rule, message }, Outcome::Deny { rule: got, reason }) => {
                rule.value == *got && message.as_ref().is_none_or(|m| reason.contains(&m.value))
            }
            (Expect::Entry { .. }, Outcome::Signal(Some(Signal::Entry))) => true,
            (Expect::Exit(want), Outcome::Signal(Some(Signal::Exit(r)))) => want.is_none_or(|w| w == r.as_str()),
            (Expect::Nothing, Outcome::Signal(None)) => true,
            _ => false,
        }
    }
}

/// The result of running a case: the outcome and, for reports, what each rule saw.
#[derive(Debug, Clone)]
pub struct CaseRun {
    /// What the target decided.
    pub outcome: Outcome,
    /// Every rule evaluated, in order.
    pub rules: Vec<RuleTrace>,
    /// Protective-order and time-stop checks, one line each.
    pub notes: Vec<String>,
    /// A strategy case's sizing scale on the case's bar (1 without a scale; `NaN` when
    /// undefined); `NaN` for a policy case.
    pub scale: f64,
    /// A strategy case's entry order price on the case's bar, on the broker's tick grid as
    /// the engine sends it (`NaN` for a market entry, an undefined price, a policy case).
    pub price: f64,
}

impl CaseRun {
    /// True when the case went as `expect` says: the outcome, and for an entry with a scale or
    /// a price, those (within 1e-9).
    pub fn passes(&self, expect: &Expect) -> bool {
        let near = |got: f64, want: &Option<crate::diagnostics::Spanned<f64>>| {
            want.as_ref().is_none_or(|k| (got - k.value).abs() <= 1e-9)
        };
        let extras_ok = match expect {
            Expect::Entry { scale, price } => near(self.scale, scale) && near(self.price, price),
            _ => true,
        };
        self.outcome.matches(expect) && extras_ok
    }

    /// What happened, in the words of [`Expect::describe`] (the entry's sizing scale and price
    /// when the expectation names them).
    pub fn describe(&self, expect: &Expect) -> String {
        match (expect, &self.outcome) {
            (Expect::Entry { scale, price }, Outcome::Signal(Some(Signal::Entry))) => {
                let mut s = "entry".to_string();
                if scale.is_some() {
                    s.push_str(&format!(" with sizing scale {}", crate::config::units::trim_float(self.scale)));
                }
                if price.is_some() {
                    let and = if scale.is_some() { " and" } else { "" };
                    s.push_str(&format!("{and} at price {}", crate::config::units::trim_float(self.price)));
                }
                s
            }
            _ => self.outcome.describe(),
        }
    }
}

/// One evaluated rule of a case.
#[derive(Debug, Clone)]
pub struct RuleTrace {
    /// Policy rule id, or `entry` / `exit`.
    pub name: String,
    /// The condition's value (`1`/`0`, `NaN` when undefined).
    pub value: f64,
    /// Its tree of sub-expression values (see [`crate::dsl::explain`]).
    pub tree: String,
}

impl CaseRun {
    /// A report of why the case came out as it did: the protective-order and time-stop checks,
    /// one line per rule with its value, and the value trees of the rules that matter (the one
    /// that decided and the one `expect` names), or of every rule when `all`.
    pub fn explanation(&self, expect: &Expect, all: bool) -> String {
        let mut out = String::new();
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        let decided = match &self.outcome {
            Outcome::Deny { rule, .. } => Some(rule.as_str()),
            _ => None,
        };
        let expected = match expect {
            Expect::Deny { rule, .. } => Some(rule.value.as_str()),
            _ => None,
        };
        let policy = matches!(self.outcome, Outcome::Allow { .. } | Outcome::Deny { .. });
        for r in &self.rules {
            let show_tree = all || !policy || decided == Some(r.name.as_str()) || expected == Some(r.name.as_str());
            if policy {
                let v = if r.value.is_nan() {
                    "undefined (fails closed)".to_string()
                } else {
                    (r.value != 0.0).to_string()
                };
                out.push_str(&format!("{}: {v}\n", r.name));
            }
            if show_tree {
                for l in r.tree.lines() {
                    out.push_str(if policy { "  " } else { "" });
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn fixture_error(file: &Arc<SourceFile>, span: Span, msg: String) -> Diagnostic {
    Diagnostic::error(codes::TEST_FIXTURE, msg).at(file, span)
}

/// Resolves `case` against `target` (compiled with the document's own params). `bars` are the
/// case's bars, oldest first; `file` is the test file (diagnostics point into it). Every
/// problem goes to `diags`; `None` when any is an error.
pub fn prepare(
    target: &Target,
    case: &TestCase,
    bars: Vec<Bar>,
    file: &Arc<SourceFile>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Prepared> {
    let mut ok = true;
    let at = file;
    // Params: recompile the strategy with this case's values.
    let target = match target {
        Target::Strategy(s) if !case.params.is_empty() => {
            let mut doc = s.doc.clone();
            ok &= set_params(&mut doc, &case.params, file, diags);
            let mut more = Vec::new();
            let compiled = compile_strategy(doc, &mut more);
            diags.extend(more.into_iter().filter(Diagnostic::is_error));
            Target::Strategy(Box::new(compiled?))
        }
        other => other.clone(),
    };
    let (bundle, symbol) = match &target {
        Target::Strategy(s) => {
            let symbol = s.doc.universe.first().map(|u| u.value.clone()).unwrap_or_default();
            (Bundle { strategies: vec![(**s).clone()], ..Bundle::default() }, symbol)
        }
        Target::Policy(p) => (Bundle { policies: vec![(**p).clone()], ..Bundle::default() }, String::new()),
    };
    let mut program = SymbolProgram::build(&bundle, &symbol);

    // Context fields.
    let mut fields = NO_FIELDS;
    let mut given = [false; catalog::FIELD_COUNT];
    let mut strings: HashMap<u64, String> = HashMap::new();
    for f in FIELDS {
        for v in f.values {
            strings.insert(string_id(v).to_bits(), (*v).to_string());
        }
    }
    let in_position = case
        .fields
        .iter()
        .any(|(k, v)| k.value == "position.quantity" && matches!(v.value, CaseValue::Number(q) if q > 0.0));
    let context = match &target {
        Target::Policy(_) => Context::Policy,
        Target::Strategy(_) if in_position => Context::Exit,
        Target::Strategy(_) => Context::Entry,
    };
    for (path, value) in &case.fields {
        let Some(spec) = catalog::field(&path.value) else {
            let names = FIELDS.iter().map(|f| f.path);
            let help = match did_you_mean(&path.value, names) {
                Some(m) => format!("did you mean `{}`?", m.rsplit('.').next().unwrap_or(&m)),
                None => {
                    let group = path.value.split('.').next().unwrap_or("");
                    let known: Vec<&str> = FIELDS
                        .iter()
                        .filter(|f| f.path.starts_with(group))
                        .map(|f| &f.path[group.len() + 1..])
                        .collect();
                    format!("fields of `{group}`: {}", one_of(&known))
                }
            };
            diags.push(
                Diagnostic::error(codes::UNKNOWN_FIELD, format!("unknown field `{}`", path.value))
                    .at(file, path.span)
                    .help(help),
            );
            ok = false;
            continue;
        };
        if !spec.contexts.contains(&context) {
            let help = if context == Context::Entry && path.value.starts_with("position.") {
                "a strategy case is in a position when it gives `position.quantity` above 0; entry rules run while flat"
                    .to_string()
            } else {
                format!("`{}` is not available in {}", path.value, context.describe())
            };
            diags.push(
                Diagnostic::error(
                    codes::FIELD_NOT_AVAILABLE,
                    format!("`{}` is not seen by {}", path.value, context.describe()),
                )
                .at(file, path.span)
                .help(help),
            );
            ok = false;
            continue;
        }
        let v = match (&value.value, spec.kind) {
            (CaseValue::Number(x), ValueKind::Num) => *x,
            (CaseValue::Bool(b), ValueKind::Bool) => f64::from(u8::from(*b)),
            (CaseValue::Str(s), ValueKind::Str) => {
                if !spec.values.is_empty() && !spec.values.contains(&s.as_str()) {
                    let help = match did_you_mean(s, spec.values.iter().copied()) {
                        Some(m) => format!("did you mean `{m}`? allowed values: {}", one_of(spec.values)),
                        None => format!("allowed values: {}", one_of(spec.values)),
                    };
                    diags.push(
                        Diagnostic::error(codes::INVALID_VALUE, format!("`{}` cannot be `{s}`", path.value))
                            .at(file, value.span)
                            .help(help),
                    );
                    ok = false;
                    continue;
                }
                strings.insert(string_id(s).to_bits(), s.clone());
                string_id(s)
            }
            (_, kind) => {
                diags.push(
                    Diagnostic::error(codes::TYPE_MISMATCH, format!("`{}` is a {}", path.value, kind_word(kind)))
                        .at(file, value.span)
                        .help(if kind == ValueKind::Str {
                            "write a string".to_string()
                        } else {
                            "write a number".to_string()
                        }),
                );
                ok = false;
                continue;
            }
        };
        fields[spec.id as usize] = v;
        given[spec.id as usize] = true;
    }
    // The bars' length: the strategy's timeframe, else their spacing (a day for one bar).
    let bar_secs = match &target {
        Target::Strategy(s) => s.doc.timeframe.value.seconds(),
        Target::Policy(_) => match bars.as_slice() {
            [.., p, b] => (b.ts - p.ts).max(1),
            _ => 86_400,
        },
    };
    let order_symbol = case.fields.iter().find_map(|(k, v)| match &v.value {
        CaseValue::Str(s) if k.value == "order.symbol" || k.value == "symbol.name" => Some(s.as_str()),
        _ => None,
    });
    let on_history = matches!(case.bars, Some(crate::config::rule_test::BarsSpec::Csv { .. }));
    // Bars on real history trade on their symbol's market; written bars have no real times and
    // every one of them counts, as on a market that never closes.
    let market = if on_history {
        super::session::Market::for_symbol(order_symbol.unwrap_or(&symbol))
    } else {
        super::session::Market::Crypto
    };
    let base = super::resample::BaseBars { market, bar_secs };
    // A case on real history (`data:`) sees the session of its last bar, unless it sets the
    // `session.*` fields itself; written bars have no real times, so their session is unknown.
    if let (true, Some(b)) = (on_history, bars.last()) {
        let f = super::session::SessionClock::new(market).fields(b.ts, bar_secs);
        for (id, v) in [
            (FieldId::SessionIsOpen, f.is_open),
            (FieldId::SessionMinutesSinceOpen, f.minutes_since_open),
            (FieldId::SessionMinutesToClose, f.minutes_to_close),
            (FieldId::SessionDayOfWeek, f.day_of_week),
            (FieldId::SessionDate, f.date),
            (FieldId::SessionEarlyClose, f.early_close),
        ] {
            if !given[id as usize] {
                fields[id as usize] = v;
            }
        }
    }
    let last = bars.last().map_or(f64::NAN, |b| b.close);
    derive_fields(&mut fields, &given, last);

    // A strategy case in a position: its quantity, entry price and bars held.
    let mut position = None;
    if let (Target::Strategy(s), true) = (&target, in_position) {
        let bars_held = fields[FieldId::PositionBarsHeld as usize];
        let needs_bars = s.doc.max_holding.is_some();
        if needs_bars && !given[FieldId::PositionBarsHeld as usize] {
            diags.push(
                fixture_error(at, case.name.span, format!("case `{}` needs `position.bars_held`", case.name.value))
                    .help("the strategy has `max_holding`, which counts the bars held"),
            );
            ok = false;
        }
        let held = if bars_held.is_finite() && bars_held >= 0.0 { bars_held as u32 } else { 0 };
        position =
            Some((fields[FieldId::PositionQuantity as usize], fields[FieldId::PositionEntryPrice as usize], held));
    }

    // Expected rule ids exist.
    if let (Target::Policy(p), Expect::Deny { rule, .. } | Expect::Warn { rule }) = (&target, &case.expect.value)
        && !p.doc.rules.iter().any(|r| r.id.value == rule.value)
    {
        let ids: Vec<&str> = p.doc.rules.iter().map(|r| r.id.value.as_str()).collect();
        let help = match did_you_mean(&rule.value, ids.iter().copied()) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!("rules of `{}`: {}", p.doc.name.value, one_of(&ids)),
        };
        diags.push(
            fixture_error(at, rule.span, format!("policy `{}` has no rule `{}`", p.doc.name.value, rule.value))
                .label("unknown rule id")
                .help(help),
        );
        ok = false;
    }

    // An expected exit reason the strategy can produce.
    if let (Target::Strategy(s), Expect::Exit(Some(reason))) = (&target, &case.expect.value) {
        let (possible, key) = match *reason {
            "stop_loss" => (s.doc.stop_loss.is_some(), "`stop_loss`"),
            "take_profit" => (s.doc.take_profit.is_some(), "`take_profit`"),
            "trailing_stop" => (s.doc.trailing_stop.is_some(), "`trailing_stop`"),
            "max_holding" => (s.doc.max_holding.is_some(), "`max_holding`"),
            _ => (s.exit.is_some(), "an `exit` rule"),
        };
        if !possible {
            diags.push(
                fixture_error(at, case.expect.span, format!("strategy `{}` cannot exit by `{reason}`", s.name()))
                    .label("never happens")
                    .help(format!("the strategy has no {key}")),
            );
            ok = false;
        }
    }

    // Sub-expression values: find each in the target's own graph.
    let (params, indicators, timeframe) = match &target {
        Target::Strategy(s) => {
            (s.doc.params.clone(), s.indicators.clone(), Some((s.doc.timeframe.value, s.doc.aggregation)))
        }
        Target::Policy(_) => (Vec::new(), Vec::new(), None),
    };
    let known_nodes = program.graph.len();
    let mut pins = Vec::new();
    for (key, value) in &case.values {
        let Some(t) = check_key(key, context, (&params, &indicators), timeframe, diags) else {
            ok = false;
            continue;
        };
        let here = key.span;
        if let Some(c) = t.as_const() {
            let shown = if t.ty.kind == ValueKind::Bool { (c != 0.0).to_string() } else { format!("{c}") };
            diags.push(
                fixture_error(at, here, format!("`{}` is a constant ({shown}); it cannot be set", key.text))
                    .help("change params with `params:` in the case"),
            );
            ok = false;
            continue;
        }
        if t.ty.var == Variability::Scalar {
            diags.push(
                fixture_error(at, here, format!("`{}` reads the account, position or order", key.text))
                    .help("set context fields under `account:`, `position:` or `order:`"),
            );
            ok = false;
            continue;
        }
        let v = match (&value.value, t.ty.kind) {
            (CaseValue::Number(x), ValueKind::Num) => *x,
            (CaseValue::Bool(b), ValueKind::Bool) => f64::from(u8::from(*b)),
            (_, kind) => {
                diags.push(
                    Diagnostic::error(codes::TYPE_MISMATCH, format!("`{}` is a {}", key.text, kind_word(kind)))
                        .at(file, value.span)
                        .help(format!("write a {}", kind_word(kind))),
                );
                ok = false;
                continue;
            }
        };
        let id = program.graph.lower(&t);
        if id as usize >= known_nodes {
            let subs = sub_expressions(&target);
            diags.push(
                fixture_error(at, here, format!("no rule computes `{}`", key.text))
                    .label("not a sub-expression of the rules")
                    .help(format!(
                        "keys are matched against the rules' sub-expressions (after params are substituted): {}",
                        subs.iter().take(8).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                    )),
            );
            ok = false;
            continue;
        }
        pins.push((id, v));
    }
    let symbol = order_symbol.map_or(symbol.clone(), str::to_string);
    ok.then_some(Prepared { target, program, pins, fields, position, bars, base, symbol, strings })
}

/// A price without float noise (`110.00000000000001` shows as `110`).
fn price(v: f64) -> String {
    let s = format!("{v:.10}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn kind_word(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Num => "number",
        ValueKind::Bool => "bool",
        ValueKind::Str => "string",
    }
}

fn check_key(
    key: &ExprSource,
    ctx: Context,
    (params, indicators): (&[crate::config::strategy::Param], &[CustomIndicator]),
    timeframe: Option<(crate::config::timeframe::Timeframe, crate::config::timeframe::Aggregation)>,
    diags: &mut Vec<Diagnostic>,
) -> Option<TExpr> {
    let ast = match parser::parse(key) {
        Ok(a) => a,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let mut c = Checker::new(key, ctx, params).with_indicators(indicators);
    if let Some((tf, aggregation)) = timeframe {
        c = c.with_timeframe(tf, aggregation);
    }
    let t = c.check(&ast);
    let failed = c.diags.iter().any(Diagnostic::is_error);
    diags.extend(c.diags.into_iter().filter(Diagnostic::is_error));
    if failed { None } else { t }
}

/// Fills in fields the engine would compute from the given ones.
fn derive_fields(f: &mut FieldValues, given: &[bool], last_close: f64) {
    let g = |id: FieldId| given[id as usize];
    let get = |f: &FieldValues, id: FieldId| f[id as usize];
    let equity = get(f, FieldId::AccountEquity);
    if !g(FieldId::AccountPeakEquity) {
        f[FieldId::AccountPeakEquity as usize] = equity;
    }
    let peak = get(f, FieldId::AccountPeakEquity);
    if !g(FieldId::AccountDrawdown) && peak > 0.0 {
        f[FieldId::AccountDrawdown as usize] = (peak - equity) / peak;
    }
    // Order: price defaults to the last close; quantity and notional from each other.
    if !g(FieldId::OrderPrice) {
        f[FieldId::OrderPrice as usize] = last_close;
    }
    let price = get(f, FieldId::OrderPrice);
    match (g(FieldId::OrderQuantity), g(FieldId::OrderNotional)) {
        (true, false) => f[FieldId::OrderNotional as usize] = get(f, FieldId::OrderQuantity) * price,
        (false, true) if price > 0.0 => f[FieldId::OrderQuantity as usize] = get(f, FieldId::OrderNotional) / price,
        _ => {}
    }
    // Position: marked at the last close (or the order's price when there are no bars).
    if g(FieldId::PositionQuantity) {
        let mark = if last_close.is_nan() { price } else { last_close };
        let mut d = NO_FIELDS;
        let qty = get(f, FieldId::PositionQuantity);
        position_fields(&mut d, qty, get(f, FieldId::PositionEntryPrice), mark, get(f, FieldId::PositionBarsHeld));
        if qty == 0.0 {
            d[FieldId::PositionNotional as usize] = 0.0;
            d[FieldId::PositionUnrealizedPnl as usize] = 0.0;
        }
        for id in [FieldId::PositionNotional, FieldId::PositionUnrealizedPnl, FieldId::PositionUnrealizedReturn] {
            if !g(id) {
                f[id as usize] = d[id as usize];
            }
        }
    }
    // Counters the case does not mention: none so far.
    for id in [
        FieldId::AccountLossStreak,
        FieldId::AccountOrdersLastMinute,
        FieldId::AccountOrdersLastHour,
        FieldId::AccountOrdersToday,
    ] {
        if !g(id) {
            f[id as usize] = 0.0;
        }
    }
    // Symbol: the order's; its weight from the position's notional.
    if !g(FieldId::SymbolName) && g(FieldId::OrderSymbol) {
        f[FieldId::SymbolName as usize] = get(f, FieldId::OrderSymbol);
    }
    let notional = get(f, FieldId::PositionNotional);
    if !g(FieldId::SymbolWeight) && equity > 0.0 && notional.is_finite() {
        f[FieldId::SymbolWeight as usize] = notional.abs() / equity;
    }
    // Daily return from daily pnl: pnl over the equity at the start of the day.
    let pnl = get(f, FieldId::AccountDailyPnl);
    if !g(FieldId::AccountDailyReturn) && g(FieldId::AccountDailyPnl) && equity - pnl > 0.0 {
        f[FieldId::AccountDailyReturn as usize] = pnl / (equity - pnl);
    }
}

/// Source texts of the non-constant series sub-expressions of the target's rules.
fn sub_expressions(target: &Target) -> Vec<String> {
    fn walk(e: &TExpr, src: &ExprSource, out: &mut Vec<String>) {
        if e.ty.var == Variability::Series {
            let text =
                src.text.get(e.span.start..e.span.end).unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
            if !out.contains(&text) {
                out.push(text);
            }
        }
        match &e.kind {
            TKind::Unary(_, a) | TKind::Lag(a, _) => walk(a, src, out),
            TKind::Binary(_, a, b) => {
                walk(a, src, out);
                walk(b, src, out);
            }
            TKind::Indicator { args, .. } => args.iter().for_each(|a| walk(a, src, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (e, src) in rules_of(target) {
        walk(e, src, &mut out);
    }
    out
}

fn rules_of(target: &Target) -> Vec<(&TExpr, &ExprSource)> {
    match target {
        Target::Strategy(s) => {
            let mut v = vec![(&s.entry, &s.doc.entry)];
            if let (Some(e), Some(src)) = (&s.exit, &s.doc.exit) {
                v.push((e, src));
            }
            v
        }
        Target::Policy(p) => {
            p.rules.iter().zip(&p.doc.rules).filter_map(|(c, r)| Some((c.expr()?, r.condition.expr()?))).collect()
        }
    }
}

mod run;
pub use run::run;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Spanned;
    use crate::engine::orders::ExitReason;

    #[test]
    fn derived_fields_follow_the_engine() {
        let mut f = NO_FIELDS;
        let mut given = [false; catalog::FIELD_COUNT];
        for (id, v) in [
            (FieldId::AccountEquity, 90.0),
            (FieldId::AccountPeakEquity, 100.0),
            (FieldId::OrderQuantity, 2.0),
            (FieldId::PositionQuantity, 3.0),
            (FieldId::PositionEntryPrice, 8.0),
        ] {
            f[id as usize] = v;
            given[id as usize] = true;
        }
        derive_fields(&mut f, &given, 10.0);
        assert!((f[FieldId::AccountDrawdown as usize] - 0.1).abs() < 1e-15);
        assert_eq!(f[FieldId::OrderPrice as usize], 10.0);
        assert_eq!(f[FieldId::OrderNotional as usize], 20.0);
        assert_eq!(f[FieldId::PositionNotional as usize], 30.0);
        assert_eq!(f[FieldId::PositionUnrealizedPnl as usize], 6.0);
        assert!((f[FieldId::PositionUnrealizedReturn as usize] - 0.25).abs() < 1e-15);
        // Nothing is invented: no cash, no exposure.
        assert!(f[FieldId::AccountCash as usize].is_nan());
        assert!(f[FieldId::AccountExposure as usize].is_nan());
    }

    #[test]
    fn outcomes_match_expectations() {
        let deny = Outcome::Deny { rule: "cap".into(), reason: "denied by p/cap: too big".into() };
        let rule = Spanned::new("cap".to_string(), Span::default());
        assert!(deny.matches(&Expect::Deny { rule: rule.clone(), message: None }));
        let msg = |m: &str| Some(Spanned::new(m.to_string(), Span::default()));
        assert!(deny.matches(&Expect::Deny { rule: rule.clone(), message: msg("too big") }));
        assert!(!deny.matches(&Expect::Deny { rule, message: msg("too small") }));
        assert!(!deny.matches(&Expect::Allow));
        let stop = Outcome::Signal(Some(Signal::Exit(ExitReason::StopLoss)));
        assert!(stop.matches(&Expect::Exit(None)));
        assert!(stop.matches(&Expect::Exit(Some("stop_loss"))));
        assert!(!stop.matches(&Expect::Exit(Some("exit_rule"))));
        assert!(!stop.matches(&Expect::Nothing));
        assert!(Outcome::Signal(None).matches(&Expect::Nothing));
    }
}
