//! `dsl data fetch`: bars from Alpaca's Market Data API into the SQLite bar store, and what
//! the store holds (`dsl data list`).
//!
//! **Fetching.** One symbol at a time, page by page (`next_page_token`), each page written to
//! the store in its own transaction as it arrives, so a fetch that stops (a kill, a network
//! failure past the HTTP layer's retries) keeps what it stored, and the next fetch **resumes**
//! after the last bar the store holds for that symbol and timeframe. Rate limits (429) are
//! waited out by the HTTP layer (its `Retry-After`/reset headers, see
//! [`crate::runtime::broker::alpaca::http`]). Bars are checked on the way in: a bar with a
//! price that is not positive and finite, prices out of order (low above the open or close,
//! high below them) or a negative volume is skipped and counted, as is a second bar at the
//! same time; nothing unchecked reaches a backtest.
//!
//! **Times.** Intraday bars keep Alpaca's times (bar starts, UTC). Daily, weekly and monthly
//! bars, which Alpaca stamps at midnight New York, are stored at 00:00 UTC of that date, the
//! convention of daily bars everywhere else (a CSV import of the same days lands on the same
//! rows).
//!
//! **Listing.** Per symbol and timeframe: bars, first and last time, and gaps: for daily bars
//! the exchange sessions with no bar (NYSE calendar for equities, every day for crypto); for
//! intraday bars the jumps longer than one bar inside a session (any jump for crypto).

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use sha2::{Digest, Sha256};

use crate::config::timeframe::{TimeUnit, Timeframe};
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::market::{Bar, BarSeries};
use crate::engine::session::{DayKind, Market, SessionClock};
use crate::runtime::broker::alpaca::BrokerError;
use crate::runtime::broker::alpaca::market_data::MarketDataClient;
use crate::runtime::data::bar_store::{self, ImportItem, Stored};

/// What to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPlan {
    /// Symbols (`AAPL`, `BTC/USD`).
    pub symbols: Vec<String>,
    /// Bar length.
    pub timeframe: Timeframe,
    /// First bar time wanted (UTC seconds).
    pub from: i64,
    /// Last bar time wanted (UTC seconds); `None`: up to now.
    pub to: Option<i64>,
    /// The bar store.
    pub store: PathBuf,
}

/// What a fetch did for one symbol.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct SymbolFetch {
    /// Symbol.
    pub symbol: String,
    /// The fetch resumed after this stored bar (UTC seconds).
    pub resumed_after: Option<i64>,
    /// Bars written.
    pub written: usize,
    /// Bars skipped as invalid.
    pub invalid: usize,
    /// Bars skipped as a second bar at the same time.
    pub duplicates: usize,
    /// Pages received.
    pub pages: usize,
    /// First and last bar time written (UTC seconds).
    pub first: Option<i64>,
    /// See `first`.
    pub last: Option<i64>,
}

/// Called after each page with the symbol and the last bar time stored so far.
pub type Progress<'a> = &'a mut dyn FnMut(&str, i64);

fn rfc3339(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp(ts, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The stored time of a bar Alpaca stamped at `ts`: daily and longer bars at 00:00 UTC of
/// their New York date.
fn stored_ts(ts: i64, timeframe: Timeframe) -> i64 {
    if !matches!(timeframe.unit, TimeUnit::Day | TimeUnit::Week | TimeUnit::Month) {
        return ts;
    }
    let Some(t) = DateTime::<Utc>::from_timestamp(ts, 0) else { return ts };
    let date = t.with_timezone(&New_York).date_naive();
    date.and_hms_opt(0, 0, 0).map_or(ts, |d| d.and_utc().timestamp())
}

fn valid(b: &Bar) -> bool {
    let price = |p: f64| p.is_finite() && p > 0.0;
    price(b.open)
        && price(b.high)
        && price(b.low)
        && price(b.close)
        && b.volume.is_finite()
        && b.volume >= 0.0
        && b.low <= b.open.min(b.close)
        && b.high >= b.open.max(b.close)
}

/// Fetches `plan`'s bars into its store (see the module doc), calling `progress` after each
/// page.
///
/// # Errors
/// A Market Data API failure that outlasted the retries (what was stored stays; a new fetch
/// resumes), or a store that cannot be written.
pub async fn fetch(
    client: &MarketDataClient,
    plan: &FetchPlan,
    progress: Progress<'_>,
) -> Result<Vec<SymbolFetch>, Diagnostic> {
    let mut out = Vec::new();
    for symbol in &plan.symbols {
        let last = bar_store::last_ts(&plan.store, symbol, plan.timeframe)?;
        let mut report = SymbolFetch { symbol: symbol.clone(), ..SymbolFetch::default() };
        let start = match last {
            Some(l) if l >= plan.from => {
                report.resumed_after = Some(l);
                l + 1
            }
            _ => plan.from,
        };
        if plan.to.is_some_and(|t| start > t) {
            out.push(report);
            continue;
        }
        let mut newest = last.unwrap_or(i64::MIN);
        let mut store_error: Option<Diagnostic> = None;
        let end = plan.to.map(rfc3339);
        let result = client
            .bar_pages(std::slice::from_ref(symbol), plan.timeframe, &rfc3339(start), end.as_deref(), |mut page| {
                report.pages += 1;
                let bars = page.remove(symbol).unwrap_or_default();
                let mut series = BarSeries::new(symbol.clone());
                for b in bars {
                    let b = Bar { ts: stored_ts(b.ts, plan.timeframe), ..b };
                    if !valid(&b) {
                        report.invalid += 1;
                    } else if b.ts <= newest {
                        report.duplicates += 1;
                    } else {
                        newest = b.ts;
                        series.push(b);
                    }
                }
                if series.is_empty() {
                    return Ok(());
                }
                let mut h = Sha256::new();
                for i in 0..series.len() {
                    h.update(series.ts[i].to_le_bytes());
                    for c in [&series.open, &series.high, &series.low, &series.close, &series.volume] {
                        h.update(c[i].to_le_bytes());
                    }
                }
                let item = ImportItem {
                    series: &series,
                    timeframe: plan.timeframe,
                    source: format!("alpaca market data ({} bars of {symbol})", plan.timeframe),
                    sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
                };
                if let Err(d) = bar_store::import(&plan.store, &[item]) {
                    store_error = Some(d);
                    return Err(BrokerError::Malformed {
                        method: "GET",
                        path: "bars".into(),
                        detail: "stopped".into(),
                    });
                }
                report.written += series.len();
                report.first = report.first.or(series.ts.first().copied());
                report.last = series.ts.last().copied();
                progress(symbol, newest);
                Ok(())
            })
            .await;
        if let Some(d) = store_error {
            return Err(d);
        }
        if let Err(e) = result {
            let kept = if report.written > 0 {
                format!("; {} bars of `{symbol}` were stored and a new fetch resumes after them", report.written)
            } else {
                String::new()
            };
            return Err(Diagnostic::error(codes::BROKER, format!("fetching `{symbol}` failed: {e}{kept}")).help(
                "check APCA_API_KEY_ID, APCA_API_SECRET_KEY and the network; rate limits are waited out, other failures \
                 stop the fetch",
            ));
        }
        out.push(report);
    }
    Ok(out)
}

/// A stored series with its range and gaps, for `dsl data list`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesSummary {
    /// Symbol.
    pub symbol: String,
    /// Timeframe label.
    pub timeframe: String,
    /// Bars.
    pub bars: usize,
    /// First bar time (UTC seconds).
    pub first: i64,
    /// Last bar time (UTC seconds).
    pub last: i64,
    /// Gaps (see the module doc).
    pub gaps: usize,
    /// The first few gaps: `(after, before)` bar times, UTC seconds.
    pub first_gaps: Vec<(i64, i64)>,
}

/// Summarises a store's series.
pub fn summarize(stored: &[Stored]) -> Vec<SeriesSummary> {
    stored
        .iter()
        .filter(|s| !s.ts.is_empty())
        .map(|s| {
            let tf: Option<Timeframe> = s.timeframe.parse().ok();
            let gaps = tf.map(|tf| gaps(&s.symbol, tf, &s.ts)).unwrap_or_default();
            SeriesSummary {
                symbol: s.symbol.clone(),
                timeframe: s.timeframe.clone(),
                bars: s.ts.len(),
                first: s.ts[0],
                last: s.ts[s.ts.len() - 1],
                gaps: gaps.len(),
                first_gaps: gaps.into_iter().take(5).collect(),
            }
        })
        .collect()
}

/// The gaps of a series: `(after, before)` pairs of consecutive bar times with bars missing
/// between them.
fn gaps(symbol: &str, tf: Timeframe, ts: &[i64]) -> Vec<(i64, i64)> {
    let market = Market::for_symbol(symbol);
    let calendar = SessionClock::new(market);
    let step = tf.seconds();
    let mut out = Vec::new();
    for w in ts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let missing = match tf.unit {
            TimeUnit::Day if tf.count == 1 => {
                // Sessions strictly between the two dates.
                let (Some(da), Some(db)) = (Utc.timestamp_opt(a, 0).single(), Utc.timestamp_opt(b, 0).single()) else {
                    continue;
                };
                let mut d = da.date_naive();
                let end = db.date_naive();
                let mut found = false;
                while let Some(n) = d.succ_opt() {
                    d = n;
                    if d >= end {
                        break;
                    }
                    let open = match calendar.day(d) {
                        DayKind::Open(_) => true,
                        DayKind::Closed => false,
                        // Outside the calendar's years: weekdays.
                        DayKind::Unknown => chrono::Datelike::weekday(&d).number_from_monday() <= 5,
                    };
                    if open {
                        found = true;
                        break;
                    }
                }
                found
            }
            TimeUnit::Minute | TimeUnit::Hour if market == Market::UsEquities => {
                // Inside one session only: the night and the weekend are no gap.
                let date = |t: i64| Utc.timestamp_opt(t, 0).single().map(|x| x.with_timezone(&New_York).date_naive());
                b - a > step && date(a) == date(b)
            }
            _ => b - a > step,
        };
        if missing {
            out.push((a, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()
    }

    #[test]
    fn daily_bars_are_stored_on_their_new_york_date() {
        let tf: Timeframe = "1d".parse().unwrap();
        // Alpaca's 2022-06-08 bar is stamped 04:00Z (midnight New York, summer time).
        assert_eq!(stored_ts(day(2022, 6, 8) + 4 * 3600, tf), day(2022, 6, 8));
        assert_eq!(stored_ts(day(2022, 1, 3) + 5 * 3600, tf), day(2022, 1, 3));
        let m: Timeframe = "1m".parse().unwrap();
        assert_eq!(stored_ts(day(2022, 1, 3) + 5 * 3600, m), day(2022, 1, 3) + 5 * 3600);
    }

    #[test]
    fn gaps_are_missing_sessions_not_weekends_or_holidays() {
        let tf: Timeframe = "1d".parse().unwrap();
        // Thu 2019-11-21, Fri 22, Mon 25, Tue 26, Wed 27, (Thanksgiving 28), Fri 29: no gap.
        let full = [
            day(2019, 11, 21),
            day(2019, 11, 22),
            day(2019, 11, 25),
            day(2019, 11, 26),
            day(2019, 11, 27),
            day(2019, 11, 29),
        ];
        assert!(gaps("AAPL", tf, &full).is_empty());
        // Tuesday missing: one gap.
        let holed = [day(2019, 11, 25), day(2019, 11, 27)];
        assert_eq!(gaps("AAPL", tf, &holed), vec![(day(2019, 11, 25), day(2019, 11, 27))]);
        // Crypto trades every day: the weekend is a gap.
        assert_eq!(gaps("BTC/USD", tf, &[day(2019, 11, 22), day(2019, 11, 25)]).len(), 1);
        let m: Timeframe = "1m".parse().unwrap();
        let t0 = day(2019, 11, 25) + 15 * 3600;
        assert_eq!(
            gaps("AAPL", m, &[t0, t0 + 60, t0 + 300, day(2019, 11, 26) + 15 * 3600]).len(),
            1,
            "the night is no gap"
        );
    }
}
