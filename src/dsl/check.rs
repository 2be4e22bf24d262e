//! The type checker: [`Expr`] to typed, constant-folded [`TExpr`].
//!
//! It resolves names (params, bar series, context fields, functions), checks arity and argument
//! kinds against the [`catalog`], infers each node's [`Ty`], substitutes params
//! and folds constant sub-expressions with the shared [`semantics`]. It keeps
//! going after an error so that one pass reports every problem in a rule; every diagnostic
//! points at the offending token inside the YAML file.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::ast::{BinaryOp, Expr, ExprKind, Ident, UnaryOp};
use super::catalog::{self, ArgKind, BarField, Context, FieldId, Func, FuncSpec, Scale};
use super::script::{CustomIndicator, Script};
use super::semantics::{self, BinOp, UnOp, from_bool, string_id};
use super::types::{Ty, ValueKind, Variability};
use crate::config::expr_source::ExprSource;
use crate::config::strategy::{Param, ParamValue};
use crate::config::timeframe::{Aggregation, Resample, Timeframe};
use crate::config::units::{NumUnit, trim_float, written};
use crate::diagnostics::{Diagnostic, Span, codes, did_you_mean, one_of};

mod calls;

/// Largest history index accepted in `x[k]`.
pub const MAX_LAG: u32 = 10_000;
/// Largest period accepted by an indicator.
pub const MAX_PERIOD: f64 = 100_000.0;

/// A typed, folded expression.
#[derive(Debug, Clone, PartialEq)]
pub struct TExpr {
    /// What it computes.
    pub kind: TKind,
    /// Its type.
    pub ty: Ty,
    /// Span in the expression text.
    pub span: Span,
}

/// Typed expression nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum TKind {
    /// A folded constant (see [`semantics`] for the encoding of bools and strings).
    Const(f64),
    /// An OHLCV series of the bar.
    Bar(BarField),
    /// A context field.
    Field(FieldId),
    /// A unary operation.
    Unary(UnOp, Box<TExpr>),
    /// A binary operation.
    Binary(BinOp, Box<TExpr>, Box<TExpr>),
    /// `x[k]`: the value `k >= 1` bars ago.
    Lag(Box<TExpr>, u32),
    /// An indicator or crossing over series arguments.
    Indicator {
        /// Which function.
        func: Func,
        /// Series arguments (constants allowed only for crossings).
        args: Vec<TExpr>,
        /// Constant arguments (periods, multipliers), defaults filled in.
        consts: Vec<f64>,
        /// Selected output for multi-output functions (0 otherwise).
        output: u8,
    },
    /// A custom indicator: a rhai script over the last `window` bars.
    Script {
        /// The compiled script.
        script: Arc<Script>,
        /// Bars per call.
        window: u32,
    },
    /// `x@1d`: the series `x` computed on the bars of a higher timeframe, aggregated from the
    /// base bars; its value is that of the last higher-timeframe bar that has closed.
    Resample(Resample, Box<TExpr>),
}

impl TExpr {
    fn constant(v: f64, kind: ValueKind, span: Span) -> Self {
        TExpr { kind: TKind::Const(v), ty: Ty::new(kind, Variability::Const), span }
    }

    /// The folded value when this is a constant.
    pub fn as_const(&self) -> Option<f64> {
        match self.kind {
            TKind::Const(v) => Some(v),
            _ => None,
        }
    }
}

/// Checks the expressions of one document context.
pub struct Checker<'a> {
    src: &'a ExprSource,
    context: Context,
    params: &'a [Param],
    indicators: &'a [CustomIndicator],
    broken: &'a [String],
    /// The strategy's timeframe, when known: a higher timeframe must hold whole bars of it.
    base: Option<Timeframe>,
    /// The boundaries higher timeframes are aggregated on.
    aggregation: Aggregation,
    /// Inside `x@tf`: the higher timeframe being checked (no second `@` inside).
    resampling: Option<Resample>,
    /// Problems found so far.
    pub diags: Vec<Diagnostic>,
    /// Params the checked expressions referred to.
    pub used_params: BTreeSet<String>,
}

impl<'a> Checker<'a> {
    /// A checker for expressions from `src`, evaluated in `context`, seeing `params`.
    pub fn new(src: &'a ExprSource, context: Context, params: &'a [Param]) -> Self {
        Checker {
            src,
            context,
            params,
            indicators: &[],
            broken: &[],
            base: None,
            aggregation: Aggregation::Session,
            resampling: None,
            diags: Vec::new(),
            used_params: BTreeSet::new(),
        }
    }

    /// Checks higher timeframes (`x@1d`) against a strategy's timeframe `base` and aggregates
    /// them on `aggregation` boundaries. Without it any timeframe is accepted and aggregated on
    /// session boundaries (policies, `dsl eval`: the data decides the base).
    pub fn with_timeframe(mut self, base: Timeframe, aggregation: Aggregation) -> Self {
        self.base = Some(base);
        self.aggregation = aggregation;
        self
    }

    /// Also sees a strategy's custom indicators, as series named by their names.
    pub fn with_indicators(mut self, indicators: &'a [CustomIndicator]) -> Self {
        self.indicators = indicators;
        self
    }

    /// Names of custom indicators whose scripts failed to compile (already reported): rules
    /// using them fail without a second, misleading "unknown name" error.
    pub fn with_broken_indicators(mut self, names: &'a [String]) -> Self {
        self.broken = names;
        self
    }

    fn error(&mut self, code: &'static str, span: Span, msg: String, label: &str, help: Option<String>) {
        let d =
            Diagnostic::error(code, msg).at(&self.src.file, self.src.to_file_span(span)).label(label).maybe_help(help);
        self.diags.push(d);
    }

    /// Checks a whole rule, which must be a bool. `what` names it (`entry`, `when`).
    pub fn check_rule(&mut self, e: &Expr, what: &str) -> Option<TExpr> {
        let t = self.check(e)?;
        if t.ty.kind != ValueKind::Bool {
            let help = match t.ty.kind {
                ValueKind::Num => "compare it with something, e.g. `rsi(close, 14) < 30`",
                _ => "compare it, e.g. `order.side == \"buy\"`",
            };
            self.error(
                codes::RULE_NOT_BOOL,
                e.span,
                format!("`{what}` must be a bool (true or false), found {}", t.ty),
                &format!("this is a {}", t.ty),
                Some(help.into()),
            );
            return None;
        }
        Some(t)
    }

    /// Checks a number expression (a strategy's `expected_return`, a sizing `scale`). `what`
    /// names it.
    pub fn check_number(&mut self, e: &Expr, what: &str) -> Option<TExpr> {
        let t = self.check(e)?;
        if t.ty.kind != ValueKind::Num {
            self.error(
                codes::WRONG_TYPE,
                e.span,
                format!("`{what}` must be a number, found {}", t.ty),
                &format!("this is a {}", t.ty),
                Some(match what {
                    "price" => "an entry's price is a number in currency per unit, e.g. `close * 0.99` or \
                                `lowest(low, 5)`"
                        .into(),
                    "weight" => {
                        "a weight is a fraction of equity, e.g. `40%` or `min(30%, 0.2% / volatility(20))`".into()
                    }
                    "scale" => "a scale multiplies the size, e.g. `1.2` or `min(2, 1% / volatility(20))`; to choose \
                                by a condition, write cases: `[{when: trending(), scale: 1.2}, {scale: 0.6}]`"
                        .into(),
                    _ => "write the return as a fraction of price, e.g. `2 * atr(14) / close` or `3%`".into(),
                }),
            );
            return None;
        }
        Some(t)
    }

    /// Checks any expression.
    pub fn check(&mut self, e: &Expr) -> Option<TExpr> {
        match &e.kind {
            ExprKind::Number(v, _) => Some(TExpr::constant(*v, ValueKind::Num, e.span)),
            ExprKind::Bool(b) => Some(TExpr::constant(from_bool(*b), ValueKind::Bool, e.span)),
            ExprKind::Str(s) => Some(TExpr::constant(string_id(s), ValueKind::Str, e.span)),
            ExprKind::Path(ids) => self.check_path(ids, e.span),
            ExprKind::Call { func, args } => self.check_call(func, args, e.span, None),
            ExprKind::Unary(op, a) => self.check_unary(*op, a, e.span),
            ExprKind::Binary(op, op_span, a, b) => self.check_binary(*op, *op_span, a, b, e.span),
            ExprKind::Index(x, k) => self.check_index(x, k, e.span),
            ExprKind::Field(x, name) => self.check_field(x, name, e.span),
            ExprKind::Resample(x, tf) => self.check_resample(x, tf, e.span),
        }
    }

    /// `x@1d`: `x` on a higher timeframe. `x` must be bar data (a series or a constant); the
    /// timeframe must be longer than the strategy's and hold a whole number of its bars.
    fn check_resample(&mut self, x: &Expr, tf: &Ident, span: Span) -> Option<TExpr> {
        let timeframe = match tf.name.parse::<Timeframe>() {
            Ok(t) => Some(t),
            Err(why) => {
                let lower = tf.name.to_ascii_lowercase();
                let help = if lower != tf.name && lower.parse::<Timeframe>().is_ok() {
                    format!("did you mean `@{lower}`?")
                } else {
                    "write a count and a unit: `@15m`, `@1h`, `@4h`, `@1d`, `@1w` or `@1mo`".to_string()
                };
                self.error(
                    codes::HIGHER_TIMEFRAME,
                    tf.span,
                    format!("invalid timeframe `{}`: {why}", tf.name),
                    "not a timeframe",
                    Some(help),
                );
                None
            }
        };
        if let Some(outer) = self.resampling {
            self.error(
                codes::HIGHER_TIMEFRAME,
                tf.span,
                format!("`@{}` inside an expression already on `@{}`", tf.name, outer.timeframe),
                "second timeframe",
                Some("an expression is computed on one timeframe; move the `@` outward or drop one".into()),
            );
            return None;
        }
        let timeframe = timeframe?;
        if let Some(why) = self.base.and_then(|b| timeframe.aggregates_from(b)) {
            self.error(
                codes::HIGHER_TIMEFRAME,
                tf.span,
                format!("`@{}` cannot be aggregated from this strategy's bars: {why}", tf.name),
                "not a higher timeframe",
                Some(
                    "a higher timeframe is a whole multiple of the strategy's `timeframe`, e.g. `@1d` on `5m` bars"
                        .into(),
                ),
            );
            return None;
        }
        let resample = Resample { timeframe, aggregation: self.aggregation };
        self.resampling = Some(resample);
        let inner = self.check(x);
        self.resampling = None;
        let inner = inner?;
        match inner.ty.var {
            Variability::Const => Some(TExpr { span, ..inner }),
            Variability::Series => {
                let ty = inner.ty;
                Some(TExpr { kind: TKind::Resample(resample, Box::new(inner)), ty, span })
            }
            Variability::Scalar => {
                self.error(
                    codes::HIGHER_TIMEFRAME,
                    x.span,
                    format!("only bar data has a higher timeframe; this is a {}", inner.ty),
                    "not bar data",
                    Some(
                        "put the `@` on the bar series or indicator, e.g. `sma(close, 50)@1d > account.equity`".into(),
                    ),
                );
                None
            }
        }
    }

    fn check_path(&mut self, ids: &[Ident], span: Span) -> Option<TExpr> {
        if ids.len() == 1 {
            return self.check_name(&ids[0]);
        }
        let path: String = ids.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(".");
        match catalog::field(&path) {
            Some(f) if f.contexts.contains(&self.context) => {
                Some(TExpr { kind: TKind::Field(f.id), ty: Ty::new(f.kind, Variability::Scalar), span })
            }
            Some(f) => {
                let why = match (self.context, f.path.split('.').next()) {
                    (Context::Entry, Some("position")) => "entry rules run while flat, so there is no position yet",
                    (Context::Eval, _) => "`dsl eval` evaluates bar data only",
                    (_, Some("order")) => "order fields exist only in policy rules",
                    _ => "it is not defined there",
                };
                let places: Vec<&str> = f.contexts.iter().map(|c| c.describe()).collect();
                self.error(
                    codes::FIELD_NOT_AVAILABLE,
                    span,
                    format!("`{path}` is not available in {}", self.context.describe()),
                    "not available here",
                    Some(format!("{why}; it is available in {}", places.join(", "))),
                );
                None
            }
            None => {
                let candidates: Vec<&str> =
                    catalog::FIELDS.iter().filter(|f| f.contexts.contains(&self.context)).map(|f| f.path).collect();
                let help = match did_you_mean(&path, candidates.iter().copied()) {
                    Some(s) => Some(format!("did you mean `{s}`?")),
                    None if candidates.is_empty() => Some(format!("{} has no context fields", self.context.describe())),
                    None => {
                        let ns = &ids[0].name;
                        let same: Vec<&str> =
                            candidates.iter().copied().filter(|c| c.starts_with(&format!("{ns}."))).collect();
                        if same.is_empty() {
                            Some(format!("fields available here: {}", one_of(&candidates)))
                        } else {
                            Some(format!("`{ns}` fields available here: {}", one_of(&same)))
                        }
                    }
                };
                self.error(codes::UNKNOWN_FIELD, span, format!("unknown field `{path}`"), "unknown field", help);
                None
            }
        }
    }

    fn check_name(&mut self, id: &Ident) -> Option<TExpr> {
        let name = id.name.as_str();
        if let Some(p) = self.params.iter().find(|p| p.name.value == name) {
            self.used_params.insert(name.to_string());
            return Some(match &p.value.value {
                ParamValue::Number(v, _) => TExpr::constant(*v, ValueKind::Num, id.span),
                ParamValue::Bool(b) => TExpr::constant(from_bool(*b), ValueKind::Bool, id.span),
                ParamValue::Str(s) => TExpr::constant(string_id(s), ValueKind::Str, id.span),
            });
        }
        if self.broken.iter().any(|b| b == name) {
            self.used_params.insert(name.to_string());
            return None;
        }
        if let Some(c) = self.indicators.iter().find(|c| c.name == name) {
            self.used_params.insert(name.to_string());
            return Some(TExpr {
                kind: TKind::Script { script: c.script.clone(), window: c.window },
                ty: Ty::new(ValueKind::Num, Variability::Series),
                span: id.span,
            });
        }
        if let Some((_, f)) = catalog::BAR_FIELDS.iter().find(|(n, _)| *n == name) {
            return Some(TExpr {
                kind: TKind::Bar(*f),
                ty: Ty::new(ValueKind::Num, Variability::Series),
                span: id.span,
            });
        }
        if let Some(f) = catalog::function(name) {
            self.error(
                codes::UNKNOWN_NAME,
                id.span,
                format!("`{name}` is a function, not a value"),
                "needs arguments",
                Some(format!("call it: `{}`", f.signature())),
            );
            return None;
        }
        if matches!(name, "account" | "position" | "order" | "symbol" | "bucket" | "session") {
            let fields: Vec<&str> = catalog::FIELDS
                .iter()
                .filter(|f| f.path.starts_with(&format!("{name}.")) && f.contexts.contains(&self.context))
                .map(|f| f.path)
                .collect();
            let help = if fields.is_empty() {
                format!("`{name}` fields are not available in {}", self.context.describe())
            } else {
                format!("pick a field: {}", one_of(&fields))
            };
            self.error(codes::UNKNOWN_FIELD, id.span, format!("`{name}` needs a field"), "incomplete", Some(help));
            return None;
        }
        let mut candidates: Vec<&str> = self.params.iter().map(|p| p.name.value.as_str()).collect();
        candidates.extend(self.indicators.iter().map(|c| c.name.as_str()));
        candidates.extend(catalog::BAR_FIELDS.iter().map(|(n, _)| *n));
        let help = match did_you_mean(name, candidates.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if self.params.is_empty() && self.indicators.is_empty() => {
                "names available here: the bar series `open`, `high`, `low`, `close`, `volume`".to_string()
            }
            None => format!("names available here: {}", one_of(&candidates)),
        };
        self.error(codes::UNKNOWN_NAME, id.span, format!("unknown name `{name}`"), "not defined", Some(help));
        None
    }

    fn check_unary(&mut self, op: UnaryOp, a: &Expr, span: Span) -> Option<TExpr> {
        let t = self.check(a)?;
        let (want, uop) = match op {
            UnaryOp::Neg => (ValueKind::Num, UnOp::Neg),
            UnaryOp::Not => (ValueKind::Bool, UnOp::Not),
        };
        if t.ty.kind != want {
            let (sym, need) = match op {
                UnaryOp::Neg => ("-", "a number"),
                UnaryOp::Not => ("not", "a bool"),
            };
            self.error(
                codes::TYPE_MISMATCH,
                a.span,
                format!("`{sym}` needs {need}, found {}", t.ty),
                &format!("this is a {}", t.ty),
                None,
            );
            return None;
        }
        Some(fold_unary(uop, t, span))
    }

    fn check_binary(&mut self, op: BinaryOp, op_span: Span, a: &Expr, b: &Expr, span: Span) -> Option<TExpr> {
        let ta = self.check(a);
        let tb = self.check(b);
        let (ta, tb) = (ta?, tb?);
        let (ka, kb) = (ta.ty.kind, tb.ty.kind);
        let chained = op.is_comparison() && matches!(&a.kind, ExprKind::Binary(p, ..) if p.is_comparison());
        let mismatch = |this: &mut Self, need: &str, help: Option<String>| {
            this.error(
                codes::TYPE_MISMATCH,
                op_span,
                format!("`{}` needs {need}, found {} and {}", op.symbol(), ta.ty, tb.ty),
                "operands do not match",
                help,
            );
            None
        };
        let bop = match op {
            BinaryOp::Add => BinOp::Add,
            BinaryOp::Sub => BinOp::Sub,
            BinaryOp::Mul => BinOp::Mul,
            BinaryOp::Div => BinOp::Div,
            BinaryOp::Lt => BinOp::Lt,
            BinaryOp::Le => BinOp::Le,
            BinaryOp::Gt => BinOp::Gt,
            BinaryOp::Ge => BinOp::Ge,
            BinaryOp::Eq => BinOp::Eq,
            BinaryOp::Ne => BinOp::Ne,
            BinaryOp::And => BinOp::And,
            BinaryOp::Or => BinOp::Or,
        };
        match op {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                if ka != ValueKind::Num || kb != ValueKind::Num {
                    return mismatch(self, "two numbers", None);
                }
                Some(fold_binary(bop, ta, tb, ValueKind::Num, span))
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                if ka == ValueKind::Num && kb == ValueKind::Num {
                    self.check_scales(a, &ta, b);
                    self.check_scales(b, &tb, a);
                }
                if ka != ValueKind::Num || kb != ValueKind::Num {
                    let help = if chained {
                        Some("comparisons do not chain; write `a < b and b < c`".to_string())
                    } else if ka == ValueKind::Bool || kb == ValueKind::Bool {
                        Some("only numbers can be ordered; a bool is true or false".to_string())
                    } else {
                        None
                    };
                    return mismatch(self, "two numbers", help);
                }
                Some(fold_binary(bop, ta, tb, ValueKind::Bool, span))
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if ka != kb {
                    let help = if chained {
                        Some("comparisons do not chain; write `a == b and b == c`".to_string())
                    } else {
                        None
                    };
                    return mismatch(self, "two values of the same type", help);
                }
                if ka == ValueKind::Str {
                    self.check_string_value(&ta, &tb);
                    self.check_string_value(&tb, &ta);
                }
                Some(fold_binary(bop, ta, tb, ValueKind::Bool, span))
            }
            BinaryOp::And | BinaryOp::Or => {
                if ka != ValueKind::Bool || kb != ValueKind::Bool {
                    return mismatch(
                        self,
                        "two bools",
                        Some(format!("each side of `{}` must be a condition such as `close > open`", op.symbol())),
                    );
                }
                Some(fold_binary(bop, ta, tb, ValueKind::Bool, span))
            }
        }
    }

    /// The number a side of a comparison was written as: a literal, or a param, with its unit.
    fn written_number(&self, e: &Expr) -> Option<(f64, NumUnit, String)> {
        match &e.kind {
            ExprKind::Number(v, unit) => {
                Some((*v, *unit, format!("`{}`", self.src.text.get(e.span.start..e.span.end).unwrap_or(""))))
            }
            ExprKind::Path(ids) if ids.len() == 1 => {
                let p = self.params.iter().find(|p| p.name.value == ids[0].name)?;
                match p.value.value {
                    ParamValue::Number(v, unit) => {
                        Some((v, unit, format!("`{}` (`{}`)", ids[0].name, written(v, unit))))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Warns when a value on one scale is compared with a number written on another:
    /// `rsi(close, 14) < 30%` (RSI is 0..100, `30%` is 0.3) or `account.drawdown > 10`
    /// (a fraction compared with 1000%).
    fn check_scales(&mut self, side: &Expr, typed: &TExpr, other: &Expr) {
        let scale = scale_of(typed);
        let Some((v, unit, text)) = self.written_number(other) else { return };
        let what = self.src.text.get(side.span.start..side.span.end).unwrap_or("").trim().to_string();
        let (msg, help) = match (scale, unit) {
            (Scale::Points, NumUnit::Percent | NumUnit::Bps) => (
                format!("`{what}` is on a 0..100 scale, but {text} is the fraction {}", trim_float(v)),
                format!("write the level as points, e.g. `{}`", trim_float(v * 100.0)),
            ),
            (Scale::Fraction, NumUnit::Plain) if v.abs() > 1.0 => (
                format!("`{what}` is a fraction (0.1 is 10%), but {text} is {}%", trim_float(v * 100.0)),
                format!("did you mean `{}%`?", trim_float(v)),
            ),
            _ => return,
        };
        let d = Diagnostic::warning(codes::UNIT_MIXUP, msg)
            .at(&self.src.file, self.src.to_file_span(other.span))
            .label("different scale")
            .help(help);
        self.diags.push(d);
    }

    /// `order.side == "bye"`: a literal that the field can never hold.
    fn check_string_value(&mut self, field: &TExpr, lit: &TExpr) {
        let (TKind::Field(id), Some(v)) = (&field.kind, lit.as_const()) else {
            return;
        };
        let spec = catalog::field_spec(*id);
        if spec.values.is_empty() || spec.values.iter().any(|s| string_id(s) == v) {
            return;
        }
        let text = self.src.text.get(lit.span.start..lit.span.end).unwrap_or("").to_string();
        self.error(
            codes::TYPE_MISMATCH,
            lit.span,
            format!("`{}` is never {text}", spec.path),
            "impossible value",
            Some(format!("allowed values: {}", one_of(spec.values))),
        );
    }

    fn check_index(&mut self, x: &Expr, k: &Expr, span: Span) -> Option<TExpr> {
        let tx = self.check(x);
        let tk = self.check(k);
        let (tx, tk) = (tx?, tk?);
        if !tx.ty.is_series() {
            let why = match tx.ty.var {
                Variability::Const => "a constant has no history",
                _ => "context values have no history; only bar series and indicators do",
            };
            self.error(
                codes::BAD_INDEX,
                x.span,
                format!("history `[...]` needs a series, found {}", tx.ty),
                "no history",
                Some(why.into()),
            );
            return None;
        }
        let lag = match (tk.ty.kind, tk.as_const()) {
            (ValueKind::Num, Some(v)) if v >= 0.0 && v.fract() == 0.0 && v <= MAX_LAG as f64 => v as u32,
            _ => {
                let found = self.src.text.get(k.span.start..k.span.end).unwrap_or("").to_string();
                self.error(
                    codes::BAD_INDEX,
                    k.span,
                    format!("history index must be a whole number of bars from 0 to {MAX_LAG}, found `{found}`"),
                    "bad index",
                    Some("`close[1]` is the previous bar's close".into()),
                );
                return None;
            }
        };
        if lag == 0 {
            return Some(TExpr { span, ..tx });
        }
        let ty = tx.ty;
        Some(TExpr { kind: TKind::Lag(Box::new(tx), lag), ty, span })
    }

    fn check_field(&mut self, x: &Expr, name: &Ident, span: Span) -> Option<TExpr> {
        if let ExprKind::Call { func, args } = &x.kind {
            return self.check_call(func, args, span, Some(name));
        }
        let t = self.check(x)?;
        self.error(
            codes::OUTPUT_SELECTION,
            name.span,
            format!("a {} has no field `{}`", t.ty, name.name),
            "not a field",
            Some("only the results of `macd` and `bbands` have outputs (`.signal`, `.upper`, ...)".into()),
        );
        None
    }
}

/// The scale of a typed expression's value, when known.
fn scale_of(t: &TExpr) -> Scale {
    match &t.kind {
        TKind::Indicator { func, .. } => catalog::spec(*func).scale,
        TKind::Field(id) => catalog::field_spec(*id).scale,
        TKind::Lag(x, _) | TKind::Resample(_, x) => scale_of(x),
        _ => Scale::Any,
    }
}

fn widest(a: Variability, b: Variability) -> Variability {
    a.max(b)
}

/// Builds a unary node, folding constants.
pub fn fold_unary(op: UnOp, a: TExpr, span: Span) -> TExpr {
    let kind = if op == UnOp::Not { ValueKind::Bool } else { ValueKind::Num };
    if let Some(v) = a.as_const() {
        return TExpr::constant(semantics::unary(op, v), kind, span);
    }
    let ty = Ty::new(kind, a.ty.var);
    TExpr { kind: TKind::Unary(op, Box::new(a)), ty, span }
}

/// Builds a binary node, folding constants. `and`/`or` with one constant side fold too, as
/// Kleene logic allows: `false and x` is false and `true or x` is true whatever `x` is, while
/// `true and x` and `false or x` are `x`.
pub fn fold_binary(op: BinOp, a: TExpr, b: TExpr, kind: ValueKind, span: Span) -> TExpr {
    if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
        return TExpr::constant(semantics::binary(op, x, y), kind, span);
    }
    if matches!(op, BinOp::And | BinOp::Or) {
        let absorbing = if op == BinOp::And { semantics::FALSE } else { semantics::TRUE };
        for (c, other) in [(&a, &b), (&b, &a)] {
            match c.as_const() {
                Some(v) if v == absorbing => return TExpr::constant(absorbing, kind, span),
                Some(v) if !v.is_nan() => return TExpr { span, ..other.clone() },
                _ => {}
            }
        }
    }
    let ty = Ty::new(kind, widest(a.ty.var, b.ty.var));
    TExpr { kind: TKind::Binary(op, Box::new(a), Box::new(b)), ty, span }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::NumUnit;
    use crate::diagnostics::Spanned;
    use crate::dsl::parser::parse_text;

    fn params() -> Vec<Param> {
        let p = |n: &str, v: f64| Param {
            name: Spanned::new(n.to_string(), Span::default()),
            value: Spanned::new(ParamValue::Number(v, NumUnit::Plain), Span::default()),
            space: None,
        };
        vec![p("fast", 10.0), p("slow", 30.0), p("half", 10.5)]
    }

    fn check(text: &str, ctx: Context) -> Result<TExpr, Vec<Diagnostic>> {
        let src = ExprSource::standalone("rule", text);
        let ps = params();
        let mut c = Checker::new(&src, ctx, &ps);
        let e = parse_text(text).unwrap();
        match c.check(&e) {
            Some(t) if !c.diags.iter().any(Diagnostic::is_error) => Ok(t),
            _ => Err(c.diags),
        }
    }

    fn err(text: &str, ctx: Context) -> Diagnostic {
        check(text, ctx).unwrap_err().remove(0)
    }

    #[test]
    fn types_and_folding() {
        let t = check("crosses_above(sma(close, fast), sma(close, slow))", Context::Entry).unwrap();
        assert_eq!(t.ty, Ty::new(ValueKind::Bool, Variability::Series));
        let t = check("5% * 2 + 1", Context::Eval).unwrap();
        assert_eq!(t.as_const(), Some(1.1));
        let t = check("close > position.entry_price * 1.05", Context::Exit).unwrap();
        assert_eq!(t.ty.var, Variability::Scalar);
        let t = check("macd(close).signal", Context::Eval).unwrap();
        assert!(matches!(t.kind, TKind::Indicator { output: 1, .. }));
        let t = check("close[0]", Context::Eval).unwrap();
        assert!(matches!(t.kind, TKind::Bar(BarField::Close)));
    }

    #[test]
    fn errors_point_at_the_token() {
        let d = err("smaa(close, 10) > 1", Context::Eval);
        assert_eq!(d.code, codes::UNKNOWN_FUNCTION);
        assert_eq!(d.help.as_deref(), Some("did you mean `sma`?"));
        assert_eq!(d.span, Some(Span::new(0, 4)));

        let d = err("sma(close) > 1", Context::Eval);
        assert_eq!(d.code, codes::ARITY);
        assert_eq!(d.message, "`sma` takes 2 arguments, found 1");

        let d = err("close > true", Context::Eval);
        assert_eq!(d.code, codes::TYPE_MISMATCH);
        assert_eq!(d.message, "`>` needs two numbers, found series and bool");
        assert_eq!(d.span, Some(Span::new(6, 7)));

        let d = err("sma(close, half) > 1", Context::Eval);
        assert_eq!(d.code, codes::NOT_CONSTANT);

        let d = err("position.entry_price > 1", Context::Entry);
        assert_eq!(d.code, codes::FIELD_NOT_AVAILABLE);

        let d = err("account.equty > 1", Context::Policy);
        assert_eq!(d.help.as_deref(), Some("did you mean `account.equity`?"));

        let d = err("order.side == \"bye\"", Context::Policy);
        assert!(d.help.unwrap().contains("`buy`"));

        let d = err("1 < close < 3", Context::Eval);
        assert!(d.help.unwrap().contains("do not chain"));

        let d = err("macd(close) > 0", Context::Eval);
        assert_eq!(d.code, codes::OUTPUT_SELECTION);

        let d = err("account.equity[1] > 0", Context::Policy);
        assert_eq!(d.code, codes::BAD_INDEX);

        let d = err("clsoe > 1", Context::Eval);
        assert_eq!(d.help.as_deref(), Some("did you mean `close`?"));
    }

    #[test]
    fn flags_percent_and_fraction_mixups() {
        let src = ExprSource::standalone("rule", "rsi(close, 14) < 30% and account.drawdown < 10");
        let mut c = Checker::new(&src, Context::Entry, &[]);
        let e = parse_text(&src.text).unwrap();
        assert!(c.check_rule(&e, "entry").is_some(), "warnings do not stop compilation");
        assert_eq!(c.diags.len(), 2, "{:?}", c.diags);
        assert!(c.diags.iter().all(|d| d.code == codes::UNIT_MIXUP && !d.is_error()));
        assert_eq!(c.diags[0].help.as_deref(), Some("write the level as points, e.g. `30`"));
        assert_eq!(c.diags[1].help.as_deref(), Some("did you mean `10%`?"));
        assert!(check("rsi(close, 14) < 30 and account.drawdown < 10%", Context::Entry).is_ok());
    }

    #[test]
    fn reports_errors_on_both_sides() {
        let diags = check("smaa(close, 1) > clsoe", Context::Eval).unwrap_err();
        assert_eq!(diags.len(), 2);
    }

    #[test]
    fn rules_must_be_bool() {
        let src = ExprSource::standalone("rule", "sma(close, 10)");
        let mut c = Checker::new(&src, Context::Entry, &[]);
        let e = parse_text(&src.text).unwrap();
        assert!(c.check_rule(&e, "entry").is_none());
        assert_eq!(c.diags[0].code, codes::RULE_NOT_BOOL);
    }
}
