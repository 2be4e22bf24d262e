//! Walk-forward analysis (Pardo, "The Evaluation and Optimization of Trading Strategies", 2nd
//! ed., 2008): the windows, and what the out-of-sample segments add up to.
//!
//! A window is an in-sample span, where the params are chosen, followed by an out-of-sample
//! span, where the chosen params trade; the next window starts `step` later (rolling) or keeps
//! its in-sample start at the first bar (anchored). Spans are counted in bars (of the merged
//! timeline of every symbol) or in calendar time (days or months, UTC). All bounds are
//! half-open, `[start, end)`, in UTC seconds; an out-of-sample span that the data does not
//! fill to its end is kept as far as the bars go, an empty one ends the walk.
//!
//! The out-of-sample segments are stitched by compounding their daily returns (each segment
//! starts flat with the starting cash and its open positions are marked at its last close),
//! and the **walk-forward efficiency** is the annualised out-of-sample return over the
//! annualised in-sample return of the chosen trials (Pardo's WFE, as a fraction: 0.5 means
//! the walk kept half of what the optimisation showed).

/// A span of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Span {
    /// This many bars of the merged timeline.
    Bars(usize),
    /// This many days (86,400 s each).
    Days(u32),
    /// This many calendar months (UTC).
    Months(u32),
}

impl Span {
    /// Parses `500` (bars), `90d`, `12w`, `6mo` or `2y` (calendar time).
    ///
    /// # Errors
    /// Anything else, or zero.
    pub fn parse(s: &str) -> Result<Span, String> {
        let t = s.trim();
        let bad =
            || format!("`{s}` is not a span: write a number of bars (`500`) or a time (`90d`, `12w`, `6mo`, `2y`)");
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u32 = num.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        match unit {
            "" => Ok(Span::Bars(n as usize)),
            "d" => Ok(Span::Days(n)),
            "w" => Ok(Span::Days(n.checked_mul(7).ok_or_else(bad)?)),
            "mo" => Ok(Span::Months(n)),
            "y" => Ok(Span::Months(n.checked_mul(12).ok_or_else(bad)?)),
            _ => Err(bad()),
        }
    }

    /// `t` moved forward by this span on `timeline` (bars: that many bars on, or past the end).
    fn after(self, t: i64, timeline: &[i64]) -> i64 {
        match self {
            Span::Bars(n) => {
                let i = timeline.partition_point(|&x| x < t);
                timeline.get(i + n).copied().unwrap_or(i64::MAX)
            }
            Span::Days(d) => t.saturating_add(i64::from(d) * 86_400),
            Span::Months(m) => chrono::DateTime::from_timestamp(t, 0)
                .and_then(|d| d.checked_add_months(chrono::Months::new(m)))
                .map_or(i64::MAX, |d| d.timestamp()),
        }
    }
}

/// One window, `[start, end)` bounds in UTC seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// First in-sample second.
    pub in_start: i64,
    /// End of the in-sample span: the first out-of-sample second.
    pub in_end: i64,
    /// End of the out-of-sample span.
    pub out_end: i64,
}

/// The windows over `timeline` (every bar time, sorted, distinct): in-sample `in_sample`,
/// out-of-sample `out_of_sample`, the next window `step` later (default: the out-of-sample
/// span); `anchored` keeps every in-sample start at the first bar. Windows whose in-sample or
/// out-of-sample span holds no bar are left out.
pub fn windows(
    timeline: &[i64],
    in_sample: Span,
    out_of_sample: Span,
    step: Option<Span>,
    anchored: bool,
) -> Vec<Window> {
    let Some(&first) = timeline.first() else { return Vec::new() };
    let step = step.unwrap_or(out_of_sample);
    let bars_in = |a: i64, b: i64| timeline.partition_point(|&x| x < b) - timeline.partition_point(|&x| x < a);
    let mut out = Vec::new();
    let mut start = first;
    // The in-sample span of a rolling window; anchored: its end moves, its start stays.
    let mut in_end = in_sample.after(first, timeline);
    loop {
        let in_start = if anchored { first } else { start };
        if !anchored {
            in_end = in_sample.after(start, timeline);
        }
        let out_end = out_of_sample.after(in_end, timeline);
        if in_end == i64::MAX || bars_in(in_end, out_end) == 0 {
            break;
        }
        if bars_in(in_start, in_end) > 0 {
            out.push(Window { in_start, in_end, out_end });
        }
        if anchored {
            in_end = step.after(in_end, timeline);
        } else {
            start = step.after(start, timeline);
        }
        if out.len() > 10_000 {
            break;
        }
    }
    out
}

/// Equity from `start` compounding `returns`.
pub fn compound(start: f64, returns: &[f64]) -> Vec<f64> {
    let mut e = start;
    returns
        .iter()
        .map(|r| {
            e *= 1.0 + r;
            e
        })
        .collect()
}

/// Annualised return of `total` (a fraction) over `years`: `(1 + total)^(1/years) - 1`.
pub fn annualised(total: f64, years: f64) -> f64 {
    if years > 0.0 && total > -1.0 { (1.0 + total).powf(1.0 / years) - 1.0 } else { f64::NAN }
}

/// Walk-forward efficiency: annualised out-of-sample return over annualised in-sample return
/// (NaN when the in-sample return is not above zero: no efficiency of a loss).
pub fn efficiency(out_of_sample: f64, in_sample: f64) -> f64 {
    if in_sample > 0.0 && out_of_sample.is_finite() { out_of_sample / in_sample } else { f64::NAN }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse() {
        assert_eq!(Span::parse("500"), Ok(Span::Bars(500)));
        assert_eq!(Span::parse("90d"), Ok(Span::Days(90)));
        assert_eq!(Span::parse("2w"), Ok(Span::Days(14)));
        assert_eq!(Span::parse("6mo"), Ok(Span::Months(6)));
        assert_eq!(Span::parse("2y"), Ok(Span::Months(24)));
        for bad in ["", "0", "5x", "-3", "d", "1.5y"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rolling_and_anchored_windows_in_bars() {
        let t: Vec<i64> = (0..100).map(|i| i * 10).collect();
        let w = windows(&t, Span::Bars(40), Span::Bars(20), None, false);
        assert_eq!(
            w,
            [
                Window { in_start: 0, in_end: 400, out_end: 600 },
                Window { in_start: 200, in_end: 600, out_end: 800 },
                Window { in_start: 400, in_end: 800, out_end: i64::MAX },
            ]
        );
        let a = windows(&t, Span::Bars(40), Span::Bars(20), None, true);
        assert_eq!(a.iter().map(|w| (w.in_start, w.in_end)).collect::<Vec<_>>(), [(0, 400), (0, 600), (0, 800)]);
        // Out-of-sample spans never overlap and follow their in-sample span.
        for p in w.windows(2) {
            assert!(p[0].out_end <= p[1].out_end && p[0].in_end < p[1].in_end);
        }
    }

    #[test]
    fn calendar_windows() {
        let day = 86_400;
        let t: Vec<i64> = (0..400).map(|i| i * day).collect();
        let w = windows(&t, Span::Months(6), Span::Months(3), None, false);
        assert_eq!(w[0].in_start, 0);
        assert_eq!(w[0].in_end, 181 * day, "1970-01-01 + 6 months = 1970-07-01");
        assert_eq!(w[0].out_end, 273 * day, "+ 3 months = 1970-10-01");
        assert_eq!(w[1].in_start, 90 * day, "the next window 3 months on: 1970-04-01");
    }

    #[test]
    fn efficiency_and_compounding() {
        let e = compound(100.0, &[0.1, -0.5]);
        assert!((e[0] - 110.0).abs() < 1e-9 && (e[1] - 55.0).abs() < 1e-9, "{e:?}");
        assert!((annualised(0.21, 2.0) - 0.1).abs() < 1e-12);
        assert_eq!(efficiency(0.05, 0.1), 0.5);
        assert!(efficiency(0.05, -0.1).is_nan());
    }
}
