//! `dsl data fetch` and `dsl data list` against a mock Market Data API answering with real
//! Alpaca bodies (`tests/data/alpaca`: the META daily pagination pair, an empty page, crypto
//! bars): every page followed and stored, a rate limit waited out, a second fetch resuming
//! after the stored bars, a failure mid-download keeping the pages stored, and the listing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{dsl, rows};

fn body(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alpaca").join(name)).unwrap()
}

/// Answers like Alpaca: the META daily bars in two pages (then the empty page that ends the
/// chain), nothing after them, the crypto bars; the first `limited` requests get a 429, and
/// requests for the second page fail with 500 while `broken` is set.
#[derive(Clone)]
struct Alpaca {
    seen: Arc<Mutex<Vec<String>>>,
    limited: Arc<AtomicUsize>,
    broken: Arc<AtomicUsize>,
}

impl Respond for Alpaca {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.seen.lock().unwrap().push(req.url.to_string());
        if self.limited.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            let reset = chrono::Utc::now().timestamp();
            return ResponseTemplate::new(429)
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_string("{\"message\": \"too many requests.\"}");
        }
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let json = |name: &str| ResponseTemplate::new(200).set_body_raw(body(name), "application/json");
        if req.url.path() == "/v1beta3/crypto/us/bars" {
            return json("GET_v1beta3_crypto_us_bars__200__go_multi.json");
        }
        let page1 = body("GET_v2_stocks_bars__200__go_META_1Day_page1.json");
        let page2 = body("GET_v2_stocks_bars__200__go_META_1Day_page2.json");
        let token = |page: &str| serde_json::from_str::<serde_json::Value>(page).unwrap()["next_page_token"].clone();
        match q.get("page_token") {
            None if q["start"].as_str() <= "2022-06-08T04:00:00Z" => {
                json("GET_v2_stocks_bars__200__go_META_1Day_page1.json")
            }
            None => json("GET_v2_stocks_bars__200__alpaca-py_empty_1.json"),
            Some(t) if Some(t.as_str()) == token(&page1).as_str() => {
                if self.broken.load(Ordering::SeqCst) > 0 {
                    ResponseTemplate::new(500).set_body_string("internal error")
                } else {
                    json("GET_v2_stocks_bars__200__go_META_1Day_page2.json")
                }
            }
            Some(t) if Some(t.as_str()) == token(&page2).as_str() => {
                json("GET_v2_stocks_bars__200__alpaca-py_empty_1.json")
            }
            Some(_) => ResponseTemplate::new(400).set_body_string("{\"message\": \"invalid page token\"}"),
        }
    }
}

fn serve(rt: &tokio::runtime::Runtime, limited: usize, broken: usize) -> (Alpaca, MockServer) {
    let a = Alpaca {
        seen: Arc::default(),
        limited: Arc::new(AtomicUsize::new(limited)),
        broken: Arc::new(AtomicUsize::new(broken)),
    };
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(a.clone()).mount(&server).await;
        server
    });
    (a, server)
}

fn fetch(server: &MockServer, db: &Path, symbols: &str) -> std::process::Output {
    dsl()
        .env("APCA_API_KEY_ID", "mock-key")
        .env("APCA_API_SECRET_KEY", "mock-secret-never-printed")
        .env("TRADEDSL_ALPACA_DATA_URL", server.uri())
        .args(["data", "fetch", "--symbols", symbols, "--timeframe", "1d", "--from", "2022-06-01", "--db"])
        .arg(db)
        .output()
        .unwrap()
}

fn stored(db: &Path) -> Vec<Vec<String>> {
    let c = Connection::open(db).unwrap();
    rows(&c, "SELECT symbol, timeframe, ts, open, high, low, close, volume FROM bars ORDER BY symbol, ts")
}

#[test]
fn bars_are_fetched_page_by_page_resumed_and_listed() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (alpaca, server) = serve(&rt, 1, 0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bars.sqlite");
    let out = fetch(&server, &db, "META");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("mock-secret") && !stderr.contains("mock-secret"));
    // The 429 was waited out; then page 1, page 2 and the empty page that ends the chain.
    assert_eq!(alpaca.seen.lock().unwrap().len(), 4, "{:?}", alpaca.seen.lock().unwrap());
    let bars = stored(&db);
    let day = |d: &str| {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp()
            .to_string()
    };
    // Alpaca's days (stamped at midnight New York) are stored at 00:00 UTC of their date, with
    // the body's prices.
    assert_eq!(
        bars,
        [
            vec!["META", "1d", &day("2022-06-08"), "194.67", "202.03", "194.41", "196.64", "22211813"],
            vec!["META", "1d", &day("2022-06-09"), "194.28", "199.45", "183.68", "184", "23458984"],
            vec!["META", "1d", &day("2022-06-10"), "183.04", "183.1", "175.02", "175.57", "27398594"],
            vec!["META", "1d", &day("2022-06-13"), "170.59", "172.575", "164.03", "164.26", "31514255"],
        ]
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    assert!(stdout.contains("META") && stdout.contains("4 bars"), "{stdout}");

    // Again: it resumes after the last stored bar and stores nothing new.
    alpaca.seen.lock().unwrap().clear();
    let out = fetch(&server, &db, "META");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = alpaca.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("start=2022-06-13T00%3A00%3A01Z"), "{seen:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed after 2022-06-13T00:00:00Z"));
    assert_eq!(stored(&db).len(), 4);

    // The listing: range, no gap (June 11-12 is a weekend); JSON for machines.
    let out = dsl().args(["data", "list", "--db"]).arg(&db).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("META       1d          4 bars  2022-06-08T00:00:00Z .. 2022-06-13T00:00:00Z  0 gaps"),
        "{text}"
    );
    let out = dsl().args(["data", "list", "--format", "json", "--db"]).arg(&db).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["bars"], 4);
    assert_eq!(v[0]["gaps"], 0);
}

/// A failure mid-download stops the fetch with an error naming what was kept; the next fetch
/// resumes after it.
#[test]
fn a_failed_page_keeps_what_was_stored_and_the_next_fetch_resumes() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (alpaca, server) = serve(&rt, 0, 1);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bars.sqlite");
    let out = fetch(&server, &db, "META");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fetching `META` failed") && err.contains("2 bars of `META` were stored"), "{err}");
    assert_eq!(stored(&db).len(), 2, "page 1 is kept");
    alpaca.broken.store(0, Ordering::SeqCst);
    alpaca.seen.lock().unwrap().clear();
    let out = fetch(&server, &db, "META");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Resumed after the last stored bar, 2022-06-09 (this mock has nothing after that start,
    // so the store keeps its 2 bars).
    assert!(alpaca.seen.lock().unwrap()[0].contains("start=2022-06-09T00%3A00%3A01Z"));
    let out = dsl().args(["data", "list", "--db"]).arg(&db).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 bars"));
}

/// Crypto pairs come from the crypto endpoint; a second bar at the same time is skipped and
/// counted, never stored twice.
#[test]
fn crypto_bars_with_duplicate_times_are_stored_once() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_alpaca, server) = serve(&rt, 0, 0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bars.sqlite");
    let out = dsl()
        .env("APCA_API_KEY_ID", "k")
        .env("APCA_API_SECRET_KEY", "s")
        .env("TRADEDSL_ALPACA_DATA_URL", server.uri())
        .args([
            "data",
            "fetch",
            "--symbols",
            "BCH/USD",
            "--timeframe",
            "1h",
            "--from",
            "2021-11-20",
            "--format",
            "json",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&body("GET_v1beta3_crypto_us_bars__200__go_multi.json")).unwrap();
    let sent = body["bars"]["BCH/USD"].as_array().unwrap();
    let distinct: std::collections::BTreeSet<&str> = sent.iter().map(|b| b["t"].as_str().unwrap()).collect();
    assert_eq!(v[0]["written"], distinct.len());
    assert_eq!(v[0]["duplicates"], sent.len() - distinct.len());
    assert!(sent.len() > distinct.len(), "the real body has bars at the same time");
    assert_eq!(stored(&db).len(), distinct.len());
}

#[test]
fn fetch_refuses_what_alpaca_cannot_serve() {
    let out = dsl()
        .env("APCA_API_KEY_ID", "k")
        .env("APCA_API_SECRET_KEY", "s")
        .args(["data", "fetch", "--symbols", "AAPL", "--timeframe", "2d", "--from", "2022-01-01", "--db", "x.sqlite"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a command-line value Alpaca cannot serve is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Alpaca has no 2d bars"));
    let out = dsl()
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .args(["data", "fetch", "--symbols", "AAPL", "--timeframe", "1d", "--from", "2022-01-01", "--db", "x.sqlite"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("APCA_API_KEY_ID"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
