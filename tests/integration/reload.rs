//! Hot reload: while a consumer evaluates continuously, files are edited the way editors do
//! (in-place write, temp file + rename, delete + create). Valid edits take effect, invalid ones
//! never do, and no evaluation sees a half-built bundle.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tradedsl::dsl::bundle::{Bundle, SymbolProgram};
use tradedsl::dsl::semantics::fires;
use tradedsl::engine::graph::Graph;
use tradedsl::engine::market::Bar;
use tradedsl::engine::resample::BaseBars;
use tradedsl::engine::rules::{NO_FIELDS, eval_rule};
use tradedsl::runtime::library::reload::{ManifestSource, Outcome, ReloadRecord, Reloader, watch};

use crate::common::{data, dsl};

fn strategy(threshold: &str, entry: &str) -> String {
    format!(
        "kind: strategy\nname: s\nuniverse: [GOOG]\ntimeframe: 1d\nparams:\n  threshold: {threshold}\n\
         entry: {entry}\nexit: close < threshold / 2\nsizing: all_cash\n"
    )
}

fn valid(threshold: u32) -> String {
    strategy(&threshold.to_string(), "close > threshold")
}

/// What one evaluation saw: the revision, the threshold its document says, and whether the
/// compiled entry rule fired on a bar closing at 50.
type Seen = (String, f64, bool);

/// Evaluates the bundle the way the engine does: compile the symbol program, run one bar,
/// evaluate the entry rule.
fn evaluate(b: &Bundle) -> Seen {
    let s = &b.strategies[0];
    let threshold = match s.doc.param("threshold").map(|p| &p.value.value) {
        Some(tradedsl::config::strategy::ParamValue::Number(v, _)) => *v,
        _ => f64::NAN,
    };
    let program = SymbolProgram::build(b, "GOOG");
    let mut g = Graph::new(&program.graph, BaseBars::DAILY_EQUITIES);
    g.update(&Bar { ts: 0, open: 50.0, high: 50.0, low: 50.0, close: 50.0, volume: 1.0 });
    let rules = program.strategies[0].as_ref().expect("GOOG is traded");
    let v = eval_rule(&rules.entry, g.values(), &NO_FIELDS, &mut Vec::new());
    (b.revision.clone(), threshold, fires(v))
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn next_record(rx: &Receiver<ReloadRecord>, want: Outcome) -> ReloadRecord {
    let start = Instant::now();
    loop {
        let r = rx.recv_timeout(Duration::from_secs(20)).expect("a reload record");
        if r.outcome == want {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no {want:?} reload");
    }
}

fn write_via_rename(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn edits_take_effect_atomically_and_invalid_ones_never_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.yaml"), valid(10)).unwrap();
    std::fs::write(
        d.join("bot.yaml"),
        format!(
            "kind: bot\nname: b\nstrategies: [s.yaml]\ndata: {{csv: {{GOOG: {}}}}}\nstarting_cash: 1000\n",
            data("GOOG.csv").display()
        ),
    )
    .unwrap();

    let (reloader, first) = Reloader::new(ManifestSource(d.join("bot.yaml")));
    assert_eq!(first.outcome, Outcome::Accepted, "{:?}", first.diagnostics);
    let reloader = Arc::new(reloader);
    let handle = reloader.handle();
    let (tx, rx) = channel();
    let _watch = watch(reloader.clone(), Duration::from_millis(50), move |r| {
        let _ = tx.send(r.clone());
    })
    .unwrap();

    // The consumer: evaluate continuously, checking every snapshot is whole.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let last = Arc::new(Mutex::new(f64::NAN));
    let consumer = {
        let (stop, seen, last, handle) = (stop.clone(), seen.clone(), last.clone(), handle.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let snap = handle.load_full();
                let s = evaluate(&snap);
                // A whole bundle: the compiled rule agrees with the document it came from.
                assert_eq!(s.2, 50.0 > s.1, "rule and params of one snapshot disagree: {s:?}");
                *last.lock().unwrap() = s.1;
                let mut v = seen.lock().unwrap();
                if v.last() != Some(&s) {
                    v.push(s);
                }
                n += 1;
            }
            n
        })
    };
    let observe = |t: f64| wait_for(&format!("threshold {t}"), || *last.lock().unwrap() == t);
    observe(10.0);

    // 1. In-place write (truncate + write), valid.
    std::fs::write(d.join("s.yaml"), valid(20)).unwrap();
    let r = next_record(&rx, Outcome::Accepted);
    assert_eq!(r.changes.params.changed, vec!["s.threshold: 10 -> 20"]);
    observe(20.0);

    // 2. In-place write, invalid (syntax error): rejected, the last good bundle stays.
    std::fs::write(d.join("s.yaml"), strategy("99", "close > threshold and")).unwrap();
    let r = next_record(&rx, Outcome::Rejected);
    assert!(r.errors > 0 && r.diagnostics.iter().any(|d| d.code == "E2001"), "{:?}", r.diagnostics);
    assert_eq!(r.old_revision, handle.load().revision);
    assert!(r.changes.documents.changed.iter().any(|f| f.ends_with("s.yaml")), "{:?}", r.changes);
    assert_eq!(*last.lock().unwrap(), 20.0);

    // 3. Temp file + rename, valid.
    write_via_rename(d, "s.yaml", &valid(30));
    let r = next_record(&rx, Outcome::Accepted);
    // Compared with the bundle in force (20), not with the rejected edit.
    assert_eq!(r.changes.params.changed, vec!["s.threshold: 20 -> 30"]);
    assert!(r.changes.rules.is_empty(), "{:?}", r.changes);
    observe(30.0);

    // 4. Temp file + rename, invalid (unknown name).
    write_via_rename(d, "s.yaml", &strategy("98", "close > treshold"));
    let r = next_record(&rx, Outcome::Rejected);
    assert!(r.diagnostics.iter().any(|d| d.message.contains("unknown name `treshold`")), "{:?}", r.diagnostics);
    assert_eq!(*last.lock().unwrap(), 30.0);

    // 5. Delete, then create after the debounce: the missing file is rejected, the new one
    // accepted.
    std::fs::remove_file(d.join("s.yaml")).unwrap();
    let r = next_record(&rx, Outcome::Rejected);
    assert!(r.diagnostics.iter().any(|d| d.message.contains("cannot read strategy file")), "{:?}", r.diagnostics);
    assert_eq!(*last.lock().unwrap(), 30.0);
    std::fs::write(d.join("s.yaml"), valid(60)).unwrap();
    next_record(&rx, Outcome::Accepted);
    observe(60.0);

    // 6. Delete and create within the debounce: one rebuild sees the new file.
    std::fs::remove_file(d.join("s.yaml")).unwrap();
    std::fs::write(d.join("s.yaml"), valid(70)).unwrap();
    observe(70.0);

    stop.store(true, Ordering::Relaxed);
    let evaluations = consumer.join().expect("the consumer never saw a broken bundle");
    assert!(evaluations > 100, "{evaluations} evaluations");
    let seen = seen.lock().unwrap();
    let thresholds: BTreeSet<u64> = seen.iter().map(|s| s.1 as u64).collect();
    // Only valid versions were ever evaluated; the invalid ones (99, 98) never were.
    assert!(thresholds.is_subset(&BTreeSet::from([10, 20, 30, 60, 70])), "{thresholds:?}");
    assert!(thresholds.is_superset(&BTreeSet::from([10, 20, 30, 60, 70])), "{thresholds:?}");
    // Every revision evaluated was an accepted one.
    let history = reloader.history();
    let accepted: BTreeSet<String> = history.iter().filter_map(|r| r.new_revision.clone()).collect();
    assert!(seen.iter().all(|s| accepted.contains(&s.0)), "{seen:?} vs {accepted:?}");
    assert!(history.iter().filter(|r| r.outcome == Outcome::Rejected).count() >= 3);
}

#[test]
fn validate_watch_reports_reloads_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.yaml"), valid(10)).unwrap();
    let mut child = std::process::Command::new(dsl().get_program())
        .current_dir(d)
        .args(["validate", "--watch", ".", "--debounce", "50", "--format", "json"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |rx: &Receiver<String>| -> serde_json::Value {
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(20)).expect("a JSON line")).unwrap()
    };
    let first = next(&rx);
    assert_eq!(first["outcome"], "accepted");
    write_via_rename(d, "s.yaml", &strategy("10", "close >> threshold"));
    let rejected = next(&rx);
    assert_eq!(rejected["outcome"], "rejected");
    assert_eq!(rejected["old_revision"], first["new_revision"]);
    assert_eq!(rejected["diagnostics"][0]["code"], "E2001");
    assert_eq!(rejected["diagnostics"][0]["line"], 7);
    std::fs::write(d.join("s.yaml"), valid(12)).unwrap();
    let accepted = next(&rx);
    assert_eq!(accepted["outcome"], "accepted");
    assert_eq!(accepted["changes"]["params"]["changed"][0], "s.threshold: 10 -> 12");
    child.kill().unwrap();
    let _ = child.wait();
}
