//! Operating a bot: the wall-clock heartbeat a running bot writes, `dsl status` showing its
//! age and STALE past the limits, `dsl status --check` failing for a stale, HALTED or
//! broker-failing bot (judged `--at` a given time, so no test depends on the clock), and the
//! example systemd units calling real commands and flags.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::Connection;

use crate::common::{checkpoints, dsl, rows, wait_checkpoints};

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dsl"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env("NO_COLOR", "1");
    c
}

/// `dsl status examples/bot.yaml --check --at TIME` on `journal`: exit code, stdout, stderr.
fn check(journal: &Path, at: i64) -> (i32, String, String) {
    let at = chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out =
        bin().args(["status", "examples/bot.yaml", "--check", "--at", &at, "--journal"]).arg(journal).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A bot killed mid-run (its run stays `running`) and its journal.
fn killed_run(dir: &Path) -> PathBuf {
    let db = dir.join("j.sqlite");
    let mut child = bin()
        .args(["run", "examples/bot.yaml", "--quiet", "--speed", "17280000", "--journal"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_checkpoints(&db, 0, 30, &mut child).is_none(), "the run ended too soon");
    child.kill().unwrap();
    child.wait().unwrap();
    db
}

fn heartbeat(db: &Path) -> (i64, i64) {
    let c = Connection::open(db).unwrap();
    let r = rows(&c, "SELECT wall_ts, bar_ts FROM heartbeat");
    assert_eq!(r.len(), 1, "one heartbeat row per run");
    (r[0][0].parse().unwrap(), r[0][1].parse().unwrap())
}

#[test]
fn a_running_bot_beats_and_a_dead_one_goes_stale() {
    let before = chrono::Utc::now().timestamp();
    let dir = tempfile::tempdir().unwrap();
    let db = killed_run(dir.path());
    let after = chrono::Utc::now().timestamp();
    let (wall, bar) = heartbeat(&db);
    assert!((before..=after).contains(&wall), "the heartbeat is the wall clock: {wall} not in {before}..{after}");
    let c = Connection::open(&db).unwrap();
    let last_bar: i64 = rows(&c, "SELECT ts FROM run_status")[0][0].parse().unwrap();
    assert_eq!(bar, last_bar, "the heartbeat names the last committed bar");
    assert!(checkpoints(&db) >= 30);

    // Ten seconds after its last beat the bot is healthy; two minutes and a second after, it
    // is stale and --check fails, saying why.
    let (code, out, err) = check(&db, wall + 10);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("heartbeat     10s ago") && out.contains(", ok, broker sim"), "{out}");
    let (code, out, err) = check(&db, wall + 121);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("STALE: no heartbeat for 2m 1s"), "{out}");
    assert!(err.contains("check failed: STALE: no heartbeat for 2m 1s"), "{err}");
    let json = bin().args(["status", "examples/bot.yaml", "--format", "json", "--journal"]).arg(&db).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["run"]["heartbeat"]["wall_ts"], wall);
    assert_eq!(v["run"]["heartbeat"]["broker"], "sim");
}

/// A bot on a live feed with no new bar: stale while its market's session is open, not on a
/// weekend; a failing broker fails the check too.
#[test]
fn a_stalled_feed_and_a_failing_broker_fail_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = killed_run(dir.path());
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    // Wednesday 2024-01-03, 10:00 New York: the last one-minute bar began at 09:40.
    let (now, bar) = (t("2024-01-03T15:00:00Z"), t("2024-01-03T14:40:00Z"));
    let c = Connection::open(&db).unwrap();
    c.execute(
        "UPDATE heartbeat SET wall_ts = ?1, bar_ts = ?2, bar_secs = 60, live = 1",
        rusqlite::params![now - 5, bar],
    )
    .unwrap();
    let (code, out, _) = check(&db, now);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("STALE: no new bar for 19m 0s while the market is open"), "{out}");
    // Saturday: no session, no bar expected.
    let sat = t("2024-01-06T15:00:00Z");
    c.execute("UPDATE heartbeat SET wall_ts = ?1, bar_ts = ?2", rusqlite::params![sat - 5, sat - 3600 * 20]).unwrap();
    let (code, out, err) = check(&db, sat);
    assert_eq!(code, 0, "{out}{err}");
    c.execute("UPDATE heartbeat SET broker = 'failing: 2 failures in a row (last: connection refused)'", []).unwrap();
    let (code, _, err) = check(&db, sat);
    assert_eq!(code, 1);
    assert!(err.contains("check failed: broker failing: 2 failures in a row"), "{err}");
}

#[test]
fn a_halted_bot_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    let out = bin().args(["run", "examples/bot.yaml", "--quiet", "--journal"]).arg(&db).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (wall, _) = heartbeat(&db);
    assert_eq!(check(&db, wall + 3600 * 24 * 365).0, 0, "a completed run is never stale");
    let out = bin().args(["halt", "examples/bot.yaml", "--reason", "maintenance", "--journal"]).arg(&db).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _, err) = check(&db, wall);
    assert_eq!(code, 1);
    assert!(err.contains("check failed: HALTED since"), "{err}");
}

/// The example units call real subcommands with real flags (clap parses them, then `--help`
/// stops before anything runs).
#[test]
fn the_example_systemd_units_call_real_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd");
    let mut seen = 0;
    for name in ["tradedsl-bot.service", "tradedsl-check.service"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/dsl"));
        let args: Vec<&str> = words.collect();
        let out = dsl().args(&args).arg("--help").output().unwrap();
        assert!(
            out.status.success(),
            "{name}: `dsl {}` does not parse: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        seen += 1;
    }
    let bot = std::fs::read_to_string(root.join("tradedsl-bot.service")).unwrap();
    assert!(bot.contains("Restart=on-failure"));
    assert!(std::fs::read_to_string(root.join("tradedsl-check.timer")).unwrap().contains("OnUnitActiveSec="));
    assert_eq!(seen, 2);
}

/// Completion scripts and man pages come from the command definitions: every shell gets a
/// script naming the commands (bash loads its own), and `dsl man` / `dsl man run` are roff
/// pages with the commands and flags.
#[test]
fn completions_and_man_pages_are_generated_from_the_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = dsl().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for cmd in ["backtest", "validate", "status", "completions"] {
            assert!(text.contains(cmd), "{shell} completions lack `{cmd}`");
        }
    }
    let script = dsl().args(["completions", "bash"]).output().unwrap().stdout;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dsl.bash"), script).unwrap();
    if let Ok(out) =
        Command::new("bash").arg("-c").arg("source dsl.bash && complete -p dsl").current_dir(dir.path()).output()
    {
        assert!(out.status.success(), "bash cannot load the script: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("dsl"));
    }
    let man = String::from_utf8(dsl().arg("man").output().unwrap().stdout).unwrap();
    assert!(man.contains(".TH dsl 1") && man.contains("backtest") && man.contains("walkforward"), "{man}");
    let run = String::from_utf8(dsl().args(["man", "run"]).output().unwrap().stdout).unwrap();
    assert!(run.contains(".TH dsl-run 1") && run.contains("confirm\\-live"), "{run}");
    let out = dsl().args(["man", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command `nope`"));
}

/// `GET path` (or another method) on `addr`, HTTP/1.0: status code and body.
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// The value of the sample `name{labels}` (labels as written, `bot` first).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' '))?.parse().ok())
}

/// `dsl run --metrics`: while the bot waits for its next bar, the endpoint's numbers are the
/// journal's (equity at the last checkpoint, filled and rejected orders, fills, denials by
/// rule, the last bar); it is read-only; a public address needs its own flag and a port in
/// use stops the start.
#[test]
fn a_running_bot_serves_its_metrics_and_they_match_the_journal() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    // Real AAPL bars, then one bar far in the future: the paced replay waits for it (an hour,
    // the longest wait of a paced replay) with the state of 2018-02-07 fixed.
    let mut csv = std::fs::read_to_string(format!("{root}/examples/data/AAPL.csv")).unwrap();
    csv.push_str("2099-01-02,160,161,159,160,1000,AAPL\n");
    std::fs::write(dir.path().join("AAPL.csv"), csv).unwrap();
    std::fs::write(
        dir.path().join("s.yaml"),
        "kind: strategy\nname: fast\nuniverse: [AAPL]\ntimeframe: 1d\n\
         entry: crosses_above(sma(close, 5), sma(close, 20))\nexit: crosses_below(sma(close, 5), sma(close, 20))\n\
         stop_loss: 3%\nsizing:\n  percent_of_equity: 4%\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "kind: policy\nname: price_cap\nrules:\n  - id: above_150\n    when: order.intent == \"entry\" and order.price > 150\n    action: deny\n    message: no entries above 150\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bot.yaml"),
        "kind: bot\nname: metered\nstrategies: [s.yaml]\npolicies: [p.yaml]\ndata: {csv: {AAPL: AAPL.csv}}\n\
         starting_cash: 100000\ndatabase: j.sqlite\n",
    )
    .unwrap();
    let db = dir.path().join("j.sqlite");
    let mut child = bin()
        .current_dir(dir.path())
        .args(["--log-format", "json", "run", "bot.yaml", "--speed", "100000000", "--metrics", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    while addr.is_none() {
        let line = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the metrics address is logged");
        addr = line.split("http://").nth(1).and_then(|r| r.split("/metrics").next()).map(str::to_string);
    }
    let addr = addr.unwrap();
    let last = chrono::DateTime::parse_from_rfc3339("2018-02-07T00:00:00Z").unwrap().timestamp();
    let ts = || {
        Connection::open(&db)
            .ok()
            .and_then(|c| c.query_row("SELECT ts FROM run_status", [], |r| r.get::<_, i64>(0)).ok())
    };
    crate::common::wait_until("the checkpoint of 2018-02-07", &mut child, || ts() == Some(last)).unwrap();
    let (code, text) = http(&addr, "GET", "/metrics");
    assert_eq!(code, 200, "{text}");
    let c = Connection::open(&db).unwrap();
    let one = |sql: &str| -> f64 { c.query_row(sql, [], |r| r.get::<_, f64>(0)).unwrap() };
    let equity = one("SELECT equity FROM run_status");
    let m = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
    assert!((m("tradedsl_equity{bot=\"metered\"}") - equity).abs() < 1e-6 * equity, "{text}");
    let filled = one("SELECT COUNT(*) FROM orders WHERE status = 'filled'");
    let rejected = one("SELECT COUNT(*) FROM orders WHERE status = 'rejected'");
    let denied =
        one("SELECT COUNT(*) FROM policy_decisions WHERE fired = 1 AND action = 'deny' AND rule_id = 'above_150'");
    let fills = one("SELECT COUNT(*) FROM fills");
    assert!(filled > 5.0 && denied > 2.0, "the bot traded and was denied: {filled} {denied}");
    assert_eq!(m("tradedsl_orders_total{bot=\"metered\",status=\"filled\"}"), filled, "{text}");
    assert_eq!(m("tradedsl_orders_total{bot=\"metered\",status=\"rejected\"}"), rejected, "{text}");
    assert_eq!(m("tradedsl_rejections_total{bot=\"metered\",rule=\"price_cap/above_150\"}"), denied, "{text}");
    assert_eq!(m("tradedsl_fills_total{bot=\"metered\"}"), fills, "{text}");
    assert_eq!(m("tradedsl_slippage_bps_count{bot=\"metered\"}"), fills, "{text}");
    assert_eq!(m("tradedsl_last_bar_timestamp_seconds{bot=\"metered\"}"), last as f64, "{text}");
    assert_eq!(m("tradedsl_trading_state{bot=\"metered\",state=\"ACTIVE\"}"), 1.0, "{text}");
    assert!(m("tradedsl_heartbeat_age_seconds{bot=\"metered\"}") >= 0.0);
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Read-only.
    assert_eq!(http(&addr, "POST", "/metrics").0, 405);
    assert_eq!(http(&addr, "GET", "/anything").0, 404);
    // A second bot cannot take the same port; nor bind the network without saying so.
    for (args, expected) in [
        (vec!["--metrics", addr.as_str()], "cannot serve metrics"),
        (vec!["--metrics", "0.0.0.0:0"], "not a loopback address"),
    ] {
        let out = bin()
            .current_dir(dir.path())
            .args(["run", "bot.yaml", "--journal", "other.sqlite"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expected), "{err}");
        assert!(!dir.path().join("other.sqlite").exists() || run_count(&dir.path().join("other.sqlite")) == 0);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn run_count(db: &Path) -> i64 {
    Connection::open(db).unwrap().query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0)).unwrap_or(0)
}

/// A Market Data API whose crypto feed stopped: it serves one-minute BTC/USD bars up to eight
/// minutes ago and nothing newer.
#[derive(Clone)]
struct StalledFeed {
    last: i64,
}

impl wiremock::Respond for StalledFeed {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        if req.url.path() != "/v1beta3/crypto/us/bars" {
            return wiremock::ResponseTemplate::new(404);
        }
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let parse =
            |k: &str| q.get(k).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.timestamp());
        let (start, end) = (parse("start").unwrap_or(i64::MIN), parse("end").unwrap_or(i64::MAX));
        let bars: Vec<serde_json::Value> = (0..200)
            .map(|k| self.last - 60 * (199 - k))
            .filter(|t| *t >= start && *t <= end)
            .map(|t| {
                let time = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let p = 40_000.0 + (t % 3600) as f64;
                serde_json::json!({"t": time, "o": p, "h": p + 5.0, "l": p - 5.0, "c": p + 1.0, "v": 1.5, "n": 10, "vw": p})
            })
            .collect();
        wiremock::ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"bars": {"BTC/USD": bars}, "next_page_token": null}))
    }
}

/// A live bot whose feed stops: it keeps beating, and `dsl status --check` fails once no new
/// bar came for the threshold (three bars, at least 5 minutes; crypto's market never closes),
/// not before.
#[test]
fn a_stopped_feed_fails_the_check_after_its_threshold() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let now = chrono::Utc::now().timestamp();
    let last = now - now.rem_euclid(60) - 480;
    let server = rt.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any()).respond_with(StalledFeed { last }).mount(&server).await;
        server
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("s.yaml"),
        "kind: strategy\nname: btc\nuniverse: [BTC/USD]\ntimeframe: 1m\nentry: close > sma(close, 20)\n\
         exit: close < sma(close, 20)\nsizing:\n  percent_of_equity: 5%\n",
    )
    .unwrap();
    std::fs::write(
        d.join("bot.yaml"),
        "kind: bot\nname: btc_bot\nstrategies: [s.yaml]\nstarting_cash: 10000\ndatabase: j.sqlite\n",
    )
    .unwrap();
    let db = d.join("j.sqlite");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .current_dir(d)
        .args(["run", "bot.yaml", "--quiet", "--feed", "alpaca", "--poll", "0.25", "--warmup-days", "1"])
        .env("APCA_API_KEY_ID", "PKMOCK")
        .env("APCA_API_SECRET_KEY", "mock-secret")
        .env("TRADEDSL_ALPACA_DATA_URL", server.uri())
        .env_remove("TRADEDSL_ALPACA_TRADING_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The bot warmed up on the history and waits for a bar that never comes, beating.
    let mut beat = None;
    crate::common::wait_until("a heartbeat of the waiting bot", &mut child, || {
        beat = Connection::open(&db).ok().and_then(|c| {
            c.query_row("SELECT wall_ts, bar_ts, live FROM heartbeat", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .ok()
        });
        beat.is_some()
    })
    .unwrap();
    let (wall, bar, live): (i64, Option<i64>, bool) = beat.unwrap();
    assert!(live, "a live feed");
    assert_eq!(bar, Some(last), "the heartbeat names the newest bar, a warm-up bar here");
    let status = |at: i64| {
        let at = chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let out = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
            .current_dir(d)
            .args(["status", "bot.yaml", "--check", "--at", &at])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let bar_end = last + 60;
    // Within the threshold (5 minutes after the last bar ended): healthy.
    let (code, err) = status(bar_end + 299);
    assert_eq!(code, Some(0), "{err}");
    // Past it: stale, the heartbeat itself still fresh.
    let (code, err) = status(bar_end + 301);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("STALE: no new bar for 5m 1s while the market is open"), "{err}");
    let (code, err) = status(wall + 1);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no new bar for") && !err.contains("no heartbeat"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}
