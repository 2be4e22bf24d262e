//! The rhai sandbox: runaway and forbidden scripts are stopped with clear errors, and a script
//! that fails at run time fails closed inside a backtest (with the event journaled).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tradedsl::diagnostics::SourceFile;
use tradedsl::dsl::script::{Limits, Sandbox, Script, ScriptError, ScriptKind, WindowBars, compile};

use crate::common::{data, dsl};

/// Compiles `body` as an indicator script (skipping the dry run's own limits by compiling
/// through a sandbox whose limits match the test).
fn indicator(sandbox: &Sandbox, body: &str) -> Result<Script, tradedsl::diagnostics::Diagnostic> {
    compile(ScriptKind::Indicator, &SourceFile::new("t.rhai", body), sandbox)
}

fn window() -> (Vec<f64>, Vec<f64>) {
    ((0..20).map(|i| 100.0 + i as f64).collect(), vec![1000.0; 20])
}

/// Runs `body`'s `value` on a window (outside `compile`, which would already have dry-run it).
fn run(sandbox: &Sandbox, script: &Script) -> (Result<f64, ScriptError>, Duration) {
    let (c, v) = window();
    let w = WindowBars { open: &c, high: &c, low: &c, close: &c, volume: &v };
    let t = Instant::now();
    let r = script.indicator(sandbox, &w);
    (r, t.elapsed())
}

/// An endless loop is stopped by the operation limit or, on a slow machine or an
/// unoptimised build, by the wall-clock deadline; either is the right outcome.
fn runaway_stopped(message: &str) -> bool {
    message.contains("too many operations") || message.contains("deadline of 1000 ms passed")
}

/// The runaway scripts of the sandbox tests, each with the limit that stops it.
const RUNAWAYS: [(&str, &str); 6] = [
    ("fn value(bars) { loop {} }", "too many operations (more than 1000000)"),
    ("fn value(bars) { let i = 0; while true { i += 1; } i }", "too many operations"),
    ("fn f(x) { f(x + 1) } fn value(bars) { f(0) }", "calls nested too deeply"),
    ("fn value(bars) { let s = \"xxxxxxxx\"; loop { s += s; } }", "Length of string too large"),
    ("fn value(bars) { let a = []; loop { a.push(1.0); } }", "Size of array/BLOB too large"),
    // rhai itself checks a map's size only when the loop ends; the sandbox checks each new key.
    ("fn value(bars) { let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; } }", "Size of object map too large"),
];

/// Each runaway script is refused: at compile time its dry run hits a limit (E5003), and the
/// error says which limit. The deadline is lifted here so that the limit reached does not
/// depend on the machine's speed (an unoptimised build runs rhai ~10x slower).
#[test]
fn runaway_scripts_are_stopped_by_the_limit_they_break() {
    let sandbox = Sandbox::new(Limits { deadline: Duration::from_secs(600), ..Limits::default() });
    for (body, expected) in RUNAWAYS {
        let err = indicator(&sandbox, body).expect_err(body);
        assert_eq!(err.code, "E5003", "{body}: {err:?}");
        assert!(err.message.contains(expected), "{body}: {}", err.message);
        assert!(
            err.message.starts_with("script failed its dry run on a synthetic context: script stopped:"),
            "{}",
            err.message
        );
    }
}

/// With the shipped limits each runaway script is stopped within the deadline: by its own
/// limit, or by the deadline itself when the machine is too slow to reach the limit first.
#[test]
fn runaway_scripts_are_stopped_within_the_deadline() {
    let sandbox = Sandbox::shared();
    let deadline = sandbox.limits().deadline;
    for (body, expected) in RUNAWAYS {
        let t = Instant::now();
        let err = indicator(sandbox, body).expect_err(body);
        let took = t.elapsed();
        assert_eq!(err.code, "E5003", "{body}: {err:?}");
        assert!(
            err.message.contains(expected) || err.message.contains("deadline of 1000 ms passed"),
            "{body}: {}",
            err.message
        );
        // The call is stopped at the deadline; the slack covers compiling and a loaded machine.
        assert!(took < deadline + Duration::from_secs(2), "{body} took {took:?}");
    }
}

#[test]
fn the_wall_clock_deadline_stops_a_script_the_operation_limit_would_not() {
    let sandbox =
        Sandbox::new(Limits { max_operations: u64::MAX, deadline: Duration::from_millis(50), ..Limits::default() });
    // Compile through a sandbox with an operation limit so the dry run stops, then run it in
    // the one whose only bound is the clock.
    let lenient = Sandbox::new(Limits::default());
    let script = compile(
        ScriptKind::Indicator,
        &SourceFile::new("t.rhai", "fn value(bars) { if bars.close.len() > 10 { loop {} } 1.0 }"),
        &lenient,
    );
    // The synthetic window has 50 bars, so the dry run loops and is stopped.
    assert!(script.is_err());
    let script = compile(
        ScriptKind::Indicator,
        &SourceFile::new("t.rhai", "fn value(bars) { if bars.close.len() == 20 { loop {} } 1.0 }"),
        &sandbox,
    )
    .unwrap();
    let (r, took) = run(&sandbox, &script);
    assert_eq!(r, Err(ScriptError::Deadline(Duration::from_millis(50))));
    assert!(took >= Duration::from_millis(50) && took < Duration::from_secs(2), "{took:?}");
    assert_eq!(r.unwrap_err().to_string(), "script stopped: deadline of 50 ms passed");
}

#[test]
fn import_and_eval_do_not_compile() {
    let sandbox = Sandbox::shared();
    for (body, expected) in [
        ("import \"std\" as s; fn value(bars) { 1.0 }", "'import'"),
        ("fn value(bars) { eval(\"1 + 1\") }", "'eval' is disabled"),
        ("fn value(bars) { undeclared + 1.0 }", "undefined variable: undeclared"),
    ] {
        let err = indicator(sandbox, body).expect_err(body);
        assert_eq!(err.code, "E5001", "{body}: {err:?}");
        assert!(err.message.contains(expected), "{body}: {}", err.message);
    }
}

#[test]
fn numbers_are_f64() {
    let script = indicator(Sandbox::shared(), "fn value(bars) { 10 / 4 }").unwrap();
    assert_eq!(run(Sandbox::shared(), &script).0, Ok(2.5));
}

/// Writes a strategy, its scripts, and a bot using a policy script into `dir`.
fn scripted_bot(dir: &Path, indicator: &str, filter: &str, guard: &str) {
    let data = data("GOOG.csv");
    std::fs::write(dir.join("ind.rhai"), indicator).unwrap();
    std::fs::write(dir.join("filter.rhai"), filter).unwrap();
    std::fs::write(dir.join("guard.rhai"), guard).unwrap();
    std::fs::write(
        dir.join("s.yaml"),
        "kind: strategy\nname: s\nuniverse: [GOOG]\ntimeframe: 1d\nparams: {fast: 10, slow: 30}\n\
         indicators:\n  custom: { script: ind.rhai, window: 5 }\n\
         entry: crosses_above(sma(close, fast), sma(close, slow)) and custom > 0\n\
         filter: { script: filter.rhai }\n\
         exit: crosses_below(sma(close, fast), sma(close, slow))\nsizing: {percent_of_equity: 4%}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("p.yaml"),
        "kind: policy\nname: p\nrules:\n  - id: g\n    script: guard.rhai\n    action: deny\n    message: guarded\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bot.yaml"),
        format!(
            "kind: bot\nname: b\nstrategies: [s.yaml]\npolicies: [p.yaml]\ndata: {{csv: {{GOOG: {}}}}}\n\
             starting_cash: 100000\ndatabase: j.sqlite\n",
            data.display()
        ),
    )
    .unwrap();
}

fn events(db: &Path) -> Vec<(String, String, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare("SELECT kind, script, message FROM events ORDER BY ts").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn scripts_that_fail_at_run_time_fail_closed_and_are_journaled() {
    let dir = tempfile::tempdir().unwrap();
    // The indicator fails on bars closing above 500; the filter errors on GOOG entries after
    // 2010 (the dry run uses another symbol); the guard loops forever on exits.
    scripted_bot(
        dir.path(),
        "fn value(bars) { let c = bars.close[bars.close.len() - 1]; if c > 500.0 { throw \"too high\"; } 1.0 }",
        "fn filter(ctx) { if ctx.symbol == \"GOOG\" && ctx.time > 1262304000 { let x = (); x + 1 } else { true } }",
        "fn check(order, account, position) { if order.intent == \"exit\" { loop {} } () }",
    );
    let out = dsl().current_dir(dir.path()).args(["backtest", "bot.yaml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("script errors"), "{stdout}");
    let ev = events(&dir.path().join("j.sqlite"));
    let by = |script: &str| ev.iter().filter(|e| e.1.ends_with(script)).collect::<Vec<_>>();
    // Indicator failures: the indicator is undefined on those bars; ten in a row disable it
    // (undefined from then on, journaled once).
    let ind = by("ind.rhai");
    assert!(!ind.is_empty(), "{ev:?}");
    assert!(ind.iter().all(|e| e.2.contains("too high")), "{ind:?}");
    assert_eq!(ind.iter().filter(|e| e.0 == "script_disabled").count(), 1, "{ind:?}");
    assert_eq!(ind.last().unwrap().0, "script_disabled", "nothing is journaled after it: {ind:?}");
    // Guard failures (the loop is stopped) deny the exit: fail closed. Ten in a row disable
    // the guard for the rest of the run (one `script_disabled` event); it denies from then on.
    let guard = by("guard.rhai");
    assert!(!guard.is_empty(), "{ev:?}");
    assert!(runaway_stopped(&guard[0].2), "{guard:?}");
    let disabled: Vec<_> = guard.iter().filter(|e| e.0 == "script_disabled").collect();
    assert_eq!(disabled.len(), 1, "{guard:?}");
    assert!(disabled[0].2.contains("10 failures in a row"), "{disabled:?}");
    let c = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
    let denied: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM policy_decisions WHERE fired = 1 AND message LIKE 'script stopped%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(denied as usize, guard.len() - 1);
    let denied_disabled: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM policy_decisions WHERE fired = 1 AND message LIKE 'script disabled%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(denied_disabled > 1, "every later exit is denied without calling the script");
    let rejected_exits: i64 = c
        .query_row("SELECT COUNT(*) FROM orders WHERE intent = 'exit' AND status = 'rejected'", [], |r| r.get(0))
        .unwrap();
    assert!(rejected_exits > 0);
    // The filter's errors skip entries (none were journaled as filled after 2010).
    assert!(by("filter.rhai").iter().all(|e| e.0 == "script_error" && e.2.contains("the entry is skipped")), "{ev:?}");
    let late_entries: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM orders WHERE intent = 'entry' AND created_ts > 1262304000 AND status != 'rejected'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(late_entries, 0);
}

#[test]
fn validate_reports_script_errors_in_the_script_file() {
    let dir = tempfile::tempdir().unwrap();
    scripted_bot(
        dir.path(),
        "fn value(bars) {\n  let x = bars.close[0]\n  x +* 2\n}\n",
        "fn filtre(ctx) { true }",
        "fn check(order, account, position) { loop {} }",
    );
    let out = dsl().current_dir(dir.path()).args(["validate", "bot.yaml"]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error[E5001]: ind.rhai:3:"), "{err}");
    assert!(
        err.contains("error[E5002]: filter.rhai:1:1: script for an entry filter must define `fn filter(ctx)`"),
        "{err}"
    );
    assert!(err.contains("error[E5003]: guard.rhai:1:"), "{err}");
    assert!(runaway_stopped(&err), "{err}");
}

#[test]
fn a_missing_script_is_a_reference_error() {
    let dir = tempfile::tempdir().unwrap();
    scripted_bot(
        dir.path(),
        "fn value(bars) { 1.0 }",
        "fn filter(ctx) { true }",
        "fn check(order, account, position) { () }",
    );
    std::fs::remove_file(dir.path().join("guard.rhai")).unwrap();
    let out = dsl().current_dir(dir.path()).args(["validate", "bot.yaml"]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error[E4001]: p.yaml:5:13: cannot read script `guard.rhai`"), "{err}");
}

#[test]
fn custom_indicators_agree_with_the_reference_interpreter() {
    // The efficiency ratio through the engine's graph (dsl eval) equals the script run on
    // each window directly.
    let out = dsl()
        .args(["eval", "efficiency", "--strategy", "strategies/trend_regime_sma.yaml", "--data"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/AAPL.csv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (_, rows) = crate::common::read_csv(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/AAPL.csv"));
    let close: Vec<f64> = rows.iter().map(|r| r[4].parse().unwrap()).collect();
    let src = SourceFile::new(
        "e.rhai",
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies/efficiency_ratio.rhai"))
            .unwrap(),
    );
    let script = Arc::new(compile(ScriptKind::Indicator, &src, Sandbox::shared()).unwrap());
    let mut checked = 0;
    for (i, line) in text.lines().skip(1).enumerate() {
        let v = line.split(',').nth(1).unwrap();
        if i + 1 < 30 {
            assert_eq!(v, "", "undefined before the window is full");
            continue;
        }
        let w = &close[i + 1 - 30..=i];
        let want =
            script.indicator(Sandbox::shared(), &WindowBars { open: w, high: w, low: w, close: w, volume: w }).unwrap();
        let path: f64 = w.windows(2).map(|p| (p[1] - p[0]).abs()).sum();
        assert!((want - (w[29] - w[0]).abs() / path).abs() < 1e-12, "the script is Kaufman's ratio");
        assert!((v.parse::<f64>().unwrap() - want).abs() < 1e-12, "bar {i}");
        checked += 1;
    }
    assert!(checked > 1000);
}

/// `sleep` blocks the thread where no operation is counted and no deadline checked: it is
/// not callable. A guardrail that would sleep and then allow fails (and denies) instead.
#[test]
fn sleep_is_not_available() {
    for body in ["fn value(bars) { sleep(10); 1.0 }", "fn value(bars) { sleep(0.5); 1.0 }"] {
        let err = indicator(Sandbox::shared(), body).expect_err(body);
        assert_eq!(err.code, "E5003", "{err:?}");
        assert!(err.message.contains("`sleep` is not available in a sandboxed script"), "{}", err.message);
    }
}

/// Infinities are no value: a script dividing by zero gives an undefined indicator.
#[test]
fn non_finite_results_are_undefined() {
    for body in ["fn value(bars) { 1.0 / 0.0 }", "fn value(bars) { -1.0 / 0.0 }", "fn value(bars) { 0.0 / 0.0 }"] {
        let script = indicator(Sandbox::shared(), body).unwrap();
        assert!(run(Sandbox::shared(), &script).0.unwrap().is_nan(), "{body}");
    }
}

/// A map is checked at each new key, not when the loop that fills it ends: with the operation
/// limit lifted, the 1,001st key is refused.
#[test]
fn map_limits_hold_at_assignment() {
    let sandbox = Sandbox::new(Limits { max_operations: 0, deadline: Duration::from_secs(600), ..Limits::default() });
    let body = "fn value(bars) { let m = #{}; for i in 0..100000 { m[`k${i}`] = i; } 1.0 }";
    let err = indicator(&sandbox, body).expect_err(body);
    assert!(err.message.contains("Size of object map too large"), "{}", err.message);
    let ok = "fn value(bars) { let m = #{}; for i in 0..1000 { m[`k${i}`] = i; } m.len() }";
    let script = indicator(&sandbox, ok).unwrap();
    assert_eq!(run(&sandbox, &script).0, Ok(1000.0));
    // Reading a key the map lacks gives `()` (and adds it, as an assignment would).
    let read = "fn value(bars) { let m = #{a: 1}; if m[\"b\"] == () { 2.0 } else { 3.0 } }";
    assert_eq!(run(&sandbox, &indicator(&sandbox, read).unwrap()).0, Ok(2.0));
}

/// Hostile argument expressions for a parameter type a script can make, or `None` for types
/// a script cannot produce (the narrow integer and float types).
fn hostile(ty: &str) -> Option<&'static [&'static str]> {
    let ty = ty.trim().trim_start_matches("&mut ").trim();
    Some(match ty {
        "i64" | "INT" => &["0", "-1", "9223372036854775807", "-9223372036854775807", "1000000000", "65535"],
        "f64" | "FLOAT" => &["1e300", "-1e300", "0.0", "(1.0 / 0.0)", "(0.0 / 0.0)", "1.5"],
        "string" | "ImmutableString" | "&str" | "String" => &["\"\"", "big_s", "\"é🦀x\""],
        "char" => &["'x'", "'🦀'"],
        "bool" => &["true", "false"],
        "array" | "Array" => &["[]", "big_a", "[1, \"a\", [2], #{b: 1}]"],
        "map" | "Map" => &["#{}", "big_m"],
        "Fn" | "FnPtr" => &["Fn(\"f1\")", "Fn(\"f2\")", "Fn(\"nope\")", "|x| x"],
        "range" | "ExclusiveRange" | "std::ops::Range<i64>" => {
            &["0..1000000000", "(-9223372036854775807)..9223372036854775807"]
        }
        "range=" | "InclusiveRange" => &["0..=1000000000", "0..=9223372036854775806"],
        "blob" | "Blob" => &["big_s.to_blob()"],
        "()" => &["()"],
        "Dynamic" | "?" => &["1", "big_s", "big_a", "big_m", "()", "2.5"],
        _ => return None,
    })
}

/// The calls of one signature (`name(a: T, b: U) -> R`) with hostile arguments: every first
/// candidate, every last, and the others spread round-robin.
fn calls(signature: &str) -> Vec<String> {
    let Some((name, rest)) = signature.split_once('(') else { return Vec::new() };
    let Some((params, _)) = rest.rsplit_once(')') else { return Vec::new() };
    let mut options: Vec<&[&str]> = Vec::new();
    for p in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ty = p.split_once(':').map_or(p, |(_, t)| t);
        match hostile(ty) {
            Some(o) => options.push(o),
            None => return Vec::new(),
        }
    }
    let name = name.trim();
    let is_op = !name.starts_with(|c: char| c.is_alphabetic() || c == '_');
    let n = options.iter().map(|o| o.len()).max().unwrap_or(1);
    (0..n)
        .map(|k| {
            let args: Vec<&str> = options.iter().map(|o| o[k % o.len()]).collect();
            let getter = name.strip_prefix("get$");
            match (is_op, args.len(), getter) {
                (_, 1, Some(prop)) => format!("let a0 = {}; a0.{prop}", args[0]),
                (true, 1, _) => format!("{name}({})", args[0]),
                (true, 2, _) if name.ends_with('=') && !matches!(name, "==" | "!=" | "<=" | ">=") => {
                    format!("let a0 = {}; a0 {name} {}; a0", args[0], args[1])
                }
                (true, 2, _) => format!("({}) {name} ({})", args[0], args[1]),
                (false, _, None) if !name.contains('$') => format!("{name}({})", args.join(", ")),
                _ => String::new(),
            }
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// Every function a script can reach, called with hostile arguments (huge numbers and
/// ranges, strings, arrays and maps at their size limits, callbacks, infinities), returns: a
/// value or an error, within the deadline or stopped by it. Nothing blocks.
#[test]
fn every_function_a_script_can_reach_returns() {
    let sandbox = Sandbox::shared();
    let signatures = sandbox.function_signatures();
    assert!(signatures.len() > 300, "{}", signatures.len());
    let prelude = "fn f1(x) { x } fn f2(x, y) { 0 }\nfn value(bars) {\n\
        let big_s = \"\"; big_s.pad(65000, 'x');\n\
        let big_a = []; big_a.pad(9999, 1.5);\n\
        let big_m = #{}; for i in 0..200 { big_m[`k${i}`] = i; }\n";
    let mut ran = 0;
    let mut stopped = 0;
    let deadline = sandbox.limits().deadline;
    for sig in &signatures {
        for call in calls(sig) {
            let text = format!("{prelude}let r = {{ {call} }};\n1.0\n}}\n");
            let (tx, rx) = std::sync::mpsc::channel();
            let src = SourceFile::new("h.rhai", text.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = compile(ScriptKind::Indicator, &src, Sandbox::shared());
                let _ = tx.send((r.map(|_| ()).map_err(|d| d.message), started.elapsed()));
            });
            // A generous watchdog: a blocked call never answers; a slow one is stopped by the
            // deadline and says so.
            let (result, took) =
                rx.recv_timeout(deadline * 30).unwrap_or_else(|_| panic!("`{sig}` did not return: {call}"));
            ran += 1;
            if result.as_ref().is_err_and(|m| m.contains("deadline")) {
                stopped += 1;
            }
            assert!(
                took < deadline * 30,
                "`{sig}` took {took:?} and was not stopped by the deadline: {call} ({result:?})"
            );
        }
    }
    assert!(ran > 1000, "{ran} calls");
    eprintln!("{ran} hostile calls over {} signatures, {stopped} stopped by the deadline", signatures.len());
}

/// A script failing on every bar: `dsl run` writes each identical warning three times, then
/// counts it; the summary lines ("repeated N more times: ...") account for every other
/// occurrence the journal holds.
#[test]
fn a_running_bot_summarises_a_warning_that_repeats() {
    let dir = tempfile::tempdir().unwrap();
    scripted_bot(
        dir.path(),
        "fn value(bars) { 1.0 }",
        "fn filter(ctx) { if ctx.symbol == \"GOOG\" && ctx.time > 1262304000 { let x = (); x + 1 } else { true } }",
        "fn check(order, account, position) { () }",
    );
    let out = dsl().current_dir(dir.path()).args(["--log-format", "json", "run", "bot.yaml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let messages: Vec<String> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["message"].as_str().map(str::to_string))
        .collect();
    let c = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
    let mut st = c
        .prepare("SELECT script, origin, message, COUNT(*) FROM events WHERE kind = 'script_error' GROUP BY 1, 2, 3")
        .unwrap();
    let groups: Vec<(String, String, String, usize)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as usize)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(groups.iter().any(|g| g.3 > 3), "the filter fails on several bars: {groups:?}");
    for (script, origin, message, n) in groups {
        let text = format!("script_error: script {script} of {origin}: {message}");
        let shown = messages.iter().filter(|m| **m == text).count();
        assert_eq!(shown, n.min(3), "{text}");
        let summarised: usize = messages
            .iter()
            .filter_map(|m| m.strip_suffix(&format!(" more times: {text}")))
            .filter_map(|m| m.strip_prefix("repeated ").and_then(|k| k.parse::<usize>().ok()))
            .sum();
        assert_eq!(summarised, n.saturating_sub(3), "{text}");
    }
}
