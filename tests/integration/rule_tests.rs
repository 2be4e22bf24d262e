//! `dsl test`: the shipped fixtures pass, wrong expectations fail with an explanation, and
//! broken fixtures are reported like any other document error.

use std::path::Path;

use crate::common::dsl;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Writes a test file into a fresh directory and runs `dsl test` on it.
fn run_fixture(text: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = text.replace("$ROOT", &root().display().to_string());
    std::fs::write(dir.path().join("case.test.yaml"), text).unwrap();
    let out = dsl().current_dir(dir.path()).arg("test").arg("case.test.yaml").args(extra).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn the_shipped_fixtures_pass() {
    let out = dsl().arg("test").output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // Every shipped strategy and policy has fixtures, and every fixture file ran.
    let mut shipped = 0;
    for dir in ["strategies", "policies"] {
        for entry in std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(stem) = name.strip_suffix(".yaml").filter(|s| !s.ends_with(".test")) {
                assert!(stdout.contains(&format!("{dir}/{stem}.test.yaml")), "no fixtures for {dir}/{name}\n{stdout}");
                shipped += 1;
            }
        }
    }
    let summary = stdout.lines().last().unwrap();
    assert!(summary.starts_with(&format!("ok: {shipped} file(s), ")), "{summary}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn a_wrong_expectation_fails_and_shows_why() {
    let (code, stdout, _) = run_fixture(
        "kind: test
policy: $ROOT/policies/always_on_caps.yaml
cases:
  - name: a 6% entry
    account: { equity: 100000, exposure: 0 }
    position: { quantity: 0 }
    order: { intent: entry, side: buy, quantity: 60, price: 100 }
    expect: allow
  - name: a 4% entry
    account: { equity: 100000, exposure: 0 }
    position: { quantity: 0 }
    order: { intent: entry, side: buy, quantity: 40, price: 100, stop_loss: 3% }
    expect: allow
",
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL a 6% entry (line 4)"), "{stdout}");
    assert!(stdout.contains("ok   a 4% entry (line 9)"), "{stdout}");
    assert!(stdout.contains("expected: allow"), "{stdout}");
    assert!(stdout.contains("got:      deny by `max_trade_notional`"), "{stdout}");
    // The deciding rule's tree, with the derived notional and the cap.
    assert!(stdout.contains("├─ order.notional = 6000"), "{stdout}");
    assert!(stdout.contains("└─ 5% * account.equity = 5000"), "{stdout}");
    assert!(stdout.contains("FAILED: 1 file(s), 2 case(s): 1 passed, 1 failed"), "{stdout}");
}

#[test]
fn strategy_cases_use_real_bars_pins_and_protective_orders() {
    let (code, stdout, stderr) = run_fixture(
        "kind: test
strategy: $ROOT/strategies/rsi_reversion.yaml
cases:
  - name: real history
    data: { csv: $ROOT/examples/data/AAPL.csv, at: 2015-07-09 }
    expect: entry
  - name: pinned below the trend
    values: { \"rsi(close, rsi_period)\": 25, close: 130, \"sma(close, trend)\": 140 }
    expect: entry
  - name: through the stop
    bars: [{ open: 99, high: 100, low: 96.5, close: 98 }]
    position: { quantity: 10, entry_price: 100, bars_held: 2 }
    expect: { exit: exit_rule }
",
        &[],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("ok   real history"), "{stdout}");
    assert!(stdout.contains("FAIL pinned below the trend"), "{stdout}");
    assert!(stdout.contains("sma(close, trend) = 140   (given)"), "{stdout}");
    assert!(stdout.contains("FAIL through the stop"), "{stdout}");
    assert!(stdout.contains("got:      exit (stop_loss)"), "{stdout}");
    assert!(stdout.contains("stop_loss at 97 (entry price 100)"), "{stdout}");
}

#[test]
fn json_output_gives_every_case() {
    let (code, stdout, _) = run_fixture(
        "kind: test
strategy: $ROOT/strategies/sma_crossover.yaml
cases:
  - name: cross
    values: { \"crosses_above(sma(close, fast), sma(close, slow))\": true }
    expect: entry
",
        &["--format", "json"],
    );
    assert_eq!(code, 0, "{stdout}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["passed"], true);
    assert_eq!(j["cases"], 1);
    let case = &j["files"][0]["cases"][0];
    assert_eq!(case["name"], "cross");
    assert_eq!(case["passed"], true);
    assert_eq!(case["got"], "entry");
}

#[test]
fn broken_fixtures_are_located_and_nothing_runs() {
    let (code, stdout, stderr) = run_fixture(
        "kind: test
policy: $ROOT/policies/always_on_caps.yaml
cases:
  - name: typo in the rule id
    account: { equity: 100000, exposure: 0 }
    order: { intent: entry, notional: 6000 }
    expect: { deny: max_trade_notinal }
  - name: typo in a field
    account: { equty: 100000 }
    expect: allow
",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("case.test.yaml:7:21: policy `always_on_caps` has no rule `max_trade_notinal`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `max_trade_notional`?"), "{stderr}");
    assert!(stderr.contains("case.test.yaml:9:16: unknown field `account.equty`"), "{stderr}");
    assert!(stdout.contains("0 case(s): 0 passed, 0 failed; 1 file(s) with errors"), "{stdout}");
}

#[test]
fn validate_checks_test_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "kind: test\nstrategy: {}/strategies/sma_crossover.yaml\ncases:\n  - name: n\n    values: {{ \"sma(close, 11)\": 3 }}\n    expect: none\n",
        root().display()
    );
    std::fs::write(dir.path().join("x.test.yaml"), text).unwrap();
    let out = dsl().current_dir(dir.path()).args(["validate", "."]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("x.test.yaml:5:15: no rule computes `sma(close, 11)`"), "{err}");
    assert!(err.contains("`sma(close, fast)`"), "{err}");
}

#[test]
fn a_missing_path_is_a_usage_error() {
    dsl().args(["test", "no/such/dir"]).assert().code(2);
}
