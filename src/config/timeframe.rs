//! Bar timeframes such as `1m`, `15m`, `1h`, `1d`, `1w`, `1mo`, and the higher timeframes a
//! rule reads with `@` (`close@1d`): a timeframe plus the boundaries its bars are aggregated on.

use std::fmt;
use std::str::FromStr;

/// The unit of a [`Timeframe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeUnit {
    /// Minutes (`m`).
    Minute,
    /// Hours (`h`).
    Hour,
    /// Days (`d`).
    Day,
    /// Weeks (`w`).
    Week,
    /// Calendar months (`mo`).
    Month,
}

/// The length of one bar: a count and a unit, written `15m`, `1h`, `1d`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timeframe {
    /// How many units one bar spans (at least 1).
    pub count: u32,
    /// The unit.
    pub unit: TimeUnit,
}

impl Timeframe {
    /// One day.
    pub const DAILY: Timeframe = Timeframe { count: 1, unit: TimeUnit::Day };

    /// Nominal length in seconds (a month counts as 30 days).
    pub fn seconds(&self) -> i64 {
        let unit = match self.unit {
            TimeUnit::Minute => 60,
            TimeUnit::Hour => 3_600,
            TimeUnit::Day => 86_400,
            TimeUnit::Week => 7 * 86_400,
            TimeUnit::Month => 30 * 86_400,
        };
        unit * self.count as i64
    }

    /// The timeframe whose nominal length is nearest to `seconds` among the common ones
    /// (1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w, 1mo). Used to label imported data.
    pub fn nearest(seconds: i64) -> Timeframe {
        const COMMON: [(u32, TimeUnit); 11] = [
            (1, TimeUnit::Minute),
            (5, TimeUnit::Minute),
            (15, TimeUnit::Minute),
            (30, TimeUnit::Minute),
            (1, TimeUnit::Hour),
            (2, TimeUnit::Hour),
            (4, TimeUnit::Hour),
            (1, TimeUnit::Day),
            (1, TimeUnit::Week),
            (2, TimeUnit::Week),
            (1, TimeUnit::Month),
        ];
        let mut best = Timeframe::DAILY;
        let mut best_err = f64::INFINITY;
        for (count, unit) in COMMON {
            let tf = Timeframe { count, unit };
            let err = ((tf.seconds() as f64) / (seconds.max(1) as f64)).ln().abs();
            if err < best_err {
                best_err = err;
                best = tf;
            }
        }
        best
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = match self.unit {
            TimeUnit::Minute => "m",
            TimeUnit::Hour => "h",
            TimeUnit::Day => "d",
            TimeUnit::Week => "w",
            TimeUnit::Month => "mo",
        };
        write!(f, "{}{}", self.count, u)
    }
}

impl FromStr for Timeframe {
    type Err = String;

    /// Parses `<count><unit>` with unit `m`, `h`, `d`, `w` or `mo`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &s[digits.len()..];
        let count: u32 = digits.parse().map_err(|_| format!("`{s}` does not start with a count"))?;
        if count == 0 {
            return Err("the count must be at least 1".into());
        }
        let unit = match unit {
            "m" | "min" => TimeUnit::Minute,
            "h" => TimeUnit::Hour,
            "d" => TimeUnit::Day,
            "w" => TimeUnit::Week,
            "mo" => TimeUnit::Month,
            other => return Err(format!("unknown unit `{other}`")),
        };
        Ok(Timeframe { count, unit })
    }
}

/// Where the bars of a higher timeframe begin and end when they are aggregated from a
/// strategy's base bars (its `aggregation:` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Aggregation {
    /// The market's trading sessions (the default): for US equities a day is the regular
    /// session (09:30–16:00 America/New_York, early closes and holidays from the exchange
    /// calendar), hours count from the open, weeks and months are those of the session dates,
    /// and bars outside the regular session are left out. Crypto sessions are UTC days.
    #[default]
    Session,
    /// UTC: minutes and hours aligned to the Unix epoch, days from 00:00 UTC, ISO weeks from
    /// Monday 00:00 UTC, calendar months in UTC; every bar counts.
    Utc,
}

impl Aggregation {
    /// The name written in a strategy: `session` or `utc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Session => "session",
            Aggregation::Utc => "utc",
        }
    }
}

/// A higher timeframe a rule reads (`sma(close, 50)@1d`): bars of `timeframe` aggregated from
/// the base bars on `aggregation` boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resample {
    /// The higher timeframe.
    pub timeframe: Timeframe,
    /// Its boundaries.
    pub aggregation: Aggregation,
}

impl Timeframe {
    /// Why bars of `self` cannot be aggregated from bars of `base`, or `None` when they can:
    /// the higher timeframe must be longer than the base, a whole multiple of it when both are
    /// fixed lengths (minutes, hours, days, weeks), and months need base bars of a day or less.
    pub fn aggregates_from(&self, base: Timeframe) -> Option<String> {
        if self.seconds() <= base.seconds() {
            return Some(format!("`{self}` is not longer than the strategy's timeframe `{base}`"));
        }
        let months = self.unit == TimeUnit::Month;
        if months && base.seconds() > 86_400 {
            return Some(format!("`{base}` bars do not fit into calendar months"));
        }
        if !months && (base.unit == TimeUnit::Month || self.seconds() % base.seconds() != 0) {
            return Some(format!("`{self}` is not a whole number of `{base}` bars"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["1m", "15m", "1h", "4h", "1d", "1w", "1mo"] {
            assert_eq!(s.parse::<Timeframe>().unwrap().to_string(), s);
        }
        assert!("0d".parse::<Timeframe>().is_err());
        assert!("1y".parse::<Timeframe>().is_err());
        assert!("d".parse::<Timeframe>().is_err());
    }

    #[test]
    fn higher_timeframes_must_hold_whole_base_bars() {
        let tf = |s: &str| s.parse::<Timeframe>().unwrap();
        assert_eq!(tf("1d").aggregates_from(tf("1m")), None);
        assert_eq!(tf("1h").aggregates_from(tf("15m")), None);
        assert_eq!(tf("1w").aggregates_from(tf("1d")), None);
        assert_eq!(tf("1mo").aggregates_from(tf("1d")), None);
        assert!(tf("1d").aggregates_from(tf("1d")).is_some());
        assert!(tf("1h").aggregates_from(tf("1d")).is_some());
        assert!(tf("1h").aggregates_from(tf("45m")).is_some());
        assert!(tf("1mo").aggregates_from(tf("1w")).is_some());
    }

    #[test]
    fn nearest_labels_spacing() {
        assert_eq!(Timeframe::nearest(86_400).to_string(), "1d");
        assert_eq!(Timeframe::nearest(3_600).to_string(), "1h");
        assert_eq!(Timeframe::nearest(60).to_string(), "1m");
        assert_eq!(Timeframe::nearest(31 * 86_400).to_string(), "1mo");
    }
}
