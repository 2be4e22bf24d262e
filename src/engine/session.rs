//! The trading session of a market: when it opens and closes on a date, in the market's zone,
//! and the `session.*` fields rules read (`session.is_open`, `session.minutes_since_open`,
//! `session.minutes_to_close`, `session.day_of_week`, `session.date`, `session.early_close`).
//!
//! Two calendars:
//! - **US equities**: the New York Stock Exchange's regular session, 09:30–16:00
//!   America/New_York, with the exchange's holidays and early closes (13:00), from the
//!   `exchange-hours` crate, whose NYSE rows (2010–2028) are each sourced from the operator's
//!   published holiday calendars. A date the crate cannot answer for (before 2010, after its
//!   table) has no known session: its fields are undefined and rules reading them fail closed.
//! - **Crypto**: 24/7; the "session" is the UTC day (00:00–24:00 UTC), never an early close.
//!
//! A symbol with a `/` (`BTC/USD`) or ending in `USD`/`USDT`/`USDC` with no exchange suffix is
//! crypto; any other symbol trades on the US equities calendar unless the bot says otherwise.
//!
//! The fields describe the moment a rule decides: the **close** of the bar (its start plus the
//! bar's length). For intraday bars, the 09:30 one-minute bar decides at 09:31, one minute after
//! the open; the 15:59 bar decides at 16:00 with 0 minutes to the close. A daily bar decides at
//! its date's session close (minutes to close 0). The date and day of week are those of the
//! bar's start in the market's zone (a daily bar's own date).

use std::cell::Cell;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::America::New_York;
use exchange_hours::{Exchange, SessionKind, calendar_for_exchange};

/// Seconds in a day.
const DAY: i64 = 86_400;

/// A market whose sessions the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Market {
    /// US equities: the NYSE regular session in America/New_York, holidays and early closes.
    UsEquities,
    /// Crypto: always open; days are UTC days.
    Crypto,
}

impl Market {
    /// The market a symbol trades on when the bot does not say: crypto for pairs (`BTC/USD`)
    /// and `…USD`/`…USDT`/`…USDC` tickers of 6 or more letters, US equities otherwise.
    pub fn for_symbol(symbol: &str) -> Market {
        let pair = symbol.contains('/')
            || (symbol.len() >= 6
                && symbol.chars().all(|c| c.is_ascii_uppercase())
                && ["USD", "USDT", "USDC"].iter().any(|q| symbol.ends_with(q)));
        if pair { Market::Crypto } else { Market::UsEquities }
    }

    /// The name written in manifests and messages: `us_equities` or `crypto`.
    pub fn as_str(self) -> &'static str {
        match self {
            Market::UsEquities => "us_equities",
            Market::Crypto => "crypto",
        }
    }

    /// Parses [`Market::as_str`].
    pub fn parse(s: &str) -> Option<Market> {
        match s {
            "us_equities" => Some(Market::UsEquities),
            "crypto" => Some(Market::Crypto),
            _ => None,
        }
    }
}

/// One date's regular session, in UTC seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionDay {
    /// The open (inclusive).
    pub open: i64,
    /// The close (exclusive).
    pub close: i64,
    /// The session closes before its regular time (an NYSE early close, 13:00 New York).
    pub early_close: bool,
}

/// The values of the `session.*` fields for one bar (`NaN` where undefined).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionFields {
    /// 1 when the bar lies inside its date's regular session, 0 when not (also on a date with
    /// no session), `NaN` when the date is outside the calendar's coverage.
    pub is_open: f64,
    /// Minutes from the session's open to the decision time (negative before the open);
    /// `NaN` on a date without a session.
    pub minutes_since_open: f64,
    /// Minutes from the decision time to the session's close (negative after it); `NaN` on a
    /// date without a session.
    pub minutes_to_close: f64,
    /// ISO day of week of the bar's date in the market's zone: 1 Monday … 7 Sunday.
    pub day_of_week: f64,
    /// The bar's date in the market's zone as a number `yyyymmdd` (20191129).
    pub date: f64,
    /// 1 when the date's session closes early, 0 when not; `NaN` without a session.
    pub early_close: f64,
}

impl SessionFields {
    /// Every field undefined.
    pub const UNDEFINED: SessionFields = SessionFields {
        is_open: f64::NAN,
        minutes_since_open: f64::NAN,
        minutes_to_close: f64::NAN,
        day_of_week: f64::NAN,
        date: f64::NAN,
        early_close: f64::NAN,
    };
}

/// What a calendar knows about a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// A trading day with this session.
    Open(SessionDay),
    /// No session (a weekend or a holiday).
    Closed,
    /// The calendar cannot say (outside its sourced range).
    Unknown,
}

/// A market's calendar with a one-date cache (bars come in time order, so one date is asked
/// for many times in a row).
#[derive(Debug, Clone)]
pub struct SessionClock {
    market: Market,
    cached: Cell<Option<(NaiveDate, DayKind)>>,
}

impl SessionClock {
    /// A clock for `market`.
    pub fn new(market: Market) -> Self {
        SessionClock { market, cached: Cell::new(None) }
    }

    /// The market.
    pub fn market(&self) -> Market {
        self.market
    }

    /// The session of `date` (in the market's zone).
    pub fn day(&self, date: NaiveDate) -> DayKind {
        if let Some((d, k)) = self.cached.get()
            && d == date
        {
            return k;
        }
        let k = match self.market {
            Market::Crypto => {
                let open = date.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp());
                DayKind::Open(SessionDay { open, close: open + DAY, early_close: false })
            }
            Market::UsEquities => nyse_day(date),
        };
        self.cached.set(Some((date, k)));
        k
    }

    /// The `session.*` fields of a bar starting at `ts` (UTC seconds) and lasting `bar_secs`.
    pub fn fields(&self, ts: i64, bar_secs: i64) -> SessionFields {
        let Some(start) = DateTime::<Utc>::from_timestamp(ts, 0) else {
            return SessionFields::UNDEFINED;
        };
        let daily = bar_secs >= DAY;
        // A daily bar is its own date; an intraday bar's date is its start's in the zone.
        let date = match (self.market, daily) {
            (Market::UsEquities, false) => start.with_timezone(&New_York).date_naive(),
            _ => start.date_naive(),
        };
        let mut f = SessionFields {
            day_of_week: f64::from(date.weekday().number_from_monday()),
            date: f64::from(date.year() * 10_000 + date.month() as i32 * 100 + date.day() as i32),
            ..SessionFields::UNDEFINED
        };
        match self.day(date) {
            DayKind::Unknown => {}
            DayKind::Closed => f.is_open = 0.0,
            DayKind::Open(s) => {
                let (decide, inside) = if daily {
                    (s.close, true)
                } else {
                    let end = ts.saturating_add(bar_secs);
                    (end, ts >= s.open && end <= s.close)
                };
                f.is_open = if inside { 1.0 } else { 0.0 };
                f.minutes_since_open = (decide - s.open) as f64 / 60.0;
                f.minutes_to_close = (s.close - decide) as f64 / 60.0;
                f.early_close = if s.early_close { 1.0 } else { 0.0 };
            }
        }
        f
    }
}

/// The NYSE regular session of `date` (a New York date).
fn nyse_day(date: NaiveDate) -> DayKind {
    let Some(noon) = date.and_hms_opt(12, 0, 0).and_then(|t| New_York.from_local_datetime(&t).single()) else {
        return DayKind::Unknown;
    };
    let calendar = calendar_for_exchange(Exchange::Nyse);
    // Regular sessions are 09:30-16:00 (13:00 on early closes): noon is inside every one of
    // them, so the session around noon is the date's; on a closed date the answer is the
    // next session, of another date.
    match calendar.session_bounds_with(noon.with_timezone(&Utc), SessionKind::Regular) {
        Ok(Some((open, close))) if open.with_timezone(&New_York).date_naive() == date => {
            let local_close = close.with_timezone(&New_York);
            let early_close = (local_close.hour(), local_close.minute()) < (16, 0);
            DayKind::Open(SessionDay { open: open.timestamp(), close: close.timestamp(), early_close })
        }
        Ok(_) => DayKind::Closed,
        Err(_) => DayKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        New_York.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap().timestamp()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn nyse_holidays_early_closes_and_daylight_saving() {
        let c = SessionClock::new(Market::UsEquities);
        // Thanksgiving 2019 is closed; the day after closes at 13:00 New York.
        assert_eq!(c.day(date(2019, 11, 28)), DayKind::Closed);
        assert_eq!(
            c.day(date(2019, 11, 29)),
            DayKind::Open(SessionDay {
                open: ny(2019, 11, 29, 9, 30),
                close: ny(2019, 11, 29, 13, 0),
                early_close: true
            })
        );
        // Martin Luther King Jr. Day 2011; a weekend.
        assert_eq!(c.day(date(2011, 1, 17)), DayKind::Closed);
        assert_eq!(c.day(date(2011, 1, 15)), DayKind::Closed);
        // Across the 2011-03-13 change to daylight time the open stays 09:30 New York:
        // 14:30 UTC before, 13:30 UTC after.
        let before = c.day(date(2011, 3, 11));
        let after = c.day(date(2011, 3, 14));
        assert_eq!(before, DayKind::Open(SessionDay { open: 1_299_853_800, close: 1_299_877_200, early_close: false }));
        assert_eq!(after, DayKind::Open(SessionDay { open: 1_300_109_400, close: 1_300_132_800, early_close: false }));
        // Before the calendar's sourced range: unknown, not guessed.
        assert_eq!(c.day(date(1990, 1, 2)), DayKind::Unknown);
    }

    #[test]
    fn intraday_fields_are_taken_at_the_bars_close() {
        let c = SessionClock::new(Market::UsEquities);
        let f = c.fields(ny(2019, 11, 5, 9, 30), 60);
        assert_eq!((f.is_open, f.minutes_since_open, f.minutes_to_close), (1.0, 1.0, 389.0));
        assert_eq!((f.day_of_week, f.date, f.early_close), (2.0, 20191105.0, 0.0));
        let last = c.fields(ny(2019, 11, 5, 15, 59), 60);
        assert_eq!((last.is_open, last.minutes_to_close), (1.0, 0.0));
        let pre = c.fields(ny(2019, 11, 5, 8, 0), 60);
        assert_eq!((pre.is_open, pre.minutes_since_open), (0.0, -89.0));
        let after_early_close = c.fields(ny(2019, 11, 29, 13, 0), 60);
        assert_eq!((after_early_close.is_open, after_early_close.minutes_to_close), (0.0, -1.0));
        assert_eq!(after_early_close.early_close, 1.0);
        let holiday = c.fields(ny(2019, 11, 28, 10, 0), 60);
        assert_eq!(holiday.is_open, 0.0);
        assert!(holiday.minutes_since_open.is_nan() && holiday.minutes_to_close.is_nan());
        assert_eq!(holiday.day_of_week, 4.0);
    }

    #[test]
    fn daily_bars_decide_at_their_dates_close() {
        let c = SessionClock::new(Market::UsEquities);
        // Daily bars are stamped 00:00 UTC of their date (19:00 New York the day before).
        let ts = date(2019, 11, 29).and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        let f = c.fields(ts, DAY);
        assert_eq!((f.is_open, f.minutes_since_open, f.minutes_to_close), (1.0, 210.0, 0.0));
        assert_eq!((f.date, f.day_of_week, f.early_close), (20191129.0, 5.0, 1.0));
    }

    #[test]
    fn crypto_is_always_open_on_utc_days() {
        let c = SessionClock::new(Market::Crypto);
        let ts = date(2020, 1, 1).and_hms_opt(23, 0, 0).unwrap().and_utc().timestamp();
        let f = c.fields(ts, 1_800);
        assert_eq!((f.is_open, f.minutes_since_open, f.minutes_to_close), (1.0, 1_410.0, 30.0));
        assert_eq!((f.day_of_week, f.early_close), (3.0, 0.0));
        assert_eq!(Market::for_symbol("BTC/USD"), Market::Crypto);
        assert_eq!(Market::for_symbol("BTCUSD"), Market::Crypto);
        assert_eq!(Market::for_symbol("ETHUSDT"), Market::Crypto);
        assert_eq!(Market::for_symbol("AAPL"), Market::UsEquities);
        assert_eq!(Market::for_symbol("USD"), Market::UsEquities);
    }
}
