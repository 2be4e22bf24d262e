//! `dsl run --watch` on replayed bars: an invalid edit changes nothing, a valid edit decides
//! from the next bar, both are journaled, every decision records the revision it ran under,
//! and a bot killed after a reload resumes with the same history (the journal keeps the texts
//! of every revision it ran).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let start = Instant::now();
    loop {
        let ts = read_only(db).and_then(|c| {
            c.query_row("SELECT ts FROM reloads WHERE outcome = ?1", [outcome], |r| r.get::<_, i64>(0)).ok()
        });
        if let Some(ts) = ts {
            return ts;
        }
        assert!(child.try_wait().unwrap().is_none(), "the bot ended before the {outcome} reload was journaled");
        assert!(start.elapsed() < Duration::from_secs(30), "no {outcome} reload journaled");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    std::thread::sleep(Duration::from_millis(1500));
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
    std::thread::sleep(Duration::from_millis(400));
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
    std::thread::sleep(Duration::from_millis(1000));
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
