//! The graduation walk, end to end through the `dsl` binary on the example bot's real daily
//! data at full speed: phase 1 (paper mastery) to phase 2 (backtest and stress).
//!
//! The phases are the shipped ones with thresholds the example bot can meet on its data
//! (phase 1: 6 positive months and 0.1% a month over the last 12 months instead of seed 001's
//! 3 and 3%; phase 2: a stress drawdown of 5% sends the bot back instead of 20%, which its 20%
//! exposure cap cannot reach). Everything else is the shipped documents.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::common::{dsl, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn setup(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("phases")).unwrap();
    for f in ["3_small_live", "4_full_live"] {
        std::fs::copy(format!("{ROOT}/phases/{f}.yaml"), dir.join(format!("phases/{f}.yaml"))).unwrap();
    }
    let edit = |name: &str, pairs: &[(&str, &str)]| {
        let mut text = std::fs::read_to_string(format!("{ROOT}/phases/{name}.yaml")).unwrap();
        for (from, to) in pairs {
            assert!(text.contains(from), "{name}: {from}");
            text = text.replace(from, to);
        }
        std::fs::write(dir.join(format!("phases/{name}.yaml")), text).unwrap();
    };
    edit(
        "1_paper_mastery",
        &[
            (
                "    window: 3 months\n    when: metric.months_positive >= 3",
                "    window: 12 months\n    when: metric.months_positive >= 6",
            ),
            (
                "    window: 3 months\n    when: metric.monthly_return >= 3%",
                "    window: 12 months\n    when: metric.monthly_return >= 0.1%",
            ),
        ],
    );
    edit(
        "2_backtest_and_stress",
        &[("when: metric.stress_max_drawdown >= 20%", "when: metric.stress_max_drawdown >= 5%")],
    );
    let bot = std::fs::read_to_string(format!("{ROOT}/examples/bot.yaml"))
        .unwrap()
        .replace("../strategies", &format!("{ROOT}/strategies"))
        .replace("../policies", &format!("{ROOT}/policies"))
        .replace("../phases", "phases")
        .replace(": data/", &format!(": {ROOT}/examples/data/"))
        .replace("database: out/journal.sqlite", "database: journal.sqlite");
    std::fs::write(dir.join("bot.yaml"), bot).unwrap();
    // An injected black swan: every symbol opens 50% lower while the bot holds positions (its
    // stops fill at the gapped open).
    std::fs::write(
        dir.join("crash.yaml"),
        "kind: stress\nname: injected\nmax_drawdown: 20%\nscenarios:\n  - name: everything_gaps\n    gap_down: 50%\n    at: 2014-06-02\n",
    )
    .unwrap();
    dir.join("bot.yaml")
}

fn run(args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = dsl().current_dir(dir).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(dir: &Path) -> serde_json::Value {
    let (ok, out, err) = run(&["gate", "status", "bot.yaml", "--format", "json"], dir);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Each gate's id and whether it holds.
fn verdicts(s: &serde_json::Value) -> Vec<(String, bool)> {
    s["gates"].as_array().unwrap().iter().map(|g| (g["id"].as_str().unwrap().to_string(), g["holds"] == true)).collect()
}

#[test]
fn a_bot_graduates_from_paper_mastery_with_approval_and_a_stress_breach_sends_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir);

    // No runs yet: no evidence, every gate fails.
    let s0 = status(dir);
    assert_eq!(s0["phase"], "paper_mastery");
    let v0 = verdicts(&s0);
    assert_eq!(v0.len(), 5);
    assert!(v0.iter().all(|(_, ok)| !ok), "{v0:?}");
    let (ok, _, _) = run(&["gate", "check", "paper_mastery", "bot.yaml"], dir);
    assert!(!ok, "gate check exits 1 while gates fail");

    // Four months of paper trading: some gates pass, those that need more history not yet.
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet", "--to", "2013-05-31"], dir);
    assert!(ok, "{err}");
    let v1 = verdicts(&status(dir));
    let passing: Vec<&str> = v1.iter().filter(|(_, ok)| *ok).map(|(id, _)| id.as_str()).collect();
    assert!(passing.contains(&"drawdown") && passing.contains(&"no_major_breaches"), "{v1:?}");
    assert!(!passing.contains(&"three_months_traded") && !passing.contains(&"positive_months"), "{v1:?}");
    let (ok, _, err) = run(&["promote", "bot.yaml"], dir);
    assert!(!ok && err.contains("promotion refused: gates of `paper_mastery` fail"), "{err}");

    // The whole history: every gate passes.
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    let s2 = status(dir);
    assert!(verdicts(&s2).iter().all(|(_, ok)| *ok), "{s2:#}");
    assert_eq!(s2["passed"], true);
    let (ok, human, _) = run(&["gate", "status", "bot.yaml"], dir);
    assert!(ok && human.contains("pass   positive_months") && human.contains("metric.months_positive = "), "{human}");
    let (ok, _, _) = run(&["gate", "check", "paper_mastery", "bot.yaml"], dir);
    assert!(ok, "gate check exits 0 once every gate passes");

    // Every gate passes, but nobody approved: refused.
    let (ok, _, err) = run(&["promote", "bot.yaml"], dir);
    assert!(!ok && err.contains("nobody approved"), "{err}");
    // The wrong phrase approves nothing.
    let (ok, _, err) =
        run(&["approve", "paper_mastery", "bot.yaml", "--by", "Jane Trader", "--phrase", "looks good"], dir);
    assert!(!ok && err.contains("Proceed to Phase 2"), "{err}");
    // The phrase is a deliberate act: near misses approve nothing.
    for near in ["Proceed to Phase 2.", "proceed to phase 2", "Proceed to  Phase 2"] {
        let (ok, _, err) = run(&["approve", "paper_mastery", "bot.yaml", "--by", "Jane Trader", "--phrase", near], dir);
        assert!(!ok && err.contains("exactly \"Proceed to Phase 2\""), "{near}: {err}");
    }
    let (ok, out, err) = run(
        &[
            "approve",
            "paper_mastery",
            "bot.yaml",
            "--by",
            "Jane Trader",
            "--phrase",
            " Proceed to Phase 2 ",
            "--format",
            "json",
        ],
        dir,
    );
    assert!(ok, "{err}");
    let approval: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(approval["report_hash"], s2["hash"], "the approval names the report: {out}");
    assert_eq!(
        (approval["phase"].as_str(), approval["next"].as_str()),
        (Some("paper_mastery"), Some("backtest_and_stress"))
    );
    assert!(approval["approval"].as_i64().is_some() && approval["by"] == "Jane Trader", "{out}");
    let (ok, out, err) = run(&["promote", "bot.yaml", "--format", "json"], dir);
    assert!(ok, "{err}");
    let promoted: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (promoted["from"].as_str(), promoted["to"].as_str(), promoted["approved_by"].as_str()),
        (Some("paper_mastery"), Some("backtest_and_stress"), Some("Jane Trader")),
        "{out}"
    );
    assert_eq!(promoted["report_hash"], s2["hash"]);
    let c = Connection::open(dir.join("journal.sqlite")).unwrap();
    let log = rows(&c, "SELECT kind, from_phase, to_phase, actor, report_hash, bundle_revision FROM phase_log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0][..4], ["promotion", "paper_mastery", "backtest_and_stress", "Jane Trader"].map(String::from));
    assert_eq!(log[0][4], s2["hash"].as_str().unwrap());
    assert_eq!(log[0][5], s2["bundle_revision"].as_str().unwrap());
    let snapshot: serde_json::Value = serde_json::from_str(&rows(&c, "SELECT report FROM phase_log")[0][0]).unwrap();
    assert_eq!(snapshot["gates"], s2["gates"], "the promotion keeps the report it was based on");
    // The approval was used: promoting again needs a new one (and phase 2's gates).
    assert_eq!(status(dir)["phase"], "backtest_and_stress");

    // Phase 2 reads backtests and stress runs, journaled in the same database.
    let (ok, _, err) = run(&["backtest", "bot.yaml"], dir);
    assert!(ok, "{err}");
    let s3 = status(dir);
    let history = s3["gates"].as_array().unwrap().iter().find(|g| g["id"] == "backtest_history").unwrap();
    assert_eq!(history["holds"], true, "{history}");
    assert!(history["values"]["metric.backtest_years"].as_f64().unwrap() > 4.9);
    for id in ["significant", "not_lucky", "enough_trades_per_param"] {
        let g = s3["gates"].as_array().unwrap().iter().find(|g| g["id"] == id).unwrap();
        assert!(g["values"].as_object().unwrap().values().all(|v| v.is_number()), "{id}: {g}");
    }

    // The injected gap breaches the phase's stress demotion rule: back to phase 1, halted.
    let (_, _, err) = run(&["stress", "bot.yaml", "--scenarios", "crash.yaml"], dir);
    assert!(err.contains("phase demotion: `backtest_and_stress` to `paper_mastery`"), "{err}");
    assert_eq!(status(dir)["phase"], "paper_mastery");
    let log = rows(&c, "SELECT kind, from_phase, to_phase, actor FROM phase_log ORDER BY log_id");
    assert_eq!(
        log[1],
        ["demotion", "backtest_and_stress", "paper_mastery", "backtest_and_stress/stress_breach"].map(String::from)
    );
    let (ok, out, _) = run(&["status", "bot.yaml"], dir);
    assert!(ok && out.contains("HALTED") && out.contains("phase_demotion"), "{out}");
    assert!(out.contains("phase         paper_mastery (demotion: "), "{out}");
}

#[test]
fn an_approval_file_names_the_report_it_approves() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir);
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    let hash = status(dir)["hash"].as_str().unwrap().to_string();
    let file = |report: &str| {
        format!(
            "kind: approval\nbot: example\nphase: paper_mastery\napproved_by: Jane Trader\nphrase: Proceed to Phase 2\nreport: {report}\n"
        )
    };
    // An approval of another report (stale, or never seen) promotes nothing.
    std::fs::write(dir.join("stale.yaml"), file(&"0".repeat(64))).unwrap();
    let (ok, _, err) = run(&["promote", "bot.yaml", "--approval-file", "stale.yaml"], dir);
    assert!(!ok && err.contains("report is `0000") && err.contains("approve the current one"), "{err}");
    std::fs::write(dir.join("approval.yaml"), file(&hash)).unwrap();
    let (ok, out, err) = run(&["promote", "bot.yaml", "--approval-file", "approval.yaml"], dir);
    assert!(ok, "{err}");
    assert!(out.contains("to `backtest_and_stress`"), "{out}");
    let c = Connection::open(dir.join("journal.sqlite")).unwrap();
    let approvals = rows(&c, "SELECT approved_by, source, report_hash, used_ts IS NOT NULL FROM phase_approvals");
    assert_eq!(approvals, vec![vec!["Jane Trader".to_string(), "file approval.yaml".into(), hash, "1".into()]]);
}

#[test]
fn the_active_phase_limits_the_orders_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let bot = setup(dir);
    // Phase 3 active: entries between 100 and 500 only (the bot sizes at 4.5% of 100,000).
    let text = std::fs::read_to_string(&bot).unwrap().replace("phase: paper_mastery", "phase: small_live");
    std::fs::write(&bot, text).unwrap();
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet", "--to", "2014-12-31"], dir);
    assert!(ok, "{err}");
    let c = Connection::open(dir.join("journal.sqlite")).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&rows(&c, "SELECT settings FROM runs")[0][0]).unwrap();
    assert_eq!(settings["phase"]["phase"], "small_live");
    assert_eq!(settings["phase"]["scaled_up"], false);
    let denied = crate::common::count(
        &c,
        "SELECT COUNT(*) FROM policy_decisions WHERE policy = 'phase_small_live' AND rule_id = 'max_order' AND fired = 1",
    );
    assert!(denied > 10, "{denied}");
    let filled = crate::common::count(
        &c,
        "SELECT COUNT(*) FROM orders WHERE intent = 'entry' AND status = 'filled' AND notional > 500",
    );
    assert_eq!(filled, 0, "no entry above the phase's cap");
    let reason = rows(&c, "SELECT status_reason FROM orders WHERE intent = 'entry' LIMIT 1");
    assert!(reason[0][0].contains("phase small_live: entries of at most 500"), "{reason:?}");
}

#[test]
fn a_running_bot_pauses_itself_when_a_demotion_rule_fires() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir);
    // Phase 1's pause rule at a 2% drawdown, which the example bot reaches in 2014.
    let p = dir.join("phases/1_paper_mastery.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("when: metric.max_drawdown > 10%", "when: metric.max_drawdown > 2%");
    std::fs::write(&p, text).unwrap();
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    assert!(err.contains("phase pause: `paper_mastery` -> `paper_mastery` by paper_mastery/drawdown_pause"), "{err}");
    let c = Connection::open(dir.join("journal.sqlite")).unwrap();
    let paused = rows(&c, "SELECT ts FROM state_changes WHERE reason = 'phase_pause'");
    assert_eq!(paused.len(), 1, "{paused:?}");
    let at: i64 = paused[0][0].parse().unwrap();
    let entries = crate::common::count(
        &c,
        &format!("SELECT COUNT(*) FROM orders WHERE intent = 'entry' AND status = 'filled' AND created_ts >= {at}"),
    );
    assert_eq!(entries, 0, "no entry after the pause");
    // The drawdown the rule saw is the one journaled before the pause.
    let dd: f64 = c
        .query_row(
            &format!("SELECT MAX((SELECT MAX(close_equity) FROM daily_equity d2 WHERE d2.day <= d.day) - close_equity) / 100000.0 FROM daily_equity d WHERE last_ts < {at}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(dd > 0.019, "{dd}");
    let log = rows(&c, "SELECT kind, from_phase, to_phase FROM phase_log");
    assert_eq!(log, vec![vec!["pause".to_string(), "paper_mastery".into(), "paper_mastery".into()]]);
}

#[test]
fn metrics_are_filtered_by_run_kind_strategy_and_window() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir);
    let phase = "kind: phase\nname: probe\nmode: paper\ngates:\n\
        - id: all\n    when: metric.trades >= 0\n    message: m\n\
        - id: macd\n    strategy: macd_trend\n    when: metric.trades >= 0 and metric.win_rate >= 0\n    message: m\n\
        - id: last20\n    window: 20 trades\n    when: metric.trades >= 0 and metric.net_pnl > -1000000\n    message: m\n\
        - id: last6m\n    window: 6 months\n    when: metric.trades >= 0\n    message: m\n\
        - id: backtest\n    from: backtest\n    when: metric.trades >= 0\n    message: m\n"
        .replace("\n- ", "\n  - ");
    std::fs::write(dir.join("phases/probe.yaml"), phase).unwrap();
    let bot =
        std::fs::read_to_string(dir.join("bot.yaml")).unwrap().replace("phases:\n", "phases:\n  - phases/probe.yaml\n");
    std::fs::write(dir.join("bot.yaml"), bot).unwrap();
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["gate", "status", "bot.yaml", "--phase", "probe", "--format", "json"], dir);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let value = |id: &str, metric: &str| -> serde_json::Value {
        r["gates"].as_array().unwrap().iter().find(|g| g["id"] == id).unwrap()["values"][metric].clone()
    };
    let c = Connection::open(dir.join("journal.sqlite")).unwrap();
    let count = |sql: &str| crate::common::count(&c, sql) as f64;
    assert_eq!(value("all", "metric.trades"), count("SELECT COUNT(*) FROM trades"));
    assert_eq!(value("macd", "metric.trades"), count("SELECT COUNT(*) FROM trades WHERE strategy = 'macd_trend'"));
    let wins = count("SELECT COUNT(*) FROM trades WHERE strategy = 'macd_trend' AND pnl > 0");
    let rate = value("macd", "metric.win_rate").as_f64().unwrap();
    assert!((rate - wins / count("SELECT COUNT(*) FROM trades WHERE strategy = 'macd_trend'")).abs() < 1e-12);
    assert_eq!(value("last20", "metric.trades"), 20.0);
    let last20: f64 = c
        .query_row(
            "SELECT SUM(pnl) FROM (SELECT pnl FROM trades ORDER BY exit_ts DESC, trade_no DESC LIMIT 20)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!((value("last20", "metric.net_pnl").as_f64().unwrap() - last20).abs() < 1e-6);
    // Six calendar months back from the last bar (2018-02-07): exits after 2017-08-07.
    assert_eq!(value("last6m", "metric.trades"), count("SELECT COUNT(*) FROM trades WHERE exit_ts > 1502064000"));
    // No backtest journaled: no evidence.
    assert!(value("backtest", "metric.trades").is_null());
    assert_eq!(r["gates"].as_array().unwrap().iter().find(|g| g["id"] == "backtest").unwrap()["holds"], false);
}

#[test]
fn editing_a_gate_after_an_approval_voids_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir);
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    let (ok, _, err) =
        run(&["approve", "paper_mastery", "bot.yaml", "--by", "Jane", "--phrase", "Proceed to Phase 2"], dir);
    assert!(ok, "{err}");
    // Someone loosens a gate after the approval: the report is no longer the one approved.
    let p = dir.join("phases/1_paper_mastery.yaml");
    let text = std::fs::read_to_string(&p).unwrap().replace("metric.max_drawdown < 10%", "metric.max_drawdown < 50%");
    std::fs::write(&p, text).unwrap();
    let (ok, _, err) = run(&["promote", "bot.yaml"], dir);
    assert!(
        !ok && err.contains("nobody approved this gate report") && err.contains("the approval on record is for report"),
        "{err}"
    );
    assert_eq!(status(dir)["phase"], "paper_mastery");
}

#[test]
fn a_backtest_phase_allows_historical_replays_only() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let bot = setup(dir);
    std::fs::write(
        dir.join("phases/0_research.yaml"),
        "kind: phase\nname: research\nmode: backtest\nnext: paper_mastery\napproval: Start paper trading\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&bot)
        .unwrap()
        .replace("phases:\n", "phases:\n  - phases/0_research.yaml\n")
        .replace("phase: paper_mastery", "phase: research");
    std::fs::write(&bot, text).unwrap();
    let out = dsl()
        .current_dir(dir)
        .args(["run", "bot.yaml", "--feed", "alpaca"])
        .env("APCA_API_KEY_ID", "PKMOCK")
        .env("APCA_API_SECRET_KEY", "mock-secret")
        .env("TRADEDSL_ALPACA_DATA_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("allows historical replays only"), "{err}");
    // Replaying the stored bars with the simulated broker is a historical replay: allowed.
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet", "--to", "2013-06-30"], dir);
    assert!(ok, "{err}");
}

/// `examples/sprints.yaml` as `dir/bot.yaml`, starting in `phase`, journaling to
/// `dir/journal.sqlite`.
fn write_sprints_bot(dir: &Path, phase: &str) {
    let bot = std::fs::read_to_string(format!("{ROOT}/examples/sprints.yaml"))
        .unwrap()
        .replace("../strategies", &format!("{ROOT}/strategies"))
        .replace("../policies", &format!("{ROOT}/policies"))
        .replace("../phases", &format!("{ROOT}/phases"))
        .replace(": data/", &format!(": {ROOT}/examples/data/"))
        .replace("phase: sprint_0_cost_math", &format!("phase: {phase}"))
        .replace("database: out/sprints.sqlite", "database: journal.sqlite");
    std::fs::write(dir.join("bot.yaml"), bot).unwrap();
}

/// Gates count the evidence gathered in the phase: after a promotion, the run that earned it
/// does not count for the next phase's gates (one old paper run used to promote a bot through
/// three sprints in a row); a new run does, and `gate status` says which runs it counted.
#[test]
fn gates_count_only_runs_started_in_the_phase() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_sprints_bot(dir, "sprint_0_cost_math");
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    let s0 = status(dir);
    assert_eq!((s0["phase"].as_str(), s0["passed"].as_bool()), (Some("sprint_0_cost_math"), Some(true)), "{s0:#}");
    assert!(s0["gates"][0]["since"].is_null(), "the starting phase counts every run");
    let (ok, _, err) =
        run(&["approve", "sprint_0_cost_math", "bot.yaml", "--by", "Jo", "--phrase", "Proceed to Sprint 1"], dir);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["promote", "bot.yaml"], dir);
    assert!(ok, "{err}");
    // Sprint 1: the old run does not count.
    let s1 = status(dir);
    assert_eq!(s1["phase"], "sprint_1_validation");
    assert_eq!(s1["passed"], false);
    assert!(s1["gates"].as_array().unwrap().iter().all(|g| g["runs"].as_array().unwrap().is_empty()), "{s1:#}");
    assert!(s1["gates"][0]["since"].is_i64(), "{s1:#}");
    let (ok, human, _) = run(&["gate", "status", "bot.yaml"], dir);
    assert!(ok && human.contains("counted: no run counted (runs started since the bot entered the phase"), "{human}");
    // A new paper run in the phase is evidence again.
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    let s2 = status(dir);
    assert_eq!(s2["gates"][0]["runs"].as_array().unwrap().len(), 1, "{s2:#}");
    let (ok, human, _) = run(&["gate", "status", "bot.yaml"], dir);
    assert!(ok && human.contains("counted: run 2, bars 2013-02-08T00:00:00Z .. 2018-02-07T00:00:00Z"), "{human}");
}

/// A running bot reads its own run's evidence for its demotion rules from memory instead of
/// the journal: for every kind of metric (trades, windows, strategy filters, guardrail counts,
/// halts, daily equity) the values equal those read from the journal of the finished run.
#[test]
fn demotion_metrics_from_memory_equal_those_from_the_journal() {
    use tradedsl::runtime::{journal::run_evidence::RunEvidence, phases::gates};
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir);
    let p = dir.join("phases/1_paper_mastery.yaml");
    let mut text = std::fs::read_to_string(&p).unwrap();
    let rules = [
        ("all", "", "metric.trades < 0 and metric.net_pnl < -1e12 and metric.win_rate < 0"),
        (
            "window",
            "    window: 6 months\n",
            "metric.total_return < -100 and metric.max_drawdown > 99% and metric.t_stat < -1e9",
        ),
        ("last", "    window: 20 trades\n", "metric.profit_factor < 0 and metric.avg_pnl < -1"),
        ("strategy", "    strategy: rsi_reversion\n", "metric.denials > 1e9 and metric.net_pnl < -1e12"),
        (
            "guards",
            "",
            "metric.denials > 1e9 and metric.reductions > 1e9 and metric.halts > 1e9 and metric.risk_breaches > 1e9",
        ),
        ("months", "    window: 12 months\n", "metric.months_positive < 0 and metric.monthly_return < -1"),
    ];
    for (id, extra, when) in rules {
        text.push_str(&format!(
            "  - id: {id}\n    from: paper\n{extra}    when: {when}\n    action: pause\n    message: never\n"
        ));
    }
    std::fs::write(&p, text).unwrap();
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet"], dir);
    assert!(ok, "{err}");
    let db = dir.join("journal.sqlite");
    let loaded = tradedsl::runtime::library::loader::load_bundle(&dir.join("bot.yaml")).unwrap();
    let c = tradedsl::runtime::journal::open_read(&db).unwrap();
    let run_id: i64 = c.query_row("SELECT MAX(run_id) FROM runs", [], |r| r.get(0)).unwrap();
    let own = RunEvidence::load(&c, run_id).unwrap();
    assert!(own.trades.len() > 20 && own.fired.len() > 20, "{} trades, {} fired", own.trades.len(), own.fired.len());
    let b = &loaded.bundle;
    let report = |own: Option<&RunEvidence>| gates::report_on(Some(&c), own, &db, "example", b, "paper_mastery", false);
    let (memory, journal) = (report(Some(&own)).unwrap(), report(None).unwrap());
    assert_eq!(memory.demotion.len(), 7);
    for (m, j) in memory.demotion.iter().zip(&journal.demotion) {
        assert_eq!((&m.id, &m.values, m.holds, &m.runs, m.period), (&j.id, &j.values, j.holds, &j.runs, j.period));
        assert!(m.values.values().all(Option::is_some), "{}: {:?}", m.id, m.values);
    }
}

/// Seed 003's production checklist: the last 50 closed trades win at least half the time with a
/// profit factor of at least 1.0. The sprint-5 gates' values equal those computed by hand from
/// the journal's 50 latest exits.
#[test]
fn the_production_sprint_reads_the_last_50_closed_trades() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_sprints_bot(dir, "sprint_5_production");
    let (ok, _, err) = run(&["run", "bot.yaml", "--quiet", "--to", "2016-12-31"], dir);
    assert!(ok, "{err}");
    let c = rusqlite::Connection::open(dir.join("journal.sqlite")).unwrap();
    let mut st =
        c.prepare("SELECT pnl FROM trades ORDER BY exit_ts DESC, run_id DESC, trade_no DESC LIMIT 50").unwrap();
    let last: Vec<f64> = st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(last.len(), 50, "the run closes more than 50 trades");
    let wins = last.iter().filter(|p| **p > 0.0).count() as f64 / 50.0;
    let gross_win: f64 = last.iter().filter(|p| **p > 0.0).sum();
    let gross_loss: f64 = -last.iter().filter(|p| **p < 0.0).sum::<f64>();
    let s = status(dir);
    let gate = |id: &str| s["gates"].as_array().unwrap().iter().find(|g| g["id"] == id).unwrap().clone();
    let w = gate("last_50_win_rate");
    assert_eq!(w["window"], "last 50 trades");
    assert_eq!(w["values"]["metric.trades"], 50.0);
    assert!((w["values"]["metric.win_rate"].as_f64().unwrap() - wins).abs() < 1e-12, "{w:#}");
    assert_eq!(w["holds"], wins >= 0.5);
    let p = gate("last_50_profit_factor");
    let pf = p["values"]["metric.profit_factor"].as_f64().unwrap();
    assert!((pf - gross_win / gross_loss).abs() < 1e-9, "{p:#} vs {}", gross_win / gross_loss);
    assert_eq!(p["holds"], pf >= 1.0);
}
