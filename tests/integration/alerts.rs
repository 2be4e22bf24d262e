//! Alerts of a running bot (`alerts:` in its manifest) against local mock receivers: the
//! Treasury ladder bot of `examples/rebalance.yaml` with a 2% drawdown breaker halts in 2013;
//! the webhook (Slack/Discord-compatible body) and Telegram hear of it, each delivery is
//! journaled, the secret URL and token appear nowhere; a failing webhook is retried, journaled
//! as failed and never changes what the bot trades; a full queue drops and says so.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{count, dsl, rows};

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    status: u16,
    /// Answer 500 to this many requests first.
    fail_first: usize,
}

impl Respond for Receiver {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null);
        let mut seen = self.seen.lock().unwrap();
        seen.push((req.url.path().to_string(), body));
        let status = if seen.len() <= self.fail_first { 500 } else { self.status };
        ResponseTemplate::new(status).set_body_string("{\"ok\": true}")
    }
}

fn serve(rt: &tokio::runtime::Runtime, status: u16) -> (Receiver, MockServer) {
    serve_failing(rt, status, 0)
}

fn serve_failing(rt: &tokio::runtime::Runtime, status: u16, fail_first: usize) -> (Receiver, MockServer) {
    let r = Receiver { seen: Arc::default(), status, fail_first };
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(r.clone()).mount(&server).await;
        server
    });
    (r, server)
}

/// The ladder bot in `dir` with a 2% drawdown breaker and `alerts`.
fn bot(dir: &Path, alerts: &str) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.join("breaker.yaml"),
        "kind: policy\nname: breaker\nrules:\n  - id: small_drawdown\n    when: account.drawdown > 2%\n    action: halt\n    \
         message: drawdown above 2%\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(format!("{root}/examples/rebalance.yaml"))
        .unwrap()
        .replace("data/", &format!("{root}/examples/data/"))
        .replace("database: out/rebalance.sqlite", "database: journal.sqlite")
        .replace("directory: out/reports", "directory: reports");
    let path = dir.join("bot.yaml");
    std::fs::write(&path, format!("{text}policies: [breaker.yaml]\n{alerts}")).unwrap();
    path
}

fn run(dir: &Path, env: &[(&str, String)]) -> std::process::Output {
    let mut c = dsl();
    c.current_dir(dir).args(["run", "bot.yaml"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The orders of the same bot run without alerts.
fn plain_orders() -> Vec<Vec<String>> {
    let plain = tempfile::tempdir().unwrap();
    bot(plain.path(), "");
    let out = run(plain.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    orders(&plain.path().join("journal.sqlite"))
}

/// The orders a run journaled, as a person compares two runs.
fn orders(db: &Path) -> Vec<Vec<String>> {
    rows(
        &Connection::open(db).unwrap(),
        "SELECT client_order_id, created_ts, symbol, side, quantity, status FROM orders",
    )
}

fn events(db: &Path, kind: &str) -> Vec<Vec<String>> {
    let c = Connection::open(db).unwrap();
    rows(&c, &format!("SELECT origin, message FROM events WHERE kind = '{kind}' ORDER BY rowid"))
}

#[test]
fn a_halt_reaches_the_webhook_and_telegram_and_is_journaled() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (hook, server) = serve(&rt, 200);
    let dir = tempfile::tempdir().unwrap();
    bot(
        dir.path(),
        "alerts:\n  webhook: {url_env: TEST_HOOK}\n  telegram: {token_env: TEST_TG_TOKEN, chat_id_env: TEST_TG_CHAT}\n  \
         on: [state]\n",
    );
    let url = format!("{}/hook/SECRET-PATH-123", server.uri());
    let out = run(
        dir.path(),
        &[
            ("TEST_HOOK", url),
            ("TEST_TG_TOKEN", "999:SECRET-TOKEN".into()),
            ("TEST_TG_CHAT", "-100123".into()),
            ("TRADEDSL_TELEGRAM_URL", server.uri()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seen = hook.seen.lock().unwrap().clone();
    let webhook: Vec<&serde_json::Value> =
        seen.iter().filter(|(p, _)| p == "/hook/SECRET-PATH-123").map(|(_, b)| b).collect();
    let telegram: Vec<&serde_json::Value> =
        seen.iter().filter(|(p, _)| p == "/bot999:SECRET-TOKEN/sendMessage").map(|(_, b)| b).collect();
    assert_eq!(webhook.len(), 1, "one state change: {seen:?}");
    let b = webhook[0];
    let text = b["text"].as_str().unwrap();
    assert!(text.starts_with("treasury_rebalance: ACTIVE -> HALTED (breaker/small_drawdown)"), "{text}");
    assert_eq!(b["content"], b["text"], "Discord reads `content`, Slack `text`");
    assert_eq!((b["bot"].as_str(), b["kind"].as_str()), (Some("treasury_rebalance"), Some("state")));
    let halted = rows(&Connection::open(dir.path().join("journal.sqlite")).unwrap(), "SELECT ts FROM state_changes");
    assert_eq!(
        b["time"].as_str().unwrap(),
        crate::common::day(&halted[0][0]) + "T00:00:00Z",
        "the bar time of the halt"
    );
    assert_eq!(telegram.len(), 1);
    assert_eq!(telegram[0]["chat_id"], "-100123");
    assert_eq!(telegram[0]["text"], b["text"]);
    let db = dir.path().join("journal.sqlite");
    let sent = events(&db, "alert_sent");
    assert_eq!(sent.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["webhook", "telegram"]);
    assert!(sent[0][1].starts_with("state: treasury_rebalance: ACTIVE -> HALTED"));
    // The secrets appear nowhere.
    let c = Connection::open(&db).unwrap();
    let all: Vec<Vec<String>> = rows(&c, "SELECT message FROM events");
    for secret in ["SECRET-PATH-123", "SECRET-TOKEN"] {
        assert!(!stderr.contains(secret) && all.iter().all(|r| !r[0].contains(secret)), "{secret} leaked");
    }
}

/// A webhook answering 500: tried five times, journaled as failed with the status (never the
/// URL); the bot trades exactly as without alerts.
#[test]
fn a_failing_webhook_never_changes_the_trading() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (hook, server) = serve(&rt, 500);
    let dir = tempfile::tempdir().unwrap();
    bot(dir.path(), "alerts:\n  webhook: {url_env: TEST_HOOK}\n  on: [state]\n");
    let out = run(dir.path(), &[("TEST_HOOK", format!("{}/hook/SECRET-PATH-456", server.uri()))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(hook.seen.lock().unwrap().len(), 5, "one try and four retries");
    let db = dir.path().join("journal.sqlite");
    let failed = events(&db, "alert_failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0][1].contains("HTTP 500") && !failed[0][1].contains("SECRET"), "{failed:?}");

    assert_eq!(orders(&db), plain_orders());
}

/// Report alerts at one a minute: the first goes out, the queue fills and drops the rest, and
/// what is still queued when the bot stops is journaled as undelivered.
#[test]
fn a_full_alert_queue_drops_and_says_so() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (hook, server) = serve(&rt, 200);
    let dir = tempfile::tempdir().unwrap();
    bot(dir.path(), "alerts:\n  webhook: {url_env: TEST_HOOK}\n  on: [report]\n  max_per_minute: 1\n");
    let out = run(dir.path(), &[("TEST_HOOK", format!("{}/hook", server.uri()))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = dir.path().join("journal.sqlite");
    let c = Connection::open(&db).unwrap();
    let reports = count(&c, "SELECT COUNT(*) FROM events WHERE kind = 'report'");
    assert!(reports > 1000, "{reports} reports");
    // One a minute: the first at once, the next a minute later (the run takes a second or two).
    let sent = count(&c, "SELECT COUNT(*) FROM events WHERE kind = 'alert_sent'");
    assert_eq!(hook.seen.lock().unwrap().len() as i64, sent);
    assert!((1..=3).contains(&sent), "{sent} sent");
    let dropped = count(&c, "SELECT COUNT(*) FROM events WHERE kind = 'alert_dropped' AND message LIKE 'report: %'");
    assert!(dropped > 1000, "{dropped} dropped");
    let undelivered = events(&db, "alert_dropped");
    let last = &undelivered.last().unwrap()[1];
    assert!(last.ends_with("alert(s) (not delivered before the bot stopped)"), "{last}");
    let waiting: i64 = last.trim_start_matches("queue: ").split(' ').next().unwrap().parse().unwrap();
    assert!(waiting > 200, "the queue's alerts were waiting for the rate limit: {waiting}");
    assert_eq!(sent + waiting + dropped, reports, "every report alert is accounted for: sent, undelivered or dropped");
}

#[test]
fn alerts_refuse_to_start_without_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    bot(dir.path(), "alerts:\n  webhook: {url_env: TEST_HOOK_UNSET}\n");
    let out = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`TEST_HOOK_UNSET`, which is not set"));
    bot(dir.path(), "alerts:\n  webhook: {url_env: TEST_HOOK}\n");
    let out = run(dir.path(), &[("TEST_HOOK", "http://hooks.example.com/SECRET".into())]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is refused: it is not https") && !err.contains("SECRET"), "{err}");
}

/// The watchdog: `dsl status --check --alert` on a halted bot sends the manifest's `stale`
/// alert once (a timer running the check again does not repeat it), journaled.
#[test]
fn a_failing_check_alerts_once_per_episode() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (hook, server) = serve(&rt, 200);
    let dir = tempfile::tempdir().unwrap();
    bot(dir.path(), "alerts:\n  webhook: {url_env: TEST_HOOK}\n  on: [stale]\n");
    let url = format!("{}/hook/watchdog", server.uri());
    let out = run(dir.path(), &[("TEST_HOOK", url.clone())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(hook.seen.lock().unwrap().is_empty(), "the run itself sends no `state` alert: not asked for");
    let check = || {
        dsl().current_dir(dir.path()).args(["status", "bot.yaml", "--check", "--alert"]).env("TEST_HOOK", &url).output()
    };
    for round in 0..3 {
        let out = check().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("check failed: HALTED since"), "{stderr}");
        assert_eq!(stderr.contains("alert sent (webhook)"), round == 0, "round {round}: {stderr}");
    }
    let seen = hook.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1["kind"], "stale");
    assert!(seen[0].1["text"].as_str().unwrap().contains("check failed: HALTED since"), "{seen:?}");
    let c = Connection::open(dir.path().join("journal.sqlite")).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM watchdog_alerts WHERE channel = 'webhook' AND error IS NULL"), 1);
}

/// A webhook that fails three times, then answers: the halt's alert is delivered exactly once
/// (the fourth try), journaled as sent, and the bot traded as it would without alerts.
#[test]
fn a_webhook_failing_three_times_then_answering_gets_one_message() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (hook, server) = serve_failing(&rt, 200, 3);
    let dir = tempfile::tempdir().unwrap();
    bot(dir.path(), "alerts:\n  webhook: {url_env: TEST_HOOK}\n  on: [state]\n");
    let out = run(dir.path(), &[("TEST_HOOK", format!("{}/hook/flaky", server.uri()))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = hook.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "three failures, then the one delivery: {seen:?}");
    assert!(seen.iter().all(|(_, b)| b == &seen[0].1), "the same message each try");
    let db = dir.path().join("journal.sqlite");
    assert_eq!(events(&db, "alert_sent").len(), 1);
    assert!(events(&db, "alert_failed").is_empty() && events(&db, "alert_dropped").is_empty());
    assert_eq!(orders(&db), plain_orders(), "trading went on meanwhile");
}

/// `daily`: the day's P&L and equity at the first bar of the next UTC day, whether or not
/// reports are scheduled; the numbers are the journal's daily closing equity.
#[test]
fn the_daily_pnl_alert_reports_each_closed_day() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (hook, server) = serve(&rt, 200);
    let dir = tempfile::tempdir().unwrap();
    bot(dir.path(), "alerts:\n  webhook: {url_env: TEST_HOOK}\n  on: [daily]\n  max_per_minute: 1000\n");
    let mut c = dsl();
    c.current_dir(dir.path()).args(["run", "bot.yaml", "--from", "2013-01-01", "--to", "2013-02-28"]);
    c.env("TEST_HOOK", format!("{}/hook/daily", server.uri()));
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = dir.path().join("journal.sqlite");
    let days = rows(&Connection::open(&db).unwrap(), "SELECT day, close_equity FROM daily_equity ORDER BY day");
    let seen = hook.seen.lock().unwrap().clone();
    // Every day but the last (its summary waits for the next day's first bar).
    assert_eq!(seen.len(), days.len() - 1, "{seen:?}");
    assert!(seen.len() >= 35, "two months of sessions: {}", seen.len());
    for (k, (_, body)) in seen.iter().enumerate().skip(1) {
        let (prev, day): (f64, f64) = (days[k - 1][1].parse().unwrap(), days[k][1].parse().unwrap());
        let date = crate::common::day(&(days[k][0].parse::<i64>().unwrap() * 86_400).to_string());
        let text = body["text"].as_str().unwrap();
        assert_eq!(body["kind"], "daily");
        assert!(text.contains(&format!("{date} P&L {:+.2}", day - prev)), "{text} vs {prev} -> {day}");
        assert!(text.ends_with(&format!("equity {day:.2}")), "{text}");
    }
    assert_eq!(events(&db, "alert_sent").len(), seen.len());
}
