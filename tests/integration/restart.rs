//! Orders at the right time, or not at all, for a bot on a live feed (`--feed alpaca`, a mock
//! Market Data API whose bars the test publishes one by one) trading at a mock broker:
//! - killed right after a bar's orders were committed (by the broker, in the POST), the
//!   restarted bot sends them before any new bar arrives;
//! - restarted after 60 bars of downtime, it sends no order decided on a bar older than the
//!   staleness window (one bar): those are journaled as expired;
//! - during a broker outage the breaker halts it; the entry whose POST failed is not sent
//!   while HALTED (withheld); after `dsl resume` it stays ACTIVE and trades again.
//!
//! The test waits on the journal (checkpoints, rows) and the mock's books, never on time.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Connection;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::common::{checkpoints, count, data, read_csv, rows};
use super::mock_broker::MockBroker;

/// One-minute SPY bars, 60 s apart, from `base`; the first `visible` are published.
#[derive(Clone)]
struct Bars {
    base: i64,
    closes: Arc<Vec<f64>>,
    visible: Arc<AtomicUsize>,
    /// Requests still to answer with a malformed body.
    malformed: Arc<AtomicUsize>,
}

const HISTORY: usize = 200;

impl Respond for Bars {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if self.malformed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return ResponseTemplate::new(200).set_body_string("{\"bars\": {\"SPY\": [{\"t\": ");
        }
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp();
        let (start, end) = (parse(&q["start"]), parse(&q["end"]));
        let visible = self.visible.load(Ordering::SeqCst);
        let bars: Vec<serde_json::Value> = self.closes[..visible]
            .iter()
            .enumerate()
            .map(|(k, c)| (self.base + 60 * k as i64, c))
            .filter(|(ts, _)| *ts >= start && *ts <= end)
            .map(|(ts, c)| {
                let t =
                    chrono::DateTime::from_timestamp(ts, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                serde_json::json!({"t": t, "o": c, "h": c + 0.5, "l": c - 0.5, "c": c, "v": 100.0})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"bars": {"SPY": bars}, "next_page_token": null}))
    }
}

struct Setup {
    _rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    bot: PathBuf,
    db: PathBuf,
    bars: Bars,
    data_server: MockServer,
    broker_server: MockServer,
    broker: MockBroker,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let strategy = "kind: strategy\nname: always_in\nuniverse: [SPY]\ntimeframe: 1m\nentry: close > 0\nexit: close < 0\n\
                    sizing:\n  fixed_quantity: 10\n";
    std::fs::write(dir.path().join("always_in.yaml"), strategy).unwrap();
    let bot = "kind: bot\nname: restart_test\nstrategies:\n  - always_in.yaml\nstarting_cash: 100000\nbroker: alpaca\n";
    std::fs::write(dir.path().join("bot.yaml"), bot).unwrap();
    let (header, table) = read_csv(&data("SP500_NOV2019_IDay.csv"));
    let close = header.iter().position(|h| h == "Close").unwrap();
    let closes: Vec<f64> = table.iter().take(400).map(|r| r[close].parse().unwrap()).collect();
    // Every bar is complete already: the newest published one is the feed's head.
    let now = chrono::Utc::now().timestamp();
    let base = (now - 60 * 600) / 60 * 60;
    let bars = Bars {
        base,
        closes: Arc::new(closes),
        visible: Arc::new(AtomicUsize::new(HISTORY)),
        malformed: Default::default(),
    };
    let broker = MockBroker::new(100_000.0, [("SPY".to_string(), 310.0)].into());
    let (data_server, broker_server) = rt.block_on(async {
        let d = MockServer::start().await;
        Mock::given(any()).respond_with(bars.clone()).mount(&d).await;
        let b = MockServer::start().await;
        Mock::given(any()).respond_with(broker.clone()).mount(&b).await;
        (d, b)
    });
    let db = dir.path().join("j.sqlite");
    Setup { bot: dir.path().join("bot.yaml"), db, dir, bars, data_server, broker_server, broker, _rt: rt }
}

impl Setup {
    fn start(&self) -> Child {
        let child = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
            .args(["run", "--feed", "alpaca", "--poll", "0.05", "--warmup-days", "1", "--journal"])
            .arg(&self.db)
            .arg(&self.bot)
            .env("NO_COLOR", "1")
            .env("APCA_API_KEY_ID", "PKMOCK")
            .env("APCA_API_SECRET_KEY", "mock-secret")
            .env("TRADEDSL_ALPACA_DATA_URL", self.data_server.uri())
            .env("TRADEDSL_ALPACA_TRADING_URL", self.broker_server.uri())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.broker.0.lock().unwrap().victim = Some(child.id());
        child
    }

    /// Publishes `n` more bars.
    fn publish(&self, n: usize) {
        self.bars.visible.fetch_add(n, Ordering::SeqCst);
    }

    /// The bar time of bar `k`.
    fn ts(&self, k: usize) -> i64 {
        self.bars.base + 60 * k as i64
    }

    /// Waits until the journal has `n` checkpoints (the bot must not exit meanwhile).
    fn wait_checkpoints(&self, n: i64, child: &mut Child) {
        until(&format!("{n} checkpoints"), child, || checkpoints(&self.db) >= n);
    }

    fn journal(&self) -> Connection {
        Connection::open(&self.db).unwrap()
    }
}

/// [`crate::common::wait_until`], failing with the bot's standard error if it exits first.
fn until(what: &str, child: &mut Child, done: impl FnMut() -> bool) {
    if let Err(status) = crate::common::wait_until(what, child, done) {
        panic!("the bot exited ({status}) before {what}: {}", stderr(child));
    }
}

fn stderr(child: &mut Child) -> String {
    let mut err = String::new();
    if let Some(s) = child.stderr.as_mut() {
        let _ = std::io::Read::read_to_string(s, &mut err);
    }
    err
}

/// True once the bot's run row exists (its warm-up history is fetched).
fn run_begun(s: &Setup) -> bool {
    s.db.exists() && count_or_zero(&s.db, "SELECT COUNT(*) FROM runs") == 1
}

fn count_or_zero(db: &std::path::Path, sql: &str) -> i64 {
    Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Ctrl-C: the bot stops after its timestamp, resumable; returns its stderr.
fn interrupt(mut child: Child) -> String {
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let err = stderr(&mut child);
    assert!(status.success(), "{err}");
    err
}

/// Starts the bot, publishes the first traded bar and lets the broker kill the bot while it
/// submits that bar's entry (before recording it). Returns the entry's `client_order_id`.
fn killed_after_commit(s: &Setup) -> String {
    let mut child = s.start();
    until("the run begins", &mut child, || run_begun(s));
    s.broker.0.lock().unwrap().kill_next_post = Some(false);
    s.publish(1);
    let status = child.wait().unwrap();
    assert!(!status.success(), "the bot was not killed: {}", stderr(&mut child));
    assert_eq!(s.broker.0.lock().unwrap().kills_before_record, 1);
    assert!(s.broker.0.lock().unwrap().orders.is_empty());
    assert_eq!(checkpoints(&s.db), 1);
    let pending = rows(&s.journal(), "SELECT client_order_id, state, created_ts FROM broker_orders");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0][1], "pending");
    assert_eq!(pending[0][2], s.ts(HISTORY).to_string());
    pending[0][0].clone()
}

#[test]
fn killed_right_after_a_commit_the_bot_sends_the_committed_order_before_the_next_bar() {
    let s = setup();
    let coid = killed_after_commit(&s);
    // No new bar comes: the restarted bot must send the order on its own.
    let mut child = s.start();
    until("the committed order reaches the broker", &mut child, || {
        s.broker.0.lock().unwrap().orders.iter().any(|o| o.client_order_id == coid)
    });
    assert_eq!(checkpoints(&s.db), 1, "a new bar was processed first");
    // The next bar applies its fill.
    s.publish(1);
    s.wait_checkpoints(2, &mut child);
    interrupt(child);
    let c = s.journal();
    let fill = rows(&c, &format!("SELECT ts FROM broker_events WHERE kind = 'fill' AND client_order_id = '{coid}'"));
    assert_eq!(fill, vec![vec![s.ts(HISTORY + 1).to_string()]]);
    assert_eq!(s.broker.0.lock().unwrap().duplicate_posts, 0);
    drop(s.dir);
}

#[test]
fn after_sixty_bars_down_the_bot_sends_no_stale_order() {
    let s = setup();
    let coid = killed_after_commit(&s);
    // 60 bars pass while the bot is down.
    s.publish(60);
    let head = s.ts(HISTORY + 60);
    let mut child = s.start();
    s.wait_checkpoints(61, &mut child);
    s.publish(1);
    s.wait_checkpoints(62, &mut child);
    let err = interrupt(child);
    let c = s.journal();
    let st = s.broker.0.lock().unwrap();
    assert!(!st.orders.iter().any(|o| o.client_order_id == coid), "the 60-bar-old order was sent");
    let expired = rows(&c, &format!("SELECT state, message FROM broker_orders WHERE client_order_id = '{coid}'"));
    assert_eq!(expired[0][0], "expired", "{expired:?}");
    assert!(expired[0][1].contains("older than the staleness window of 60 s"), "{expired:?}");
    let ended = rows(&c, &format!("SELECT status, status_reason FROM orders WHERE client_order_id = '{coid}'"));
    assert_eq!(ended[0][0], "cancelled");
    assert!(ended[0][1].starts_with("expired: decided on the bar of"), "{ended:?}");
    // Every order that reached the broker was decided within one bar of the newest bar then.
    for o in &st.orders {
        let created: i64 = c
            .query_row("SELECT created_ts FROM broker_orders WHERE client_order_id = ?1", [&o.client_order_id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(created >= head - 60, "order of {created} sent with the head at {head}");
    }
    assert_eq!(st.orders.len(), 1, "one entry, once the bot caught up: {:?}", st.orders);
    let stale = count(&c, "SELECT COUNT(*) FROM broker_orders WHERE state = 'expired'");
    assert!(stale >= 2, "{stale} expired\n{err}");
}

#[test]
fn nothing_is_sent_while_halted_and_a_resumed_bot_stays_active() {
    let s = setup();
    let mut child = s.start();
    until("the run begins", &mut child, || run_begun(&s));
    s.broker.0.lock().unwrap().outage = true;
    // Bar by bar until the breaker halts the bot.
    let mut k = 0;
    loop {
        k += 1;
        s.publish(1);
        s.wait_checkpoints(k, &mut child);
        let halted = count(&s.journal(), "SELECT COUNT(*) FROM state_changes WHERE reason = 'broker_unavailable'");
        if halted == 1 {
            break;
        }
        assert!(k < 10, "no halt after {k} bars of outage");
    }
    // The broker is back; the bot stays HALTED and sends nothing.
    s.broker.0.lock().unwrap().outage = false;
    for _ in 0..3 {
        k += 1;
        s.publish(1);
        s.wait_checkpoints(k, &mut child);
    }
    assert!(s.broker.0.lock().unwrap().orders.is_empty(), "an order left while HALTED");
    let withheld = rows(&s.journal(), "SELECT state, message FROM broker_orders");
    assert_eq!(withheld.len(), 1, "{withheld:?}");
    assert_eq!(withheld[0][0], "withheld");
    assert!(withheld[0][1].contains("the bot is HALTED"), "{withheld:?}");
    // A person resumes: the bot trades again and stays ACTIVE.
    let out = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .args(["resume", "--journal"])
        .arg(&s.db)
        .args(["--bot-name", "restart_test", "--reason", "the broker is back"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for _ in 0..6 {
        k += 1;
        s.publish(1);
        s.wait_checkpoints(k, &mut child);
    }
    let err = interrupt(child);
    let c = s.journal();
    let changes = rows(&c, "SELECT to_state, reason FROM state_changes ORDER BY rowid");
    assert_eq!(
        changes,
        vec![vec!["HALTED".to_string(), "broker_unavailable".into()], vec!["ACTIVE".to_string(), "resume".into()]],
        "{err}"
    );
    assert_eq!(s.broker.0.lock().unwrap().orders.len(), 1, "one entry after the resume");
    assert!(err.contains("state: ACTIVE -> HALTED at") && err.contains("state: HALTED -> ACTIVE at"), "{err}");
}

#[test]
fn malformed_market_data_during_the_warm_up_is_retried() {
    let s = setup();
    s.bars.malformed.store(2, Ordering::SeqCst);
    let mut child = s.start();
    until("the run begins", &mut child, || run_begun(&s));
    s.publish(1);
    s.wait_checkpoints(1, &mut child);
    let err = interrupt(child);
    assert!(err.contains("malformed response") && err.contains("retrying the warm-up history"), "{err}");
    assert_eq!(s.bars.malformed.load(Ordering::SeqCst), 0);
    let c = s.journal();
    let settings: serde_json::Value = serde_json::from_str(&rows(&c, "SELECT settings FROM runs")[0][0]).unwrap();
    assert_eq!(settings["warmup_until"].as_i64(), Some(s.ts(HISTORY - 1)));
}
