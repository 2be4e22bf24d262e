//! `dsl import` on real files in the layouts found in the wild, all-or-nothing imports, and
//! backtests from the bar store.

use std::path::Path;

use crate::common::{data, dsl, rel};

fn bars(db: &Path, symbol: &str) -> Vec<(i64, f64, f64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.prepare("SELECT ts, open, close FROM bars WHERE symbol = ?1 ORDER BY ts")
        .unwrap()
        .query_map([symbol], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn utc(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

fn import(db: &Path, file: &str, extra: &[&str]) -> String {
    let assert = dsl().arg("import").arg(data(file)).arg("--db").arg(db).args(extra).assert().success();
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

#[test]
fn imports_real_files_in_their_various_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bars.sqlite");

    // NaN cells: two rows skipped and reported by line; a row whose open is below its low
    // (bad data at the source) is a bad row, skipped and reported with why.
    let out = import(&db, "DHR_data.csv", &[]);
    assert!(out.contains("skipped 2 row(s) with missing prices (lines 600, 723)"), "{out}");
    assert!(
        out.contains("skipped 1 bad row(s):\n    line 437: inconsistent prices: open 78.47, high 81.305, low 80.49"),
        "{out}"
    );
    let dhr = bars(&db, "DHR");
    assert_eq!(dhr.len(), 1240);
    assert_eq!(dhr[0], (utc("2013-02-08T00:00:00Z"), 60.15, 60.81));

    // Preamble line, newest first, CRLF, symbol column.
    let out = import(&db, "Coinbase_BTCUSD_d.csv", &[]);
    assert!(out.contains("newest-first file: reversed"), "{out}");
    let btc = bars(&db, "BTCUSD");
    assert_eq!(btc.len(), 1770);
    assert!(btc.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(btc.last().unwrap().0, utc("2019-10-17T00:00:00Z"));
    assert_eq!(btc.last().unwrap().2, 8034.32);

    // Naive US/Eastern minute bars, Close before High.
    import(&db, "SP500_NOV2019_IDay.csv", &["--symbol", "SPX", "--timezone", "America/New_York"]);
    let spx = bars(&db, "SPX");
    assert_eq!(spx.len(), 1563);
    assert_eq!(spx[0], (utc("2019-11-05T14:30:00Z"), 3080.8, 3080.49));

    // Wide multi-asset file: one series per asset, ETH starting when it listed.
    import(&db, "bitfinex_BTC-ETH_USD_d.csv", &[]);
    assert_eq!(bars(&db, "BTC").len(), 1862);
    let eth = bars(&db, "ETH");
    assert_eq!(eth.len(), 1319);
    assert_eq!(eth[0].0, utc("2016-05-27T00:00:00Z"));

    // `31-Dec-10` dates, newest first, symbol named on the command line.
    import(&db, "orcl-2010-googlefinance.csv", &["--symbol", "ORCL"]);
    let orcl = bars(&db, "ORCL");
    assert_eq!(orcl.len(), 252);
    assert_eq!(orcl[0].0, utc("2010-01-04T00:00:00Z"));

    // `Date Time` header with an empty column; 30-minute bars are labelled 30m.
    let out = import(&db, "30min-bitstampUSD-2.csv", &["--symbol", "BTCUSD_30M"]);
    assert!(out.contains("1968 30m bars of BTCUSD_30M"), "{out}");

    // Re-importing replaces bars instead of duplicating them.
    let out = import(&db, "orcl-2010-googlefinance.csv", &["--symbol", "ORCL"]);
    assert!(out.contains("(252 replaced existing bars)"), "{out}");
    assert_eq!(bars(&db, "ORCL").len(), 252);
}

#[test]
fn an_import_is_all_or_nothing_and_bad_rows_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bars.sqlite");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "date,open,high,low,close,volume\n2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,two,0.5,1.5,10\n")
        .unwrap();
    let assert = dsl().arg("import").arg(data("DHR_data.csv")).arg(&bad).arg("--db").arg(&db).assert().code(1);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(err.contains("bad.csv:3: `two` in column `high` is not a number"), "{err}");
    assert!(err.contains("nothing imported"), "{err}");
    assert!(!db.exists() || bars(&db, "DHR").is_empty(), "the good file was not imported either");

    let dup = dir.path().join("dup.csv");
    std::fs::write(
        &dup,
        "date,open,high,low,close\n2020-01-02,1,2,0.5,1.5\n2020-01-03,1,2,0.5,1.5\n2020-01-02,1,2,0.5,1.5\n",
    )
    .unwrap();
    let assert = dsl().arg("import").arg(&dup).arg("--db").arg(&db).assert().code(1);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(err.contains("dup.csv:4: duplicate timestamp 2020-01-02T00:00:00Z (also on line 2)"), "{err}");

    let missing = dir.path().join("nope.csv");
    dsl().arg("import").arg(&missing).arg("--db").arg(&db).assert().code(2);
}

#[test]
fn backtests_read_the_bar_store_like_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bars.sqlite");
    import(&db, "GOOG.csv", &["--symbol", "GOOG"]);
    let json = |args: &[&str], name: &str| -> serde_json::Value {
        let path = dir.path().join(name);
        dsl()
            .args(["backtest", "strategies/sma_crossover.yaml", "--no-journal", "--quiet", "--json"])
            .arg(&path)
            .args(args)
            .assert()
            .success();
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let store = json(&["--store", db.to_str().unwrap()], "store.json");
    let csv = json(&["--data", data("GOOG.csv").to_str().unwrap()], "csv.json");
    let (a, b) = (store["metrics"]["final_equity"].as_f64().unwrap(), csv["metrics"]["final_equity"].as_f64().unwrap());
    assert!(rel(a, b) < 1e-12 && rel(a, 582788.4660837539) < 1e-9);
    // A period filter keeps only bars inside it.
    let part = json(&["--store", db.to_str().unwrap(), "--from", "2010-01-01", "--to", "2010-12-31"], "part.json");
    assert_eq!(part["start"], "2010-01-04T00:00:00Z");
    assert_eq!(part["end"], "2010-12-31T00:00:00Z");
}
