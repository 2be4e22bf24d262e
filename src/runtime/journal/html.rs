//! The HTML report of a backtest (`dsl backtest --html`) or a paper run (`dsl report html`):
//! one self-contained page (inline SVG charts drawn with `plotters`, inline CSS and a few lines
//! of inline script; nothing is fetched when it is viewed).
//!
//! It holds the summary; the equity curve with an equal-weighted buy-and-hold benchmark of the
//! traded symbols (the starting cash split evenly at the first traded bar's close, held); the
//! underwater curve (percent below the running peak); a heat map of monthly returns (from the
//! equity at each UTC day's close, compounded per calendar month: `e_last / e_prev_month_last -
//! 1`, percent); per symbol, its closing prices with each trade's entry (green triangle), exit
//! (blue circle) and stop-loss or trailing-stop exit (red cross); and the trades, in a table
//! whose columns sort on a click. Long series are thinned to about [`POINTS`] points per chart,
//! each bucket keeping its first, lowest, highest and last value, so spikes stay visible.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::Datelike;
use plotters::prelude::*;

use crate::engine::market::BarSeries;
use crate::runtime::data::timeparse::format_utc;

/// About how many points a chart line keeps.
pub const POINTS: usize = 1_500;

/// One round trip as the table and the price charts show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeView {
    /// Strategy.
    pub strategy: String,
    /// Symbol.
    pub symbol: String,
    /// Entry fill time (UTC seconds).
    pub entry_ts: i64,
    /// Entry price (currency per unit).
    pub entry_price: f64,
    /// Exit fill time (UTC seconds).
    pub exit_ts: i64,
    /// Exit price.
    pub exit_price: f64,
    /// Units.
    pub quantity: f64,
    /// Pnl net of fees (currency).
    pub pnl: f64,
    /// Pnl in percent points of the entry notional.
    pub pnl_pct: f64,
    /// Why it closed (`signal`, `stop_loss`, `trailing_stop`, `max_holding`, ...).
    pub exit_reason: String,
    /// Bars held.
    pub holding_bars: u64,
}

/// A symbol's closing prices, thinned for a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceLine {
    /// Symbol.
    pub symbol: String,
    /// `(time, close)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// What the page shows.
#[derive(Debug, Clone)]
pub struct HtmlReport {
    /// The page's heading, e.g. `Backtest: example`.
    pub title: String,
    /// The bundle revision.
    pub revision: String,
    /// The printed summary.
    pub summary: String,
    /// Settings (JSON, pretty-printed at the end).
    pub settings: serde_json::Value,
    /// Starting cash (currency).
    pub starting_cash: f64,
    /// Equity points for the chart, in time order.
    pub equity: Vec<(i64, f64)>,
    /// Equity at each UTC day's close (the monthly returns).
    pub daily: Vec<(i64, f64)>,
    /// The buy-and-hold benchmark, in time order (empty: none).
    pub benchmark: Vec<(i64, f64)>,
    /// Closed trades.
    pub trades: Vec<TradeView>,
    /// Per symbol prices.
    pub prices: Vec<PriceLine>,
}

/// Keeps about `max` points of `points`: per bucket the first, lowest, highest and last.
pub fn thin(points: &[(i64, f64)], max: usize) -> Vec<(i64, f64)> {
    if points.len() <= max || max < 8 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max / 4);
    let mut out = Vec::with_capacity(max + 4);
    for chunk in points.chunks(per) {
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in chunk.iter().enumerate() {
            if p.1 < chunk[lo].1 {
                lo = i;
            }
            if p.1 > chunk[hi].1 {
                hi = i;
            }
        }
        let mut keep = [0, lo, hi, chunk.len() - 1];
        keep.sort_unstable();
        let mut last = usize::MAX;
        for k in keep {
            if k != last {
                out.push(chunk[k]);
                last = k;
            }
        }
    }
    out
}

/// Closing prices of `series` from `from` to `to` (UTC seconds, inclusive), thinned.
pub fn price_lines(series: &[BarSeries], from: Option<i64>, to: Option<i64>) -> Vec<PriceLine> {
    series
        .iter()
        .map(|s| {
            let pts: Vec<(i64, f64)> =
                s.ts.iter()
                    .zip(&s.close)
                    .filter(|(t, c)| from.is_none_or(|f| **t >= f) && to.is_none_or(|e| **t <= e) && c.is_finite())
                    .map(|(t, c)| (*t, *c))
                    .collect();
            PriceLine { symbol: s.symbol.clone(), points: thin(&pts, POINTS) }
        })
        .collect()
}

/// The equal-weighted buy-and-hold benchmark of `series` from `from` (UTC seconds) to `to`:
/// `cash / n` bought of each symbol at its first close at or after `from` and held; a symbol
/// counts at its entry value until its first bar. Thinned.
pub fn buy_and_hold(series: &[BarSeries], from: Option<i64>, to: Option<i64>, cash: f64) -> Vec<(i64, f64)> {
    let n = series.len();
    if n == 0 || cash.is_nan() || cash <= 0.0 {
        return Vec::new();
    }
    let in_period = |t: i64| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t <= e);
    // Every (time, symbol, close) in the period, merged by time.
    let mut events: Vec<(i64, usize, f64)> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        for (t, c) in s.ts.iter().zip(&s.close) {
            if in_period(*t) && c.is_finite() && *c > 0.0 {
                events.push((*t, i, *c));
            }
        }
    }
    events.sort_by_key(|e| (e.0, e.1));
    let share = cash / n as f64;
    let mut first = vec![f64::NAN; n];
    let mut value = vec![share; n];
    let mut out: Vec<(i64, f64)> = Vec::new();
    for (t, i, c) in events {
        if first[i].is_nan() {
            first[i] = c;
        }
        value[i] = share * c / first[i];
        let total = value.iter().sum();
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 = total,
            _ => out.push((t, total)),
        }
    }
    thin(&out, POINTS)
}

/// Monthly returns from daily closing equity: `((year, month), return)` in order; the first
/// month is measured from `start` (the starting cash).
pub fn monthly_returns(start: f64, daily: &[(i64, f64)]) -> Vec<((i32, u32), f64)> {
    let mut last_of: BTreeMap<(i32, u32), f64> = BTreeMap::new();
    for (t, e) in daily {
        if let Some(d) = chrono::DateTime::from_timestamp(*t, 0) {
            last_of.insert((d.year(), d.month()), *e);
        }
    }
    let mut prev = start;
    let mut out = Vec::new();
    for (ym, e) in last_of {
        if prev > 0.0 {
            out.push((ym, e / prev - 1.0));
        }
        prev = e;
    }
    out
}

fn underwater(start: f64, equity: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut peak = start;
    equity
        .iter()
        .map(|&(t, e)| {
            peak = peak.max(e);
            (t, if peak > 0.0 { -(peak - e) / peak * 100.0 } else { 0.0 })
        })
        .collect()
}

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return (-1.0, 1.0);
    }
    if hi <= lo {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn span(points: &[(i64, f64)]) -> (i64, i64) {
    let x0 = points.first().map_or(0, |p| p.0);
    (x0, points.last().map_or(1, |p| p.0).max(x0 + 1))
}

/// A chart with UTC dates along x.
type TimeChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordi64, plotters::coord::types::RangedCoordf64>,
>;

/// A white chart on `root` titled `title`, times `x` (UTC seconds, labelled as dates) against
/// values `y` labelled by `y_label`, with its mesh drawn.
fn time_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    font: u32,
    x: (i64, i64),
    y: (f64, f64),
    y_label: &dyn Fn(&f64) -> String,
) -> Result<TimeChart<'a, 'b>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut c = ChartBuilder::on(root)
        .caption(title, ("sans-serif", font))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|t| format_utc(*t)[..10].to_string())
        .y_label_formatter(y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(c)
}

/// A labelled line of a chart: label, points, color.
type Line<'a> = (&'a str, &'a [(i64, f64)], RGBColor);

/// A line chart of `lines`, with an area under the first when `area`.
fn lines_chart(title: &str, lines: &[Line<'_>], area: bool, unit: &str) -> Result<String, String> {
    let all: Vec<(i64, f64)> = lines.iter().flat_map(|l| l.1.iter().copied()).collect();
    let mut sorted = all.clone();
    sorted.sort_by_key(|p| p.0);
    let (x0, x1) = span(&sorted);
    let (lo, hi) = range(all.iter().map(|p| p.1).chain(area.then_some(0.0)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 320)).into_drawing_area();
        let mut c = time_chart(&root, title, 18, (x0, x1), (lo, hi), &|v| format!("{v:.0}{unit}"))?;
        for (i, (label, points, color)) in lines.iter().enumerate() {
            let color = *color;
            let series = if area && i == 0 {
                c.draw_series(AreaSeries::new(points.iter().copied(), 0.0, color.mix(0.3)).border_style(color))
            } else {
                c.draw_series(LineSeries::new(points.iter().copied(), &color))
            }
            .map_err(|e| e.to_string())?;
            if lines.len() > 1 {
                series.label(*label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        if lines.len() > 1 {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// A symbol's closes with its trades marked.
fn price_chart(line: &PriceLine, trades: &[&TradeView]) -> Result<String, String> {
    let (x0, x1) = span(&line.points);
    let marks = trades.iter().flat_map(|t| [t.entry_price, t.exit_price]);
    let (lo, hi) = range(line.points.iter().map(|p| p.1).chain(marks));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 300)).into_drawing_area();
        let title = format!("{}: close, entries (green), exits (blue), stop exits (red)", line.symbol);
        let mut c = time_chart(&root, &title, 16, (x0, x1), (lo, hi), &|v| format!("{v:.2}"))?;
        c.draw_series(LineSeries::new(line.points.iter().copied(), &RGBColor(90, 90, 90)))
            .map_err(|e| e.to_string())?;
        let green = RGBColor(44, 160, 44);
        c.draw_series(trades.iter().map(|t| TriangleMarker::new((t.entry_ts, t.entry_price), 6, green.filled())))
            .map_err(|e| e.to_string())?;
        let stop = |t: &&&TradeView| matches!(t.exit_reason.as_str(), "stop_loss" | "trailing_stop");
        c.draw_series(
            trades.iter().filter(|t| !stop(t)).map(|t| Circle::new((t.exit_ts, t.exit_price), 4, BLUE.filled())),
        )
        .map_err(|e| e.to_string())?;
        c.draw_series(
            trades.iter().filter(stop).map(|t| Cross::new((t.exit_ts, t.exit_price), 5, RED.stroke_width(2))),
        )
        .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The monthly returns as a year × month grid of colored cells (green up, red down).
fn heat_map(months: &[((i32, u32), f64)]) -> Result<String, String> {
    let years: Vec<i32> = {
        let mut y: Vec<i32> = months.iter().map(|m| m.0.0).collect();
        y.dedup();
        y
    };
    let (cell_w, cell_h, left, top) = (64i32, 24i32, 60i32, 40i32);
    let height = (top + cell_h * years.len().max(1) as i32 + 10) as u32;
    let width = (left + cell_w * 12 + 10) as u32;
    let worst = months.iter().map(|m| m.1.abs()).fold(0.0_f64, f64::max).max(1e-9);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let label = ("sans-serif", 13).into_font();
        root.draw(&Text::new("Monthly returns (%)", (left, 8), ("sans-serif", 16).into_font()))
            .map_err(|e| e.to_string())?;
        for (m, name) in
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].iter().enumerate()
        {
            root.draw(&Text::new(*name, (left + cell_w * m as i32 + 18, top - 16), label.clone()))
                .map_err(|e| e.to_string())?;
        }
        for (row, y) in years.iter().enumerate() {
            let y0 = top + cell_h * row as i32;
            root.draw(&Text::new(y.to_string(), (8, y0 + 6), label.clone())).map_err(|e| e.to_string())?;
            for ((_, month), r) in months.iter().filter(|m| m.0.0 == *y) {
                let x0 = left + cell_w * (*month as i32 - 1);
                let k = (r.abs() / worst).clamp(0.0, 1.0);
                let fade = |c: u8| (255.0 - (255.0 - f64::from(c)) * k) as u8;
                let color = if *r >= 0.0 {
                    RGBColor(fade(44), fade(160), fade(44))
                } else {
                    RGBColor(fade(214), fade(39), fade(40))
                };
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell_w - 2, y0 + cell_h - 2)], color.filled()))
                    .map_err(|e| e.to_string())?;
                root.draw(&Text::new(format!("{:+.1}", r * 100.0), (x0 + 12, y0 + 6), label.clone()))
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The page's script: sortable tables, and a record of script errors on the page's root
/// element (`data-errors`) and of the charts drawn (`data-charts`), which a headless browser
/// test reads. With `#selftest` in the address, it sorts the trades by pnl by clicking that
/// header and records whether the rows came out in order (`data-selftest`).
const SCRIPT: &str = r#"
(function () {
  var root = document.documentElement;
  root.dataset.errors = '';
  window.addEventListener('error', function (e) { root.dataset.errors += (e.message || 'error') + ';'; });
  var log = console.error;
  console.error = function () { root.dataset.errors += Array.prototype.join.call(arguments, ' ') + ';'; log.apply(console, arguments); };
  function value(cell) { var v = cell.getAttribute('data-v'); return v === null ? cell.textContent : v; }
  function sortBy(th) {
    var table = th.closest('table'), body = table.tBodies[0], i = th.cellIndex;
    var asc = th.getAttribute('data-dir') !== 'asc';
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[i]), y = value(b.cells[i]), nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('table.sortable th').forEach(function (th) {
      th.addEventListener('click', function () { sortBy(th); });
    });
    var drawn = 0;
    document.querySelectorAll('svg').forEach(function (s) { if (s.querySelectorAll('path, polyline, rect, circle, line').length > 0) drawn++; });
    root.dataset.charts = String(drawn);
    if (location.hash === '#selftest') {
      var th = document.querySelector('table.sortable th[data-key="pnl"]');
      if (th) {
        th.click();
        var vals = Array.prototype.map.call(th.closest('table').tBodies[0].rows, function (r) { return parseFloat(value(r.cells[th.cellIndex])); });
        var ok = vals.every(function (v, k) { return k === 0 || vals[k - 1] <= v; });
        root.dataset.selftest = ok ? 'ok' : 'unsorted';
      } else {
        root.dataset.selftest = 'no table';
      }
    }
  });
})();
"#;

/// Rows of the trade table shown at most (the rest are in the JSON report and the journal).
pub const MAX_ROWS: usize = 2_000;

/// Renders the page.
///
/// # Errors
/// When a chart cannot be drawn.
pub fn render(r: &HtmlReport) -> Result<String, String> {
    let equity = thin(&r.equity, POINTS);
    let blue = RGBColor(31, 119, 180);
    let mut lines: Vec<Line<'_>> = vec![("strategy", &equity, blue)];
    if !r.benchmark.is_empty() {
        lines.push(("buy and hold", &r.benchmark, RGBColor(255, 127, 14)));
    }
    let eq_svg = lines_chart("Equity and an equal-weighted buy-and-hold of the symbols", &lines, false, "")?;
    let uw = underwater(r.starting_cash, &equity);
    let uw_svg =
        lines_chart("Underwater: % below the running peak", &[("drawdown", &uw, RGBColor(214, 39, 40))], true, "%")?;
    let months = monthly_returns(r.starting_cash, &r.daily);
    let heat = heat_map(&months)?;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tradedsl: {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}}th{{background:#f4f4f4;cursor:pointer}}\
         th[data-dir=asc]::after{{content:' \\25B2'}}th[data-dir=desc]::after{{content:' \\25BC'}}\
         td:first-child,th:first-child{{text-align:left}}pre{{background:#f8f8f8;padding:1em}}\
         section{{margin-bottom:1.5em}}</style><script>{SCRIPT}</script></head><body>",
        esc(&r.title)
    );
    let _ = write!(h, "<h1>{}</h1><p>bundle revision <code>{}</code></p>", esc(&r.title), esc(&r.revision));
    let _ = write!(h, "<pre>{}</pre>", esc(&r.summary));
    let _ = write!(h, "<section id=\"equity\">{eq_svg}</section><section id=\"underwater\">{uw_svg}</section>");
    let _ = write!(h, "<section id=\"monthly\">{heat}</section>");
    for line in &r.prices {
        let trades: Vec<&TradeView> = r.trades.iter().filter(|t| t.symbol == line.symbol).collect();
        let svg = price_chart(line, &trades)?;
        let _ = write!(h, "<section class=\"price\" id=\"price-{}\">{svg}</section>", esc(&line.symbol));
    }
    let _ = write!(
        h,
        "<h2>Trades ({}; click a column to sort)</h2><table class=\"sortable\" id=\"trades\"><thead><tr>\
         <th data-key=\"strategy\">strategy</th><th data-key=\"symbol\">symbol</th><th data-key=\"entry\">entry</th>\
         <th data-key=\"entry_price\">entry price</th><th data-key=\"exit\">exit</th><th data-key=\"exit_price\">exit price</th>\
         <th data-key=\"quantity\">quantity</th><th data-key=\"pnl\">pnl</th><th data-key=\"pnl_pct\">pnl %</th>\
         <th data-key=\"exit_reason\">exit reason</th><th data-key=\"bars\">bars</th></tr></thead><tbody>",
        r.trades.len()
    );
    for t in r.trades.iter().take(MAX_ROWS) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td data-v=\"{}\">{}</td><td>{:.4}</td><td data-v=\"{}\">{}</td><td>{:.4}</td>\
             <td>{:.6}</td><td data-v=\"{}\">{:.2}</td><td data-v=\"{}\">{:.2}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.strategy),
            esc(&t.symbol),
            t.entry_ts,
            format_utc(t.entry_ts),
            t.entry_price,
            t.exit_ts,
            format_utc(t.exit_ts),
            t.exit_price,
            t.quantity,
            t.pnl,
            t.pnl,
            t.pnl_pct,
            t.pnl_pct,
            esc(&t.exit_reason),
            t.holding_bars
        );
    }
    h.push_str("</tbody></table>");
    if r.trades.len() > MAX_ROWS {
        let _ = write!(h, "<p>{} more trades are in the JSON report and the journal.</p>", r.trades.len() - MAX_ROWS);
    }
    let _ = write!(
        h,
        "<h2>Settings</h2><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(&r.settings).unwrap_or_default())
    );
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_extremes_and_the_ends() {
        let pts: Vec<(i64, f64)> = (0..100_000).map(|i| (i, ((i * 7919) % 1000) as f64)).collect();
        let mut spiked = pts.clone();
        spiked[54_321].1 = 1e6;
        spiked[12_345].1 = -1e6;
        let t = thin(&spiked, 400);
        assert!(t.len() <= 420, "{}", t.len());
        assert!(t.contains(&(54_321, 1e6)) && t.contains(&(12_345, -1e6)));
        assert_eq!((t[0], *t.last().unwrap()), (spiked[0], *spiked.last().unwrap()));
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn monthly_returns_compound_from_the_previous_month_end() {
        let day = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        let daily = [
            (day("2024-01-15T00:00:00Z"), 105.0),
            (day("2024-01-31T00:00:00Z"), 110.0),
            (day("2024-02-29T00:00:00Z"), 99.0),
        ];
        let m = monthly_returns(100.0, &daily);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, (2024, 1));
        assert!((m[0].1 - 0.10).abs() < 1e-12);
        assert!((m[1].1 - (99.0 / 110.0 - 1.0)).abs() < 1e-12);
    }

    #[test]
    fn buy_and_hold_splits_the_cash_and_holds() {
        let s = |sym: &str, closes: &[f64]| BarSeries {
            symbol: sym.into(),
            timeframe: None,
            ts: (0..closes.len() as i64).collect(),
            open: closes.to_vec(),
            high: closes.to_vec(),
            low: closes.to_vec(),
            close: closes.to_vec(),
            volume: vec![0.0; closes.len()],
            quotes: None,
        };
        let b = buy_and_hold(&[s("A", &[10.0, 20.0, 20.0]), s("B", &[5.0, 5.0, 2.5])], Some(0), None, 1000.0);
        assert_eq!(b, vec![(0, 1000.0), (1, 1500.0), (2, 1250.0)]);
    }
}
