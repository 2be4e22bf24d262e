//! Higher-timeframe bars aggregated from a symbol's own bars, for rules that read `x@1d`.
//!
//! A [`Resampler`] takes the base bars one at a time, in time order, and hands back each
//! higher-timeframe bar **once it has closed**: first open, highest high, lowest low, last
//! close, summed volume (the usual OHLCV aggregation). A bar closes
//! - on the base bar that ends at or after the end of its period (the 15:59 one-minute bar
//!   closes the 16:00 session day; a daily bar closes a week on the week's last session), or
//! - when a later base bar falls into another period (data with a gap: the missing minutes
//!   never come, the next day's first bar closes the day before it is itself counted).
//!
//! Either way only bars already seen go into it, so a rule never sees a higher-timeframe value
//! before the base bar on which that bar closed: no lookahead, by construction.
//!
//! Periods follow the strategy's [`Aggregation`]:
//! - **session** (US equities): days are regular sessions (09:30–16:00 America/New_York, early
//!   closes and holidays from the exchange calendar, see [`super::session`]); minutes and hours
//!   count from the open (`@1h`: 09:30–10:30 … 15:30–16:00, the last one short); weeks (ISO,
//!   Monday first) and months hold the session dates inside them and close with the last
//!   session. Intraday bars outside the regular session are left out. A weekday the calendar
//!   cannot answer for (outside its sourced years) gets the regular 09:30–16:00 hours; an early
//!   close there closes its day only when the next bar comes. Daily base bars are their own
//!   session date and end at its close. Crypto sessions are UTC days, as below.
//! - **utc**: minutes, hours and days aligned to the Unix epoch (00:00 UTC), ISO weeks from
//!   Monday 00:00 UTC, calendar months in UTC; every bar counts.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;

use super::market::Bar;
use super::session::{DayKind, Market, SessionClock, SessionDay};
use crate::config::timeframe::{Aggregation, Resample, TimeUnit};

/// Seconds in a day.
const DAY: i64 = 86_400;
/// 1970-01-05, the first Monday after the Unix epoch, as days since the epoch: ISO weeks are
/// counted from it.
const FIRST_MONDAY: i64 = 4;

/// What the resampler needs to know about the symbol's own bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseBars {
    /// The market whose sessions bound the periods.
    pub market: Market,
    /// Length of one base bar, seconds (a bar starting at `ts` covers `ts..ts + bar_secs`).
    pub bar_secs: i64,
}

impl BaseBars {
    /// Daily US equity bars (a graph that reads no higher timeframe never asks).
    pub const DAILY_EQUITIES: BaseBars = BaseBars { market: Market::UsEquities, bar_secs: DAY };
}

/// The period a base bar belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    /// Identifies the period (its start, UTC seconds).
    start: i64,
    /// When the period's last bar ends (UTC seconds): a base bar ending at or after it closes
    /// the period.
    end: i64,
}

/// Aggregates base bars into the bars of one higher timeframe.
#[derive(Debug, Clone)]
pub struct Resampler {
    resample: Resample,
    base: BaseBars,
    /// The market calendar, for session periods of US equities.
    calendar: Option<SessionClock>,
    /// The period being built and its bar so far.
    open: Option<(Period, Bar)>,
    /// The last session date placed in a day, week or month period, and that period (the
    /// bars of one date share it; finding its last session takes calendar lookups).
    dated: std::cell::Cell<Option<(NaiveDate, Period)>>,
}

impl Resampler {
    /// A resampler building `resample` bars from `base` bars.
    pub fn new(resample: Resample, base: BaseBars) -> Self {
        let calendar = (resample.aggregation == Aggregation::Session && base.market == Market::UsEquities)
            .then(|| SessionClock::new(base.market));
        Resampler { resample, base, calendar, open: None, dated: std::cell::Cell::new(None) }
    }

    /// Takes the next base bar and returns the higher-timeframe bars it closes, oldest first:
    /// the one a gap left open (when `bar` is in a later period), then the one `bar` itself
    /// completes. Each bar's `ts` is the start of its period.
    pub fn push(&mut self, bar: &Bar) -> [Option<Bar>; 2] {
        let mut closed = [None, None];
        let Some((period, ends)) = self.place(bar.ts) else {
            // Left out (outside the session), but time has passed: a period already over closes.
            if let Some((p, b)) = self.open
                && bar.ts >= p.end
            {
                closed[0] = Some(b);
                self.open = None;
            }
            return closed;
        };
        match &mut self.open {
            Some((p, b)) if p.start == period.start => {
                b.high = b.high.max(bar.high);
                b.low = b.low.min(bar.low);
                b.close = bar.close;
                b.volume += bar.volume;
            }
            open => {
                if let Some((_, b)) = open.take() {
                    closed[0] = Some(b);
                }
                *open = Some((period, Bar { ts: period.start, ..*bar }));
            }
        }
        if ends >= period.end {
            closed[1] = self.open.take().map(|(_, b)| b);
        }
        closed
    }

    /// The period of the base bar starting at `ts` and when that bar ends (its session's close
    /// for a daily bar on session periods); `None` when the bar is left out.
    fn place(&self, ts: i64) -> Option<(Period, i64)> {
        let tf = self.resample.timeframe;
        let count = i64::from(tf.count);
        let end = ts.saturating_add(self.base.bar_secs);
        let Some(calendar) = &self.calendar else {
            return Some((utc_period(ts, tf.unit, count)?, end));
        };
        let daily = self.base.bar_secs >= DAY;
        let start = DateTime::<Utc>::from_timestamp(ts, 0)?;
        let date = if daily { start.date_naive() } else { start.with_timezone(&New_York).date_naive() };
        let session = regular_session(calendar, date)?;
        if !daily && (ts < session.open || end > session.close) {
            return None;
        }
        let ends = if daily { session.close } else { end };
        let period = match tf.unit {
            TimeUnit::Minute | TimeUnit::Hour => {
                let len = tf.seconds();
                let start = session.open + (ts - session.open).div_euclid(len) * len;
                Period { start, end: (start + len).min(session.close) }
            }
            _ if self.dated.get().is_some_and(|(d, _)| d == date) => self.dated.get()?.1,
            unit => {
                let (first, last) = date_period(date, unit, count)?;
                // The period closes with its last session (searched backwards from its last
                // date; the bar's own date has one, so the search ends there at the latest).
                let mut d = last;
                let close = loop {
                    if let Some(s) = regular_session(calendar, d) {
                        break s.close;
                    }
                    if d <= date {
                        break session.close;
                    }
                    d = d.pred_opt()?;
                };
                let period = Period { start: midnight_utc(first), end: close };
                self.dated.set(Some((date, period)));
                period
            }
        };
        Some((period, ends))
    }
}

/// The regular session of `date` on `calendar`: the calendar's, or 09:30–16:00 New York on a
/// weekday it cannot answer for; `None` on a closed date.
fn regular_session(calendar: &SessionClock, date: NaiveDate) -> Option<SessionDay> {
    match calendar.day(date) {
        DayKind::Open(s) => Some(s),
        DayKind::Closed => None,
        DayKind::Unknown => {
            if date.weekday().number_from_monday() > 5 {
                return None;
            }
            let at = |h, m| New_York.from_local_datetime(&date.and_hms_opt(h, m, 0)?).single().map(|t| t.timestamp());
            Some(SessionDay { open: at(9, 30)?, close: at(16, 0)?, early_close: false })
        }
    }
}

/// The UTC period holding `ts`: epoch-aligned for fixed lengths, ISO weeks, calendar months.
fn utc_period(ts: i64, unit: TimeUnit, count: i64) -> Option<Period> {
    match unit {
        TimeUnit::Minute | TimeUnit::Hour | TimeUnit::Day => {
            let len = match unit {
                TimeUnit::Minute => 60,
                TimeUnit::Hour => 3_600,
                _ => DAY,
            } * count;
            let start = ts.div_euclid(len) * len;
            Some(Period { start, end: start.checked_add(len)? })
        }
        TimeUnit::Week | TimeUnit::Month => {
            let date = DateTime::<Utc>::from_timestamp(ts, 0)?.date_naive();
            let (first, last) = date_period(date, unit, count)?;
            Some(Period { start: midnight_utc(first), end: midnight_utc(last.succ_opt()?) })
        }
    }
}

/// The first and last date of the `count`-day, -week or -month period holding `date`: days
/// aligned to 1970-01-01, ISO weeks to Monday 1970-01-05, months to January of year 0.
fn date_period(date: NaiveDate, unit: TimeUnit, count: i64) -> Option<(NaiveDate, NaiveDate)> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let days = (date - epoch).num_days();
    match unit {
        TimeUnit::Month => {
            let month = i64::from(date.year()) * 12 + i64::from(date.month0());
            let first = month.div_euclid(count) * count;
            let next = first + count;
            let ymd = |m: i64| {
                NaiveDate::from_ymd_opt(i32::try_from(m.div_euclid(12)).ok()?, (m.rem_euclid(12) + 1) as u32, 1)
            };
            Some((ymd(first)?, ymd(next)?.pred_opt()?))
        }
        _ => {
            let (len, origin) = if unit == TimeUnit::Week { (7 * count, FIRST_MONDAY) } else { (count, 0) };
            let first = (days - origin).div_euclid(len) * len + origin;
            let start = epoch.checked_add_signed(Duration::days(first))?;
            Some((start, start.checked_add_signed(Duration::days(len - 1))?))
        }
    }
}

/// 00:00 UTC of `date`, UTC seconds.
fn midnight_utc(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::timeframe::Timeframe;

    fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        New_York.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap().timestamp()
    }

    fn bar(ts: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
        Bar { ts, open: o, high: h, low: l, close: c, volume: v }
    }

    fn resampler(tf: &str, aggregation: Aggregation, market: Market, bar_secs: i64) -> Resampler {
        let timeframe: Timeframe = tf.parse().unwrap();
        Resampler::new(Resample { timeframe, aggregation }, BaseBars { market, bar_secs })
    }

    #[test]
    fn a_session_day_closes_on_its_last_minute_with_ohlcv_aggregated() {
        let mut r = resampler("1d", Aggregation::Session, Market::UsEquities, 60);
        // Pre-market minutes are left out.
        assert_eq!(r.push(&bar(ny(2019, 11, 26, 9, 0), 9.0, 99.0, 1.0, 9.0, 5.0)), [None, None]);
        assert_eq!(r.push(&bar(ny(2019, 11, 26, 9, 30), 10.0, 11.0, 9.5, 10.5, 100.0)), [None, None]);
        assert_eq!(r.push(&bar(ny(2019, 11, 26, 12, 0), 10.5, 12.0, 10.0, 11.0, 50.0)), [None, None]);
        let [gap, done] = r.push(&bar(ny(2019, 11, 26, 15, 59), 11.0, 11.5, 8.0, 9.0, 25.0));
        assert_eq!(gap, None);
        let day = done.expect("the 15:59 bar closes the session");
        let midnight = midnight_utc(NaiveDate::from_ymd_opt(2019, 11, 26).unwrap());
        assert_eq!(day, bar(midnight, 10.0, 12.0, 8.0, 9.0, 175.0), "dated 00:00 UTC of its session date");
        // After-hours minutes are left out and close nothing more.
        assert_eq!(r.push(&bar(ny(2019, 11, 26, 16, 0), 9.0, 9.0, 9.0, 9.0, 1.0)), [None, None]);
    }

    #[test]
    fn an_early_close_ends_the_day_at_13_00_and_a_gap_closes_on_the_next_bar() {
        let mut r = resampler("1d", Aggregation::Session, Market::UsEquities, 60);
        // The day after Thanksgiving 2019 closed at 13:00.
        r.push(&bar(ny(2019, 11, 29, 9, 30), 1.0, 2.0, 0.5, 1.5, 1.0));
        let [_, done] = r.push(&bar(ny(2019, 11, 29, 12, 59), 1.5, 3.0, 1.0, 2.5, 1.0));
        assert_eq!(done.map(|b| (b.high, b.close)), Some((3.0, 2.5)));
        // A day whose last minutes are missing closes when the next session's first bar comes.
        r.push(&bar(ny(2019, 12, 2, 9, 30), 5.0, 6.0, 4.0, 5.5, 1.0));
        let [gap, done] = r.push(&bar(ny(2019, 12, 3, 9, 30), 7.0, 7.0, 7.0, 7.0, 1.0));
        assert_eq!(gap.map(|b| (b.open, b.close)), Some((5.0, 5.5)));
        assert_eq!(done, None);
    }

    #[test]
    fn hours_count_from_the_open_and_the_last_one_is_short() {
        let mut r = resampler("1h", Aggregation::Session, Market::UsEquities, 60 * 30);
        let mut closes = Vec::new();
        let mut t = ny(2019, 11, 26, 9, 30);
        while t < ny(2019, 11, 26, 16, 0) {
            for b in r.push(&bar(t, 1.0, 1.0, 1.0, 1.0, 1.0)).into_iter().flatten() {
                closes.push((b.ts, b.volume));
            }
            t += 1800;
        }
        let hours: Vec<(i64, f64)> =
            (0..7).map(|k| (ny(2019, 11, 26, 9, 30) + k * 3600, if k < 6 { 2.0 } else { 1.0 })).collect();
        assert_eq!(closes, hours);
    }

    #[test]
    fn weeks_of_daily_bars_close_on_the_last_session_of_the_week() {
        let day =
            |d: u32| NaiveDate::from_ymd_opt(2019, 11, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        let mut session = resampler("1w", Aggregation::Session, Market::UsEquities, DAY);
        let mut utc = resampler("1w", Aggregation::Utc, Market::UsEquities, DAY);
        // Thanksgiving week 2019: Mon 25 .. Wed 27, closed Thu 28, early close Fri 29.
        for d in [25, 26, 27] {
            assert_eq!(session.push(&bar(day(d), 1.0, 1.0, 1.0, 1.0, 1.0)), [None, None]);
            assert_eq!(utc.push(&bar(day(d), 1.0, 1.0, 1.0, 1.0, 1.0)), [None, None]);
        }
        let [_, week] = session.push(&bar(day(29), 1.0, 2.0, 1.0, 2.0, 1.0));
        assert_eq!(week.map(|b| (b.ts, b.volume)), Some((day(25), 4.0)), "closes with Friday's session");
        assert_eq!(utc.push(&bar(day(29), 1.0, 2.0, 1.0, 2.0, 1.0)), [None, None], "a UTC week ends on Sunday night");
        let [gap, _] = utc.push(&bar(
            NaiveDate::from_ymd_opt(2019, 12, 2).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp(),
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
        ));
        assert_eq!(gap.map(|b| (b.ts, b.volume)), Some((day(25), 4.0)));
    }

    #[test]
    fn utc_periods_align_to_the_epoch_weeks_and_months() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        let p = |s: &str, unit, count| utc_period(t(s), unit, count).unwrap();
        assert_eq!(
            p("2024-02-29T13:47:00Z", TimeUnit::Hour, 4),
            Period { start: t("2024-02-29T12:00:00Z"), end: t("2024-02-29T16:00:00Z") }
        );
        assert_eq!(
            p("2024-02-29T13:47:00Z", TimeUnit::Week, 1),
            Period { start: t("2024-02-26T00:00:00Z"), end: t("2024-03-04T00:00:00Z") }
        );
        assert_eq!(
            p("2024-02-29T13:47:00Z", TimeUnit::Month, 1),
            Period { start: t("2024-02-01T00:00:00Z"), end: t("2024-03-01T00:00:00Z") }
        );
        assert_eq!(
            p("2024-02-29T13:47:00Z", TimeUnit::Month, 3),
            Period { start: t("2024-01-01T00:00:00Z"), end: t("2024-04-01T00:00:00Z") }
        );
        assert_eq!(
            p("1969-12-31T23:00:00Z", TimeUnit::Day, 1),
            Period { start: t("1969-12-31T00:00:00Z"), end: t("1970-01-01T00:00:00Z") }
        );
    }

    #[test]
    fn crypto_sessions_are_utc_days() {
        let mut r = resampler("1d", Aggregation::Session, Market::Crypto, 3600);
        let t0 = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        for h in 0..23 {
            assert_eq!(r.push(&bar(t0 + h * 3600, 1.0, 1.0, 1.0, 1.0, 1.0)), [None, None]);
        }
        let [_, day] = r.push(&bar(t0 + 23 * 3600, 1.0, 1.0, 1.0, 1.0, 1.0));
        assert_eq!(day.map(|b| (b.ts, b.volume)), Some((t0, 24.0)));
    }

    #[test]
    fn weekdays_outside_the_calendar_get_regular_hours() {
        let mut r = resampler("1d", Aggregation::Session, Market::UsEquities, 60);
        // 2005 is before the calendar's sourced years.
        assert_eq!(r.push(&bar(ny(2005, 3, 1, 8, 0), 1.0, 1.0, 1.0, 1.0, 1.0)), [None, None]);
        r.push(&bar(ny(2005, 3, 1, 9, 30), 1.0, 1.0, 1.0, 1.0, 1.0));
        let [_, day] = r.push(&bar(ny(2005, 3, 1, 15, 59), 1.0, 1.0, 1.0, 1.0, 1.0));
        assert_eq!(day.map(|b| b.volume), Some(2.0));
    }
}
