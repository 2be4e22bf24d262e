//! `dsl gate status|check`, `dsl approve`, `dsl promote`: a bot's graduation through its
//! phases ([`crate::runtime::phases::gates`], [`crate::runtime::phases::phase_store`]).
//!
//! The active phase is the last promotion's or demotion's, else the manifest's `phase:`. Its
//! gates are evaluated against the bot's journal (the manifest's `database`, or `--journal`).

use std::path::PathBuf;

use super::validate::Format;
use super::{EXIT_INVALID, EXIT_OK, Out};
use crate::diagnostics::{Diagnostic, codes};
use crate::dsl::bundle::Bundle;
use crate::runtime::library::loader::load_bundle;
use crate::runtime::phases::gates::{self, GateReport};
use crate::runtime::phases::phase_store::{self, ApprovalFile};

/// The bot and where its journal is.
#[derive(Debug, clap::Args)]
pub struct BotArgs {
    /// The bot manifest (`kind: bot`).
    pub manifest: PathBuf,
    /// Journal database (default: the manifest's `database`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

/// Arguments of `dsl gate`.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    #[command(subcommand)]
    what: GateWhat,
}

#[derive(Debug, clap::Subcommand)]
enum GateWhat {
    /// The active phase and, for each gate and demotion rule, the metric values, the
    /// threshold, the window and pass/fail.
    Status {
        #[command(flatten)]
        bot: BotArgs,
        /// Another phase than the active one.
        #[arg(long, value_parser = super::parse_name)]
        phase: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Exit 0 when every gate of PHASE passes, 1 otherwise (for CI).
    Check {
        /// The phase.
        phase: String,
        #[command(flatten)]
        bot: BotArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

/// Arguments of `dsl approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The phase whose promotion is approved (the active one).
    phase: String,
    #[command(flatten)]
    bot: BotArgs,
    /// Who approves.
    #[arg(long, value_parser = super::parse_name)]
    by: String,
    /// The phase's approval phrase, e.g. "Proceed to Phase 2".
    #[arg(long)]
    phrase: String,
    /// Output format: a sentence (`human`) or one JSON document (`json`: `approval`, `by`,
    /// `phase`, `next`, `report_hash`).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Arguments of `dsl promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    bot: BotArgs,
    /// An approval file (committed to git) naming the gate report's hash, instead of a
    /// `dsl approve` on record.
    #[arg(long, value_name = "FILE")]
    approval_file: Option<PathBuf>,
    /// Output format: a sentence (`human`) or one JSON document (`json`: `bot`, `from`, `to`,
    /// `approved_by`, `report_hash`, `mode`).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// The bundle, the journal, the bot's name and its active phase.
fn load(b: &BotArgs, out: Out) -> Result<(Bundle, PathBuf, String, Option<String>), u8> {
    let loaded = match load_bundle(&b.manifest) {
        Ok(l) => l,
        Err(diags) => {
            out.diags(&diags);
            return Err(super::exit_code_for(&diags));
        }
    };
    let Some(bot) = loaded.bundle.bot.clone() else {
        return Err(
            out.fail(&Diagnostic::error(codes::RUNTIME_REFUSED, "phase gates belong to a bot manifest (`kind: bot`)"))
        );
    };
    let Some(journal) = loaded.journal(b.journal.as_deref()) else {
        return Err(out.fail(
            &Diagnostic::error(codes::RUNTIME_REFUSED, "the gates read the bot's journal")
                .help("set `database:` in the manifest or pass `--journal FILE`"),
        ));
    };
    if journal.exists() {
        // A damaged journal is said to be damaged, before anything reads it.
        crate::runtime::journal::open_read_checked(&journal).map_err(|d| out.fail(&d))?;
    }
    let active = phase_store::active_phase(&journal, &loaded.bundle).map_err(|d| out.fail(&d))?;
    Ok((loaded.bundle, journal, bot.name.value, active))
}

fn no_phase() -> Diagnostic {
    Diagnostic::error(codes::RUNTIME_REFUSED, "the bot has no active phase")
        .help("list `phases:` and set `phase:` in the manifest")
}

fn print(r: &GateReport, format: Format) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(r).unwrap_or_default()),
        Format::Human => print!("{}", gates::human(r)),
    }
}

/// `dsl gate status|check`.
pub fn gate(args: GateArgs, out: Out) -> u8 {
    let (b, phase, format, check) = match args.what {
        GateWhat::Status { bot, phase, format } => (bot, phase, format, false),
        GateWhat::Check { phase, bot, format } => (bot, Some(phase), format, true),
    };
    let (bundle, journal, bot, active) = match load(&b, out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(phase) = phase.or(active) else { return out.fail(&no_phase()) };
    let r = match gates::report(&journal, &bot, &bundle, &phase) {
        Ok(r) => r,
        Err(d) => return out.fail(&d),
    };
    print(&r, format);
    if format == Format::Human && !check {
        match phase_store::log(&journal, &bot) {
            Ok(log) if !log.is_empty() => {
                println!("\nphase history:");
                for e in log.iter().rev().take(5).rev() {
                    let time = crate::engine::market::format_utc(e.ts);
                    println!("  {time} {:<9} {} -> {} by {}: {}", e.kind, e.from, e.to, e.actor, e.reason);
                }
            }
            Ok(_) => {}
            Err(d) => return out.fail(&d),
        }
    }
    if check && !r.passed { EXIT_INVALID } else { EXIT_OK }
}

/// `dsl approve PHASE`.
pub fn approve(args: ApproveArgs, out: Out) -> u8 {
    let (bundle, journal, bot, active) = match load(&args.bot, out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if active.as_deref() != Some(args.phase.as_str()) {
        return out.fail(&Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("`{}` is not the bot's active phase ({})", args.phase, active.as_deref().unwrap_or("none")),
        ));
    }
    let result = gates::report(&journal, &bot, &bundle, &args.phase)
        .and_then(|r| phase_store::approve(&journal, &r, &args.by, &args.phrase, "cli").map(|id| (id, r)));
    match result {
        Ok((id, r)) if args.format == Format::Json => {
            super::print_json(&serde_json::json!({
                "approval": id,
                "by": args.by,
                "phase": r.phase,
                "next": r.next,
                "report_hash": r.hash,
            }));
            EXIT_OK
        }
        Ok((id, r)) => {
            println!(
                "approval {id}: {} approves `{}` -> `{}` for gate report {}",
                args.by,
                r.phase,
                r.next.unwrap_or_default(),
                r.hash
            );
            println!("`dsl promote` now moves the bot, while this report is unchanged");
            EXIT_OK
        }
        Err(d) => out.fail(&d),
    }
}

/// `dsl promote`.
pub fn promote(args: PromoteArgs, out: Out) -> u8 {
    let (bundle, journal, bot, active) = match load(&args.bot, out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(phase) = active else { return out.fail(&no_phase()) };
    let file = match &args.approval_file {
        None => None,
        Some(p) => {
            let text = match crate::runtime::files::read_document_text(p) {
                Ok(t) => t,
                Err(e) => {
                    return out.fail(&Diagnostic::error(codes::IO, format!("cannot read `{}`: {e}", p.display())));
                }
            };
            match serde_saphyr::from_str::<ApprovalFile>(&text) {
                Ok(f) => Some((f, p.display().to_string())),
                Err(e) => {
                    return out.fail(&Diagnostic::error(codes::BAD_ARGUMENT, format!("approval file `{}`: {e}", p.display())).help(
                        "write `kind: approval`, `bot`, `phase`, `approved_by`, `phrase` and `report` (the hash `dsl gate status` prints)",
                    ));
                }
            }
        }
    };
    let result = gates::report(&journal, &bot, &bundle, &phase)
        .and_then(|r| phase_store::promote(&journal, &r, file.as_ref().map(|(f, n)| (f, n.as_str()))).map(|c| (c, r)));
    match result {
        Ok((c, r)) if args.format == Format::Json => {
            let mode = bundle.phases.iter().find(|p| p.name.value == c.to).map(|p| p.mode.value.as_str());
            super::print_json(&serde_json::json!({
                "bot": bot,
                "from": c.from,
                "to": c.to,
                "approved_by": c.actor,
                "report_hash": r.hash,
                "mode": mode,
            }));
            EXIT_OK
        }
        Ok((c, r)) => {
            println!(
                "promoted `{bot}` from `{}` to `{}` (approved by {}; gate report {})",
                c.from, c.to, c.actor, r.hash
            );
            if let Some(p) = bundle.phases.iter().find(|p| p.name.value == c.to) {
                println!("`dsl run` now runs in {} mode with the limits of `{}`", p.mode.value.as_str(), c.to);
            }
            EXIT_OK
        }
        Err(d) => out.fail(&d),
    }
}

/// After a journaled run: applies the active phase's demotion rules that fire now (a
/// backtest or stress run can breach one) and says what changed. Problems reading the gates
/// are printed as warnings: the run itself succeeded.
pub fn after_run(journal: &std::path::Path, bundle: &Bundle) {
    if bundle.phases.is_empty() {
        return;
    }
    match phase_store::apply_demotions(journal, bundle, chrono::Utc::now().timestamp(), false) {
        Ok(changes) => {
            for c in changes {
                let to = if c.kind == "demotion" { format!(" to `{}`", c.to) } else { String::new() };
                eprintln!(
                    "phase {}: `{}`{to} by {}: {} (the bot is HALTED until `dsl resume`)",
                    c.kind, c.from, c.actor, c.reason
                );
            }
        }
        Err(d) => eprintln!("warning: the phase's demotion rules were not checked: {}", d.message),
    }
}
