//! `dsl run --watch` on replayed bars: an invalid edit changes nothing, a valid edit decides
//! from the next bar, both are journaled, every decision records the revision it ran under,
//! and a bot killed after a reload resumes with the same history (the journal keeps the texts
//! of every revision it ran).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::{Connection, OpenFlags};

use crate::common::rows;

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dsl"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env("NO_COLOR", "1");
    c
}

/// A copy of the example bot and its documents in `dir` (the data stays in the repository).
fn copy_bot(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["strategies", "policies", "phases"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::create_dir_all(dir.join("examples")).unwrap();
    let data = root.join("examples/data");
    let text = std::fs::read_to_string(root.join("examples/bot.yaml"))
        .unwrap()
        .replace(": data/", &format!(": {}/", data.display()));
    let bot = dir.join("examples/bot.yaml");
    std::fs::write(&bot, text).unwrap();
    bot
}

fn read_only(db: &Path) -> Option<Connection> {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
}

/// Waits until the journal has a reload with `outcome`; its bar time.
fn wait_for_reload(db: &Path, outcome: &str, child: &mut std::process::Child) -> i64 {
    let mut ts = None;
    let journaled = crate::common::wait_until(&format!("{outcome} reload journaled"), child, || {
        ts = read_only(db).and_then(|c| {
            c.query_row("SELECT ts FROM reloads WHERE outcome = ?1", [outcome], |r| r.get::<_, i64>(0)).ok()
        });
        ts.is_some()
    });
    if let Err(status) = journaled {
        panic!("the bot ended ({status}) before the {outcome} reload was journaled");
    }
    ts.unwrap_or_default()
}

fn orders(db: &Path, cond: &str) -> Vec<Vec<String>> {
    let c = Connection::open(db).unwrap();
    rows(
        &c,
        &format!(
            "SELECT order_no, client_order_id, created_ts, strategy, symbol, side, intent, order_type, quantity, \
             status, status_reason FROM orders WHERE {cond} ORDER BY order_no"
        ),
    )
}

#[test]
fn edits_to_a_running_bot_take_effect_at_the_next_bar_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bot = copy_bot(dir.path());
    let clean = dir.path().join("clean.sqlite");
    let out = bin().args(["run", "--quiet", "--journal"]).arg(&clean).arg(&bot).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // 100 daily bars a second: about 13 seconds of trading.
    let db = dir.path().join("watched.sqlite");
    let mut child = bin()
        .args(["run", "--watch", "--speed", "8640000", "--journal"])
        .arg(&db)
        .arg(&bot)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(crate::common::wait_checkpoints(&db, 0, 150, &mut child).is_none());
    let macd = dir.path().join("strategies/macd_trend.yaml");
    let original = std::fs::read_to_string(&macd).unwrap();
    // An invalid edit: the rule does not parse.
    std::fs::write(&macd, original.replace("and close > ema(close, trend)", "and close > ")).unwrap();
    let rejected_at = wait_for_reload(&db, "rejected", &mut child);
    // A valid edit: macd_trend never enters again.
    let never = original.replace("and close > ema(close, trend)", "and close < 0");
    std::fs::write(&macd, &never).unwrap();
    let accepted_at = wait_for_reload(&db, "accepted", &mut child);
    // Killed a little later, and resumed (still watching) to the end.
    let now = crate::common::checkpoints(&db);
    assert!(crate::common::wait_checkpoints(&db, now, 40, &mut child).is_none());
    child.kill().unwrap();
    child.wait().unwrap();
    let out = bin().args(["run", "--quiet", "--watch", "--journal"]).arg(&db).arg(&bot).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let c = Connection::open(&db).unwrap();
    let reloads = rows(&c, "SELECT outcome, ts, old_revision, new_revision, message FROM reloads ORDER BY rowid");
    assert_eq!(reloads.len(), 2, "{reloads:?}");
    let (rejected, accepted) = (&reloads[0], &reloads[1]);
    assert_eq!(rejected[0], "rejected");
    assert!(rejected[4].contains("macd_trend.yaml:") && rejected[4].contains("error"), "{}", rejected[4]);
    assert_eq!(rejected[3], "", "a rejected reload has no new revision");
    assert_eq!(accepted[0], "accepted");
    assert_eq!(accepted[2], rejected[2], "the rejected edit left the revision in force");
    let (old, new) = (accepted[2].clone(), accepted[3].clone());
    assert!(rejected_at < accepted_at);

    // Before the valid edit, every decision is the clean run's, under the old revision.
    let before = format!("created_ts < {accepted_at}");
    assert_eq!(orders(&db, &before), orders(&clean, &before));
    let after = format!("created_ts >= {accepted_at}");
    let clean_entries = orders(&clean, &format!("{after} AND strategy = 'macd_trend' AND intent = 'entry'"));
    assert!(!clean_entries.is_empty(), "the clean run enters with macd_trend after the edit");
    let entries = orders(&db, &format!("{after} AND strategy = 'macd_trend' AND intent = 'entry'"));
    assert!(entries.is_empty(), "macd_trend entered after its entry became `close < 0`: {entries:?}");
    let revs = |table: &str, cond: &str| {
        rows(&c, &format!("SELECT DISTINCT bundle_revision FROM {table} WHERE {cond}")).concat()
    };
    assert_eq!(revs("orders", &before), vec![old.clone()]);
    assert_eq!(revs("orders", &after), vec![new.clone()]);
    assert_eq!(revs("policy_decisions", &format!("ts < {accepted_at}")), vec![old]);
    assert_eq!(revs("policy_decisions", &format!("ts >= {accepted_at}")), vec![new]);
    // One run, resumed after the kill, with no order twice; both revisions' texts are kept.
    assert_eq!(rows(&c, "SELECT status FROM runs"), vec![vec!["completed".to_string()]]);
    let dup = crate::common::count(&c, "SELECT COUNT(*) - COUNT(DISTINCT client_order_id) FROM orders");
    assert_eq!(dup, 0);
    assert_eq!(crate::common::count(&c, "SELECT COUNT(*) FROM bundle_texts"), 2);
    // The trading log shows both reloads on their days.
    let out = bin().args(["report", "log", "--journal"]).arg(&db).args(["--bot-name", "example"]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("| reload rejected |") && log.contains("| reload accepted |"), "{log}");
}

#[test]
fn a_bot_resumed_with_edited_documents_needs_watch_to_swap_them_in() {
    let dir = tempfile::tempdir().unwrap();
    let bot = copy_bot(dir.path());
    let db = dir.path().join("j.sqlite");
    let mut child = bin()
        .args(["run", "--quiet", "--speed", "8640000", "--journal"])
        .arg(&db)
        .arg(&bot)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(crate::common::wait_checkpoints(&db, 0, 100, &mut child).is_none());
    child.kill().unwrap();
    child.wait().unwrap();
    // The strategy is edited while the bot is down.
    let rsi = dir.path().join("strategies/rsi_reversion.yaml");
    let text = std::fs::read_to_string(&rsi).unwrap().replace("oversold: 30", "oversold: 35");
    std::fs::write(&rsi, text).unwrap();
    let out = bin().args(["run", "--quiet", "--journal"]).arg(&db).arg(&bot).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was running bundle") && err.contains("--watch"), "{err}");
    let out = bin().args(["run", "--quiet", "--watch", "--journal"]).arg(&db).arg(&bot).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Connection::open(&db).unwrap();
    let r = rows(&c, "SELECT outcome, trigger FROM reloads");
    assert_eq!(r, vec![vec!["accepted".to_string(), "[\"restart\"]".to_string()]]);
}

/// A broken edit of kind `k` (0..10) of `text`, number `n` (every edit differs from the one
/// before it, so each is a reload to journal).
fn broken(text: &str, k: u64, n: usize, r: u64) -> Vec<u8> {
    let mut out: Vec<u8> = match k {
        // Cut short, mid-line, then a rule that does not parse.
        0 => {
            let cut = (r as usize) % text.len();
            let mut t = text.as_bytes()[..cut].to_vec();
            t.extend_from_slice(b"\nexit: crosses_above(\n");
            t
        }
        // Random bytes (some not UTF-8) over a part of the file.
        1 => {
            let mut t = text.as_bytes().to_vec();
            let at = (r as usize) % t.len();
            for (i, b) in t.iter_mut().skip(at).take(40).enumerate() {
                *b = ((r >> (i % 8)) as u8).wrapping_mul(31).wrapping_add(i as u8) | 0x80;
            }
            t
        }
        // A one-line JSON document of about 100 kB with an unknown key at its far end.
        2 => {
            let mut doc = String::from("{\"kind\": \"strategy\", \"name\": \"macd_trend\", \"description\": \"");
            doc.push_str(&"x".repeat(100_000));
            doc.push_str("\", \"universe\": [\"AAPL\"], \"timeframe\": \"1d\", \"entry\": \"close > 1\", \"exit\": \"close < 1\", \"sizing\": \"all_cash\", \"entyr\": 1}");
            doc.into_bytes()
        }
        3 => text.replace("macd(close", "macdd(close").into_bytes(),
        4 => Vec::new(),
        5 => {
            let mut t = text.as_bytes().to_vec();
            t.extend(std::iter::repeat_n(b'#', 1 << 21));
            t
        }
        6 => format!("kind: strategy\nname: macd_trend\nparams: {}{}\n", "[".repeat(5_000), "]".repeat(5_000))
            .into_bytes(),
        7 => {
            let mut t = String::from("kind: strategy\nname: macd_trend\na: &a [x, x, x, x, x, x, x, x, x]\n");
            let mut prev = 'a';
            for c in 'b'..='j' {
                t.push_str(&format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(", ")));
                prev = c;
            }
            t.into_bytes()
        }
        8 => text.replace("kind: strategy", "kind: policy").into_bytes(),
        _ => text.replace("timeframe: 1d", "timeframe: 1d\nentyr: close > 1").into_bytes(),
    };
    out.extend_from_slice(format!("\n# edit {n}\n").as_bytes());
    out
}

/// A hundred random broken edits of a running bot's strategy (cut files, garbage bytes, a
/// one-line 100 kB document with its error at column 100,000, unknown functions, an empty file,
/// a 2 MiB file, deep nesting, an alias bomb, a wrong kind, an unknown key): each is rejected
/// and journaled, the bot never dies, and it keeps trading the last good bundle.
#[test]
fn a_running_bot_survives_a_hundred_broken_edits() {
    let dir = tempfile::tempdir().unwrap();
    let bot = copy_bot(dir.path());
    let db = dir.path().join("j.sqlite");
    let mut child = bin()
        .args(["run", "--watch", "--debounce", "20", "--speed", "864000", "--journal"])
        .arg(&db)
        .arg(&bot)
        .stdout(Stdio::null())
        // A file, not a pipe: nobody reads a pipe while the edits go on, and a full one would
        // block the bot's diagnostics.
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    assert!(crate::common::wait_checkpoints(&db, 0, 5, &mut child).is_none());
    let revision =
        |c: &Connection| -> String { c.query_row("SELECT bundle_revision FROM runs", [], |r| r.get(0)).unwrap() };
    let start_revision = revision(&read_only(&db).unwrap());
    let macd = dir.path().join("strategies/macd_trend.yaml");
    let original = std::fs::read_to_string(&macd).unwrap();
    let mut seed = 0x51f1_5eed_u64;
    let reloads = |db: &Path| {
        read_only(db)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM reloads", [], |r| r.get::<_, i64>(0)).ok())
            .unwrap_or(0)
    };
    for n in 0..100 {
        let r = crate::common::xorshift(&mut seed);
        let before = reloads(&db);
        std::fs::write(&macd, broken(&original, r % 10, n, r >> 8)).unwrap();
        let what = format!("journaled reload of edit {n} (kind {})", r % 10);
        if let Err(status) = crate::common::wait_until(&what, &mut child, || reloads(&db) != before) {
            let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
            panic!("the bot ended ({status}) at edit {n} (kind {}): {stderr}", r % 10);
        }
    }
    let from = crate::common::checkpoints(&db);
    assert!(crate::common::wait_checkpoints(&db, from, 5, &mut child).is_none(), "the bot trades on");
    child.kill().unwrap();
    child.wait().unwrap();
    let err = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    let logged = err.lines().filter(|l| l.contains(" ERROR ") && l.contains("reload rejected at")).count();
    let c = Connection::open(&db).unwrap();
    let outcomes = rows(&c, "SELECT outcome, COUNT(*) FROM reloads GROUP BY outcome");
    // Each edit is rejected; on a loaded machine the watcher may see a write as two changes
    // (the truncation, then the new text) more than the debounce apart: both are rejected.
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0][0], "rejected");
    let rejected: usize = outcomes[0][1].parse().unwrap();
    assert!(rejected >= 100, "{rejected}");
    assert_eq!(logged, rejected, "every rejection is logged as an error");
    let revs = rows(&c, "SELECT DISTINCT bundle_revision FROM orders");
    assert_eq!(revs, vec![vec![start_revision]], "every order under the last good bundle");
    let late = crate::common::count(&c, &format!("SELECT COUNT(*) FROM run_status WHERE checkpoints > {from}"));
    assert_eq!(late, 1);
}
