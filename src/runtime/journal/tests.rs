use super::*;
use crate::engine::events::{Decision, EventSink, OrderStatus};
use crate::engine::orders::{Intent, OrderReason, Side, TimeInForce, client_order_id};
use crate::engine::orders::{Order, OrderType, Quantity, Trade};

fn order(id: ClientOrderId) -> Order {
    Order {
        client_order_id: id,
        slot: 0,
        strategy: 0,
        symbol: 0,
        side: Side::Buy,
        intent: Intent::Entry,
        order_type: OrderType::Market,
        time_in_force: TimeInForce::Day,
        quantity: Quantity::Units(2.0),
        estimated_units: 2.0,
        reference_price: 10.0,
        created_ts: 86_400,
        reason: OrderReason::EntryRule,
        expected_return: f64::NAN,
        group: None,
    }
}

fn info() -> RunInfo {
    RunInfo {
        kind: "backtest".into(),
        bot: "b".into(),
        bundle_revision: "rev".into(),
        settings: serde_json::json!({}),
        symbols: vec!["X".into()],
    }
}

#[test]
fn writes_a_complete_run_and_readable_views() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    let (a, b) = (client_order_id("b", "s", "X", 0, 0), client_order_id("b", "s", "X", 0, 1));
    let mut j = Journal::begin(&db, &info()).unwrap();
    j.order(&order(a), "s", "X", OrderStatus::Submitted, "");
    j.order_status(a, OrderStatus::Filled, 172_800, "");
    j.order(&order(b), "s", "X", OrderStatus::Rejected, "denied by p/r: too big");
    let id = j.finish(Some(0), Some(86_400), &serde_json::json!({"x": 1})).unwrap();
    let c = Connection::open(&db).unwrap();
    let rows: Vec<(String, String, String)> = c
        .prepare("SELECT client_order_id, status, updated_at FROM v_orders WHERE run_id = ?1 ORDER BY order_no")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows[0], (a.to_string(), "filled".into(), "1970-01-03T00:00:00Z".into()));
    assert_eq!(rows[1].1, "rejected");
    let status: String = c.query_row("SELECT status FROM runs WHERE run_id = ?1", [id], |r| r.get(0)).unwrap();
    assert_eq!(status, "completed");
}

/// The evidence a running bot keeps in memory is what the journal holds of the run.
#[test]
fn kept_evidence_equals_the_journaled_run() {
    use crate::engine::events::Seen;
    use crate::engine::trading_state::{StateChange, TradingState};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    let info = RunInfo { kind: "paper".into(), settings: serde_json::json!({"starting_cash": 1000.0}), ..info() };
    let mut j = Journal::begin(&db, &info).unwrap();
    j.keep_evidence(1000.0, false, false).unwrap();
    let (a, b) = (client_order_id("b", "s", "X", 0, 0), client_order_id("b", "t", "X", 0, 1));
    j.order(&order(a), "s", "X", OrderStatus::Submitted, "");
    j.order_status(a, OrderStatus::Filled, 86_400, "");
    j.order(&order(b), "t", "X", OrderStatus::Rejected, "denied");
    let values = [("order.notional".to_string(), Seen::Number(20.0))];
    for (order, fired, action) in [(Some(&order(b)), true, "deny"), (None, true, "halt"), (None, false, "pass")] {
        let d = Decision { order, ts: 86_400, policy: "p", rule_id: "r", fired, action, message: "m", values: &values };
        j.decision(&d);
    }
    j.state_change(&StateChange {
        ts: 86_400,
        from: TradingState::Active,
        to: TradingState::Halted,
        reason: "p/r".into(),
        message: "m".into(),
        reset: crate::config::policy::Reset::Manual,
    });
    let trade = |exit: i64, pnl: f64| Trade {
        strategy: Arc::from("s"),
        symbol: Arc::from("X"),
        entry_time: 86_400,
        entry_price: 10.0,
        exit_time: exit,
        exit_price: 10.0 + pnl / 2.0,
        quantity: 2.0,
        pnl,
        pnl_pct: pnl / 20.0 * 100.0,
        fees: 0.0,
        exit_reason: "exit_rule",
        holding_bars: 1,
        entry_order_id: a,
        exit_order_id: a,
    };
    j.trade(&trade(172_800, 2.0));
    j.trade(&trade(172_700, -1.0));
    for (ts, equity) in [(86_400, 1000.0), (90_000, 1001.0), (172_800, 1003.0)] {
        let positions = serde_json::json!([]);
        let state = "HALTED".to_string();
        j.checkpoint(Checkpoint { ts, cash: equity, equity, peak_equity: equity, state, positions });
    }
    let kept = j.evidence().cloned().unwrap();
    let id = j.run_id();
    j.close().unwrap();
    let c = open_read(&db).unwrap();
    let loaded = crate::runtime::journal::run_evidence::RunEvidence::load(&c, id).unwrap();
    assert_eq!(kept, loaded);
    assert_eq!(kept.daily, vec![(1, 90_000, 1001.0), (2, 172_800, 1003.0)]);
    assert_eq!((kept.fired.len(), kept.halts.len(), kept.trades.len()), (2, 1, 2));
    assert_eq!(kept.fired_count("deny", i64::MIN, Some("t")), 1);
}

#[test]
fn an_unfinished_run_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    {
        let mut j = Journal::begin(&db, &info()).unwrap();
        j.order(&order(client_order_id("b", "s", "X", 0, 0)), "s", "X", OrderStatus::Rejected, "x");
        // dropped without finish: the transaction is rolled back
    }
    let c = Connection::open(&db).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0);
}

/// A checkpoint that shares its commit window with none after it is still committed, once
/// the window ends, without any further row (a live bot between bars); a sync commits at once.
#[test]
fn a_lone_checkpoint_commits_when_its_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.sqlite");
    let info = RunInfo { kind: "paper".into(), ..info() };
    let mut j = Journal::begin(&db, &info).unwrap();
    j.commit();
    j.sync().unwrap();
    let committed =
        |c: &Connection| -> i64 { c.query_row("SELECT COUNT(*) FROM run_status", [], |r| r.get(0)).unwrap_or(0) };
    let c = open_read(&db).unwrap();
    let checkpoint = |ts: i64| Checkpoint {
        ts,
        cash: 1.0,
        equity: 1.0,
        peak_equity: 1.0,
        state: "ACTIVE".into(),
        positions: serde_json::json!([]),
    };
    // Two checkpoints in quick succession: the second may wait for its window.
    j.checkpoint(checkpoint(86_400));
    j.checkpoint(checkpoint(86_460));
    // Wait for the row, not for a time: the writer's timer commits it.
    let seen = (0..20_000).any(|_| {
        let done = c.query_row("SELECT MAX(last_bar_ts) FROM runs", [], |r| r.get::<_, Option<i64>>(0)).ok().flatten()
            == Some(86_460);
        if !done {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        done
    });
    assert!(seen, "the last checkpoint was never committed");
    assert!(committed(&c) >= 1);
    j.checkpoint(checkpoint(86_520));
    j.sync().unwrap();
    let last: Option<i64> = c.query_row("SELECT MAX(last_bar_ts) FROM runs", [], |r| r.get(0)).unwrap();
    assert_eq!(last, Some(86_520), "a sync commits the checkpoint before it at once");
    j.close().unwrap();
}
