//! `dsl eval` of every indicator on GOOG equals TA-Lib 0.8.2 (`goog_indicators.csv`) to 1e-9
//! relative on every row where TA-Lib has a value, and is empty where it has none.

use crate::common::{data, dsl, read_csv, rel};

/// Reference column and the expression that must reproduce it.
const COLUMNS: [(&str, &str); 17] = [
    ("sma_10", "sma(close, 10)"),
    ("sma_30", "sma(close, 30)"),
    ("ema_12", "ema(close, 12)"),
    ("ema_26", "ema(close, 26)"),
    ("rsi_14", "rsi(close, 14)"),
    ("macd", "macd(close, 12, 26, 9).line"),
    ("macd_signal", "macd(close, 12, 26, 9).signal"),
    ("macd_hist", "macd(close, 12, 26, 9).histogram"),
    ("atr_14", "atr(14)"),
    ("bb_upper", "bbands(close, 20, 2).upper"),
    ("bb_middle", "bbands(close, 20, 2).middle"),
    ("bb_lower", "bbands(close, 20, 2).lower"),
    ("stddev_20", "stddev(close, 20)"),
    ("max_high_20", "highest(high, 20)"),
    ("min_low_20", "lowest(low, 20)"),
    ("max_close_20", "highest(close, 20)"),
    ("min_close_20", "lowest(close, 20)"),
];

#[test]
fn every_indicator_matches_talib_on_goog() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval.csv");
    let mut cmd = dsl();
    cmd.arg("eval");
    for (_, e) in COLUMNS {
        cmd.arg(e);
    }
    cmd.arg("--data").arg(data("GOOG.csv")).arg("--output").arg(&out).assert().success();

    let (got_header, got) = read_csv(&out);
    let (ref_header, want) = read_csv(&data("goog_indicators.csv"));
    assert_eq!(got.len(), want.len(), "one row per bar");
    assert_eq!(got_header[0], "time");
    for (i, (col, expr)) in COLUMNS.iter().enumerate() {
        assert_eq!(got_header[i + 1], *expr);
        let r = ref_header.iter().position(|h| h == col).unwrap();
        let mut defined = 0;
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(&g[0][..10], w[0], "same bars");
            let want_v: f64 = w[r].parse().unwrap();
            if want_v.is_nan() {
                assert_eq!(g[i + 1], "", "{expr} on {}: TA-Lib has no value", w[0]);
            } else {
                let got_v: f64 = g[i + 1].parse().unwrap_or_else(|_| panic!("{expr} on {}: undefined", w[0]));
                assert!(rel(got_v, want_v) < 1e-9, "{expr} on {}: {got_v} vs {want_v}", w[0]);
                defined += 1;
            }
        }
        assert!(defined > 2000, "{expr}: {defined} defined rows");
    }
}

#[test]
fn eval_prints_bools_and_leaves_undefined_empty() {
    let assert = dsl()
        .args(["eval", "crosses_above(sma(close, 10), sma(close, 30))", "close[1]", "roc(close, 1)", "--data"])
        .arg(data("GOOG.csv"))
        .args(["--to", "2004-10-05"])
        .assert()
        .success();
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "time,\"crosses_above(sma(close, 10), sma(close, 30))\",close[1],\"roc(close, 1)\"");
    assert_eq!(lines[1], "2004-08-19T00:00:00Z,,,");
    // Second bar: previous close 100.34; ROC in percent points like TA-Lib.
    let second: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(second[2], "100.34");
    assert!((second[3].parse::<f64>().unwrap() - (108.31 / 100.34 - 1.0) * 100.0).abs() < 1e-9);
    // From bar 30 on the crossing is defined.
    assert!(lines.last().unwrap().contains("false") || lines.last().unwrap().contains("true"));
}

#[test]
fn eval_rejects_bad_expressions_with_a_location() {
    let assert = dsl().args(["eval", "sma(close)", "--data"]).arg(data("GOOG.csv")).assert().code(1);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(err.contains("<expr 1>:1:1"), "{err}");
    assert!(err.contains("`sma` takes 2 arguments, found 1"), "{err}");
    assert!(err.contains("usage: `sma(src, period)`"), "{err}");
}

#[test]
fn explain_shows_why_a_crossing_fired_with_previous_bar_values() {
    let assert = dsl()
        .args(["eval", "--strategy", "strategies/sma_crossover.yaml", "--rule", "entry", "--explain"])
        .args(["--at", "2004-12-20", "--data"])
        .arg(data("GOOG.csv"))
        .assert()
        .success();
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "GOOG 2004-12-20T00:00:00Z", "{text}");
    assert_eq!(lines[1], "crosses_above(sma(close, fast), sma(close, slow)) = true", "{text}");
    // Both averages show today's and yesterday's values: fast was below slow, now above.
    let value = |line: &str, marker: &str| -> f64 {
        let rest = &line[line.find(marker).unwrap() + marker.len()..];
        rest.split([' ', ')']).next().unwrap().parse().unwrap()
    };
    let fast = lines.iter().find(|l| l.contains("sma(close, fast) =")).unwrap();
    let slow = lines.iter().find(|l| l.contains("sma(close, slow) =")).unwrap();
    assert!(value(fast, "= ") > value(slow, "= "), "{text}");
    assert!(value(fast, "previous bar: ") <= value(slow, "previous bar: "), "{text}");
    // The values are the engine's: the same as `dsl eval` prints for that bar.
    let csv = dsl()
        .args(["eval", "sma(close, 10)", "--data"])
        .arg(data("GOOG.csv"))
        .args(["--from", "2004-12-20", "--to", "2004-12-20"])
        .assert()
        .success();
    let csv = String::from_utf8(csv.get_output().stdout.clone()).unwrap();
    let sma10: f64 = csv.lines().nth(1).unwrap().split(',').nth(1).unwrap().parse().unwrap();
    assert!((value(fast, "= ") - sma10).abs() < 1e-9, "{text}\n{csv}");
}

#[test]
fn explain_reports_the_bar_it_used_and_undefined_values() {
    let assert = dsl()
        .args(["eval", "rsi(close, 14) < 30 and close > close[1]", "--explain", "--at", "2004-08-25", "--data"])
        .arg(data("GOOG.csv"))
        .assert()
        .success();
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    // Fifth bar: RSI(14) is not yet defined, so the `and` is undefined (the rule does not fire).
    assert!(text.contains("rsi(close, 14) = undefined   (warming up"), "{text}");
    assert!(text.contains("close[1] = "), "{text}");
    // Each undefined value says why where it starts; its parents just inherit it.
    assert!(text.contains("rsi(close, 14) < 30 = undefined\n"), "{text}");
    let assert = dsl()
        .args(["eval", "close[9] > 0 or close / (volume - volume) > 1", "--explain", "--at", "2004-08-25", "--data"])
        .arg(data("GOOG.csv"))
        .assert()
        .success();
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(text.contains("close[9] = undefined   (not that many bars of history yet)"), "{text}");
    assert!(text.contains("close / (volume - volume) = undefined   (division by zero)"), "{text}");
    // A weekend date uses the last bar before it and says so.
    let assert = dsl()
        .args(["eval", "close", "--explain", "--at", "2004-08-22", "--data"])
        .arg(data("GOOG.csv"))
        .assert()
        .success();
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(err.contains("showing the last bar before it, 2004-08-20T00:00:00Z"), "{err}");
    // Before the first bar there is nothing to explain.
    dsl().args(["eval", "close", "--explain", "--at", "2001-01-01", "--data"]).arg(data("GOOG.csv")).assert().code(1);
    // --explain needs --at.
    dsl().args(["eval", "close", "--explain", "--data"]).arg(data("GOOG.csv")).assert().code(2);
}

/// Seed 004's regime functions and the realized volatility, against their formulas written out
/// here over GOOG's closes and TA-Lib's ATR(14) and SMA(20) (the Bollinger middle band).
#[test]
fn regime_functions_follow_seed_004_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval.csv");
    let exprs = ["trend_score()", "trending()", "ranging()", "volatility()", "change(close, 5)"];
    dsl().arg("eval").args(exprs).arg("--data").arg(data("GOOG.csv")).arg("--output").arg(&out).assert().success();
    let (_, got) = read_csv(&out);
    let (ref_header, want) = read_csv(&data("goog_indicators.csv"));
    let col = |name: &str| ref_header.iter().position(|h| h == name).unwrap();
    let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    let (bar_header, bars) = read_csv(&data("GOOG.csv"));
    let c = bar_header.iter().position(|h| h.eq_ignore_ascii_case("close")).unwrap();
    let close: Vec<f64> = bars.iter().map(|r| num(&r[c])).collect();
    assert_eq!(close.len(), want.len());
    let atr: Vec<f64> = want.iter().map(|r| num(&r[col("atr_14")])).collect();
    let sma20: Vec<f64> = want.iter().map(|r| num(&r[col("bb_middle")])).collect();
    let (mut trending, mut ranging, mut checked) = (0, 0, 0);
    for i in 0..close.len() {
        let g: Vec<f64> = got[i][1..].iter().map(|s| num(s)).collect();
        let as_bool = |s: &str| match s {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        if i >= 49 && atr[i].is_finite() {
            let sma50 = close[i - 49..=i].iter().sum::<f64>() / 50.0;
            let score = (close[i] - sma50) / atr[i];
            assert!(rel(g[0], score) < 1e-9, "trend_score on row {i}: {} vs {score}", g[0]);
            let is_trending = score.abs() > 1.5;
            assert_eq!(as_bool(&got[i][2]), Some(is_trending), "trending on row {i}");
            trending += usize::from(is_trending);
            checked += 1;
        } else {
            assert_eq!(got[i][1], "", "trend_score is undefined during warm-up (row {i})");
        }
        if sma20[i].is_finite() && atr[i].is_finite() {
            let is_ranging = (close[i] - sma20[i]).abs() <= 2.0 * atr[i];
            assert_eq!(as_bool(&got[i][3]), Some(is_ranging), "ranging on row {i}");
            ranging += usize::from(is_ranging);
        }
        if i >= 20 {
            let r: Vec<f64> = (i - 19..=i).map(|k| close[k] / close[k - 1] - 1.0).collect();
            let mean = r.iter().sum::<f64>() / 20.0;
            let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0).sqrt();
            assert!(rel(g[3], sd) < 1e-6, "volatility on row {i}: {} vs {sd}", g[3]);
        }
        if i >= 5 {
            assert!(rel(g[4], close[i] / close[i - 5] - 1.0) < 1e-12, "change on row {i}");
        }
    }
    assert!(
        checked > 2000 && trending > 100 && ranging > 1000,
        "{checked} rows, {trending} trending, {ranging} ranging"
    );
}
