//! Paper (or live) against backtest: `dsl report divergence BOT.yaml [--run N]` replays the
//! bars a bot's run traded through the backtester, with the same bundle revisions swapped in at
//! the same bar times (its hot reloads), the same phase limits and the same order ids, and
//! compares what the run did with what the backtest says it should have done, order by order
//! and trade by trade (the trader's "report matches live reality").
//!
//! - **Orders** are matched by `client_order_id` (ids are deterministic: the run number, the
//!   strategy, the symbol and the bar). `missing`: the backtest placed it and the run did not;
//!   `extra`: the run placed it and the backtest did not; `status`: both did, with another
//!   outcome. Orders still working at the run's last checkpoint are left out on both sides.
//! - **Fills** of orders filled on both sides: the average fill price difference in basis
//!   points, signed against the bot (`+` = the run paid more on a buy or got less on a sell),
//!   the fill time difference (seconds) and the fee difference (currency).
//! - **Trades** matched by their entry order: pnl differences (currency).
//! - **Equity**: the run's closing equity of each UTC day (`daily_equity`) against the
//!   backtest's at the same day's last bar.
//! - **Settings**: cash, costs and fill timing the run was started with that differ from the
//!   bundle's (e.g. a run started with `--slippage`).
//!
//! The summary a gate reads: `divergence_bps`, the mean absolute fill price difference over
//! the orders filled on both sides (bps; 0 without such orders), and `missing_orders`, the
//! orders placed on one side only (`missing` + `extra`). Each report is journaled
//! (`divergence_checks`), and `metric.divergence_bps` / `metric.missing_orders` in a gate rule
//! read the newest check of each run the rule counts (undefined, so failing closed, for a run
//! never checked).
//!
//! The bars are the manifest's data read again (a live run's bars must be in the manifest's
//! data, e.g. a bar store filled by `dsl data fetch`); a person's halts, resumes and approval
//! decisions are not replayed, so what they changed shows as a difference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::engine::costs::CostModel;
use crate::engine::curve::EquityTracker;
use crate::engine::event_loop::{self, BarPath, Driver, Ended, Flow, SeriesFeed};
use crate::engine::events::{EventSink, OrderStatus};
use crate::engine::orders::{ClientOrderId, Fill, Order, Trade};
use crate::engine::pipeline::{Engine, EngineSettings};
use crate::runtime::journal::settings::RunSettings;
use crate::runtime::journal::{db_err, reload_log};
use crate::runtime::library::loader::Loaded;
use crate::runtime::library::source::load_for_bundle;

/// What to compare.
#[derive(Debug, Clone)]
pub struct DivergenceRequest {
    /// The bot manifest.
    pub manifest: PathBuf,
    /// The journal (default: the manifest's `database`).
    pub journal: Option<PathBuf>,
    /// The run (default: the bot's latest paper run).
    pub run: Option<i64>,
}

/// One order placed on one side only, or with another outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderDifference {
    /// The order.
    pub client_order_id: String,
    /// Symbol.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `entry` or `exit`.
    pub intent: String,
    /// Bar time it was created at (RFC 3339 UTC).
    pub time: String,
    /// Its final status in the run (`None`: not placed there).
    pub run_status: Option<String>,
    /// Its final status in the backtest (`None`: not placed there).
    pub backtest_status: Option<String>,
}

/// An order filled on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillDifference {
    /// The order.
    pub client_order_id: String,
    /// Symbol.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `market`, `stop` or `limit`.
    pub order_type: String,
    /// Average fill price in the run (currency per unit).
    pub run_price: f64,
    /// Average fill price in the backtest.
    pub backtest_price: f64,
    /// Price difference, bps of the backtest's price, `+` = worse for the bot in the run.
    pub price_bps: f64,
    /// Units filled in the run and in the backtest.
    pub run_quantity: f64,
    /// Units filled in the backtest.
    pub backtest_quantity: f64,
    /// Last fill time in the run minus in the backtest (seconds).
    pub timing_secs: i64,
    /// Fees in the run minus in the backtest (currency).
    pub fees: f64,
}

/// A trade closed on both sides (matched by its entry order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeDifference {
    /// The entry order.
    pub entry_order_id: String,
    /// Symbol.
    pub symbol: String,
    /// Pnl in the run (currency).
    pub run_pnl: f64,
    /// Pnl in the backtest (currency).
    pub backtest_pnl: f64,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DivergenceReport {
    /// The bot.
    pub bot: String,
    /// The run compared.
    pub run: i64,
    /// The run's status (`running`, `stopped`, `completed`).
    pub run_status: String,
    /// The bars compared: first traded and last checkpointed (RFC 3339 UTC).
    pub from: Option<String>,
    /// Last checkpointed bar.
    pub to: Option<String>,
    /// The bundle revisions in force, with the bar time each was swapped in (the first: the
    /// run's start).
    pub revisions: Vec<(String, String)>,
    /// Settings the run was started with that differ from the bundle's: `(name, run,
    /// bundle)`.
    pub settings: Vec<(String, String, String)>,
    /// Orders with a final status in the run.
    pub run_orders: usize,
    /// Orders with a final status in the backtest.
    pub backtest_orders: usize,
    /// Placed by the backtest only.
    pub missing: Vec<OrderDifference>,
    /// Placed by the run only.
    pub extra: Vec<OrderDifference>,
    /// Placed by both, ended otherwise.
    pub outcome: Vec<OrderDifference>,
    /// Orders filled on both sides (every one, the equal ones too).
    pub fills: Vec<FillDifference>,
    /// Trades closed on both sides whose pnl differs by more than a cent.
    pub trades: Vec<TradeDifference>,
    /// Trades closed in the run and in the backtest.
    pub run_trades: usize,
    /// Trades closed in the backtest.
    pub backtest_trades: usize,
    /// Days compared, and the largest difference of the closing equity (run minus backtest,
    /// currency, and bps of the backtest's).
    pub equity_days: usize,
    /// Largest closing equity difference (currency, signed).
    pub equity_max_diff: f64,
    /// The same in bps of the backtest's equity that day.
    pub equity_max_diff_bps: f64,
    /// Mean absolute fill price difference over the orders filled on both sides (bps).
    pub divergence_bps: f64,
    /// Orders placed on one side only (`missing` + `extra`).
    pub missing_orders: usize,
}

impl DivergenceReport {
    /// No difference at all: the same orders with the same outcomes, fills at the same prices
    /// (within 0.01 bps), times and fees, the same trades and daily equity (within a cent).
    pub fn identical(&self) -> bool {
        self.missing_orders == 0
            && self.outcome.is_empty()
            && self.trades.is_empty()
            && self.fills.iter().all(|f| f.price_bps.abs() < 0.01 && f.timing_secs == 0 && f.fees.abs() < 0.01)
            && self.equity_max_diff.abs() < 0.01
            && self.run_trades == self.backtest_trades
    }
}

/// An order as either side ended it.
#[derive(Debug, Clone, Default)]
struct OrderSide {
    symbol: String,
    side: String,
    order_type: String,
    intent: String,
    created_ts: i64,
    status: String,
    quantity: f64,
    notional: f64,
    fees: f64,
    fill_ts: i64,
}

/// The backtest's events, kept for the comparison.
#[derive(Default)]
struct Recorder {
    orders: BTreeMap<ClientOrderId, OrderSide>,
    trades: Vec<Trade>,
}

impl EventSink for Recorder {
    fn order(&mut self, o: &Order, _strategy: &str, symbol: &str, status: OrderStatus, _reason: &str) {
        let e = self.orders.entry(o.client_order_id).or_default();
        e.symbol = symbol.to_string();
        e.side = o.side.as_str().to_string();
        e.order_type = o.order_type.as_str().to_string();
        e.intent = o.intent.as_str().to_string();
        e.created_ts = o.created_ts;
        e.status = status.as_str().to_string();
    }

    fn order_status(&mut self, id: ClientOrderId, status: OrderStatus, _ts: i64, _reason: &str) {
        if let Some(e) = self.orders.get_mut(&id) {
            e.status = status.as_str().to_string();
        }
    }

    fn fill(&mut self, f: &Fill, _o: &Order, _symbol: &str) {
        let e = self.orders.entry(f.client_order_id).or_default();
        e.quantity += f.quantity;
        e.notional += f.quantity * f.price;
        e.fees += f.commission;
        e.fill_ts = e.fill_ts.max(f.ts);
    }

    fn trade(&mut self, t: &Trade) {
        self.trades.push(t.clone());
    }
}

/// The replay's driver: swaps the run's revisions in at their bar times, records each UTC
/// day's last equity, and stops after the run's last checkpointed bar.
struct Replay {
    recorder: Recorder,
    warmup_until: i64,
    until: i64,
    swaps: Vec<(i64, Arc<Bundle>)>,
    days: BTreeMap<i64, f64>,
}

impl Driver for Replay {
    type Error = String;

    fn sink(&mut self) -> &mut dyn EventSink {
        &mut self.recorder
    }

    fn warming(&self, ts: i64) -> bool {
        ts <= self.warmup_until
    }

    async fn before(&mut self, ts: i64, engine: &mut Engine, feed: &SeriesFeed<'_>) -> Result<Flow, String> {
        if ts > self.until {
            return Ok(Flow::End(Ended::Stopped));
        }
        while self.swaps.first().is_some_and(|(at, _)| *at <= ts) {
            let (_, b) = self.swaps.remove(0);
            engine.swap_bundle(b, &|i| feed.history(i))?;
        }
        Ok(Flow::Go)
    }

    async fn after(&mut self, ts: i64, engine: &mut Engine, _feed: &SeriesFeed<'_>) -> Result<Flow, String> {
        self.days.insert(ts.div_euclid(86_400), engine.equity());
        Ok(Flow::Go)
    }
}

/// The run's orders with a final status, their fills aggregated.
fn run_orders(conn: &Connection, run_id: i64) -> rusqlite::Result<BTreeMap<String, OrderSide>> {
    let mut st = conn.prepare(
        "SELECT o.client_order_id, o.symbol, o.side, o.intent, o.created_ts, o.status, o.order_type, \
         COALESCE(SUM(f.quantity), 0), COALESCE(SUM(f.quantity * f.price), 0), COALESCE(SUM(f.commission), 0), \
         COALESCE(MAX(f.ts), 0) \
         FROM orders o LEFT JOIN fills f ON f.run_id = o.run_id AND f.client_order_id = o.client_order_id \
         WHERE o.run_id = ?1 GROUP BY o.client_order_id",
    )?;
    let rows = st.query_map(params![run_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            OrderSide {
                symbol: r.get(1)?,
                side: r.get(2)?,
                intent: r.get(3)?,
                created_ts: r.get(4)?,
                status: r.get(5)?,
                order_type: r.get(6)?,
                quantity: r.get(7)?,
                notional: r.get(8)?,
                fees: r.get(9)?,
                fill_ts: r.get(10)?,
            },
        ))
    })?;
    rows.collect()
}

/// The run's trades: entry order id → (symbol, pnl).
fn run_trades(conn: &Connection, run_id: i64) -> rusqlite::Result<BTreeMap<String, (String, f64)>> {
    let mut st = conn.prepare("SELECT entry_order_id, symbol, pnl FROM trades WHERE run_id = ?1")?;
    let rows = st.query_map(params![run_id], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
    rows.collect()
}

/// The run's closing equity per UTC day.
fn run_days(conn: &Connection, run_id: i64) -> rusqlite::Result<BTreeMap<i64, f64>> {
    let mut st = conn.prepare("SELECT day, close_equity FROM daily_equity WHERE run_id = ?1")?;
    let rows = st.query_map(params![run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The bundle of `revision`, with the run's phase limits: the loaded documents' when they are
/// that revision, else rebuilt from the texts the journal stored for it.
fn bundle_of(
    journal: &Path,
    loaded: &Loaded,
    revision: &str,
    settings: &RunSettings,
) -> Result<Arc<Bundle>, Diagnostic> {
    let bundle = if loaded.bundle.revision == revision {
        Arc::new(loaded.bundle.clone())
    } else {
        let missing = || {
            Diagnostic::error(
                codes::JOURNAL_CONFLICT,
                format!("the journal has no texts of bundle {revision}, which the run used"),
            )
        };
        Arc::new(reload_log::rebuild(journal, revision)?.ok_or_else(missing)?)
    };
    let Some(phase) = &settings.phase else { return Ok(bundle) };
    let Some(doc) = bundle.phases.iter().find(|p| p.name.value == phase.phase) else { return Ok(bundle) };
    let policy = super::phase_limits::policy(doc, phase.scaled_up)?;
    Ok(super::phase_limits::with_limits(bundle, policy.as_ref()))
}

/// Where the run's settings differ from the bundle's: `(name, run, bundle)`.
fn settings_differences(run: &RunSettings, bundle: &RunSettings) -> Vec<(String, String, String)> {
    let pairs = [
        ("starting_cash", run.starting_cash, bundle.starting_cash),
        ("commission", run.commission, bundle.commission),
        ("commission_per_share", run.commission_per_share, bundle.commission_per_share),
        ("slippage", run.slippage, bundle.slippage),
        ("spread", run.spread, bundle.spread),
        ("impact", run.impact, bundle.impact),
    ];
    let mut out: Vec<(String, String, String)> = pairs
        .iter()
        .filter(|(_, a, b)| (a - b).abs() > 1e-12)
        .map(|(n, a, b)| (n.to_string(), a.to_string(), b.to_string()))
        .collect();
    if !run.fill.is_empty() && run.fill != bundle.fill {
        out.push(("fill".into(), run.fill.clone(), bundle.fill.clone()));
    }
    out
}

/// Replays the run and compares (see the module doc); journals the summary.
///
/// # Errors
/// Documents that do not load, a journal without the run or its bundle texts, bars that
/// cannot be read, a reload the replay cannot swap in.
pub fn compare(req: &DivergenceRequest) -> Result<DivergenceReport, Diagnostic> {
    let crate::runtime::journal::trading_log::BotRun { loaded, bot, journal, conn, run_id, record: row } =
        crate::runtime::journal::trading_log::open_bot_run(
            &req.manifest,
            req.journal.as_deref(),
            req.run,
            "`dsl report divergence`",
        )?;
    let bot_name = bot.name.value.clone();
    let Some(until) = row.until else {
        return Err(Diagnostic::error(
            codes::JOURNAL_CONFLICT,
            format!("run {run_id} of `{bot_name}` committed no bar yet: nothing to compare"),
        ));
    };
    let start = bundle_of(&journal, &loaded, &row.revision, &row.settings)?;
    let mut revisions =
        vec![(row.revision.clone(), row.first.map(crate::engine::market::format_utc).unwrap_or_default())];
    let mut swaps = Vec::new();
    for (ts, rev) in reload_log::accepted(&journal, run_id, until)? {
        swaps.push((ts, bundle_of(&journal, &loaded, &rev, &row.settings)?));
        revisions.push((rev, crate::engine::market::format_utc(ts)));
    }
    // The bundle's own settings: what the backtest of these documents does.
    let settings = EngineSettings {
        bot: bot_name.clone(),
        run: run_id,
        starting_cash: bot.starting_cash.value,
        costs: CostModel::from(&bot.costs),
        fill: bot.fill.value,
    };
    let differences = settings_differences(&row.settings, &RunSettings::of(&settings));
    // The same bars: the manifest's data, read with the run's CSV time options.
    let warmup_until = row.settings.warmup_until.or(row.first.map(|f| f - 1)).unwrap_or(i64::MIN);
    let data_loaded = Loaded { bundle: (*start).clone(), ..loaded.clone() };
    let market = load_for_bundle(&data_loaded, &row.settings.bars_request())?;
    let mut series = Vec::new();
    for sym in &row.symbols {
        match market.series.iter().find(|s| s.symbol == *sym) {
            Some(s) => series.push(s.clone()),
            None => {
                return Err(Diagnostic::error(
                    codes::MISSING_DATA,
                    format!("the manifest's data has no bars for `{sym}`, which run {run_id} traded"),
                ));
            }
        }
    }
    let mut engine = Engine::new(start, &row.symbols, settings);
    let mut replay = Replay { recorder: Recorder::default(), warmup_until, until, swaps, days: BTreeMap::new() };
    let mut eq = EquityTracker::new(engine.starting_cash());
    let mut feed = SeriesFeed::new(series, BarPath::Streaming);
    if let Err(e) = event_loop::run_ready(event_loop::run(&mut engine, &mut feed, &mut eq, &mut replay)) {
        return Err(Diagnostic::error(codes::RUNTIME_REFUSED, format!("the replay cannot swap a revision in: {e}")));
    }
    if row.status == "completed" {
        engine.finish(until, &mut replay.recorder);
    }
    let ours = run_orders(&conn, run_id).map_err(|e| db_err(&journal, e))?;
    let trades = run_trades(&conn, run_id).map_err(|e| db_err(&journal, e))?;
    let days = run_days(&conn, run_id).map_err(|e| db_err(&journal, e))?;
    let mut report = diff(&ours, &replay.recorder, &trades, &days, &replay.days);
    report.bot = bot_name;
    report.run = run_id;
    report.run_status = row.status;
    report.from = row.first.map(crate::engine::market::format_utc);
    report.to = Some(crate::engine::market::format_utc(until));
    report.revisions = revisions;
    report.settings = differences;
    drop(conn);
    record(&journal, &report)?;
    Ok(report)
}

fn difference(id: &str, o: &OrderSide, run: Option<&OrderSide>, backtest: Option<&OrderSide>) -> OrderDifference {
    OrderDifference {
        client_order_id: id.to_string(),
        symbol: o.symbol.clone(),
        side: o.side.clone(),
        intent: o.intent.clone(),
        time: crate::engine::market::format_utc(o.created_ts),
        run_status: run.map(|r| r.status.clone()),
        backtest_status: backtest.map(|b| b.status.clone()),
    }
}

/// Compares the run's records with the backtest's.
fn diff(
    ours: &BTreeMap<String, OrderSide>,
    replay: &Recorder,
    trades: &BTreeMap<String, (String, f64)>,
    days: &BTreeMap<i64, f64>,
    replay_days: &BTreeMap<i64, f64>,
) -> DivergenceReport {
    // The backtest's orders with a final status (still working at the end: left out).
    let theirs: BTreeMap<String, &OrderSide> = replay
        .orders
        .iter()
        .filter(|(_, o)| o.status != OrderStatus::Submitted.as_str())
        .map(|(id, o)| (id.to_string(), o))
        .collect();
    let (mut missing, mut extra, mut outcome, mut fills) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, b) in &theirs {
        match ours.get(id) {
            None => missing.push(difference(id, b, None, Some(b))),
            Some(r) if r.status != b.status => outcome.push(difference(id, r, Some(r), Some(b))),
            Some(r) if r.quantity > 0.0 && b.quantity > 0.0 => {
                let (rp, bp) = (r.notional / r.quantity, b.notional / b.quantity);
                let sign = if r.side == "sell" { -1.0 } else { 1.0 };
                fills.push(FillDifference {
                    client_order_id: id.clone(),
                    symbol: r.symbol.clone(),
                    side: r.side.clone(),
                    order_type: r.order_type.clone(),
                    run_price: rp,
                    backtest_price: bp,
                    price_bps: sign * (rp - bp) / bp * 1e4,
                    run_quantity: r.quantity,
                    backtest_quantity: b.quantity,
                    timing_secs: r.fill_ts - b.fill_ts,
                    fees: r.fees - b.fees,
                });
            }
            Some(_) => {}
        }
    }
    for (id, r) in ours {
        if !theirs.contains_key(id) {
            extra.push(difference(id, r, Some(r), None));
        }
    }
    // Oldest first (RFC 3339 times sort as text).
    for list in [&mut missing, &mut extra, &mut outcome] {
        list.sort_by(|a, b| (&a.time, &a.client_order_id).cmp(&(&b.time, &b.client_order_id)));
    }
    let replay_trades: BTreeMap<String, &Trade> =
        replay.trades.iter().map(|t| (t.entry_order_id.to_string(), t)).collect();
    let trade_diffs: Vec<TradeDifference> = trades
        .iter()
        .filter_map(|(id, (symbol, pnl))| {
            let t = replay_trades.get(id)?;
            ((pnl - t.pnl).abs() > 0.01).then(|| TradeDifference {
                entry_order_id: id.clone(),
                symbol: symbol.clone(),
                run_pnl: *pnl,
                backtest_pnl: t.pnl,
            })
        })
        .collect();
    let (mut equity_days, mut max_diff, mut max_bps) = (0, 0.0_f64, 0.0_f64);
    for (day, e) in days {
        if let Some(b) = replay_days.get(day) {
            equity_days += 1;
            let d = e - b;
            if d.abs() > max_diff.abs() {
                max_diff = d;
                max_bps = if *b != 0.0 { d / b * 1e4 } else { 0.0 };
            }
        }
    }
    let divergence_bps =
        if fills.is_empty() { 0.0 } else { fills.iter().map(|f| f.price_bps.abs()).sum::<f64>() / fills.len() as f64 };
    DivergenceReport {
        bot: String::new(),
        run: 0,
        run_status: String::new(),
        from: None,
        to: None,
        revisions: Vec::new(),
        settings: Vec::new(),
        run_orders: ours.len(),
        backtest_orders: theirs.len(),
        missing_orders: missing.len() + extra.len(),
        missing,
        extra,
        outcome,
        fills,
        trades: trade_diffs,
        run_trades: trades.len(),
        backtest_trades: replay.trades.len(),
        equity_days,
        equity_max_diff: max_diff,
        equity_max_diff_bps: max_bps,
        divergence_bps,
    }
}

/// Journals the summary of `report` (`divergence_checks`; the whole report as JSON).
fn record(journal: &Path, r: &DivergenceReport) -> Result<(), Diagnostic> {
    crate::runtime::journal::divergence_log::record(
        journal,
        &r.bot,
        r.run,
        r.divergence_bps,
        r.missing_orders as i64,
        r.fills.len() as i64,
        &serde_json::to_value(r).unwrap_or_default(),
    )
}

/// The report as text: the summary, then every difference.
pub fn human(r: &DivergenceReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "divergence of run {} of `{}` ({}) from its backtest", r.run, r.bot, r.run_status);
    let _ = writeln!(o, "  bars          {} to {}", r.from.as_deref().unwrap_or("-"), r.to.as_deref().unwrap_or("-"));
    for (rev, at) in &r.revisions {
        let _ = writeln!(o, "  bundle        {rev} from {at}");
    }
    for (name, run, bundle) in &r.settings {
        let _ = writeln!(o, "  setting       {name}: {run} in the run, {bundle} in the bundle");
    }
    let _ = writeln!(o, "  orders        {} in the run, {} in the backtest", r.run_orders, r.backtest_orders);
    let _ = writeln!(o, "  missing       {} (the backtest placed them, the run did not)", r.missing.len());
    let _ = writeln!(o, "  extra         {} (the run placed them, the backtest did not)", r.extra.len());
    let _ = writeln!(o, "  other outcome {}", r.outcome.len());
    let differing = r.fills.iter().filter(|f| f.price_bps.abs() >= 0.01 || f.timing_secs != 0 || f.fees.abs() >= 0.01);
    let _ = writeln!(
        o,
        "  fills         {} on both sides, {} differ; mean |price difference| {:.2} bps",
        r.fills.len(),
        differing.clone().count(),
        r.divergence_bps
    );
    let _ = writeln!(
        o,
        "  trades        {} in the run, {} in the backtest, {} with another pnl",
        r.run_trades,
        r.backtest_trades,
        r.trades.len()
    );
    let _ = writeln!(
        o,
        "  equity        {} days; largest closing difference {:+.2} ({:+.2} bps)",
        r.equity_days, r.equity_max_diff, r.equity_max_diff_bps
    );
    let _ = writeln!(o, "  verdict       {}", if r.identical() { "no differences" } else { "DIVERGES" });
    for d in r.missing.iter().chain(&r.extra).chain(&r.outcome) {
        let _ = writeln!(
            o,
            "  order {} {} {} {} at {}: run {}, backtest {}",
            d.client_order_id,
            d.intent,
            d.side,
            d.symbol,
            d.time,
            d.run_status.as_deref().unwrap_or("not placed"),
            d.backtest_status.as_deref().unwrap_or("not placed")
        );
    }
    for f in differing {
        let _ = writeln!(
            o,
            "  fill  {} {} {} {}: {:.4} in the run, {:.4} in the backtest ({:+.2} bps), {:+} s, fees {:+.2}",
            f.client_order_id,
            f.order_type,
            f.side,
            f.symbol,
            f.run_price,
            f.backtest_price,
            f.price_bps,
            f.timing_secs,
            f.fees
        );
    }
    for t in &r.trades {
        let _ = writeln!(
            o,
            "  trade {} {}: pnl {:.2} in the run, {:.2} in the backtest",
            t.entry_order_id, t.symbol, t.run_pnl, t.backtest_pnl
        );
    }
    o
}
