//! The bot's safety state and its journal under faults, met as a user meets them through the
//! binary: a breaker's HALT outlives its run (new runs, `--fresh`) until a person resumes; a
//! resume is applied once, at one bar, and re-bases the drawdown peak; a journal that cannot
//! be written, is deleted, or is wanted by a second bot stops or refuses the bot, and the run
//! resumes from its last committed bar with nothing lost or duplicated.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;

use crate::common::{count, dsl, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dsl"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env("NO_COLOR", "1");
    c
}

/// A bot trading GOOG all-in on the SMA crossover under a 5% drawdown breaker (halt, reset
/// manual); its journal is `j.sqlite` in `dir`.
fn breaker_bot(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("breaker.yaml"),
        "kind: policy\nname: breaker\nrules:\n  - id: dd_halt\n    when: account.drawdown > 5%\n    action: halt\n    \
         reset: manual\n    message: drawdown above 5%\n",
    )
    .unwrap();
    let bot = dir.join("bot.yaml");
    std::fs::write(
        &bot,
        format!(
            "kind: bot\nname: b\nstrategies: [{ROOT}/strategies/sma_crossover.yaml]\npolicies: [breaker.yaml]\n\
             data: {{csv: {{GOOG: {ROOT}/tests/data/GOOG.csv}}}}\nstarting_cash: 100000\ndatabase: j.sqlite\n"
        ),
    )
    .unwrap();
    bot
}

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = dsl().current_dir(dir).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn filled_entries(c: &Connection, run: i64) -> i64 {
    count(c, &format!("SELECT COUNT(*) FROM orders WHERE run_id = {run} AND intent = 'entry' AND status = 'filled'"))
}

#[test]
fn a_breakers_halt_outlives_its_run_until_a_person_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    breaker_bot(dir);
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet"]);
    assert!(ok, "{err}");
    let c = Connection::open(dir.join("j.sqlite")).unwrap();
    let halts = rows(&c, "SELECT ts, reason FROM state_changes WHERE run_id = 1 AND to_state = 'HALTED'");
    assert_eq!(halts.len(), 1, "{halts:?}");
    assert_eq!(halts[0][1], "breaker/dd_halt");
    // The trip is journaled as a decision with the values that fired (no order).
    let trip = rows(
        &c,
        "SELECT client_order_id, ts, action, seen_values FROM policy_decisions WHERE rule_id = 'dd_halt' AND fired = 1",
    );
    assert_eq!(trip.len(), 1, "{trip:?}");
    assert_eq!((trip[0][0].as_str(), trip[0][1].as_str(), trip[0][2].as_str()), ("", halts[0][0].as_str(), "halt"));
    let seen: serde_json::Value = serde_json::from_str(&trip[0][3]).unwrap();
    assert!(seen["account.drawdown"].as_f64().unwrap() > 0.05, "{seen}");

    // A new run (the first completed) and a fresh one start HALTED: no entry fills.
    for (args, run_id) in [(&["run", "bot.yaml", "--quiet"][..], 2), (&["run", "bot.yaml", "--quiet", "--fresh"], 3)] {
        let (ok, _, err) = run(dir, args);
        assert!(ok, "{err}");
        let first = rows(
            &c,
            &format!(
                "SELECT to_state, reason, message FROM state_changes WHERE run_id = {run_id} ORDER BY rowid LIMIT 1"
            ),
        );
        assert_eq!(first[0][..2], ["HALTED".to_string(), "breaker/dd_halt".into()], "{args:?}");
        assert!(first[0][2].contains("carried over from the bot's state"), "{first:?}");
        assert_eq!(filled_entries(&c, run_id), 0, "{args:?}: entries while HALTED");
    }
    let (ok, out, _) = run(dir, &["status", "bot.yaml"]);
    assert!(ok && out.contains("HALTED") && out.contains("breaker/dd_halt"), "{out}");

    // A person resumes while no bot runs: the state changes now, and the next run trades.
    let (ok, out, err) = run(dir, &["resume", "bot.yaml", "--reason", "reviewed the loss"]);
    assert!(ok, "{err}");
    assert!(out.contains("HALTED -> ACTIVE") && out.contains("no running bot holds the journal"), "{out}");
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet"]);
    assert!(ok, "{err}");
    assert!(filled_entries(&c, 4) > 0);
    let applied = rows(&c, "SELECT status, run_id FROM control_requests");
    assert_eq!(applied, vec![vec!["applied".to_string(), "4".into()]], "the request is applied once, by the next run");
}

/// Starts the breaker bot at a pace of about `ms` per daily bar.
fn start_slow(dir: &Path, speed: &str) -> Child {
    bin()
        .current_dir(dir)
        .args(["run", "bot.yaml", "--quiet", "--speed", speed])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(120), "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn query_i64(db: &Path, sql: &str) -> Option<i64> {
    let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.query_row(sql, [], |r| r.get(0)).ok()
}

/// A resume given while the bot runs is applied exactly once, at one bar, and re-bases the
/// drawdown peak: the breaker does not fire again at the next mark, and entries follow.
#[test]
fn a_resume_is_applied_once_and_rebases_the_drawdown_peak() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    breaker_bot(dir);
    let db = dir.join("j.sqlite");
    let mut child = start_slow(dir, "8640000");
    wait_until("the breaker", || {
        query_i64(&db, "SELECT COUNT(*) FROM state_changes WHERE to_state = 'HALTED'") == Some(1)
    });
    let (ok, out, err) = run(dir, &["resume", "bot.yaml", "--reason", "accept the loss"]);
    assert!(ok, "{err}");
    assert!(out.contains("applies it at its next bar"), "{out}");
    wait_until("the resume", || {
        query_i64(&db, "SELECT COUNT(*) FROM control_requests WHERE status = 'applied'") == Some(1)
    });
    let at = query_i64(&db, "SELECT applied_ts FROM control_requests").unwrap();
    let from = crate::common::checkpoints(&db);
    assert!(crate::common::wait_checkpoints(&db, from, 120, &mut child).is_none(), "the bot went on");
    child.kill().unwrap();
    child.wait().unwrap();
    let c = Connection::open(&db).unwrap();
    let resumes = rows(&c, "SELECT ts, message FROM state_changes WHERE reason = 'resume'");
    assert_eq!(resumes.len(), 1, "once: {resumes:?}");
    assert_eq!(resumes[0][0], at.to_string(), "at the bar it was applied");
    assert!(resumes[0][1].starts_with("accept the loss; drawdown peak re-based from "), "{resumes:?}");
    // Without the re-base the breaker fired again at the resume bar's own mark. With it, a
    // later trip measures the drawdown from the equity at the resume.
    let again = count(&c, &format!("SELECT COUNT(*) FROM state_changes WHERE to_state = 'HALTED' AND ts = {at}"));
    assert_eq!(again, 0, "the breaker re-fired at once");
    let rebased: f64 = resumes[0][1].split(" to ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let later = rows(
        &c,
        &format!("SELECT ts, seen_values FROM policy_decisions WHERE rule_id = 'dd_halt' AND fired = 1 AND ts > {at}"),
    );
    for trip in &later {
        let seen: serde_json::Value = serde_json::from_str(&trip[1]).unwrap();
        let equity: f64 = c
            .query_row(&format!("SELECT close_equity FROM daily_equity WHERE last_ts = {}", trip[0]), [], |r| r.get(0))
            .unwrap();
        // The peak from the resume on: the re-based one, or a higher mark since.
        let peak: f64 = c
            .query_row(
                &format!("SELECT MAX(close_equity) FROM daily_equity WHERE last_ts >= {at} AND last_ts <= {}", trip[0]),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let peak = peak.max(rebased);
        let dd = seen["account.drawdown"].as_f64().unwrap();
        assert!((dd - (peak - equity) / peak).abs() < 1e-6, "drawdown {dd} is not from the re-based peak {peak}");
    }
    // Between the resume and any later trip, nothing was refused for being HALTED.
    let until = later.first().map_or(i64::MAX, |t| t[0].parse().unwrap());
    let refused = count(
        &c,
        &format!(
            "SELECT COUNT(*) FROM orders WHERE created_ts >= {at} AND created_ts < {until} AND status_reason LIKE 'halted%'"
        ),
    );
    assert_eq!(refused, 0);
}

/// Everything two runs of the same bot must agree on.
type Table = Vec<Vec<String>>;

fn outcome(db: &Path) -> (Table, Table, Table) {
    let c = Connection::open(db).unwrap();
    (
        rows(
            &c,
            "SELECT trade_no, symbol, entry_ts, entry_price, exit_ts, exit_price, quantity, pnl FROM trades ORDER BY trade_no",
        ),
        rows(&c, "SELECT order_no, client_order_id, created_ts, intent, status FROM orders ORDER BY order_no"),
        rows(&c, "SELECT ts, cash, equity, peak_equity, state, positions FROM run_status"),
    )
}

fn clean_run(dir: &Path) -> PathBuf {
    let clean = dir.join("clean.sqlite");
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet", "--journal", "clean.sqlite"]);
    assert!(ok, "{err}");
    clean
}

/// Another process holds the journal's write lock past the 10 s busy timeout: the bot stops
/// at its last committed bar, says why, and exits non-zero; started again it resumes and ends
/// exactly like an uninterrupted run.
#[test]
fn a_lock_held_past_the_busy_timeout_stops_the_bot_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    breaker_bot(dir);
    let clean = clean_run(dir);
    let db = dir.join("j.sqlite");
    let mut child = start_slow(dir, "8640000");
    assert!(crate::common::wait_checkpoints(&db, 0, 20, &mut child).is_none());
    let blocker = Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held_at = crate::common::checkpoints(&db);
    let status = child.wait().unwrap();
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("is locked by another process") && err.contains("trading stopped at"), "{err}");
    let c = Connection::open(&db).unwrap();
    assert_eq!(rows(&c, "SELECT status FROM runs"), vec![vec!["running".to_string()]], "not completed: resumable");
    assert!(crate::common::checkpoints(&db) <= held_at + 1, "nothing committed after the lock");
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(outcome(&db), outcome(&clean), "resumed run differs from an uninterrupted one");
}

/// The disk fills up under the journal: a 1 MiB tmpfs where the machine lets this test mount
/// one in a private namespace, else SQLite's page cap (the same error, SQLITE_FULL). The bot
/// stops at its last committed bar and the run resumes on a disk with room. On the tmpfs the
/// replay runs at a set speed (about 40 ms a daily bar), so that each checkpoint commits on its
/// own as a live bot's do and the write-ahead log grows with every bar, whatever the
/// machine's speed.
#[test]
fn a_full_disk_stops_the_bot_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    breaker_bot(dir);
    let clean = clean_run(dir);
    let bin = assert_cmd::cargo::cargo_bin("dsl");
    let small = dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    // In a mount namespace of its own: mount a tmpfs over `small`, run there, copy the journal
    // out (the tmpfs goes with the namespace).
    let script = format!(
        "set -e; mount -t tmpfs -o size=1m tmpfs '{s}'; cd '{d}'; set +e; '{b}' run bot.yaml --quiet --speed 2000000 --journal '{s}/j.sqlite'; \
         code=$?; cp '{s}'/j.sqlite* '{d}/'; exit $code",
        s = small.display(),
        d = dir.display(),
        b = bin.display()
    );
    let ns = Command::new("unshare").args(["--user", "--map-root-user", "--mount", "sh", "-c", &script]).output();
    let mounted = ns
        .as_ref()
        .is_ok_and(|o| !String::from_utf8_lossy(&o.stderr).contains("mount:") && o.status.code() != Some(127));
    let (status, err) = match ns {
        Ok(o) if mounted => (o.status, String::from_utf8_lossy(&o.stderr).into_owned()),
        _ => {
            eprintln!("no private tmpfs here: the journal is capped at 60 pages of 16 KiB instead");
            let o = bin_in(dir)
                .args(["run", "bot.yaml", "--quiet"])
                .env("TRADEDSL_JOURNAL_MAX_PAGES", "60")
                .output()
                .unwrap();
            (o.status, String::from_utf8_lossy(&o.stderr).into_owned())
        }
    };
    assert!(!status.success(), "{err}");
    assert!(err.contains("the disk is full") && err.contains("trading stopped at"), "{err}");
    let db = dir.join("j.sqlite");
    let c = Connection::open(&db).unwrap();
    assert_eq!(rows(&c, "SELECT status FROM runs"), vec![vec!["running".to_string()]]);
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(outcome(&db), outcome(&clean), "resumed run differs from an uninterrupted one");
}

fn bin_in(dir: &Path) -> Command {
    let mut c = bin();
    c.current_dir(dir);
    c
}

/// A second bot on the same journal is refused with who holds it; the first is not disturbed.
#[test]
fn two_bots_on_one_journal_the_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    breaker_bot(dir);
    let clean = clean_run(dir);
    let db = dir.join("j.sqlite");
    let mut first = start_slow(dir, "8640000");
    assert!(crate::common::wait_checkpoints(&db, 0, 5, &mut first).is_none());
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet"]);
    assert!(!ok);
    assert!(
        err.contains("is in use by `dsl run` of bot `b` (pid") && err.contains("one bot runs on a journal at a time"),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(outcome(&db), outcome(&clean));
    let c = Connection::open(&db).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM runs"), 1, "one run, resumed");
}

/// The journal file is deleted under a running bot: the bot notices at its next bar and stops
/// (fail closed) instead of trading on unrecorded; a person's halt is refused meanwhile rather
/// than written to a new file the bot would never read.
#[test]
fn a_journal_deleted_mid_run_stops_the_bot() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    breaker_bot(dir);
    let db = dir.join("j.sqlite");
    let mut child = start_slow(dir, "8640000");
    assert!(crate::common::wait_checkpoints(&db, 0, 10, &mut child).is_none());
    for f in ["j.sqlite", "j.sqlite-wal", "j.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("the journal file was deleted or replaced while the bot ran"), "{err}");
    // A halt while a bot holds the lease of a journal that is gone is refused.
    let lease = tradedsl::runtime::journal::lease::acquire(&db, "b", "dsl run", Duration::ZERO).unwrap();
    let (ok, _, err) = run(dir, &["halt", "bot.yaml", "--reason", "stop"]);
    assert!(!ok && err.contains("is gone while a bot holds its lock"), "{err}");
    assert!(!db.exists(), "no new journal was made");
    drop(lease);
}

/// A phase's demotion rules that cannot be evaluated (the journal holds a stress run whose
/// settings are not JSON) halt the running bot instead of letting it trade unchecked.
#[test]
fn demotion_rules_that_cannot_be_evaluated_halt_the_bot() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let bot = breaker_bot(dir);
    let text = std::fs::read_to_string(&bot).unwrap()
        + format!("phases: [{ROOT}/phases/1_paper_mastery.yaml, {ROOT}/phases/2_backtest_and_stress.yaml, {ROOT}/phases/3_small_live.yaml, {ROOT}/phases/4_full_live.yaml]\nphase: backtest_and_stress\n").as_str();
    std::fs::write(&bot, text).unwrap();
    // A stress run with damaged settings.
    let (ok, _, err) = run(dir, &["backtest", "bot.yaml", "--quiet", "--to", "2005-01-01"]);
    assert!(ok, "{err}");
    let c = Connection::open(dir.join("j.sqlite")).unwrap();
    c.execute("INSERT INTO runs (kind, bot, bundle_revision, started_ts, status, settings, symbols) VALUES ('stress', 'b', 'x', 0, 'completed', '{', '[]')", []).unwrap();
    let (ok, _, err) = run(dir, &["run", "bot.yaml", "--quiet"]);
    assert!(ok, "{err}");
    assert!(err.contains("the phase's demotion rules cannot be evaluated"), "{err}");
    let halted = rows(&c, "SELECT reason FROM state_changes WHERE to_state = 'HALTED' ORDER BY rowid LIMIT 1");
    assert_eq!(halted, vec![vec!["demotion_unchecked".to_string()]]);
    let run_id = count(&c, "SELECT MAX(run_id) FROM runs WHERE kind = 'paper'");
    assert_eq!(filled_entries(&c, run_id), 0, "no entry while the rules cannot be checked");
}

/// A damaged journal is reported as damaged (not as "no paper run"), and the read-only
/// commands never write: `status`, `gate status` and `report` on a journal holding only a
/// backtest leave it exactly as it was (so they work on a read-only one).
#[test]
fn journal_errors_are_what_they_are_and_readers_do_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    breaker_bot(dir);
    let (ok, _, err) = run(dir, &["backtest", "bot.yaml", "--quiet"]);
    assert!(ok, "{err}");
    let db = dir.join("j.sqlite");
    // Checkpoint the WAL into the file so its bytes are the whole journal.
    Connection::open(&db).unwrap().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let before = std::fs::read(&db).unwrap();
    for args in [&["status", "bot.yaml"][..], &["report", "daily", "bot.yaml"], &["approvals", "list", "bot.yaml"]] {
        let _ = run(dir, args);
    }
    let c = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'bot_state'"),
        0,
        "status wrote control tables"
    );
    drop(c);
    let (ok, out, err) = run(dir, &["status", "bot.yaml"]);
    assert!(ok && out.contains("state         ACTIVE"), "{out}{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "a reader changed the journal");
    // A damaged file.
    let mut bytes = before.clone();
    for b in bytes.iter_mut().skip(100).take(4000) {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    for args in [&["report", "daily", "bot.yaml"][..], &["status", "bot.yaml"], &["run", "bot.yaml", "--quiet"]] {
        let (ok, _, err) = run(dir, args);
        assert!(!ok, "{args:?}");
        assert!(err.contains("is damaged") || err.contains("is not a SQLite journal"), "{args:?}: {err}");
        assert!(!err.contains("no paper run"), "{err}");
    }
}
