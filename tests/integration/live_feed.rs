//! `dsl run --feed alpaca`: a mock Market Data API publishes real 1-minute S&P 500 bars
//! (`tests/data/SP500_NOV2019_IDay.csv`) one per second of real time, each once complete. The
//! bot fetches its warm-up history (several pages), trades only on bars that arrive after it,
//! takes each new bar once, stops on SIGINT and resumes from the same history window.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{data, read_csv, rows};

/// Bars published 1 second apart from `base`; bar `k` is visible once `base + k + 60 <= now`.
#[derive(Clone)]
struct MarketData {
    base: i64,
    bars: Arc<Vec<[f64; 5]>>,
    requests: Arc<Mutex<Vec<HashMap<String, String>>>>,
    quote_requests: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

const PAGE: usize = 100;
const HISTORY: i64 = 250;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn parse(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

impl Respond for MarketData {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q: HashMap<String, String> = req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        if req.url.path() == "/v2/stocks/quotes/latest" {
            // A 1% wide quote around 100 (the bars' own prices do not matter to a spread).
            self.quote_requests.lock().unwrap().push(q);
            let t =
                chrono::DateTime::from_timestamp(now(), 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "quotes": {"SPY": {"t": t, "bp": 99.5, "ap": 100.5, "bs": 3, "as": 2, "ax": "V", "bx": "V", "c": ["R"], "z": "B"}}
            }));
        }
        self.requests.lock().unwrap().push(q.clone());
        assert_eq!(req.url.path(), "/v2/stocks/bars");
        let (start, end) = (parse(&q["start"]), parse(&q["end"]));
        let visible: Vec<(i64, &[f64; 5])> = self
            .bars
            .iter()
            .enumerate()
            .map(|(k, b)| (self.base + k as i64, b))
            .filter(|(ts, _)| *ts >= start && *ts <= end && ts + 60 <= now())
            .collect();
        let offset: usize = q.get("page_token").map_or(0, |t| t.parse().unwrap());
        let page: Vec<serde_json::Value> = visible
            .iter()
            .skip(offset)
            .take(PAGE)
            .map(|(ts, b)| {
                let t = chrono::DateTime::from_timestamp(*ts, 0)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                serde_json::json!({"t": t, "o": b[0], "h": b[1], "l": b[2], "c": b[3], "v": b[4], "n": 1, "vw": b[3]})
            })
            .collect();
        let next = (offset + PAGE < visible.len()).then(|| (offset + PAGE).to_string());
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"bars": {"SPY": page}, "next_page_token": next}))
    }
}

/// A mock Market Data API whose `HISTORY` bars are complete now, one more each second.
fn serve(rt: &tokio::runtime::Runtime) -> (MarketData, MockServer) {
    let md = MarketData {
        base: now() - 60 - HISTORY,
        bars: Arc::new(sp500()),
        requests: Default::default(),
        quote_requests: Default::default(),
    };
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any()).respond_with(md.clone()).mount(&server).await;
        server
    });
    (md, server)
}

fn sp500() -> Vec<[f64; 5]> {
    let (header, rows) = read_csv(&data("SP500_NOV2019_IDay.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (o, h, l, c) = (col("Open"), col("High"), col("Low"), col("Close"));
    rows.iter()
        .map(|r| [r[o].parse().unwrap(), r[h].parse().unwrap(), r[l].parse().unwrap(), r[c].parse().unwrap(), 100.0])
        .collect()
}

fn write_bot(dir: &Path) -> std::path::PathBuf {
    write_bot_with(dir, "")
}

/// The bot, with `policies` (a `policies:` line or nothing).
fn write_bot_with(dir: &Path, policies: &str) -> std::path::PathBuf {
    let strategy = "kind: strategy\nname: always_in\nuniverse: [SPY]\ntimeframe: 1m\nentry: close > 0\nexit: close < 0\n\
                    sizing:\n  percent_of_equity: 10%\n";
    std::fs::write(dir.join("always_in.yaml"), strategy).unwrap();
    let bot = format!("kind: bot\nname: live_feed\nstrategies:\n  - always_in.yaml\n{policies}starting_cash: 100000\n");
    std::fs::write(dir.join("bot.yaml"), bot).unwrap();
    dir.join("bot.yaml")
}

fn start(bot: &Path, db: &Path, server: &MockServer) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .args(["run", "--quiet", "--feed", "alpaca", "--poll", "0.25", "--warmup-days", "1", "--journal"])
        .arg(db)
        .arg(bot)
        .env("NO_COLOR", "1")
        .env("APCA_API_KEY_ID", "PKMOCK")
        .env("APCA_API_SECRET_KEY", "mock-secret")
        .env("TRADEDSL_ALPACA_DATA_URL", server.uri())
        .env_remove("TRADEDSL_ALPACA_TRADING_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ctrl-C: the bot finishes its timestamp and stops, resumable.
fn interrupt(mut child: std::process::Child) {
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(status.success(), "{err}");
            return;
        }
        assert!(Instant::now() < deadline, "the bot did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_bot_on_alpaca_market_data_warms_up_then_trades_each_new_bar_once_and_resumes() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bot = write_bot(dir.path());
    let db = dir.path().join("j.sqlite");
    // HISTORY bars are complete when the test starts; one more each second.
    let (md, server) = serve(&rt);

    let mut child = start(&bot, &db, &server);
    // Three new bars traded and a few polls made (the journal and the mock say so).
    let polls = |md: &MarketData| md.requests.lock().unwrap().iter().filter(|q| !q.contains_key("page_token")).count();
    let polled = || crate::common::checkpoints(&db) >= 3 && polls(&md) >= 7;
    assert!(crate::common::wait_until("3 checkpoints and 7 polls", &mut child, polled).is_ok(), "the bot exited early");
    interrupt(child);
    let c = Connection::open(&db).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&rows(&c, "SELECT settings FROM runs")[0][0]).unwrap();
    assert_eq!(settings["feed"], "alpaca");
    let warmup_until = settings["warmup_until"].as_i64().unwrap();
    assert!(warmup_until >= md.base + HISTORY - 1, "the history ends at the last complete bar");
    let first_session: i64 = c.query_row("SELECT ts FROM run_status", [], |r| r.get(0)).unwrap();
    assert!(first_session > warmup_until + 1, "new bars were traded");
    // The warm-up never trades: the first entry is on the first new bar.
    let entries = rows(&c, "SELECT created_ts, status FROM orders WHERE intent = 'entry'");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0][0].parse::<i64>().unwrap(), warmup_until + 1);
    assert_eq!(entries[0][1], "filled");
    {
        let reqs = md.requests.lock().unwrap();
        assert!(reqs.iter().all(|q| q["timeframe"] == "1Min" && q["symbols"] == "SPY" && q["feed"] == "iex"));
        assert!(reqs.iter().filter(|q| q.contains_key("page_token")).count() >= 2, "history pages followed");
        // After the history, each poll asks only for bars after the last one it got.
        let starts: Vec<i64> =
            reqs.iter().filter(|q| !q.contains_key("page_token")).skip(1).map(|q| parse(&q["start"])).collect();
        assert!(starts.len() >= 5, "{} polls", starts.len());
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        assert!(starts.iter().all(|&s| s > warmup_until), "{starts:?}");
        // No rule reads a quote: none is asked for.
        assert!(md.quote_requests.lock().unwrap().is_empty());
    }
    drop(c);

    // Restarted: same history window, replay to the checkpoint, then new bars again.
    let mut child = start(&bot, &db, &server);
    let before = crate::common::checkpoints(&db);
    let more = || crate::common::checkpoints(&db) >= before + 2;
    assert!(crate::common::wait_until("2 more checkpoints", &mut child, more).is_ok(), "the bot exited early");
    interrupt(child);
    let c = Connection::open(&db).unwrap();
    let settings2: serde_json::Value = serde_json::from_str(&rows(&c, "SELECT settings FROM runs")[0][0]).unwrap();
    assert_eq!(settings2, settings, "one run, resumed");
    let second_session: i64 = c.query_row("SELECT ts FROM run_status", [], |r| r.get(0)).unwrap();
    assert!(second_session > first_session, "{second_session} after {first_session}");
    let entries2 = rows(&c, "SELECT created_ts, status FROM orders WHERE intent = 'entry'");
    assert_eq!(entries2, entries, "the replay did not trade again");
    assert_eq!(crate::common::count(&c, "SELECT COUNT(*) - COUNT(DISTINCT client_order_id) FROM orders"), 0);
    assert_eq!(rows(&c, "SELECT status FROM runs"), vec![vec!["running".to_string()]]);
}

/// With a live feed, rules that read the spread see Alpaca's latest quote, fetched before each
/// new timestamp: the shipped `spread_filter` denies the entry on a 1% quoted spread, and the
/// decision records the quoted spread, not the cost model's estimate.
/// A bot whose rules do not read quotes never asks for them (the test above).
#[test]
fn a_live_bot_reads_the_quoted_spread() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let bot = write_bot_with(dir.path(), &format!("policies: [{root}/policies/spread_filter.yaml]\n"));
    let db = dir.path().join("j.sqlite");
    let (md, server) = serve(&rt);
    let mut child = start(&bot, &db, &server);
    let decided = || {
        Connection::open(&db)
            .ok()
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM policy_decisions", [], |r| r.get::<_, i64>(0)).ok())
            .is_some_and(|n| n >= 2)
    };
    assert!(crate::common::wait_until("2 policy decisions", &mut child, decided).is_ok(), "the bot exited early");
    interrupt(child);
    let c = Connection::open(&db).unwrap();
    let decisions = rows(&c, "SELECT rule_id, fired, seen_values FROM policy_decisions");
    for d in &decisions {
        assert_eq!((d[0].as_str(), d[1].as_str()), ("wide_spread", "1"), "{d:?}");
        let seen: serde_json::Value = serde_json::from_str(&d[2]).unwrap();
        // (100.5 - 99.5) / 100: the quote's; the bot's cost model estimates no spread at all.
        assert!((seen["symbol.spread"].as_f64().unwrap() - 0.01).abs() < 1e-12, "{seen}");
    }
    assert_eq!(crate::common::count(&c, "SELECT COUNT(*) FROM fills"), 0, "no entry on a 1% spread");
    let quotes = md.quote_requests.lock().unwrap();
    assert!(quotes.len() >= 2 && quotes.iter().all(|q| q["symbols"] == "SPY"), "{quotes:?}");
}
