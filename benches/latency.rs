//! Event-to-order latency of the running bot's engine: seed 004's universe of 31 symbols on
//! 1-minute bars, the shipped strategies (RSI reversion, MACD trend, Bollinger reversion) on
//! every symbol and the shipped guardrails (always-on caps, circuit breakers).
//!
//! Data: real SPY 1-minute bars of March 2011 (`pyalgotrade/testcases/data/nt-spy-minute-2011-03.csv`
//! in the shared data; 17,577 bars), or without the shared workspace the 1-minute S&P 500 sample
//! in `tests/data/SP500_NOV2019_IDay.csv`. The 31 symbols are that series shifted by k minutes
//! and scaled by (1 + k/10), so their signals fall on different bars.
//!
//! Each bar goes through `Engine::on_bar` (the streaming path `dsl run` uses), then the account
//! is marked and checked as the run loop does after each timestamp. Measured with a monotonic
//! clock per bar: all bars, and the bars on which an order was created (event to order).
//! Target (issue 5): p99 under 1 ms. Run: `cargo bench --bench latency`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use tradedsl::engine::costs::CostModel;
use tradedsl::engine::events::{EventSink, OrderStatus};
use tradedsl::engine::market::Bar;
use tradedsl::engine::orders::Order;
use tradedsl::engine::pipeline::{Engine, EngineSettings};
use tradedsl::runtime::library::loader::load_bundle;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SYMBOLS: usize = 31;

#[derive(Default)]
struct Orders(u64);

impl EventSink for Orders {
    fn order(&mut self, _o: &Order, _s: &str, _y: &str, status: OrderStatus, _r: &str) {
        if status == OrderStatus::Submitted {
            self.0 += 1;
        }
    }
}

/// `(ts, open, high, low, close, volume)` rows of the 1-minute file.
fn minute_bars() -> Vec<Bar> {
    let shared = format!("{ROOT}/../shared/data/pyalgotrade/testcases/data/nt-spy-minute-2011-03.csv");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        return text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.trim().split(';').collect();
                let t = chrono::NaiveDateTime::parse_from_str(f.first()?, "%Y%m%d %H%M%S").ok()?.and_utc().timestamp();
                let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
                Some(Bar { ts: t, open: n(1)?, high: n(2)?, low: n(3)?, close: n(4)?, volume: n(5)? })
            })
            .collect();
    }
    let text = std::fs::read_to_string(format!("{ROOT}/tests/data/SP500_NOV2019_IDay.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    rdr.records()
        .filter_map(|r| {
            let r = r.ok()?;
            let t = chrono::NaiveDateTime::parse_from_str(&r[0], "%Y-%m-%d %H:%M:%S").ok()?.and_utc().timestamp();
            let n = |i: usize| r[i].parse::<f64>().ok();
            Some(Bar { ts: t, open: n(1)?, high: n(2)?, low: n(3)?, close: n(4)?, volume: n(5).unwrap_or(0.0) })
        })
        .collect()
}

fn main() {
    let bars = minute_bars();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..SYMBOLS).map(|k| format!("S{k:02}")).collect();
    let mut csv = String::new();
    for n in &names {
        let path = dir.path().join(format!("{n}.csv"));
        std::fs::write(&path, "date,open,high,low,close,volume\n2011-01-03,1,1,1,1,1\n2011-01-04,1,1,1,1,1\n").unwrap();
        csv.push_str(&format!("    {n}: {}\n", path.display()));
    }
    let universe = names.join(", ");
    let manifest = format!(
        "kind: bot\nname: latency\nstrategies:\n\
         \x20 - {{path: {ROOT}/strategies/rsi_reversion.yaml, universe: [{universe}]}}\n\
         \x20 - {{path: {ROOT}/strategies/macd_trend.yaml, universe: [{universe}]}}\n\
         \x20 - {{path: {ROOT}/strategies/bollinger_reversion.yaml, universe: [{universe}]}}\n\
         policies:\n  - {ROOT}/policies/always_on_caps.yaml\n  - {ROOT}/policies/circuit_breakers.yaml\n\
         data:\n  csv:\n{csv}starting_cash: 1000000\n"
    );
    let path = dir.path().join("bot.yaml");
    std::fs::File::create(&path).unwrap().write_all(manifest.as_bytes()).unwrap();
    let loaded = load_bundle(&path).unwrap_or_else(|d| panic!("{d:?}"));
    let bundle = Arc::new(loaded.bundle);
    let symbols = bundle.symbols();
    let settings = EngineSettings {
        bot: "latency".into(),
        run: 0,
        starting_cash: 1_000_000.0,
        costs: CostModel::default(),
        fill: tradedsl::config::manifest::FillTiming::NextOpen,
    };
    let mut engine = Engine::new(bundle, &symbols, settings);
    let mut all = Histogram::<u64>::new(3).unwrap();
    let mut to_order = Histogram::<u64>::new(3).unwrap();
    let mut sink = Orders::default();
    let started = Instant::now();
    let n = bars.len();
    for t in SYMBOLS..n {
        for k in 0..SYMBOLS {
            let b = bars[t - k];
            let scale = 1.0 + k as f64 / 10.0;
            let bar = Bar {
                ts: bars[t].ts,
                open: b.open * scale,
                high: b.high * scale,
                low: b.low * scale,
                close: b.close * scale,
                volume: b.volume,
            };
            let before = sink.0;
            let t0 = Instant::now();
            engine.on_bar(k, &bar, &mut sink);
            let ns = t0.elapsed().as_nanos() as u64;
            all.record(ns.max(1)).unwrap();
            if sink.0 > before {
                to_order.record(ns.max(1)).unwrap();
            }
        }
        engine.mark();
        engine.check_account(bars[t].ts, &mut sink);
    }
    let elapsed = started.elapsed();
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} timestamps x {SYMBOLS} symbols = {} bars in {:.2?}; {} orders",
        n - SYMBOLS,
        all.len(),
        elapsed,
        sink.0
    );
    println!(
        "per bar:          p50 {:.1} us  p99 {:.1} us  max {:.1} us",
        us(&all, 0.5),
        us(&all, 0.99),
        all.max() as f64 / 1000.0
    );
    println!(
        "event to order:   p50 {:.1} us  p99 {:.1} us  max {:.1} us  ({} bars with an order)",
        us(&to_order, 0.5),
        us(&to_order, 0.99),
        to_order.max() as f64 / 1000.0,
        to_order.len()
    );
}
