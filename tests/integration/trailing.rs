//! Trailing stops on real daily bars through `dsl backtest`: one trade checked by hand (the
//! entry, each ratchet, the exit price), then every trade of two symbols recomputed here from
//! the CSV bars: the stop starts 5% below the entry fill, rises with each bar's high (never
//! falls), is checked against the next bar's low, and fills at the stop (or the open, when
//! the bar opens below it).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

use crate::common::{backtest_in, day, example_data, read_csv, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn backtest(dir: &Path, symbol: &str) -> Connection {
    let strategy = format!(
        "kind: strategy\nname: trail\nuniverse: [{symbol}]\ntimeframe: 1d\n\
         entry: crosses_above(sma(close, 10), sma(close, 30))\ntrailing_stop: 5%\nsizing: {{fixed_quantity: 100}}\n"
    );
    backtest_in(dir, &strategy, &example_data(symbol))
}

/// AAPL, entry signalled 2013-03-25 (SMA 10 crosses above SMA 30), filled at the next open:
///
/// | date       | open    | high    | low     | stop in force | after the bar          |
/// | 2013-03-26 | 66.4914 | 66.5485 | 65.7899 | 63.16683      | high 66.5485: 63.221075 |
/// | 2013-03-27 | 65.2085 | 65.2571 | 64.3899 | 63.221075     | no new high            |
/// | 2013-03-28 | 64.2599 | 64.5455 | 63.0885 | 63.221075: the low reaches it, sold at 63.221075 |
///
/// 63.16683 = 66.4914 x 0.95 (the fill price); 63.221075 = 66.5485 x 0.95.
#[test]
fn a_hand_checked_trailing_stop_on_aapl() {
    let dir = tempfile::tempdir().unwrap();
    let c = backtest(dir.path(), "AAPL");
    let first =
        &rows(&c, "SELECT entry_ts, entry_price, exit_ts, exit_price, exit_reason FROM trades ORDER BY trade_no")[0];
    assert_eq!(
        (day(&first[0]).as_str(), first[1].as_str(), day(&first[2]).as_str(), first[4].as_str()),
        ("2013-03-26", "66.4914", "2013-03-28", "trailing_stop")
    );
    assert!((first[3].parse::<f64>().unwrap() - 63.221075).abs() < 1e-9, "{first:?}");
    let stops = rows(
        &c,
        "SELECT created_ts, stop_price, status, status_reason FROM orders WHERE order_type = 'stop' ORDER BY order_no LIMIT 2",
    );
    assert_eq!(day(&stops[0][0]), "2013-03-26");
    assert!((stops[0][1].parse::<f64>().unwrap() - 63.16683).abs() < 1e-9, "{stops:?}");
    assert_eq!(stops[0][2], "cancelled");
    assert_eq!(stops[0][3], "trailing stop moved to 63.221075 (highest high 66.5485)");
    assert!((stops[1][1].parse::<f64>().unwrap() - 63.221075).abs() < 1e-9, "{stops:?}");
    assert_eq!(stops[1][2], "filled");
}

#[test]
fn every_ratchet_and_exit_follows_the_highs_since_entry() {
    for symbol in ["AAPL", "MSFT"] {
        let dir = tempfile::tempdir().unwrap();
        let c = backtest(dir.path(), symbol);
        let (_, bars) = read_csv(&std::path::PathBuf::from(format!("{ROOT}/examples/data/{symbol}.csv")));
        // date -> (open, high, low)
        let bars: Vec<(String, f64, f64, f64)> = bars
            .iter()
            .map(|r| (r[0].clone(), r[1].parse().unwrap(), r[2].parse().unwrap(), r[3].parse().unwrap()))
            .collect();
        let index: HashMap<&str, usize> = bars.iter().enumerate().map(|(i, b)| (b.0.as_str(), i)).collect();
        let trades =
            rows(&c, "SELECT entry_ts, entry_price, exit_ts, exit_price, exit_reason FROM trades ORDER BY trade_no");
        assert!(trades.len() >= 10, "{symbol}: {} trades", trades.len());
        for t in &trades {
            let (entry, exit) = (index[day(&t[0]).as_str()], index[day(&t[2]).as_str()]);
            let fill: f64 = t[1].parse().unwrap();
            let (mut high, mut stop) = (fill, fill * 0.95);
            let mut levels = vec![stop];
            // The entry bar's own low is checked against the first stop, like every later bar.
            let mut k = entry;
            let exit_price = loop {
                let (_, open, h, low) = bars[k];
                if low <= stop {
                    break if open <= stop { open } else { stop };
                }
                high = high.max(h);
                if high * 0.95 > stop {
                    stop = high * 0.95;
                    levels.push(stop);
                }
                k += 1;
                assert!(k < bars.len(), "{symbol}: {t:?} never stopped");
            };
            assert_eq!(k, exit, "{symbol}: {t:?} should exit on {}", bars[k].0);
            assert_eq!(t[4], "trailing_stop");
            assert!((t[3].parse::<f64>().unwrap() - exit_price).abs() < 1e-9, "{symbol}: {t:?} vs {exit_price}");
            // The journal's stop orders of the trade are exactly the levels, in order.
            let journal: Vec<f64> = rows(
                &c,
                &format!(
                    "SELECT stop_price FROM orders WHERE order_type = 'stop' AND created_ts >= {} AND created_ts <= {} \
                     ORDER BY order_no",
                    t[0], t[2]
                ),
            )
            .iter()
            .map(|r| r[0].parse().unwrap())
            .collect();
            assert_eq!(journal.len(), levels.len(), "{symbol}: {t:?}: {journal:?} vs {levels:?}");
            for (a, b) in journal.iter().zip(&levels) {
                assert!((a - b).abs() < 1e-9, "{symbol}: {t:?}: {journal:?} vs {levels:?}");
            }
        }
    }
}
