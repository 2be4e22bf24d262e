//! The SQLite journal: every run, order, fill, round-trip trade and policy decision.
//!
//! Tables (`schema_version` 1), times as RFC 3339 UTC text:
//!
//! | table | one row per |
//! | --- | --- |
//! | `runs` | run: kind, bot, bundle revision, settings, symbols, period, status, metrics (JSON) |
//! | `orders` | order: deterministic `client_order_id`, strategy, symbol, side, intent, type, prices, `time_in_force`, quantity, status and reason, bundle revision |
//! | `fills` | fill: time, quantity, price, commission, slippage cost |
//! | `trades` | round trip: entry/exit time and price, quantity, pnl, pnl %, fees, exit reason, holding bars |
//! | `policy_decisions` | policy rule applied to an order: rule id, fired, action, message, the values it saw (JSON) |
//!
//! A backtest writes its run inside one transaction: a run that fails leaves no trace, and a
//! finished run is complete.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::diagnostics::{Diagnostic, codes};
use crate::engine::events::{Decision, EventSink, OrderStatus};
use crate::engine::orders::{Fill, Order, Quantity, Trade};

use super::timeparse::format_utc;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    bot TEXT NOT NULL,
    bundle_revision TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    settings TEXT NOT NULL,
    symbols TEXT NOT NULL,
    first_bar TEXT,
    last_bar TEXT,
    metrics TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    client_order_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    intent TEXT NOT NULL,
    order_type TEXT NOT NULL,
    stop_price REAL,
    limit_price REAL,
    time_in_force TEXT NOT NULL,
    quantity REAL NOT NULL,
    quantity_kind TEXT NOT NULL,
    reference_price REAL NOT NULL,
    notional REAL NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    updated_at TEXT,
    bundle_revision TEXT NOT NULL,
    PRIMARY KEY (run_id, client_order_id)
);
CREATE TABLE IF NOT EXISTS fills (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    client_order_id TEXT NOT NULL,
    time TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity REAL NOT NULL,
    price REAL NOT NULL,
    commission REAL NOT NULL,
    slippage_cost REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trades (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    trade_no INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    entry_time TEXT NOT NULL,
    entry_price REAL NOT NULL,
    exit_time TEXT NOT NULL,
    exit_price REAL NOT NULL,
    quantity REAL NOT NULL,
    pnl REAL NOT NULL,
    pnl_pct REAL NOT NULL,
    fees REAL NOT NULL,
    exit_reason TEXT NOT NULL,
    holding_bars INTEGER NOT NULL,
    entry_order_id TEXT NOT NULL,
    exit_order_id TEXT NOT NULL,
    PRIMARY KEY (run_id, trade_no)
);
CREATE TABLE IF NOT EXISTS policy_decisions (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    client_order_id TEXT NOT NULL,
    time TEXT NOT NULL,
    policy TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    fired INTEGER NOT NULL,
    action TEXT NOT NULL,
    message TEXT NOT NULL,
    seen_values TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_by_order ON fills (run_id, client_order_id);
CREATE INDEX IF NOT EXISTS decisions_by_order ON policy_decisions (run_id, client_order_id);
";

/// Facts about a run, written when it starts.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `backtest` for now.
    pub kind: String,
    /// Bot name.
    pub bot: String,
    /// Bundle revision.
    pub bundle_revision: String,
    /// Settings as JSON.
    pub settings: serde_json::Value,
    /// Symbols traded.
    pub symbols: Vec<String>,
}

/// An open journal with a run in progress. Implements [`EventSink`].
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    run_id: i64,
    revision: String,
    trade_no: i64,
    error: Option<rusqlite::Error>,
}

fn db_err(path: &Path, e: rusqlite::Error) -> Diagnostic {
    Diagnostic::error(codes::IO, format!("journal `{}`: {e}", path.display()))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and starts a run in a transaction.
    ///
    /// # Errors
    /// When the file cannot be opened or the schema cannot be created.
    pub fn begin(path: &Path, info: &RunInfo) -> Result<Journal, Diagnostic> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Diagnostic::error(codes::IO, format!("cannot create `{}`: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_err(path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db_err(path, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| db_err(path, e))?;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| db_err(path, e))?;
        conn.execute(
            "INSERT INTO runs (kind, bot, bundle_revision, started_at, status, settings, symbols) \
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
            params![
                info.kind,
                info.bot,
                info.bundle_revision,
                now(),
                info.settings.to_string(),
                serde_json::to_string(&info.symbols).unwrap_or_default()
            ],
        )
        .map_err(|e| db_err(path, e))?;
        let run_id = conn.last_insert_rowid();
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
            run_id,
            revision: info.bundle_revision.clone(),
            trade_no: 0,
            error: None,
        })
    }

    /// The run's id.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    fn record(&mut self, r: rusqlite::Result<usize>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// Writes the run's end (period and metrics) and commits everything.
    ///
    /// # Errors
    /// The first write error of the run, or a commit failure; then the run is rolled back.
    pub fn finish(
        mut self,
        first: Option<i64>,
        last: Option<i64>,
        metrics: &serde_json::Value,
    ) -> Result<i64, Diagnostic> {
        let r = self.conn.execute(
            "UPDATE runs SET finished_at = ?1, status = 'completed', first_bar = ?2, last_bar = ?3, metrics = ?4 \
             WHERE run_id = ?5",
            params![now(), first.map(format_utc), last.map(format_utc), metrics.to_string(), self.run_id],
        );
        self.record(r);
        if let Some(e) = self.error.take() {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(db_err(&self.path, e));
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| db_err(&self.path, e))?;
        Ok(self.run_id)
    }
}

impl EventSink for Journal {
    fn order(
        &mut self,
        o: &Order,
        strategy: &str,
        symbol: &str,
        status: OrderStatus,
        reason: &str,
    ) {
        let (stop, limit) = match o.order_type {
            crate::engine::orders::OrderType::Stop(p) => (Some(p), None),
            crate::engine::orders::OrderType::Limit(p) => (None, Some(p)),
            crate::engine::orders::OrderType::Market => (None, None),
        };
        let kind = match o.quantity {
            Quantity::Units(_) => "units",
            Quantity::AllCash => "all_cash",
            Quantity::ClosePosition => "close_position",
        };
        let created = format_utc(o.created_ts);
        let r = self
            .conn
            .prepare_cached(
                "INSERT INTO orders (run_id, client_order_id, created_at, strategy, symbol, side, intent, order_type, \
                 stop_price, limit_price, time_in_force, quantity, quantity_kind, reference_price, notional, reason, \
                 status, status_reason, updated_at, bundle_revision) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?3, ?19)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.run_id,
                    o.client_order_id,
                    created,
                    strategy,
                    symbol,
                    o.side.as_str(),
                    o.intent.as_str(),
                    o.order_type.as_str(),
                    stop,
                    limit,
                    o.time_in_force.as_str(),
                    o.estimated_units,
                    kind,
                    o.reference_price,
                    o.notional(),
                    o.reason.as_str(),
                    status.as_str(),
                    (!reason.is_empty()).then_some(reason),
                    self.revision,
                ])
            });
        self.record(r);
    }

    fn order_status(&mut self, id: &str, status: OrderStatus, ts: i64, reason: &str) {
        let r = self
            .conn
            .prepare_cached(
                "UPDATE orders SET status = ?1, status_reason = ?2, updated_at = ?3 WHERE run_id = ?4 AND client_order_id = ?5",
            )
            .and_then(|mut st| {
                st.execute(params![status.as_str(), (!reason.is_empty()).then_some(reason), format_utc(ts), self.run_id, id])
            });
        self.record(r);
    }

    fn fill(&mut self, f: &Fill, o: &Order, symbol: &str) {
        let r = self
            .conn
            .prepare_cached(
                "INSERT INTO fills (run_id, client_order_id, time, symbol, side, quantity, price, commission, slippage_cost) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.run_id,
                    f.client_order_id,
                    format_utc(f.ts),
                    symbol,
                    o.side.as_str(),
                    f.quantity,
                    f.price,
                    f.commission,
                    f.slippage_cost
                ])
            });
        self.record(r);
    }

    fn trade(&mut self, t: &Trade) {
        self.trade_no += 1;
        let r = self
            .conn
            .prepare_cached(
                "INSERT INTO trades (run_id, trade_no, strategy, symbol, entry_time, entry_price, exit_time, exit_price, \
                 quantity, pnl, pnl_pct, fees, exit_reason, holding_bars, entry_order_id, exit_order_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.run_id,
                    self.trade_no,
                    t.strategy,
                    t.symbol,
                    format_utc(t.entry_time),
                    t.entry_price,
                    format_utc(t.exit_time),
                    t.exit_price,
                    t.quantity,
                    t.pnl,
                    t.pnl_pct,
                    t.fees,
                    t.exit_reason,
                    t.holding_bars as i64,
                    t.entry_order_id,
                    t.exit_order_id
                ])
            });
        self.record(r);
    }

    fn decision(&mut self, d: &Decision<'_>) {
        let seen: serde_json::Map<String, serde_json::Value> = d
            .values
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if v.is_finite() {
                        serde_json::json!(v)
                    } else {
                        serde_json::Value::Null
                    },
                )
            })
            .collect();
        let r = self
            .conn
            .prepare_cached(
                "INSERT INTO policy_decisions (run_id, client_order_id, time, policy, rule_id, fired, action, message, seen_values) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    self.run_id,
                    d.order.client_order_id,
                    format_utc(d.order.created_ts),
                    d.policy,
                    d.rule_id,
                    d.fired,
                    d.action,
                    d.message,
                    serde_json::Value::Object(seen).to_string()
                ])
            });
        self.record(r);
    }
}
