//! `dsl halt`, `dsl resume` and `dsl approvals`: a person's controls over a bot, written to
//! the bot's journal database ([`crate::runtime::journal::control`]).
//!
//! The bot is named by its manifest (its `name` and `database`); only the manifest itself is
//! read, so a bot can be halted even while one of its strategy files has an error. `--journal`
//! and `--bot-name` name the database and the bot directly.

use std::path::PathBuf;

use super::validate::Format;
use super::{EXIT_INVALID, EXIT_OK, Out};
use crate::config::{Document, read_document};
use crate::diagnostics::{Diagnostic, codes};
use crate::engine::market::format_utc;
use crate::runtime::journal::control::{ApprovalRow, ControlStore};
use crate::runtime::journal::lease::{self, Probe};
use crate::runtime::library::loader::{read_source, resolve};

/// Which bot: a manifest, or a database and a bot name.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The bot manifest (`kind: bot`); its `name` and `database` say which records to change.
    pub manifest: Option<PathBuf>,
    /// Journal database, instead of the manifest's `database`.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Bot name, instead of the manifest's `name`.
    #[arg(long, value_parser = super::parse_name)]
    pub bot_name: Option<String>,
}

/// Arguments of `dsl halt` and `dsl resume`.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    #[command(flatten)]
    target: Target,
    /// Why (kept in the journal with the change).
    #[arg(long, value_parser = super::parse_name)]
    reason: String,
    /// Output format: sentences (`human`) or one JSON document (`json`: `request`, `action`,
    /// `reason`, `applied` (`now`, `at_next_bar` by the running bot, or `unchanged`), `state`).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Arguments of `dsl approvals`.
#[derive(Debug, clap::Args)]
pub struct ApprovalArgs {
    #[command(subcommand)]
    action: ApprovalAction,
}

#[derive(Debug, clap::Subcommand)]
enum ApprovalAction {
    /// List pending requests (`--all`: decided and expired ones too).
    List {
        #[command(flatten)]
        target: Target,
        /// Show every request, not only pending ones.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Approve a pending request: the bot sends the order at its next bar.
    Approve {
        /// Request number (from `list`) or the order's `client_order_id`.
        id: String,
        #[command(flatten)]
        target: Target,
        /// A note kept with the decision.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Reject a pending request: the order is refused.
    Reject {
        /// Request number (from `list`) or the order's `client_order_id`.
        id: String,
        #[command(flatten)]
        target: Target,
        /// Why (kept with the decision).
        #[arg(long, value_parser = super::parse_name)]
        reason: String,
    },
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Target {
    /// The journal database and the bot name the target names.
    ///
    /// # Errors
    /// When the manifest cannot be read or is not a bot, or a name or database is missing.
    pub fn resolve(&self) -> Result<(PathBuf, String), Diagnostic> {
        resolve_target(self)
    }
}

/// Opens the control records the target names.
fn open(t: &Target) -> Result<ControlStore, Diagnostic> {
    let (db, name) = resolve_target(t)?;
    ControlStore::open(&db, &name)
}

fn resolve_target(t: &Target) -> Result<(PathBuf, String), Diagnostic> {
    let (mut name, mut db) = (t.bot_name.clone(), t.journal.clone());
    if let Some(path) = &t.manifest
        && (name.is_none() || db.is_none())
    {
        let src = read_source(path)?;
        let mut diags = Vec::new();
        match read_document(&src, &mut diags) {
            Some(Document::Bot(b)) => {
                let base = path.parent().map(PathBuf::from).unwrap_or_default();
                name = name.or(Some(b.name.value.clone()));
                db = db.or(b.database.as_ref().map(|d| resolve(&base, &d.value)));
            }
            Some(_) => {
                return Err(Diagnostic::error(
                    codes::BAD_ARGUMENT,
                    format!("`{}` is not a bot manifest", path.display()),
                )
                .help("give a `kind: bot` file, or --journal and --bot-name"));
            }
            None => {
                let first = diags.into_iter().find(Diagnostic::is_error);
                return Err(first.unwrap_or_else(|| {
                    Diagnostic::error(codes::INVALID_VALUE, format!("cannot read `{}`", path.display()))
                }));
            }
        }
    }
    let name = name.ok_or_else(|| {
        Diagnostic::error(codes::BAD_ARGUMENT, "which bot?").help("give the bot manifest, or --bot-name with --journal")
    })?;
    let db = db.ok_or_else(|| {
        Diagnostic::error(codes::RUNTIME_REFUSED, format!("bot `{name}` has no journal database"))
            .help("add `database:` to the manifest, or give --journal")
    })?;
    Ok((db, name))
}

/// `dsl halt`: HALTED until `dsl resume`.
pub fn halt(args: StateArgs, out: Out) -> u8 {
    change(args, out, true)
}

/// `dsl resume`: back to ACTIVE.
pub fn resume(args: StateArgs, out: Out) -> u8 {
    change(args, out, false)
}

fn change(args: StateArgs, out: Out, halt: bool) -> u8 {
    let reason = args.reason.trim();
    let (db, name) = match resolve_target(&args.target) {
        Ok(t) => t,
        Err(d) => return out.fail(&d),
    };
    // Is a bot running on this journal? Its lease says.
    let probe = match lease::probe(&db, &name, if halt { "dsl halt" } else { "dsl resume" }) {
        Ok(p) => p,
        Err(d) => return out.fail(&d),
    };
    let (running, _held) = match probe {
        Probe::Free(l) => (None, Some(l)),
        Probe::Held(h) => (Some(h), None),
    };
    if running.is_some() && !db.exists() {
        return out.fail(
            &Diagnostic::error(
                codes::IO,
                format!("the journal `{}` is gone while a bot holds its lock: it was deleted or moved", db.display()),
            )
            .help("the running bot stops at its next bar when its journal disappears; nothing was recorded"),
        );
    }
    let mut store = match ControlStore::open(&db, &name) {
        Ok(s) => s,
        Err(d) => return out.fail(&d),
    };
    let code = if halt { "manual_halt" } else { "resume" };
    let (request, change) = match store.request(halt, code, reason, now(), running.is_none()) {
        Ok(r) => r,
        Err(d) => return out.fail(&d),
    };
    let verb = if halt { "halt" } else { "resume" };
    if args.format == Format::Json {
        let (applied, state) = match (&running, &change) {
            (Some(_), _) => ("at_next_bar", None),
            (None, Some(c)) => ("now", Some(c.to.as_str().to_string())),
            (None, None) => ("unchanged", store.state().ok().map(|s| s.mode.as_str().to_string())),
        };
        super::print_json(&serde_json::json!({
            "request": request.request_id,
            "action": verb,
            "reason": reason,
            "applied": applied,
            "state": state,
        }));
        return EXIT_OK;
    }
    match (&running, change) {
        (Some(holder), _) => {
            println!("request {}: {verb} ({reason})", request.request_id);
            let who = holder.as_ref().map_or("the running bot".to_string(), |h| format!("the running bot, {h},"));
            println!("{who} applies it at its next bar and journals it");
        }
        (None, Some(c)) => {
            println!("{} -> {} at {} ({}: {})", c.from.as_str(), c.to.as_str(), format_utc(c.ts), c.reason, c.message);
            println!("no running bot holds the journal: recorded now; the bot starts {} next time", c.to.as_str());
        }
        (None, None) => {
            let state = store.state().map(|s| s.mode.as_str()).unwrap_or("?");
            println!("already {state}; nothing changed (request {} recorded)", request.request_id);
            println!("no running bot holds the journal");
        }
    }
    if halt {
        println!("no new orders pass until `dsl resume --reason TEXT`");
    } else {
        println!("new orders pass again (policies still apply); the drawdown peak is re-based to the equity then");
    }
    EXIT_OK
}

/// Says whether a running bot holds the journal (for decisions it must pick up).
fn who_runs(db: &std::path::Path, bot: &str) -> String {
    match lease::probe(db, bot, "dsl approvals") {
        Ok(Probe::Held(Some(h))) => format!("the running bot, {h}, applies it at its next bar"),
        Ok(Probe::Held(None)) => "a running bot holds the journal and applies it at its next bar".into(),
        Ok(Probe::Free(_)) => "no running bot holds the journal: it applies at the bot's next start".into(),
        Err(_) => String::new(),
    }
}

/// `dsl approvals list|approve|reject`.
pub fn approvals(args: ApprovalArgs, out: Out) -> u8 {
    match args.action {
        ApprovalAction::List { target, all, format } => {
            // Read-only: listing never writes to the journal.
            let rows = match resolve_target(&target).and_then(|(db, bot)| {
                let conn = crate::runtime::journal::open_read_checked(&db)?;
                crate::runtime::journal::control::read_approvals(&conn, &db, &bot, all)
            }) {
                Ok(r) => r,
                Err(d) => return out.fail(&d),
            };
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default()),
                Format::Human if rows.is_empty() => {
                    println!("no {}approval requests", if all { "" } else { "pending " })
                }
                Format::Human => {
                    for r in &rows {
                        print_row(r);
                    }
                }
            }
            EXIT_OK
        }
        ApprovalAction::Approve { id, target, note } => decide(&target, &id, true, &note, out),
        ApprovalAction::Reject { id, target, reason } => decide(&target, &id, false, &reason, out),
    }
}

fn print_row(r: &ApprovalRow) {
    println!(
        "{:>4}  {:<8}  {} {} {} {:.4} {} (notional {:.2}) by {}  [{}]",
        r.request_id,
        r.status,
        r.intent,
        r.side,
        r.symbol,
        r.quantity,
        r.client_order_id,
        r.notional,
        r.strategy,
        r.rule
    );
    println!("      {}; parked {}, expires {}", r.message, format_utc(r.created_ts), format_utc(r.expires_ts));
    if let (Some(ts), Some(note)) = (r.decided_ts, &r.note) {
        println!("      decided {}: {}", format_utc(ts), note);
    }
}

fn decide(target: &Target, id: &str, approve: bool, note: &str, out: Out) -> u8 {
    let mut store = match open(target) {
        Ok(s) => s,
        Err(d) => return out.fail(&d),
    };
    match store.decide(id, approve, note, now()) {
        Ok(r) => {
            print_row(&r);
            if let Ok((db, bot)) = resolve_target(target) {
                let who = who_runs(&db, &bot);
                if !who.is_empty() {
                    println!("{who}");
                }
            }
            EXIT_OK
        }
        Err(d) if d.code == codes::IO => out.fail(&d),
        Err(d) => {
            out.diags(&[d]);
            EXIT_INVALID
        }
    }
}
