//! `dsl run` against a mock Alpaca broker (`mock_broker`): killed with SIGKILL at random
//! points and by the broker in the middle of order submissions, then restarted each time, the
//! bot never sends an order twice and ends with the positions, cash and trades of an
//! uninterrupted run. Also: live mode refused whenever one gate is missing, with no request
//! to a live host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

use super::common::rows;
use super::mock_broker::MockBroker;

const SYMBOLS: [&str; 5] = ["AAPL", "MSFT", "NVDA", "JPM", "XOM"];
const FROM: &str = "2016-01-01";

/// A bot on the example strategies and guardrails, trading through `broker: alpaca`.
fn write_bot(dir: &Path, extra: &str) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let data: String = SYMBOLS.iter().map(|s| format!("    {s}: {root}/examples/data/{s}.csv\n")).collect();
    let yaml = format!(
        "kind: bot\nname: broker_test\nstrategies:\n  - {root}/strategies/rsi_reversion.yaml\n  - {root}/strategies/macd_trend.yaml\n\
         policies:\n  - {root}/policies/always_on_caps.yaml\n  - {root}/policies/circuit_breakers.yaml\n\
         data:\n  csv:\n{data}starting_cash: 100000\nbroker: alpaca\n{extra}"
    );
    let path = dir.join("bot.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// First close on or after FROM of each symbol (the mock's base prices).
fn base_prices() -> HashMap<String, f64> {
    SYMBOLS
        .iter()
        .map(|s| {
            let text =
                std::fs::read_to_string(format!("{}/examples/data/{s}.csv", env!("CARGO_MANIFEST_DIR"))).unwrap();
            let mut rdr = csv::Reader::from_reader(text.as_bytes());
            let headers = rdr.headers().unwrap().clone();
            let close = headers.iter().position(|h| h.eq_ignore_ascii_case("close")).unwrap();
            let row = rdr.records().map(|r| r.unwrap()).find(|r| &r[0] >= FROM).unwrap();
            (s.to_string(), row[close].parse().unwrap())
        })
        .collect()
}

fn start_mock(rt: &tokio::runtime::Runtime) -> (MockServer, MockBroker) {
    let broker = MockBroker::new(100_000.0, base_prices());
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(broker.clone()).mount(&server).await;
        server
    });
    (server, broker)
}

fn bot_cmd(bot: &Path, journal: &Path, server: &MockServer) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dsl"));
    c.args(["run", "--quiet", "--from", FROM, "--journal"])
        .arg(journal)
        .arg(bot)
        .env("NO_COLOR", "1")
        .env("APCA_API_KEY_ID", "PKMOCK")
        .env("APCA_API_SECRET_KEY", "mock-secret")
        .env("TRADEDSL_ALPACA_TRADING_URL", server.uri())
        .env_remove("TRADEDSL_ALPACA_DATA_URL")
        .env_remove("TRADEDSL_ARM_LIVE");
    c
}

type Table = Vec<Vec<String>>;

fn journal_outcome(db: &Path) -> (Table, Table) {
    let c = Connection::open(db).unwrap();
    let trades = rows(
        &c,
        "SELECT trade_no, strategy, symbol, entry_ts, entry_price, exit_ts, exit_price, quantity, pnl, exit_reason, \
         entry_order_id, exit_order_id FROM trades ORDER BY trade_no",
    );
    let status = rows(&c, "SELECT ts, cash, equity, state, positions FROM run_status");
    (trades, status)
}

fn broker_outcome(b: &MockBroker) -> (Vec<(String, String)>, String, Vec<String>) {
    let st = b.0.lock().unwrap();
    let mut positions: Vec<(String, String)> =
        st.positions.iter().filter(|(_, q)| q.abs() > 1e-9).map(|(s, q)| (s.clone(), format!("{q:.6}"))).collect();
    positions.sort();
    let mut ids: Vec<String> = st.orders.iter().map(|o| o.client_order_id.clone()).collect();
    ids.sort();
    (positions, format!("{:.4}", st.cash), ids)
}

#[test]
fn killed_mid_submission_and_at_random_the_bot_never_double_submits_and_ends_like_a_clean_run() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), "");

    let (clean_server, clean_broker) = start_mock(&rt);
    let clean_db = dir.path().join("clean.sqlite");
    let out = bot_cmd(&bot, &clean_db, &clean_server).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (clean_trades, clean_status) = journal_outcome(&clean_db);
    let clean_books = broker_outcome(&clean_broker);
    assert!(clean_trades.len() >= 10, "only {} trades", clean_trades.len());
    assert_eq!(clean_broker.0.lock().unwrap().duplicate_posts, 0);

    let (server, broker) = start_mock(&rt);
    broker.0.lock().unwrap().kill_one_in = 9;
    let db = dir.path().join("crashy.sqlite");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    loop {
        // About 125 daily bars a second: six seconds of trading, killed every 30-430 ms.
        let mut child = bot_cmd(&bot, &db, &server)
            .args(["--speed", "10800000"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        broker.0.lock().unwrap().victim = Some(child.id());
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let deadline = std::time::Instant::now() + Duration::from_millis(30 + seed % 400);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if std::time::Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        broker.0.lock().unwrap().victim = None;
        match status {
            Some(s) if s.success() => break,
            Some(_) => {
                child.wait().unwrap();
                kills += 1; // killed by the broker during a POST
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
        }
        if super::common::run_completed(&db) {
            break; // killed between the run's completion and the process's exit
        }
        assert!(kills < 300, "the run never completed");
    }
    let st = broker.0.lock().unwrap();
    let (before, after, dups) = (st.kills_before_record, st.kills_after_record, st.duplicate_posts);
    drop(st);
    eprintln!("{kills} kills, {before} before the broker recorded an order, {after} after");
    assert!(kills >= 20, "only {kills} kills");
    assert!(before >= 1 && after >= 1, "kills in submissions: {before} before, {after} after the broker recorded");
    assert_eq!(dups, 0, "the broker received an order twice");
    let books = broker_outcome(&broker);
    assert_eq!(books, clean_books, "broker positions, cash and orders differ from the clean run");
    let (trades, status) = journal_outcome(&db);
    assert_eq!(trades, clean_trades);
    assert_eq!(status, clean_status);
    let c = Connection::open(&db).unwrap();
    let twice =
        rows(&c, "SELECT client_order_id FROM broker_orders GROUP BY run_id, client_order_id HAVING COUNT(*) > 1");
    assert!(twice.is_empty(), "{twice:?}");
    // No state change but those of the rules: no reconciliation mismatch, no broker outage.
    let halts =
        rows(&c, "SELECT reason FROM state_changes WHERE reason IN ('reconcile_mismatch', 'broker_unavailable')");
    assert!(halts.is_empty(), "{halts:?}");
    let partial = rows(&c, "SELECT COUNT(*) FROM broker_events WHERE kind = 'partial_fill'");
    assert_ne!(partial, vec![vec!["0".to_string()]], "partial fills were journaled");
    let runs = rows(&c, "SELECT COUNT(*) FROM runs");
    assert_eq!(runs, vec![vec!["1".to_string()]]);
}

/// A stand-in HTTPS proxy that records the first line of every connection (`CONNECT host:443`)
/// and closes it: with HTTPS_PROXY pointing here, any request to a real Alpaca host shows up.
fn recording_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            log.lock().unwrap().push(line.trim().to_string());
        }
    });
    (addr, seen)
}

#[test]
fn live_mode_needs_every_gate_and_nothing_short_of_them_reaches_a_live_host() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let phases = format!(
        "phases:\n  - {root}/phases/1_paper_mastery.yaml\n  - {root}/phases/2_backtest_and_stress.yaml\n  - {root}/phases/3_small_live.yaml\n  - {root}/phases/4_full_live.yaml\n"
    );
    let (proxy, seen) = recording_proxy();
    // (case, manifest lines, arm value, --confirm-live, expected message)
    let all = (format!("mode: live\n{phases}phase: small_live\n"), Some("broker_test"), Some("PA123LIVE"));
    type Case<'a> = (&'a str, String, Option<&'a str>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        ("mode: paper", format!("{phases}phase: small_live\n"), all.1, all.2, ""),
        ("not armed", all.0.clone(), None, all.2, "TRADEDSL_ARM_LIVE is not set"),
        ("armed for another bot", all.0.clone(), Some("other_bot"), all.2, "not to this bot's name"),
        (
            "paper phase",
            format!("mode: live\n{phases}phase: paper_mastery\n"),
            all.1,
            all.2,
            "the active phase `paper_mastery` does not permit live trading",
        ),
        ("no confirmation", all.0.clone(), all.1, None, "`--confirm-live ACCOUNT_NUMBER` was not given"),
    ];
    for (case, extra, arm, confirm, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let bot = write_bot(dir.path(), &extra);
        let (server, broker) = start_mock(&rt);
        let mut cmd = bot_cmd(&bot, &dir.path().join("j.sqlite"), &server);
        cmd.args(["--to", "2016-03-01"])
            .env("HTTPS_PROXY", &proxy)
            .env("HTTP_PROXY", &proxy)
            .env("NO_PROXY", "127.0.0.1");
        if let Some(a) = arm {
            cmd.env("TRADEDSL_ARM_LIVE", a);
        }
        if let Some(c) = confirm {
            cmd.args(["--confirm-live", c]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        if expected.is_empty() {
            assert!(!stderr.contains("live trading refused"), "{case}: {stderr}");
        } else {
            assert!(stderr.contains("live trading refused, using the PAPER host"), "{case}: {stderr}");
            assert!(stderr.contains(expected), "{case}: {stderr}");
        }
        assert!(!stderr.contains("LIVE TRADING: REAL MONEY"), "{case}: {stderr}");
        // It traded on the paper side (the mock), and nothing went anywhere else.
        drop(broker);
        let requests = rt.block_on(server.received_requests()).unwrap();
        assert!(requests.iter().any(|r| r.url.path() == "/v2/account"), "{case}: the paper broker was not used");
        assert!(seen.lock().unwrap().is_empty(), "{case}: requests left for {:?}", seen.lock().unwrap());
    }
    // With every gate, the bot's first act is to verify the account on the live host (here it
    // cannot be reached): the proxy sees that one attempt, and the bot stops, trading nothing.
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), &all.0);
    let (server, broker) = start_mock(&rt);
    let out = bot_cmd(&bot, &dir.path().join("j.sqlite"), &server)
        .args(["--to", "2016-03-01", "--confirm-live", "PA123LIVE"])
        .env("TRADEDSL_ARM_LIVE", "broker_test")
        .env("HTTPS_PROXY", &proxy)
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot verify the live account"), "{stderr}");
    assert!(!stderr.contains("mock-secret"), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|l| l.starts_with("CONNECT api.alpaca.markets:443")), "{seen:?}");
    assert!(rt.block_on(server.received_requests()).unwrap().is_empty(), "the live override must not use the mock");
    assert!(broker.0.lock().unwrap().orders.is_empty());
}

#[test]
fn a_position_changed_at_the_broker_mid_run_halts_the_bot_at_the_next_reconciliation() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), "");
    let (server, broker) = start_mock(&rt);
    let db = dir.path().join("j.sqlite");
    // About 125 daily bars a second; the start's reconciliation passes.
    let mut child = bot_cmd(&bot, &db, &server).args(["--speed", "10800000"]).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // Someone buys 7 shares of AAPL in the account, outside the bot.
    *broker.0.lock().unwrap().positions.entry("AAPL".into()).or_insert(0.0) += 7.0;
    let changed = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(changed.elapsed() > Duration::from_millis(500), "the run ended too soon to test");
    let c = Connection::open(&db).unwrap();
    let halts = rows(&c, "SELECT ts, message FROM state_changes WHERE reason = 'reconcile_mismatch'");
    assert_eq!(halts.len(), 1, "{halts:?}");
    assert!(halts[0][1].contains("AAPL: the broker holds"), "{}", halts[0][1]);
    let first: i64 = c.query_row("SELECT first_bar_ts FROM runs", [], |r| r.get(0)).unwrap();
    assert!(halts[0][0].parse::<i64>().unwrap() > first, "found mid-run, not at the start");
    let reconciled = crate::common::count(&c, "SELECT COUNT(*) FROM broker_events WHERE kind = 'reconcile'");
    assert!(reconciled > 10, "reconciled {reconciled} times");
    let after = crate::common::count(
        &c,
        &format!(
            "SELECT COUNT(*) FROM orders WHERE intent = 'entry' AND status != 'rejected' AND created_ts > {}",
            halts[0][0]
        ),
    );
    assert_eq!(after, 0, "entries went out after the halt");
}
