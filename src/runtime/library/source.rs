//! Finding the bars a bundle needs: command-line files, the manifest's CSV files, or a bar store.
//!
//! Precedence per symbol: `--data SYMBOL=FILE` (or a lone `--data FILE` when the bundle trades
//! one symbol, or a file holding several symbols), then the manifest's `data.csv`, then its
//! `data.store`, then `--store`. A symbol with no source is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;

use crate::diagnostics::{Diagnostic, codes};
use crate::engine::market::BarSeries;
use crate::runtime::data::bar_store;
use crate::runtime::data::csv_bars::{CsvOptions, LoadReport, load_csv};
use crate::runtime::library::loader::{Loaded, resolve};

/// A `--data` argument.
#[derive(Debug, Clone, PartialEq)]
pub enum DataArg {
    /// `SYMBOL=FILE`
    Symbol(String, PathBuf),
    /// `FILE`
    File(PathBuf),
}

impl std::str::FromStr for DataArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((sym, file)) if !sym.is_empty() && !file.is_empty() && !sym.contains(['/', '\\']) => {
                Ok(DataArg::Symbol(sym.to_string(), PathBuf::from(file)))
            }
            _ if !s.is_empty() => Ok(DataArg::File(PathBuf::from(s))),
            _ => Err("expected FILE or SYMBOL=FILE".into()),
        }
    }
}

/// Where to look for data, from the command line.
#[derive(Debug, Clone, Default)]
pub struct DataRequest {
    /// `--data` arguments.
    pub data: Vec<DataArg>,
    /// `--store`.
    pub store: Option<PathBuf>,
    /// Keep bars at or after this time (UTC seconds).
    pub from: Option<i64>,
    /// Keep bars at or before this time (UTC seconds).
    pub to: Option<i64>,
    /// Zone of naive timestamps in CSV files.
    pub timezone: Option<Tz>,
    /// Time format of CSV files.
    pub time_format: Option<String>,
}

/// The loaded bars, one series per traded symbol (in the bundle's symbol order), and notes.
#[derive(Debug, Clone)]
pub struct MarketData {
    /// Bars per symbol: those up to `--to`, and before `--from` too (they warm up).
    pub series: Vec<BarSeries>,
    /// The first bar time traded (`--from`), when given: earlier bars only warm the
    /// indicators up.
    pub trade_from: Option<i64>,
    /// Bars before `trade_from`, summed over the symbols.
    pub warmup_bars: usize,
    /// Remarks for the user (files read, rows skipped, timeframe mismatches).
    pub notes: Vec<String>,
}

/// Files read so far, each read once; series are handed out by moving them when possible.
struct Files {
    cache: BTreeMap<PathBuf, Vec<BarSeries>>,
    notes: Vec<String>,
}

impl Files {
    /// The series of a file whose bars belong to `symbol`: the only series of a single-asset
    /// file, or the one named `symbol`.
    fn take(
        &mut self,
        path: &Path,
        symbol: &str,
        opts: &CsvOptions,
        rename_single: bool,
    ) -> Result<BarSeries, Diagnostic> {
        if !self.cache.contains_key(path) {
            let load = load_csv(path, opts)?;
            self.notes.extend(describe(path, &load.report));
            self.cache.insert(path.to_path_buf(), load.series);
        }
        let series = self.cache.get_mut(path).map(std::mem::take).unwrap_or_default();
        let (found, rest) = pick(series, symbol, path, rename_single);
        self.cache.insert(path.to_path_buf(), rest);
        found
    }
}

fn describe(path: &Path, r: &LoadReport) -> Vec<String> {
    let mut out = Vec::new();
    if r.skipped > 0 {
        let lines: Vec<String> = r.skipped_lines.iter().map(|l| l.to_string()).collect();
        out.push(format!(
            "{}: skipped {} row(s) with missing prices (lines {}{})",
            path.display(),
            r.skipped,
            lines.join(", "),
            if r.skipped > lines.len() { ", ..." } else { "" }
        ));
    }
    if r.bad_rows > 0 {
        out.push(format!("{}: skipped {} bad row(s): {}", path.display(), r.bad_rows, r.bad_row_lines().join("; ")));
    }
    if r.reversed {
        out.push(format!("{}: newest-first file, reversed", path.display()));
    }
    if r.sorted {
        out.push(format!("{}: rows out of order, sorted", path.display()));
    }
    if r.missing_volume > 0 {
        out.push(format!("{}: {} missing volume cell(s) read as 0", path.display(), r.missing_volume));
    }
    out
}

/// Splits off the series for `symbol`: the only one of a single-asset file (renamed), or the
/// one with that name. Returns it and the series left (to hand to other symbols).
fn pick(
    series: Vec<BarSeries>,
    symbol: &str,
    path: &Path,
    rename_single: bool,
) -> (Result<BarSeries, Diagnostic>, Vec<BarSeries>) {
    if rename_single && series.len() == 1 && !series[0].symbol.eq_ignore_ascii_case(symbol) {
        // A single-asset file named for another symbol (or by its file name): it is this one.
        let mut s = series.into_iter().next().unwrap_or_default();
        s.symbol = symbol.to_string();
        return (Ok(s), Vec::new());
    }
    let have: Vec<String> = series.iter().map(|s| s.symbol.clone()).collect();
    let (mut found, rest): (Vec<BarSeries>, Vec<BarSeries>) =
        series.into_iter().partition(|s| s.symbol.eq_ignore_ascii_case(symbol));
    match found.pop() {
        Some(mut s) => {
            s.symbol = symbol.to_string();
            (Ok(s), rest)
        }
        None => (
            Err(Diagnostic::error(
                codes::MISSING_DATA,
                format!("`{}` has no bars for `{symbol}` (it has {})", path.display(), have.join(", ")),
            )),
            rest,
        ),
    }
}

/// Loads the bars of every symbol the bundle trades.
///
/// # Errors
/// A symbol without data, an unreadable or invalid file, or a bar store problem.
pub fn load_for_bundle(loaded: &Loaded, req: &DataRequest) -> Result<MarketData, Diagnostic> {
    load_for_bundle_with(loaded, req, &mut |_, _| {})
}

/// [`load_for_bundle`], telling `progress(done, total)` after each symbol's bars (a progress
/// bar on a terminal).
///
/// # Errors
/// As [`load_for_bundle`].
pub fn load_for_bundle_with(
    loaded: &Loaded,
    req: &DataRequest,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MarketData, Diagnostic> {
    let bundle = &loaded.bundle;
    let symbols = bundle.symbols();
    let opts = CsvOptions { timezone: req.timezone, time_format: req.time_format.clone(), ..Default::default() };
    let mut files = Files { cache: BTreeMap::new(), notes: Vec::new() };
    let lone_files: Vec<&PathBuf> =
        req.data.iter().filter_map(|d| if let DataArg::File(p) = d { Some(p) } else { None }).collect();
    let mut out = Vec::new();
    let mut warmup_bars = 0;
    for sym in &symbols {
        let by_symbol = req.data.iter().find_map(|d| match d {
            DataArg::Symbol(s, p) if s.eq_ignore_ascii_case(sym) => Some(p.clone()),
            _ => None,
        });
        let series = if let Some(p) = by_symbol {
            files.take(&p, sym, &opts, true)?
        } else if !lone_files.is_empty() {
            let mut found = None;
            let only = symbols.len() == 1 && lone_files.len() == 1;
            for p in &lone_files {
                if let Ok(s) = files.take(p, sym, &opts, only) {
                    found = Some(s);
                    break;
                }
            }
            found.ok_or_else(|| {
                Diagnostic::error(codes::MISSING_DATA, format!("none of the --data files has bars for `{sym}`"))
                    .help(format!("name the file for each symbol: `--data {sym}=FILE`"))
            })?
        } else if let Some(bot) = &bundle.bot {
            if let Some(c) = bot.data.csv.iter().find(|c| c.symbol.value == *sym) {
                let p = resolve(&loaded.base_dir, &c.path.value);
                let mut o = opts.clone();
                if let Some(tf) = &c.time_format {
                    o.time_format = Some(tf.value.clone());
                }
                if let Some(tz) = &c.timezone {
                    o.timezone = Some(tz.value.parse::<Tz>().map_err(|_| {
                        Diagnostic::error(codes::INVALID_VALUE, format!("unknown time zone `{}`", tz.value))
                            .at(&bot.source, tz.span)
                            .help("use an IANA name such as `America/New_York` or `UTC`")
                    })?);
                }
                files.take(&p, sym, &o, true)?
            } else if let Some(store) =
                bot.data.store.as_ref().map(|s| resolve(&loaded.base_dir, &s.value)).or_else(|| req.store.clone())
            {
                let tf = bundle.strategies.iter().find(|s| s.trades(sym)).map(|s| s.doc.timeframe.value);
                bar_store::load(&store, sym, tf)?
            } else {
                return Err(no_data(sym, true));
            }
        } else if let Some(store) = &req.store {
            let tf = bundle.strategies.iter().find(|s| s.trades(sym)).map(|s| s.doc.timeframe.value);
            bar_store::load(store, sym, tf)?
        } else {
            return Err(no_data(sym, false));
        };
        let mut series = series;
        // Bars before `--from` stay, to warm the indicators up; `--to` ends the data.
        series.retain_period(None, req.to);
        let before = req.from.map_or(0, |f| series.ts.partition_point(|&t| t < f));
        warmup_bars += before;
        if series.len() == before {
            return Err(Diagnostic::error(codes::MISSING_DATA, format!("no bars for `{sym}` in the requested period")));
        }
        for s in bundle.strategies.iter().filter(|s| s.trades(sym)) {
            if let Some(tf) = series.timeframe.filter(|tf| *tf != s.doc.timeframe.value) {
                files.notes.push(format!(
                    "warning: strategy `{}` is written for {} bars but `{sym}`'s bars are {tf} apart",
                    s.name(),
                    s.doc.timeframe.value
                ));
            }
        }
        out.push(series);
        progress(out.len(), symbols.len());
    }
    Ok(MarketData { series: out, notes: files.notes, trade_from: req.from, warmup_bars })
}

/// Checks, without loading everything, that every symbol a bot's strategies trade has bars in the
/// manifest's `data` (when it has a `data` section): each CSV file is read in its first 64 KiB
/// (layout, a first bar), each store is asked for the symbol. Also warns about CSV data no
/// strategy uses.
pub fn check_data(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(bot) = &loaded.bundle.bot else { return out };
    if bot.data.csv.is_empty() && bot.data.store.is_none() {
        return out;
    }
    let mut checked: BTreeMap<String, bool> = BTreeMap::new();
    for c in &bot.data.csv {
        let traded = loaded.bundle.strategies.iter().any(|s| s.trades(&c.symbol.value));
        if !traded {
            out.push(
                Diagnostic::warning(codes::UNUSED_DATA, format!("no strategy trades `{}`", c.symbol.value))
                    .at(&bot.source, c.symbol.span)
                    .label("unused data")
                    .help("remove it, or add the symbol to a strategy's universe"),
            );
        }
        let path = resolve(&loaded.base_dir, &c.path.value);
        let ok = match read_prefix(&path) {
            Err(e) => {
                out.push(
                    Diagnostic::error(codes::MISSING_DATA, format!("cannot read data file `{}`: {e}", path.display()))
                        .at(&bot.source, c.path.span)
                        .label("here")
                        .help("paths are relative to the manifest's directory"),
                );
                false
            }
            Ok(prefix) => {
                let opts = CsvOptions {
                    time_format: c.time_format.as_ref().map(|t| t.value.clone()),
                    timezone: c.timezone.as_ref().and_then(|t| t.value.parse().ok()),
                    ..Default::default()
                };
                match crate::runtime::data::csv_bars::parse_csv(
                    &path.display().to_string(),
                    &c.symbol.value,
                    &prefix,
                    &opts,
                ) {
                    Ok(load) => {
                        // The bars' spacing (the median over the first 64 KiB) must be the
                        // timeframe the strategies trading them are written for.
                        let spacing = match load.series.as_slice() {
                            [one] => one.timeframe,
                            many => many.iter().find(|x| x.symbol == c.symbol.value).and_then(|x| x.timeframe),
                        };
                        for s in loaded.bundle.strategies.iter().filter(|s| s.trades(&c.symbol.value)) {
                            if let Some(tf) = spacing.filter(|tf| *tf != s.doc.timeframe.value) {
                                out.push(
                                    Diagnostic::error(
                                        codes::TIMEFRAME_MISMATCH,
                                        format!(
                                            "`{}`'s bars are {tf} apart, but strategy `{}` is written for {} bars",
                                            c.symbol.value,
                                            s.name(),
                                            s.doc.timeframe.value
                                        ),
                                    )
                                    .at(&bot.source, c.path.span)
                                    .label(format!("{tf} bars"))
                                    .help(format!(
                                        "give `{}` bars of {} (another file, or the bar store), or set the strategy's \
                                         `timeframe: {tf}`",
                                        c.symbol.value, s.doc.timeframe.value
                                    )),
                                );
                            }
                        }
                        true
                    }
                    Err(d) => {
                        out.push(
                            Diagnostic::error(
                                codes::MISSING_DATA,
                                format!("no usable bars for `{}`: {}", c.symbol.value, d.message),
                            )
                            .at(&bot.source, c.path.span)
                            .label("this file"),
                        );
                        false
                    }
                }
            }
        };
        checked.insert(c.symbol.value.clone(), ok);
    }
    let store = bot.data.store.as_ref().map(|s| (resolve(&loaded.base_dir, &s.value), s.span));
    for s in &loaded.bundle.strategies {
        for sym in &s.doc.universe {
            if checked.contains_key(&sym.value) {
                continue;
            }
            let found = match &store {
                Some((path, _)) => {
                    path.exists() && bar_store::timeframes(path, &sym.value).is_ok_and(|t| !t.is_empty())
                }
                None => false,
            };
            checked.insert(sym.value.clone(), found);
            if !found {
                let help = match &store {
                    Some((path, _)) => format!(
                        "import it (`dsl import FILE.csv --symbol {} --db {}`) or add it under `data.csv`",
                        sym.value,
                        path.display()
                    ),
                    None => format!("add it under `data.csv` (`{}: FILE.csv`)", sym.value),
                };
                out.push(
                    Diagnostic::error(codes::MISSING_DATA, format!("`{}` has no market data in this bot", sym.value))
                        .at(&s.doc.universe_file, sym.span)
                        .label(format!("traded by `{}`", s.name()))
                        .help(help),
                );
            }
        }
    }
    out
}

/// The first 64 KiB of a file, cut after its last complete line.
fn read_prefix(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(64 * 1024);
    let file = crate::runtime::data::csv_bars::open_regular(path).map_err(|d| std::io::Error::other(d.message))?;
    file.take(64 * 1024).read_to_end(&mut buf)?;
    if let (true, Some(nl)) = (buf.len() == 64 * 1024, buf.iter().rposition(|&b| b == b'\n')) {
        buf.truncate(nl + 1);
    }
    Ok(buf)
}

fn no_data(sym: &str, manifest: bool) -> Diagnostic {
    let help = if manifest {
        format!(
            "add it to the manifest (`data: {{csv: {{{sym}: FILE}}}}` or `data: {{store: bars.sqlite}}`) or pass `--data {sym}=FILE`"
        )
    } else {
        format!("pass `--data {sym}=FILE` (a CSV file of bars) or `--store bars.sqlite` (made by `dsl import`)")
    };
    Diagnostic::error(codes::MISSING_DATA, format!("no market data for `{sym}`")).help(help)
}
