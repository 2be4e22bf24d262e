//! Reading OHLCV bars from CSV files (the csv crate does the tokenising).
//!
//! The layout is detected unless given (`layout`):
//!
//! - **delimiter**: `,`, `;`, tab or `|`, whichever splits the first lines most consistently;
//! - **preamble**: lines before the header (e.g. a "Created by ..." line) are skipped;
//! - **header**: present when a line names the price columns; otherwise columns are
//!   `time, open, high, low, close[, volume]`;
//! - **columns** by name, in any order and case: a time column (`date`, `datetime`,
//!   `timestamp`, `time`, or an unnamed first column holding times; `date` + `time` are joined),
//!   `open`, `high`, `low`, `close`, `volume` (optional), a symbol column (`symbol`, `name`,
//!   `ticker`), and wide multi-asset columns such as `BTC:open`; optional quote columns `bid`
//!   and `ask` (or `bid_price`/`ask_price`, `BTC:bid`): a row's quote is kept when both are
//!   positive prices with the bid not above the ask, and dropped otherwise (its bar stays);
//! - a data row with one more field than the header, whose second field is a time of day, means
//!   the header forgot its `time` column;
//! - **time format**: see [`crate::runtime::data::timeparse`]; naive times are read in the given zone (UTC by
//!   default);
//! - **order**: newest-first files are reversed; unsorted files are sorted (with a warning);
//!   duplicate timestamps are an error.
//!
//! Missing cells (empty, `NaN`, `null`, `NA`, `N/A`, `-`) in open/high/low/close make the row
//! skipped (reported with its line numbers) or an error (with [`OnMissing::Error`]); a missing
//! volume reads as 0. **Bad rows** (another number of fields than the header, inconsistent
//! prices, an implausible time, price or volume; see `rows`) are skipped and reported the
//! same way, or an error. A cell that is not a number, or a time that does not parse, is an
//! error naming the file, line and column. Nothing is returned unless the whole file is valid.
//!
//! Files are **streamed**: only regular files are read (not a FIFO or a device), in blocks,
//! never whole, so memory follows the bars kept, not the file's size; large files are parsed
//! on several threads.

mod layout;
mod rows;

use std::io::Read;
use std::path::Path;

use chrono_tz::Tz;

use crate::config::timeframe::Timeframe;
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::market::BarSeries;
use crate::runtime::data::timeparse::{self, TimeFormat};
use layout::{Layout, detect_format, detect_layout, first_times, is_blank, time_text};
use rows::{BLOCK, FormatMiss, Part, RowParser};

pub use rows::{MAX_PRICE, MAX_TS, MAX_VOLUME, MIN_TS};

/// What to do with rows whose open, high, low or close is missing, and with bad rows.
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
    /// Missing-value and bad-row policy.
    pub on_missing: OnMissing,
    /// Compute the SHA-256 of the file's bytes while reading it ([`LoadReport::sha256`]).
    pub sha256: bool,
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
    /// Bad rows skipped (see the module docs).
    pub bad_rows: usize,
    /// The first 20 bad rows: 1-based line and why.
    pub bad_lines: Vec<(usize, String)>,
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
    /// SHA-256 of the file's bytes (hex), when asked for ([`CsvOptions::sha256`]).
    pub sha256: Option<String>,
}

impl LoadReport {
    /// One line per bad row kept (`line N: why`), then a count of the rest.
    pub fn bad_row_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.bad_lines.iter().map(|(l, why)| format!("line {l}: {why}")).collect();
        if self.bad_rows > self.bad_lines.len() {
            out.push(format!("... and {} more", self.bad_rows - self.bad_lines.len()));
        }
        out
    }
}

/// Bars read from one file (one series per symbol found) and the report.
#[derive(Debug, Clone)]
pub struct CsvLoad {
    /// One series per symbol, sorted by symbol.
    pub series: Vec<BarSeries>,
    /// What happened.
    pub report: LoadReport,
}

/// Bytes of a file read to detect its layout and time format.
const HEAD: usize = 1 << 20;

/// Where the bytes come from: a file (re-opened for each pass) or memory.
#[derive(Clone, Copy)]
enum Input<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl<'a> Input<'a> {
    fn open(&self) -> Result<Box<dyn Read + Send + 'a>, Diagnostic> {
        match self {
            Input::Bytes(b) => Ok(Box::new(*b)),
            Input::File(p) => Ok(Box::new(open_regular(p)?)),
        }
    }

    fn len(&self) -> Option<u64> {
        match self {
            Input::Bytes(b) => Some(b.len() as u64),
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        }
    }
}

pub use crate::runtime::files::open_regular;

/// Reads a bar file from disk, streaming it (see the module docs).
///
/// # Errors
/// I/O errors (also when `path` is not a regular file), and any bad row or undetectable
/// layout, as a diagnostic naming the file and line.
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<CsvLoad, Diagnostic> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("DATA");
    load(&path.display().to_string(), stem, Input::File(path), opts)
}

/// Parses bar data already in memory. `name` is used in messages; `stem` (the file name without
/// extension) names the symbol when nothing else does.
///
/// # Errors
/// A diagnostic for the first bad row, duplicate timestamps, or an undetectable layout.
pub fn parse_csv(name: &str, stem: &str, bytes: &[u8], opts: &CsvOptions) -> Result<CsvLoad, Diagnostic> {
    load(name, stem, Input::Bytes(bytes), opts)
}

fn bad(name: &str, line: usize, msg: impl AsRef<str>) -> Diagnostic {
    Diagnostic::error(codes::BAD_DATA, format!("{name}:{line}: {}", msg.as_ref()))
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The first [`HEAD`] bytes of the input, cut after the last whole line, without a BOM.
fn read_head(name: &str, input: Input<'_>) -> Result<String, Diagnostic> {
    let mut head = Vec::with_capacity(64 * 1024);
    input
        .open()?
        .take(HEAD as u64 + 1)
        .read_to_end(&mut head)
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot read `{name}`: {e}")))?;
    if head.len() > HEAD {
        head.truncate(HEAD);
        if let Some(nl) = memchr::memrchr(b'\n', &head) {
            head.truncate(nl + 1);
        }
    }
    if head.starts_with(BOM) {
        head.drain(..3);
    }
    String::from_utf8(head).map_err(|e| {
        let line = 1 + memchr::memchr_iter(b'\n', &e.as_bytes()[..e.utf8_error().valid_up_to()]).count();
        Diagnostic::error(codes::BAD_DATA, format!("{name}:{line}: not UTF-8 text ({})", e.utf8_error()))
    })
}

/// The input's bytes as read, hashed on the way when asked.
struct Source<R> {
    inner: R,
    hasher: Option<sha2::Sha256>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            sha2::Digest::update(h, &buf[..n]);
        }
        Ok(n)
    }
}

/// The bytes of one pass over the input.
type Stream<'a> = Source<Box<dyn Read + Send + 'a>>;

/// Opens the input for a pass, hashing it when `hash`; returns the source and its first bytes
/// (up to three) unless they are a BOM: the data is those bytes, then the rest of the source.
fn open_stream(input: Input<'_>, hash: bool) -> Result<(Stream<'_>, Vec<u8>), Diagnostic> {
    let mut src = Source { inner: input.open()?, hasher: hash.then(<sha2::Sha256 as sha2::Digest>::new) };
    let mut first = Vec::with_capacity(3);
    (&mut src)
        .take(3)
        .read_to_end(&mut first)
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot read the file: {e}")))?;
    if first == BOM {
        first.clear();
    }
    Ok((src, first))
}

fn load(name: &str, stem: &str, input: Input<'_>, opts: &CsvOptions) -> Result<CsvLoad, Diagnostic> {
    let head = read_head(name, input)?;
    let layout = detect_layout(name, &head, opts)?;
    let tz = opts.timezone.unwrap_or(Tz::UTC);
    let mut format = match &opts.time_format {
        Some(p) => TimeFormat::from_pattern(p),
        None => {
            let (samples, line) = first_times(&head, &layout, 300);
            detect_format(name, line, &samples)?
        }
    };
    // A single-asset file's columns are sized once, from the length of its lines.
    let head_rows = memchr::memchr_iter(b'\n', head.as_bytes()).count().max(1);
    let total = input.len().unwrap_or(head.len() as u64) as usize;
    let estimate = (total as f64 / head.len().max(1) as f64 * head_rows as f64 * 1.02) as usize + 64;
    let reserve = if layout.assets.len() == 1 && layout.cols.symbol.is_none() { estimate } else { 0 };
    let mut retried = false;
    let (part, sha256) = loop {
        let parser = RowParser { name, layout: &layout, opts, format: &format };
        match parse_all(&parser, input, total, reserve, opts.sha256)? {
            (Ok(part), sha256) => break (part, sha256),
            (Err(miss), _) if opts.time_format.is_none() && !retried => {
                // A later row disproves the format chosen from the first rows (say, day 13 in
                // a day/month file): choose again from a sample spread over the whole file.
                retried = true;
                let mut samples = sample_times(name, input, &layout, (estimate / 2000).max(1))?;
                samples.push(miss.value.clone());
                format = detect_format(name, miss.line, &samples).map_err(|_| bad(name, miss.line, &miss.message))?;
            }
            (Err(miss), _) => return Err(bad(name, miss.line, miss.message)),
        }
    };
    finish(name, stem, &layout, &format, tz, opts, part, sha256)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses every data row: in blocks on several threads when the input is large, else (and
/// for files with quoted fields) as one stream. Also gives the SHA-256 of the bytes when
/// `hash`.
fn parse_all(
    parser: &RowParser<'_>,
    input: Input<'_>,
    total: usize,
    reserve: usize,
    hash: bool,
) -> Result<(Result<Part, FormatMiss>, Option<String>), Diagnostic> {
    let digest = |src: Stream<'_>| src.hasher.map(|h| hex(&sha2::Digest::finalize(h)));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if total > 2 * BLOCK && threads > 1 {
        let (mut src, first) = open_stream(input, hash)?;
        let mut data = std::io::Cursor::new(first).chain(&mut src);
        if let Some(done) = rows::parse_blocks(parser, &mut data, threads, Part::new(parser.layout, reserve))? {
            return Ok((done, digest(src)));
        }
        // A quoted field may span lines: read it again as one stream.
    }
    let mut part = Part::new(parser.layout, reserve);
    let (mut src, first) = open_stream(input, hash)?;
    let data = std::io::Cursor::new(first).chain(&mut src);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(parser.layout.delimiter)
        .buffer_capacity(256 * 1024)
        .from_reader(data);
    let miss = parser.records(&mut rdr, parser.layout.data_start, 0, &mut part)?;
    drop(rdr);
    let parsed = match miss {
        Some(miss) => Err(miss),
        None => Ok(part),
    };
    Ok((parsed, digest(src)))
}

/// The time texts of every `step`-th data row of the whole input.
fn sample_times(name: &str, input: Input<'_>, layout: &Layout, step: usize) -> Result<Vec<String>, Diagnostic> {
    let (src, first) = open_stream(input, false)?;
    let r = std::io::Cursor::new(first).chain(src);
    let mut rdr =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(layout.delimiter).from_reader(r);
    let (mut out, mut rec, mut buf, mut n) = (Vec::new(), csv::ByteRecord::new(), String::new(), 0usize);
    let mut nonempty = 0usize;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => return Ok(out),
            Err(e) => {
                return Err(bad(name, e.position().map_or(0, |p| p.line() as usize), format!("unreadable CSV: {e}")));
            }
        }
        if is_blank(&rec) {
            continue;
        }
        nonempty += 1;
        if nonempty <= layout.data_start {
            continue;
        }
        if n < 300 || n.is_multiple_of(step) {
            out.push(time_text(&rec, &layout.cols.time, &mut buf).to_string());
        }
        n += 1;
    }
}

/// Orders each symbol's rows and turns them into series.
#[allow(clippy::too_many_arguments)]
fn finish(
    name: &str,
    stem: &str,
    layout: &Layout,
    format: &TimeFormat,
    tz: Tz,
    opts: &CsvOptions,
    part: Part,
    sha256: Option<String>,
) -> Result<CsvLoad, Diagnostic> {
    let Part { keys: mut out, mut report, .. } = part;
    report.sha256 = sha256;
    report.skipped_lines.sort_unstable();
    report.bad_lines.sort_by_key(|(l, _)| *l);
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
        drop(std::mem::take(&mut cols.lines));
        let mut quotes = std::mem::take(&mut cols.quotes);
        quotes.sort_unstable_by_key(|q| q.0);
        let quotes = (!quotes.is_empty()).then(|| std::sync::Arc::new(quotes));
        let [mut open, mut high, mut low, mut close, mut volume] = cols.ohlcv;
        let mut ts = cols.ts;
        for c in [&mut open, &mut high, &mut low, &mut close, &mut volume] {
            c.shrink_to_fit();
        }
        ts.shrink_to_fit();
        let mut s = BarSeries { symbol, timeframe: None, ts, open, high, low, close, volume, quotes };
        s.timeframe = s.median_spacing().map(Timeframe::nearest);
        series.push(s);
    }
    if series.is_empty() {
        let why = if report.bad_rows > 0 { format!(" ({} bad rows)", report.bad_rows) } else { String::new() };
        return Err(bad(name, 1, format!("no complete bars in the file{why}")));
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

    fn opts_error() -> CsvOptions {
        CsvOptions { on_missing: OnMissing::Error, ..Default::default() }
    }

    #[test]
    fn a_row_cut_short_is_a_bad_row_not_a_bar() {
        // A truncated download: the last close `1137.51` became `113`, its volume gone.
        let text =
            "date,open,high,low,close,volume\n2018-02-06,1100,1140,1090,1137.51,100\n2018-02-07,1100,1140,1090,113";
        let l = load(text);
        assert_eq!(l.series[0].close, vec![1137.51]);
        assert_eq!(l.report.bad_rows, 1);
        assert_eq!(l.report.bad_lines[0].0, 3);
        assert!(l.report.bad_lines[0].1.contains("5 fields where the header has 6"), "{:?}", l.report.bad_lines);
        let e = parse_csv("t.csv", "T", text.as_bytes(), &opts_error()).unwrap_err();
        assert!(e.message.starts_with("t.csv:3: bad row: 5 fields"), "{}", e.message);
        // Extra fields too; one empty trailing field is a trailing delimiter.
        let l = load("date,open,high,low,close\n2018-02-06,1,2,1,1,\n2018-02-07,1,2,1,1,9\n2018-02-08,1,2,1,1\n");
        assert_eq!(l.series[0].len(), 2);
        assert_eq!(l.report.bad_lines[0].0, 3);
    }

    #[test]
    fn inconsistent_or_implausible_bars_are_bad_rows() {
        let rows = [
            ("2018-02-01,10,9,8,10", "high below the close"),
            ("2018-02-02,10,12,11,10.5", "low above the open"),
            ("2018-02-03,10,8,12,10", "high below low"),
            ("2018-02-04,10,1e300,9,10", "a 1e300 spike"),
            ("2018-02-05,10,11,9,10,1e30", "an absurd volume"),
            ("0000-01-03,10,11,9,10", "year 0"),
            ("2999-01-03,10,11,9,10", "year 2999"),
        ];
        for (row, why) in rows {
            let fields = if row.matches(',').count() == 5 { ",volume" } else { "" };
            let text = format!(
                "date,open,high,low,close{fields}\n2018-01-31,10,11,9,10{}\n{row}\n",
                if fields.is_empty() { "" } else { ",1" }
            );
            let l = load(&text);
            assert_eq!(l.series[0].len(), 1, "{why}");
            assert_eq!((l.report.bad_rows, l.report.bad_lines[0].0), (1, 3), "{why}: {:?}", l.report);
            let e = parse_csv("t.csv", "T", text.as_bytes(), &opts_error()).unwrap_err();
            assert!(e.message.starts_with("t.csv:3: bad row:"), "{why}: {}", e.message);
        }
        // Unix seconds in the year 3e9 do not parse as a plausible time either.
        let e = parse_csv(
            "t.csv",
            "T",
            b"time,open,high,low,close\n1500000000,1,2,1,1\n94670856000000000,1,2,1,1\n",
            &opts_error(),
        )
        .unwrap_err();
        assert!(e.message.starts_with("t.csv:3:"), "{}", e.message);
    }

    #[test]
    fn many_symbols_in_a_symbol_column() {
        let mut text = String::from("date,open,high,low,close,volume,Name\n");
        for d in 0..3 {
            for s in 0..20_000 {
                text.push_str(&format!("2018-02-0{},1,2,1,1.5,10,S{s}\n", d + 1));
            }
        }
        let l = load(&text);
        assert_eq!(l.series.len(), 20_000);
        assert!(l.series.iter().all(|s| s.len() == 3));
    }

    /// A file over two blocks is read in blocks on several threads: the bars equal those of
    /// the same rows read as one stream (a quote in the file forces that path).
    #[test]
    fn large_files_read_in_blocks_equal_one_stream() {
        let mut text = String::from("timestamp,open,high,low,close,volume\n");
        let mut i = 0u64;
        while text.len() < 2 * rows::BLOCK + 100_000 {
            let p = 1.0 + (i % 1000) as f64 / 1000.0;
            text.push_str(&format!(
                "{},{p:.6},{:.6},{:.6},{p:.6},{}\n",
                1_500_000_000 + i * 60,
                p + 0.01,
                p - 0.01,
                i % 977
            ));
            i += 1;
        }
        text.push_str("1400000000,1,2,0.5,1,1\n"); // out of order: sorted
        text.push_str("1400000060,1,2,0.5,1\n"); // bad: a field short
        let blocks = load(&text);
        let quoted = format!(
            "\"timestamp\",open,high,low,close,volume{}",
            &text["timestamp,open,high,low,close,volume".len()..]
        );
        let stream = load(&quoted);
        assert_eq!(blocks.series, stream.series);
        assert_eq!(blocks.series[0].len() as u64, i + 1);
        assert!(blocks.report.sorted);
        assert_eq!(blocks.report.bad_lines, stream.report.bad_lines);
        assert_eq!(blocks.report.bad_lines[0].0 as u64, i + 3);
        assert_eq!(blocks.report.rows, stream.report.rows);
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_csv(dir.path(), &CsvOptions::default()).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{}", e.message);
        #[cfg(unix)]
        {
            let zero = dir.path().join("zero.csv");
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            let e = load_csv(&zero, &CsvOptions::default()).unwrap_err();
            assert!(e.message.contains("not a regular file"), "{}", e.message);
            let fifo = dir.path().join("fifo.csv");
            if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
                let e = load_csv(&fifo, &CsvOptions::default()).unwrap_err();
                assert!(e.message.contains("not a regular file"), "{}", e.message);
            }
        }
    }

    #[test]
    fn the_sha256_covers_the_whole_file() {
        use sha2::Digest;
        let text = b"\xEF\xBB\xBFdate,open,high,low,close\n2013-02-08,1,2,1,1\n";
        let opts = CsvOptions { sha256: true, ..Default::default() };
        let l = parse_csv("t.csv", "T", text, &opts).unwrap();
        assert_eq!(l.report.sha256.unwrap(), hex(&sha2::Sha256::digest(text)));
        assert_eq!(l.series[0].len(), 1);
    }

    #[test]
    fn bid_and_ask_columns_are_kept_as_quotes_when_plausible() {
        let l = load(
            "date,open,high,low,close,bid,ask\n2020-01-01,10,11,9,10,9.9,10.1\n2020-01-02,10,11,9,10,,\n\
             2020-01-03,10,11,9,10,10.2,10.1\n2020-01-04,10,11,9,10,-1,10\n2020-01-05,10,11,9,10,9.95,10.05\n",
        );
        let s = &l.series[0];
        assert_eq!(s.len(), 5, "a missing or bad quote never costs its bar");
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2020, 1, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()
        };
        assert_eq!(s.quote_at(day(1)), Some((9.9, 10.1)));
        assert_eq!(s.quote_at(day(2)), None, "missing");
        assert_eq!(s.quote_at(day(3)), None, "bid above the ask");
        assert_eq!(s.quote_at(day(4)), None, "not a price");
        assert_eq!(s.quote_at(day(5)), Some((9.95, 10.05)));
        assert!(load("date,open,high,low,close\n2020-01-01,10,11,9,10\n").series[0].quotes.is_none());
    }
}
