//! Checking a function call: the function's name and arity, each argument's kind (a series, a
//! constant, a period within bounds), the output chosen of a multi-output indicator
//! (`macd(close).signal`), custom indicators from rhai scripts, and composite functions written
//! out in terms of the built-in ones.
//!
//! `build_call` (about 140 lines) checks each argument of a call against its declared kind in one
//! loop with the diagnostics it produces; splitting the loop would pass the call's whole state
//! around.

use super::*;

impl Checker<'_> {
    pub(super) fn check_call(
        &mut self,
        func: &Ident,
        args: &[Expr],
        span: Span,
        output: Option<&Ident>,
    ) -> Option<TExpr> {
        let Some(spec) = catalog::function(&func.name) else {
            let names = catalog::FUNCTIONS.iter().map(|f| f.name);
            let help = match did_you_mean(&func.name, names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "known functions: {}",
                    one_of(&catalog::FUNCTIONS.iter().map(|f| f.name).collect::<Vec<_>>())
                ),
            };
            self.error(
                codes::UNKNOWN_FUNCTION,
                func.span,
                format!("unknown function `{}`", func.name),
                "unknown function",
                Some(help),
            );
            for a in args {
                self.check(a);
            }
            return None;
        };
        let checked: Vec<Option<TExpr>> = args.iter().map(|a| self.check(a)).collect();
        let (min, max) = (spec.required(), spec.args.len());
        if args.len() < min || args.len() > max {
            let expect = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            let plural = if max == 1 { "argument" } else { "arguments" };
            self.error(
                codes::ARITY,
                span,
                format!("`{}` takes {expect} {plural}, found {}", spec.name, args.len()),
                "wrong number of arguments",
                Some(format!("usage: `{}`", spec.signature())),
            );
            return None;
        }
        let out_index = self.select_output(spec, span, output)?;
        let checked: Vec<TExpr> = checked.into_iter().collect::<Option<Vec<_>>>()?;
        self.build_call(spec, checked, args, span, out_index)
    }

    pub(super) fn select_output(&mut self, spec: &FuncSpec, span: Span, output: Option<&Ident>) -> Option<u8> {
        match (spec.outputs.is_empty(), output) {
            (true, None) => Some(0),
            (true, Some(o)) => {
                self.error(
                    codes::OUTPUT_SELECTION,
                    o.span,
                    format!("`{}` has a single output; `.{}` is not valid", spec.name, o.name),
                    "not an output",
                    Some("remove the field".into()),
                );
                None
            }
            (false, None) => {
                let outs: Vec<String> = spec.outputs.iter().map(|o| format!(".{o}")).collect();
                let outs: Vec<&str> = outs.iter().map(|s| s.as_str()).collect();
                self.error(
                    codes::OUTPUT_SELECTION,
                    span,
                    format!("`{}` returns {} values; pick one", spec.name, spec.outputs.len()),
                    "which output?",
                    Some(format!(
                        "add {} after the call, e.g. `{}(...).{}`",
                        one_of(&outs),
                        spec.name,
                        spec.outputs[0]
                    )),
                );
                None
            }
            (false, Some(o)) => match spec.outputs.iter().position(|x| *x == o.name) {
                Some(i) => Some(i as u8),
                None => {
                    let help = match did_you_mean(&o.name, spec.outputs.iter().copied()) {
                        Some(s) => format!("did you mean `.{s}`?"),
                        None => format!("outputs of `{}`: {}", spec.name, one_of(spec.outputs)),
                    };
                    self.error(
                        codes::OUTPUT_SELECTION,
                        o.span,
                        format!("`{}` has no output `{}`", spec.name, o.name),
                        "unknown output",
                        Some(help),
                    );
                    None
                }
            },
        }
    }

    pub(super) fn build_call(
        &mut self,
        spec: &FuncSpec,
        checked: Vec<TExpr>,
        args: &[Expr],
        span: Span,
        output: u8,
    ) -> Option<TExpr> {
        let mut series = Vec::new();
        let mut consts = Vec::new();
        let mut ok = true;
        for (i, a) in spec.args.iter().enumerate() {
            let Some(t) = checked.get(i) else {
                consts.push(a.default.unwrap_or(f64::NAN));
                continue;
            };
            let arg_span = args[i].span;
            match a.kind {
                ArgKind::Series | ArgKind::SeriesOrConst => {
                    let allow_const = a.kind == ArgKind::SeriesOrConst;
                    if t.ty.kind != ValueKind::Num
                        || !(t.ty.is_series() || (allow_const && t.ty.var == Variability::Const))
                    {
                        let want = if allow_const {
                            "a numeric series or a constant"
                        } else {
                            "a numeric series such as `close`"
                        };
                        let why = match (t.ty.kind, t.ty.var) {
                            (ValueKind::Num, Variability::Const) => " (a constant has no history)".to_string(),
                            (ValueKind::Num, Variability::Scalar) => " (it does not change per bar)".to_string(),
                            _ => String::new(),
                        };
                        self.error(
                            codes::TYPE_MISMATCH,
                            arg_span,
                            format!("argument `{}` of `{}` must be {want}, found {}{why}", a.name, spec.name, t.ty),
                            &format!("expected {want}"),
                            Some(format!("usage: `{}`", spec.signature())),
                        );
                        ok = false;
                    } else {
                        series.push(t.clone());
                    }
                }
                ArgKind::Period | ArgKind::PositiveConst => {
                    let v = match (t.ty.kind, t.as_const()) {
                        (ValueKind::Num, Some(v)) => v,
                        _ => {
                            self.error(
                                codes::NOT_CONSTANT,
                                arg_span,
                                format!(
                                    "argument `{}` of `{}` must be a constant number, found {}",
                                    a.name, spec.name, t.ty
                                ),
                                "expected a number or a param",
                                Some(format!("usage: `{}`", spec.signature())),
                            );
                            ok = false;
                            continue;
                        }
                    };
                    let valid = if a.kind == ArgKind::Period {
                        v >= 1.0 && v.fract() == 0.0 && v <= MAX_PERIOD
                    } else {
                        v > 0.0 && v.is_finite()
                    };
                    if !valid {
                        let want = if a.kind == ArgKind::Period {
                            format!("a whole number of bars from 1 to {MAX_PERIOD}")
                        } else {
                            "a number greater than 0".to_string()
                        };
                        let help = match self.written_number(&args[i]) {
                            Some((_, unit @ (NumUnit::Percent | NumUnit::Bps), text)) => {
                                Some(format!("{text} is written as a {unit}; periods are whole numbers of bars"))
                            }
                            Some((_, _, text)) if text.contains('(') => Some(format!("the param is {text}")),
                            _ => None,
                        };
                        self.error(
                            codes::NOT_CONSTANT,
                            arg_span,
                            format!(
                                "argument `{}` of `{}` must be {want}, found `{}`",
                                a.name,
                                spec.name,
                                trim_float(v)
                            ),
                            &format!("expected {want}"),
                            help,
                        );
                        ok = false;
                    } else {
                        consts.push(v);
                    }
                }
                ArgKind::Number => {
                    if t.ty.kind != ValueKind::Num {
                        self.error(
                            codes::TYPE_MISMATCH,
                            arg_span,
                            format!("argument `{}` of `{}` must be a number, found {}", a.name, spec.name, t.ty),
                            "expected a number",
                            None,
                        );
                        ok = false;
                    } else {
                        series.push(t.clone());
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        let widest = series.iter().map(|t| t.ty.var).max().unwrap_or(Variability::Const);
        match spec.func {
            Func::Abs => Some(fold_unary(UnOp::Abs, series.remove(0), span)),
            Func::Min | Func::Max => {
                let op = if spec.func == Func::Min { BinOp::Min } else { BinOp::Max };
                let b = series.remove(1);
                let a = series.remove(0);
                Some(fold_binary(op, a, b, ValueKind::Num, span))
            }
            f if f.is_composite() => Some(composite(f, series, &consts, span)),
            Func::CrossesAbove | Func::CrossesBelow if widest == Variability::Const => {
                // Two constants never cross.
                Some(TExpr::constant(semantics::FALSE, ValueKind::Bool, span))
            }
            _ => Some(TExpr {
                kind: TKind::Indicator { func: spec.func, args: series, consts, output },
                ty: Ty::new(spec.returns, Variability::Series),
                span,
            }),
        }
    }
}

/// Writes a composite function out in terms of bar series, indicators and operators; every
/// sub-expression carries the call's span. `consts` are the constant arguments in order,
/// defaults filled in.
fn composite(func: Func, mut series: Vec<TExpr>, consts: &[f64], span: Span) -> TExpr {
    let num = |kind| Ty::new(ValueKind::Num, kind);
    let close = || TExpr { kind: TKind::Bar(BarField::Close), ty: num(Variability::Series), span };
    let ind = |func, args: Vec<TExpr>, consts: Vec<f64>| TExpr {
        kind: TKind::Indicator { func, args, consts, output: 0 },
        ty: num(Variability::Series),
        span,
    };
    let k = |v: f64| TExpr::constant(v, ValueKind::Num, span);
    let c = |i: usize| consts.get(i).copied().unwrap_or(f64::NAN);
    let lag = |x: TExpr, n: f64| {
        let ty = x.ty;
        TExpr { kind: TKind::Lag(Box::new(x), n as u32), ty, span }
    };
    let change = |x: TExpr, n: f64| {
        let ratio = fold_binary(BinOp::Div, x.clone(), lag(x, n), ValueKind::Num, span);
        fold_binary(BinOp::Sub, ratio, k(1.0), ValueKind::Num, span)
    };
    let trend_score = |period: f64, atr_period: f64| {
        let dist = fold_binary(BinOp::Sub, close(), ind(Func::Sma, vec![close()], vec![period]), ValueKind::Num, span);
        fold_binary(BinOp::Div, dist, ind(Func::Atr, vec![], vec![atr_period]), ValueKind::Num, span)
    };
    match func {
        Func::Change => change(series.remove(0), c(0)),
        Func::Volatility => ind(Func::StdDev, vec![change(close(), 1.0)], vec![c(0), 1.0]),
        Func::TrendScore => trend_score(c(0), c(1)),
        Func::Trending => {
            let score = fold_unary(UnOp::Abs, trend_score(c(1), c(2)), span);
            fold_binary(BinOp::Gt, score, k(c(0)), ValueKind::Bool, span)
        }
        Func::Ranging => {
            let dist =
                fold_binary(BinOp::Sub, close(), ind(Func::Sma, vec![close()], vec![c(0)]), ValueKind::Num, span);
            let band = fold_binary(BinOp::Mul, k(c(1)), ind(Func::Atr, vec![], vec![c(2)]), ValueKind::Num, span);
            fold_binary(BinOp::Le, fold_unary(UnOp::Abs, dist, span), band, ValueKind::Bool, span)
        }
        _ => TExpr::constant(f64::NAN, ValueKind::Num, span),
    }
}
