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

use crate::runtime::phases::gates::{Filter, metrics};

/// The limits a run applies.
#[derive(Debug, Clone)]
pub struct PhaseRun {
    /// The phase.
    pub phase: String,
    /// What the phase allows.
    pub mode: crate::config::phase::PhaseMode,
    /// The limits as a policy (none when the phase sets no limit).
    pub policy: Option<CompiledPolicy>,
    /// The scale-up was earned.
    pub scaled_up: bool,
    /// What the run's settings record: phase, limits, scale-up.
    pub settings: crate::runtime::journal::settings::PhaseSettings,
}

/// The limits of `phase` as a policy (`phase_<name>`; `None` when the phase sets no limit),
/// with its scale-up applied when `scaled_up`.
///
/// # Errors
/// When (a bug) the generated policy does not compile.
pub fn policy(phase: &PhaseDoc, scaled_up: bool) -> Result<Option<CompiledPolicy>, Diagnostic> {
    let name = &phase.name.value;
    let policy = match phase.limits.policy_yaml(name, scaled_up) {
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
                        codes::RUNTIME_REFUSED,
                        format!("the limits of phase `{name}` do not compile: {why}"),
                    ));
                }
            }
        }
    };
    Ok(policy)
}

/// The limits of `phase` for a run of `bot` whose journal is `path`.
///
/// # Errors
/// When the journal cannot be read, or (a bug) the generated policy does not compile.
pub fn for_run(path: &Path, bot: &str, bundle: &Bundle, phase: &PhaseDoc) -> Result<PhaseRun, Diagnostic> {
    let limits = &phase.limits;
    let scaled_up = match &limits.scale_up {
        Some(s) => {
            // Earned in this phase: trades of runs started since the bot entered it.
            let entered = crate::runtime::phases::gates::entered_at(path, bot, &phase.name.value)?;
            let filter = Filter {
                from: RunMode::of(phase.mode.value),
                window: None,
                strategy: None,
                scenario: None,
                since: entered.map(|e| e.ts),
                after_run: entered.and_then(|e| e.last_run_id),
            };
            earned(&metrics(path, bot, bundle, &filter)?, s)
        }
        None => false,
    };
    let name = &phase.name.value;
    let policy = policy(phase, scaled_up)?;
    let settings = crate::runtime::journal::settings::PhaseSettings {
        phase: name.clone(),
        mode: phase.mode.value.as_str().to_string(),
        limits: serde_json::to_value(limits).unwrap_or_default(),
        scaled_up,
    };
    Ok(PhaseRun { phase: name.clone(), mode: phase.mode.value, policy, scaled_up, settings })
}

/// Whether metrics (indexed by [`FieldId`]) earn the scale-up: enough winning trades and no
/// trade that lost more than `max_loss` (undefined metrics earn nothing).
fn earned(f: &[f64], s: &crate::config::phase::ScaleUp) -> bool {
    let trades = f[FieldId::MetricTrades as usize];
    let wins = (f[FieldId::MetricWinRate as usize] * trades).round();
    let worst = f[FieldId::MetricMaxLoss as usize];
    wins >= f64::from(s.after_winning_trades) && worst <= s.max_loss
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::phase::{PhaseLimits, ScaleUp};
    use crate::dsl::catalog::FIELD_COUNT;

    fn phase3() -> PhaseLimits {
        PhaseLimits {
            min_order_notional: Some(100.0),
            max_order_notional: Some(500.0),
            approval_above: Some(500.0),
            max_exposure: Some(0.2),
            max_orders_per_day: Some(10),
            scale_up: Some(ScaleUp { after_winning_trades: 10, max_loss: 0.05, max_order_notional: 1000.0 }),
        }
    }

    fn compile(text: &str) -> CompiledPolicy {
        let file = SourceFile::new("limits", text.to_string());
        let mut diags = Vec::new();
        let p = match read_document(&file, &mut diags) {
            Some(Document::Policy(p)) => compile_policy(p, &mut diags),
            _ => None,
        };
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        p.expect("compiles")
    }

    #[test]
    fn limits_compile_into_a_policy_denials_first_then_approval() {
        let base = compile(&phase3().policy_yaml("small_live", false).unwrap());
        let ids: Vec<&str> = base.doc.rules.iter().map(|r| r.id.value.as_str()).collect();
        assert_eq!(ids, ["min_order", "max_order", "max_exposure", "max_orders_per_day", "approval_above"]);
        assert_eq!(base.doc.name.value, "phase_small_live");
        let text = phase3().policy_yaml("small_live", true).unwrap();
        assert!(text.contains("order.notional > 1000") && text.contains("(scaled up)"), "{text}");
        compile(&text);
        assert!(PhaseLimits::default().policy_yaml("p", false).is_none());
    }

    #[test]
    fn scale_up_needs_enough_wins_and_no_large_loss() {
        let s = phase3().scale_up.unwrap();
        let mut f = vec![f64::NAN; FIELD_COUNT];
        assert!(!earned(&f, &s), "no data earns nothing");
        f[FieldId::MetricTrades as usize] = 12.0;
        f[FieldId::MetricWinRate as usize] = 10.0 / 12.0;
        f[FieldId::MetricMaxLoss as usize] = 0.04;
        assert!(earned(&f, &s));
        f[FieldId::MetricMaxLoss as usize] = 0.06;
        assert!(!earned(&f, &s), "a loss above 5%");
        f[FieldId::MetricMaxLoss as usize] = 0.0;
        f[FieldId::MetricWinRate as usize] = 9.0 / 12.0;
        assert!(!earned(&f, &s), "9 wins");
    }
}
