//! The `dsl` command line.
//!
//! Exit codes: `0` success (for `validate`: everything valid; for `test`: every case passed),
//! `1` invalid input (documents, rules or data with errors; a failing rule test), `2` usage or
//! I/O errors (bad flags, unreadable files), `5` nothing found to validate or test.

mod backtest;
mod control;
mod data;
mod eval;
mod gate;
mod import;
mod logging;
mod report;
mod run;
mod shell;
mod status;
mod stress;
mod sweep;
mod test;
mod validate;
mod walkforward;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostics::{Diagnostic, codes, render_human};

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for invalid documents, rules or data.
pub const EXIT_INVALID: u8 = 1;
/// Exit code for usage and I/O errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a command found nothing to work on (no documents to validate, no rule
/// tests to run), as pytest exits 5 when it collects no tests: an empty directory is not a
/// success a deploy pipeline should trust.
pub const EXIT_NOTHING: u8 = 5;

/// tradedsl: strategies, risk guardrails and gates as data.
#[derive(Debug, Parser)]
#[command(name = "dsl", version, about, long_about = None)]
pub struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    /// More log detail: `-v` debug, `-vv` trace (`RUST_LOG` overrides).
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, value_enum, default_value_t = logging::LogFormat::Text, global = true)]
    pub log_format: logging::LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check strategy, policy and bot files (or directories of them) for errors.
    Validate(validate::Args),
    /// Load CSV bars into a SQLite bar store (all files or nothing).
    Import(import::Args),
    /// Backtest a bot manifest (or a single strategy) on historical bars.
    Backtest(backtest::Args),
    /// Print the value of expressions on every bar of a data file, as CSV.
    Eval(eval::Args),
    /// Run rule tests (`kind: test` files): pass/fail per case; exits 1 on any failure.
    Test(test::Args),
    /// Replay a bot through stress scenarios (crash, gap, volatility, missing bars, broker
    /// outage) and report drawdowns and guardrail activity.
    Stress(stress::Args),
    /// Sweep a bot's params over their search spaces on every core: a ranked table, every
    /// trial as JSON and CSV, one journaled sweep run; `--shard K/N` and `merge` to scale out.
    Sweep(Box<sweep::Args>),
    /// Walk-forward analysis: optimise the search spaces on each in-sample window, trade the
    /// winner on the out-of-sample window after it; stitched metrics and efficiency.
    Walkforward(Box<walkforward::Args>),
    /// Halt a bot: no new orders until `dsl resume` (recorded in its journal).
    Halt(control::StateArgs),
    /// Resume a halted or reducing bot, saying why (recorded in its journal).
    Resume(control::StateArgs),
    /// The approval queue of `require_approval` rules: list, approve, reject.
    Approvals(control::ApprovalArgs),
    /// Run a bot: replayed or Alpaca bars, the simulated broker or Alpaca (live only behind
    /// every live gate); resumable after a crash, hot-reloadable with `--watch`.
    Run(run::Args),
    /// A bot's trading state, latest run, cash, equity, positions and pending approvals.
    Status(status::Args),
    /// Reports on a running bot's journal: execution quality, daily P&L, trading log.
    Report(report::Args),
    /// A bot's graduation gates: `status` (each criterion's value, threshold, window,
    /// pass/fail) and `check PHASE` (exit code for CI).
    Gate(gate::GateArgs),
    /// A person approves the promotion out of the active phase (its approval phrase).
    Approve(gate::ApproveArgs),
    /// Promote the bot to its next phase: every gate passes and the report is approved.
    Promote(gate::PromoteArgs),
    /// Bars from Alpaca's Market Data API into a bar store (`fetch`), and what a store holds
    /// (`list`).
    Data(data::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionArgs),
    /// Print the man page, dsl(1), or a command's (`dsl man run`).
    Man(shell::ManArgs),
}

/// Output settings shared by commands.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// Colour diagnostics.
    pub color: bool,
}

impl Out {
    /// Prints diagnostics to stderr.
    pub fn diags(&self, diags: &[Diagnostic]) {
        for d in diags {
            eprint!("{}", render_human(d, self.color));
        }
    }

    /// Prints one diagnostic and returns the exit code it implies.
    pub fn fail(&self, d: &Diagnostic) -> u8 {
        self.diags(std::slice::from_ref(d));
        exit_code_for(std::slice::from_ref(d))
    }
}

/// `2` when any error is about the environment rather than the documents (I/O, the broker or
/// data provider, a journal held or refusing, a command-line value), else `1`.
pub fn exit_code_for(diags: &[Diagnostic]) -> u8 {
    let usage = [codes::IO, codes::BROKER, codes::JOURNAL_CONFLICT, codes::BAD_ARGUMENT];
    if diags.iter().any(|d| d.is_error() && usage.contains(&d.code)) { EXIT_USAGE } else { EXIT_INVALID }
}

/// Parses arguments, runs the command, returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let out = Out { color };
    let quiet = matches!(&cli.command, Command::Run(a) if a.quiet);
    let _log_guard = logging::init(cli.verbose, quiet, cli.log_format, color);
    // A closed pipe (`dsl eval ... | head`) ends a command quietly, as it ends `cat`. Not for a
    // running bot: its stop must be its own (its output is best effort).
    if !matches!(cli.command, Command::Run(_)) {
        sigpipe::reset();
    }
    let code = match cli.command {
        Command::Validate(a) => validate::run(a, out),
        Command::Import(a) => import::run(a, out),
        Command::Backtest(a) => backtest::run(a, out),
        Command::Eval(a) => eval::run(a, out),
        Command::Test(a) => test::run(a, out),
        Command::Stress(a) => stress::run(a, out),
        Command::Sweep(a) => sweep::run(*a, out),
        Command::Walkforward(a) => walkforward::run(*a, out),
        Command::Halt(a) => control::halt(a, out),
        Command::Resume(a) => control::resume(a, out),
        Command::Approvals(a) => control::approvals(a, out),
        Command::Run(a) => run::run(a, out),
        Command::Status(a) => status::run(a, out),
        Command::Report(a) => report::run(a, out),
        Command::Gate(a) => gate::gate(a, out),
        Command::Approve(a) => gate::approve(a, out),
        Command::Promote(a) => gate::promote(a, out),
        Command::Data(a) => data::run(a, out),
        Command::Completions(a) => shell::completions(a),
        Command::Man(a) => shell::man(a),
    };
    crate::runtime::log_repeats::flush();
    ExitCode::from(code)
}

/// Flags shared by commands that read bars: the period and how to read CSV times.
#[derive(Debug, Clone, clap::Args)]
pub struct BarArgs {
    /// First bar to use (`2010-01-01` or RFC 3339); with `eval`, indicators still warm up on
    /// earlier bars.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,
    /// Last bar to use.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,
    /// IANA zone of timestamps written without an offset in CSV files (default UTC).
    #[arg(long, value_parser = parse_tz)]
    pub timezone: Option<chrono_tz::Tz>,
    /// strftime pattern of CSV time columns, e.g. `%d.%m.%Y %H:%M` (default: detected).
    #[arg(long)]
    pub time_format: Option<String>,
}

impl BarArgs {
    /// The data request of these options, reading `data` and `store` (none: the manifest's).
    pub fn request(
        &self,
        data: Vec<crate::runtime::library::source::DataArg>,
        store: Option<std::path::PathBuf>,
    ) -> crate::runtime::library::source::DataRequest {
        crate::runtime::library::source::DataRequest {
            data,
            store,
            from: self.from,
            to: self.to,
            timezone: self.timezone,
            time_format: self.time_format.clone(),
        }
    }
}

/// Where a command journals: `--no-journal` turns it off, `--journal FILE` chooses the file,
/// else the manifest's `database`.
pub fn journal_choice(
    journal: Option<&std::path::Path>,
    no_journal: bool,
) -> crate::runtime::research::backtest::JournalChoice {
    use crate::runtime::research::backtest::JournalChoice;
    match (journal, no_journal) {
        (_, true) => JournalChoice::Off,
        (Some(p), false) => JournalChoice::At(p.to_path_buf()),
        (None, false) => JournalChoice::Manifest,
    }
}

/// Parses an IANA time zone name for clap.
pub fn parse_tz(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("unknown time zone `{s}`; use an IANA name such as `America/New_York`"))
}

/// Parses a `--from`/`--to` bound for clap.
pub fn parse_time(s: &str) -> Result<i64, String> {
    crate::runtime::data::timeparse::parse_bound(s)
}

/// Parses a rate such as `0.001`, `0.1%` or `5bps` for clap (a fraction).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    crate::config::units::parse_number(s)
        .map(|(v, _)| v)
        .filter(|v| *v >= 0.0 && v.is_finite())
        .ok_or_else(|| format!("`{s}` is not a rate; write e.g. `0.001`, `0.1%` or `5bps`"))
}

/// Parses a commission or slippage override: a rate from 0 to 10%, the bounds a manifest's
/// `costs:` has.
pub fn parse_cost_rate(s: &str) -> Result<f64, String> {
    let v = parse_rate(s)?;
    if v > crate::config::manifest::MAX_COST_RATE {
        return Err(format!("`{s}` is more than 10% a fill; a manifest's costs allow 0 to 10%"));
    }
    Ok(v)
}

/// Parses a starting cash: a finite amount above 0 and at most
/// [`crate::config::manifest::MAX_CASH`], as in a manifest.
pub fn parse_cash(s: &str) -> Result<f64, String> {
    let max = crate::config::manifest::MAX_CASH;
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= max => Ok(v),
        Ok(_) => Err(format!("`{s}` is not a starting cash: write an amount above 0 and at most {max:e}")),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// Parses a name given on the command line (a symbol, a bot, a person, a reason): not empty,
/// no control characters, at most 200 characters. Surrounding spaces are dropped.
pub fn parse_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.chars().any(char::is_control) {
        return Err("must not hold control characters (a line break, a tab...)".into());
    }
    if t.chars().count() > 200 {
        return Err("must be at most 200 characters".into());
    }
    Ok(t.to_string())
}

/// Writes a file, creating its directory; `-` means standard output.
pub fn write_file(path: &std::path::Path, contents: &str) -> Result<(), Diagnostic> {
    if path.as_os_str() == "-" {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(contents.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot write to standard output: {e}")));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot create `{}`: {e}", dir.display())))?;
    }
    std::fs::write(path, contents)
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot write `{}`: {e}", path.display())))
}

/// A progress bar of `len` steps on standard error (indicatif), `template` naming the unit
/// (e.g. `"{bar:30} {pos}/{len} symbols  {elapsed}"`); hidden when `quiet` or when standard
/// error is not a terminal (a pipe, a log file), so that scripts and logs get no bar.
pub fn progress(len: u64, template: &str, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Prints `value` as one pretty JSON document on standard output (`--format json`).
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks: no two arguments of a command share a name or a short
    /// flag (a command's `-v` would shadow the global `-v/--verbose`).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
