//! Hostile inputs met through the binary as a user would: special files, huge or binary
//! documents, cut and garbled bar files. Each gets a clear error or is skipped and reported;
//! nothing hangs, panics or is silently used.

use std::path::Path;

use crate::common::{data, dsl};

fn mkfifo(path: &Path) -> bool {
    std::process::Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success())
}

#[test]
#[cfg(unix)]
fn special_files_named_like_documents_or_data_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    let zero = dir.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let have_fifo = mkfifo(&fifo);
    let out = dsl().arg("validate").arg(dir.path()).timeout(std::time::Duration::from_secs(60)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("zero.yaml`: not a regular file"), "{err}");
    if have_fifo {
        assert!(err.contains("fifo.yaml`: not a regular file"), "{err}");
    }
    // Bars: the same for `dsl import` and `dsl backtest --data`.
    let csv = dir.path().join("bars.csv");
    std::os::unix::fs::symlink("/dev/zero", &csv).unwrap();
    let db = dir.path().join("b.sqlite");
    let out = dsl()
        .arg("import")
        .arg(&csv)
        .arg("--db")
        .arg(&db)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(!db.exists(), "nothing imported, nothing created");
}

#[test]
fn huge_and_binary_documents_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.yaml"), format!("kind: policy\nname: p\n# {}\n", "x".repeat(2 << 20))).unwrap();
    std::fs::write(dir.path().join("bin.yaml"), b"kind: policy\nname: \xff\xfe\n").unwrap();
    let out = dsl().arg("validate").arg(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("big.yaml`: larger than 1024 KiB, the most a document may hold"), "{err}");
    assert!(err.contains("bin.yaml`: not UTF-8 text (line 2)"), "{err}");
}

/// A download cut short: the last row lost its volume and most of its close. The backtest
/// skips it and says so; `dsl import --on-missing error` refuses the file naming the line.
#[test]
fn a_truncated_download_is_reported_not_traded() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data("GOOG.csv")).unwrap();
    let cut = &text[..text.trim_end().rfind(',').unwrap() - 4];
    let lines = cut.lines().count();
    let csv = dir.path().join("GOOG.csv");
    std::fs::write(&csv, cut).unwrap();
    let out = dsl()
        .args(["backtest", "strategies/sma_crossover.yaml", "--no-journal", "--data"])
        .arg(format!("GOOG={}", csv.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("skipped 1 bad row(s): line {lines}: ")), "{err}");
    assert!(err.contains("fields where the header has"), "{err}");
    let db = dir.path().join("b.sqlite");
    let out = dsl().arg("import").arg(&csv).arg("--db").arg(&db).args(["--on-missing", "error"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("GOOG.csv:{lines}: bad row:")), "{err}");
    assert!(err.contains("nothing imported"), "{err}");
}

/// The command line keeps the manifest's rules: costs and cash are bounded as there, names
/// may not be empty.
#[test]
fn overrides_are_bounded_like_the_manifest() {
    for (flag, value, says) in [
        ("--commission", "1000%", "more than 10% a fill"),
        ("--slippage", "200%", "more than 10% a fill"),
        ("--commission=-1bps", "", "is not a rate"),
        ("--cash", "1.7976931348623157e308", "at most 1e15"),
        ("--cash", "inf", "at most 1e15"),
        ("--cash", "0", "above 0"),
    ] {
        let mut cmd = dsl();
        cmd.args(["backtest", "strategies/sma_crossover.yaml", "--no-journal", flag]);
        if !value.is_empty() {
            cmd.arg(value);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    for args in [
        &["import", "tests/data/GOOG.csv", "--db", "/nonexistent/x.sqlite", "--symbol", ""][..],
        &["halt", "--journal", "/nonexistent/j.sqlite", "--bot-name", " ", "--reason", "r"],
        &["halt", "--journal", "/nonexistent/j.sqlite", "--bot-name", "b", "--reason", "  "],
    ] {
        let out = dsl().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("must not be empty"), "{args:?}: {err}");
    }
    // The manifest's own bound on cash.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bot.yaml"), "kind: bot\nname: b\nstrategies: [s.yaml]\nstarting_cash: 1e300\n")
        .unwrap();
    let out = dsl().arg("validate").arg(dir.path().join("bot.yaml")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`starting_cash` must be at most 1e15"), "{err}");
}

/// Finding no documents is not a success: `validate` and `test` exit 5 (as pytest does).
#[test]
fn commands_that_find_nothing_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "nothing here").unwrap();
    for cmd in ["validate", "test"] {
        let out = dsl().arg(cmd).arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(5), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("found in"), "{cmd}");
    }
}

/// Strings print as strings; `-` is standard output; a closed pipe ends quietly.
#[test]
fn output_is_what_it_says() {
    let out = dsl().args(["eval", "\"buy\"", "--data", "tests/data/GOOG.csv", "--to", "2004-08-20"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().nth(1), Some("2004-08-19T00:00:00Z,buy"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let out = dsl()
        .current_dir(dir.path())
        .arg("backtest")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies/sma_crossover.yaml"))
        .args(["--no-journal", "--quiet", "--json", "-", "--data"])
        .arg(format!("GOOG={}", data("GOOG.csv").display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!dir.path().join("-").exists(), "no file named `-`");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the JSON report on stdout");
    assert!(v["metrics"]["trade_count"].as_u64().unwrap() > 0, "{v}");
    // A pipe closed after the first line: no panic, no error message.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("dsl"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["eval", "close", "sma(close, 5)", "--data", "tests/data/GOOG.csv"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Read;
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // dropped here: the pipe closes
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}

/// A policy that denies every entry a strategy can make is a warning in `dsl validate` (the
/// bot would never trade); the shipped scripted example, which had a 5% stop under a 3% cap,
/// now trades.
#[test]
fn a_policy_that_blocks_every_entry_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.path().join("s.yaml"),
        "kind: strategy\nname: wide_stop\nuniverse: [AAPL]\ntimeframe: 1d\nentry: close > 0\nexit: close < 0\n\
         stop_loss: 5%\nsizing: {percent_of_equity: 10%}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bot.yaml"),
        format!(
            "kind: bot\nname: b\nstrategies: [s.yaml]\npolicies: [{root}/policies/always_on_caps.yaml]\n\
             data: {{csv: {{AAPL: {root}/examples/data/AAPL.csv}}}}\nstarting_cash: 100000\n"
        ),
    )
    .unwrap();
    let out = dsl().arg("validate").arg(dir.path().join("bot.yaml")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning, not an error: {err}");
    assert!(
        err.contains("warning[W0008]")
            && err.contains("rule `max_trade_notional` denies every entry of strategy `wide_stop`"),
        "{err}"
    );
    assert!(
        err.contains("rule `stop_loss_required` denies every entry") && err.contains("order.stop_loss = 0.05"),
        "{err}"
    );
    let out = dsl().args(["validate", "--deny-warnings"]).arg(dir.path().join("bot.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = dsl().args(["backtest", "examples/scripted.yaml", "--no-journal"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let trades: u32 = text
        .lines()
        .find(|l| l.trim_start().starts_with("trades"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(trades > 0, "{text}");
}

/// `--from` limits trading, not the indicators' warm-up: rsi_reversion (a 200-bar trend filter)
/// makes its first 2017 trade on 2017-04-17 as in a run over the whole history, not in 2018, and
/// the summary says how many bars warmed up.
#[test]
fn from_limits_trading_not_warm_up() {
    let mut cmd = dsl();
    cmd.args([
        "backtest",
        "strategies/rsi_reversion.yaml",
        "--no-journal",
        "--quiet",
        "--from",
        "2017-01-01",
        "--json",
        "-",
    ]);
    for s in ["AAPL", "JPM", "MSFT", "NVDA", "XOM"] {
        cmd.arg("--data").arg(format!("{s}=examples/data/{s}.csv"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let json = &text[text.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut entries: Vec<&str> =
        v["trades"].as_array().unwrap().iter().map(|t| t["entry_time"].as_str().unwrap()).collect();
    entries.sort();
    assert_eq!(entries.first(), Some(&"2017-04-17T00:00:00Z"), "{entries:?}");
    let summary =
        dsl().args(["backtest", "examples/bot.yaml", "--no-journal", "--from", "2017-01-01"]).output().unwrap();
    let s = String::from_utf8_lossy(&summary.stdout);
    assert!(s.contains("warm-up       4910 bars before 2017-01-01T00:00:00Z (indicators only, no trading)"), "{s}");
    assert!(s.contains("period        2017-01-03T00:00:00Z .. 2018-02-07T00:00:00Z"), "{s}");
}
