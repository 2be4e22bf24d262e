//! Reading OHLCV bars from CSV files (the csv crate does the tokenising).
//!
//! The layout is detected unless given:
//!
//! - **delimiter**: `,`, `;`, tab or `|`, whichever splits the first lines most consistently;
//! - **preamble**: lines before the header (e.g. a "Created by ..." line) are skipped;
//! - **header**: present when a line names the price columns; otherwise columns are
//!   `time, open, high, low, close[, volume]`;
//! - **columns** by name, in any order and case: a time column (`date`, `datetime`,
//!   `timestamp`, `time`, or an unnamed first column holding times; `date` + `time` are joined),
//!   `open`, `high`, `low`, `close`, `volume` (optional), a symbol column (`symbol`, `name`,
//!   `ticker`), and wide multi-asset columns such as `BTC:open`;
//! - a data row with one more field than the header, whose second field is a time of day, means
//!   the header forgot its `time` column;
//! - **time format**: see [`super::timeparse`]; naive times are read in the given zone (UTC by
//!   default);
//! - **order**: newest-first files are reversed; unsorted files are sorted (with a warning);
//!   duplicate timestamps are an error.
//!
//! Missing cells (empty, `NaN`, `null`, `NA`, `N/A`, `-`) in open/high/low/close make the row
//! skipped (reported with its line numbers) or an error (with [`OnMissing::Error`]); a missing
//! volume reads as 0. A cell that is not a number, or a time that does not parse, is an error
//! naming the file, line and column. Nothing is returned unless the whole file is valid.

use std::collections::BTreeMap;
use std::path::Path;

use chrono_tz::Tz;

use super::timeparse::{self, TimeFormat};
use crate::config::timeframe::Timeframe;
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::market::BarSeries;

/// What to do with rows whose open, high, low or close is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissing {
    /// Skip the row and report it.
    #[default]
    Skip,
    /// Fail the whole load.
    Error,
}

/// Options for reading a bar file. Every field is optional; unset means "detect".
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Symbol to give the bars (single-asset files) or to select (files with a symbol column or
    /// wide multi-asset columns).
    pub symbol: Option<String>,
    /// strftime pattern of the time column.
    pub time_format: Option<String>,
    /// Zone of naive timestamps (default UTC).
    pub timezone: Option<Tz>,
    /// Field delimiter.
    pub delimiter: Option<u8>,
    /// Whether the file has a header line.
    pub header: Option<bool>,
    /// Missing-value policy.
    pub on_missing: OnMissing,
}

/// What was found while reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Data rows read.
    pub rows: usize,
    /// Lines skipped because of missing prices (1-based line numbers, first 20).
    pub skipped_lines: Vec<usize>,
    /// Total rows skipped for missing prices.
    pub skipped: usize,
    /// Rows whose volume was missing and read as 0.
    pub missing_volume: usize,
    /// True when the file was newest-first and was reversed.
    pub reversed: bool,
    /// True when the file was out of order and was sorted.
    pub sorted: bool,
    /// Description of the detected layout.
    pub layout: String,
    /// Other remarks (e.g. symbol taken from the file name).
    pub notes: Vec<String>,
}

/// Bars read from one file (one series per symbol found) and the report.
#[derive(Debug, Clone)]
pub struct CsvLoad {
    /// One series per symbol, sorted by symbol.
    pub series: Vec<BarSeries>,
    /// What happened.
    pub report: LoadReport,
}

/// Reads a bar file from disk.
///
/// # Errors
/// I/O errors, and any bad row or undetectable layout, as a diagnostic naming the file and line.
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<CsvLoad, Diagnostic> {
    let bytes = std::fs::read(path)
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot read `{}`: {e}", path.display())))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("DATA");
    parse_csv(&path.display().to_string(), stem, &bytes, opts)
}

fn bad(name: &str, line: usize, msg: impl AsRef<str>) -> Diagnostic {
    Diagnostic::error(codes::BAD_DATA, format!("{name}:{line}: {}", msg.as_ref()))
}

/// Column roles found in a header.
#[derive(Debug, Clone, Default)]
struct Columns {
    time: Vec<usize>,
    symbol: Option<usize>,
    /// symbol prefix ("" for single-asset) → [open, high, low, close, volume?]
    assets: BTreeMap<String, [Option<usize>; 5]>,
}

fn is_missing(s: &str) -> bool {
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
        if let Some(role) = field_role(n) {
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

/// True when a line looks like a header: at least two known column names, or a time name plus
/// one price name.
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

/// The layout of a file: where data starts and which column is which.
#[derive(Debug, Clone)]
struct Layout {
    delimiter: u8,
    has_header: bool,
    /// Index (among non-empty records) of the first data record.
    data_start: usize,
    cols: Columns,
    /// Asset keys ("" for single-asset files) and their [open, high, low, close, volume] columns.
    assets: Vec<(String, [Option<usize>; 5])>,
    wide: bool,
}

fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes())
}

fn line_of(rec: &csv::ByteRecord) -> usize {
    rec.position().map_or(0, |p| p.line() as usize)
}

fn cell(rec: &csv::ByteRecord, i: usize) -> &str {
    rec.get(i).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("").trim()
}

/// Builds the time text of a record (joining `date` and `time` columns) into `buf`.
fn time_text<'a>(rec: &'a csv::ByteRecord, cols: &[usize], buf: &'a mut String) -> &'a str {
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

fn detect_layout(name: &str, text: &str, opts: &CsvOptions) -> Result<Layout, Diagnostic> {
    let delimiter = opts.delimiter.unwrap_or_else(|| detect_delimiter(text));
    let mut head: Vec<(usize, Vec<String>)> = Vec::new();
    let mut rdr = reader(text, delimiter);
    let mut rec = csv::ByteRecord::new();
    while head.len() < 6 {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(bad(name, e.position().map_or(0, |p| p.line() as usize), format!("unreadable CSV: {e}")));
            }
        }
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        head.push((line_of(&rec), (0..rec.len()).map(|i| cell(&rec, i).to_string()).collect()));
    }
    if head.is_empty() {
        return Err(bad(name, 1, "the file has no rows"));
    }
    let header_at = match opts.header {
        Some(false) => None,
        Some(true) => Some(head.iter().position(|(_, c)| looks_like_header(c)).unwrap_or(0)),
        None => head.iter().take(4).position(|(_, c)| looks_like_header(c)),
    };
    let (mut cols, data_start) = match header_at {
        Some(h) => {
            let sample = head.get(h + 1).map(|(_, c)| c.clone()).unwrap_or_default();
            (map_header(&head[h].1, &sample), h + 1)
        }
        None => {
            let n = head[0].1.len();
            if n < 5 {
                return Err(bad(
                    name,
                    head[0].0,
                    format!("found {n} columns and no header; bar files need time, open, high, low and close"),
                ));
            }
            let mut c = Columns { time: vec![0], ..Default::default() };
            c.assets.insert(String::new(), [Some(1), Some(2), Some(3), Some(4), (n > 5).then_some(5)]);
            (c, 0)
        }
    };
    // A header missing its `time` column (rows have one extra field holding a time of day).
    if let (Some(h), Some((_, first))) = (header_at, head.get(data_start)) {
        let hlen = head[h].1.len();
        if first.len() == hlen + 1
            && cols.time.len() == 1
            && timeparse::detect(&[&format!("2000-01-01 {}", first[cols.time[0] + 1])]).is_some()
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
        }
    }
    let header_line = head[header_at.unwrap_or(0)].0;
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
    let assets = cols.assets.iter().map(|(k, v)| (k.clone(), *v)).collect();
    Ok(Layout { delimiter, has_header: header_at.is_some(), data_start, cols, assets, wide })
}

/// Iterates over the data records of a file.
fn for_each_record(
    name: &str,
    text: &str,
    layout: &Layout,
    mut f: impl FnMut(&csv::ByteRecord) -> Result<bool, Diagnostic>,
) -> Result<(), Diagnostic> {
    let mut rdr = reader(text, layout.delimiter);
    let mut rec = csv::ByteRecord::new();
    let mut nonempty = 0usize;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                return Err(bad(name, e.position().map_or(0, |p| p.line() as usize), format!("unreadable CSV: {e}")));
            }
        }
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        nonempty += 1;
        if nonempty <= layout.data_start {
            continue;
        }
        if !f(&rec)? {
            return Ok(());
        }
    }
}

/// Detects the time format from the first `first` data rows plus every `step`-th row.
fn detect_format(
    name: &str,
    text: &str,
    layout: &Layout,
    first: usize,
    step: usize,
    extra: Option<&str>,
) -> Result<TimeFormat, Diagnostic> {
    let mut samples: Vec<String> = Vec::new();
    let mut first_line = 0;
    let mut n = 0usize;
    let mut buf = String::new();
    for_each_record(name, text, layout, |rec| {
        if n == 0 {
            first_line = line_of(rec);
        }
        if n < first || n.is_multiple_of(step) {
            samples.push(time_text(rec, &layout.cols.time, &mut buf).to_string());
        }
        n += 1;
        Ok(step != usize::MAX || n < first)
    })?;
    if let Some(x) = extra {
        samples.push(x.to_string());
    }
    if samples.is_empty() {
        return Err(bad(name, first_line.max(1), "the file has a header but no data rows"));
    }
    let refs: Vec<&str> = samples.iter().map(|s| s.as_str()).collect();
    timeparse::detect(&refs).ok_or_else(|| {
        bad(
            name,
            first_line,
            format!(
                "cannot recognise the time format of `{}`; pass --time-format (strftime, e.g. `%d.%m.%Y %H:%M`)",
                samples[0]
            ),
        )
    })
}

/// Bars of one key, column-wise, with the source line of each.
#[derive(Debug, Default)]
struct Cols {
    ts: Vec<i64>,
    ohlcv: [Vec<f64>; 5],
    lines: Vec<u32>,
}

impl Cols {
    fn with_capacity(n: usize) -> Self {
        Cols {
            ts: Vec::with_capacity(n),
            ohlcv: std::array::from_fn(|_| Vec::with_capacity(n)),
            lines: Vec::with_capacity(n),
        }
    }

    #[inline]
    fn push(&mut self, ts: i64, vals: &[f64; 5], line: usize) {
        self.ts.push(ts);
        for (c, v) in self.ohlcv.iter_mut().zip(vals) {
            c.push(*v);
        }
        self.lines.push(line as u32);
    }

    fn append(&mut self, mut other: Cols) {
        self.ts.append(&mut other.ts);
        for (a, b) in self.ohlcv.iter_mut().zip(other.ohlcv.iter_mut()) {
            a.append(b);
        }
        self.lines.append(&mut other.lines);
    }

    /// Puts rows in time order; returns (reversed, sorted) or the lines of a duplicate.
    fn order(&mut self) -> Result<(bool, bool), (i64, u32, u32)> {
        if self.ts.windows(2).all(|w| w[0] < w[1]) {
            return Ok((false, false));
        }
        if self.ts.windows(2).all(|w| w[0] > w[1]) {
            self.ts.reverse();
            self.ohlcv.iter_mut().for_each(|c| c.reverse());
            self.lines.reverse();
            return Ok((true, false));
        }
        let mut idx: Vec<usize> = (0..self.ts.len()).collect();
        idx.sort_by_key(|&i| (self.ts[i], self.lines[i]));
        if let Some(w) = idx.windows(2).find(|w| self.ts[w[0]] == self.ts[w[1]]) {
            return Err((self.ts[w[0]], self.lines[w[0]], self.lines[w[1]]));
        }
        self.ts = idx.iter().map(|&i| self.ts[i]).collect();
        for c in self.ohlcv.iter_mut() {
            *c = idx.iter().map(|&i| c[i]).collect();
        }
        self.lines = idx.iter().map(|&i| self.lines[i]).collect();
        Ok((false, true))
    }
}

/// Bars per symbol key.
type BarsByKey = Vec<(String, Cols)>;

/// A row whose time did not parse with the format chosen from the first rows.
struct FormatMiss {
    line: usize,
    value: String,
    message: String,
}

/// A part of the file parsed on its own (possibly on its own thread).
struct Chunk<'a> {
    text: &'a str,
    /// Non-empty records to skip (the preamble and header, in the first chunk).
    skip: usize,
    /// Lines before this chunk.
    line_offset: usize,
}

#[inline]
fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn is_missing_bytes(b: &[u8]) -> bool {
    b.is_empty() || std::str::from_utf8(b).is_ok_and(is_missing)
}

/// Parses the data rows of one chunk with `format`.
fn parse_chunk(
    name: &str,
    chunk: &Chunk<'_>,
    layout: &Layout,
    opts: &CsvOptions,
    format: &TimeFormat,
) -> Result<Result<(BarsByKey, LoadReport), FormatMiss>, Diagnostic> {
    const COLS: [&str; 5] = ["open", "high", "low", "close", "volume"];
    let tz = opts.timezone.unwrap_or(Tz::UTC);
    let estimate = memchr::memchr_iter(b'\n', chunk.text.as_bytes()).count() + 1;
    let by_symbol = layout.cols.symbol.filter(|_| !layout.wide);
    let mut out: BarsByKey = if by_symbol.is_some() {
        Vec::new()
    } else {
        let cap = if layout.assets.len() == 1 { estimate } else { 0 };
        layout.assets.iter().map(|(k, _)| (k.clone(), Cols::with_capacity(cap))).collect()
    };
    let mut last_symbol: usize = 0;
    let mut report = LoadReport::default();
    let mut buf = String::new();
    let mut rdr = reader(chunk.text, layout.delimiter);
    let mut rec = csv::ByteRecord::new();
    let mut nonempty = 0usize;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = chunk.line_offset + e.position().map_or(0, |p| p.line() as usize);
                return Err(bad(name, line, format!("unreadable CSV: {e}")));
            }
        }
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        nonempty += 1;
        if nonempty <= chunk.skip {
            continue;
        }
        let line = chunk.line_offset + line_of(&rec);
        report.rows += 1;
        let t = time_text(&rec, &layout.cols.time, &mut buf);
        let ts = match timeparse::parse(format, t, &tz) {
            Ok(ts) => ts,
            Err(message) => return Ok(Err(FormatMiss { line, value: t.to_string(), message })),
        };
        for (ai, (_, roles)) in layout.assets.iter().enumerate() {
            let mut vals = [0.0f64; 5];
            let mut missing = 0u8;
            let mut missing_volume = 0usize;
            for (k, role) in roles.iter().enumerate() {
                let Some(col) = role else { continue };
                let c = trim(rec.get(*col).unwrap_or(b""));
                let v: f64 = match fast_float2::parse(c) {
                    Ok(v) => v,
                    Err(_) if is_missing_bytes(c) => {
                        if k < 4 {
                            missing += 1;
                        } else {
                            missing_volume += 1;
                        }
                        continue;
                    }
                    Err(_) => {
                        let text = String::from_utf8_lossy(c);
                        return Err(bad(name, line, format!("`{text}` in column `{}` is not a number", COLS[k])));
                    }
                };
                if !v.is_finite() || (k < 4 && v <= 0.0) || v < 0.0 {
                    if v.is_nan() {
                        // `nan` parses as a float: treat it as a missing cell.
                        if k < 4 {
                            missing += 1;
                        } else {
                            missing_volume += 1;
                        }
                        continue;
                    }
                    let text = String::from_utf8_lossy(c);
                    let what = if k < 4 { "price" } else { "volume" };
                    return Err(bad(name, line, format!("`{text}` in column `{}` is not a valid {what}", COLS[k])));
                }
                vals[k] = v;
            }
            if missing > 0 {
                if layout.wide && missing == 4 {
                    continue; // that asset does not trade yet in this row
                }
                if opts.on_missing == OnMissing::Error {
                    return Err(bad(name, line, "a price cell (open, high, low or close) is missing"));
                }
                report.skipped += 1;
                if report.skipped_lines.len() < 20 {
                    report.skipped_lines.push(line);
                }
                continue;
            }
            report.missing_volume += missing_volume;
            match by_symbol {
                Some(si) => {
                    let sym = cell(&rec, si);
                    if out.get(last_symbol).is_none_or(|(k, _)| k != sym) {
                        last_symbol = match out.iter().position(|(k, _)| k == sym) {
                            Some(i) => i,
                            None => {
                                out.push((sym.to_string(), Cols::default()));
                                out.len() - 1
                            }
                        };
                    }
                    out[last_symbol].1.push(ts, &vals, line);
                }
                None => out[ai].1.push(ts, &vals, line),
            }
        }
    }
    Ok(Ok((out, report)))
}

/// Splits the file for parallel parsing: large, unquoted files go in two halves cut at a line
/// boundary; everything else is one chunk.
fn chunks<'a>(text: &'a str, layout: &Layout) -> Vec<Chunk<'a>> {
    const PARALLEL_FROM: usize = 4 << 20;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bytes = text.as_bytes();
    if text.len() < PARALLEL_FROM || threads < 2 || memchr::memchr(b'"', bytes).is_some() {
        return vec![Chunk { text, skip: layout.data_start, line_offset: 0 }];
    }
    let mid = text.len() / 2;
    let Some(nl) = memchr::memchr(b'\n', &bytes[mid..]) else {
        return vec![Chunk { text, skip: layout.data_start, line_offset: 0 }];
    };
    let cut = mid + nl + 1;
    let lines_before = memchr::memchr_iter(b'\n', &bytes[..cut]).count();
    vec![
        Chunk { text: &text[..cut], skip: layout.data_start, line_offset: 0 },
        Chunk { text: &text[cut..], skip: 0, line_offset: lines_before },
    ]
}

type ChunkResult = Result<Result<(BarsByKey, LoadReport), FormatMiss>, Diagnostic>;

/// Parses every data row with `format`, in parallel where worthwhile.
fn parse_rows(name: &str, text: &str, layout: &Layout, opts: &CsvOptions, format: &TimeFormat) -> ChunkResult {
    let parts = chunks(text, layout);
    let results: Vec<ChunkResult> = if parts.len() == 1 {
        vec![parse_chunk(name, &parts[0], layout, opts, format)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                parts.iter().map(|c| scope.spawn(move || parse_chunk(name, c, layout, opts, format))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(bad(name, 0, "internal error while reading"))))
                .collect()
        })
    };
    let mut merged: BarsByKey = Vec::new();
    let mut report = LoadReport::default();
    for r in results {
        let (part, rep) = match r? {
            Ok(x) => x,
            Err(miss) => return Ok(Err(miss)),
        };
        report.rows += rep.rows;
        report.skipped += rep.skipped;
        report.missing_volume += rep.missing_volume;
        for l in rep.skipped_lines {
            if report.skipped_lines.len() < 20 {
                report.skipped_lines.push(l);
            }
        }
        for (key, cols) in part {
            match merged.iter_mut().find(|(k, _)| *k == key) {
                Some((_, m)) => m.append(cols),
                None => merged.push((key, cols)),
            }
        }
    }
    Ok(Ok((merged, report)))
}

/// Parses bar data already in memory. `name` is used in messages; `stem` (the file name without
/// extension) names the symbol when nothing else does.
///
/// # Errors
/// A diagnostic for the first bad row, duplicate timestamps, or an undetectable layout.
pub fn parse_csv(name: &str, stem: &str, bytes: &[u8], opts: &CsvOptions) -> Result<CsvLoad, Diagnostic> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Diagnostic::error(codes::BAD_DATA, format!("{name}: not UTF-8 text ({e})")))?;
    let layout = detect_layout(name, text, opts)?;
    let tz = opts.timezone.unwrap_or(Tz::UTC);

    let mut format = match &opts.time_format {
        Some(p) => TimeFormat::from_pattern(p),
        None => detect_format(name, text, &layout, 300, usize::MAX, None)?,
    };
    let mut retried = false;
    let (mut out, mut report) = loop {
        match parse_rows(name, text, &layout, opts, &format)? {
            Ok(x) => break x,
            Err(miss) if opts.time_format.is_none() && !retried => {
                // A later row disproves the format chosen from the first rows (say, day 13 in
                // a day/month file): choose again from a sample spread over the whole file.
                retried = true;
                let total = memchr::memchr_iter(b'\n', text.as_bytes()).count().max(1);
                format = detect_format(name, text, &layout, 300, (total / 2000).max(1), Some(&miss.value))
                    .map_err(|_| bad(name, miss.line, miss.message.clone()))?;
            }
            Err(miss) => return Err(bad(name, miss.line, miss.message)),
        }
    };
    report.skipped_lines.sort_unstable();

    if let (false, Some(_), Some(sym)) = (layout.wide, layout.cols.symbol, &opts.symbol) {
        out.retain(|(k, _)| k.eq_ignore_ascii_case(sym));
        if out.is_empty() {
            return Err(bad(name, 1, format!("no rows for symbol `{sym}`")));
        }
    }
    for (key, _) in out.iter_mut().filter(|(k, _)| k.is_empty()) {
        *key = match &opts.symbol {
            Some(s) => s.clone(),
            None => {
                report.notes.push(format!("symbol `{stem}` taken from the file name; pass --symbol to choose another"));
                stem.to_string()
            }
        };
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));

    let mut series = Vec::new();
    for (symbol, mut cols) in out {
        if cols.ts.is_empty() {
            continue;
        }
        match cols.order() {
            Ok((reversed, sorted)) => {
                report.reversed |= reversed;
                report.sorted |= sorted;
            }
            Err((ts, a, b)) => {
                return Err(bad(
                    name,
                    a.max(b) as usize,
                    format!(
                        "duplicate timestamp {} (also on line {}) for `{symbol}`",
                        timeparse::format_utc(ts),
                        a.min(b)
                    ),
                ));
            }
        }
        let [open, high, low, close, volume] = cols.ohlcv;
        let mut s = BarSeries { symbol, timeframe: None, ts: cols.ts, open, high, low, close, volume };
        s.timeframe = s.median_spacing().map(Timeframe::nearest);
        series.push(s);
    }
    if series.is_empty() {
        return Err(bad(name, 1, "no complete bars in the file"));
    }
    report.layout = format!(
        "delimiter `{}`, {}, time format {}{}",
        if layout.delimiter == b'\t' { "\\t".to_string() } else { (layout.delimiter as char).to_string() },
        if layout.has_header { "header" } else { "no header" },
        format.describe(),
        if tz != Tz::UTC { format!(" in {tz}") } else { String::new() },
    );
    Ok(CsvLoad { series, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> CsvLoad {
        parse_csv("t.csv", "T", text.as_bytes(), &CsvOptions::default()).unwrap_or_else(|e| panic!("{}", e.message))
    }

    #[test]
    fn unnamed_index_header() {
        let l = load(
            ",Open,High,Low,Close,Volume\n2004-08-19,100,104.06,95.96,100.34,22351900\n2004-08-20,101.01,109.08,100.5,108.31,11428600\n",
        );
        assert_eq!(l.series[0].symbol, "T");
        assert_eq!(l.series[0].close, vec![100.34, 108.31]);
        assert_eq!(l.series[0].timeframe.unwrap().to_string(), "1d");
    }

    #[test]
    fn integer_index_then_date() {
        let l = load(
            ",date,open,high,low,close,volume\n0,1999-11-01,136.5,137.0,135.5625,135.5625,4006500.0\n1,1999-11-02,135.9687,137.25,134.5937,134.5937,6516900.0\n",
        );
        assert_eq!(l.series[0].len(), 2);
        assert_eq!(l.series[0].open[0], 136.5);
    }

    #[test]
    fn headerless_semicolons_crlf() {
        let l = load(
            "20110103 090100;126.35;126.39;126.35;126.39;1579\r\n20110103 090200;126.45;126.45;126.45;126.45;300\r\n",
        );
        assert_eq!(l.series[0].ts[1] - l.series[0].ts[0], 60);
    }

    #[test]
    fn preamble_reverse_order_and_symbol_column() {
        let l = load(
            "Created on 10-17-2019,https://www.CryptoDataDownload.com\r\ndate,symbol,open,high,low,close,volume_btc,volume\r\n\
             2019-10-17,BTCUSD,7993.54,8070,7937.01,8034.32,1570.08,12537245.82\r\n2019-10-16,BTCUSD,8000,8100,7900,7993.54,1,2\r\n",
        );
        assert!(l.report.reversed);
        assert_eq!(l.series[0].symbol, "BTCUSD");
        assert_eq!(l.series[0].close, vec![7993.54, 8034.32]);
        assert_eq!(l.series[0].volume, vec![2.0, 12537245.82]);
    }

    #[test]
    fn header_missing_its_time_column() {
        let l = load(
            "Date,Open,High,Low,Close,Volume,OpenInterest\n2006-01-02,09:01:00,3602.00,3603.00,3597.00,3599.00,5699,0\n2006-01-02,09:02:00,3600.00,3601.00,3598.00,3599.00,894,0\n",
        );
        assert_eq!(l.series[0].ts[1] - l.series[0].ts[0], 60);
        assert_eq!(l.series[0].open[0], 3602.0);
    }

    #[test]
    fn columns_in_any_order() {
        let l = load("Date,Open,Close,High,Low,Volume\n11/5/2019 9:30,3080.8,3080.49,3081.47,3080.3,0\n");
        assert_eq!(l.series[0].close[0], 3080.49);
        assert_eq!(l.series[0].high[0], 3081.47);
    }

    #[test]
    fn wide_multi_asset_files() {
        let l = load(
            ",BTC:open,BTC:high,BTC:low,BTC:close,BTC:volume,ETH:open,ETH:high,ETH:low,ETH:close,ETH:volume\n\
             2014-12-01,300.0,370.0,300.0,370.0,0.05,,,,,\n2014-12-02,370.0,378.0,370.0,378.0,15.01,1,2,0.5,1.5,3\n",
        );
        assert_eq!(l.series.len(), 2);
        assert_eq!(l.series[0].symbol, "BTC");
        assert_eq!(l.series[1].symbol, "ETH");
        assert_eq!(l.series[1].len(), 1);
        assert_eq!(l.report.skipped, 0);
    }

    #[test]
    fn missing_cells_are_skipped_and_reported() {
        let l = load("date,open,high,low,close,volume,Name\n2013-02-08,,,,10,100,X\n2013-02-11,1,2,0.5,1.5,,X\n");
        assert_eq!(l.report.skipped, 1);
        assert_eq!(l.report.skipped_lines, vec![2]);
        assert_eq!(l.report.missing_volume, 1);
        assert_eq!(l.series[0].volume, vec![0.0]);
        let opts = CsvOptions { on_missing: OnMissing::Error, ..Default::default() };
        let e = parse_csv("t.csv", "T", b"date,open,high,low,close\n2013-02-08,,,,10\n", &opts).unwrap_err();
        assert!(e.message.starts_with("t.csv:2:"), "{}", e.message);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let e = parse_csv(
            "t.csv",
            "T",
            b"date,open,high,low,close\n2013-02-08,1,2,1,1\n2013-02-09,1,x,1,1\n",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.message, "t.csv:3: `x` in column `high` is not a number");
        let e = parse_csv(
            "t.csv",
            "T",
            b"date,open,high,low,close\n2013-02-08,1,2,1,1\n2013-02-08,1,2,1,1\n",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("duplicate timestamp"), "{}", e.message);
        let e = parse_csv(
            "t.csv",
            "T",
            b"date,open,high,low,close\n2013-02-08,1,2,1,1\nnot a date,1,2,1,1\n",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert!(e.message.starts_with("t.csv:3:"), "{}", e.message);
    }
}
