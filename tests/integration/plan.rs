//! `dsl run`'s typed plan ([`tradedsl::runtime::bot::plan`]), used the way the command uses it:
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
