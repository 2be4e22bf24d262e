//! Limit and stop entries on real daily bars through `dsl backtest`: a hand-checked limit (a
//! fill at the open that gapped below it, a fill at the limit, an expiry), then every limit and
//! stop entry of two symbols replayed here from the CSV bars: an order works from the bar after
//! its signal, fills on the first bar that trades through its price, at that price or at the
//! open when the open is already better (a stop with slippage), never at a price the bar did
//! not trade, and is cancelled unfilled after 3 bars.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

use crate::common::{backtest_in, day, example_data, read_csv, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn backtest(dir: &Path, symbol: &str, order: &str) -> Connection {
    let strategy = format!(
        "kind: strategy\nname: entries\nuniverse: [{symbol}]\ntimeframe: 1d\n\
         entry: crosses_above(sma(close, 10), sma(close, 30))\nexit: crosses_below(sma(close, 10), sma(close, 30))\n\
         order: {order}\nsizing: {{percent_of_equity: 50%}}\n"
    );
    backtest_in(dir, &strategy, &format!("{}costs: {{slippage: 5bps}}\n", example_data(symbol)))
}

/// AAPL with `price: close * 0.99`, on the tick grid (a buy limit rounds down to the cent):
///
/// - signal 2013-03-25, close 66.2256: limit 65.56. 2013-03-26 (low 65.7899) does not reach
///   it; 2013-03-27 opens at 65.2085, already below: filled at the open, 65.2085.
/// - signal 2013-05-06, close 65.8156: limit 65.15. 2013-05-07 opens at 66.4242 and trades
///   down to 64.8142: filled at the limit, 65.15.
#[test]
fn a_hand_checked_limit_entry_on_aapl() {
    let dir = tempfile::tempdir().unwrap();
    let c = backtest(dir.path(), "AAPL", "{type: limit, price: close * 0.99, expires_after: 3 bars}");
    let entries = rows(
        &c,
        "SELECT o.created_ts, o.limit_price, o.status, o.status_reason, o.updated_ts, f.ts, f.price FROM orders o \
         LEFT JOIN fills f ON f.client_order_id = o.client_order_id WHERE o.intent = 'entry' ORDER BY o.order_no",
    );
    let first = &entries[0];
    assert_eq!((day(&first[0]).as_str(), first[1].as_str(), first[2].as_str()), ("2013-03-25", "65.56", "filled"));
    assert_eq!((day(&first[5]).as_str(), first[6].as_str()), ("2013-03-27", "65.2085"));
    let second = &entries[1];
    assert_eq!((day(&second[0]).as_str(), second[1].as_str()), ("2013-05-06", "65.15"));
    assert_eq!((day(&second[5]).as_str(), second[6].as_str()), ("2013-05-07", "65.15"));
    // Some entries never filled: cancelled after 3 bars, with the reason.
    let expired: Vec<_> = entries.iter().filter(|e| e[2] == "cancelled").collect();
    assert!(!expired.is_empty());
    assert!(expired.iter().all(|e| e[3] == "expired: the entry did not fill within its `expires_after` bars"));
}

#[test]
fn limit_and_stop_entries_fill_only_at_prices_the_bars_traded() {
    for (order, limit) in [
        ("{type: limit, price: close * 0.99, expires_after: 3}", true),
        ("{type: stop, price: high * 1.005, expires_after: 3}", false),
    ] {
        for symbol in ["AAPL", "MSFT"] {
            let dir = tempfile::tempdir().unwrap();
            let c = backtest(dir.path(), symbol, order);
            let (_, bars) = read_csv(&std::path::PathBuf::from(format!("{ROOT}/examples/data/{symbol}.csv")));
            let bars: Vec<(String, f64, f64, f64)> = bars
                .iter()
                .map(|r| (r[0].clone(), r[1].parse().unwrap(), r[2].parse().unwrap(), r[3].parse().unwrap()))
                .collect();
            let index: HashMap<&str, usize> = bars.iter().enumerate().map(|(i, b)| (b.0.as_str(), i)).collect();
            let entries = rows(
                &c,
                "SELECT o.created_ts, COALESCE(o.limit_price, o.stop_price), o.status, o.updated_ts, f.ts, f.price \
                 FROM orders o LEFT JOIN fills f ON f.client_order_id = o.client_order_id \
                 WHERE o.intent = 'entry' ORDER BY o.order_no",
            );
            let (mut filled, mut expired) = (0, 0);
            for e in &entries {
                let signal = index[day(&e[0]).as_str()];
                let price: f64 = e[1].parse().unwrap();
                // The first of the next 3 bars that trades through the price.
                let hit = (signal + 1..(signal + 4).min(bars.len())).find(|&k| {
                    let (_, _, high, low) = bars[k];
                    if limit { low <= price } else { high >= price }
                });
                match hit {
                    Some(k) => {
                        assert_eq!(e[2], "filled", "{symbol} {order}: {e:?}");
                        assert_eq!(day(&e[4]), bars[k].0, "{symbol} {order}: {e:?}");
                        let open = bars[k].1;
                        let want = if limit { open.min(price) } else { open.max(price) * 1.0005 };
                        let got: f64 = e[5].parse().unwrap();
                        assert!((got - want).abs() < 1e-9 * want, "{symbol} {order}: {e:?} vs {want}");
                        filled += 1;
                    }
                    None if signal + 3 < bars.len() => {
                        assert_eq!(e[2], "cancelled", "{symbol} {order}: {e:?}");
                        assert_eq!(day(&e[3]), bars[signal + 3].0, "{symbol} {order}: expired on the third bar");
                        expired += 1;
                    }
                    None => {}
                }
            }
            assert!(filled >= 5 && expired >= 1, "{symbol} {order}: {filled} filled, {expired} expired");
        }
    }
}
