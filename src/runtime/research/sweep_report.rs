//! A sweep's HTML page (`dsl sweep --html`): self-contained (inline SVG, no network at view
//! time), with the search's overfitting figures, a heat map of the objective over two params
//! (each cell the best trial with those two values, the other params free), the distribution
//! of the objective over the trials, and the best trials.

use std::fmt::Write;

use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

use super::sweep::{SweepResult, TrialRow};
use crate::runtime::journal::report::esc;

/// Bins of the objective's histogram.
const BINS: usize = 30;

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The distinct values of param `name` over the trials, in order of first appearance sorted
/// numerically when they are numbers.
fn axis(trials: &[TrialRow], name: &str) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for t in trials {
        if let Some(v) = t.params.get(name)
            && !out.contains(v)
        {
            out.push(v.clone());
        }
    }
    if out.iter().all(serde_json::Value::is_number) {
        out.sort_by(|a, b| a.as_f64().unwrap_or(0.0).total_cmp(&b.as_f64().unwrap_or(0.0)));
    }
    out
}

/// The heat map of the objective over params `x` and `y` (SVG).
fn heatmap(result: &SweepResult, x: &str, y: &str) -> Result<String, String> {
    let (xs, ys) = (axis(&result.trials, x), axis(&result.trials, y));
    let better = |a: f64, b: f64| match result.sweep.direction {
        crate::config::sweep::Direction::Maximize => a > b,
        crate::config::sweep::Direction::Minimize => a < b,
    };
    let mut cells: Vec<Vec<Option<f64>>> = vec![vec![None; ys.len()]; xs.len()];
    for t in &result.trials {
        let (Some(i), Some(j)) = (
            t.params.get(x).and_then(|v| xs.iter().position(|a| a == v)),
            t.params.get(y).and_then(|v| ys.iter().position(|a| a == v)),
        ) else {
            continue;
        };
        if let Some(v) = t.objective
            && cells[i][j].is_none_or(|c| better(v, c))
        {
            cells[i][j] = Some(v);
        }
    }
    let values: Vec<f64> = cells.iter().flatten().flatten().copied().collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut c = ChartBuilder::on(&root)
            .caption(format!("{} by {x} and {y} (best trial per cell)", result.sweep.objective), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xs.len() as f64, 0.0..ys.len() as f64)
            .map_err(|e| e.to_string())?;
        let label = |vals: &[serde_json::Value], v: f64| {
            let i = v.floor() as usize;
            if (v - i as f64 - 0.5).abs() < 1e-9 { vals.get(i).map(text).unwrap_or_default() } else { String::new() }
        };
        c.configure_mesh()
            .disable_mesh()
            .x_desc(x)
            .y_desc(y)
            .x_labels(xs.len() * 2 + 1)
            .y_labels(ys.len() * 2 + 1)
            .x_label_formatter(&|v| label(&xs, *v))
            .y_label_formatter(&|v| label(&ys, *v))
            .draw()
            .map_err(|e| e.to_string())?;
        let scale = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        let rects = cells.iter().enumerate().flat_map(|(i, col)| {
            col.iter().enumerate().map(move |(j, v)| {
                let color = match v {
                    Some(v) => ViridisRGB::get_color(scale(*v)).filled(),
                    None => RGBColor(235, 235, 235).filled(),
                };
                Rectangle::new([(i as f64, j as f64), (i as f64 + 1.0, j as f64 + 1.0)], color)
            })
        });
        c.draw_series(rects).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The histogram of the trials' objective (SVG).
fn histogram(result: &SweepResult) -> Result<String, String> {
    let values: Vec<f64> = result.trials.iter().filter_map(|t| t.objective).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(0.0) - 1.0, hi.max(0.0) + 1.0) };
    let width = (hi - lo) / BINS as f64;
    let mut counts = [0usize; BINS];
    for v in &values {
        counts[(((v - lo) / width) as usize).min(BINS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                format!("Distribution of {} over {} trials", result.sweep.objective, values.len()),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0usize..top + 1)
            .map_err(|e| e.to_string())?;
        c.configure_mesh().disable_x_mesh().x_labels(8).y_desc("trials").draw().map_err(|e| e.to_string())?;
        c.draw_series(counts.iter().enumerate().map(|(i, n)| {
            let x0 = lo + i as f64 * width;
            Rectangle::new([(x0, 0), (x0 + width, *n)], RGBColor(31, 119, 180).mix(0.7).filled())
        }))
        .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The page. Its heat map's params: the sweep's `heatmap`, else its first two params (no heat
/// map with a single param).
///
/// # Errors
/// When a chart cannot be drawn.
pub fn to_html(result: &SweepResult, top: usize) -> Result<String, String> {
    let s = &result.sweep;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tradedsl sweep {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}}th{{background:#f4f4f4}}</style>\
         </head><body><h1>Sweep `{}` of `{}`</h1><p>bundle revision <code>{}</code>; {:?} search, {} trials, \
         {:?} <code>{}</code></p>",
        esc(&s.name),
        esc(&s.name),
        esc(&s.bot),
        esc(&s.bundle_revision),
        s.method,
        result.trials.len(),
        s.direction,
        esc(&s.objective)
    );
    if let Some(sum) = &result.summary {
        let f = |v: Option<f64>| v.map_or_else(|| "undefined".to_string(), |x| format!("{x:.3}"));
        let _ = write!(
            h,
            "<p>Probability of backtest overfitting (CSCV, {} blocks of {} days): <b>{}</b>; deflated Sharpe \
             ratio of the best trial: <b>{}</b>.</p>",
            sum.pbo_blocks,
            sum.periods,
            f(sum.pbo),
            f(sum.deflated_sharpe)
        );
    }
    let pair = s.heatmap.clone().or_else(|| match &s.params[..] {
        [a, b, ..] => Some((a.name.clone(), b.name.clone())),
        _ => None,
    });
    if let Some((x, y)) = pair {
        h.push_str(&heatmap(result, &x, &y)?);
        let vals: Vec<f64> = result.trials.iter().filter_map(|t| t.objective).collect();
        let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let _ = write!(
            h,
            "<p>Colour: the objective from {lo:.3} (dark purple) to {hi:.3} (yellow); grey: no trial (the \
             constraints exclude the cell).</p>"
        );
    }
    h.push_str(&histogram(result)?);
    let _ = write!(h, "<h2>Best {} trials</h2><table><tr><th>rank</th><th>trial</th>", top.min(result.trials.len()));
    for p in &s.params {
        let _ = write!(h, "<th>{}</th>", esc(&p.name));
    }
    h.push_str("<th>objective</th><th>sharpe</th><th>total return</th><th>max drawdown</th><th>trades</th></tr>");
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"));
    for (i, t) in result.ranked().into_iter().take(top).enumerate() {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td>", i + 1, t.trial);
        for p in &s.params {
            let _ = write!(h, "<td>{}</td>", esc(&t.params.get(&p.name).map(text).unwrap_or_default()));
        }
        let m = |k: &str| t.metrics.get(k).copied().flatten();
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(t.objective),
            num(m("metric.sharpe")),
            num(m("metric.total_return")),
            num(m("metric.max_drawdown")),
            num(m("metric.trades"))
        );
    }
    h.push_str("</table></body></html>\n");
    Ok(h)
}
