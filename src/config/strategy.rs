//! The strategy document.
//!
//! ```yaml
//! kind: strategy
//! name: sma_crossover
//! universe: [GOOG]
//! timeframe: 1d
//! params: { fast: 10, slow: 30 }
//! entry: crosses_above(sma(close, fast), sma(close, slow))
//! exit: crosses_below(sma(close, fast), sma(close, slow))
//! stop_loss: 3%        # optional, fraction of the entry price
//! take_profit: 10%     # optional
//! max_holding: 20      # optional, in bars
//! trailing_stop: 5%    # optional: below the highest high since entry (or {atr_multiple: 3})
//! order: {type: limit, price: close * 0.99, expires_after: 3}   # optional: the entry order
//! expected_return: 2 * atr(14) / close   # optional: the edge an entry expects (fraction)
//! sizing: all_cash     # or {percent_of_equity: 5%} or {fixed_quantity: 10}, or
//!                      #   {atr_risk: {risk: 1%, atr_multiple: 2, atr_period: 14}},
//!                      #   {volatility_target: {target: 1%, period: 20}},
//!                      #   {kelly: {fraction: 50%, win_rate: 55%, payoff: 1.5, min_trades: 20}};
//!                      # with optional caps: max_percent_of_equity: 10%, min_notional: 100,
//!                      # units: whole (or fractional); and `scale`, a multiplier applied
//!                      # before the caps: a number expression, or cases tried in order,
//!                      # the last without `when` (see `SizingScale`):
//!                      # scale: [{when: trending(), scale: 1.2}, {scale: 0.5}]
//! direction: long
//! aggregation: session # optional: boundaries of the higher timeframes rules read with `@`
//!                      #   (`sma(close, 50)@1d`): `session` (default) or `utc`
//! indicators:          # optional: rhai scripts usable in the rules by name
//!   range_ratio: { script: range_ratio.rhai, window: 20 }
//! filter: { script: no_fridays.rhai }   # optional: may veto an entry
//! ```

use std::sync::Arc;

use super::expr_source::ExprSource;
use super::node::{Node, NodeValue};
pub use super::order_types::{EntryOrder, EntryOrderType, TrailingStop};
use super::order_types::{read_entry_order, read_trailing_stop};
use super::reader::Reader;
use super::script_ref::{ScriptRef, read_script_path};
use super::timeframe::{Aggregation, Timeframe};
use super::units::{NumUnit, Rate};
use crate::diagnostics::{Diagnostic, SourceFile, Spanned, codes};

/// A strategy: which symbols it trades, when it enters and exits, and how much it buys.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Unique strategy name.
    pub name: Spanned<String>,
    /// The file `name`'s span refers to (the manifest when a bot renamed the strategy).
    pub name_file: Arc<SourceFile>,
    /// Free text.
    pub description: Option<String>,
    /// Symbols the strategy trades.
    pub universe: Vec<Spanned<String>>,
    /// The file `universe`'s spans refer to (the manifest when a bot replaced it).
    pub universe_file: Arc<SourceFile>,
    /// Bar length the rules are written for.
    pub timeframe: Spanned<Timeframe>,
    /// Named constants the rules refer to by name, in document order.
    pub params: Vec<Param>,
    /// Custom indicators computed by rhai scripts, usable in the rules by name.
    pub indicators: Vec<IndicatorDef>,
    /// Entry rule (bool): evaluated at each bar close while flat.
    pub entry: ExprSource,
    /// A rhai script that can veto an entry the entry rule signalled.
    pub filter: Option<ScriptRef>,
    /// Exit rule (bool): evaluated at each bar close while in a position.
    pub exit: Option<ExprSource>,
    /// Stop-loss distance below the entry fill price, as a fraction (0.03 = 3%).
    pub stop_loss: Option<Spanned<Rate>>,
    /// Take-profit distance above the entry fill price, as a fraction.
    pub take_profit: Option<Spanned<Rate>>,
    /// Exit after this many bars in the position.
    pub max_holding: Option<Spanned<u32>>,
    /// A stop that ratchets up with the highest high since the entry.
    pub trailing_stop: Option<Spanned<TrailingStop>>,
    /// How an entry goes to the broker (a market order when `None`).
    pub entry_order: Option<EntryOrder>,
    /// What an entry expects to earn before costs, as a fraction of the price: a number
    /// expression evaluated on the entry's bar (policies read it as `order.expected_return`,
    /// e.g. for the edge-cost gate).
    pub expected_return: Option<ExprSource>,
    /// How large each entry is.
    pub sizing: Spanned<Sizing>,
    /// Caps and rounding applied after sizing.
    pub sizing_limits: SizingLimits,
    /// What multiplies the method's size before the caps (`None`: 1).
    pub sizing_scale: Option<SizingScale>,
    /// Which side the strategy trades.
    pub direction: Spanned<Direction>,
    /// The boundaries of the higher timeframes its rules read with `@` (session by default).
    pub aggregation: Aggregation,
}

/// A custom indicator: a rhai script's `fn value(bars)` over the last `window` bars, usable in
/// rules as a series named `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorDef {
    /// The name rules use.
    pub name: Spanned<String>,
    /// The script.
    pub script: ScriptRef,
    /// Bars passed to each call (1 to [`super::script_ref::MAX_WINDOW`]); undefined until
    /// that many bars have been seen.
    pub window: Spanned<u32>,
}

/// A strategy parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name, usable in rules.
    pub name: Spanned<String>,
    /// Its value.
    pub value: Spanned<ParamValue>,
    /// The values a search may try (`dsl sweep`), declared beside the default in a strategy
    /// document; `None` elsewhere and for a param written as a plain value.
    pub space: Option<Spanned<super::search_space::SearchSpace>>,
}

/// The value of a [`Param`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A number and how it was written (`5%` is stored as 0.05 with [`NumUnit::Percent`]).
    Number(f64, NumUnit),
    /// A bool.
    Bool(bool),
    /// A string.
    Str(String),
}

/// How the quantity of an entry order is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sizing {
    /// A fixed number of units (shares, coins), fractional allowed.
    FixedQuantity(f64),
    /// A fraction of current equity (0.05 = 5%), valued at the signal bar's close.
    PercentOfEquity(f64),
    /// All available cash, net of commission, computed at the fill price.
    AllCash,
    /// Fixed-risk sizing (seed 004): lose `risk` of equity (fraction) if the stop, placed
    /// `atr_multiple * ATR(atr_period)` below the entry, is hit: units = risk * equity /
    /// (atr_multiple * ATR). The entry's protective stop is placed at that distance.
    AtrRisk {
        /// Fraction of equity at risk per trade (0.01 = 1%).
        risk: f64,
        /// Stop distance in ATRs.
        atr_multiple: f64,
        /// ATR period in bars (Wilder).
        atr_period: u32,
    },
    /// Volatility targeting: weight = target / volatility(period) (both per bar, fractions),
    /// at most 100% of equity before the caps.
    VolatilityTarget {
        /// Wanted volatility of the position per bar, as a fraction of equity.
        target: f64,
        /// Bars of returns in the realized volatility.
        period: u32,
    },
    /// Capped Kelly fraction: `fraction * (W - (1 - W) / R)` of equity, with the win rate W and
    /// payoff R (average win / average loss) of the strategy's own closed trades once it has
    /// `min_trades` of them, and the given priors before; nothing when the edge is not positive.
    Kelly {
        /// Share of full Kelly (0.5 = half Kelly).
        fraction: f64,
        /// Prior win rate (fraction).
        win_rate: f64,
        /// Prior payoff ratio.
        payoff: f64,
        /// Closed trades needed before the strategy's own record replaces the priors.
        min_trades: u32,
    },
}

/// A sizing `scale`: a multiplier of the sizing method's quantity, applied before the caps
/// (`max_percent_of_equity`, whole units, `min_notional`), evaluated on the entry's bar. Seed
/// 003's regime multipliers (exploration 0.5, red 0.6, green 1.2) are three cases of it.
///
/// Written as one number expression (`scale: 1.5`, `scale: min(2, 0.02 / volatility(20))`) or
/// as cases tried in order, the first whose `when` holds giving the scale, the last one without
/// a `when` (the default):
///
/// ```yaml
/// scale:
///   - {when: trending(), scale: 1.2}
///   - {when: ranging(), scale: 0.6}
///   - {scale: 0.5}
/// ```
///
/// A scale that is undefined, negative or not finite, or a `when` that is undefined, sizes
/// nothing (the entry is rejected as `nothing_to_trade`: fail closed); 0 skips the entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SizingScale {
    /// The cases in order; the last has `when: None`.
    pub cases: Vec<ScaleCase>,
}

/// One case of a [`SizingScale`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleCase {
    /// The condition (a bool expression); `None` for the default case.
    pub when: Option<ExprSource>,
    /// The multiplier (a number expression, unitless: `1.2` is 120%).
    pub scale: ExprSource,
}

/// Reads a `scale` value: a number expression, or a list of `{when, scale}` cases ending in a
/// `{scale}` default.
fn read_scale(r: &mut Reader<'_>, node: &Node) -> Option<SizingScale> {
    const FORM: &str = "write a number expression (`scale: 1.2`) or cases ending in a default: \
                        `[{when: trending(), scale: 1.2}, {scale: 0.6}]`";
    let NodeValue::Seq(items) = &node.value else {
        return Some(SizingScale { cases: vec![ScaleCase { when: None, scale: r.expr(node, "scale")? }] });
    };
    if items.is_empty() {
        return r.fail(codes::INVALID_VALUE, node.span, "`scale` has no cases".into(), Some(FORM.into()));
    }
    let mut cases = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(mut m) = r.map(item, "scale case") else {
            ok = false;
            continue;
        };
        let when = m.get("when").map(|n| r.expr(n, "when"));
        let scale = m.required(r, "scale").and_then(|n| r.expr(n, "scale"));
        m.finish(r);
        let last = i + 1 == items.len();
        let when = match when {
            Some(Some(w)) => Some(w),
            Some(None) => {
                ok = false;
                None
            }
            None if !last => {
                r.fail::<()>(
                    codes::INVALID_VALUE,
                    item.span,
                    "only the last `scale` case may go without `when`".into(),
                    Some("the cases are tried in order; a case without `when` always matches".into()),
                );
                ok = false;
                None
            }
            None => None,
        };
        if last && when.is_some() {
            r.fail::<()>(
                codes::INVALID_VALUE,
                item.span,
                "the last `scale` case must be the default (no `when`)".into(),
                Some(format!("add `- {{scale: 1}}` after it to keep the method's size when no case holds; {FORM}")),
            );
            ok = false;
        }
        match scale {
            Some(scale) => cases.push(ScaleCase { when, scale }),
            None => ok = false,
        }
    }
    ok.then_some(SizingScale { cases })
}

/// Caps and rounding applied after the sizing method.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SizingLimits {
    /// At most this fraction of equity per entry.
    pub max_percent_of_equity: Option<f64>,
    /// Entries below this notional (currency) are not sent.
    pub min_notional: f64,
    /// Round quantities down to whole units (shares); fractional otherwise (crypto).
    pub whole_units: bool,
}

impl std::fmt::Display for Sizing {
    /// As written in YAML: `all_cash`, `percent_of_equity: 4.5%`, `fixed_quantity: 10`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sizing::FixedQuantity(q) => write!(f, "fixed_quantity: {}", super::units::trim_float(*q)),
            Sizing::PercentOfEquity(p) => {
                write!(f, "percent_of_equity: {}", super::units::written(*p, NumUnit::Percent))
            }
            Sizing::AllCash => f.write_str("all_cash"),
            Sizing::AtrRisk { risk, atr_multiple, atr_period } => write!(
                f,
                "atr_risk: {{risk: {}, atr_multiple: {}, atr_period: {atr_period}}}",
                super::units::written(*risk, NumUnit::Percent),
                super::units::trim_float(*atr_multiple)
            ),
            Sizing::VolatilityTarget { target, period } => write!(
                f,
                "volatility_target: {{target: {}, period: {period}}}",
                super::units::written(*target, NumUnit::Percent)
            ),
            Sizing::Kelly { fraction, win_rate, payoff, min_trades } => write!(
                f,
                "kelly: {{fraction: {}, win_rate: {}, payoff: {}, min_trades: {min_trades}}}",
                super::units::written(*fraction, NumUnit::Percent),
                super::units::written(*win_rate, NumUnit::Percent),
                super::units::trim_float(*payoff)
            ),
        }
    }
}

/// The side a strategy trades. Only [`Direction::Long`] is supported so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Buy to enter, sell to exit.
    Long,
    /// Sell short to enter, buy to cover (not supported yet).
    Short,
}

impl StrategyDoc {
    /// Looks up a param by name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name.value == name)
    }
}

/// Reads a strategy document from its root mapping. Every problem goes to `r.diags`. When a
/// field is invalid the reading goes on with a placeholder, so that the rules can still be
/// checked and all errors reported at once; callers must not use a document read with errors.
/// `None` when there is no entry rule to check.
pub fn read_strategy(r: &mut Reader<'_>, root: &Node) -> Option<StrategyDoc> {
    let mut m = r.map(root, "strategy")?;
    let map_span = m.span();
    let here = |v: String| Spanned::new(v, map_span);
    m.get("kind");
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    let description = m.get("description").and_then(|n| r.string(n, "description")).map(|s| s.value);
    let universe = m.required(r, "universe").and_then(|n| r.string_list(n, "universe"));
    if universe.as_ref().is_some_and(Vec::is_empty) {
        r.push(
            Diagnostic::error(codes::INVALID_VALUE, "`universe` must list at least one symbol").at(r.file, map_span),
        );
    }
    let timeframe = m.required(r, "timeframe").and_then(|n| read_timeframe(r, n));
    let params = match m.get("params") {
        Some(n) => read_params(r, n, true),
        None => Some(Vec::new()),
    };
    let indicators = match m.get("indicators") {
        Some(n) => read_indicators(r, n),
        None => Some(Vec::new()),
    };
    let entry = m.required(r, "entry").and_then(|n| r.expr(n, "entry"));
    let filter = m.get("filter").map(|n| {
        let mut f = r.map(n, "filter")?;
        let script = f.required(r, "script").and_then(|s| read_script_path(r, s, "script"));
        f.finish(r);
        script
    });
    let exit = m.get("exit").map(|n| r.expr(n, "exit"));
    let stop_loss = m.get("stop_loss").map(|n| r.rate_in(n, "stop_loss", 1e-6, 0.99));
    let take_profit = m.get("take_profit").map(|n| r.rate_in(n, "take_profit", 1e-6, 100.0));
    let max_holding = m.get("max_holding").map(|n| r.positive_int(n, "max_holding"));
    let trailing_stop = m.get("trailing_stop").and_then(|n| read_trailing_stop(r, n));
    let entry_order = m.get("order").and_then(|n| read_entry_order(r, n)).flatten();
    let expected_return = m.get("expected_return").map(|n| r.expr(n, "expected_return"));
    let sizing = m.required(r, "sizing").and_then(|n| read_sizing(r, n));
    let (sizing, sizing_limits, sizing_scale) = match sizing {
        Some((s, l, k)) => (Some(s), l, k),
        None => (None, SizingLimits::default(), None),
    };
    let direction = match m.get("direction") {
        Some(n) => read_direction(r, n),
        None => Some(Spanned::new(Direction::Long, map_span)),
    };
    let aggregation = match m.get("aggregation") {
        Some(n) => match r.choice(n, "aggregation", &["session", "utc"]).map(|c| c.value) {
            Some("utc") => Aggregation::Utc,
            _ => Aggregation::Session,
        },
        None => Aggregation::Session,
    };
    m.finish(r);

    if exit.is_none()
        && stop_loss.is_none()
        && take_profit.is_none()
        && max_holding.is_none()
        && trailing_stop.is_none()
    {
        r.push(
            Diagnostic::error(codes::MISSING_KEY, "strategy has no way to exit a position")
                .at(r.file, map_span)
                .help("add an `exit` rule, or one of `stop_loss`, `trailing_stop`, `take_profit` or `max_holding`"),
        );
    }
    Some(StrategyDoc {
        source: r.file.clone(),
        name: name.unwrap_or_else(|| here(String::new())),
        name_file: r.file.clone(),
        description,
        universe: universe.unwrap_or_default(),
        universe_file: r.file.clone(),
        timeframe: timeframe.unwrap_or(Spanned::new(Timeframe::DAILY, map_span)),
        params: params.unwrap_or_default(),
        indicators: indicators.unwrap_or_default(),
        entry: entry?,
        filter: filter.flatten(),
        exit: exit.flatten(),
        stop_loss: stop_loss.flatten(),
        take_profit: take_profit.flatten(),
        max_holding: max_holding.flatten(),
        trailing_stop,
        entry_order,
        expected_return: expected_return.flatten(),
        sizing: sizing.unwrap_or(Spanned::new(Sizing::AllCash, map_span)),
        sizing_limits,
        sizing_scale,
        direction: direction.unwrap_or(Spanned::new(Direction::Long, map_span)),
        aggregation,
    })
}

/// Reads a timeframe such as `1d`.
pub fn read_timeframe(r: &mut Reader<'_>, node: &Node) -> Option<Spanned<Timeframe>> {
    let s = r.string(node, "timeframe")?;
    match s.value.parse::<Timeframe>() {
        Ok(tf) => Some(Spanned::new(tf, s.span)),
        Err(e) => r.fail(
            codes::INVALID_VALUE,
            s.span,
            format!("invalid timeframe `{}`: {e}", s.value),
            Some("write a count and a unit: `1m`, `15m`, `1h`, `4h`, `1d`, `1w` or `1mo`".into()),
        ),
    }
}

/// Reads a `params` mapping (name → number, bool or string; in a strategy document, when
/// `spaces`, also name → `{value: ..., range: ...}` or `{value: ..., choices: ...}`, see
/// [`super::search_space`]).
pub fn read_params(r: &mut Reader<'_>, node: &Node, spaces: bool) -> Option<Vec<Param>> {
    if node.value == NodeValue::Null {
        return Some(Vec::new());
    }
    let mut m = r.map(node, "params")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in m.rest() {
        let name = Spanned::new(key.name.clone(), key.span);
        if !is_identifier(&key.name) {
            r.push(
                Diagnostic::error(codes::BAD_PARAM, format!("param name `{}` is not a valid name", key.name))
                    .at(r.file, key.span)
                    .help("names start with a letter or `_` and contain letters, digits and `_`"),
            );
            ok = false;
            continue;
        }
        let mut scalar = |r: &mut Reader<'_>, value: &Node| param_value(r, &key.name, value);
        if matches!(value.value, NodeValue::Map(_)) {
            if !spaces {
                r.push(
                    Diagnostic::error(codes::WRONG_TYPE, format!("param `{}` must be a plain value here", key.name))
                        .at(r.file, value.span)
                        .help("search spaces (`range:`, `choices:`) are declared in the strategy document"),
                );
                ok = false;
                continue;
            }
            match super::search_space::read_space(r, &key.name, value, &mut scalar) {
                Some((v, space)) => out.push(Param { name, value: v, space: Some(space) }),
                None => ok = false,
            }
            continue;
        }
        match scalar(r, value) {
            Some(v) => out.push(Param { name, value: Spanned::new(v, value.span), space: None }),
            None => ok = false,
        }
    }
    m.finish(r);
    ok.then_some(out)
}

/// One plain param value: a number (`5%` is 0.05), a bool, or a string.
fn param_value(r: &mut Reader<'_>, name: &str, value: &Node) -> Option<ParamValue> {
    match &value.value {
        NodeValue::Bool(b) if !matches!(value.raw(r.file).trim(), "yes" | "no" | "on" | "off" | "y" | "n") => {
            Some(ParamValue::Bool(*b))
        }
        NodeValue::Int(_) | NodeValue::Float(_) => {
            r.number(value, name).map(|n| ParamValue::Number(n.value.0, n.value.1))
        }
        NodeValue::Str(s) => match super::units::parse_number(s) {
            Some((v, unit)) if !value.is_quoted(r.file) => Some(ParamValue::Number(v, unit)),
            _ => Some(ParamValue::Str(s.clone())),
        },
        NodeValue::Bool(_) => value.scalar_text(r.file).map(ParamValue::Str),
        _ => r.fail(
            codes::WRONG_TYPE,
            value.span,
            format!("param `{name}` must be a number, a bool or a string, found {}", value.kind_name()),
            None,
        ),
    }
}

/// Reads `indicators`: a mapping of names to `{script: file.rhai, window: N}`.
fn read_indicators(r: &mut Reader<'_>, node: &Node) -> Option<Vec<IndicatorDef>> {
    if node.value == NodeValue::Null {
        return Some(Vec::new());
    }
    let mut m = r.map(node, "indicators")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in m.rest() {
        if !is_identifier(&key.name) {
            r.push(
                Diagnostic::error(codes::BAD_PARAM, format!("indicator name `{}` is not a valid name", key.name))
                    .at(r.file, key.span)
                    .help("names start with a letter or `_` and contain letters, digits and `_`"),
            );
            ok = false;
            continue;
        }
        let Some(mut d) = r.map(value, "indicator") else {
            ok = false;
            continue;
        };
        let script = d.required(r, "script").and_then(|n| read_script_path(r, n, "script"));
        let window = d.required(r, "window").and_then(|n| r.positive_int(n, "window"));
        d.finish(r);
        let window = match window {
            Some(w) if w.value > super::script_ref::MAX_WINDOW => {
                r.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("`window` can be at most {}, found {}", super::script_ref::MAX_WINDOW, w.value),
                    )
                    .at(r.file, w.span),
                );
                None
            }
            w => w,
        };
        match (script, window) {
            (Some(script), Some(window)) => {
                out.push(IndicatorDef { name: Spanned::new(key.name.clone(), key.span), script, window })
            }
            _ => ok = false,
        }
    }
    m.finish(r);
    ok.then_some(out)
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a `sizing` value: a method (`all_cash`, `{percent_of_equity: 5%}`,
/// `{fixed_quantity: 10}`, `{atr_risk: {...}}`, `{volatility_target: {...}}`, `{kelly: {...}}`)
/// and the optional caps beside it (`max_percent_of_equity`, `min_notional`, `units`).
pub fn read_sizing(r: &mut Reader<'_>, node: &Node) -> Option<(Spanned<Sizing>, SizingLimits, Option<SizingScale>)> {
    const FORMS: &str = "write `all_cash`, `{percent_of_equity: 5%}`, `{fixed_quantity: 10}`, \
                         `{atr_risk: {risk: 1%, atr_multiple: 2}}`, `{volatility_target: {target: 1%}}` \
                         or `{kelly: {fraction: 50%, win_rate: 55%, payoff: 1.5}}`";
    if let NodeValue::Str(_) = node.value {
        let c = r.choice(node, "sizing", &["all_cash"])?;
        return Some((Spanned::new(Sizing::AllCash, c.span), SizingLimits::default(), None));
    }
    let mut m = r.map(node, "sizing")?;
    let fixed = m.get("fixed_quantity");
    let pct = m.get("percent_of_equity");
    let all = m.get("all_cash");
    let atr = m.get("atr_risk");
    let vol = m.get("volatility_target");
    let kelly = m.get("kelly");
    let cap = m.get("max_percent_of_equity").map(|n| r.rate_in(n, "max_percent_of_equity", 1e-9, 1.0));
    let min_notional = m.get("min_notional").map(|n| r.number(n, "min_notional"));
    let units = m.get("units").map(|n| r.choice(n, "units", &["whole", "fractional"]));
    let scale = m.get("scale").map(|n| read_scale(r, n));
    let span = m.span();
    m.finish(r);
    let mut limits = SizingLimits::default();
    if let Some(c) = cap {
        limits.max_percent_of_equity = Some(c?.value.value);
    }
    if let Some(n) = min_notional {
        let n = n?;
        if !(n.value.0 >= 0.0 && n.value.0.is_finite()) {
            return r.fail(codes::INVALID_VALUE, n.span, "`min_notional` must be 0 or more".into(), None);
        }
        limits.min_notional = n.value.0;
    }
    if let Some(u) = units {
        limits.whole_units = u?.value == "whole";
    }
    let methods = [fixed, pct, all, atr, vol, kelly];
    if methods.iter().filter(|b| b.is_some()).count() != 1 {
        return r.fail(codes::INVALID_VALUE, span, "`sizing` must name exactly one method".into(), Some(FORMS.into()));
    }
    let scale = match scale {
        Some(s) => Some(s?),
        None => None,
    };
    let sized = |s: Sizing, n: &Node| Some((Spanned::new(s, n.span), limits, scale.clone()));
    if let Some(n) = fixed {
        let q = r.positive_number(n, "fixed_quantity")?;
        return sized(Sizing::FixedQuantity(q.value), n);
    }
    if let Some(n) = pct {
        let p = r.rate_in(n, "percent_of_equity", 1e-9, 1.0)?;
        return sized(Sizing::PercentOfEquity(p.value.value), n);
    }
    if let Some(n) = atr {
        let mut a = r.map(n, "atr_risk")?;
        let risk = a.required(r, "risk").and_then(|v| r.rate_in(v, "risk", 1e-9, 0.5));
        let multiple = a.get("atr_multiple").map(|v| r.positive_number(v, "atr_multiple"));
        let period = a.get("atr_period").map(|v| r.positive_int(v, "atr_period"));
        a.finish(r);
        let atr_multiple = match multiple {
            Some(m) => m?.value,
            None => 2.0,
        };
        let atr_period = match period {
            Some(p) => p?.value,
            None => 14,
        };
        return sized(Sizing::AtrRisk { risk: risk?.value.value, atr_multiple, atr_period }, n);
    }
    if let Some(n) = vol {
        let mut a = r.map(n, "volatility_target")?;
        let target = a.required(r, "target").and_then(|v| r.rate_in(v, "target", 1e-9, 1.0));
        let period = a.get("period").map(|v| r.positive_int(v, "period"));
        a.finish(r);
        let period = match period {
            Some(p) => p?.value.max(2),
            None => 20,
        };
        return sized(Sizing::VolatilityTarget { target: target?.value.value, period }, n);
    }
    if let Some(n) = kelly {
        let mut a = r.map(n, "kelly")?;
        let fraction = a.get("fraction").map(|v| r.rate_in(v, "fraction", 1e-9, 1.0));
        let win_rate = a.required(r, "win_rate").and_then(|v| r.rate_in(v, "win_rate", 0.0, 1.0));
        let payoff = a.required(r, "payoff").and_then(|v| r.positive_number(v, "payoff"));
        let min_trades = a.get("min_trades").map(|v| r.positive_int(v, "min_trades"));
        a.finish(r);
        let fraction = match fraction {
            Some(f) => f?.value.value,
            None => 0.5,
        };
        let min_trades = match min_trades {
            Some(m) => m?.value,
            None => 20,
        };
        return sized(
            Sizing::Kelly { fraction, win_rate: win_rate?.value.value, payoff: payoff?.value, min_trades },
            n,
        );
    }
    let n = all?;
    match n.value {
        NodeValue::Bool(true) | NodeValue::Null => sized(Sizing::AllCash, n),
        _ => r.fail(codes::INVALID_VALUE, n.span, "`all_cash` takes no value".into(), Some(FORMS.into())),
    }
}

fn read_direction(r: &mut Reader<'_>, node: &Node) -> Option<Spanned<Direction>> {
    let c = r.choice(node, "direction", &["long", "short"])?;
    match c.value {
        "long" => Some(Spanned::new(Direction::Long, c.span)),
        _ => r.fail(
            codes::UNSUPPORTED,
            c.span,
            "direction `short` is not supported yet".into(),
            Some("only `long` strategies can be run for now".into()),
        ),
    }
}
