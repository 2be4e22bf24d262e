//! Property tests: the parser and the checker never panic; the compiled graph, in both its
//! streaming and block forms, agrees with the reference interpreter on random rules and prices.

use proptest::prelude::*;

use tradedsl::config::expr_source::ExprSource;
use tradedsl::config::read_document;
use tradedsl::diagnostics::SourceFile;
use tradedsl::dsl::catalog::{Context, Func};
use tradedsl::dsl::check::{Checker, TExpr, TKind};
use tradedsl::dsl::interp::{Bars, eval_series};
use tradedsl::dsl::parser::parse_text;
use tradedsl::dsl::program::GraphSpec;
use tradedsl::dsl::semantics::BinOp;
use tradedsl::dsl::types::ValueKind;
use tradedsl::engine::graph::Graph;
use tradedsl::engine::market::{Bar, BarSeries};
use tradedsl::engine::resample::BaseBars;

/// Cases per property: `PROPTEST_CASES` when set (for long local runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Pieces of rule text, so random strings are often almost valid.
const TOKENS: &[&str] = &[
    "sma",
    "ema",
    "rsi",
    "macd",
    "atr",
    "bbands",
    "close",
    "open",
    "high",
    "volume",
    "account.equity",
    "order.side",
    "position.entry_price",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "+",
    "-",
    "*",
    "/",
    "<",
    ">=",
    "==",
    "!=",
    "and",
    "or",
    "not",
    "1",
    "10",
    "5%",
    "30bps",
    "0.5",
    "true",
    "\"buy\"",
    " ",
    ".signal",
    "crosses_above",
    "highest",
    "x",
    "1e999",
    "%",
    "=",
    "&&",
    "@",
    "@1d",
    "@1W",
    "@0h",
    "@99999999mo",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    #[test]
    fn the_parser_never_panics(text in any::<String>()) {
        let _ = parse_text(&text);
    }

    #[test]
    fn parsing_and_checking_token_soup_never_panics(text in token_soup()) {
        if let Ok(e) = parse_text(&text) {
            let src = ExprSource::standalone("r", &text);
            for ctx in [Context::Entry, Context::Exit, Context::Policy, Context::Eval] {
                let mut c = Checker::new(&src, ctx, &[]);
                let _ = c.check_rule(&e, "rule");
            }
        }
    }

    #[test]
    fn documents_never_panic(text in "(kind: (strategy|policy|bot)\n)?([a-z_]{1,10}: ?[^\n]{0,30}\n){0,8}") {
        let f = SourceFile::new("p.yaml", text);
        let mut diags = Vec::new();
        let _ = read_document(&f, &mut diags);
    }
}

/// A random series expression (as text).
fn series_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("close".to_string()),
        Just("open".to_string()),
        Just("high".to_string()),
        Just("low".to_string()),
        Just("volume".to_string()),
        (1..8u32).prop_map(|p| format!("atr({p})")),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        let p = 1..8u32;
        prop_oneof![
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("sma({x}, {n})")),
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("ema({x}, {n})")),
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("rsi({x}, {n})")),
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("highest({x}, {n})")),
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("lowest({x}, {n})")),
            // `roc` divides by its input's past value: only over series that stay well away
            // from zero, where last-bit differences cannot be amplified without bound.
            (positive_expr(), p.clone()).prop_map(|(x, n)| format!("roc({x}, {n})")),
            (inner.clone(), 2..8u32).prop_map(|(x, n)| format!("stddev({x}, {n})")),
            (inner.clone(), 1..4u32, 4..8u32, 1..4u32, 0..3usize).prop_map(|(x, f, s, g, o)| {
                format!("macd({x}, {f}, {s}, {g}).{}", ["line", "signal", "histogram"][o])
            }),
            (inner.clone(), 2..8u32, 0..3usize)
                .prop_map(|(x, n, o)| format!("bbands({x}, {n}, 2).{}", ["upper", "middle", "lower"][o])),
            (inner.clone(), 1..4u32).prop_map(|(x, k)| format!("{x}[{k}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} * {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("max({a}, {b})")),
            inner.clone().prop_map(|a| format!("-{a}")),
        ]
    })
}

/// A random series that stays positive and away from zero (prices and their averages).
fn positive_expr() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(&["close", "open", "high", "low"][..]).prop_map(str::to_string);
    leaf.prop_recursive(2, 6, 2, |inner| {
        let p = 1..8u32;
        prop_oneof![
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("sma({x}, {n})")),
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("ema({x}, {n})")),
            (inner.clone(), p.clone()).prop_map(|(x, n)| format!("highest({x}, {n})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), 1..4u32).prop_map(|(x, k)| format!("{x}[{k}]")),
        ]
    })
}

/// A random bool rule over series.
fn bool_expr() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        (series_expr(), series_expr()).prop_map(|(a, b)| format!("{a} > {b}")),
        (series_expr(), series_expr()).prop_map(|(a, b)| format!("crosses_above({a}, {b})")),
        (series_expr(), series_expr()).prop_map(|(a, b)| format!("crosses_below({a}, {b})")),
        (series_expr(), 0..100u32).prop_map(|(a, k)| format!("{a} <= {k}")),
    ];
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("({a})[1]")),
        ]
    })
}

/// Random positive OHLCV bars (a random walk).
fn bars() -> impl Strategy<Value = BarSeries> {
    prop::collection::vec((-0.03f64..0.03, 0.0f64..0.02, 0.0f64..0.02, 0.0f64..0.03, 1.0f64..1e6), 20..120).prop_map(
        |steps| {
            let mut s = BarSeries::new("X");
            let mut close = 100.0;
            for (i, (r, up, down, gap, v)) in steps.into_iter().enumerate() {
                let open = close * (1.0 + gap - 0.015);
                close *= 1.0 + r;
                let high = open.max(close) * (1.0 + up);
                let low = open.min(close) * (1.0 - down);
                s.push(Bar { ts: i as i64 * 60, open, high, low, close, volume: v });
            }
            s
        },
    )
}

/// Relative agreement for large values, absolute (1e-9) near zero: differences that
/// start at the last bit (compensated sums against direct ones) may be amplified by
/// cancellation, e.g. `roc` of an RSI pinned at 100 gives 1e-14 where the oracle gives 0.
fn close_enough(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Bars where some comparison or crossing inside `e` is within 1e-9 (relative) of a tie, and
/// the few bars after them (history up to `[3]` and crossings look back). There the graph and
/// the oracle may round a mathematically equal pair differently, so either answer is right.
fn near_ties(e: &TExpr, bars: &Bars<'_>) -> Vec<bool> {
    let n = bars.close.len();
    let mut out = vec![false; n];
    let mut mark = |a: &[f64], b: &[f64]| {
        for i in 0..n {
            if (a[i] - b[i]).abs() <= 1e-9 * a[i].abs().max(b[i].abs()) {
                for o in out.iter_mut().skip(i).take(5) {
                    *o = true;
                }
            }
        }
    };
    let mut stack = vec![e];
    while let Some(x) = stack.pop() {
        match &x.kind {
            TKind::Binary(op, a, b) => {
                if matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne) {
                    mark(&eval_series(a, bars), &eval_series(b, bars));
                }
                stack.push(a);
                stack.push(b);
            }
            TKind::Indicator { func: Func::CrossesAbove | Func::CrossesBelow, args, .. } => {
                mark(&eval_series(&args[0], bars), &eval_series(&args[1], bars));
                stack.extend(args.iter());
            }
            TKind::Indicator { args, .. } => stack.extend(args.iter()),
            TKind::Unary(_, a) | TKind::Lag(a, _) => stack.push(a),
            _ => {}
        }
    }
    out
}

fn check_against_oracle(text: &str, s: &BarSeries) -> Result<(), TestCaseError> {
    let src = ExprSource::standalone("r", text);
    let ast = parse_text(text).map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
    let mut c = Checker::new(&src, Context::Eval, &[]);
    let t = c.check(&ast).ok_or_else(|| TestCaseError::fail(format!("{text}: {:?}", c.diags)))?;
    let bars = Bars { open: &s.open, high: &s.high, low: &s.low, close: &s.close, volume: &s.volume };
    let want = eval_series(&t, &bars);

    let mut spec = GraphSpec::new();
    let id = spec.lower(&t);
    let mut streaming = Graph::new(&spec, BaseBars::DAILY_EQUITIES);
    let mut got = Vec::new();
    for i in 0..s.len() {
        streaming.update(&s.bar(i));
        got.push(streaming.value(id));
    }
    // Blocks of uneven sizes must give exactly the streaming values.
    let mut blocked = Graph::new(&spec, BaseBars::DAILY_EQUITIES);
    let mut out = Vec::new();
    let (mut start, mut k) = (0, 0);
    while start < s.len() {
        let len = [1, 7, 3, 64][k % 4].min(s.len() - start);
        blocked.update_block(s, start, len, &mut out);
        for i in 0..len {
            let v = out[id as usize * len + i];
            prop_assert!(
                v.to_bits() == got[start + i].to_bits(),
                "{text} bar {}: block {v} vs streaming {}",
                start + i,
                got[start + i]
            );
        }
        start += len;
        k += 1;
    }
    let ties = near_ties(&t, &bars);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if t.ty.kind == ValueKind::Bool {
            let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
            prop_assert!(same || ties[i], "{text} bar {i}: graph {g} vs oracle {w}");
        } else {
            prop_assert!(close_enough(*g, *w), "{text} bar {i}: graph {g} vs oracle {w}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn numeric_series_match_the_reference_interpreter(text in series_expr(), s in bars()) {
        check_against_oracle(&text, &s)?;
    }

    #[test]
    fn bool_rules_match_the_reference_interpreter(text in bool_expr(), s in bars()) {
        check_against_oracle(&text, &s)?;
    }
}

/// A number-valued expression over context fields, exact series and literals: the shape of
/// guardrail conditions and exit rules, which compile to scalar programs.
fn scalar_num() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(
            &[
                "account.equity",
                "account.cash",
                "account.exposure",
                "account.drawdown",
                "account.peak_equity",
                "position.quantity",
                "position.entry_price",
                "position.notional",
                "position.unrealized_return",
                "order.notional",
                "order.quantity",
                "order.price",
            ][..]
        )
        .prop_map(str::to_string),
        // Series whose graph and oracle values are bit-identical (no sums), so comparisons
        // never sit on a rounding tie.
        prop::sample::select(&["close", "open", "high", "low", "close[1]", "highest(high, 3)", "lowest(low, 4)"][..])
            .prop_map(str::to_string),
        (0..2000u32).prop_map(|v| v.to_string()),
        (1..50u32).prop_map(|v| format!("{v}%")),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} - {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} * {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} / {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("min({a}, {b})")),
            inner.clone().prop_map(|a| format!("abs({a})")),
            inner.prop_map(|a| format!("-{a}")),
        ]
    })
}

/// A bool guardrail-like condition.
fn scalar_bool() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        (scalar_num(), scalar_num(), prop::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]))
            .prop_map(|(a, b, op)| format!("{a} {op} {b}")),
        prop::sample::select(
            &[
                "order.side == \"buy\"",
                "order.side != \"sell\"",
                "order.intent == \"entry\"",
                "order.intent == \"exit\"",
            ][..]
        )
        .prop_map(str::to_string),
    ];
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// Random context field values; about one in eight is undefined.
fn field_values() -> impl Strategy<Value = Vec<f64>> {
    use tradedsl::dsl::catalog::FIELD_COUNT;
    prop::collection::vec(prop_oneof![7 => -1e5f64..1e5, 1 => Just(f64::NAN)], FIELD_COUNT).prop_map(|mut v| {
        use tradedsl::dsl::catalog::FieldId;
        use tradedsl::dsl::semantics::string_id;
        // String fields hold string ids.
        v[FieldId::OrderSide as usize] = string_id(if v[0] > 0.0 { "buy" } else { "sell" });
        v[FieldId::OrderIntent as usize] = string_id(if v[1] > 0.0 { "entry" } else { "exit" });
        v
    })
}

fn check_scalar_against_oracle(text: &str, s: &BarSeries, fields: &[f64], at: &[usize]) -> Result<(), TestCaseError> {
    use tradedsl::dsl::interp::eval_at;
    use tradedsl::dsl::program::lower_rule;
    use tradedsl::engine::rules::{FieldValues, eval_rule};
    let src = ExprSource::standalone("r", text);
    let ast = parse_text(text).map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
    let mut c = Checker::new(&src, Context::Policy, &[]);
    let t = c.check(&ast).ok_or_else(|| TestCaseError::fail(format!("{text}: {:?}", c.diags)))?;
    let mut spec = GraphSpec::new();
    let rule = lower_rule(&mut spec, &t, &src);
    let bars = Bars { open: &s.open, high: &s.high, low: &s.low, close: &s.close, volume: &s.volume };
    let f: FieldValues = fields.try_into().expect("one value per field");
    let mut g = Graph::new(&spec, BaseBars::DAILY_EQUITIES);
    let mut scratch = Vec::new();
    for i in 0..s.len() {
        g.update(&s.bar(i));
        if !at.contains(&i) {
            continue;
        }
        let got = eval_rule(&rule, g.values(), &f, &mut scratch);
        let want = eval_at(&t, Some(&bars), i, fields);
        prop_assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{text} bar {i}: compiled {got} vs interpreter {want}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Differential test of the compiled scalar programs (rules over the account, position
    /// and order, with series parts read from the graph) against the reference interpreter.
    #[test]
    fn scalar_rules_match_the_reference_interpreter(
        text in prop_oneof![scalar_bool(), scalar_num()],
        s in bars(),
        fields in field_values(),
        at in prop::collection::vec(0usize..20, 1..4),
    ) {
        check_scalar_against_oracle(&text, &s, &fields, &at)?;
    }
}
