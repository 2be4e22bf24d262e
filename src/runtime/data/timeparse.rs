//! Parsing the time column of bar files.
//!
//! A [`TimeFormat`] is detected once per file from a sample of values spread over the file
//! (so `03/04/2019` is read as month/day unless some value proves it is day/month), or given by
//! the user as a strftime pattern. Values with a UTC offset are converted to UTC; naive values
//! are read in the given time zone (UTC by default). Calendar arithmetic is chrono's.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// How a file writes its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// Fixed-width ISO 8601: `YYYY-MM-DD`, optionally followed by `T` or a space and
    /// `HH:MM[:SS]`, optionally by `Z` or `±HH:MM`. Parsed without allocation (the fast path).
    Iso,
    /// RFC 3339 / ISO 8601 with fractional seconds or other variants chrono accepts.
    Rfc3339,
    /// Seconds since the Unix epoch.
    UnixSeconds,
    /// Milliseconds since the Unix epoch.
    UnixMillis,
    /// A strftime pattern with a UTC offset (`%z` / `%:z`).
    WithOffset(String),
    /// A strftime pattern of a date and time without offset.
    Naive(String),
    /// A strftime pattern of a date only (midnight).
    DateOnly(String),
}

impl TimeFormat {
    /// A user-given strftime pattern, classified by whether it has an offset or a time.
    pub fn from_pattern(p: &str) -> TimeFormat {
        if p.contains("%z") || p.contains("%:z") || p.contains("%#z") {
            TimeFormat::WithOffset(p.to_string())
        } else if ["%H", "%I", "%M", "%S", "%T", "%R", "%p"].iter().any(|t| p.contains(t)) {
            TimeFormat::Naive(p.to_string())
        } else {
            TimeFormat::DateOnly(p.to_string())
        }
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            TimeFormat::Iso => "ISO 8601".into(),
            TimeFormat::Rfc3339 => "RFC 3339".into(),
            TimeFormat::UnixSeconds => "unix seconds".into(),
            TimeFormat::UnixMillis => "unix milliseconds".into(),
            TimeFormat::WithOffset(p) | TimeFormat::Naive(p) | TimeFormat::DateOnly(p) => {
                format!("`{p}`")
            }
        }
    }
}

/// Candidate patterns tried during detection, in order.
const NAIVE_PATTERNS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %I-%p",
    "%Y%m%d %H%M%S",
    "%Y%m%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d.%m.%Y %H:%M:%S%.f",
    "%d.%m.%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%y %H:%M:%S",
    "%m/%d/%y %H:%M",
    "%d-%m-%Y %H:%M:%S",
];

const DATE_PATTERNS: &[&str] = &[
    "%Y%m%d",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d-%b-%y",
    "%d-%b-%Y",
    "%b %d, %Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
];

const OFFSET_PATTERNS: &[&str] =
    &["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%:z"];

/// Picks the format that parses the most samples (the first such in a fixed order of
/// candidates), provided it parses at least half of them. Empty samples are ignored. A few bad
/// values therefore do not hide the format; they fail later, on their own line.
pub fn detect(samples: &[&str]) -> Option<TimeFormat> {
    let samples: Vec<&str> = samples.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    if samples.is_empty() {
        return None;
    }
    let count = |f: &TimeFormat| samples.iter().filter(|s| parse(f, s, &Tz::UTC).is_ok()).count();
    let mut candidates = vec![TimeFormat::Iso, TimeFormat::Rfc3339];
    if samples.iter().all(|s| s.bytes().all(|b| b.is_ascii_digit())) {
        let len = samples[0].len();
        if (9..=10).contains(&len) {
            candidates.insert(0, TimeFormat::UnixSeconds);
        } else if (12..=13).contains(&len) {
            candidates.insert(0, TimeFormat::UnixMillis);
        }
    }
    candidates.extend(OFFSET_PATTERNS.iter().map(|p| TimeFormat::WithOffset(p.to_string())));
    candidates.extend(NAIVE_PATTERNS.iter().map(|p| TimeFormat::Naive(p.to_string())));
    candidates.extend(DATE_PATTERNS.iter().map(|p| TimeFormat::DateOnly(p.to_string())));
    let mut best: Option<(usize, TimeFormat)> = None;
    for c in candidates {
        let n = count(&c);
        if n == samples.len() {
            return Some(c);
        }
        if n * 2 >= samples.len() && n > 0 && best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, c));
        }
    }
    best.map(|(_, f)| f)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// The fast path for fixed-width ISO forms. Returns UTC seconds, or `None` when the text is
/// not of that shape or names an impossible date.
fn parse_iso(s: &str, tz: &Tz) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(digits(&b[0..4])? as i32, digits(&b[5..7])?, digits(&b[8..10])?)?;
    let mut rest = &b[10..];
    let mut time = NaiveTime::MIN;
    if !rest.is_empty() && (rest[0] == b'T' || rest[0] == b' ') {
        let t = &rest[1..];
        if t.len() < 5 || t[2] != b':' {
            return None;
        }
        let (h, m) = (digits(&t[0..2])?, digits(&t[3..5])?);
        let (sec, used) = if t.len() >= 8 && t[5] == b':' { (digits(&t[6..8])?, 8) } else { (0, 5) };
        time = NaiveTime::from_hms_opt(h, m, sec)?;
        rest = &t[used..];
    }
    let naive = NaiveDateTime::new(date, time);
    match rest {
        [] => local_to_utc(naive, tz),
        [b'Z'] => Some(naive.and_utc().timestamp()),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let off = (digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60) as i64;
            let ts = naive.and_utc().timestamp();
            Some(if *sign == b'+' { ts - off } else { ts + off })
        }
        _ => None,
    }
}

/// Converts a naive local time in `tz` to UTC seconds. Ambiguous times (the repeated hour when
/// clocks go back) take the earlier instant; non-existent times (the skipped hour) fail.
pub fn local_to_utc(naive: NaiveDateTime, tz: &Tz) -> Option<i64> {
    if *tz == Tz::UTC {
        return Some(naive.and_utc().timestamp());
    }
    tz.from_local_datetime(&naive).earliest().map(|d| d.timestamp())
}

/// Parses one time value to UTC seconds.
///
/// # Errors
/// A short reason when the text does not match the format or names a time that does not exist.
pub fn parse(f: &TimeFormat, s: &str, tz: &Tz) -> Result<i64, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a time in format {}", f.describe());
    match f {
        TimeFormat::Iso => parse_iso(s, tz).ok_or_else(bad),
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(s).map(|d| d.timestamp()).map_err(|_| bad()),
        TimeFormat::UnixSeconds => s.parse::<i64>().map_err(|_| bad()),
        TimeFormat::UnixMillis => s.parse::<i64>().map(|ms| ms.div_euclid(1000)).map_err(|_| bad()),
        TimeFormat::WithOffset(p) => DateTime::parse_from_str(s, p).map(|d| d.timestamp()).map_err(|_| bad()),
        TimeFormat::Naive(p) => {
            // chrono needs minutes; hour-only formats (`2019-10-17 09-AM`) get `:00` added.
            let n = if p.contains("%M") || p.contains("%R") || p.contains("%T") {
                NaiveDateTime::parse_from_str(s, p)
            } else {
                NaiveDateTime::parse_from_str(&format!("{s} 00"), &format!("{p} %M"))
            }
            .map_err(|_| bad())?;
            local_to_utc(n, tz).ok_or_else(|| format!("`{s}` does not exist in time zone {tz} (clocks skipped it)"))
        }
        TimeFormat::DateOnly(p) => {
            let d = NaiveDate::parse_from_str(s, p).map_err(|_| bad())?;
            local_to_utc(d.and_time(NaiveTime::MIN), tz).ok_or_else(bad)
        }
    }
}

pub use crate::engine::market::format_utc;

/// Parses a `--from`/`--to` bound: an RFC 3339 time or a date (midnight UTC).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_bound(s: &str) -> Result<i64, String> {
    parse_iso(s.trim(), &Tz::UTC)
        .or_else(|| DateTime::parse_from_rfc3339(s.trim()).ok().map(|d| d.timestamp()))
        .ok_or_else(|| format!("`{s}` is not a date (`2012-01-31`) or an RFC 3339 time (`2012-01-31T15:00:00Z`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn detects_the_formats_found_in_real_files() {
        let cases: &[(&[&str], &str)] = &[
            (&["2004-08-19", "2004-08-20"], "2004-08-19T00:00:00Z"),
            (&["2017-04-19 09:00:00", "2017-04-19 10:00:00"], "2017-04-19T09:00:00Z"),
            (&["2021-01-01 06:00:00+00:00"], "2021-01-01T06:00:00Z"),
            (&["2021-07-01 12:56:00-04:00"], "2021-07-01T16:56:00Z"),
            (&["2017-04-19T09:00:00Z"], "2017-04-19T09:00:00Z"),
            (&["2015-09-23T20:57:42.146"], "2015-09-23T20:57:42Z"),
            (&["20110301 090100", "20110301 090300"], "2011-03-01T09:01:00Z"),
            (&["01.01.2017 22:00:00.000", "13.01.2017 22:00:00.000"], "2017-01-01T22:00:00Z"),
            (&["11/5/2019 9:30", "11/5/2019 9:31"], "2019-11-05T09:30:00Z"),
            (&["11/1/2019", "11/4/2019"], "2019-11-01T00:00:00Z"),
            (&["31-Dec-10", "30-Dec-10"], "2010-12-31T00:00:00Z"),
            (&["2019-10-17 09-AM", "2019-10-17 01-PM"], "2019-10-17T09:00:00Z"),
            (&["2019-07-04 00:00", "2019-07-03 00:00"], "2019-07-04T00:00:00Z"),
            (&["1315922016", "1315922024"], "2011-09-13T13:53:36Z"),
        ];
        for (samples, first) in cases {
            let f = detect(samples).unwrap_or_else(|| panic!("no format for {samples:?}"));
            assert_eq!(parse(&f, samples[0], &Tz::UTC).unwrap(), utc(first), "{samples:?} as {f:?}");
        }
    }

    #[test]
    fn day_first_when_a_value_proves_it() {
        let f = detect(&["03/04/2019", "13/04/2019"]).unwrap();
        assert_eq!(parse(&f, "03/04/2019", &Tz::UTC).unwrap(), utc("2019-04-03T00:00:00Z"));
    }

    #[test]
    fn naive_times_in_a_zone() {
        let f = TimeFormat::Naive("%m/%d/%Y %H:%M".into());
        let tz: Tz = "America/New_York".parse().unwrap();
        assert_eq!(parse(&f, "11/5/2019 9:30", &tz).unwrap(), utc("2019-11-05T14:30:00Z"));
        assert!(parse(&TimeFormat::Iso, "2019-03-10 02:30", &tz).is_err(), "skipped by DST");
    }

    #[test]
    fn rejects_impossible_dates() {
        assert!(parse(&TimeFormat::Iso, "2019-02-30", &Tz::UTC).is_err());
        assert!(parse(&TimeFormat::Iso, "2019-02-3x", &Tz::UTC).is_err());
        assert_eq!(format_utc(utc("2004-08-19T00:00:00Z")), "2004-08-19T00:00:00Z");
    }
}
