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
    let kills = kill_until_complete(&bot, &db, &server, &broker, 0x9e37_79b9_7f4a_7c15, (30, 400));
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

/// Runs the bot to completion, killing it (SIGKILL) after `window.0` to `window.0 + window.1`
/// ms of each start and letting the broker
/// kill it in submissions, restarting it each time. Returns the number of kills.
fn kill_until_complete(
    bot: &Path,
    db: &Path,
    server: &MockServer,
    broker: &MockBroker,
    mut seed: u64,
    window: (u64, u64),
) -> usize {
    let mut kills = 0;
    loop {
        // About 125 daily bars a second: six seconds of trading, killed every 30-430 ms.
        let mut child = bot_cmd(bot, db, server)
            .args(["--speed", "10800000"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        broker.0.lock().unwrap().victim = Some(child.id());
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let deadline = std::time::Instant::now() + Duration::from_millis(window.0 + seed % window.1);
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
        if super::common::run_completed(db) {
            break; // killed between the run's completion and the process's exit
        }
        assert!(kills < 300, "the run never completed");
    }
    kills
}

/// The journal's final positions per symbol.
fn journal_positions(db: &Path) -> Vec<(String, String)> {
    let c = Connection::open(db).unwrap();
    let text = &rows(&c, "SELECT positions FROM run_status ORDER BY run_id DESC LIMIT 1")[0][0];
    let positions: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut by_symbol: HashMap<String, f64> = HashMap::new();
    for p in positions.as_array().unwrap() {
        *by_symbol.entry(p["symbol"].as_str().unwrap().to_string()).or_default() += p["quantity"].as_f64().unwrap();
    }
    let mut out: Vec<(String, String)> =
        by_symbol.into_iter().filter(|(_, q)| q.abs() > 1e-9).map(|(s, q)| (s, format!("{q:.6}"))).collect();
    out.sort();
    out
}

#[test]
fn killed_with_broker_faults_on_the_journal_matches_the_broker_and_nothing_is_sent_twice() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), "");
    let (server, broker) = start_mock(&rt);
    {
        let mut st = broker.0.lock().unwrap();
        st.kill_one_in = 9;
        st.fault_one_in = 12;
    }
    let db = dir.path().join("faulty.sqlite");
    let kills = kill_until_complete(&bot, &db, &server, &broker, 0x2545_f491_4f6c_dd1d, (300, 1500));
    let st = broker.0.lock().unwrap();
    eprintln!("{kills} kills, {} faults, {} orders", st.faults, st.orders.len());
    assert!(kills >= 20, "only {kills} kills");
    assert!(st.faults >= 20, "only {} faults", st.faults);
    assert_eq!(st.duplicate_posts, 0, "the broker received an order twice");
    assert_eq!((st.refused_fractional, st.refused_quantity, st.oversold), (0, 0, 0));
    let mut theirs: Vec<(String, String)> =
        st.positions.iter().filter(|(_, q)| q.abs() > 1e-9).map(|(s, q)| (s.clone(), format!("{q:.6}"))).collect();
    theirs.sort();
    drop(st);
    assert_eq!(journal_positions(&db), theirs, "the journal's positions differ from the broker's");
    let c = Connection::open(&db).unwrap();
    let mismatches =
        rows(&c, "SELECT ts, message FROM state_changes WHERE reason IN ('reconcile_mismatch', 'broker_anomaly')");
    assert!(mismatches.is_empty(), "{mismatches:?}");
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
    // With every gate and a URL override (the mock), the bot refuses to start: live money
    // goes to the live host only. Nothing is sent anywhere.
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), &all.0);
    let (server, broker) = start_mock(&rt);
    let live = |cmd: &mut Command| {
        cmd.args(["--to", "2016-03-01", "--confirm-live", "PA123LIVE"])
            .env("TRADEDSL_ARM_LIVE", "broker_test")
            .env("HTTPS_PROXY", &proxy)
            .env("HTTP_PROXY", &proxy)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap()
    };
    let out = live(&mut bot_cmd(&bot, &dir.path().join("j.sqlite"), &server));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("every live gate holds; live trading goes to the live host only"), "{stderr}");
    assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
    assert!(rt.block_on(server.received_requests()).unwrap().is_empty());
    // Without the override, the bot's first act is to verify the account on the live host
    // (here it cannot be reached): the proxy sees that one attempt, and the bot stops, trading
    // nothing.
    let out = live(bot_cmd(&bot, &dir.path().join("j2.sqlite"), &server).env_remove("TRADEDSL_ALPACA_TRADING_URL"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot verify the live account"), "{stderr}");
    assert!(!stderr.contains("mock-secret"), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|l| l.starts_with("CONNECT api.alpaca.markets:443")), "{seen:?}");
    assert!(rt.block_on(server.received_requests()).unwrap().is_empty(), "the live run must not use the mock");
    assert!(broker.0.lock().unwrap().orders.is_empty());
}

/// A broker that echoes the request's API keys back in every body, in the spellings a server
/// might use (as sent, JSON-escaped, percent-encoded), with every kind of answer: malformed
/// 2xx bodies, 4xx refusals, 5xx errors and 429s.
struct Echo(std::sync::atomic::AtomicUsize);

impl wiremock::Respond for Echo {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let (key, secret) = (header("apca-api-key-id"), header("apca-api-secret-key"));
        let json = serde_json::to_string(&secret).unwrap();
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let echo = format!("key={key} secret={secret} json={json} form={encoded} end");
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let template = match (req.url.path(), n % 4) {
            ("/v2/account", _) | (_, 0) => {
                wiremock::ResponseTemplate::new(200).set_body_string(format!("{{\"id\": \"{echo}"))
            }
            (_, 1) => wiremock::ResponseTemplate::new(422)
                .set_body_json(serde_json::json!({"code": 40010001, "message": echo})),
            (_, 2) => wiremock::ResponseTemplate::new(500).set_body_string(echo),
            _ => wiremock::ResponseTemplate::new(429).insert_header("Retry-After", "0").set_body_string(echo),
        };
        template.insert_header("X-Echo", "keys")
    }
}

#[test]
fn a_server_echoing_the_keys_never_gets_them_into_output_or_the_journal() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), "");
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(Echo(Default::default())).mount(&server).await;
        server
    });
    let db = dir.path().join("j.sqlite");
    let (key, secret) = ("PKECHOKEY12345", "s3cr3t/Echo+value \"quoted\"&more");
    let out = bot_cmd(&bot, &db, &server)
        .args(["--to", "2016-02-15"])
        .env("APCA_API_KEY_ID", key)
        .env("APCA_API_SECRET_KEY", secret)
        .env("RUST_LOG", "tradedsl=warn")
        .output()
        .unwrap();
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert!(requests.len() >= 5, "{} requests", requests.len());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stderr.contains("[redacted]"), "the echo never reached the output: {stderr}");
    let journal: Vec<u8> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("j.sqlite"))
        .flat_map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    let journal = String::from_utf8_lossy(&journal).into_owned();
    assert!(journal.contains("[redacted]"), "the echo never reached the journal");
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap();
    for (what, text) in [("stderr", &stderr), ("stdout", &stdout), ("journal", &journal)] {
        for leak in [key, secret, "s3cr3t", encoded.as_str(), json.trim_matches('"')] {
            assert!(!text.contains(leak), "{what} holds `{leak}`");
        }
    }
}

/// A paper bot's URL overrides: every spelling that is not a loopback address or the paper
/// (data) host is refused before any request; allowed ones reach only their host; a redirect
/// from a loopback mock to the live host is not followed. A recording proxy sees every
/// connection to a non-loopback host.
#[test]
fn url_overrides_reach_only_loopback_or_the_paper_host() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (proxy, seen) = recording_proxy();
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), "");
    let (server, _broker) = start_mock(&rt);
    let run = |var: &str, url: &str, to: &str| {
        let mut cmd = bot_cmd(&bot, &dir.path().join("j.sqlite"), &server);
        cmd.args(["--to", to, "--fresh"])
            .env(var, url)
            .env("RUST_LOG", "tradedsl=warn")
            .env("HTTPS_PROXY", &proxy)
            .env("HTTP_PROXY", &proxy)
            .env("NO_PROXY", "127.0.0.1,localhost,::1");
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let refused = [
        "https://API.ALPACA.MARKETS",
        "https://Api.Alpaca.Markets/v2",
        "https://api.alpaca.markets/?x=paper-api.alpaca.markets",
        "https://api.alpaca.markets/#paper-api.alpaca.markets",
        "https://api.alpaca.markets.",
        "https://api.alpaca.markets:443",
        "https://paper-api.alpaca.markets@api.alpaca.markets",
        "https://paper-api.alpaca.markets:pw@api.alpaca.markets/",
        "https://paper-api.alpaca.markets.evil.example",
        "http://paper-api.alpaca.markets",
        "https://paper-api.alpaca.markets/?q=1",
        "http://8.8.8.8:8080",
        "http://[::ffff:8.8.8.8]:8080",
        "http://localhost.evil.example",
        "file:///etc/passwd",
    ];
    for url in refused {
        for var in ["TRADEDSL_ALPACA_TRADING_URL", "TRADEDSL_ALPACA_DATA_URL"] {
            let (ok, stderr) = run(var, url, "2016-01-06");
            assert!(!ok, "{var}={url} was accepted: {stderr}");
            assert!(stderr.contains(&format!("{var} = `{url}` is refused")), "{var}={url}: {stderr}");
        }
    }
    assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
    // The paper host in odd spellings is the paper host: only it is contacted.
    for url in ["https://PAPER-API.Alpaca.Markets.", "https://paper-api.alpaca.markets:443/"] {
        let (_, stderr) = run("TRADEDSL_ALPACA_TRADING_URL", url, "2016-01-05");
        assert!(stderr.contains("(https://paper-api.alpaca.markets/v2/"), "{url}: {stderr}");
    }
    let connects = seen.lock().unwrap().clone();
    assert!(!connects.is_empty(), "the paper host was never contacted");
    assert!(connects.iter().all(|l| l.starts_with("CONNECT paper-api.alpaca.markets:443")), "{connects:?}");
    seen.lock().unwrap().clear();
    // A loopback mock that redirects every request to the live host: never followed.
    let redirect = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                wiremock::ResponseTemplate::new(302).insert_header("Location", "https://api.alpaca.markets/v2/account"),
            )
            .mount(&server)
            .await;
        server
    });
    let (_, stderr) = run("TRADEDSL_ALPACA_TRADING_URL", &redirect.uri(), "2016-01-05");
    assert!(stderr.contains("HTTP 302"), "{stderr}");
    assert!(rt.block_on(redirect.received_requests()).unwrap().len() >= 2);
    assert!(seen.lock().unwrap().is_empty(), "a redirect was followed: {:?}", seen.lock().unwrap());
}

/// A live host stand-in for the switchover test's account lookup: answers `GET /v2/account`
/// with the real body of Alpaca's account endpoint for the live keys (`AKLIVE`), 401 for any
/// other key, and 405 for anything else (an order here would be a failure of the test).
struct LiveAccount;

impl wiremock::Respond for LiveAccount {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        let key = req.headers.get("apca-api-key-id").and_then(|v| v.to_str().ok()).unwrap_or("");
        if req.method.as_str() != "GET" || req.url.path() != "/v2/account" {
            return wiremock::ResponseTemplate::new(405);
        }
        if key != "AKLIVE" {
            return wiremock::ResponseTemplate::new(401).set_body_json(serde_json::json!({"message": "unauthorized."}));
        }
        let body = std::fs::read_to_string(format!(
            "{}/tests/data/alpaca/GET_v2_account__200__alpaca-py.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        wiremock::ResponseTemplate::new(200).set_body_raw(body, "application/json")
    }
}

#[test]
fn a_switchover_test_checks_every_live_gate_for_real_and_trades_on_the_paper_account_only() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let phases = format!(
        "phases:\n  - {root}/phases/1_paper_mastery.yaml\n  - {root}/phases/2_backtest_and_stress.yaml\n  - {root}/phases/3_small_live.yaml\n  - {root}/phases/4_full_live.yaml\n"
    );
    let live_manifest = format!("mode: live\n{phases}phase: small_live\n");
    let (proxy, seen) = recording_proxy();
    let live = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(LiveAccount).mount(&server).await;
        server
    });
    // (case, manifest lines, arm value, --confirm-live, live URL override, passed, what the verdict says)
    type Case<'a> = (&'a str, String, Option<&'a str>, &'a str, bool, bool, &'a str);
    let cases: Vec<Case> = vec![
        ("every gate", live_manifest.clone(), Some("broker_test"), "010203ABCD", true, true, "verdict: PASS"),
        (
            "another account",
            live_manifest.clone(),
            Some("broker_test"),
            "PA999",
            true,
            false,
            "--confirm-live PA999 is not the live account of the live keys (010203ABCD)",
        ),
        ("not armed", live_manifest.clone(), None, "010203ABCD", true, false, "TRADEDSL_ARM_LIVE is not set"),
        (
            "paper phase",
            format!("mode: live\n{phases}phase: paper_mastery\n"),
            Some("broker_test"),
            "010203ABCD",
            true,
            false,
            "the active phase `paper_mastery` does not permit live trading",
        ),
        (
            "paper manifest",
            format!("{phases}phase: small_live\n"),
            Some("broker_test"),
            "010203ABCD",
            true,
            false,
            "`mode: paper`",
        ),
        // Alpaca's live host itself (unreachable here): one account lookup, nothing else.
        (
            "live host",
            live_manifest.clone(),
            Some("broker_test"),
            "010203ABCD",
            false,
            false,
            "cannot verify --confirm-live",
        ),
    ];
    for (case, extra, arm, confirm, mock_live, passed, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let bot = write_bot(dir.path(), &extra);
        // The live phase's limits apply (entries of $100 to $500): a small account.
        let text = std::fs::read_to_string(&bot).unwrap().replace("starting_cash: 100000", "starting_cash: 10000");
        std::fs::write(&bot, text).unwrap();
        let journal = dir.path().join("j.sqlite");
        let (server, broker) = start_mock(&rt);
        let before = rt.block_on(live.received_requests()).unwrap().len();
        let mut cmd = bot_cmd(&bot, &journal, &server);
        cmd.args(["--to", "2016-03-01", "--switchover", "--confirm-live", confirm])
            .env("APCA_API_KEY_ID", "AKLIVE")
            .env("APCA_API_SECRET_KEY", "live-secret")
            .env("APCA_PAPER_API_KEY_ID", "PKMOCK")
            .env("APCA_PAPER_API_SECRET_KEY", "mock-secret")
            .env("HTTPS_PROXY", &proxy)
            .env("HTTP_PROXY", &proxy)
            .env("NO_PROXY", "127.0.0.1");
        if mock_live {
            cmd.env("TRADEDSL_ALPACA_LIVE_URL", live.uri());
        }
        if let Some(a) = arm {
            cmd.env("TRADEDSL_ARM_LIVE", a);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
        assert_eq!(stderr.contains("verdict: PASS"), passed, "{case}: {stderr}");
        assert!(!stderr.contains("LIVE TRADING: REAL MONEY"), "{case}: {stderr}");
        assert!(!stderr.contains("live-secret") && !stderr.contains("mock-secret"), "{case}: {stderr}");
        // The live stand-in got exactly one request (the account lookup, with the live keys).
        let live_requests = rt.block_on(live.received_requests()).unwrap();
        let new: Vec<_> =
            live_requests[before..].iter().map(|r| (r.method.to_string(), r.url.path().to_string())).collect();
        let expected_live = if mock_live { vec![("GET".to_string(), "/v2/account".to_string())] } else { vec![] };
        assert_eq!(new, expected_live, "{case}");
        // Every order went to the paper account, with the paper keys.
        drop(broker);
        let requests = rt.block_on(server.received_requests()).unwrap();
        let orders = requests.iter().filter(|r| r.method.as_str() == "POST" && r.url.path() == "/v2/orders").count();
        assert!(orders > 0, "{case}: no order reached the paper account");
        assert!(
            requests.iter().all(|r| r.headers.get("apca-api-key-id").and_then(|v| v.to_str().ok()) == Some("PKMOCK")),
            "{case}: a request to the paper account carried other keys"
        );
        let seen_now = seen.lock().unwrap().clone();
        if mock_live {
            assert!(seen_now.is_empty(), "{case}: requests left for {seen_now:?}");
        } else {
            assert!(
                !seen_now.is_empty() && seen_now.iter().all(|l| l.starts_with("CONNECT api.alpaca.markets:443")),
                "{case}: {seen_now:?}"
            );
            seen.lock().unwrap().clear();
        }
        // The verdict is journaled, and the run is marked as a paper-account switchover test.
        let c = Connection::open(&journal).unwrap();
        let (ok, account, gates): (bool, Option<String>, String) = c
            .query_row("SELECT passed, live_account, gates FROM switchover_checks WHERE bot = 'broker_test'", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(ok, passed, "{case}");
        assert_eq!(account.as_deref(), mock_live.then_some("010203ABCD"), "{case}");
        let gates: serde_json::Value = serde_json::from_str(&gates).unwrap();
        let names: Vec<&str> = gates.as_array().unwrap().iter().map(|g| g["gate"].as_str().unwrap()).collect();
        assert_eq!(names, ["mode", "arm", "phase", "account"], "{case}");
        let settings: String = c.query_row("SELECT settings FROM runs", [], |r| r.get(0)).unwrap();
        let settings: serde_json::Value = serde_json::from_str(&settings).unwrap();
        assert_eq!((settings["switchover"].as_bool(), settings["environment"].as_str()), (Some(true), Some("paper")));
        // `dsl status` shows the newest verdict.
        let status = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
            .args(["status", "--bot-name", "broker_test", "--journal"])
            .arg(&journal)
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&status.stdout);
        let line = status.lines().find(|l| l.trim_start().starts_with("switchover")).unwrap_or_default();
        assert_eq!(line.contains("PASS"), passed, "{case}: {status}");
        assert_eq!(line.contains("checked against a mock"), mock_live, "{case}: {status}");
    }
    // A switchover test needs the Alpaca paper account: the simulated broker is refused, and
    // so are missing paper keys.
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path(), &live_manifest);
    let (server, _broker) = start_mock(&rt);
    let out = bot_cmd(&bot, &dir.path().join("j.sqlite"), &server)
        .args(["--switchover", "--confirm-live", "010203ABCD"])
        .env("TRADEDSL_ALPACA_LIVE_URL", live.uri())
        .env_remove("APCA_PAPER_API_KEY_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("APCA_PAPER_API_KEY_ID"), "{stderr}");
    let sim = std::fs::read_to_string(&bot).unwrap().replace("broker: alpaca", "broker: sim");
    std::fs::write(&bot, sim).unwrap();
    let out = bot_cmd(&bot, &dir.path().join("j2.sqlite"), &server).arg("--switchover").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("the bot's broker is `sim`"), "{stderr}");
}
