//! Number literals with units: `5%`, `30bps`, `0.05`.
//!
//! Internally every ratio is a fraction (0.05 means 5%). The rule language and the YAML
//! documents accept three spellings of the same value: `0.05`, `5%` and `500bps`
//! (1 bps = 0.0001). The spelling is remembered as a [`NumUnit`] so that a percent written where
//! a fraction is expected (or the reverse) can be flagged.

use std::fmt;

/// How a number was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumUnit {
    /// A plain number, e.g. `0.05` or `10`.
    Plain,
    /// A percent, e.g. `5%` (value 0.05).
    Percent,
    /// Basis points, e.g. `30bps` (value 0.003).
    Bps,
}

impl fmt::Display for NumUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumUnit::Plain => "plain number",
            NumUnit::Percent => "percent",
            NumUnit::Bps => "bps",
        })
    }
}

/// A number with at most 6 decimals and no trailing zeros: `0.05`, `12`, `0.333333`.
pub fn trim_float(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A number as the user wrote it: `0.05`, `5%` or `500bps` (`v` is the value as a fraction
/// for percent and bps).
pub fn written(v: f64, unit: NumUnit) -> String {
    match unit {
        NumUnit::Plain => trim_float(v),
        NumUnit::Percent => format!("{}%", trim_float(v * 100.0)),
        NumUnit::Bps => format!("{}bps", trim_float(v * 10_000.0)),
    }
}

/// Parses a number literal with an optional `%` or `bps` suffix and returns its value (as a
/// fraction when a unit is given) and the unit. Leading and trailing spaces are ignored, and a
/// space is allowed before the unit (`5 %`). Returns `None` when the text is not a finite number.
///
/// ```
/// use tradedsl::config::units::{parse_number, NumUnit};
/// assert_eq!(parse_number("5%"), Some((0.05, NumUnit::Percent)));
/// assert_eq!(parse_number("30bps"), Some((0.003, NumUnit::Bps)));
/// assert_eq!(parse_number("0.5"), Some((0.5, NumUnit::Plain)));
/// assert_eq!(parse_number("abc"), None);
/// ```
pub fn parse_number(text: &str) -> Option<(f64, NumUnit)> {
    let t = text.trim();
    let (digits, unit) = if let Some(d) = t.strip_suffix('%') {
        (d.trim_end(), NumUnit::Percent)
    } else if let Some(d) = t.strip_suffix("bps") {
        (d.trim_end(), NumUnit::Bps)
    } else {
        (t, NumUnit::Plain)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) {
        return None;
    }
    let v: f64 = digits.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    Some((apply_unit(v, unit), unit))
}

/// Scales a written number to a fraction: `/100` for percent, `/10000` for bps.
pub fn apply_unit(v: f64, unit: NumUnit) -> f64 {
    match unit {
        NumUnit::Plain => v,
        NumUnit::Percent => v / 100.0,
        NumUnit::Bps => v / 10_000.0,
    }
}

/// A ratio read from a document: the value as a fraction and how it was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The value as a fraction (0.05 means 5%).
    pub value: f64,
    /// How the user wrote it.
    pub unit: NumUnit,
}

impl Rate {
    /// A rate written as a plain fraction.
    pub fn fraction(value: f64) -> Self {
        Rate { value, unit: NumUnit::Plain }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            NumUnit::Plain => write!(f, "{}", self.value),
            NumUnit::Percent => write!(f, "{}%", self.value * 100.0),
            NumUnit::Bps => write!(f, "{}bps", self.value * 10_000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_number(" 5 % "), Some((0.05, NumUnit::Percent)));
        assert_eq!(parse_number("1e-3"), Some((0.001, NumUnit::Plain)));
        assert_eq!(parse_number("-2"), Some((-2.0, NumUnit::Plain)));
        assert_eq!(parse_number("%"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("1e999"), None);
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(Rate { value: 0.05, unit: NumUnit::Percent }.to_string(), "5%");
        assert_eq!(Rate { value: 0.0005, unit: NumUnit::Bps }.to_string(), "5bps");
    }
}
