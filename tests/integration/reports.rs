//! `dsl report execution|daily|log` on a paper run of the example bot: the figures agree with
//! the journal they are computed from, computed here independently.

use rusqlite::Connection;

use crate::common::{count, dsl, rows};

fn json(args: &[&str], db: &std::path::Path) -> serde_json::Value {
    let out = dsl().args(args).arg("--journal").arg(db).args(["--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn execution_daily_and_log_reports_agree_with_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    let out = dsl().args(["run", "examples/bot.yaml", "--quiet", "--journal"]).arg(&db).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Connection::open(&db).unwrap();

    // Execution: every filled market order, slippage against the mid at the fill (the fill
    // bar's open: the fill price less its cost-model slippage), not the close it was sent at.
    let r = json(&["report", "execution", "examples/bot.yaml"], &db);
    let filled = count(&c, "SELECT COUNT(*) FROM orders WHERE order_type = 'market' AND status = 'filled'");
    assert!(filled > 100);
    assert_eq!(r["total"]["fills"], filled);
    let by_symbol: i64 = r["by_symbol"].as_array().unwrap().iter().map(|g| g["fills"].as_i64().unwrap()).sum();
    assert_eq!(by_symbol, filled);
    let nvda = rows(
        &c,
        "SELECT o.side, o.created_ts, f.ts, f.price FROM orders o JOIN fills f USING (run_id, client_order_id) \
         WHERE o.symbol = 'NVDA' AND o.order_type = 'market'",
    );
    // The fill bar's open, read from the data file itself.
    let nvda_csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/NVDA.csv");
    let (head, data) = crate::common::read_csv(&nvda_csv);
    let open_col = head.iter().position(|h| h == "open").unwrap();
    let opens: std::collections::HashMap<String, f64> =
        data.iter().map(|r| (r[0].clone(), r[open_col].parse().unwrap())).collect();
    let bps: Vec<f64> = nvda
        .iter()
        .map(|r| {
            let fill_ts: i64 = r[2].parse().unwrap();
            let day = chrono::DateTime::from_timestamp(fill_ts, 0).unwrap().format("%Y-%m-%d").to_string();
            let (mid, fill): (f64, f64) = (opens[&day], r[3].parse().unwrap());
            assert!(r[2] > r[1], "a next-open fill comes after the signal bar");
            let sign = if r[0] == "sell" { -1.0 } else { 1.0 };
            sign * (fill - mid) / mid * 1e4
        })
        .collect();
    let group = r["by_symbol"].as_array().unwrap().iter().find(|g| g["key"] == "NVDA").unwrap();
    let mean = bps.iter().sum::<f64>() / bps.len() as f64;
    assert!((group["mean_bps"].as_f64().unwrap() - mean).abs() < 1e-6, "{group} vs {mean}");
    // The example's cost model: every simulated fill pays the same half spread plus slippage.
    assert!(bps.iter().all(|b| (b - bps[0]).abs() < 1e-6 && *b > 0.0), "{bps:?}");
    let text = dsl().args(["report", "execution", "examples/bot.yaml", "--journal"]).arg(&db).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("hour UTC") && text.contains("NVDA"), "{text}");

    // Daily: the days add up to the run's result.
    let days = json(&["report", "daily", "examples/bot.yaml"], &db);
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 1259, "one per trading day of the example data");
    let pnl: f64 = days.iter().map(|d| d["pnl"].as_f64().unwrap()).sum();
    let equity: f64 = c.query_row("SELECT equity FROM run_status", [], |r| r.get(0)).unwrap();
    assert!((pnl - (equity - 100_000.0)).abs() < 1e-6, "{pnl} vs {equity}");
    let closed: i64 = days.iter().map(|d| d["trades_closed"].as_i64().unwrap()).sum();
    assert_eq!(closed, count(&c, "SELECT COUNT(*) FROM trades"));

    // Log: markdown with each day's trades and their reasons.
    let md = dir.path().join("log.md");
    let out = dsl()
        .args(["report", "log", "examples/bot.yaml", "--journal"])
        .arg(&db)
        .arg("--out")
        .arg(&md)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&md).unwrap();
    let first = &rows(
        &c,
        "SELECT strftime('%Y-%m-%d', exit_ts, 'unixepoch'), strategy, symbol, exit_reason FROM trades ORDER BY exit_ts LIMIT 1",
    )[0];
    let day = &text[text.find(&format!("## {}", first[0])).expect("the first exit day has a section")..];
    let line = format!("| {} | {} |", first[1], first[2]);
    assert!(day.contains(&line) && day.contains(&first[3]), "{}", &day[..day.len().min(2000)]);
    assert!(text.contains("circuit_breakers/large_entry"), "guardrails that fired are logged");
    // The same log as JSON: every closed trade, with its exit reason.
    let log = json(&["report", "log", "examples/bot.yaml"], &db);
    let trades: Vec<&serde_json::Value> =
        log["days"].as_array().unwrap().iter().flat_map(|d| d["trades"].as_array().unwrap()).collect();
    assert_eq!(trades.len() as i64, count(&c, "SELECT COUNT(*) FROM trades"));
    assert_eq!(trades[0]["strategy"], first[1].as_str());
    assert_eq!(trades[0]["exit_reason"], first[3].as_str());
    assert!(trades[0]["time"].as_str().unwrap().starts_with(&first[0]));
}
