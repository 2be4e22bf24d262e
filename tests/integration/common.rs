//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use tradedsl::config::{Document, read_document};
use tradedsl::diagnostics::SourceFile;
use tradedsl::dsl::bundle::{Bundle, assemble, compile_policy, compile_strategy};

/// The `dsl` binary, run from the repository root.
pub fn dsl() -> Command {
    let mut c = Command::cargo_bin("dsl").expect("the dsl binary is built");
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env("NO_COLOR", "1");
    c
}

/// A file under `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Reads a CSV file into header and rows of strings.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

/// Relative difference, with an absolute floor for values near zero.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// Compiles strategy and policy YAML texts into a bundle (panics on errors, showing them).
pub fn bundle(strategies: &[&str], policies: &[&str]) -> Arc<Bundle> {
    let mut diags = Vec::new();
    let mut sources = Vec::new();
    let mut ss = Vec::new();
    let mut ps = Vec::new();
    for (i, text) in strategies.iter().enumerate() {
        let f = SourceFile::new(format!("strategy{i}.yaml"), *text);
        sources.push(f.clone());
        match read_document(&f, &mut diags) {
            Some(Document::Strategy(s)) => ss.extend(compile_strategy(s, &mut diags)),
            other => panic!("not a strategy: {other:?} {diags:?}"),
        }
    }
    for (i, text) in policies.iter().enumerate() {
        let f = SourceFile::new(format!("policy{i}.yaml"), *text);
        sources.push(f.clone());
        match read_document(&f, &mut diags) {
            Some(Document::Policy(p)) => ps.extend(compile_policy(p, &mut diags)),
            other => panic!("not a policy: {other:?} {diags:?}"),
        }
    }
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Arc::new(assemble(None, ss, ps, vec![], &sources, &mut diags).expect("bundle"))
}

/// All rows of a query, every value as text (NULL as empty).
pub fn rows(c: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(_) => "blob".into(),
                })
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The single integer a query returns.
pub fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Whether the journal's latest run is marked completed. A crash test that kills the bot after
/// this commit but before the process exits must stop there: a restart would begin a new run.
pub fn run_completed(db: &Path) -> bool {
    let Ok(c) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return false;
    };
    c.query_row("SELECT status FROM runs ORDER BY run_id DESC LIMIT 1", [], |r| r.get::<_, String>(0))
        .is_ok_and(|s| s == "completed")
}

/// Committed checkpoints of the journal's latest run (0 before the first, or without a
/// journal yet).
pub fn checkpoints(db: &Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    c.query_row("SELECT checkpoints FROM run_status ORDER BY run_id DESC LIMIT 1", [], |r| r.get(0)).unwrap_or(0)
}

/// Waits until the journal's latest run has committed `n` more checkpoints than `from`, or the
/// child exits (then returns its status). Polls the journal; nothing depends on how fast the
/// machine is.
pub fn wait_checkpoints(
    db: &Path,
    from: i64,
    n: i64,
    child: &mut std::process::Child,
) -> Option<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if checkpoints(db) >= from + n {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Polls `done` until it holds (a journal row, a checkpoint count, a request the broker saw):
/// `Err` with the child's exit status when it exits first. A minute without it fails the test
/// (a hang, not a slow machine: nothing here measures time).
pub fn wait_until(
    what: &str,
    child: &mut std::process::Child,
    mut done: impl FnMut() -> bool,
) -> Result<(), std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(status);
        }
        assert!(std::time::Instant::now() < deadline, "no {what} within a minute");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

/// A small xorshift generator for reproducible random kill points.
pub fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Backtests, in `dir`, a one-strategy bot: `strategy` is the strategy document (written to
/// `s.yaml`), `bot` the manifest's lines after its strategy (data, policies, costs); the
/// journal goes to `dir/journal.sqlite`, which is returned open. Panics when the run fails.
pub fn backtest_in(dir: &Path, strategy: &str, bot: &str) -> rusqlite::Connection {
    std::fs::write(dir.join("s.yaml"), strategy).unwrap();
    std::fs::write(
        dir.join("bot.yaml"),
        format!(
            "kind: bot\nname: test_bot\nstrategies: [s.yaml]\n{bot}starting_cash: 100000\ndatabase: journal.sqlite\n"
        ),
    )
    .unwrap();
    let out = dsl().current_dir(dir).args(["backtest", "bot.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    rusqlite::Connection::open(dir.join("journal.sqlite")).unwrap()
}

/// `data:` lines of a manifest for `symbol`'s daily bars in `examples/data`.
pub fn example_data(symbol: &str) -> String {
    format!("data:\n  csv:\n    {symbol}: {}/examples/data/{symbol}.csv\n", env!("CARGO_MANIFEST_DIR"))
}

/// The UTC date (`YYYY-MM-DD`) of UTC seconds written as text (a journal column).
pub fn day(ts: &str) -> String {
    chrono::DateTime::from_timestamp(ts.parse().unwrap(), 0).unwrap().format("%Y-%m-%d").to_string()
}

/// Runs the `dsl run` that `spawn` starts (with stderr piped; its journal is `db`) to
/// completion, killing it with SIGKILL after `min` to `min + spread - 1` newly committed
/// checkpoints (and up to `jitter_us` microseconds into the next bar) and starting it again
/// each time. The kill points follow the journal, not the clock. Returns how many kills it
/// took; panics when a run fails or it takes `max_kills`.
pub fn run_killed(
    db: &Path,
    mut seed: u64,
    (min, spread): (i64, u64),
    jitter_us: u64,
    max_kills: usize,
    spawn: impl Fn() -> std::process::Child,
) -> usize {
    let mut kills = 0;
    loop {
        let from = checkpoints(db);
        let mut child = spawn();
        let n = min + (xorshift(&mut seed) % spread) as i64;
        match wait_checkpoints(db, from, n, &mut child) {
            Some(status) => {
                let out = child.wait_with_output().unwrap();
                assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                return kills;
            }
            None => {
                if jitter_us > 0 {
                    std::thread::sleep(std::time::Duration::from_micros(xorshift(&mut seed) % jitter_us));
                }
                child.kill().unwrap(); // SIGKILL on unix
                child.wait().unwrap();
                kills += 1;
                // Killed after the run was marked completed but before the process exited:
                // a restart would begin a new run, so the run is over.
                if run_completed(db) {
                    return kills;
                }
            }
        }
        assert!(kills < max_kills, "the run never completed");
    }
}
