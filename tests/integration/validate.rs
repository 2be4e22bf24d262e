//! `dsl validate` on bad documents: exit codes, `file:line:column`, what was expected, and
//! snapshots of the rendered diagnostics.

use std::path::Path;

use crate::common::dsl;

const GOOD: &str = "kind: strategy
name: s
universe: [GOOG]
timeframe: 1d
params:
  fast: 10
  slow: 30
entry: crosses_above(sma(close, fast), sma(close, slow))
exit: crosses_below(sma(close, fast), sma(close, slow))
sizing: all_cash
";

/// Writes `text` to `name` in a fresh directory and validates it from there; returns the exit
/// code and standard error.
fn validate_text(name: &str, text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    validate_in(dir.path(), &[(name, text)], name)
}

fn validate_in(dir: &Path, files: &[(&str, &str)], target: &str) -> (i32, String) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let out = dsl().current_dir(dir).args(["validate", target]).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stderr).unwrap())
}

/// The five cases the first issue names: each exits non-zero and says where and what.
#[test]
fn the_five_classic_mistakes_are_located_and_explained() {
    let cases = [
        ("misspelled_key.yaml", GOOD.replace("entry:", "entyr:"), "misspelled_key.yaml:8:1", "did you mean `entry`?"),
        (
            "unknown_function.yaml",
            GOOD.replace("sma(close, fast)", "smaa(close, fast)"),
            "unknown_function.yaml:8:22",
            "did you mean `sma`?",
        ),
        (
            "wrong_arity.yaml",
            GOOD.replace("sma(close, slow))\nexit", "sma(close))\nexit"),
            "wrong_arity.yaml:8:40",
            "usage: `sma(src, period)`",
        ),
        (
            "type_error.yaml",
            GOOD.replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: close > true"),
            "type_error.yaml:8:14",
            "`>` needs two numbers, found series and bool",
        ),
        (
            "unbalanced.yaml",
            GOOD.replace("sma(close, slow))\nexit", "sma(close, slow)\nexit"),
            "unbalanced.yaml:8:",
            "expected `)`",
        ),
    ];
    for (name, text, location, expected) in cases {
        let (code, err) = validate_text(name, &text);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(location), "{name} should point at {location}:\n{err}");
        assert!(err.contains(expected), "{name} should say {expected}:\n{err}");
    }
}

fn snapshot(name: &str, text: &str) {
    let (code, err) = validate_text(&format!("{name}.yaml"), text);
    assert_ne!(code, 0, "{name} must be invalid");
    insta::assert_snapshot!(name, err);
}

#[test]
fn snapshots_of_rendered_diagnostics() {
    snapshot("misspelled_key", &GOOD.replace("entry:", "entyr:"));
    snapshot("unknown_function", &GOOD.replace("sma(close, fast)", "smaa(close, fast)"));
    snapshot("wrong_arity", &GOOD.replace("sma(close, slow))\nexit", "sma(close))\nexit"));
    snapshot(
        "type_error",
        &GOOD.replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: close > true"),
    );
    snapshot("unbalanced_parenthesis", &GOOD.replace("sma(close, slow))\nexit", "sma(close, slow)\nexit"));
    snapshot("unknown_name", &GOOD.replace("sma(close, fast)", "sma(clsoe, fast)"));
    snapshot(
        "rule_not_bool",
        &GOOD.replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: sma(close, fast)"),
    );
    snapshot(
        "macd_without_output",
        &GOOD.replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: macd(close) > 0"),
    );
    snapshot("fractional_period", &GOOD.replace("slow: 30", "slow: 30.5"));
    snapshot(
        "position_in_entry",
        &GOOD
            .replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: close > position.entry_price"),
    );
    snapshot("stop_loss_as_plain_number", &format!("{GOOD}stop_loss: 3\n"));
    snapshot("unknown_kind", &GOOD.replace("kind: strategy", "kind: stratgy"));
    snapshot("yaml_syntax", &GOOD.replace("universe: [GOOG]", "universe: [GOOG"));
    snapshot(
        "block_scalar_rule",
        &GOOD.replace(
            "entry: crosses_above(sma(close, fast), sma(close, slow))",
            "entry: |\n  crosses_above(sma(close, fast),\n                sma(close, slwo))",
        ),
    );
    snapshot(
        "sizing_scale_errors",
        &GOOD.replace(
            "sizing: all_cash\n",
            "sizing:\n  percent_of_equity: 5%\n  scale:\n    - when: trending()\n      scael: 1.2\n    \
             - when: rsi(close, 14)\n      scale: 0.6\n",
        ),
    );
    snapshot(
        "session_field_misspelled",
        &GOOD.replace(
            "entry: crosses_above(sma(close, fast), sma(close, slow))",
            "entry: crosses_above(sma(close, fast), sma(close, slow)) and session.minutes_sinse_open > 5",
        ),
    );
    snapshot(
        "higher_timeframe_uppercase",
        &GOOD.replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: close > sma(close, 10)@1W"),
    );
    snapshot(
        "higher_timeframe_not_higher",
        &GOOD.replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: close > sma(close, 10)@4h"),
    );
    snapshot(
        "higher_timeframe_of_a_field",
        &GOOD.replace(
            "entry: crosses_above(sma(close, fast), sma(close, slow))",
            "entry: (close - account.cash)@1w > 0",
        ),
    );
    snapshot(
        "higher_timeframe_nested",
        &GOOD.replace("entry: crosses_above(sma(close, fast), sma(close, slow))", "entry: (close@1w)@1mo > 1"),
    );
    snapshot("aggregation_misspelled", &format!("{GOOD}aggregation: sesion\n"));
    snapshot("entry_order_without_price", &format!("{GOOD}order: {{type: limit, expires_after: 3 bars}}\n"));
    snapshot("entry_order_stop_limit", &format!("{GOOD}order: {{type: stop_limit, price: close}}\n"));
    snapshot("entry_order_misspelled_type", &format!("{GOOD}order: {{type: limt, price: close * 0.99}}\n"));
    snapshot(
        "sizing_scale_not_a_number",
        &GOOD.replace("sizing: all_cash\n", "sizing:\n  all_cash: true\n  scale: close > open\n"),
    );
    snapshot(
        "policy_string_value",
        "kind: policy\nname: p\nrules:\n  - id: r\n    when: order.side == \"bye\"\n    action: deny\n    message: m\n",
    );
    snapshot(
        "policy_option_of_another_action",
        "kind: policy\nname: p\nrules:\n  - id: r\n    when: account.drawdown > 10%\n    action: deny\n    flatten: true\n    message: m\n",
    );
    snapshot(
        "policy_bad_duration",
        "kind: policy\nname: p\nrules:\n  - id: r\n    when: order.notional > 5% * account.equity\n    action: require_approval\n    expires_after: 15 minutes\n    message: m\n",
    );
}

#[test]
fn every_error_in_every_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let two_errors = GOOD.replace("entry:", "entyr:").replace("timeframe: 1d", "timeframe: 1y");
    let other = GOOD.replace("sma(close, fast)", "smaa(close, fast)");
    let (code, err) = validate_in(dir.path(), &[("a/one.yaml", &two_errors), ("a/two.yaml", &other)], "a");
    assert_eq!(code, 1);
    assert!(err.contains("one.yaml:8:1"), "{err}");
    assert!(err.contains("one.yaml:4:12"), "{err}");
    assert!(err.contains("two.yaml:8:22"), "{err}");
    // one.yaml: bad timeframe and the misspelled `entry`; two.yaml: the unknown function in
    // both rules.
    assert!(err.contains("checked 2 file(s): 4 error(s)"), "{err}");
    let one_4 = err.find("one.yaml:4:12").unwrap();
    let one_8 = err.find("one.yaml:8:1").unwrap();
    assert!(one_4 < one_8, "diagnostics of a file come in source order");
}

#[test]
fn bot_references_must_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let bot = "kind: bot\nname: b\nstrategies: [../strategies/nope.yaml]\nstarting_cash: 1000\n";
    let (code, err) = validate_in(dir.path(), &[("bots/bot.yaml", bot)], "bots/bot.yaml");
    assert_eq!(code, 1);
    assert!(err.contains("bots/bot.yaml:3:14"), "{err}");
    assert!(err.contains("cannot read strategy file `strategies/nope.yaml`"), "{err}");
}

#[test]
fn shipped_documents_are_valid() {
    let out = dsl().args(["validate", "strategies", "policies", "examples"]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("valid: checked"), "{err}");
}

#[test]
fn json_output_lists_every_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), GOOD.replace("sma(close, fast)", "smaa(close, fast)")).unwrap();
    let out = dsl().current_dir(dir.path()).args(["validate", "s.yaml", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["valid"], false);
    let d = &j["diagnostics"][0];
    assert_eq!(d["file"], "s.yaml");
    assert_eq!(d["line"], 8);
    assert_eq!(d["column"], 22);
    assert_eq!(d["code"], "E3002");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["help"], "did you mean `sma`?");
}

#[test]
fn usage_and_io_errors_exit_2() {
    dsl().args(["validate", "does/not/exist.yaml"]).assert().code(2);
    dsl().args(["validate"]).assert().code(2);
    dsl().args(["backtest"]).assert().code(2);
}

/// Snapshot of `dsl validate TARGET` over several files written into a fresh directory.
fn snapshot_files(name: &str, files: &[(&str, &str)], target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = validate_in(dir.path(), files, target);
    assert_ne!(code, 0, "{name} must be invalid:\n{err}");
    insta::assert_snapshot!(name, err);
}

/// Snapshot of a document set that is valid but warns (`--deny-warnings` makes it fail).
fn snapshot_warning(name: &str, files: &[(&str, &str)], target: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in files {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let out = dsl().current_dir(dir.path()).args(["validate", "--deny-warnings", target]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(err.contains("warning["), "{name}: {err}");
    insta::assert_snapshot!(name, err);
}

const BARS: &str = "date,open,high,low,close,volume\n2020-01-02,10,11,9,10.5,100\n2020-01-03,10.5,12,10,11,100\n";

fn bot(extra: &str) -> String {
    format!("kind: bot\nname: b\nstrategies: [s.yaml]\ndata: {{csv: {{GOOG: g.csv}}}}\nstarting_cash: 1000\n{extra}")
}

#[test]
fn snapshots_of_reference_errors() {
    // Hourly bars for a daily strategy.
    let hourly = "date,open,high,low,close,volume\n2020-01-02T14:00:00Z,10,11,9,10.5,100\n\
                  2020-01-02T15:00:00Z,10.5,12,10,11,100\n2020-01-02T16:00:00Z,11,12,10,11.5,100\n";
    snapshot_files(
        "data_spacing_is_not_the_timeframe",
        &[("bot.yaml", &bot("")), ("s.yaml", GOOD), ("g.csv", hourly)],
        "bot.yaml",
    );
    snapshot_files(
        "reference_missing_strategy",
        &[("bot.yaml", "kind: bot\nname: b\nstrategies: [s.yaml, nope.yaml]\nstarting_cash: 1000\n"), ("s.yaml", GOOD)],
        "bot.yaml",
    );
    snapshot_files(
        "reference_override_unknown_param",
        &[
            (
                "bot.yaml",
                "kind: bot\nname: b\nstrategies:\n  - path: s.yaml\n    params: { fats: 5 }\nstarting_cash: 1000\n",
            ),
            ("s.yaml", GOOD),
        ],
        "bot.yaml",
    );
    let phase = |name: &str, next: &str| {
        format!("kind: phase\nname: {name}\ndescription: d\nmode: paper\nnext: {next}\napproval: required\n")
    };
    let (a, b) = (phase("a", "b"), phase("b", "a"));
    snapshot_files(
        "reference_phase_cycle",
        &[
            ("bot.yaml", &bot("phases: [a.yaml, b.yaml]\nphase: a\n")),
            ("s.yaml", GOOD),
            ("g.csv", BARS),
            ("a.yaml", &a),
            ("b.yaml", &b),
        ],
        "bot.yaml",
    );
    snapshot_files("reference_duplicate_strategy_name", &[("lib/one.yaml", GOOD), ("lib/two.yaml", GOOD)], "lib");
    snapshot_files(
        "reference_symbol_without_data",
        &[("bot.yaml", &bot("")), ("s.yaml", &GOOD.replace("[GOOG]", "[GOOG, MSFT]")), ("g.csv", BARS)],
        "bot.yaml",
    );
}

const INDICATOR_STRATEGY: &str = "kind: strategy
name: s
universe: [GOOG]
timeframe: 1d
indicators:
  ratio: { script: ratio.rhai, window: 10 }
entry: ratio > 0.5
exit: ratio < 0.2
sizing: all_cash
";

#[test]
fn snapshots_of_rhai_errors() {
    let with_script = |name: &str, script: &str| {
        snapshot_files(name, &[("s.yaml", INDICATOR_STRATEGY), ("ratio.rhai", script)], "s.yaml");
    };
    with_script("rhai_syntax_error", "fn value(bars) {\n    let c = bars.close;\n    c[c.len() - 1] / ;\n}\n");
    with_script("rhai_missing_entry_function", "fn ratio(bars) {\n    0.5\n}\n");
    with_script("rhai_dry_run_failure", "fn value(bars) {\n    let c = bars.close;\n    c[c.len()] / c[0]\n}\n");
    with_script("rhai_import_forbidden", "import \"math\" as m;\nfn value(bars) { 0.5 }\n");
    // Endless recursion: stopped by the call-depth limit, the same on every machine (an
    // endless loop may meet the operation limit or the deadline first, depending on speed).
    with_script("rhai_runaway_recursion", "fn deeper(n) {\n    deeper(n + 1)\n}\nfn value(bars) {\n    deeper(0)\n}\n");
    snapshot_files("rhai_missing_script_file", &[("s.yaml", INDICATOR_STRATEGY)], "s.yaml");
    snapshot_files(
        "rhai_guard_with_when_and_script",
        &[(
            "p.yaml",
            "kind: policy\nname: p\nrules:\n  - id: r\n    when: order.notional > 5% * account.equity\n    script: g.rhai\n    action: deny\n    message: m\n",
        )],
        "p.yaml",
    );
}

#[test]
fn snapshots_of_rule_test_errors() {
    let policy = "kind: policy\nname: p\nrules:\n  - id: max_trade\n    when: order.notional > 5% * account.equity\n    action: deny\n    message: m\n";
    snapshot_files(
        "test_unknown_rule_id",
        &[
            ("p.yaml", policy),
            (
                "p.test.yaml",
                "kind: test\npolicy: p.yaml\ncases:\n  - name: big\n    account: { equity: 100 }\n    order: { notional: 6 }\n    expect: { deny: max_trad }\n",
            ),
        ],
        "p.test.yaml",
    );
    snapshot_files(
        "test_value_no_rule_computes",
        &[
            ("s.yaml", GOOD),
            (
                "s.test.yaml",
                "kind: test\nstrategy: s.yaml\ncases:\n  - name: cross\n    values: { \"sma(close, 11)\": 3 }\n    expect: entry\n",
            ),
        ],
        "s.test.yaml",
    );
}

#[test]
fn snapshots_of_warnings() {
    snapshot_warning(
        "warning_unused_param",
        &[("s.yaml", &GOOD.replace("  slow: 30\n", "  slow: 30\n  spare: 5\n"))],
        "s.yaml",
    );
    snapshot_warning(
        "warning_rule_never_fires",
        &[(
            "p.yaml",
            "kind: policy\nname: p\nrules:\n  - id: r\n    when: order.notional > 100 and order.notional < 50\n    action: deny\n    message: m\n",
        )],
        "p.yaml",
    );
    snapshot_warning(
        "warning_percent_on_rsi",
        &[(
            "s.yaml",
            &GOOD.replace(
                "entry: crosses_above(sma(close, fast), sma(close, slow))",
                "entry: rsi(close, fast) < 30% and close > sma(close, slow)",
            ),
        )],
        "s.yaml",
    );
    snapshot_warning(
        "warning_constant_policy_rule",
        &[(
            "p.yaml",
            "kind: policy\nname: p\nrules:\n  - id: r\n    when: 5% > 10%\n    action: deny\n    message: m\n",
        )],
        "p.yaml",
    );
    snapshot_warning(
        "warning_unreachable_exit",
        &[("s.yaml", &GOOD.replace("exit: crosses_below(sma(close, fast), sma(close, slow))", "exit: fast > slow"))],
        "s.yaml",
    );
}

/// A bot's `schedule:`: a bad cron pattern, a misspelled zone (did you mean), weights over
/// 100%, a weight that is not a number, a bad time of day and a misspelled report.
#[test]
fn schedule_mistakes_are_located_and_explained() {
    let bot = "kind: bot
name: b
schedule:
  timezone: America/New_Yrok
  rebalance:
    cron: \"45 25 * * FRI\"
    weights: {SHY: 80%, IEF: 30%, TLT: \"close > 3\"}
  reports:
    daily_pnl: {at: \"16h15\"}
    weekly_sumary: {at: \"16:30\"}
starting_cash: 1000
";
    let (code, err) = validate_text("schedule.yaml", bot);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "schedule.yaml:4:13: unknown time zone `America/New_Yrok`",
        "did you mean `America/New_York`?",
        "schedule.yaml:10:5: unknown key `weekly_sumary`",
        "did you mean `weekly_summary`?",
        "schedule.yaml:9:21: `at` must be a time of day `HH:MM`, found `16h15`",
    ] {
        assert!(err.contains(expected), "should say {expected}:\n{err}");
    }
    let fixed = bot.replace("New_Yrok", "New_York").replace("sumary", "summary").replace("16h15", "16:15");
    let (code, err) = validate_text("schedule.yaml", &fixed);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "schedule.yaml:6:11: invalid cron pattern `45 25 * * FRI`",
        "five fields: minute hour day-of-month month day-of-week",
    ] {
        assert!(err.contains(expected), "should say {expected}:\n{err}");
    }
    let fixed = fixed.replace("45 25", "45 15");
    let (code, err) = validate_text("schedule.yaml", &fixed);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`weight` must be a number, found bool series"), "{err}");
    let fixed = fixed.replace(", TLT: \"close > 3\"", "");
    let (code, err) = validate_text("schedule.yaml", &fixed);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("schedule.yaml:7:15: the weights add up to 110.00%, more than the account"), "{err}");
    insta::assert_snapshot!("schedule_weights_over_100", err);
}
