//! The active phase's limits in a run (`dsl run`): compiled into a policy named
//! `phase_<name>` that the engine applies after the bot's own guardrails, so every refusal
//! is journaled like any guardrail's (see [`crate::config::phase::PhaseLimits`]).
//!
//! Phase 3's scale-up ("size increases only after 10+ successful trades with no loss above
//! 5%") is decided when the run starts, from the runs of the phase's mode in the journal:
//! enough winning trades and no trade that lost more than `max_loss` of its entry notional.

use std::path::Path;
use std::sync::Arc;

use crate::config::phase::{PhaseDoc, RunMode};
use crate::config::{Document, read_document};
use crate::diagnostics::{Diagnostic, SourceFile, codes};
use crate::dsl::bundle::{Bundle, CompiledPolicy, compile_policy};
use crate::dsl::catalog::FieldId;

use super::gates::{Filter, metrics};

/// The limits a run applies.
#[derive(Debug, Clone)]
pub struct PhaseRun {
    /// The phase.
    pub phase: String,
    /// The limits as a policy (none when the phase sets no limit).
    pub policy: Option<CompiledPolicy>,
    /// The scale-up was earned.
    pub scaled_up: bool,
    /// What the run's settings record: phase, limits, scale-up.
    pub settings: serde_json::Value,
}

/// The limits of `phase` for a run of `bot` whose journal is `path`.
///
/// # Errors
/// When the journal cannot be read, or (a bug) the generated policy does not compile.
pub fn for_run(path: &Path, bot: &str, bundle: &Bundle, phase: &PhaseDoc) -> Result<PhaseRun, Diagnostic> {
    let limits = &phase.limits;
    let scaled_up = match &limits.scale_up {
        Some(s) => {
            let filter = Filter { from: RunMode::of(phase.mode.value), window: None, strategy: None, scenario: None };
            let f = metrics(path, bot, bundle, &filter)?;
            let trades = f[FieldId::MetricTrades as usize];
            let wins = (f[FieldId::MetricWinRate as usize] * trades).round();
            let worst = f[FieldId::MetricMaxLoss as usize];
            wins >= f64::from(s.after_winning_trades) && worst <= s.max_loss
        }
        None => false,
    };
    let name = &phase.name.value;
    let policy = match limits.policy_yaml(name, scaled_up) {
        None => None,
        Some(text) => {
            let file = SourceFile::new(format!("phase {name} limits"), text);
            let mut diags = Vec::new();
            let compiled = match read_document(&file, &mut diags) {
                Some(Document::Policy(p)) => compile_policy(p, &mut diags),
                _ => None,
            };
            match compiled {
                Some(p) if !diags.iter().any(Diagnostic::is_error) => Some(p),
                _ => {
                    let why = diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; ");
                    return Err(Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("the limits of phase `{name}` do not compile: {why}"),
                    ));
                }
            }
        }
    };
    let settings = serde_json::json!({
        "phase": name,
        "mode": phase.mode.value.as_str(),
        "limits": limits,
        "scaled_up": scaled_up,
    });
    Ok(PhaseRun { phase: name.clone(), policy, scaled_up, settings })
}

/// `bundle` with the limits' policy added last (unchanged when there is none or it is there).
pub fn with_limits(bundle: Arc<Bundle>, policy: Option<&CompiledPolicy>) -> Arc<Bundle> {
    match policy {
        Some(p) if !bundle.policies.iter().any(|x| x.doc.name.value == p.doc.name.value) => {
            let mut b = (*bundle).clone();
            b.policies.push(p.clone());
            Arc::new(b)
        }
        _ => bundle,
    }
}
