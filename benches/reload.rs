//! Hot reload and validation speed on the shipped bundle (`examples/bot.yaml`: three
//! strategies, one policy, four phases). Targets: reload under 50 ms from write to swap
//! (debounce excluded); `dsl validate` of the shipped bundle under 50 ms, whole process.
//!
//! - `reload/rebuild_and_swap`: write a changed strategy file, rebuild the whole bundle,
//!   compare it with the current one and swap it in ([`Reloader::reload`]).
//! - `reload/watch_write_to_swap`: the same edit picked up by the directory watcher; the time
//!   from the write to the record of the swap, minus the debounce (what remains is the
//!   debouncer's tick, a quarter of the debounce at most, plus the rebuild).
//! - `reload/engine_swap_1259_bars`: what a running bot pauses for between two bars to take the
//!   new bundle ([`Engine::swap_bundle`]): five symbols, their 1,259 daily bars replayed
//!   into the new indicator graphs, positions and orders carried over.
//! - `validate/process/*`: the `dsl validate` binary, start to exit.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tradedsl::runtime::library::reload::{ManifestSource, Outcome, Reloader, watch};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Copies the shipped documents (and the example data, which validation reads) into `dir`.
fn copy_shipped(dir: &Path) {
    for sub in ["strategies", "policies", "phases", "examples", "examples/data"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(Path::new(ROOT).join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    copy_shipped(dir.path());
    let strategy = dir.path().join("strategies/rsi_reversion.yaml");
    let original = std::fs::read_to_string(&strategy).unwrap();
    let edited = original.replace("oversold: 30", "oversold: 31");
    assert_ne!(original, edited);
    let mut flip = false;
    let mut next_text = move || {
        flip = !flip;
        if flip { edited.clone() } else { original.clone() }
    };

    let (reloader, first) = Reloader::new(ManifestSource(dir.path().join("examples/bot.yaml")));
    assert_eq!(first.outcome, Outcome::Accepted);
    let reloader = Arc::new(reloader);
    let mut g = c.benchmark_group("reload");
    g.bench_function("rebuild_and_swap", |b| {
        b.iter(|| {
            std::fs::write(&strategy, next_text()).unwrap();
            let r = reloader.reload(vec![strategy.clone()]);
            assert_eq!(r.outcome, Outcome::Accepted);
        })
    });

    let debounce = Duration::from_millis(20);
    let (tx, rx) = channel();
    let _watch = watch(reloader.clone(), debounce, move |r| {
        let _ = tx.send((Instant::now(), r.outcome));
    })
    .unwrap();
    g.sample_size(20);
    g.bench_function("watch_write_to_swap", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Let the previous edit settle, so each write is one reload.
                std::thread::sleep(debounce * 2);
                while rx.try_recv().is_ok() {}
                let start = Instant::now();
                std::fs::write(&strategy, next_text()).unwrap();
                let (at, outcome) = rx.recv_timeout(Duration::from_secs(10)).expect("a reload");
                assert_eq!(outcome, Outcome::Accepted);
                total += at.duration_since(start).saturating_sub(debounce);
            }
            total
        })
    });
    // The engine's swap, mid-run, with the bars the bot has seen.
    let loaded = tradedsl::runtime::library::loader::load_bundle(&dir.path().join("examples/bot.yaml")).unwrap();
    let req = tradedsl::runtime::library::source::DataRequest {
        data: vec![],
        store: None,
        from: None,
        to: None,
        timezone: None,
        time_format: None,
    };
    let series = tradedsl::runtime::library::source::load_for_bundle(&loaded, &req).unwrap().series;
    let names: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
    let settings = tradedsl::engine::pipeline::EngineSettings {
        bot: "bench".into(),
        run: 0,
        starting_cash: 100_000.0,
        costs: Default::default(),
        fill: tradedsl::config::manifest::FillTiming::NextOpen,
    };
    let bundle = Arc::new(loaded.bundle);
    let mut engine = tradedsl::engine::pipeline::Engine::new(bundle.clone(), &names, settings);
    let mut sink = tradedsl::engine::events::NullSink;
    let n = series[0].len();
    for i in 0..n {
        for (k, s) in series.iter().enumerate() {
            if i < s.len() {
                engine.on_bar(k, &s.bar(i), &mut sink);
            }
        }
        engine.mark();
    }
    let history = |k: usize| (0..series[k].len()).map(|i| series[k].bar(i)).collect();
    g.bench_function("engine_swap_1259_bars", |b| {
        b.iter(|| engine.swap_bundle(bundle.clone(), &history).unwrap());
    });
    g.finish();

    let mut g = c.benchmark_group("validate");
    g.sample_size(30);
    let dsl = env!("CARGO_BIN_EXE_dsl");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(dsl).current_dir(ROOT).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    g.bench_function("process/example_bot", |b| b.iter(|| run(&["validate", "examples/bot.yaml"])));
    g.bench_function("process/all_shipped_documents", |b| {
        b.iter(|| run(&["validate", "strategies", "policies", "phases", "examples"]))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
