//! Detecting a bar file's layout from its first lines: delimiter, preamble, header, which
//! column is which, and the time format (see the parent module for the rules).

use std::collections::BTreeMap;

use super::{CsvOptions, bad};
use crate::diagnostics::Diagnostic;
use crate::runtime::data::timeparse::{self, TimeFormat};

/// Column roles found in a header.
#[derive(Debug, Clone, Default)]
pub(super) struct Columns {
    pub time: Vec<usize>,
    pub symbol: Option<usize>,
    /// symbol prefix ("" for single-asset) → [open, high, low, close, volume?]
    pub assets: BTreeMap<String, [Option<usize>; 5]>,
    /// symbol prefix → [bid, ask] quote columns, when the file has them.
    pub quotes: BTreeMap<String, [Option<usize>; 2]>,
}

/// The layout of a file: where data starts and which column is which.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub delimiter: u8,
    pub has_header: bool,
    /// Index (among non-empty records) of the first data record.
    pub data_start: usize,
    pub cols: Columns,
    /// Asset keys ("" for single-asset files) and their [open, high, low, close, volume] columns.
    pub assets: Vec<(String, [Option<usize>; 5])>,
    /// Per asset (same order): its [bid, ask] columns; `None` without both.
    pub quotes: Vec<Option<[usize; 2]>>,
    pub wide: bool,
    /// Fields every data row must have: the header's (plus the time column a header forgot),
    /// or the first row's in a file without a header.
    pub fields: usize,
}

pub(super) fn is_missing(s: &str) -> bool {
    matches!(s, "" | "nan" | "NaN" | "NAN" | "null" | "NULL" | "None" | "NA" | "N/A" | "n/a" | "-" | "#N/A")
}

fn field_role(name: &str) -> Option<usize> {
    match name {
        "open" | "o" => Some(0),
        "high" | "h" => Some(1),
        "low" | "l" => Some(2),
        "close" | "c" | "price" | "last" => Some(3),
        "volume" | "vol" | "v" => Some(4),
        _ => None,
    }
}

/// The quote a column holds: 0 bid, 1 ask.
fn quote_role(name: &str) -> Option<usize> {
    match name {
        "bid" | "bid_price" | "bid price" | "bidprice" => Some(0),
        "ask" | "ask_price" | "ask price" | "askprice" | "offer" => Some(1),
        _ => None,
    }
}

fn is_time_name(n: &str) -> bool {
    matches!(
        n,
        "date" | "time" | "datetime" | "date time" | "timestamp" | "timestamps" | "dt" | "open time" | "open_time"
    )
}

/// Splits a header into column roles. `first_data` is a sample data row (for unnamed columns).
fn map_header(header: &[String], first_data: &[String]) -> Columns {
    let mut cols = Columns::default();
    let names: Vec<String> = header.iter().map(|h| h.trim().trim_matches('"').to_ascii_lowercase()).collect();
    let mut volume_like: Option<usize> = None;
    for (i, n) in names.iter().enumerate() {
        if let Some(role) = n.split_once(':').and_then(|(_, field)| field_role(field.trim())) {
            // Wide multi-asset column such as `BTC:open`; keep the symbol's original case.
            let key = header[i].split_once(':').map_or("", |(p, _)| p.trim()).to_string();
            cols.assets.entry(key).or_insert([None; 5])[role].get_or_insert(i);
            continue;
        }
        if let Some(role) = n.split_once(':').and_then(|(_, field)| quote_role(field.trim())) {
            let key = header[i].split_once(':').map_or("", |(p, _)| p.trim()).to_string();
            cols.quotes.entry(key).or_insert([None; 2])[role].get_or_insert(i);
            continue;
        }
        if let Some(role) = quote_role(n) {
            cols.quotes.entry(String::new()).or_insert([None; 2])[role].get_or_insert(i);
        } else if let Some(role) = field_role(n) {
            cols.assets.entry(String::new()).or_insert([None; 5])[role].get_or_insert(i);
        } else if n.starts_with("volume") {
            volume_like.get_or_insert(i);
        } else if matches!(n.as_str(), "symbol" | "name" | "ticker") && cols.symbol.is_none() {
            cols.symbol = Some(i);
        }
    }
    // Without an exact `volume` column, take the first `volume...` one (e.g. `VolumeFrom`).
    if let (Some(v), Some(e)) = (volume_like, cols.assets.get_mut("")) {
        e[4].get_or_insert(v);
    }
    // Time column(s): by name, else an unnamed first column that holds times.
    let by_name = |want: &str| names.iter().position(|n| n == want);
    if let (Some(d), Some(t)) = (by_name("date"), by_name("time")) {
        cols.time = vec![d, t];
    } else if let Some(i) = names.iter().position(|n| is_time_name(n)) {
        cols.time = vec![i];
    } else if names.first().is_some_and(|n| n.is_empty()) {
        // pandas index: times in the first column, or an integer index followed by a time column.
        let first = first_data.first().map(|s| s.trim()).unwrap_or("");
        if timeparse::detect(&[first]).is_some() && !first.bytes().all(|b| b.is_ascii_digit()) {
            cols.time = vec![0];
        }
    }
    cols
}

/// True when a line looks like a header: at least two known price column names.
fn looks_like_header(cells: &[String]) -> bool {
    let lower: Vec<String> = cells.iter().map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    let prices = lower.iter().filter(|c| field_role(c.split(':').next_back().unwrap_or("")).is_some()).count();
    prices >= 2
}

fn detect_delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(20).collect();
    let mut best = (b',', 0usize);
    for d in [b',', b';', b'\t', b'|'] {
        let counts: Vec<usize> = lines.iter().map(|l| l.bytes().filter(|&b| b == d).count()).collect();
        // Ignore the first line (it may be a preamble); score = lines sharing the modal count.
        let tail = if counts.len() > 1 { &counts[1..] } else { &counts[..] };
        let mut freq: BTreeMap<usize, usize> = BTreeMap::new();
        for &c in tail {
            if c > 0 {
                *freq.entry(c).or_insert(0) += 1;
            }
        }
        let score = freq.values().max().copied().unwrap_or(0);
        if score > best.1 {
            best = (d, score);
        }
    }
    best.0
}

/// A csv reader over `bytes` with the file's delimiter; every record is returned as is.
pub(super) fn reader(bytes: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(bytes)
}

pub(super) fn line_of(rec: &csv::ByteRecord) -> usize {
    rec.position().map_or(0, |p| p.line() as usize)
}

pub(super) fn cell(rec: &csv::ByteRecord, i: usize) -> &str {
    rec.get(i).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("").trim()
}

/// True for a record of blank fields only (a blank line).
pub(super) fn is_blank(rec: &csv::ByteRecord) -> bool {
    rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

/// Builds the time text of a record (joining `date` and `time` columns) into `buf`.
pub(super) fn time_text<'a>(rec: &'a csv::ByteRecord, cols: &[usize], buf: &'a mut String) -> &'a str {
    if cols.len() == 1 {
        return cell(rec, cols[0]);
    }
    buf.clear();
    for (k, &i) in cols.iter().enumerate() {
        if k > 0 {
            buf.push(' ');
        }
        buf.push_str(cell(rec, i));
    }
    buf.as_str()
}

/// Detects the layout from the first lines of a file (`head`, whole lines).
pub(super) fn detect_layout(name: &str, head: &str, opts: &CsvOptions) -> Result<Layout, Diagnostic> {
    let delimiter = opts.delimiter.unwrap_or_else(|| detect_delimiter(head));
    let mut first: Vec<(usize, Vec<String>)> = Vec::new();
    let mut rdr = reader(head.as_bytes(), delimiter);
    let mut rec = csv::ByteRecord::new();
    while first.len() < 6 {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(bad(name, e.position().map_or(0, |p| p.line() as usize), format!("unreadable CSV: {e}")));
            }
        }
        if is_blank(&rec) {
            continue;
        }
        first.push((line_of(&rec), (0..rec.len()).map(|i| cell(&rec, i).to_string()).collect()));
    }
    if first.is_empty() {
        return Err(bad(name, 1, "the file has no rows"));
    }
    let header_at = match opts.header {
        Some(false) => None,
        Some(true) => Some(first.iter().position(|(_, c)| looks_like_header(c)).unwrap_or(0)),
        None => first.iter().take(4).position(|(_, c)| looks_like_header(c)),
    };
    let (mut cols, data_start, mut fields) = match header_at {
        Some(h) => {
            let sample = first.get(h + 1).map(|(_, c)| c.clone()).unwrap_or_default();
            (map_header(&first[h].1, &sample), h + 1, first[h].1.len())
        }
        None => {
            let n = first[0].1.len();
            if n < 5 {
                return Err(bad(
                    name,
                    first[0].0,
                    format!("found {n} columns and no header; bar files need time, open, high, low and close"),
                ));
            }
            let mut c = Columns { time: vec![0], ..Default::default() };
            c.assets.insert(String::new(), [Some(1), Some(2), Some(3), Some(4), (n > 5).then_some(5)]);
            (c, 0, n)
        }
    };
    // A header missing its `time` column (rows have one extra field holding a time of day).
    if let (Some(h), Some((_, row))) = (header_at, first.get(data_start)) {
        let hlen = first[h].1.len();
        if row.len() == hlen + 1
            && cols.time.len() == 1
            && timeparse::detect(&[&format!("2000-01-01 {}", row[cols.time[0] + 1])]).is_some()
        {
            let t = cols.time[0];
            for roles in cols.assets.values_mut() {
                for r in roles.iter_mut().flatten() {
                    if *r > t {
                        *r += 1;
                    }
                }
            }
            cols.symbol = cols.symbol.map(|s| if s > t { s + 1 } else { s });
            cols.time = vec![t, t + 1];
            fields = hlen + 1;
        }
    }
    let header_line = first[header_at.unwrap_or(0)].0;
    if cols.time.is_empty() {
        return Err(bad(
            name,
            header_line,
            "no time column found (looked for `date`, `datetime`, `timestamp`, `time` or an unnamed first column)",
        ));
    }
    cols.assets.retain(|_, r| r[..4].iter().all(Option::is_some));
    if cols.assets.is_empty() {
        return Err(bad(name, header_line, "no open, high, low and close columns found"));
    }
    let wide = !(cols.assets.len() == 1 && cols.assets.contains_key(""));
    if let (true, Some(sym)) = (wide, &opts.symbol) {
        match cols.assets.keys().find(|k| k.eq_ignore_ascii_case(sym)).cloned() {
            Some(k) => cols.assets.retain(|a, _| *a == k),
            None => {
                let have: Vec<&str> = cols.assets.keys().map(|s| s.as_str()).collect();
                return Err(bad(
                    name,
                    header_line,
                    format!("no columns for symbol `{sym}`; the file has {}", have.join(", ")),
                ));
            }
        }
    }
    let assets: Vec<(String, [Option<usize>; 5])> = cols.assets.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let quotes = assets
        .iter()
        .map(|(k, _)| match cols.quotes.get(k) {
            Some([Some(b), Some(a)]) => Some([*b, *a]),
            _ => None,
        })
        .collect();
    Ok(Layout { delimiter, has_header: header_at.is_some(), data_start, cols, assets, quotes, wide, fields })
}

/// Detects the time format from `samples` (time texts of data rows), naming `line` (the first
/// data row) when none fits.
pub(super) fn detect_format(name: &str, line: usize, samples: &[String]) -> Result<TimeFormat, Diagnostic> {
    if samples.is_empty() {
        return Err(bad(name, line.max(1), "the file has a header but no data rows"));
    }
    let refs: Vec<&str> = samples.iter().map(|s| s.as_str()).collect();
    timeparse::detect(&refs).ok_or_else(|| {
        bad(
            name,
            line,
            format!(
                "cannot recognise the time format of `{}`; pass --time-format (strftime, e.g. `%d.%m.%Y %H:%M`)",
                samples[0]
            ),
        )
    })
}

/// The time texts of the first `n` data rows of `head` and the line of the first.
pub(super) fn first_times(head: &str, layout: &Layout, n: usize) -> (Vec<String>, usize) {
    let mut rdr = reader(head.as_bytes(), layout.delimiter);
    let mut rec = csv::ByteRecord::new();
    let (mut samples, mut line, mut nonempty) = (Vec::new(), 0, 0usize);
    let mut buf = String::new();
    while samples.len() < n && rdr.read_byte_record(&mut rec).unwrap_or(false) {
        if is_blank(&rec) {
            continue;
        }
        nonempty += 1;
        if nonempty <= layout.data_start {
            continue;
        }
        if samples.is_empty() {
            line = line_of(&rec);
        }
        samples.push(time_text(&rec, &layout.cols.time, &mut buf).to_string());
    }
    (samples, line)
}
