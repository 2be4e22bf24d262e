//! `require_approval` in a running bot: orders wait in the approval queue, `dsl approvals
//! approve|reject` reaches the bot through its database, an unanswered request is denied
//! when its window ends on the bot's clock, and a bot killed after the decisions resumes
//! with each decision applied once, at the bar it was applied before.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::common::{dsl, rows};

const POLICY: &str = "kind: policy\nname: desk\nrules:\n  - id: every_entry\n    when: order.intent == \"entry\"\n    \
                      action: require_approval\n    expires_after: 20d\n    message: every entry needs a person\n";

fn bot(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.join("desk.yaml"), POLICY).unwrap();
    let text = std::fs::read_to_string(root.join("examples/bot.yaml")).unwrap();
    let start = text.find("policies:").unwrap();
    let end = text.find("phases:").unwrap();
    let text = format!("{}policies:\n  - desk.yaml\n{}", &text[..start], &text[end..])
        .replace("../", &format!("{}/", root.display()))
        .replace(": data/", &format!(": {}/examples/data/", root.display()));
    let path = dir.join("bot.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The pending requests' numbers, oldest first.
fn pending(db: &Path) -> Vec<String> {
    let Ok(c) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else { return Vec::new() };
    let Ok(mut st) = c.prepare("SELECT request_id FROM approvals WHERE status = 'pending' ORDER BY request_id") else {
        return Vec::new();
    };
    st.query_map([], |r| r.get::<_, i64>(0))
        .map(|m| m.filter_map(Result::ok).map(|v| v.to_string()).collect())
        .unwrap_or_default()
}

fn delivered(db: &Path) -> i64 {
    let Ok(c) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else { return 0 };
    c.query_row("SELECT COUNT(*) FROM events WHERE kind = 'approval_decided'", [], |r| r.get(0)).unwrap_or(0)
}

#[test]
fn a_person_approves_and_rejects_orders_of_a_running_bot_and_a_restart_keeps_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = bot(dir.path());
    let db = dir.path().join("j.sqlite");
    // 20 days of bars a second: a request's 20-day window lasts about a second.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .args(["run", "--quiet", "--speed", "1728000", "--journal"])
        .arg(&db)
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut decided = Vec::new();
    for (verb, note) in [("approve", "fits the plan"), ("reject", "too much before earnings")] {
        let id = loop {
            if let Some(id) = pending(&db).into_iter().find(|id| !decided.contains(id)) {
                break id;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no approval request appeared");
            std::thread::sleep(Duration::from_millis(10));
        };
        let flag = if verb == "approve" { "--note" } else { "--reason" };
        let out = dsl()
            .args(["approvals", verb, &id, flag, note, "--journal"])
            .arg(&db)
            .args(["--bot-name", "example"])
            .output()
            .unwrap();
        if out.status.success() {
            decided.push(id);
        } else {
            // Too late for this one (its window ended on the bot's clock): try the next.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("expired") || err.contains("already"), "{err}");
            decided.push(id);
        }
    }
    // Both decisions applied by the bot (committed with their bar), then a crash.
    let wait = Instant::now();
    while delivered(&db) < 1 && wait.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = dsl().args(["run", "--quiet", "--journal"]).arg(&db).arg(&manifest).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let c = Connection::open(&db).unwrap();
    let queue = rows(
        &c,
        "SELECT client_order_id, status, delivered_ts FROM approvals WHERE status IN ('approved', 'rejected')",
    );
    assert!(!queue.is_empty(), "no decision landed in time");
    for q in &queue {
        let (id, status, at) = (&q[0], &q[1], &q[2]);
        assert!(!at.is_empty(), "{id} {status} was never applied");
        let applied = rows(
            &c,
            &format!("SELECT ts, message FROM events WHERE kind = 'approval_decided' AND message LIKE '{id} %'"),
        );
        assert_eq!(applied.len(), 1, "{id}: applied {applied:?}");
        assert_eq!(&applied[0][0], at, "applied at the recorded bar time");
        let order = rows(&c, &format!("SELECT status, status_reason FROM orders WHERE client_order_id = '{id}'"));
        assert_eq!(order.len(), 1, "{id}: {order:?}");
        if status == "approved" {
            assert_ne!(order[0][0], "rejected", "{id}: {order:?}");
        } else {
            assert_eq!(order[0][0], "rejected");
            assert!(order[0][1].starts_with("approval rejected: too much"), "{order:?}");
        }
    }
    // Nobody answered the rest: denied when their window ended (or the feed did), each once.
    let expired = crate::common::count(&c, "SELECT COUNT(*) FROM approvals WHERE status = 'expired'");
    assert!(expired > 5, "{expired} expired");
    let denied = crate::common::count(&c, "SELECT COUNT(*) FROM orders WHERE status_reason LIKE 'no approval by %'");
    let unanswered = crate::common::count(
        &c,
        "SELECT COUNT(*) FROM orders WHERE status_reason = 'end of data before a decision on its approval'",
    );
    assert_eq!(denied + unanswered, expired);
    assert_eq!(crate::common::count(&c, "SELECT COUNT(*) FROM approvals WHERE status = 'pending'"), 0);
    let dup = crate::common::count(&c, "SELECT COUNT(*) - COUNT(DISTINCT client_order_id) FROM orders");
    assert_eq!(dup, 0);
    assert_eq!(rows(&c, "SELECT status FROM runs"), vec![vec!["completed".to_string()]]);
}
