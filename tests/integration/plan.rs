//! The typed plans of `dsl run` ([`tradedsl::runtime::bot::plan`]) and `dsl backtest`
//! ([`tradedsl::runtime::research::backtest`]), used the way the commands use them:
//! the checks of a start refuse what they must before anything trades, and a prepared plan
//! runs the bot to the same end as the command.

use std::path::PathBuf;

use tradedsl::runtime::bot::plan::{FeedRequest, LoadedBot, RunRequest};
use tradedsl::runtime::library::source::DataRequest;

fn request(manifest: &str, journal: PathBuf) -> RunRequest {
    RunRequest {
        manifest: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(manifest),
        journal: Some(journal),
        bars: DataRequest::default(),
        feed: FeedRequest::Replay { speed: None },
        fresh: false,
        watch: None,
        confirm_live: None,
        max_order_age: None,
        switchover: false,
        metrics: None,
        commission: None,
        slippage: None,
    }
}

#[test]
fn a_start_refuses_a_strategy_manifest_and_a_journal_held_by_another_bot() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite");
    let err = LoadedBot::load(request("strategies/sma_crossover.yaml", journal.clone()))
        .map_err(|d| d[0].message.clone())
        .unwrap()
        .prepare()
        .err()
        .expect("a strategy is not a bot");
    assert!(err.message.contains("runs a bot manifest"), "{}", err.message);

    let first = LoadedBot::load(request("examples/bot.yaml", journal.clone())).unwrap().prepare().unwrap();
    let second = LoadedBot::load(request("examples/bot.yaml", journal.clone())).unwrap().prepare();
    let err = second.err().expect("the journal's lease is held by the first plan");
    assert!(err.message.contains("journal") || err.message.contains("lock"), "{}", err.message);
    drop(first);
    // The lease goes with the plan: a new start may take it.
    assert!(LoadedBot::load(request("examples/bot.yaml", journal)).unwrap().prepare().is_ok());
}

#[test]
fn a_prepared_plan_runs_the_bot_to_the_end_of_its_bars() {
    let dir = tempfile::tempdir().unwrap();
    let plan = LoadedBot::load(request("examples/bot.yaml", dir.path().join("j.sqlite"))).unwrap().prepare().unwrap();
    assert!(!plan.bot().is_empty());
    let outcome = plan.start().unwrap();
    assert!(outcome.completed);
    assert!(outcome.timestamps > 1_000, "five years of daily bars: {}", outcome.timestamps);
    assert!(outcome.stats.orders_filled > 0);
}

mod backtest {
    use std::path::PathBuf;

    use tradedsl::config::manifest::FillTiming;
    use tradedsl::runtime::library::source::DataRequest;
    use tradedsl::runtime::research::backtest::{BacktestPlan, BacktestRequest, JournalChoice};

    fn request(journal: JournalChoice) -> BacktestRequest {
        BacktestRequest {
            manifest: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/reference.yaml"),
            data: DataRequest::default(),
            cash: Some(50_000.0),
            commission: None,
            slippage: None,
            fill: Some(FillTiming::Close),
            journal,
        }
    }

    #[test]
    fn the_request_overrides_the_manifest_and_runs_share_one_load_of_the_bars() {
        let plan = BacktestPlan::load(request(JournalChoice::Off)).unwrap();
        assert_eq!(plan.settings().starting_cash, 50_000.0);
        assert_eq!(plan.settings().fill, FillTiming::Close);
        // The manifest's commission (0.1%) stands where the request says nothing.
        assert!((plan.settings().costs.commission - 0.001).abs() < 1e-12);
        assert_eq!(plan.journal_path(), None);
        let market = plan.market().unwrap();
        let (a, b) = (plan.run(&market).unwrap(), plan.run(&market).unwrap());
        assert!(a.output.metrics.trade_count > 0);
        assert_eq!(a.output.trades, b.output.trades);
        assert_eq!(a.context.run_id, None);
    }

    #[test]
    fn a_journaled_run_gets_its_run_id_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.sqlite");
        let plan = BacktestPlan::load(request(JournalChoice::At(db.clone()))).unwrap();
        let run = plan.run(&plan.market().unwrap()).unwrap();
        assert_eq!(run.journal.as_deref(), Some(db.as_path()));
        let id = run.context.run_id.expect("journaled");
        let c = rusqlite::Connection::open(&db).unwrap();
        let (kind, cash): (String, f64) = c
            .query_row(
                "SELECT kind, json_extract(settings, '$.starting_cash') FROM runs WHERE run_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((kind.as_str(), cash), ("backtest", 50_000.0));
        let trades: i64 = c.query_row("SELECT COUNT(*) FROM trades WHERE run_id = ?1", [id], |r| r.get(0)).unwrap();
        assert_eq!(trades as usize, run.output.trades.len());
    }
}

/// A sink that discards decisions (the engine then skips building their seen values) trades
/// exactly like one that keeps them.
#[test]
fn skipping_decision_details_changes_no_trade() {
    use tradedsl::engine::backtest;
    use tradedsl::engine::events::{Decision, EventSink, NullSink};
    use tradedsl::runtime::research::backtest::{BacktestPlan, BacktestRequest, JournalChoice};

    #[derive(Default)]
    struct Counting(usize);
    impl EventSink for Counting {
        fn decision(&mut self, d: &Decision<'_>) {
            assert!(!d.policy.is_empty());
            self.0 += 1;
        }
    }
    let plan = BacktestPlan::load(BacktestRequest {
        manifest: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/bot.yaml"),
        data: DataRequest::default(),
        cash: None,
        commission: None,
        slippage: None,
        fill: None,
        journal: JournalChoice::Off,
    })
    .unwrap();
    let market = plan.market().unwrap();
    let run = |sink: &mut dyn EventSink| {
        backtest::run_from(plan.bundle().clone(), &market.series, plan.settings().clone(), market.trade_from, sink)
    };
    let mut counting = Counting::default();
    let (kept, discarded) = (run(&mut counting), run(&mut NullSink));
    assert!(counting.0 > 100, "the example bot's policies judge every order: {}", counting.0);
    assert_eq!(kept.trades, discarded.trades);
    assert_eq!(kept.metrics, discarded.metrics);
    assert_eq!(kept.stats, discarded.stats);
}

mod stress {
    use std::path::PathBuf;

    use tradedsl::runtime::research::backtest::JournalChoice;
    use tradedsl::runtime::research::stress::{StressPlan, StressRequest};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn a_scenario_on_a_symbol_without_data_is_refused_before_any_run() {
        let dir = tempfile::tempdir().unwrap();
        let scenarios = dir.path().join("s.yaml");
        std::fs::write(
            &scenarios,
            "kind: stress\nname: t\nmax_drawdown: 20%\nscenarios:\n  - name: c\n    crash: 50%\n    symbols: [TSLA]\n",
        )
        .unwrap();
        let db = dir.path().join("j.sqlite");
        let diags = StressPlan::load(StressRequest {
            manifest: root().join("examples/bot.yaml"),
            scenarios,
            journal: JournalChoice::At(db.clone()),
        })
        .err()
        .expect("TSLA has no data");
        assert!(diags.iter().any(|d| d.message.contains("no data for `TSLA`") && d.span.is_some()), "{diags:?}");
        assert!(!db.exists(), "nothing was journaled");
    }

    #[test]
    fn the_baseline_runs_first_then_every_scenario_in_file_order() {
        let plan = StressPlan::load(StressRequest {
            manifest: root().join("examples/bot.yaml"),
            scenarios: root().join("examples/stress.yaml"),
            journal: JournalChoice::Off,
        })
        .unwrap();
        let outcomes = plan.run().unwrap();
        let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
        let expected: Vec<&str> =
            std::iter::once("baseline").chain(plan.doc().scenarios.iter().map(|s| s.name.value.as_str())).collect();
        assert_eq!(names, expected);
        assert!(outcomes[0].result.metrics.trade_count > 0);
    }
}
