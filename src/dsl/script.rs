//! The rhai escape hatch: sandboxed scripts for the rare logic an expression cannot say.
//!
//! Three uses, each with a fixed entry function:
//!
//! | use | YAML | entry function | returns |
//! | --- | --- | --- | --- |
//! | custom indicator | strategy `indicators: {name: {script, window}}` | `fn value(bars)` | a number, or `()` for undefined |
//! | entry filter | strategy `filter: {script}` | `fn filter(ctx)` | `true` to let the entry through |
//! | guardrail | policy rule `script:` | `fn check(order, account, position)` | `()`/`true`: allow; `false`: deny with the rule's message; a string: deny with that message |
//!
//! `bars` is a map of arrays (`bars.close[bars.close.len() - 1]` is the current close), oldest
//! first, `window` bars long. `ctx` has `symbol`, `strategy`, `time` (UTC seconds), `date`
//! (`YYYY-MM-DD`), `weekday` (0 = Monday), `hour`, `minute`, `bar` (open, high, low, close,
//! volume) and `account`. `order`, `account` and `position` hold the rule language's fields of
//! the same names (`order.notional`, `account.equity`, ...); an undefined field is `()`, so
//! using it in arithmetic is an error, and errors fail closed.
//!
//! **Sandbox.** Each script is compiled once, by an [`rhai::Engine::new_raw`] engine with only
//! the core, logic, array, map, math and string packages: no module `import`, no `eval`, no
//! printing, no file or clock access. Variables must be declared (strict variables). Numbers
//! are f64: `/` between integers gives a float, so `10 / 4` is `2.5`. Every call is bounded by
//! [`Limits`]: operations, call depth, expression depth, string, array and map sizes, and a
//! wall-clock deadline.
//!
//! **Failing closed.** A script that errors or hits a limit at run time returns a
//! [`ScriptError`]: a guardrail then denies, a filter skips the entry, an indicator is undefined
//! on that bar (so rules that read it do not fire). The engine journals the error.
//!
//! Compiling (see [`compile`]) also checks the entry function and dry-runs the script once on a
//! synthetic context, so that `dsl validate` catches a script that cannot run.

use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{AST, Array, Dynamic, EvalAltResult, FLOAT, INT, Map, Position, Scope};

use super::catalog::FIELDS;
use super::types::ValueKind;
use crate::diagnostics::{Diagnostic, SourceFile, Span, codes};

/// What a script is for; decides its entry function and result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptKind {
    /// A custom indicator: `fn value(bars)`.
    Indicator,
    /// An entry filter: `fn filter(ctx)`.
    Filter,
    /// A guardrail: `fn check(order, account, position)`.
    Guard,
}

impl ScriptKind {
    /// The entry function's name and parameter names.
    pub fn entry(self) -> (&'static str, &'static [&'static str]) {
        match self {
            ScriptKind::Indicator => ("value", &["bars"]),
            ScriptKind::Filter => ("filter", &["ctx"]),
            ScriptKind::Guard => ("check", &["order", "account", "position"]),
        }
    }

    /// How the use is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            ScriptKind::Indicator => "a custom indicator",
            ScriptKind::Filter => "an entry filter",
            ScriptKind::Guard => "a guardrail",
        }
    }
}

/// Bounds on every script call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations per call.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Nesting depth of expressions (and of expressions inside functions).
    pub max_expr_depth: usize,
    /// Characters in a string.
    pub max_string_size: usize,
    /// Elements in an array.
    pub max_array_size: usize,
    /// Entries in a map.
    pub max_map_size: usize,
    /// Wall-clock time per call: the safety net behind `max_operations`, which decides in
    /// practice (1M operations take about 50 ms), so that a loaded machine does not change a
    /// backtest's result.
    pub deadline: Duration,
    /// Failed calls in a row after which a script is disabled for the rest of the run.
    pub max_consecutive_failures: u32,
    /// Wall-clock time spent in failed calls after which a script is disabled for the run.
    pub max_failure_time: Duration,
}

impl Default for Limits {
    /// 1M operations, 32 call levels, expression depth 64, 64 KiB strings, 10,000-element
    /// arrays, 1,000-entry maps, 1 s per call; disabled for the run after 10 failures in a row
    /// or 5 s spent failing.
    fn default() -> Self {
        Limits {
            max_operations: 1_000_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 1_000,
            deadline: Duration::from_secs(1),
            max_consecutive_failures: 10,
            max_failure_time: Duration::from_secs(5),
        }
    }
}

pub use crate::config::script_ref::MAX_WINDOW;

thread_local! {
    /// Deadline of the script call running on this thread.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A configured rhai engine. [`Sandbox::shared`] is the one the runtime uses.
pub struct Sandbox {
    engine: rhai::Engine,
    limits: Limits,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A sandbox with the given limits (see the module docs for what it allows).
    pub fn new(limits: Limits) -> Self {
        let mut e = rhai::Engine::new_raw();
        e.register_global_module(CorePackage::new().as_shared_module());
        e.register_global_module(LogicPackage::new().as_shared_module());
        e.register_global_module(BasicArrayPackage::new().as_shared_module());
        e.register_global_module(BasicMapPackage::new().as_shared_module());
        e.register_global_module(BasicMathPackage::new().as_shared_module());
        e.register_global_module(MoreStringPackage::new().as_shared_module());
        // Built-in fast operators would bypass the float division registered below.
        e.set_fast_operators(false);
        e.register_fn("/", |a: INT, b: INT| a as FLOAT / b as FLOAT);
        e.disable_symbol("eval");
        e.disable_symbol("import");
        e.disable_symbol("export");
        e.set_strict_variables(true);
        e.set_max_operations(limits.max_operations);
        e.set_max_call_levels(limits.max_call_levels);
        e.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
        e.set_max_string_size(limits.max_string_size);
        e.set_max_array_size(limits.max_array_size);
        e.set_max_map_size(limits.max_map_size);
        e.set_max_modules(0);
        // `sleep` (rhai's core package) blocks the thread where no operation is counted and no
        // deadline is checked: shadowed here (the engine's own functions come first).
        let no_sleep =
            || -> Result<(), Box<EvalAltResult>> { Err("`sleep` is not available in a sandboxed script".into()) };
        e.register_fn("sleep", move |_: FLOAT| no_sleep());
        e.register_fn("sleep", move |_: INT| no_sleep());
        // rhai checks a map's size when a property is assigned but not when `m[key] = v`
        // adds a key, so a loop could grow a map far past the limit before its end: every new
        // key is checked here, as it is added. (Indexing a map with a key it lacks adds the key
        // with `()`, which is what an assignment needs; a read sees `()` either way.)
        let max_map = limits.max_map_size;
        e.on_map_missing_property(move |map, key, _| {
            if max_map > 0 && map.len() >= max_map {
                return Err(EvalAltResult::ErrorDataTooLarge("Size of object map".into(), Position::NONE).into());
            }
            map.insert(key.into(), Dynamic::UNIT);
            match map.get_mut(key) {
                Some(value) => value.try_into(),
                None => Err("map entry vanished".into()),
            }
        });
        e.on_progress(|ops| {
            // Reading the clock costs; every 256 operations is often enough.
            if ops % 256 == 0 {
                let late = DEADLINE.with(|d| d.get()).is_some_and(|d| Instant::now() > d);
                if late {
                    return Some(Dynamic::from("deadline"));
                }
            }
            None
        });
        Sandbox { engine: e, limits }
    }

    /// The process-wide sandbox with default [`Limits`].
    pub fn shared() -> &'static Sandbox {
        static SHARED: OnceLock<Sandbox> = OnceLock::new();
        SHARED.get_or_init(|| Sandbox::new(Limits::default()))
    }

    /// Every function a script can call, as rhai writes their signatures
    /// (`name(param: type, ...) -> type`): the sandbox's whole surface, for tests that call
    /// each one with hostile arguments.
    pub fn function_signatures(&self) -> Vec<String> {
        self.engine.gen_fn_signatures(true)
    }

    /// Its limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn call(&self, script: &Script, args: impl rhai::FuncArgs) -> Result<Dynamic, ScriptError> {
        let (name, _) = script.kind.entry();
        let deadline = self.limits.deadline;
        let previous = DEADLINE.with(|d| d.replace(Some(Instant::now() + deadline)));
        let started = Instant::now();
        let result = self.engine.call_fn::<Dynamic>(&mut Scope::new(), &script.ast, name, args);
        DEADLINE.with(|d| d.set(previous));
        let elapsed = started.elapsed();
        // A native function that blocked past the deadline returns normally (the progress
        // callback only runs between operations): its result is not trusted either.
        if elapsed > deadline {
            return Err(ScriptError::Deadline(deadline));
        }
        result.map_err(|e| ScriptError::from_rhai(&e, elapsed, &self.limits))
    }
}

/// A compiled script and where it came from.
#[derive(Clone)]
pub struct Script {
    /// What it is for.
    pub kind: ScriptKind,
    /// The `.rhai` file.
    pub source: Arc<SourceFile>,
    /// XXH3 of the kind and text: equal scripts share graph nodes.
    pub hash: u64,
    ast: Arc<AST>,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script").field("kind", &self.kind).field("file", &self.source.name).finish_non_exhaustive()
    }
}

impl PartialEq for Script {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

/// A strategy's custom indicator, compiled: rules see it as a series named `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomIndicator {
    /// The name rules use.
    pub name: String,
    /// The compiled `fn value(bars)` script.
    pub script: Arc<Script>,
    /// Bars per call.
    pub window: u32,
}

/// Why a script call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptError {
    /// The script raised an error (bad index, unknown function, arithmetic on `()`...).
    Runtime(String),
    /// A limit was hit: operations, call depth, data size.
    Limit(String),
    /// The call ran past its wall-clock deadline.
    Deadline(Duration),
    /// The entry function returned a value of the wrong type.
    WrongType(String),
    /// The script failed too often in this run ([`ScriptBudgets`]) and is no longer called:
    /// what it guards fails closed. `first` is true for the call that disabled it (the one
    /// worth journaling).
    Disabled {
        /// Why it was disabled, with its last failure.
        message: String,
        /// This call disabled it.
        first: bool,
    },
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptError::Runtime(m) => write!(f, "script error: {m}"),
            ScriptError::Limit(m) => write!(f, "script stopped: {m}"),
            ScriptError::Deadline(d) => write!(f, "script stopped: deadline of {} ms passed", d.as_millis()),
            ScriptError::WrongType(m) => write!(f, "script returned {m}"),
            ScriptError::Disabled { message, .. } => write!(f, "script disabled for the rest of the run: {message}"),
        }
    }
}

impl ScriptError {
    fn from_rhai(e: &EvalAltResult, elapsed: Duration, limits: &Limits) -> Self {
        let inner = e.unwrap_inner();
        let at = |msg: String| {
            let p = inner.position();
            match (p.line(), p.position()) {
                (Some(l), Some(c)) => format!("{msg} (line {l}, position {c})"),
                _ => msg,
            }
        };
        match inner {
            EvalAltResult::ErrorTerminated(..) if elapsed >= limits.deadline => ScriptError::Deadline(limits.deadline),
            EvalAltResult::ErrorTooManyOperations(_) => {
                ScriptError::Limit(at(format!("too many operations (more than {})", limits.max_operations)))
            }
            EvalAltResult::ErrorStackOverflow(_) => {
                ScriptError::Limit(at(format!("calls nested too deeply (more than {} levels)", limits.max_call_levels)))
            }
            EvalAltResult::ErrorDataTooLarge(..)
            | EvalAltResult::ErrorTooManyVariables(_)
            | EvalAltResult::ErrorTooManyModules(_) => ScriptError::Limit(inner.to_string()),
            _ => ScriptError::Runtime(e.to_string()),
        }
    }
}

/// Per-run budgets of scripts: a script that fails [`Limits::max_consecutive_failures`] times
/// in a row, or spends [`Limits::max_failure_time`] in failed calls, is disabled for the rest
/// of the run (its later calls fail at once with [`ScriptError::Disabled`], so what it guards
/// fails closed), instead of costing its deadline on every bar of a long series.
///
/// Keyed by the script's hash, so a script used on several symbols has one budget. Clones
/// share the same table; one table per run (the engine makes it).
#[derive(Debug, Clone, Default)]
pub struct ScriptBudgets(Arc<std::sync::Mutex<std::collections::HashMap<u64, Budget>>>);

#[derive(Debug, Clone, Default)]
struct Budget {
    consecutive: u32,
    failing: Duration,
    disabled: Option<String>,
}

impl ScriptBudgets {
    /// Runs `call` (a call of `script`) against the script's budget with `limits`.
    ///
    /// # Errors
    /// The call's own error; [`ScriptError::Disabled`] once the budget is spent (with
    /// `first: true` on the call that spent it).
    pub fn run<T>(
        &self,
        script: &Script,
        limits: &Limits,
        call: impl FnOnce() -> Result<T, ScriptError>,
    ) -> Result<T, ScriptError> {
        let disabled = self.with(script.hash, |b| b.disabled.clone());
        if let Some(message) = disabled {
            return Err(ScriptError::Disabled { message, first: false });
        }
        let started = Instant::now();
        let result = call();
        let elapsed = started.elapsed();
        self.with(script.hash, |b| match &result {
            Ok(_) => {
                b.consecutive = 0;
                Ok(())
            }
            Err(e) => {
                b.consecutive += 1;
                b.failing += elapsed;
                let why = if b.consecutive >= limits.max_consecutive_failures {
                    format!("{} failures in a row", b.consecutive)
                } else if b.failing >= limits.max_failure_time {
                    format!("{} ms spent in failed calls", b.failing.as_millis())
                } else {
                    return Ok(());
                };
                let message = format!("{why}; the last: {e}");
                b.disabled = Some(message.clone());
                Err(ScriptError::Disabled { message, first: true })
            }
        })?;
        result
    }

    /// Whether `script` was disabled in this run.
    pub fn is_disabled(&self, script: &Script) -> bool {
        self.with(script.hash, |b| b.disabled.is_some())
    }

    fn with<R>(&self, hash: u64, f: impl FnOnce(&mut Budget) -> R) -> R {
        // A poisoned lock (a panic elsewhere while holding it) still holds valid counts.
        let mut table = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(table.entry(hash).or_default())
    }
}

/// What a guardrail script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the order through.
    Allow,
    /// Deny it, with the script's message (or the rule's when `None`).
    Deny(Option<String>),
}

/// Compiles a script for `kind`: parses it, checks that it defines the entry function with the
/// right number of parameters, and dry-runs it once on a synthetic context.
///
/// # Errors
/// Diagnostics located in the script file: a syntax error (`E5001`), a missing entry function
/// (`E5002`), or a failure of the dry run (`E5003`).
pub fn compile(kind: ScriptKind, source: &Arc<SourceFile>, sandbox: &Sandbox) -> Result<Script, Diagnostic> {
    let ast = sandbox.engine.compile(&source.text).map_err(|e| {
        let msg = e.err_type().to_string();
        Diagnostic::error(codes::SCRIPT_SYNTAX, format!("script does not compile: {}", lowercase_first(&msg)))
            .at(source, span_at(source, e.position()))
            .help(syntax_help(&msg))
    })?;
    let (name, params) = kind.entry();
    let signature = format!("fn {name}({})", params.join(", "));
    let found = ast.iter_functions().find(|f| f.name == name);
    match found {
        Some(f) if f.params.len() == params.len() => {}
        Some(f) => {
            return Err(Diagnostic::error(
                codes::SCRIPT_ENTRY,
                format!(
                    "`{name}` takes {} parameter(s) here, but {} needs `{signature}`",
                    f.params.len(),
                    kind.describe()
                ),
            )
            .at(source, Span::new(0, 0))
            .help(format!("define `{signature}`")));
        }
        None => {
            let defined: Vec<String> = ast.iter_functions().map(|f| format!("`{}`", f.name)).collect();
            let help = if defined.is_empty() {
                format!("define `{signature} {{ ... }}`")
            } else {
                format!("define `{signature} {{ ... }}` (the script defines {})", defined.join(", "))
            };
            return Err(Diagnostic::error(
                codes::SCRIPT_ENTRY,
                format!("script for {} must define `{signature}`", kind.describe()),
            )
            .at(source, Span::new(0, 0))
            .help(help));
        }
    }
    let mut hasher_input = vec![kind as u8];
    hasher_input.extend_from_slice(source.text.as_bytes());
    let script =
        Script { kind, source: source.clone(), hash: xxhash_rust::xxh3::xxh3_64(&hasher_input), ast: Arc::new(ast) };
    let dry = match kind {
        ScriptKind::Indicator => {
            let n = 50;
            let close: Vec<f64> = (0..n).map(|i| 100.0 + (i as f64 * 0.3).sin() * 5.0).collect();
            let (open, high, low) = (
                close.iter().map(|c| c - 0.5).collect::<Vec<_>>(),
                close.iter().map(|c| c + 1.0).collect::<Vec<_>>(),
                close.iter().map(|c| c - 1.0).collect::<Vec<_>>(),
            );
            let volume = vec![1_000_000.0; n];
            script
                .indicator(sandbox, &WindowBars { open: &open, high: &high, low: &low, close: &close, volume: &volume })
                .map(|_| ())
        }
        ScriptKind::Filter => script.filter(sandbox, &synthetic_filter_context()).map(|_| ()),
        ScriptKind::Guard => {
            let fields = synthetic_fields();
            let names = |path: &str| -> Option<String> {
                Some(match path {
                    "order.symbol" => "SYNTH".into(),
                    "order.strategy" => "dry_run".into(),
                    "order.side" => "buy".into(),
                    _ => "entry".into(),
                })
            };
            script.guard(sandbox, &fields, &names).map(|_| ())
        }
    };
    dry.map_err(|e| {
        Diagnostic::error(codes::SCRIPT_DRY_RUN, format!("script failed its dry run on a synthetic context: {e}"))
            .at(source, error_span(source, &e))
            .help(format!(
                "`dsl validate` calls `{signature}` once with made-up values; at run time a failing script fails closed"
            ))
    })?;
    Ok(script)
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn syntax_help(msg: &str) -> String {
    if msg.contains("'import'") || msg.contains("'eval'") || msg.contains("'export'") {
        "scripts run in a sandbox: no modules and no `eval`".into()
    } else if msg.contains("Undefined variable") {
        "declare variables with `let` before using them (strict variables)".into()
    } else {
        "see https://rhai.rs/book/ for the language".into()
    }
}

/// Byte span of a rhai position (1-based line and column) in `file`: the rest of that token.
fn span_at(file: &SourceFile, pos: Position) -> Span {
    let (Some(line), Some(col)) = (pos.line(), pos.position()) else { return Span::new(0, 0) };
    let mut offset = 0;
    for (i, l) in file.text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let start = offset + l.char_indices().nth(col.saturating_sub(1)).map_or(l.len(), |(b, _)| b);
            let rest = &file.text[start..];
            let len = rest.find(|c: char| c.is_whitespace() || "();,{}[]".contains(c)).unwrap_or(rest.len()).max(1);
            return Span::new(start, (start + len).min(file.text.len()));
        }
        offset += l.len();
    }
    Span::new(file.text.len(), file.text.len())
}

/// Where in the script a run-time error happened (the message ends with `(line L, position C)`).
fn error_span(file: &SourceFile, e: &ScriptError) -> Span {
    let text = e.to_string();
    let at = text.rfind("(line ").and_then(|i| {
        let rest = &text[i + 6..];
        let (line, rest) = rest.split_once(", position ")?;
        let col = rest.split(')').next()?;
        Some((line.trim().parse::<u16>().ok()?, col.trim().parse::<u16>().ok()?))
    });
    match at {
        Some((l, c)) => span_at(file, Position::new(l, c)),
        None => Span::new(0, 0),
    }
}

/// The bars a custom indicator sees, oldest first; all slices have the same length.
#[derive(Debug, Clone, Copy)]
pub struct WindowBars<'a> {
    /// Opening prices.
    pub open: &'a [f64],
    /// Highest prices.
    pub high: &'a [f64],
    /// Lowest prices.
    pub low: &'a [f64],
    /// Closing prices.
    pub close: &'a [f64],
    /// Volumes.
    pub volume: &'a [f64],
}

/// What an entry filter sees.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterContext {
    /// Symbol.
    pub symbol: String,
    /// Strategy name.
    pub strategy: String,
    /// Bar open time, UTC seconds.
    pub time: i64,
    /// The bar: open, high, low, close, volume.
    pub bar: [f64; 5],
    /// Context field values by [`super::catalog::FieldId`] (only `account.*` is passed).
    pub fields: Vec<f64>,
}

fn num(v: f64) -> Dynamic {
    if v.is_nan() { Dynamic::UNIT } else { Dynamic::from_float(v) }
}

fn array(xs: &[f64]) -> Dynamic {
    Dynamic::from_array(xs.iter().map(|&x| num(x)).collect::<Array>())
}

/// The map of one field group (`account`, `position`, `order`): numbers from `fields`
/// (undefined → `()`), strings from `names` (by field path).
fn group(prefix: &str, fields: &[f64], names: &dyn Fn(&str) -> Option<String>) -> Dynamic {
    let mut m = Map::new();
    for f in FIELDS.iter().filter(|f| f.path.starts_with(prefix)) {
        let key = &f.path[prefix.len()..];
        let v = match f.kind {
            ValueKind::Str => names(f.path).map_or(Dynamic::UNIT, Dynamic::from),
            _ => num(fields.get(f.id as usize).copied().unwrap_or(f64::NAN)),
        };
        m.insert(key.into(), v);
    }
    Dynamic::from_map(m)
}

fn synthetic_fields() -> Vec<f64> {
    let mut f = vec![f64::NAN; super::catalog::FIELD_COUNT];
    for spec in FIELDS {
        f[spec.id as usize] = match spec.path {
            "account.equity" | "account.peak_equity" => 100_000.0,
            "account.cash" => 80_000.0,
            "account.exposure" => 20_000.0,
            "account.drawdown" => 0.0,
            "account.open_positions" => 2.0,
            "position.quantity" => 10.0,
            "position.entry_price" => 100.0,
            "position.notional" => 1_010.0,
            "position.unrealized_pnl" => 10.0,
            "position.unrealized_return" => 0.01,
            "position.bars_held" => 3.0,
            "order.quantity" => 10.0,
            "order.price" => 101.0,
            "order.notional" => 1_010.0,
            _ => f64::NAN,
        };
    }
    f
}

fn synthetic_filter_context() -> FilterContext {
    FilterContext {
        symbol: "SYNTH".into(),
        strategy: "dry_run".into(),
        // 2024-01-03T15:30:00Z, a Wednesday.
        time: 1_704_295_800,
        bar: [100.0, 101.0, 99.0, 100.5, 1_000_000.0],
        fields: synthetic_fields(),
    }
}

impl Script {
    /// Runs a custom indicator on a window of bars. `()`, `NaN` and infinities are undefined
    /// (`NaN`).
    ///
    /// # Errors
    /// A [`ScriptError`] when the script fails, hits a limit, or returns something else than a
    /// number or `()`.
    pub fn indicator(&self, sandbox: &Sandbox, bars: &WindowBars<'_>) -> Result<f64, ScriptError> {
        let mut m = Map::new();
        m.insert("open".into(), array(bars.open));
        m.insert("high".into(), array(bars.high));
        m.insert("low".into(), array(bars.low));
        m.insert("close".into(), array(bars.close));
        m.insert("volume".into(), array(bars.volume));
        let v = sandbox.call(self, (Dynamic::from_map(m),))?;
        // Infinities (a division by zero) are no value either: undefined, like `()`.
        let finite = |x: f64| if x.is_finite() { x } else { f64::NAN };
        if v.is_unit() {
            Ok(f64::NAN)
        } else if let Ok(x) = v.as_float() {
            Ok(finite(x))
        } else if let Ok(i) = v.as_int() {
            Ok(i as f64)
        } else {
            Err(ScriptError::WrongType(format!("{} where `value` must return a number or `()`", v.type_name())))
        }
    }

    /// Runs an entry filter: `true` lets the entry through.
    ///
    /// # Errors
    /// A [`ScriptError`] when the script fails, hits a limit, or does not return a bool.
    pub fn filter(&self, sandbox: &Sandbox, ctx: &FilterContext) -> Result<bool, ScriptError> {
        use chrono::{Datelike, Timelike};
        let t = chrono::DateTime::from_timestamp(ctx.time, 0).unwrap_or_default();
        let mut m = Map::new();
        m.insert("symbol".into(), Dynamic::from(ctx.symbol.clone()));
        m.insert("strategy".into(), Dynamic::from(ctx.strategy.clone()));
        m.insert("time".into(), Dynamic::from_int(ctx.time));
        m.insert("date".into(), Dynamic::from(t.format("%Y-%m-%d").to_string()));
        m.insert("weekday".into(), Dynamic::from_int(i64::from(t.weekday().num_days_from_monday())));
        m.insert("hour".into(), Dynamic::from_int(i64::from(t.hour())));
        m.insert("minute".into(), Dynamic::from_int(i64::from(t.minute())));
        let mut bar = Map::new();
        for (k, v) in ["open", "high", "low", "close", "volume"].iter().zip(ctx.bar) {
            bar.insert((*k).into(), num(v));
        }
        m.insert("bar".into(), Dynamic::from_map(bar));
        m.insert("account".into(), group("account.", &ctx.fields, &|_| None));
        let v = sandbox.call(self, (Dynamic::from_map(m),))?;
        v.as_bool().map_err(|t| ScriptError::WrongType(format!("{t} where `filter` must return `true` or `false`")))
    }

    /// Runs a guardrail on an order. `fields` are the order's context fields (by
    /// [`super::catalog::FieldId`]); `names` gives the string fields by path (`order.symbol`).
    ///
    /// # Errors
    /// A [`ScriptError`] when the script fails, hits a limit, or returns something else than
    /// `()`, a bool or a string.
    pub fn guard(
        &self,
        sandbox: &Sandbox,
        fields: &[f64],
        names: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Verdict, ScriptError> {
        let args =
            (group("order.", fields, names), group("account.", fields, names), group("position.", fields, names));
        let v = sandbox.call(self, args)?;
        if v.is_unit() {
            return Ok(Verdict::Allow);
        }
        if let Ok(b) = v.as_bool() {
            return Ok(if b { Verdict::Allow } else { Verdict::Deny(None) });
        }
        if v.is_string() {
            return Ok(Verdict::Deny(Some(v.to_string())));
        }
        Err(ScriptError::WrongType(format!(
            "{} where `check` must return `()` or `true` (allow), `false` or a message (deny)",
            v.type_name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(kind: ScriptKind, text: &str) -> Result<Script, Diagnostic> {
        compile(kind, &SourceFile::new("s.rhai", text), Sandbox::shared())
    }

    fn bars(close: &[f64]) -> (Vec<f64>, Vec<f64>) {
        (close.to_vec(), vec![1.0; close.len()])
    }

    #[test]
    fn numbers_are_floats_and_undefined_is_unit() {
        let s = script(
            ScriptKind::Indicator,
            "fn value(bars) { let n = bars.close.len(); if n < 3 { () } else { 10 / 4 } }",
        )
        .unwrap();
        let (c, v) = bars(&[1.0, 2.0, 3.0]);
        let w = WindowBars { open: &c, high: &c, low: &c, close: &c, volume: &v };
        assert_eq!(s.indicator(Sandbox::shared(), &w).unwrap(), 2.5);
        let w = WindowBars { open: &c[..2], high: &c[..2], low: &c[..2], close: &c[..2], volume: &v[..2] };
        assert!(s.indicator(Sandbox::shared(), &w).unwrap().is_nan());
    }

    #[test]
    fn guard_verdicts() {
        let s = script(
            ScriptKind::Guard,
            r#"fn check(order, account, position) {
                if order.side == "sell" { return (); }
                if order.notional > 0.05 * account.equity { "too big: " + order.notional } else { true }
            }"#,
        )
        .unwrap();
        let mut f = synthetic_fields();
        let names = |p: &str| Some(if p == "order.side" { "buy".to_string() } else { "x".to_string() });
        assert_eq!(s.guard(Sandbox::shared(), &f, &names).unwrap(), Verdict::Allow);
        f[super::super::catalog::FieldId::OrderNotional as usize] = 6_000.0;
        assert_eq!(s.guard(Sandbox::shared(), &f, &names).unwrap(), Verdict::Deny(Some("too big: 6000.0".into())));
        // Undefined equity: arithmetic on `()` errors, which the caller treats as a denial.
        f[super::super::catalog::FieldId::AccountEquity as usize] = f64::NAN;
        assert!(matches!(s.guard(Sandbox::shared(), &f, &names), Err(ScriptError::Runtime(_))));
    }

    #[test]
    fn compile_errors_point_into_the_script() {
        let e = script(ScriptKind::Filter, "fn filter(ctx) {\n  let x = ;\n}").unwrap_err();
        assert_eq!(e.code, codes::SCRIPT_SYNTAX);
        assert_eq!(e.location().map(|l| (l.1, l.2)), Some((2, 11)));
        let e = script(ScriptKind::Filter, "fn filtre(ctx) { true }").unwrap_err();
        assert_eq!(e.code, codes::SCRIPT_ENTRY);
        assert!(e.help.as_deref().unwrap().contains("`filtre`"));
        let e = script(ScriptKind::Filter, "fn filter(ctx) { ctx.bar.close > 1000.0 || nope }").unwrap_err();
        assert_eq!(e.code, codes::SCRIPT_SYNTAX, "strict variables: {e:?}");
        let e = script(ScriptKind::Filter, "fn filter(ctx) { ctx.bar.close.foo() }").unwrap_err();
        assert_eq!(e.code, codes::SCRIPT_DRY_RUN);
    }
}
