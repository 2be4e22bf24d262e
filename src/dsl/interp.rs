//! The reference interpreter: a deliberately plain evaluator of typed expressions over a whole
//! price history, kept as a test oracle for the compiled graph.
//!
//! It shares nothing with the streaming indicators but the operator semantics
//! ([`super::semantics`]): every indicator is recomputed from its textbook definition over the
//! full series (windows summed directly, recurrences written out), with the same conventions
//! (TA-Lib seeding and first defined bar; undefined inputs skipped by indicators; history and
//! crossings counted in bars). It is O(n * period) and meant for tests only.

use super::catalog::{BarField, Func};
use super::check::{TExpr, TKind};
use super::script::{Sandbox, WindowBars};
use super::semantics::{binary, unary};

/// Columns of OHLCV bars, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Bars<'a> {
    /// Opening prices.
    pub open: &'a [f64],
    /// Highest prices.
    pub high: &'a [f64],
    /// Lowest prices.
    pub low: &'a [f64],
    /// Closing prices.
    pub close: &'a [f64],
    /// Volumes.
    pub volume: &'a [f64],
}

impl Bars<'_> {
    fn len(&self) -> usize {
        self.close.len()
    }
}

/// Evaluates any expression on one bar: series parts over `bars` (when given) at `index`,
/// context fields from `fields` (indexed by [`super::catalog::FieldId`]; missing fields are
/// undefined).
pub fn eval_at(e: &TExpr, bars: Option<&Bars<'_>>, index: usize, fields: &[f64]) -> f64 {
    match &e.kind {
        TKind::Const(v) => *v,
        TKind::Field(f) => fields.get(*f as usize).copied().unwrap_or(f64::NAN),
        TKind::Unary(op, a) => unary(*op, eval_at(a, bars, index, fields)),
        TKind::Binary(op, a, b) => binary(*op, eval_at(a, bars, index, fields), eval_at(b, bars, index, fields)),
        TKind::Bar(_) | TKind::Lag(..) | TKind::Indicator { .. } | TKind::Script { .. } | TKind::Resample(..) => {
            match bars {
                Some(b) => eval_series(e, b).get(index).copied().unwrap_or(f64::NAN),
                None => f64::NAN,
            }
        }
    }
}

/// Evaluates a constant or series expression on every bar. Context fields evaluate as
/// undefined (`NaN`).
pub fn eval_series(e: &TExpr, bars: &Bars<'_>) -> Vec<f64> {
    let n = bars.len();
    match &e.kind {
        TKind::Const(v) => vec![*v; n],
        TKind::Bar(f) => match f {
            BarField::Open => bars.open.to_vec(),
            BarField::High => bars.high.to_vec(),
            BarField::Low => bars.low.to_vec(),
            BarField::Close => bars.close.to_vec(),
            BarField::Volume => bars.volume.to_vec(),
        },
        // Higher timeframes need bar times and a market calendar, which `Bars` does not carry:
        // the aggregation has its own oracle in the tests (daily bars built by hand).
        TKind::Field(_) | TKind::Resample(..) => vec![f64::NAN; n],
        TKind::Unary(op, a) => eval_series(a, bars).into_iter().map(|x| unary(*op, x)).collect(),
        TKind::Binary(op, a, b) => {
            let (x, y) = (eval_series(a, bars), eval_series(b, bars));
            x.iter().zip(&y).map(|(p, q)| binary(*op, *p, *q)).collect()
        }
        TKind::Script { script, window } => {
            // The script on each full window; errors are undefined, as in the engine.
            let w = *window as usize;
            (0..n)
                .map(|i| {
                    if i + 1 < w {
                        return f64::NAN;
                    }
                    let r = i + 1 - w..i + 1;
                    let window = WindowBars {
                        open: &bars.open[r.clone()],
                        high: &bars.high[r.clone()],
                        low: &bars.low[r.clone()],
                        close: &bars.close[r.clone()],
                        volume: &bars.volume[r],
                    };
                    script.indicator(Sandbox::shared(), &window).unwrap_or(f64::NAN)
                })
                .collect()
        }
        TKind::Lag(x, k) => {
            let v = eval_series(x, bars);
            let k = *k as usize;
            (0..n).map(|i| if i >= k { v[i - k] } else { f64::NAN }).collect()
        }
        TKind::Indicator { func, args, consts, output } => {
            let inputs: Vec<Vec<f64>> = args.iter().map(|a| eval_series(a, bars)).collect();
            let p = |i: usize| consts.get(i).copied().unwrap_or(f64::NAN);
            match func {
                Func::CrossesAbove | Func::CrossesBelow => {
                    let (a, b) = (&inputs[0], &inputs[1]);
                    (0..n)
                        .map(|i| {
                            if i == 0 || [a[i], b[i], a[i - 1], b[i - 1]].iter().any(|x| x.is_nan()) {
                                return f64::NAN;
                            }
                            let hit = if *func == Func::CrossesAbove {
                                a[i] > b[i] && a[i - 1] <= b[i - 1]
                            } else {
                                a[i] < b[i] && a[i - 1] >= b[i - 1]
                            };
                            if hit { 1.0 } else { 0.0 }
                        })
                        .collect()
                }
                Func::Atr => atr(bars, p(0) as usize),
                _ => on_defined(&inputs[0], |x| match func {
                    Func::Sma => sma(x, p(0) as usize),
                    Func::Ema => ema(x, p(0) as usize),
                    Func::Rsi => rsi(x, p(0) as usize),
                    Func::Macd => macd(x, p(0) as usize, p(1) as usize, p(2) as usize, *output),
                    Func::BBands => bbands(x, p(0) as usize, p(1), *output),
                    Func::StdDev => stddev(x, p(0) as usize).into_iter().map(|s| s * p(1)).collect(),
                    Func::Highest => window(x, p(0) as usize, |w| w.iter().cloned().fold(f64::MIN, f64::max)),
                    Func::Lowest => window(x, p(0) as usize, |w| w.iter().cloned().fold(f64::MAX, f64::min)),
                    Func::Roc => roc(x, p(0) as usize),
                    _ => vec![f64::NAN; x.len()],
                }),
            }
        }
    }
}

/// Applies an indicator to the defined values of `v` only, and spreads the results back
/// (undefined where the input is undefined).
fn on_defined(v: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let idx: Vec<usize> = (0..v.len()).filter(|&i| !v[i].is_nan()).collect();
    let compact: Vec<f64> = idx.iter().map(|&i| v[i]).collect();
    let out = f(&compact);
    let mut full = vec![f64::NAN; v.len()];
    for (k, &i) in idx.iter().enumerate() {
        full[i] = out[k];
    }
    full
}

fn window(x: &[f64], n: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..x.len()).map(|i| if i + 1 >= n { f(&x[i + 1 - n..=i]) } else { f64::NAN }).collect()
}

fn sma(x: &[f64], n: usize) -> Vec<f64> {
    window(x, n, |w| w.iter().sum::<f64>() / n as f64)
}

fn ema(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if x.len() < n {
        return out;
    }
    let k = 2.0 / (n as f64 + 1.0);
    let mut e = x[..n].iter().sum::<f64>() / n as f64;
    out[n - 1] = e;
    for i in n..x.len() {
        e += (x[i] - e) * k;
        out[i] = e;
    }
    out
}

fn rsi(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if x.len() <= n {
        return out;
    }
    let change = |i: usize| x[i] - x[i - 1];
    let mut gain = (1..=n).map(|i| change(i).max(0.0)).sum::<f64>() / n as f64;
    let mut loss = (1..=n).map(|i| (-change(i)).max(0.0)).sum::<f64>() / n as f64;
    // TA-Lib's order of operations: 100 * (gain / (gain + loss)).
    let value = |g: f64, l: f64| if (g + l).abs() < 1e-8 { 0.0 } else { 100.0 * (g / (g + l)) };
    out[n] = value(gain, loss);
    for (i, o) in out.iter_mut().enumerate().skip(n + 1) {
        gain = (gain * (n as f64 - 1.0) + change(i).max(0.0)) / n as f64;
        loss = (loss * (n as f64 - 1.0) + (-change(i)).max(0.0)) / n as f64;
        *o = value(gain, loss);
    }
    out
}

fn macd(x: &[f64], fast: usize, slow: usize, signal: usize, output: u8) -> Vec<f64> {
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    let mut out = vec![f64::NAN; x.len()];
    if x.len() < slow {
        return out;
    }
    // Both EMAs start on bar slow-1: the fast one skips the first slow-fast values.
    let skip = slow - fast;
    let f = ema(&x[skip..], fast);
    let s = ema(x, slow);
    let line: Vec<f64> = (slow - 1..x.len()).map(|i| f[i - skip] - s[i]).collect();
    let sig = ema(&line, signal);
    for (j, i) in (slow - 1..x.len()).enumerate() {
        if sig[j].is_nan() {
            continue;
        }
        out[i] = match output {
            0 => line[j],
            1 => sig[j],
            _ => line[j] - sig[j],
        };
    }
    out
}

fn stddev(x: &[f64], n: usize) -> Vec<f64> {
    window(x, n, |w| {
        let m = w.iter().sum::<f64>() / n as f64;
        let var = w.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64;
        if var < 1e-8 { 0.0 } else { var.sqrt() }
    })
}

fn bbands(x: &[f64], n: usize, k: f64, output: u8) -> Vec<f64> {
    let mid = sma(x, n);
    let sd = stddev(x, n);
    mid.iter()
        .zip(&sd)
        .map(|(m, s)| match output {
            0 => m + k * s,
            1 => *m,
            _ => m - k * s,
        })
        .collect()
}

fn roc(x: &[f64], n: usize) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            if i < n {
                f64::NAN
            } else if x[i - n] != 0.0 {
                (x[i] / x[i - n] - 1.0) * 100.0
            } else {
                0.0
            }
        })
        .collect()
}

fn atr(b: &Bars<'_>, n: usize) -> Vec<f64> {
    let len = b.len();
    let mut out = vec![f64::NAN; len];
    if len <= n {
        return out;
    }
    let tr = |i: usize| {
        let pc = b.close[i - 1];
        (b.high[i] - b.low[i]).max((pc - b.high[i]).abs()).max((pc - b.low[i]).abs())
    };
    let mut a = (1..=n).map(tr).sum::<f64>() / n as f64;
    out[n] = a;
    for (i, o) in out.iter_mut().enumerate().skip(n + 1) {
        a = (a * (n as f64 - 1.0) + tr(i)) / n as f64;
        *o = a;
    }
    out
}
