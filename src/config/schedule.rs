//! The `schedule:` section of a bot manifest: a periodic rebalance to target weights, and
//! report jobs written at set times.
//!
//! ```yaml
//! schedule:
//!   timezone: America/New_York   # the zone of `at` and of cron fields (default New York)
//!   rebalance:
//!     every: weekly              # daily (Monday to Friday), weekly (Friday), monthly (the 1st),
//!     at: "15:45"                #   at `at` (default 15:45); or `cron: "45 15 * * FRI"`
//!     name: ballast              # the strategy name its orders carry (default `rebalance`)
//!     timeframe: 1d              # the bars the weights are evaluated on (default 1d)
//!     weights:                   # fraction of equity per symbol: a number or a number expression
//!       SHY: 40%
//!       IEF: 30%
//!       TLT: min(30%, 0.2% / volatility(20))   # inverse volatility, capped
//!     band: 1%                   # trade a symbol only when its weight is off by more (default 0)
//!     units: fractional          # or `whole` (shares)
//!   reports:
//!     directory: reports         # relative to the manifest (default `reports`)
//!     daily_pnl: {at: "16:15"}   # Monday to Friday
//!     weekly_summary: {at: "16:30"}   # Fridays
//!     monthly_report: {at: "17:00"}   # the last day of the month
//! ```
//!
//! Times are cron patterns in the schedule's zone, parsed by the `croner` crate (POSIX/Vixie
//! syntax with `L` for the last day of the month). A job is due at each occurrence; what is
//! due fires once at the first moment the bot reaches at or after it (see
//! [`Cadence::next_after`]), and occurrences missed meanwhile fire once, not each.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::expr_source::ExprSource;
use super::node::Node;
use super::reader::Reader;
use super::timeframe::Timeframe;
use crate::diagnostics::{Spanned, codes};

/// When a job is due: a cron pattern in a time zone.
#[derive(Debug, Clone)]
pub struct Cadence {
    /// The pattern as the manifest gives it (a shorthand is shown as its pattern).
    pub pattern: String,
    cron: croner::Cron,
    /// The zone the pattern's fields are in.
    pub zone: Tz,
}

impl PartialEq for Cadence {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.zone == other.zone
    }
}

impl Cadence {
    /// Parses a five-field cron pattern (`minute hour day-of-month month day-of-week`) in
    /// `zone`; the error says what is wrong with it.
    pub fn parse(pattern: &str, zone: Tz) -> Result<Cadence, String> {
        let cron = croner::Cron::from_str(pattern).map_err(|e| e.to_string())?;
        Ok(Cadence { pattern: pattern.to_string(), cron, zone })
    }

    /// The first occurrence strictly after `ts` (UTC seconds), in UTC seconds; `None` when
    /// the pattern never occurs again (an impossible date such as February 30th).
    pub fn next_after(&self, ts: i64) -> Option<i64> {
        let at = DateTime::<Utc>::from_timestamp(ts, 0)?.with_timezone(&self.zone);
        self.cron.find_next_occurrence(&at, false).ok().map(|t| t.timestamp())
    }
}

/// A periodic rebalance of some symbols to target weights.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceDoc {
    /// The strategy name its orders and positions carry.
    pub name: Spanned<String>,
    /// When it is due.
    pub cadence: Spanned<Cadence>,
    /// The bars the weights are evaluated on.
    pub timeframe: Spanned<Timeframe>,
    /// Target weight per symbol (fraction of equity): a number expression each, evaluated on
    /// the symbol's bar.
    pub weights: Vec<(Spanned<String>, ExprSource)>,
    /// No trade for a symbol whose weight is within this distance of its target (fraction of
    /// equity).
    pub band: f64,
    /// Whole shares only.
    pub whole_units: bool,
}

/// The kinds of report a schedule writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The day's P&L: equity, the day's change, orders, fills and trades of the day.
    DailyPnl,
    /// The week's summary.
    WeeklySummary,
    /// The month's report.
    MonthlyReport,
}

impl ReportKind {
    /// The name written in the manifest and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::DailyPnl => "daily_pnl",
            ReportKind::WeeklySummary => "weekly_summary",
            ReportKind::MonthlyReport => "monthly_report",
        }
    }

    /// The days its period covers before the due time (1, 7 or the calendar month).
    fn default_cron(self, minute: u32, hour: u32) -> String {
        match self {
            ReportKind::DailyPnl => format!("{minute} {hour} * * MON-FRI"),
            ReportKind::WeeklySummary => format!("{minute} {hour} * * FRI"),
            ReportKind::MonthlyReport => format!("{minute} {hour} L * *"),
        }
    }
}

/// A report job.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportJob {
    /// What it writes.
    pub kind: ReportKind,
    /// When.
    pub cadence: Spanned<Cadence>,
}

/// The `schedule:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDoc {
    /// The zone of times and cron fields.
    pub zone: Tz,
    /// The rebalance, if any.
    pub rebalance: Option<RebalanceDoc>,
    /// Report jobs.
    pub reports: Vec<ReportJob>,
    /// Where reports are written, relative to the manifest.
    pub report_dir: String,
}

/// `"15:45"` as (hour, minute).
fn clock_time(s: &str) -> Option<(u32, u32)> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && !s.trim().starts_with('+')).then_some((h, m))
}

/// The cron pattern of an `every:` shorthand (`None`: not given) at `minute`, `hour`.
type Shorthand<'a> = &'a dyn Fn(Option<&str>, u32, u32) -> Option<String>;

/// Reads `every`/`at` or `cron` from a job mapping into a cadence; `default` gives the
/// pattern for `every` (or the job's own cadence) at a time.
fn read_cadence(
    r: &mut Reader<'_>,
    m: &mut super::reader::MapView<'_>,
    zone: Tz,
    default: Shorthand<'_>,
) -> Option<Spanned<Cadence>> {
    let span = m.span();
    let every = m.get("every").map(|n| r.choice(n, "every", &["daily", "weekly", "monthly"]));
    let at = m.get("at").map(|n| r.string(n, "at"));
    let cron = m.get("cron").map(|n| r.string(n, "cron"));
    let (pattern, at_span) = match (cron, every, at) {
        (Some(c), None, None) => {
            let c = c?;
            (c.value, c.span)
        }
        (Some(c), _, _) => {
            let c = c?;
            return r.fail(
                codes::INVALID_VALUE,
                c.span,
                "`cron` says everything about when: drop `every` and `at`".into(),
                Some("write either `cron: \"45 15 * * FRI\"` or `every: weekly` with `at: \"15:45\"`".into()),
            );
        }
        (None, every, at) => {
            let every = match every {
                Some(e) => Some(e?),
                None => None,
            };
            let (hm, at_span) = match at {
                Some(a) => {
                    let a = a?;
                    match clock_time(&a.value) {
                        Some(t) => (t, a.span),
                        None => {
                            return r.fail(
                                codes::INVALID_VALUE,
                                a.span,
                                format!("`at` must be a time of day `HH:MM`, found `{}`", a.value),
                                Some("e.g. `at: \"15:45\"` (in the schedule's `timezone`)".into()),
                            );
                        }
                    }
                }
                None => ((15, 45), every.as_ref().map_or(span, |e| e.span)),
            };
            match default(every.as_ref().map(|e| e.value), hm.1, hm.0) {
                Some(p) => (p, at_span),
                None => {
                    return r.fail(
                        codes::MISSING_KEY,
                        span,
                        "a rebalance needs `every` (daily, weekly, monthly) or `cron`".into(),
                        Some("e.g. `every: weekly` (Fridays at 15:45) or `cron: \"45 15 * * FRI\"`".into()),
                    );
                }
            }
        }
    };
    match Cadence::parse(&pattern, zone) {
        Ok(c) => Some(Spanned::new(c, at_span)),
        Err(e) => r.fail(
            codes::INVALID_VALUE,
            at_span,
            format!("invalid cron pattern `{pattern}`: {e}"),
            Some("five fields: minute hour day-of-month month day-of-week, e.g. `45 15 * * FRI`".into()),
        ),
    }
}

/// Reads the `schedule:` mapping of a manifest.
pub fn read_schedule(r: &mut Reader<'_>, node: &Node) -> Option<ScheduleDoc> {
    let mut m = r.map(node, "schedule")?;
    // An unknown zone is reported and New York stands in, so the jobs are still checked.
    let mut zone_ok = true;
    let zone = match m.get("timezone").map(|n| r.string(n, "timezone")) {
        Some(Some(z)) => match z.value.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                let d = crate::diagnostics::did_you_mean(&z.value, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()));
                r.fail::<()>(
                    codes::INVALID_VALUE,
                    z.span,
                    format!("unknown time zone `{}`", z.value),
                    Some(match d {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "an IANA zone name such as `America/New_York` or `UTC`".into(),
                    }),
                );
                zone_ok = false;
                chrono_tz::America::New_York
            }
        },
        Some(None) => {
            zone_ok = false;
            chrono_tz::America::New_York
        }
        None => chrono_tz::America::New_York,
    };
    let rebalance = m.get("rebalance").map(|n| read_rebalance(r, n, zone));
    let reports = m.get("reports").map(|n| read_reports(r, n, zone));
    m.finish(r);
    if !zone_ok {
        return None;
    }
    let rebalance = match rebalance {
        Some(x) => Some(x?),
        None => None,
    };
    let (reports, report_dir) = match reports {
        Some(x) => x?,
        None => (Vec::new(), "reports".to_string()),
    };
    Some(ScheduleDoc { zone, rebalance, reports, report_dir })
}

fn read_rebalance(r: &mut Reader<'_>, node: &Node, zone: Tz) -> Option<RebalanceDoc> {
    let mut m = r.map(node, "rebalance")?;
    let span = m.span();
    let cadence = read_cadence(r, &mut m, zone, &|every, minute, hour| {
        Some(match every? {
            "daily" => format!("{minute} {hour} * * MON-FRI"),
            "weekly" => format!("{minute} {hour} * * FRI"),
            _ => format!("{minute} {hour} 1 * *"),
        })
    });
    let name = match m.get("name") {
        Some(n) => r.name(n, "name"),
        None => Some(Spanned::new("rebalance".to_string(), span)),
    };
    let timeframe = match m.get("timeframe") {
        Some(n) => super::strategy::read_timeframe(r, n),
        None => Some(Spanned::new(Timeframe::DAILY, span)),
    };
    let weights = m.required(r, "weights").and_then(|n| {
        let mut w = r.map(n, "weights")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in w.rest() {
            match r.expr(value, "weight") {
                Some(e) => out.push((Spanned::new(key.name.clone(), key.span), e)),
                None => ok = false,
            }
        }
        w.finish(r);
        if out.is_empty() {
            r.fail::<()>(
                codes::INVALID_VALUE,
                n.span,
                "`weights` must name at least one symbol".into(),
                Some("e.g. `weights: {SHY: 40%, IEF: 30%, TLT: 30%}`".into()),
            );
            ok = false;
        }
        ok.then_some(out)
    });
    let band = match m.get("band") {
        Some(n) => r.rate_in(n, "band", 0.0, 0.5).map(|b| b.value.value),
        None => Some(0.0),
    };
    let whole_units = match m.get("units") {
        Some(n) => r.choice(n, "units", &["fractional", "whole"]).map(|c| c.value == "whole"),
        None => Some(false),
    };
    m.finish(r);
    Some(RebalanceDoc {
        name: name?,
        cadence: cadence?,
        timeframe: timeframe?,
        weights: weights?,
        band: band?,
        whole_units: whole_units?,
    })
}

fn read_reports(r: &mut Reader<'_>, node: &Node, zone: Tz) -> Option<(Vec<ReportJob>, String)> {
    let mut m = r.map(node, "reports")?;
    let dir = m.get("directory").map(|n| r.name(n, "directory"));
    let mut jobs = Vec::new();
    let mut ok = true;
    for kind in [ReportKind::DailyPnl, ReportKind::WeeklySummary, ReportKind::MonthlyReport] {
        let Some(n) = m.get(kind.as_str()) else { continue };
        let Some(mut job) = r.map(n, kind.as_str()) else {
            ok = false;
            continue;
        };
        let cadence = read_cadence(r, &mut job, zone, &|every, minute, hour| match every {
            None => Some(kind.default_cron(minute, hour)),
            Some("daily") => Some(ReportKind::DailyPnl.default_cron(minute, hour)),
            Some("weekly") => Some(ReportKind::WeeklySummary.default_cron(minute, hour)),
            Some(_) => Some(ReportKind::MonthlyReport.default_cron(minute, hour)),
        });
        job.finish(r);
        match cadence {
            Some(cadence) => jobs.push(ReportJob { kind, cadence }),
            None => ok = false,
        }
    }
    m.finish(r);
    let dir = match dir {
        Some(d) => d?.value,
        None => "reports".to_string(),
    };
    ok.then_some((jobs, dir))
}

/// `ts` (UTC seconds) as a date and time in `zone`, for messages and file names.
pub fn local_time(ts: i64, zone: Tz) -> String {
    match zone.timestamp_opt(ts, 0).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M %Z").to_string(),
        None => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        New_York.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap().timestamp()
    }

    #[test]
    fn occurrences_are_in_the_zone_across_daylight_saving() {
        let c = Cadence::parse("45 15 * * FRI", New_York).unwrap();
        // Friday 2011-03-11 (winter time) then Friday 2011-03-18 (summer time).
        assert_eq!(c.next_after(ny(2011, 3, 10, 12, 0)), Some(ny(2011, 3, 11, 15, 45)));
        assert_eq!(c.next_after(ny(2011, 3, 11, 15, 45)), Some(ny(2011, 3, 18, 15, 45)), "strictly after");
        let last = Cadence::parse("0 17 L * *", New_York).unwrap();
        assert_eq!(last.next_after(ny(2024, 2, 10, 0, 0)), Some(ny(2024, 2, 29, 17, 0)));
        assert!(Cadence::parse("61 15 * * *", New_York).is_err());
        assert!(Cadence::parse("every friday", New_York).is_err());
    }

    #[test]
    fn clock_times() {
        assert_eq!(clock_time("15:45"), Some((15, 45)));
        assert_eq!(clock_time("9:05"), Some((9, 5)));
        assert_eq!(clock_time("24:00"), None);
        assert_eq!(clock_time("15h45"), None);
    }
}
