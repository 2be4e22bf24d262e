//! Several timeframes in one strategy (`x@1d`): higher-timeframe values equal those computed
//! from bars aggregated by hand, become visible only once their bar has closed, and never change
//! when a later bar changes (no lookahead).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::America::New_York;
use proptest::prelude::*;
use tradedsl::config::expr_source::ExprSource;
use tradedsl::config::timeframe::{Aggregation, Timeframe};
use tradedsl::dsl::catalog::Context;
use tradedsl::dsl::check::Checker;
use tradedsl::dsl::parser::parse_text;
use tradedsl::dsl::program::GraphSpec;
use tradedsl::engine::graph::Graph;
use tradedsl::engine::market::{Bar, BarSeries};
use tradedsl::engine::resample::BaseBars;
use tradedsl::engine::session::{DayKind, Market, SessionClock};

use crate::common::{data, dsl};

/// Values of `exprs` (strategy timeframe `base`) on every bar, one row per bar: streaming bar
/// by bar, and checked equal to a replay's blocks of uneven sizes (which see later bars of the
/// series before they are due: they must not use them).
fn graph_values(exprs: &[&str], base: &str, bars: &[Bar]) -> Vec<Vec<f64>> {
    let timeframe: Timeframe = base.parse().unwrap();
    let mut spec = GraphSpec::new();
    let ids: Vec<u32> = exprs
        .iter()
        .map(|text| {
            let src = ExprSource::standalone("r", text);
            let mut c = Checker::new(&src, Context::Eval, &[]).with_timeframe(timeframe, Aggregation::Session);
            let t = c.check(&parse_text(text).unwrap()).unwrap_or_else(|| panic!("{text}: {:?}", c.diags));
            spec.lower(&t)
        })
        .collect();
    let base = BaseBars { market: Market::UsEquities, bar_secs: timeframe.seconds() };
    let mut g = Graph::new(&spec, base);
    let streamed: Vec<Vec<f64>> = bars
        .iter()
        .map(|b| {
            g.update(b);
            ids.iter().map(|&id| g.value(id)).collect()
        })
        .collect();
    let mut series = BarSeries::new("SPY");
    bars.iter().for_each(|b| series.push(*b));
    let mut blocked = Graph::new(&spec, base);
    let (mut start, mut k, mut out) = (0, 0, Vec::new());
    while start < bars.len() {
        let len = [1, 7, 3, 64][k % 4].min(bars.len() - start);
        blocked.update_block(&series, start, len, &mut out);
        for i in 0..len {
            for (n, &id) in ids.iter().enumerate() {
                let v = out[id as usize * len + i];
                assert_eq!(v.to_bits(), streamed[start + i][n].to_bits(), "{}: bar {}", exprs[n], start + i);
            }
        }
        start += len;
        k += 1;
    }
    streamed
}

/// The SPY minutes of January 2011 (`YYYYMMDD HHMMSS;o;h;l;c;v`, UTC, no header), read by hand.
fn spy_minutes() -> Vec<Bar> {
    let text = std::fs::read_to_string(data("nt-spy-minute-2011.csv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.trim().split(';').collect();
            let ts = chrono::NaiveDateTime::parse_from_str(f[0], "%Y%m%d %H%M%S").unwrap().and_utc().timestamp();
            let n = |i: usize| f[i].parse::<f64>().unwrap();
            Bar { ts, open: n(1), high: n(2), low: n(3), close: n(4), volume: n(5) }
        })
        .collect()
}

/// A daily bar built by hand from minutes, with the moment it closed (UTC seconds).
#[derive(Debug, Clone, Copy)]
struct Day {
    close_at: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// The regular sessions of the minutes, aggregated by hand: every minute that lies inside its
/// New York date's session (as the calendar gives it) counts, in order.
fn daily_by_hand(bars: &[Bar]) -> Vec<Day> {
    let calendar = SessionClock::new(Market::UsEquities);
    let mut days: Vec<(NaiveDate, Day)> = Vec::new();
    for b in bars {
        let date = DateTime::<Utc>::from_timestamp(b.ts, 0).unwrap().with_timezone(&New_York).date_naive();
        let DayKind::Open(s) = calendar.day(date) else { continue };
        if b.ts < s.open || b.ts + 60 > s.close {
            continue;
        }
        match days.last_mut() {
            Some((d, day)) if *d == date => {
                day.high = day.high.max(b.high);
                day.low = day.low.min(b.low);
                day.close = b.close;
                day.volume += b.volume;
            }
            _ => days.push((
                date,
                Day { close_at: s.close, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume },
            )),
        }
    }
    days.into_iter().map(|(_, d)| d).collect()
}

/// The simple average of the last `n` values, `NaN` with fewer.
fn sma(values: &[f64], n: usize) -> f64 {
    if values.len() < n { f64::NAN } else { values[values.len() - n..].iter().sum::<f64>() / n as f64 }
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// What the higher-timeframe expressions must show on `bar`: the days closed by its end.
fn expected_daily(days: &[Day], bar: &Bar, period: usize) -> [f64; 4] {
    let closed: Vec<&Day> = days.iter().filter(|d| d.close_at <= bar.ts + 60).collect();
    let closes: Vec<f64> = closed.iter().map(|d| d.close).collect();
    let last = closed.last();
    [
        sma(&closes, period),
        last.map_or(f64::NAN, |d| d.close),
        last.map_or(f64::NAN, |d| d.high - d.low),
        last.map_or(f64::NAN, |d| d.volume + d.open * 0.0),
    ]
}

const DAILY_EXPRS: [&str; 4] = ["sma(close@1d, PERIOD)", "close@1d", "(high - low)@1d", "volume@1d"];

/// Real SPY minutes (January 2011, extended hours, gaps): through `dsl eval`, a daily SMA on
/// minute bars equals, bar for bar, the SMA of the daily bars aggregated by hand, and a daily
/// value appears on the minute whose end is the session's close.
#[test]
fn daily_sma_on_real_minutes_equals_the_sma_of_hand_aggregated_days() {
    let file = data("nt-spy-minute-2011.csv");
    let out = dsl()
        .args(["eval", "sma(close@1d, 5)", "sma(close, 5)@1d", "close@1d", "(high - low)@1d", "volume@1d"])
        .arg("--data")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let bars = spy_minutes();
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert_eq!(rows.len(), bars.len());
    let days = daily_by_hand(&bars);
    assert_eq!(days.len(), 20, "the sessions of January 2011 in the file");
    let num = |s: &str| if s.is_empty() { f64::NAN } else { s.parse::<f64>().unwrap() };
    let mut defined = 0;
    for (row, bar) in rows.iter().zip(&bars) {
        let want = expected_daily(&days, bar, 5);
        let got: Vec<f64> = row[1..].iter().map(|s| num(s)).collect();
        assert!(same(got[0], want[0]) && same(got[1], want[0]), "{row:?}: SMA {}", want[0]);
        assert!(same(got[2], want[1]) && same(got[3], want[2]) && same(got[4], want[3]), "{row:?}: {want:?}");
        defined += usize::from(!got[0].is_nan());
    }
    assert!(defined > 10_000, "the SMA is defined on most minutes ({defined})");
    // The first daily close shows on 2011-01-03's 15:59 New York minute (20:59 UTC), not before.
    let at = |t: &str| rows.iter().position(|r| r[0] == t).unwrap();
    assert_eq!(rows[at("2011-01-03T20:58:00Z")][3], "");
    assert_eq!(rows[at("2011-01-03T20:59:00Z")][3], "127.07");
}

/// Sessions from the calendar (November 2011: Thanksgiving closed, the day after closing at
/// 13:00) with a few random minutes each, some before the open and after the close, the last
/// minute of the session sometimes missing.
fn minutes(seed: u64, sessions: usize) -> Vec<Bar> {
    let calendar = SessionClock::new(Market::UsEquities);
    let mut rng = seed | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut price = 100.0;
    let mut bars = Vec::new();
    let mut date = NaiveDate::from_ymd_opt(2011, 9, 1).unwrap();
    let mut seen = 0;
    while seen < sessions {
        date = date.succ_opt().unwrap();
        let DayKind::Open(s) = calendar.day(date) else { continue };
        seen += 1;
        let mut times: Vec<i64> = Vec::new();
        if next() % 3 == 0 {
            times.push(s.open - 60 * (1 + (next() % 120) as i64));
        }
        let minutes = (s.close - s.open) / 60;
        for _ in 0..(1 + next() % 12) {
            times.push(s.open + 60 * (next() % minutes as u64) as i64);
        }
        if next() % 2 == 0 {
            times.push(s.close - 60);
        }
        if next() % 3 == 0 {
            times.push(s.close + 60 * (next() % 240) as i64);
        }
        times.sort_unstable();
        times.dedup();
        for ts in times {
            let open = price;
            price *= 1.0 + ((next() % 2001) as f64 - 1000.0) / 50_000.0;
            let (hi, lo) = (open.max(price) * 1.001, open.min(price) * 0.999);
            bars.push(Bar { ts, open, high: hi, low: lo, close: price, volume: (next() % 1000) as f64 });
        }
    }
    bars
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A daily SMA(50) on one-minute bars equals, bar for bar, the SMA(50) of the daily bars
    /// aggregated from the same minutes by hand.
    #[test]
    fn daily_sma_50_on_minutes_equals_the_sma_of_the_daily_aggregation(seed in any::<u64>()) {
        let bars = minutes(seed, 60);
        let exprs: Vec<String> = DAILY_EXPRS.iter().map(|e| e.replace("PERIOD", "50")).collect();
        let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let got = graph_values(&exprs, "1m", &bars);
        let days = daily_by_hand(&bars);
        for (i, bar) in bars.iter().enumerate() {
            let want = expected_daily(&days, bar, 50);
            for k in 0..4 {
                prop_assert!(same(got[i][k], want[k]), "bar {i} ({}) {}: {} vs {}", bar.ts, exprs[k], got[i][k], want[k]);
            }
        }
        prop_assert!(got.last().is_some_and(|r| !r[0].is_nan()), "60 sessions define the SMA(50)");
    }

    /// Changing the minutes from bar `j` on (prices, and which minutes exist) never changes a
    /// value, nor so a decision, on a bar before `j`.
    #[test]
    fn a_later_minute_never_changes_an_earlier_value(seed in any::<u64>(), other in any::<u64>(), cut in 0.0..1.0f64) {
        let bars = minutes(seed, 25);
        let j = ((bars.len() as f64 * cut) as usize).min(bars.len() - 1);
        let mut changed = bars[..j].to_vec();
        // Different later minutes, after the cut.
        let tail = minutes(other, 30);
        changed.extend(tail.into_iter().filter(|b| b.ts >= bars[j].ts).map(|b| Bar { close: b.close * 1.5, high: b.high * 1.5, ..b }));
        let exprs = [
            "close > sma(close@1d, 3)",
            "sma(close, 3)@1d",
            "atr(2)@1d",
            "rsi(close, 2)@1h",
            "close@1w",
            "crosses_above(close@1h, sma(close, 2)@1h)",
            "close@1d[1]",
        ];
        let a = graph_values(&exprs, "1m", &bars);
        let b = graph_values(&exprs, "1m", &changed);
        for i in 0..j {
            for k in 0..exprs.len() {
                prop_assert!(a[i][k].to_bits() == b[i][k].to_bits(), "bar {i} < {j}, {}: {} vs {}", exprs[k], a[i][k], b[i][k]);
            }
        }
    }
}

/// The same values whether a replay evaluates the graph in blocks or bar by bar: a backtest
/// of a minute strategy with a daily filter enters only where the filter held on the entry's
/// signal bar, computed by hand from the daily aggregation.
#[test]
fn a_daily_filter_on_minute_entries_holds_on_every_signal_bar() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = "kind: strategy
name: minute_trend
universe: [SPY]
timeframe: 1m
entry: close > sma(close@1d, 3) and crosses_above(ema(close, 5), ema(close, 20)) and session.is_open
exit: crosses_below(ema(close, 5), ema(close, 20))
sizing: {percent_of_equity: 10%}
";
    let bot = format!("data:\n  csv:\n    SPY: {}\n", data("nt-spy-minute-2011.csv").display());
    let db = crate::common::backtest_in(dir.path(), strategy, &bot);
    let entries = crate::common::rows(&db, "SELECT created_ts FROM orders WHERE intent = 'entry' ORDER BY created_ts");
    assert!(entries.len() > 20, "{} entries", entries.len());
    let bars = spy_minutes();
    let days = daily_by_hand(&bars);
    for e in &entries {
        let ts: i64 = e[0].parse().unwrap();
        let bar = bars.iter().find(|b| b.ts == ts).unwrap();
        let filter = expected_daily(&days, bar, 3)[0];
        assert!(bar.close > filter, "entry at {ts}: close {} vs daily SMA(3) {filter}", bar.close);
    }
}

/// The shipped `mtf_sma` example on real AAPL and MSFT daily bars: every entry's signal bar has
/// the daily cross and a last closed week above its 10-week SMA, weeks aggregated by hand (ISO
/// weeks, closed on their last session by the exchange calendar); crosses in a weekly downtrend
/// never enter.
#[test]
fn the_weekly_filter_of_the_mtf_example_holds_on_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/strategies/mtf_sma.yaml"))
        .unwrap()
        .replace("universe: [AAPL, MSFT, NVDA, JPM, XOM]", "universe: [AAPL, MSFT]");
    let bot =
        format!("data:\n  csv:\n    AAPL: {root}/examples/data/AAPL.csv\n    MSFT: {root}/examples/data/MSFT.csv\n");
    let db = crate::common::backtest_in(dir.path(), &text, &bot);
    let calendar = SessionClock::new(Market::UsEquities);
    let mut refused = 0;
    for symbol in ["AAPL", "MSFT"] {
        let (_, rows) =
            crate::common::read_csv(&std::path::PathBuf::from(format!("{root}/examples/data/{symbol}.csv")));
        let days: Vec<(NaiveDate, f64)> = rows
            .iter()
            .map(|r| (NaiveDate::parse_from_str(&r[0], "%Y-%m-%d").unwrap(), r[4].parse().unwrap()))
            .collect();
        // Each ISO week's last close and the date of its last session.
        let mut weeks: Vec<(NaiveDate, f64)> = Vec::new();
        for (d, c) in &days {
            let monday = *d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday()));
            let last_session = (0..7)
                .rev()
                .map(|k| monday + chrono::Duration::days(k))
                .find(|x| matches!(calendar.day(*x), DayKind::Open(_)))
                .unwrap();
            match weeks.last_mut() {
                Some((end, close)) if *end == last_session => *close = *c,
                _ => weeks.push((last_session, *c)),
            }
        }
        let filter = |date: NaiveDate| {
            let closed: Vec<f64> = weeks.iter().filter(|(end, _)| *end <= date).map(|w| w.1).collect();
            closed.len() >= 10 && closed[closed.len() - 1] > sma(&closed, 10)
        };
        let closes: Vec<f64> = days.iter().map(|d| d.1).collect();
        let cross = |i: usize| {
            i >= 15 && {
                let (f, s) = (sma(&closes[..=i], 5), sma(&closes[..=i], 15));
                let (pf, ps) = (sma(&closes[..i], 5), sma(&closes[..i], 15));
                f > s && pf <= ps
            }
        };
        let entries: Vec<NaiveDate> = crate::common::rows(
            &db,
            &format!(
                "SELECT created_ts FROM orders WHERE intent = 'entry' AND symbol = '{symbol}' ORDER BY created_ts"
            ),
        )
        .iter()
        .map(|r| NaiveDate::parse_from_str(&crate::common::day(&r[0]), "%Y-%m-%d").unwrap())
        .collect();
        assert!(entries.len() >= 5, "{symbol}: {} entries", entries.len());
        for e in &entries {
            let i = days.iter().position(|d| d.0 == *e).unwrap();
            assert!(cross(i) && filter(*e), "{symbol} entered on {e} without the cross and the weekly trend");
        }
        for (i, (d, _)) in days.iter().enumerate() {
            if cross(i) && !filter(*d) {
                assert!(!entries.contains(d), "{symbol} entered on {d} in a weekly downtrend");
                refused += 1;
            }
        }
    }
    assert!(refused >= 5, "the weekly filter refused {refused} daily crosses");
}
