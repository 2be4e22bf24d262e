//! The trading session (`session.*` fields) on real SPY 1-minute bars around the 2011 change to
//! daylight time and Martin Luther King Jr. Day, through `dsl backtest` with the shipped
//! `session_hours` policy: no entry fills outside the regular session or in its first or last
//! 5 minutes, in winter or summer time, and none on a holiday. The session bounds are
//! recomputed here from the New York clock (09:30-16:00), independently of the engine.

use chrono::{TimeZone, Timelike};
use chrono_tz::America::New_York;
use rusqlite::Connection;

use crate::common::{backtest_in, count, data, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn backtest(dir: &std::path::Path, csv: &std::path::Path) -> Connection {
    let strategy = "kind: strategy\nname: minute_cross\nuniverse: [SPY]\ntimeframe: 1m\n\
                    entry: crosses_above(sma(close, 3), sma(close, 8))\nexit: crosses_below(sma(close, 3), sma(close, 8))\n\
                    sizing: {percent_of_equity: 10%}\n";
    let bot = format!("policies: [{ROOT}/policies/session_hours.yaml]\ndata:\n  csv:\n    SPY: {}\n", csv.display());
    backtest_in(dir, strategy, &bot)
}

/// Minutes since midnight, New York, of UTC seconds `ts`, with the New York date.
fn new_york(ts: i64) -> (chrono::NaiveDate, u32) {
    let t = New_York.timestamp_opt(ts, 0).unwrap();
    (t.date_naive(), t.hour() * 60 + t.minute())
}

#[test]
fn entries_fill_only_inside_the_session_away_from_its_first_and_last_5_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let c = backtest(dir.path(), &data("nt-spy-minute-2011-slices.csv"));
    let fills = rows(
        &c,
        "SELECT f.ts FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id WHERE o.intent = 'entry'",
    );
    let mut days = std::collections::BTreeSet::new();
    for f in &fills {
        let (date, minute) = new_york(f[0].parse().unwrap());
        // 09:35 <= fill < 15:55, New York time, whatever the UTC offset of the day.
        assert!((9 * 60 + 35..15 * 60 + 55).contains(&minute), "entry filled at {date} minute {minute}");
        days.insert(date);
    }
    // Entries on both sides of the change to daylight time (and of the holiday weekend).
    let d = |m, day| chrono::NaiveDate::from_ymd_opt(2011, m, day).unwrap();
    for day in [d(1, 14), d(1, 18), d(3, 11), d(3, 14)] {
        assert!(days.contains(&day), "no entry on {day}: {days:?}");
    }
    // The policy held entries back for each of its three reasons.
    for rule in ["outside_session", "opening_minutes", "closing_minutes"] {
        let n = count(&c, &format!("SELECT COUNT(*) FROM policy_decisions WHERE rule_id = '{rule}' AND fired = 1"));
        assert!(n > 0, "{rule} never fired");
    }
}

/// The same Friday session's minutes, re-dated to the holiday Monday (2011-01-17): the
/// calendar knows the exchange was closed, so not one entry goes out.
#[test]
fn no_entry_on_an_exchange_holiday() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data("nt-spy-minute-2011-slices.csv")).unwrap();
    let holiday: String = text
        .lines()
        .filter(|l| l.starts_with("20110114 "))
        .map(|l| l.replacen("20110114", "20110117", 1) + "\n")
        .collect();
    let csv = dir.path().join("holiday.csv");
    std::fs::write(&csv, holiday).unwrap();
    let c = backtest(dir.path(), &csv);
    let entries = count(&c, "SELECT COUNT(*) FROM orders WHERE intent = 'entry'");
    let denied = count(
        &c,
        "SELECT COUNT(*) FROM orders WHERE intent = 'entry' AND status = 'rejected' \
         AND status_reason LIKE 'denied by session_hours/outside_session%'",
    );
    assert!(entries > 10, "the entry rule fires on these minutes ({entries})");
    assert_eq!(denied, entries, "every entry on the holiday is denied");
}
