//! `dsl report divergence`: a paper run replayed through the backtester with the same bundle
//! revisions on the same bars. An unchanged run reports no difference (even across a hot
//! reload swapped in after a restart); a run with another slippage reports it on every order
//! filled on both sides; gate rules read the journaled check.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::Connection;

use crate::common::{dsl, wait_checkpoints};

/// `dsl report divergence BOT --journal DB --format json`: exit code and the report.
fn divergence(bot: &Path, db: &Path) -> (i32, serde_json::Value) {
    let out = dsl()
        .args(["report", "divergence"])
        .arg(bot)
        .arg("--journal")
        .arg(db)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn run(bot: &Path, db: &Path, extra: &[&str]) {
    let out = dsl().arg("run").arg(bot).args(["--quiet", "--journal"]).arg(db).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_unchanged_run_matches_its_backtest_and_another_slippage_shows_on_every_order() {
    let dir = tempfile::tempdir().unwrap();
    let bot = PathBuf::from("examples/bot.yaml");
    let db = dir.path().join("same.sqlite");
    run(&bot, &db, &[]);
    let (code, r) = divergence(&bot, &db);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["missing_orders"], 0);
    assert_eq!(r["divergence_bps"], 0.0);
    assert!(r["outcome"].as_array().unwrap().is_empty() && r["trades"].as_array().unwrap().is_empty());
    assert!(r["fills"].as_array().unwrap().len() > 500, "the comparison covered the run's fills");
    assert!(r["equity_days"].as_u64().unwrap() > 1000);
    assert_eq!(r["equity_max_diff"], 0.0);
    let c = Connection::open(&db).unwrap();
    let checks: i64 = c.query_row("SELECT COUNT(*) FROM divergence_checks", [], |r| r.get(0)).unwrap();
    assert_eq!(checks, 1, "the check is journaled");

    // The same bot run with 10 bps of slippage instead of the manifest's 5: each order filled
    // on both sides paid 5 bps more in the run, and the report says so order by order.
    let db = dir.path().join("slipped.sqlite");
    run(&bot, &db, &["--slippage", "10bps"]);
    let (code, r) = divergence(&bot, &db);
    assert_eq!(code, 1, "a divergence exits 1");
    assert_eq!(r["settings"], serde_json::json!([["slippage", "0.001", "0.0005"]]));
    let fills = r["fills"].as_array().unwrap();
    assert!(fills.len() > 500);
    // Market orders: 5 bps of the price, measured against the backtest's slipped price (4.9975
    // on a buy: 1.001 / 1.0005; 5.0025 on a sell: 0.9995 / 0.999). Stops fill at their stop
    // price (or the gap), so slippage moves them little.
    let market: Vec<&serde_json::Value> = fills.iter().filter(|f| f["order_type"] == "market").collect();
    assert!(market.len() > 500);
    for f in &market {
        assert!((f["price_bps"].as_f64().unwrap() - 5.0).abs() < 0.01, "{f}");
    }
    assert!(r["divergence_bps"].as_f64().unwrap() > 4.0, "{}", r["divergence_bps"]);
    assert!(r["equity_max_diff"].as_f64().unwrap() < 0.0, "the run ended poorer");
    let human = dsl().args(["report", "divergence", "examples/bot.yaml", "--journal"]).arg(&db).output().unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("setting       slippage: 0.001 in the run, 0.0005 in the bundle"), "{human}");
    assert!(human.contains("(+5.00 bps)") && human.contains("verdict       DIVERGES"), "{human}");
}

/// A bot killed mid-run, its strategy edited while it was down, and restarted with `--watch`:
/// the edit is swapped in at the first new bar. The replay swaps the same revision in at the
/// same bar time and agrees with the run on everything; a gate reads the check.
#[test]
fn a_run_across_a_reload_matches_the_backtest_with_the_same_swap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = env!("CARGO_MANIFEST_DIR");
    let strategy = std::fs::read_to_string(format!("{root}/strategies/rsi_reversion.yaml")).unwrap();
    std::fs::write(d.join("s.yaml"), &strategy).unwrap();
    std::fs::write(
        d.join("p.yaml"),
        "kind: phase\nname: checked\nmode: paper\ngates:\n  - id: matches\n    from: paper\n    \
         when: metric.divergence_bps <= 1 and metric.missing_orders == 0\n    message: paper matches the backtest\n",
    )
    .unwrap();
    let data: String = ["AAPL", "MSFT", "NVDA", "JPM", "XOM"]
        .iter()
        .map(|s| format!("    {s}: {root}/examples/data/{s}.csv\n"))
        .collect();
    std::fs::write(
        d.join("bot.yaml"),
        format!(
            "kind: bot\nname: reloaded\nstrategies: [s.yaml]\npolicies: [{root}/policies/always_on_caps.yaml]\n\
             phases: [p.yaml]\nphase: checked\ndata:\n  csv:\n{data}starting_cash: 100000\ndatabase: j.sqlite\n"
        ),
    )
    .unwrap();
    let db = d.join("j.sqlite");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .current_dir(d)
        .args(["run", "bot.yaml", "--quiet", "--speed", "17280000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_checkpoints(&db, 0, 400, &mut child).is_none(), "the run ended too soon");
    child.kill().unwrap();
    child.wait().unwrap();
    // A looser entry from the next bar on.
    std::fs::write(d.join("s.yaml"), strategy.replace("oversold: 30", "oversold: 40")).unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .current_dir(d)
        .args(["run", "bot.yaml", "--quiet", "--watch"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Connection::open(&db).unwrap();
    let reloads: i64 =
        c.query_row("SELECT COUNT(*) FROM reloads WHERE outcome = 'accepted'", [], |r| r.get(0)).unwrap();
    assert_eq!(reloads, 1, "the edit was swapped in once");
    let gate = |expect_pass: bool| {
        let out = dsl().current_dir(d).args(["gate", "status", "bot.yaml", "--format", "json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["passed"], expect_pass, "{v}");
    };
    // Never checked: the metric is undefined and the gate fails closed.
    gate(false);
    let (code, r) = divergence(&d.join("bot.yaml"), &db);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["revisions"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["missing_orders"], 0);
    assert!(r["fills"].as_array().unwrap().len() > 20);
    // Both revisions decided orders: the swap at its bar time was part of what matched.
    let swapped_at = r["revisions"][1][1].as_str().unwrap().to_string();
    assert!(swapped_at.as_str() > r["from"].as_str().unwrap(), "{r}");
    let by_revision: i64 = c.query_row("SELECT COUNT(DISTINCT bundle_revision) FROM orders", [], |r| r.get(0)).unwrap();
    assert_eq!(by_revision, 2, "orders were decided under both revisions");
    gate(true);
}
