//! A running bot's own evidence for its phase's demotion rules, kept in memory.
//!
//! A demotion rule that reads the bot's own kind of run (`from: paper` in a paper run, `from:
//! live` live) counts the trades, daily equity closes, fired guardrail rules and halts of the
//! run in progress. The bot checks those rules once per UTC day of bar time; reading them back
//! from the journal every day made a replay's cost grow with the square of its length (and
//! read only what the journal writer had committed by then). [`RunEvidence`] holds the same
//! records as they are journaled: loaded from the journal when a run resumes (the journal
//! stays the source after a restart), then appended to by the journal as it queues each row.
//! The gate report reads it instead of the journal for that run only; every other run (a
//! stress test's, a backtest's) is read from the journal as before.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, params};

use crate::engine::gate_metrics::TradeRecord;
use crate::engine::orders::ClientOrderId;

/// A `trades` row read as `SELECT exit_ts, pnl, pnl_pct` (`pnl_pct` is percent points; the
/// record's return is a fraction).
///
/// # Errors
/// SQLite's, for a row of another shape.
pub fn trade_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<TradeRecord> {
    Ok(TradeRecord { exit_ts: r.get(0)?, pnl: r.get(1)?, ret: r.get::<_, f64>(2)? / 100.0 })
}

/// The journaled records of one run that its demotion rules read, in journal order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunEvidence {
    /// The run (`runs.run_id`).
    pub run_id: i64,
    /// The run's starting cash (currency).
    pub starting_cash: f64,
    /// When the run started (`runs.started_ts`, UTC seconds).
    pub started_ts: i64,
    /// The run trades a live account (`runs.settings.environment` is `live`).
    pub live: bool,
    /// Bar time of the first checkpoint (UTC seconds), `runs.first_bar_ts`.
    pub first_bar: Option<i64>,
    /// Closed round trips and their strategies, in journal order (`trades`: strategy, exit
    /// time, pnl, return as a fraction).
    pub trades: Vec<(Arc<str>, TradeRecord)>,
    /// `(UTC day, last bar time, close equity)` per UTC day, oldest first (`daily_equity`).
    pub daily: Vec<(i64, i64, f64)>,
    /// Guardrail rules that fired: bar time, action, the order they judged (none for a rule
    /// checked on the account at a mark).
    pub fired: Vec<(i64, Arc<str>, Option<ClientOrderId>)>,
    /// The strategy of each order of the run.
    pub order_strategy: HashMap<ClientOrderId, Arc<str>>,
    /// Bar times of the changes of the trading state to HALTED.
    pub halts: Vec<i64>,
}

impl RunEvidence {
    /// Empty evidence of a new run.
    pub fn new(run_id: i64, starting_cash: f64) -> Self {
        RunEvidence { run_id, starting_cash, ..Default::default() }
    }

    /// The evidence of run `run_id` as committed to the journal (a resumed run).
    ///
    /// # Errors
    /// SQLite's.
    pub fn load(conn: &Connection, run_id: i64) -> rusqlite::Result<Self> {
        let (starting_cash, first_bar, started_ts, live): (Option<f64>, Option<i64>, i64, bool) = conn.query_row(
            "SELECT json_extract(settings, '$.starting_cash'), first_bar_ts, started_ts, \
             COALESCE(json_extract(settings, '$.environment'), '') = 'live' FROM runs WHERE run_id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let mut e = RunEvidence {
            run_id,
            starting_cash: starting_cash.unwrap_or(0.0),
            started_ts,
            live,
            first_bar,
            ..Default::default()
        };
        let mut st =
            conn.prepare("SELECT exit_ts, pnl, pnl_pct, strategy FROM trades WHERE run_id = ?1 ORDER BY trade_no")?;
        e.trades = st
            .query_map([run_id], |r| Ok((Arc::from(r.get::<_, String>(3)?), trade_record(r)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut st =
            conn.prepare("SELECT day, last_ts, close_equity FROM daily_equity WHERE run_id = ?1 ORDER BY day")?;
        e.daily =
            st.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
        let mut st = conn.prepare(
            "SELECT ts, action, client_order_id FROM policy_decisions WHERE run_id = ?1 AND fired = 1 ORDER BY rowid",
        )?;
        e.fired = st
            .query_map([run_id], |r| {
                let id: Option<String> = r.get(2)?;
                Ok((r.get(0)?, Arc::from(r.get::<_, String>(1)?), id.as_deref().and_then(ClientOrderId::parse)))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = conn.prepare("SELECT client_order_id, strategy FROM orders WHERE run_id = ?1")?;
        let rows = st.query_map([run_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, strategy) = row?;
            if let Some(id) = ClientOrderId::parse(&id) {
                e.order_strategy.insert(id, Arc::from(strategy));
            }
        }
        let mut st =
            conn.prepare("SELECT ts FROM state_changes WHERE run_id = ?1 AND to_state = 'HALTED' ORDER BY rowid")?;
        e.halts = st.query_map(params![run_id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(e)
    }

    /// Whether the run is the one a rule reading the newest run of `from` (a paper or live
    /// run), among those started at or after `since` and numbered above `after_run`, reads:
    /// a running bot's run is the newest of its kind in its journal (the bot's lease keeps a
    /// second one from starting beside it). `false` sends the rule to the journal.
    pub fn answers(&self, from: crate::config::phase::RunMode, since: Option<i64>, after_run: Option<i64>) -> bool {
        use crate::config::phase::RunMode;
        let kind = matches!((from, self.live), (RunMode::Paper, false) | (RunMode::Live, true));
        kind && self.started_ts >= since.unwrap_or(i64::MIN) && self.run_id > after_run.unwrap_or(0)
    }

    /// Bar time of the run's last checkpoint (UTC seconds), if it made one.
    pub fn last_bar(&self) -> Option<i64> {
        self.daily.last().map(|d| d.1)
    }

    /// A checkpoint at bar time `ts` with `equity` (currency): the day's close so far.
    pub fn checkpoint(&mut self, ts: i64, equity: f64) {
        self.first_bar.get_or_insert(ts);
        let day = ts.div_euclid(86_400);
        match self.daily.last_mut() {
            Some(d) if d.0 == day => {
                d.1 = ts;
                d.2 = equity;
            }
            _ => self.daily.push((day, ts, equity)),
        }
    }

    /// The trades of the run (of `strategy` only, when given) in the journal's reading order:
    /// by exit time, then trade number (a stable sort, linear on the usual already ordered
    /// records).
    pub fn trades_of(&self, strategy: Option<&str>) -> Vec<TradeRecord> {
        let mut out: Vec<TradeRecord> =
            self.trades.iter().filter(|(s, _)| strategy.is_none_or(|want| &**s == want)).map(|(_, t)| *t).collect();
        out.sort_by_key(|t| t.exit_ts);
        out
    }

    /// Guardrail rules that fired with `action` after `since` (UTC seconds), on orders of
    /// `strategy` only when given.
    pub fn fired_count(&self, action: &str, since: i64, strategy: Option<&str>) -> u64 {
        self.fired
            .iter()
            .filter(|(ts, a, id)| {
                *ts > since
                    && &**a == action
                    && strategy
                        .is_none_or(|s| id.and_then(|id| self.order_strategy.get(&id)).is_some_and(|o| &**o == s))
            })
            .count() as u64
    }

    /// Changes to HALTED after `since` (UTC seconds).
    pub fn halts_after(&self, since: i64) -> u64 {
        self.halts.iter().filter(|t| **t > since).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_keeps_its_last_checkpoint() {
        let mut e = RunEvidence::new(1, 1000.0);
        e.checkpoint(86_400 + 10, 1001.0);
        e.checkpoint(86_400 + 20, 1002.0);
        e.checkpoint(2 * 86_400, 999.0);
        assert_eq!(e.first_bar, Some(86_410));
        assert_eq!(e.daily, vec![(1, 86_420, 1002.0), (2, 172_800, 999.0)]);
    }

    #[test]
    fn counts_filter_by_time_action_and_strategy() {
        let mut e = RunEvidence::new(1, 1000.0);
        let id = ClientOrderId::parse("td-000000000000000000000007").unwrap();
        e.order_strategy.insert(id, Arc::from("a"));
        e.fired.push((10, Arc::from("deny"), Some(id)));
        e.fired.push((20, Arc::from("deny"), None));
        e.fired.push((30, Arc::from("halt"), None));
        assert_eq!(e.fired_count("deny", i64::MIN, None), 2);
        assert_eq!(e.fired_count("deny", 10, None), 1);
        assert_eq!(e.fired_count("deny", i64::MIN, Some("a")), 1);
        assert_eq!(e.fired_count("deny", i64::MIN, Some("b")), 0);
        assert_eq!(e.fired_count("halt", i64::MIN, None), 1);
    }

    #[test]
    fn answers_only_for_its_own_kind_and_window() {
        use crate::config::phase::RunMode;
        let mut e = RunEvidence::new(7, 1000.0);
        e.started_ts = 500;
        assert!(e.answers(RunMode::Paper, None, None));
        assert!(e.answers(RunMode::Paper, Some(500), Some(6)));
        assert!(!e.answers(RunMode::Live, None, None));
        assert!(!e.answers(RunMode::Backtest, None, None));
        assert!(!e.answers(RunMode::Stress, None, None));
        // The bot entered its phase after the run started, or after this run.
        assert!(!e.answers(RunMode::Paper, Some(501), None));
        assert!(!e.answers(RunMode::Paper, None, Some(7)));
        e.live = true;
        assert!(e.answers(RunMode::Live, None, None));
        assert!(!e.answers(RunMode::Paper, None, None));
        e.checkpoint(86_400 * 3 + 5, 1001.0);
        assert_eq!(e.last_bar(), Some(86_400 * 3 + 5));
    }

    #[test]
    fn trades_read_by_exit_time() {
        let mut e = RunEvidence::new(1, 1000.0);
        let t = |s: &str, ts| (Arc::from(s), TradeRecord { exit_ts: ts, pnl: 1.0, ret: 0.01 });
        e.trades = vec![t("a", 30), t("b", 10), t("a", 20)];
        let ts: Vec<i64> = e.trades_of(None).iter().map(|t| t.exit_ts).collect();
        assert_eq!(ts, vec![10, 20, 30]);
        assert_eq!(e.trades_of(Some("a")).len(), 2);
    }
}
