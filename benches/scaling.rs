//! Cost per symbol-bar as the universe grows: the 505 S&P 500 daily files of the shared
//! workspace (`kaggle-sandp500`, 2013-2018), then the same files copied ten times under new
//! names (5,050 symbols), through the engine in-process (no journal). Two workloads:
//!
//! - `reference`: the reference SMA(10/30) crossover (`strategies/sma_crossover.yaml`, all cash
//!   at each entry) trading every symbol;
//! - `example`: the example bot's three strategies and its two guardrail policies trading every
//!   symbol.
//!
//! Prints nanoseconds per symbol-bar (best of `TRADEDSL_BENCH_RUNS`, default 3) and the ratio
//! of 5,050 to 505 symbols; the target is a ratio of at most 1.3. `TRADEDSL_SHARED` points at
//! the shared workspace (default `../shared`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tradedsl::config::manifest::FillTiming;
use tradedsl::engine::backtest;
use tradedsl::engine::events::NullSink;
use tradedsl::engine::market::BarSeries;
use tradedsl::engine::pipeline::EngineSettings;
use tradedsl::runtime::data::csv_bars::{CsvOptions, load_csv};
use tradedsl::runtime::library::loader::load_bundle;

fn files(shared: &Path) -> Vec<PathBuf> {
    let dir = shared.join("data/kaggle-sandp500/individual_stocks_5yr");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set TRADEDSL_SHARED)", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    out.sort();
    out
}

/// A copy of the document at `src` trading `symbols` (its `universe:` line replaced).
fn with_universe(src: &Path, dir: &Path, symbols: &[String]) -> PathBuf {
    let text = std::fs::read_to_string(src).expect("read document");
    let universe = format!("universe: [{}]", symbols.join(", "));
    let text: Vec<String> =
        text.lines().map(|l| if l.starts_with("universe:") { universe.clone() } else { l.to_string() }).collect();
    let out = dir.join(src.file_name().expect("file name"));
    std::fs::write(&out, text.join("\n")).expect("write document");
    out
}

fn bundle(kind: &str, dir: &Path, symbols: &[String]) -> Arc<tradedsl::dsl::bundle::Bundle> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = match kind {
        "reference" => with_universe(&root.join("strategies/sma_crossover.yaml"), dir, symbols),
        _ => {
            let names = ["rsi_reversion", "macd_trend", "bollinger_reversion"];
            let strategies: Vec<String> = names
                .iter()
                .map(|n| {
                    let p = with_universe(&root.join(format!("strategies/{n}.yaml")), dir, symbols);
                    format!("  - {}", p.display())
                })
                .collect();
            let policies: Vec<String> = ["always_on_caps", "circuit_breakers"]
                .iter()
                .map(|n| format!("  - {}", root.join(format!("policies/{n}.yaml")).display()))
                .collect();
            let bot = format!(
                "kind: bot\nname: scaling\nstrategies:\n{}\npolicies:\n{}\nstarting_cash: 100000\n",
                strategies.join("\n"),
                policies.join("\n")
            );
            let p = dir.join("bot.yaml");
            std::fs::write(&p, bot).expect("write bot");
            p
        }
    };
    Arc::new(load_bundle(&path).unwrap_or_else(|d| panic!("{d:?}")).bundle)
}

fn ns_per_symbol_bar(kind: &str, series: &[BarSeries], runs: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let symbols: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
    let bundle = bundle(kind, dir.path(), &symbols);
    let settings = EngineSettings {
        bot: "bench".into(),
        run: 0,
        starting_cash: 100_000.0,
        costs: tradedsl::engine::costs::CostModel::default(),
        fill: FillTiming::NextOpen,
    };
    let bars: usize = series.iter().map(BarSeries::len).sum();
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        let out = backtest::run(bundle.clone(), series, settings.clone(), &mut NullSink);
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(out.metrics.trade_count);
        best = best.min(secs);
    }
    best * 1e9 / bars as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let shared = std::env::var_os("TRADEDSL_SHARED").map_or_else(|| PathBuf::from("../shared"), PathBuf::from);
    let runs: usize = std::env::var("TRADEDSL_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut base = Vec::new();
    for f in files(&shared) {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("").trim_end_matches("_data.csv").to_string();
        let opts = CsvOptions { symbol: Some(name.clone()), ..Default::default() };
        let mut s = load_csv(&f, &opts).unwrap_or_else(|d| panic!("{}", d.message)).series;
        let mut s = s.remove(0);
        s.symbol = name.replace(['.', '-'], "_");
        base.push(s);
    }
    let mut wide = Vec::with_capacity(base.len() * 10);
    for k in 0..10 {
        for s in &base {
            let mut c = s.clone();
            c.symbol = format!("{}_{k}", s.symbol);
            wide.push(c);
        }
    }
    for kind in ["reference", "example"] {
        let small = ns_per_symbol_bar(kind, &base, runs);
        let large = ns_per_symbol_bar(kind, &wide, runs);
        println!(
            "{kind:<10} {:>5} symbols: {small:>8.1} ns/symbol-bar   {:>5} symbols: {large:>8.1} ns/symbol-bar   ratio {:.2}",
            base.len(),
            wide.len(),
            large / small
        );
    }
}
