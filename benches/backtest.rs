//! In-process backtest speed: the reference SMA(10/30) crossover on the 1M-bar series built by
//! `../shared/reference/make_big.py` (see `scripts/bench.sh`, which creates it and also times
//! the whole `dsl backtest` process).
//!
//! `TRADEDSL_BENCH_CSV` names the CSV (default `target/bench/eurusd_big_1000000.csv`).

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tradedsl::config::manifest::FillTiming;
use tradedsl::engine::backtest;
use tradedsl::engine::events::NullSink;
use tradedsl::engine::pipeline::EngineSettings;
use tradedsl::runtime::data::csv_bars::{CsvOptions, load_csv};
use tradedsl::runtime::library::loader::load_bundle;

const STRATEGY: &str = "kind: strategy
name: sma_crossover
universe: [EURUSD]
timeframe: 1m
params: {fast: 10, slow: 30}
entry: crosses_above(sma(close, fast), sma(close, slow))
exit: crosses_below(sma(close, fast), sma(close, slow))
sizing: all_cash
";

fn bench(c: &mut Criterion) {
    let csv = std::env::var_os("TRADEDSL_BENCH_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench/eurusd_big_1000000.csv"));
    assert!(csv.exists(), "{} is missing: run scripts/bench.sh (it builds the series with make_big.py)", csv.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let strategy = dir.path().join("sma.yaml");
    std::fs::write(&strategy, STRATEGY).expect("write strategy");
    let loaded = load_bundle(&strategy).unwrap_or_else(|d| panic!("{d:?}"));
    let bundle = Arc::new(loaded.bundle);
    let mut series = load_csv(&csv, &CsvOptions { symbol: Some("EURUSD".into()), ..Default::default() })
        .unwrap_or_else(|d| panic!("{}", d.message))
        .series;
    series[0].symbol = "EURUSD".into();
    let bars = series[0].len() as u64;
    let settings = EngineSettings {
        bot: "bench".into(),
        run: 0,
        starting_cash: 100_000.0,
        costs: tradedsl::engine::costs::CostModel::default(),
        fill: FillTiming::NextOpen,
    };
    let check = backtest::run(bundle.clone(), &series, settings.clone(), &mut NullSink);
    assert_eq!(check.metrics.trade_count, 18_003, "the reference makes 18003 round trips on 1M bars");

    let mut g = c.benchmark_group("reference_sma_crossover");
    g.throughput(Throughput::Elements(bars));
    g.sample_size(20);
    g.bench_function("1M_bars_in_process", |b| {
        b.iter(|| backtest::run(bundle.clone(), &series, settings.clone(), &mut NullSink))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
