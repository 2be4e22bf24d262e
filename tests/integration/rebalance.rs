//! The scheduled rebalance (`schedule.rebalance` in a bot manifest) on the shipped Treasury
//! ladder (`examples/rebalance.yaml`: SHY, IEF, TLT at 40/30/30, weekly, 1% band) on real daily
//! bars: after each rebalance every weight is back within 1 percentage point of its target;
//! a rebalance happens exactly on the Fridays (or the next session) when a weight had drifted
//! past the band; guardrails judge its orders; and a bot killed with SIGKILL mid-run and
//! restarted ends with exactly the orders of an uninterrupted run, never rebalancing twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{Datelike, NaiveDate};
use rusqlite::Connection;

use crate::common::{count, dsl, read_csv, rows};

const TARGETS: [(&str, f64); 3] = [("SHY", 0.40), ("IEF", 0.30), ("TLT", 0.30)];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example bot in `dir`, its data paths absolute, its journal in `dir`, `extra` appended.
fn bot_in(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples/rebalance.yaml"))
        .unwrap()
        .replace("data/", &format!("{}/examples/data/", root().display()))
        .replace("database: out/rebalance.sqlite", "database: journal.sqlite")
        .replace("directory: out/reports", "directory: reports");
    let path = dir.join("bot.yaml");
    std::fs::write(&path, format!("{text}{extra}")).unwrap();
    path
}

/// Closes by symbol and date.
fn closes() -> BTreeMap<(String, NaiveDate), f64> {
    let mut out = BTreeMap::new();
    for (s, _) in TARGETS {
        let (_, rows) = read_csv(&root().join(format!("examples/data/{s}.csv")));
        for r in rows {
            out.insert((s.to_string(), NaiveDate::parse_from_str(&r[0], "%Y-%m-%d").unwrap()), r[1].parse().unwrap());
        }
    }
    out
}

fn date(ts: &str) -> NaiveDate {
    NaiveDate::parse_from_str(&crate::common::day(ts), "%Y-%m-%d").unwrap()
}

#[test]
fn a_weekly_rebalance_keeps_the_treasury_ladder_within_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let bot = bot_in(dir.path(), "");
    let out = dsl().current_dir(dir.path()).arg("backtest").arg(&bot).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Connection::open(dir.path().join("journal.sqlite")).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM orders WHERE status != 'filled'"), 0, "every order filled");
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM orders WHERE strategy != 'treasury_ladder' OR reason != 'rebalance'"),
        0
    );
    let closes = closes();
    let days: Vec<NaiveDate> = {
        let set: BTreeSet<NaiveDate> = closes.keys().map(|(_, d)| *d).collect();
        set.into_iter().collect()
    };
    // (date, symbol, signed quantity, cash moved): a buy pays its notional and commission.
    let fills: Vec<(NaiveDate, String, f64, f64)> = rows(
        &c,
        "SELECT ts, symbol, CASE side WHEN 'buy' THEN quantity ELSE -quantity END, \
         CASE side WHEN 'buy' THEN -(quantity * price + commission) ELSE quantity * price - commission END \
         FROM fills ORDER BY ts",
    )
    .iter()
    .map(|r| (date(&r[0]), r[1].clone(), r[2].parse().unwrap(), r[3].parse().unwrap()))
    .collect();
    let created: BTreeSet<NaiveDate> =
        rows(&c, "SELECT DISTINCT created_ts FROM orders").iter().map(|r| date(&r[0])).collect();
    // Weights at a session's close, from the fills up to it: value / (cash + values).
    let weights_at = |d: NaiveDate| -> Vec<f64> {
        let cash = 100_000.0 + fills.iter().filter(|f| f.0 <= d).map(|f| f.3).sum::<f64>();
        let values: Vec<f64> = TARGETS
            .iter()
            .map(|(s, _)| {
                let held: f64 = fills.iter().filter(|f| f.0 <= d && f.1 == *s).map(|f| f.2).sum();
                held * closes[&(s.to_string(), d)]
            })
            .collect();
        let equity = cash + values.iter().sum::<f64>();
        values.iter().map(|v| v / equity).collect()
    };
    // Due: the first session, then each Friday 15:45 New York, on the first session whose
    // close is at or after it (a Friday, or the Monday after Good Friday).
    let mut due: BTreeSet<NaiveDate> = BTreeSet::from([days[0]]);
    for d in &days[1..] {
        let friday = *d - chrono::Duration::days((d.weekday().num_days_from_monday() as i64 - 4).rem_euclid(7));
        if !due.iter().any(|x| *x >= friday) {
            due.insert(*d);
        }
    }
    let mut rebalances = 0;
    let mut checked_after = 0;
    for (i, d) in days.iter().enumerate() {
        if due.contains(d) && i > 0 {
            let w = weights_at(*d);
            let off = w.iter().zip(TARGETS).any(|(w, (_, t))| (w - t).abs() > 0.01);
            assert_eq!(created.contains(d), off, "{d}: weights {w:?}; a rebalance exactly when one is off by 1%");
        } else if created.contains(d) && i > 0 {
            assert!(due.contains(&days[i - 1]), "{d}: orders neither on a due day nor on the day after one");
        }
        if created.contains(d) && due.contains(d) {
            rebalances += 1;
            // Two sessions later every order of this rebalance has filled.
            if let Some(after) = days.get(i + 2) {
                let w = weights_at(*after);
                for (k, (s, t)) in TARGETS.iter().enumerate() {
                    assert!((w[k] - t).abs() <= 0.01, "{s} at {:.4} after the rebalance of {d} (target {t})", w[k]);
                }
                checked_after += 1;
            }
        }
    }
    assert!(rebalances >= 15, "{rebalances} rebalances in six years");
    assert!(checked_after >= 15);
}

/// A policy denies some rebalance orders: they are journaled as rejected with the rule's
/// reason, like any strategy's.
#[test]
fn guardrails_judge_rebalance_orders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cap.yaml"),
        "kind: policy\nname: cap\nrules:\n  - id: tlt_cap\n    when: order.symbol == \"TLT\" and order.intent == \"entry\"\n    \
         action: deny\n    message: no TLT\n",
    )
    .unwrap();
    let bot = bot_in(dir.path(), "policies: [cap.yaml]\n");
    let out = dsl().current_dir(dir.path()).arg("backtest").arg(&bot).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Connection::open(dir.path().join("journal.sqlite")).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM fills WHERE symbol = 'TLT'"), 0);
    assert!(
        count(
            &c,
            "SELECT COUNT(*) FROM orders WHERE symbol = 'TLT' AND status = 'rejected' AND status_reason LIKE 'denied by cap/tlt_cap%'"
        ) >= 1
    );
    assert!(
        count(&c, "SELECT COUNT(*) FROM fills WHERE symbol = 'SHY'") >= 1,
        "the other symbols are still rebalanced"
    );
}

/// Undefined or oversized weights fail closed: nothing is traded, and the note says why.
#[test]
fn weights_that_cannot_be_met_trade_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bot = bot_in(dir.path(), "");
    let text = std::fs::read_to_string(&bot)
        .unwrap()
        .replace("TLT: 30%", "TLT: 30% * close / sma(close, 2000)")
        .replace("SHY: 40%", "SHY: 90% * close / close[1]");
    std::fs::write(&bot, text).unwrap();
    let out = dsl().current_dir(dir.path()).arg("backtest").arg(&bot).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Connection::open(dir.path().join("journal.sqlite")).unwrap();
    // TLT's weight is undefined on every bar (2000 bars of history never come): never bought.
    assert_eq!(count(&c, "SELECT COUNT(*) FROM orders WHERE symbol = 'TLT'"), 0);
    let notes = rows(&c, "SELECT message FROM events WHERE kind = 'rebalance'");
    assert!(notes.iter().any(|n| n[0].contains("undefined")), "{notes:?}");
    // SHY's weight is undefined on the first bar (no previous close): the first rebalance
    // leaves it out; later, 90% plus IEF's 30% is more than the account: refused.
    assert!(notes.iter().any(|n| n[0].contains("more than the account")), "{notes:?}");
    assert_eq!(count(&c, "SELECT COUNT(*) FROM orders WHERE symbol = 'SHY'"), 0);
}

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("dsl"));
    c.env("NO_COLOR", "1");
    c
}

fn orders(db: &Path) -> Vec<Vec<String>> {
    let c = Connection::open(db).unwrap();
    rows(
        &c,
        "SELECT order_no, client_order_id, created_ts, symbol, side, quantity, status FROM orders ORDER BY order_no",
    )
}

/// The report files of a run, by name, with their text.
fn reports(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir.join("reports"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}

/// `dsl run` writes the schedule's reports: a daily P&L for every session but the first (its
/// 16:15 falls before the first bar closes), one weekly summary per week, one monthly report
/// per month, each once; the equity a daily report gives is the day's closing equity in the
/// journal, and each period starts where the previous one ended.
#[test]
fn a_running_bot_writes_each_report_once_at_its_time() {
    let dir = tempfile::tempdir().unwrap();
    bot_in(dir.path(), "");
    let out = bin().current_dir(dir.path()).args(["run", "bot.yaml", "--quiet"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = reports(dir.path());
    let closes = closes();
    let sessions: BTreeSet<NaiveDate> = closes.keys().map(|(_, d)| *d).collect();
    let dated = |kind: &str| -> BTreeSet<NaiveDate> {
        files
            .keys()
            .filter_map(|n| n.strip_prefix(&format!("treasury_rebalance-{kind}-")))
            .map(|d| NaiveDate::parse_from_str(d.trim_end_matches(".md"), "%Y-%m-%d").unwrap())
            .collect()
    };
    let daily = dated("daily_pnl");
    assert_eq!(daily, sessions.iter().skip(1).copied().collect::<BTreeSet<_>>(), "a daily report per session");
    let weeks: BTreeSet<_> = sessions.iter().skip(1).map(|d| d.iso_week()).collect();
    let weekly = dated("weekly_summary");
    assert_eq!(weekly.iter().map(|d| d.iso_week()).collect::<BTreeSet<_>>(), weeks, "one weekly summary per week");
    assert_eq!(weekly.len(), weeks.len());
    let monthly = dated("monthly_report");
    let months: BTreeSet<(i32, u32)> = sessions.iter().map(|d| (d.year(), d.month())).collect();
    assert_eq!(monthly.len(), months.len() - 1, "the data's last month ends before its report is due");
    let c = Connection::open(dir.path().join("journal.sqlite")).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM events WHERE kind = 'report'"), files.len() as i64, "each written once");
    let equity: BTreeMap<NaiveDate, f64> = rows(&c, "SELECT last_ts, close_equity FROM daily_equity")
        .iter()
        .map(|r| (date(&r[0]), r[1].parse().unwrap()))
        .collect();
    let figure = |text: &str| -> (f64, f64) {
        let line = text.lines().find(|l| l.starts_with("| equity |")).unwrap();
        let nums: Vec<f64> = line
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|w| w.parse().ok())
            .collect();
        (nums[0], nums[1])
    };
    let mut previous: Option<f64> = None;
    for d in &daily {
        let (now, from) = figure(&files[&format!("treasury_rebalance-daily_pnl-{d}.md")]);
        assert!((now - equity[d]).abs() < 0.006, "{d}: report {now} vs journal {}", equity[d]);
        if let Some(p) = previous {
            assert!((from - p).abs() < 0.006, "{d}: the period starts at {from}, the last one ended at {p}");
        }
        previous = Some(now);
    }
}

#[test]
fn a_rebalancing_bot_killed_with_sigkill_never_rebalances_twice() {
    let (clean_dir, crashy_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    bot_in(clean_dir.path(), "");
    bot_in(crashy_dir.path(), "");
    let clean = clean_dir.path().join("journal.sqlite");
    let out = bin().current_dir(clean_dir.path()).args(["run", "bot.yaml", "--quiet"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let crashy = crashy_dir.path().join("journal.sqlite");
    let kills = crate::common::run_killed(&crashy, 0x2545_f491_4f6c_dd1d, (20, 200), 0, 200, || {
        bin()
            .current_dir(crashy_dir.path())
            .args(["run", "bot.yaml", "--quiet", "--speed", "17280000"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    assert!(kills >= 3, "only {kills} kills");
    let (a, b) = (orders(&clean), orders(&crashy));
    assert!(a.len() > 40, "{} orders", a.len());
    assert_eq!(a, b, "orders differ after {kills} kills");
    let c = Connection::open(&crashy).unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) - COUNT(DISTINCT client_order_id) FROM orders"), 0);
    // One order per symbol and day at most: no rebalance was made twice.
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM (SELECT symbol, created_ts FROM orders GROUP BY 1, 2 HAVING COUNT(*) > 1)"),
        0
    );
    // The same reports, word for word, none missing, none twice.
    let (ra, rb) = (reports(clean_dir.path()), reports(crashy_dir.path()));
    assert_eq!(ra.keys().collect::<Vec<_>>(), rb.keys().collect::<Vec<_>>(), "report files differ after {kills} kills");
    assert_eq!(ra, rb, "report texts differ after {kills} kills");
}
