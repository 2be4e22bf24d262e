//! `dsl run`: paper trading on replayed real bars with the simulated broker. A run killed with
//! SIGKILL at random points and restarted each time ends exactly where an uninterrupted run
//! ends (same trades, cash, positions), with no `client_order_id` twice; `dsl halt` reaches the
//! running bot through its database and survives a restart; `dsl status` reports the run.

use std::path::Path;
use std::process::{Command, Stdio};

use rusqlite::Connection;

use crate::common::{dsl, rows};

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dsl"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env("NO_COLOR", "1");
    c
}

/// Query results, every value as text.
type Table = Vec<Vec<String>>;

/// Everything that must match between two runs of the same bot on the same bars: trades,
/// orders and the final account.
fn outcome(db: &Path) -> (Table, Table, Table) {
    let c = Connection::open(db).unwrap();
    let trades = rows(
        &c,
        "SELECT trade_no, strategy, symbol, entry_ts, entry_price, exit_ts, exit_price, quantity, pnl, fees, exit_reason, \
         entry_order_id, exit_order_id FROM trades ORDER BY trade_no",
    );
    let orders = rows(
        &c,
        "SELECT order_no, client_order_id, created_ts, symbol, side, intent, order_type, status, status_reason FROM orders ORDER BY order_no",
    );
    let status = rows(&c, "SELECT ts, cash, equity, peak_equity, state, positions FROM run_status");
    (trades, orders, status)
}

#[test]
fn a_paper_run_killed_at_random_points_ends_like_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.sqlite");
    let out = dsl().args(["run", "examples/bot.yaml", "--journal"]).arg(&clean).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // 1,259 daily bars, killed after 1 to 40 committed checkpoints (and a random part of the
    // next bar) and restarted until it completes: the kill points follow the journal, not the
    // clock, so a loaded machine only makes the test slower.
    let crashy = dir.path().join("crashy.sqlite");
    let kills = crate::common::run_killed(&crashy, 0x9e37_79b9_7f4a_7c15, (1, 40), 6_000, 400, || {
        bin()
            .args(["run", "examples/bot.yaml", "--quiet", "--speed", "17280000", "--journal"])
            .arg(&crashy)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    assert!(kills >= 20, "only {kills} kills: the run was too quick to test recovery");
    let (t1, o1, s1) = outcome(&clean);
    let (t2, o2, s2) = outcome(&crashy);
    assert!(t1.len() > 100);
    assert_eq!(t1, t2, "trades differ after {kills} kills");
    assert_eq!(o1, o2, "orders differ after {kills} kills");
    assert_eq!(s1, s2, "final account differs after {kills} kills");
    let c = Connection::open(&crashy).unwrap();
    let dup = crate::common::count(&c, "SELECT COUNT(*) - COUNT(DISTINCT client_order_id) FROM orders");
    assert_eq!(dup, 0, "a client_order_id appears twice");
    let runs = rows(&c, "SELECT run_id, status FROM runs");
    assert_eq!(runs, vec![vec!["1".to_string(), "completed".to_string()]], "one run, resumed each time");
}

#[test]
fn a_halt_reaches_the_running_bot_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    // Slow enough to halt it mid-run: 20 bars a second. Halted after 200 committed bars.
    let mut child = bin()
        .args(["run", "examples/bot.yaml", "--quiet", "--speed", "1728000", "--journal"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(crate::common::wait_checkpoints(&db, 0, 200, &mut child).is_none(), "the run ended too soon");
    let out = dsl()
        .args(["halt", "--journal"])
        .arg(&db)
        .args(["--bot-name", "example", "--reason", "news pending"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The bot applies the halt at its next bar; 20 bars later it is killed.
    let applied = || {
        let c = Connection::open(&db).unwrap();
        crate::common::count(&c, "SELECT COUNT(*) FROM state_changes WHERE reason = 'manual_halt'") == 1
    };
    assert!(crate::common::wait_until("the halt", &mut child, applied).is_ok(), "the run ended before the halt");
    let now = crate::common::checkpoints(&db);
    assert!(crate::common::wait_checkpoints(&db, now, 20, &mut child).is_none(), "the run ended too soon");
    child.kill().unwrap();
    child.wait().unwrap();
    let c = Connection::open(&db).unwrap();
    let halted_at = crate::common::count(&c, "SELECT ts FROM state_changes WHERE reason = 'manual_halt'");
    // After the halt no order was submitted; the restart stays HALTED and runs to the end.
    let out = dsl().args(["run", "examples/bot.yaml", "--journal"]).arg(&db).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Connection::open(&db).unwrap();
    let after = crate::common::count(
        &c,
        &format!(
            "SELECT COUNT(*) FROM orders WHERE created_ts > {halted_at} AND intent = 'entry' AND status != 'rejected'"
        ),
    );
    assert_eq!(after, 0, "entries went out after the halt");
    let blocked = crate::common::count(
        &c,
        &format!("SELECT COUNT(*) FROM orders WHERE created_ts > {halted_at} AND status_reason LIKE 'halted since%'"),
    );
    assert!(blocked > 0);
    let out = dsl().args(["status", "examples/bot.yaml", "--journal"]).arg(&db).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HALTED since") && text.contains("manual_halt: news pending"), "{text}");
    assert!(text.contains("(paper, completed)"), "{text}");
}

/// A start that passed every live gate leaves a `live_armed` record in the journal (the
/// paper loop writes it; the CLI passes the confirmed account only when every gate passed).
#[test]
fn an_armed_live_start_is_journaled() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use tradedsl::runtime::bot::paper::{PaperConfig, run};
    use tradedsl::runtime::library::source::{DataRequest, load_for_bundle};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    let loaded = tradedsl::runtime::library::loader::load_bundle(Path::new("examples/bot.yaml")).unwrap();
    let req = DataRequest {
        data: vec![],
        store: None,
        from: None,
        to: Some(1_400_000_000),
        timezone: None,
        time_format: None,
    };
    let series = load_for_bundle(&loaded, &req).unwrap().series;
    let bot = loaded.bundle.bot.clone().unwrap();
    let settings = tradedsl::engine::pipeline::EngineSettings {
        bot: bot.name.value.clone(),
        run: 0,
        starting_cash: bot.starting_cash.value,
        costs: tradedsl::engine::costs::CostModel::from(&bot.costs),
        fill: bot.fill.value,
    };
    let cfg = PaperConfig {
        lease: None,
        metrics: None,
        bundle: Arc::new(loaded.bundle),
        series,
        settings,
        journal: db.clone(),
        run_settings: tradedsl::runtime::journal::settings::RunSettings {
            environment: Some("live".into()),
            ..Default::default()
        },
        speed: None,
        fresh: false,
        stop: Arc::new(AtomicBool::new(false)),
        gateway: None,
        reloads: None,
        live: None,
        warmup_until: None,
        phase_policy: None,
        live_account: Some("PA123LIVE".into()),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run(cfg)).unwrap();
    let c = Connection::open(&db).unwrap();
    let armed = rows(&c, "SELECT kind, message FROM events WHERE kind = 'live_armed'");
    assert_eq!(armed.len(), 1, "{armed:?}");
    assert!(armed[0][1].starts_with("live trading armed on account PA123LIVE"), "{}", armed[0][1]);
}
