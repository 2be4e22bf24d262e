//! Turning data rows into bars: each row's checks, the column storage, and the streaming
//! reader that parses large files a block at a time on several threads.
//!
//! **Bad rows.** A row is bad when it has another number of fields than the header (a
//! truncated download), its time is implausible (before 1800 or from 2300 on), a price is above
//! [`MAX_PRICE`] or the volume above [`MAX_VOLUME`] (a spike such as `1e300`), or its prices
//! are inconsistent (`low > min(open, close)` or `high < max(open, close)`, which also covers
//! `high < low`). Under [`OnMissing::Skip`] a bad row is skipped and reported with its line and
//! reason; under [`OnMissing::Error`] it is an error naming the file and line. It is never used.
//!
//! **Memory.** Bars are kept column-wise (48 bytes a bar, plus 4 bytes of source line until
//! the rows are ordered). The file is never held whole: it is read in blocks of
//! [`BLOCK`] bytes, at most a few in flight, and the columns grow by a quarter at a time (or are
//! sized once from the file's length), so peak memory stays within about 1.3x the bars kept.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use chrono_tz::Tz;

use super::layout::{Layout, cell, is_blank, is_missing, line_of, reader, time_text};
use super::{CsvOptions, LoadReport, OnMissing, bad};
use crate::diagnostics::{Diagnostic, codes};
use crate::runtime::data::timeparse::{self, TimeFormat};

/// Highest plausible price (currency per unit).
pub const MAX_PRICE: f64 = 1e9;
/// Highest plausible volume (units per bar).
pub const MAX_VOLUME: f64 = 1e18;
/// First plausible bar time: 1800-01-01T00:00:00Z (UTC seconds).
pub const MIN_TS: i64 = -5_364_662_400;
/// First implausible bar time: 2300-01-01T00:00:00Z (UTC seconds).
pub const MAX_TS: i64 = 10_413_792_000;
/// Bytes per block of the streaming reader.
pub const BLOCK: usize = 4 << 20;
/// Bad lines kept for the report (the rest are counted).
const KEEP_LINES: usize = 20;

/// Bars of one key, column-wise, with the source line of each.
#[derive(Debug, Default)]
pub(super) struct Cols {
    pub ts: Vec<i64>,
    pub ohlcv: [Vec<f64>; 5],
    pub lines: Vec<u32>,
    /// `(time, bid, ask)` of the rows with a valid quote, when the file has quote columns.
    pub quotes: Vec<(i64, f64, f64)>,
}

impl Cols {
    pub fn with_capacity(n: usize) -> Self {
        Cols {
            ts: Vec::with_capacity(n),
            ohlcv: std::array::from_fn(|_| Vec::with_capacity(n)),
            lines: Vec::with_capacity(n),
            quotes: Vec::new(),
        }
    }

    /// Makes room for `more` rows, growing by at least a quarter (not doubling: a doubled
    /// column would hold twice the bars it needs).
    fn reserve(&mut self, more: usize) {
        let (len, cap) = (self.ts.len(), self.ts.capacity());
        if len + more <= cap {
            return;
        }
        let add = more.max(len / 4).max(1024);
        self.ts.reserve_exact(add);
        self.ohlcv.iter_mut().for_each(|c| c.reserve_exact(add));
        self.lines.reserve_exact(add);
    }

    #[inline]
    fn push(&mut self, ts: i64, vals: &[f64; 5], line: usize) {
        self.reserve(1);
        self.ts.push(ts);
        for (c, v) in self.ohlcv.iter_mut().zip(vals) {
            c.push(*v);
        }
        self.lines.push(u32::try_from(line).unwrap_or(u32::MAX));
    }

    fn append(&mut self, other: Cols) {
        self.reserve(other.ts.len());
        self.ts.extend_from_slice(&other.ts);
        for (a, b) in self.ohlcv.iter_mut().zip(&other.ohlcv) {
            a.extend_from_slice(b);
        }
        self.lines.extend_from_slice(&other.lines);
        self.quotes.extend_from_slice(&other.quotes);
    }

    /// Puts rows in time order; returns (reversed, sorted) or the lines of a duplicate.
    pub fn order(&mut self) -> Result<(bool, bool), (i64, u32, u32)> {
        if self.ts.windows(2).all(|w| w[0] < w[1]) {
            return Ok((false, false));
        }
        if self.ts.windows(2).all(|w| w[0] > w[1]) {
            self.ts.reverse();
            self.ohlcv.iter_mut().for_each(|c| c.reverse());
            self.lines.reverse();
            return Ok((true, false));
        }
        let mut idx: Vec<u32> = (0..self.ts.len() as u32).collect();
        idx.sort_by_key(|&i| (self.ts[i as usize], self.lines[i as usize]));
        if let Some(w) = idx.windows(2).find(|w| self.ts[w[0] as usize] == self.ts[w[1] as usize]) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            return Err((self.ts[a], self.lines[a], self.lines[b]));
        }
        // One column at a time, so that sorting needs one column of extra memory.
        self.ts = idx.iter().map(|&i| self.ts[i as usize]).collect();
        for c in self.ohlcv.iter_mut() {
            *c = idx.iter().map(|&i| c[i as usize]).collect();
        }
        self.lines = idx.iter().map(|&i| self.lines[i as usize]).collect();
        Ok((false, true))
    }
}

/// Bars per symbol key, in the order keys were first seen, with a hashed index.
#[derive(Debug, Default)]
pub(super) struct Part {
    pub keys: Vec<(String, Cols)>,
    index: HashMap<String, usize>,
    pub report: LoadReport,
}

impl Part {
    /// A part holding the layout's asset keys (`reserve` rows each for a single-asset file).
    pub fn new(layout: &Layout, reserve: usize) -> Self {
        let mut p = Part::default();
        if layout.cols.symbol.is_none() || layout.wide {
            for (k, _) in &layout.assets {
                let cap = if layout.assets.len() == 1 { reserve } else { 0 };
                p.index.insert(k.clone(), p.keys.len());
                p.keys.push((k.clone(), Cols::with_capacity(cap)));
            }
        }
        p
    }

    fn slot(&mut self, key: &str) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        self.index.insert(key.to_string(), self.keys.len());
        self.keys.push((key.to_string(), Cols::default()));
        self.keys.len() - 1
    }

    /// Appends a later part (rows after this part's, in file order).
    pub fn merge(&mut self, later: Part) {
        for (key, cols) in later.keys {
            let i = self.slot(&key);
            self.keys[i].1.append(cols);
        }
        let r = later.report;
        self.report.rows += r.rows;
        self.report.skipped += r.skipped;
        self.report.missing_volume += r.missing_volume;
        self.report.bad_rows += r.bad_rows;
        for l in r.skipped_lines {
            if self.report.skipped_lines.len() < KEEP_LINES {
                self.report.skipped_lines.push(l);
            }
        }
        for b in r.bad_lines {
            if self.report.bad_lines.len() < KEEP_LINES {
                self.report.bad_lines.push(b);
            }
        }
    }
}

/// A row whose time did not parse with the format chosen from the first rows.
#[derive(Debug, Clone)]
pub(super) struct FormatMiss {
    pub line: usize,
    pub value: String,
    pub message: String,
}

/// What parsing the rows gave: the bars, or the first row that disproved the time format.
pub(super) type Parsed = Result<Result<Part, FormatMiss>, Diagnostic>;

/// Parses data rows with one time format.
pub(super) struct RowParser<'a> {
    pub name: &'a str,
    pub layout: &'a Layout,
    pub opts: &'a CsvOptions,
    pub format: &'a TimeFormat,
}

const COLS: [&str; 5] = ["open", "high", "low", "close", "volume"];

impl RowParser<'_> {
    /// Counts a bad row (skip) or fails on it (error).
    fn bad_row(&self, part: &mut Part, line: usize, reason: String) -> Result<(), Diagnostic> {
        if self.opts.on_missing == OnMissing::Error {
            return Err(bad(self.name, line, format!("bad row: {reason}")));
        }
        part.report.bad_rows += 1;
        if part.report.bad_lines.len() < KEEP_LINES {
            part.report.bad_lines.push((line, reason));
        }
        Ok(())
    }

    /// Parses the records of `rdr` into `part`: `skip` non-blank records first (preamble and
    /// header), line numbers shifted by `line_offset`. `Ok(Some(miss))` when a time does not
    /// fit the format.
    pub fn records<R: Read>(
        &self,
        rdr: &mut csv::Reader<R>,
        skip: usize,
        line_offset: usize,
        part: &mut Part,
    ) -> Result<Option<FormatMiss>, Diagnostic> {
        let tz = self.opts.timezone.unwrap_or(Tz::UTC);
        let layout = self.layout;
        let by_symbol = layout.cols.symbol.filter(|_| !layout.wide);
        let mut buf = String::new();
        let mut rec = csv::ByteRecord::new();
        let mut nonempty = 0usize;
        loop {
            match rdr.read_byte_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    let line = line_offset + e.position().map_or(0, |p| p.line() as usize);
                    return Err(bad(self.name, line, format!("unreadable CSV: {e}")));
                }
            }
            if is_blank(&rec) {
                continue;
            }
            nonempty += 1;
            if nonempty <= skip {
                continue;
            }
            let line = line_offset + line_of(&rec);
            part.report.rows += 1;
            let n = rec.len();
            // One more field is a trailing delimiter when it is empty.
            let trailing = n == layout.fields + 1 && rec.get(n - 1).is_some_and(|f| f.trim_ascii().is_empty());
            if n != layout.fields && !trailing {
                let what = if layout.has_header { "the header has" } else { "the first row has" };
                self.bad_row(part, line, format!("{n} fields where {what} {} (a cut or garbled row)", layout.fields))?;
                continue;
            }
            let t = time_text(&rec, &layout.cols.time, &mut buf);
            let ts = match timeparse::parse(self.format, t, &tz) {
                Ok(ts) => ts,
                Err(message) => return Ok(Some(FormatMiss { line, value: t.to_string(), message })),
            };
            if !(MIN_TS..MAX_TS).contains(&ts) {
                self.bad_row(part, line, format!("time `{t}` is not plausible (before 1800 or after 2299)"))?;
                continue;
            }
            for (ai, (_, roles)) in layout.assets.iter().enumerate() {
                let Some(vals) = self.values(&rec, roles, line, part)? else { continue };
                let slot = match by_symbol {
                    Some(si) => part.slot(cell(&rec, si)),
                    None => ai,
                };
                let cols = &mut part.keys[slot].1;
                cols.push(ts, &vals, line);
                if let Some(q) = layout.quotes.get(ai).copied().flatten()
                    && let Some((bid, ask)) = quote(&rec, q)
                {
                    cols.quotes.push((ts, bid, ask));
                }
            }
        }
    }

    /// One asset's open, high, low, close and volume in a record; `None` when the bar is
    /// skipped (a missing price, a bad bar).
    fn values(
        &self,
        rec: &csv::ByteRecord,
        roles: &[Option<usize>; 5],
        line: usize,
        part: &mut Part,
    ) -> Result<Option<[f64; 5]>, Diagnostic> {
        let mut vals = [0.0f64; 5];
        let mut missing = 0u8;
        let mut missing_volume = 0usize;
        for (k, role) in roles.iter().enumerate() {
            let Some(col) = role else { continue };
            let c = rec.get(*col).unwrap_or(b"").trim_ascii();
            let v: f64 = match fast_float2::parse::<f64, _>(c) {
                Ok(v) if v.is_nan() => {
                    // `nan` parses as a float: a missing cell.
                    if k < 4 {
                        missing += 1;
                    } else {
                        missing_volume += 1;
                    }
                    continue;
                }
                Ok(v) => v,
                Err(_) if c.is_empty() || std::str::from_utf8(c).is_ok_and(is_missing) => {
                    if k < 4 {
                        missing += 1;
                    } else {
                        missing_volume += 1;
                    }
                    continue;
                }
                Err(_) => {
                    let text = String::from_utf8_lossy(c);
                    return Err(bad(self.name, line, format!("`{text}` in column `{}` is not a number", COLS[k])));
                }
            };
            if !v.is_finite() || (k < 4 && v <= 0.0) || v < 0.0 {
                let text = String::from_utf8_lossy(c);
                let what = if k < 4 { "price" } else { "volume" };
                return Err(bad(self.name, line, format!("`{text}` in column `{}` is not a valid {what}", COLS[k])));
            }
            vals[k] = v;
        }
        if missing > 0 {
            if self.layout.wide && missing == 4 {
                return Ok(None); // that asset does not trade yet in this row
            }
            if self.opts.on_missing == OnMissing::Error {
                return Err(bad(self.name, line, "a price cell (open, high, low or close) is missing"));
            }
            part.report.skipped += 1;
            if part.report.skipped_lines.len() < KEEP_LINES {
                part.report.skipped_lines.push(line);
            }
            return Ok(None);
        }
        part.report.missing_volume += missing_volume;
        let [open, high, low, close, volume] = vals;
        if let Some(k) = (0..4).find(|&k| vals[k] > MAX_PRICE) {
            self.bad_row(
                part,
                line,
                format!("{} {} is not a plausible price (above {MAX_PRICE:e})", COLS[k], vals[k]),
            )?;
            return Ok(None);
        }
        if volume > MAX_VOLUME {
            self.bad_row(part, line, format!("volume {volume} is not plausible (above {MAX_VOLUME:e})"))?;
            return Ok(None);
        }
        // A hair of tolerance for prices written through floating point.
        let eps = 1e-9;
        if low > open.min(close) * (1.0 + eps) || high < open.max(close) * (1.0 - eps) {
            self.bad_row(
                part,
                line,
                format!("inconsistent prices: open {open}, high {high}, low {low}, close {close} (low must be at most the open and close, high at least)"),
            )?;
            return Ok(None);
        }
        Ok(Some(vals))
    }
}

/// The bid and ask of a record's quote columns `[bid, ask]`, when both are plausible prices
/// (positive, finite, at most [`MAX_PRICE`]) and the bid is not above the ask. A row without a
/// valid quote keeps its bar; only the quote is missing there.
fn quote(rec: &csv::ByteRecord, [b, a]: [usize; 2]) -> Option<(f64, f64)> {
    let num = |i: usize| fast_float2::parse::<f64, _>(rec.get(i)?.trim_ascii()).ok();
    let (bid, ask) = (num(b)?, num(a)?);
    let ok = |p: f64| p.is_finite() && p > 0.0 && p <= MAX_PRICE;
    (ok(bid) && ok(ask) && bid <= ask).then_some((bid, ask))
}

/// Reads `input` in blocks cut at line ends and parses them on `workers` threads, merging the
/// parts in file order into `into`. Returns `Ok(None)` when the file holds a quote character
/// (a quoted field may span lines, so blocks cannot be cut safely): the caller then reads it
/// as one stream.
pub(super) fn parse_blocks(
    parser: &RowParser<'_>,
    input: &mut (dyn Read + Send),
    workers: usize,
    into: Part,
) -> Result<Option<Result<Part, FormatMiss>>, Diagnostic> {
    let stop = AtomicBool::new(false);
    let quoted = AtomicBool::new(false);
    let read_error: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let (jobs_tx, jobs_rx) = sync_channel::<(usize, Vec<u8>, usize)>(workers);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    // Tokens bound the blocks read but not yet merged (memory in flight).
    let (token_tx, token_rx) = sync_channel::<()>(2 * workers + 1);
    for _ in 0..2 * workers + 1 {
        let _ = token_tx.send(());
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, Parsed)>();
    std::thread::scope(|s| {
        let (stop, quoted, read_error) = (&stop, &quoted, &read_error);
        s.spawn(move || {
            read_blocks(input, &jobs_tx, &token_rx, stop, quoted, read_error);
        });
        for _ in 0..workers {
            let (rx, tx) = (jobs_rx.clone(), done_tx.clone());
            s.spawn(move || worker(parser, &rx, &tx));
        }
        drop(done_tx);
        collect(done_rx, into, &token_tx, stop, quoted, read_error)
    })
}

/// The reader side of [`parse_blocks`]: blocks of whole lines, numbered, with the number of
/// lines before each.
fn read_blocks(
    input: &mut (dyn Read + Send),
    jobs: &std::sync::mpsc::SyncSender<(usize, Vec<u8>, usize)>,
    tokens: &Receiver<()>,
    stop: &AtomicBool,
    quoted: &AtomicBool,
    read_error: &Mutex<Option<std::io::Error>>,
) {
    let mut carry: Vec<u8> = Vec::new();
    let (mut index, mut lines) = (0usize, 0usize);
    loop {
        if stop.load(Ordering::Relaxed) || tokens.recv().is_err() {
            return;
        }
        let mut block = std::mem::take(&mut carry);
        block.reserve(BLOCK);
        let mut eof = false;
        while block.len() < BLOCK {
            let start = block.len();
            block.resize(start + (BLOCK - start).max(64 * 1024), 0);
            match input.read(&mut block[start..]) {
                Ok(0) => {
                    block.truncate(start);
                    eof = true;
                    break;
                }
                Ok(n) => block.truncate(start + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => block.truncate(start),
                Err(e) => {
                    *read_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        if !eof && let Some(nl) = memchr::memrchr(b'\n', &block) {
            carry = block.split_off(nl + 1);
        }
        if memchr::memchr(b'"', &block).is_some() {
            quoted.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            return;
        }
        let n = memchr::memchr_iter(b'\n', &block).count();
        if !block.is_empty() && jobs.send((index, block, lines)).is_err() {
            return;
        }
        index += 1;
        lines += n;
        if eof && carry.is_empty() {
            return;
        }
    }
}

fn worker(
    parser: &RowParser<'_>,
    jobs: &Mutex<Receiver<(usize, Vec<u8>, usize)>>,
    done: &std::sync::mpsc::Sender<(usize, Parsed)>,
) {
    loop {
        let job = jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
        let Ok((index, block, lines)) = job else { return };
        let parsed = parse_block(parser, index, &block, lines);
        if done.send((index, parsed)).is_err() {
            return;
        }
    }
}

/// Parses one block (the first skips the preamble and header).
fn parse_block(parser: &RowParser<'_>, index: usize, block: &[u8], lines: usize) -> Parsed {
    if let Err(e) = std::str::from_utf8(block) {
        let line = lines + 1 + memchr::memchr_iter(b'\n', &block[..e.valid_up_to()]).count();
        return Err(Diagnostic::error(codes::BAD_DATA, format!("{}:{line}: not UTF-8 text ({e})", parser.name)));
    }
    // Sized once from the block's line count, so the columns never grow while parsing.
    let mut part = Part::new(parser.layout, memchr::memchr_iter(b'\n', block).count() + 1);
    let skip = if index == 0 { parser.layout.data_start } else { 0 };
    let mut rdr = reader(block, parser.layout.delimiter);
    match parser.records(&mut rdr, skip, lines, &mut part)? {
        Some(miss) => Ok(Err(miss)),
        None => Ok(Ok(part)),
    }
}

/// Merges the workers' parts in block order.
fn collect(
    done: Receiver<(usize, Parsed)>,
    mut into: Part,
    tokens: &std::sync::mpsc::SyncSender<()>,
    stop: &AtomicBool,
    quoted: &AtomicBool,
    read_error: &Mutex<Option<std::io::Error>>,
) -> Result<Option<Result<Part, FormatMiss>>, Diagnostic> {
    let mut waiting: BTreeMap<usize, Parsed> = BTreeMap::new();
    let mut next = 0usize;
    let mut first_problem: Option<(usize, Parsed)> = None;
    for (index, parsed) in done.iter() {
        waiting.insert(index, parsed);
        while let Some(parsed) = waiting.remove(&next) {
            match parsed {
                Ok(Ok(part)) if first_problem.is_none() => into.merge(part),
                Ok(Ok(_)) => {}
                problem => {
                    stop.store(true, Ordering::Relaxed);
                    if first_problem.as_ref().is_none_or(|(i, _)| next < *i) {
                        first_problem = Some((next, problem));
                    }
                }
            }
            next += 1;
            let _ = tokens.try_send(());
        }
    }
    if let Some(e) = read_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        return Err(Diagnostic::error(codes::IO, format!("cannot read the file: {e}")));
    }
    match first_problem {
        Some((_, Err(d))) => return Err(d),
        Some((_, Ok(Err(miss)))) => return Ok(Some(Err(miss))),
        _ => {}
    }
    if quoted.load(Ordering::Relaxed) {
        return Ok(None);
    }
    Ok(Some(Ok(into)))
}
