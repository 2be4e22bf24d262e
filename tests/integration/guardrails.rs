//! Policy actions and the trading state on real bars (GOOG 2004–2013 with the reference SMA
//! crossover, all cash): a drawdown breaker that trips on unrealized losses, halts that block
//! every new order (exits included) or flatten, `reduce` that lets only exits through, `warn`
//! that only journals, and `require_approval` denied on timeout. Each asserts the action, the
//! reason code and the journal records.

use std::path::Path;

use rusqlite::Connection;

use crate::common::{count, data, dsl, rows};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs the reference strategy on GOOG with `policy` (the rules of a policy document) and
/// returns the report and the journal.
fn run(dir: &Path, rules: &str) -> (String, Connection) {
    std::fs::write(dir.join("policy.yaml"), format!("kind: policy\nname: guard\nrules:\n{rules}")).unwrap();
    std::fs::write(
        dir.join("bot.yaml"),
        format!(
            "kind: bot\nname: guarded\nstrategies: [{ROOT}/strategies/sma_crossover.yaml]\npolicies: [policy.yaml]\n\
             data:\n  csv:\n    GOOG: {}\nstarting_cash: 100000\ncosts: {{commission: 0.1%, slippage: 0bps}}\n\
             database: journal.sqlite\n",
            data("GOOG.csv").display()
        ),
    )
    .unwrap();
    let out = dsl().current_dir(dir).args(["backtest", "bot.yaml"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (stdout, Connection::open(dir.join("journal.sqlite")).unwrap())
}

const BREAKER: &str = "  - id: drawdown_breaker
    when: account.drawdown > 2%
    action: halt
    message: drawdown from the peak above 2%
";

/// The first position (all cash, from 2004-12-21) falls more than 2% below the equity peak
/// while it is still open: the breaker trips on equity, with no trade closed and no order in
/// flight, and from then on no order passes, not even the strategy's exit.
#[test]
fn the_drawdown_breaker_trips_on_unrealized_losses_and_halts_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (report, c) = run(dir.path(), BREAKER);
    let changes = rows(&c, "SELECT time, from_state, to_state, reason, message FROM v_state_changes");
    assert_eq!(changes.len(), 1, "{changes:?}");
    let ch = &changes[0];
    assert_eq!((&*ch[1], &*ch[2], &*ch[3]), ("ACTIVE", "HALTED", "guard/drawdown_breaker"), "{ch:?}");
    // No trade had closed when it tripped: the loss was unrealized.
    assert_eq!(count(&c, "SELECT COUNT(*) FROM trades"), 0);
    let first_fill: String = c.query_row("SELECT MIN(time) FROM v_fills", [], |r| r.get(0)).unwrap();
    assert!(ch[0] > first_fill, "{ch:?} after {first_fill}");
    // It tripped on a mark, not while judging an order: none was created at that time.
    let at_trip = count(&c, &format!("SELECT COUNT(*) FROM v_orders WHERE created_at = '{}'", ch[0]));
    assert_eq!(at_trip, 0, "{ch:?}");
    // Every later order, the exit rule's included, was refused because of the halt.
    let after: Vec<Vec<String>> = rows(
        &c,
        &format!(
            "SELECT status, status_reason, intent FROM v_orders WHERE created_at >= '{}' ORDER BY order_no",
            ch[0]
        ),
    );
    assert!(!after.is_empty());
    assert!(after.iter().all(|o| o[0] == "rejected" && o[1].starts_with("halted since ")), "{after:?}");
    assert!(after.iter().any(|o| o[2] == "exit"), "{after:?}");
    assert!(report.contains("ACTIVE -> HALTED by guard/drawdown_breaker"), "{report}");
    assert!(report.contains("open          sma_crossover GOOG"), "{report}");
}

#[test]
fn a_halt_with_flatten_closes_every_position() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = run(dir.path(), &BREAKER.replace("action: halt", "action: halt\n    flatten: true"));
    let trades = rows(&c, "SELECT exit_reason FROM v_trades");
    assert_eq!(trades, vec![vec!["flatten".to_string()]]);
    assert_eq!(count(&c, "SELECT COUNT(*) FROM orders WHERE status = 'filled' AND reason = 'flatten'"), 1);
    // Nothing was bought again.
    assert_eq!(count(&c, "SELECT COUNT(*) FROM orders WHERE status = 'filled' AND intent = 'entry'"), 1);
}

/// REDUCING lets exits through and refuses entries.
#[test]
fn reduce_lets_only_orders_that_lower_exposure_through() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = run(dir.path(), &BREAKER.replace("action: halt", "action: reduce"));
    let to: String = c.query_row("SELECT to_state FROM state_changes", [], |r| r.get(0)).unwrap();
    assert_eq!(to, "REDUCING");
    // The open position was closed by the strategy's exit; no entry passed afterwards.
    assert_eq!(rows(&c, "SELECT exit_reason FROM v_trades"), vec![vec!["exit_rule".to_string()]]);
    let refused = rows(&c, "SELECT DISTINCT intent FROM orders WHERE status = 'rejected'");
    assert_eq!(refused, vec![vec!["entry".to_string()]]);
}

/// A `reduce` rule that reads the order decides per order: entries are refused and the state
/// moves to REDUCING, exits pass.
#[test]
fn a_reduce_rule_on_orders_moves_the_state_and_passes_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = run(
        dir.path(),
        "  - id: no_big_orders
    when: order.notional > 50% * account.equity
    action: reduce
    message: orders above half the equity
",
    );
    let change = rows(&c, "SELECT from_state, to_state, reason FROM state_changes");
    assert_eq!(change, vec![vec!["ACTIVE".to_string(), "REDUCING".into(), "guard/no_big_orders".into()]]);
    let first = rows(&c, "SELECT status, status_reason FROM v_orders ORDER BY order_no LIMIT 1");
    assert!(first[0][1].starts_with("reducing by guard/no_big_orders"), "{first:?}");
    assert_eq!(count(&c, "SELECT COUNT(*) FROM fills"), 0);
}

#[test]
fn warn_rules_are_journaled_and_the_orders_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (report, c) = run(
        dir.path(),
        "  - id: big_entry
    when: order.intent == \"entry\" and order.notional > 50% * account.equity
    action: warn
    message: a large entry
",
    );
    let warned = count(&c, "SELECT COUNT(*) FROM policy_decisions WHERE action = 'warn' AND fired = 1");
    let entries = count(&c, "SELECT COUNT(*) FROM orders WHERE intent = 'entry'");
    assert!(warned > 0 && warned == entries, "{warned} of {entries}");
    assert_eq!(count(&c, "SELECT COUNT(*) FROM orders WHERE status = 'rejected'"), 0);
    assert!(report.contains(&format!("warned        {warned} by guard/big_entry")), "{report}");
    assert_eq!(count(&c, "SELECT COUNT(*) FROM state_changes"), 0);
}

#[test]
fn require_approval_without_an_approver_is_denied_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (report, c) = run(
        dir.path(),
        "  - id: large_notional
    when: order.intent == \"entry\" and order.notional > 10000
    action: require_approval
    expires_after: 30m
    message: entries above 10000 need a person's approval
",
    );
    let rejected = rows(&c, "SELECT DISTINCT status_reason FROM orders WHERE status = 'rejected'");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0][0],
        "approval required by guard/large_notional: entries above 10000 need a person's approval; \
         no approval within 30 min: denied on timeout"
    );
    assert_eq!(count(&c, "SELECT COUNT(*) FROM fills"), 0);
    assert!(report.contains("orders needed an approval; none came in time"), "{report}");
}

/// A state with `reset: next_day` re-arms at the next UTC day and trips again while the
/// condition still holds; each change is journaled with its reason code.
#[test]
fn a_next_day_reset_re_arms_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = run(dir.path(), &BREAKER.replace("action: halt", "action: halt\n    reset: next_day"));
    let changes = rows(&c, "SELECT from_state, to_state, reason FROM state_changes ORDER BY rowid LIMIT 3");
    assert_eq!(changes[0][2], "guard/drawdown_breaker");
    assert_eq!((&*changes[1][0], &*changes[1][1], &*changes[1][2]), ("HALTED", "ACTIVE", "reset:next_day"));
    assert_eq!(changes[2][1], "HALTED");
}

/// The README's walkthrough, step by step: write a daily-loss guardrail, `dsl test` it, see it
/// fire in a backtest on the shipped GOOG data, with the figures the README quotes.
#[test]
fn the_readme_walkthrough_works_as_written() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme.find("## Walkthrough: a guardrail").unwrap();
    let section = &readme[start..readme[start..].find("## The rule language").unwrap() + start];
    // The three YAML blocks of the section, unindented.
    let blocks: Vec<String> = section
        .split("```yaml\n")
        .skip(1)
        .map(|b| b[..b.find("```").unwrap()].lines().map(|l| l.get(3..).unwrap_or("")).collect::<Vec<_>>().join("\n"))
        .collect();
    assert_eq!(blocks.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::create_dir_all(d.join("strategies")).unwrap();
    std::fs::create_dir_all(d.join("examples/data")).unwrap();
    std::fs::copy(Path::new(ROOT).join("strategies/sma_crossover.yaml"), d.join("strategies/sma_crossover.yaml"))
        .unwrap();
    std::fs::copy(Path::new(ROOT).join("examples/data/GOOG.csv"), d.join("examples/data/GOOG.csv")).unwrap();
    std::fs::write(d.join("policies/daily_loss.yaml"), &blocks[0]).unwrap();
    std::fs::write(d.join("policies/daily_loss.test.yaml"), &blocks[1]).unwrap();
    std::fs::write(d.join("goog.yaml"), &blocks[2]).unwrap();
    dsl().current_dir(d).args(["validate", "policies", "goog.yaml"]).assert().success();
    let t = dsl().current_dir(d).args(["test", "policies/daily_loss.test.yaml"]).output().unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stdout));
    let out = dsl().current_dir(d).args(["backtest", "goog.yaml"]).output().unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    for quoted in [
        "2004-12-31T00:00:00Z ACTIVE -> REDUCING by daily_loss/daily_loss_limit",
        "2005-01-03T00:00:00Z REDUCING -> ACTIVE by reset:next_day",
        "... 246 state changes in all",
        "0 rejected",
    ] {
        assert!(report.contains(quoted), "README quotes `{quoted}`:\n{report}");
    }
    assert!(!report.contains("denied"), "every exit went through:\n{report}");
    let c = Connection::open(d.join("journal.sqlite")).unwrap();
    assert!(count(&c, "SELECT COUNT(*) FROM v_policy_decisions WHERE fired") >= 100);
    let dd = |report: &str| -> f64 {
        let line = report.lines().find(|l| l.trim_start().starts_with("max drawdown")).unwrap();
        line.split_whitespace().last().unwrap().trim_end_matches('%').parse().unwrap()
    };
    assert_eq!(dd(&report), 29.72);
    // What the README says `action: halt` would have done.
    let halting = blocks[0].replace("action: reduce", "action: halt");
    std::fs::write(d.join("policies/daily_loss.yaml"), halting).unwrap();
    let out = dsl().current_dir(d).args(["backtest", "goog.yaml", "--no-journal"]).output().unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report
            .contains("denied        6 by daily_loss/daily_loss_limit (6 of them exits: their positions stayed open)"),
        "{report}"
    );
    assert_eq!(dd(&report), 62.3);
}
