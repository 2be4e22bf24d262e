//! The phase document: one step of the graduation plan from paper trading to live.
//!
//! ```yaml
//! kind: phase
//! name: paper_mastery
//! description: Demonstrate reliable performance in simulation.
//! mode: paper                     # backtest | paper | live
//! next: backtest_and_stress       # the phase a promotion leads to (none for the last)
//! approval: Proceed to Phase 2    # the phrase a person writes to approve that promotion
//! ```
//!
//! Gate criteria, limits and demotion rules are added by the phase-gates work; the chain of
//! phases is checked now (every `next` exists, no cycles).

use std::sync::Arc;

use super::node::Node;
use super::reader::Reader;
use crate::diagnostics::{SourceFile, Spanned};

/// What a bot may do in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseMode {
    /// Historical replays only.
    Backtest,
    /// Paper trading (simulated or broker paper account).
    Paper,
    /// Live trading with real money.
    Live,
}

impl PhaseMode {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseMode::Backtest => "backtest",
            PhaseMode::Paper => "paper",
            PhaseMode::Live => "live",
        }
    }
}

/// One graduation phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseDoc {
    /// The file it was read from.
    pub source: Arc<SourceFile>,
    /// Unique phase name.
    pub name: Spanned<String>,
    /// Free text.
    pub description: Option<String>,
    /// What the bot may do in this phase.
    pub mode: Spanned<PhaseMode>,
    /// The phase a promotion leads to.
    pub next: Option<Spanned<String>>,
    /// The phrase that approves the promotion to `next`.
    pub approval: Option<Spanned<String>>,
}

/// Reads a phase document from its root mapping.
pub fn read_phase(r: &mut Reader<'_>, root: &Node) -> Option<PhaseDoc> {
    let mut m = r.map(root, "phase")?;
    m.get("kind");
    let name = m.required(r, "name").and_then(|n| r.name(n, "name"));
    let description = m.get("description").and_then(|n| r.string(n, "description")).map(|s| s.value);
    let mode = m.required(r, "mode").and_then(|n| r.choice(n, "mode", &["backtest", "paper", "live"])).map(|c| {
        let mode = match c.value {
            "backtest" => PhaseMode::Backtest,
            "paper" => PhaseMode::Paper,
            _ => PhaseMode::Live,
        };
        Spanned::new(mode, c.span)
    });
    let next = m.get("next").map(|n| r.name(n, "next"));
    let approval = m.get("approval").map(|n| r.name(n, "approval"));
    m.finish(r);
    let next = match next {
        Some(n) => Some(n?),
        None => None,
    };
    let approval = match approval {
        Some(a) => Some(a?),
        None => None,
    };
    Some(PhaseDoc { source: r.file.clone(), name: name?, description, mode: mode?, next, approval })
}
