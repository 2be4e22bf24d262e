//! The gates of live trading. A bot trades real money only when ALL of these hold:
//!
//! 1. the manifest says `mode: live`;
//! 2. the environment variable [`ARM_VAR`] is set to the bot's name (arming is per bot and
//!    per shell; nothing in a file arms it);
//! 3. the bot's active phase (`phase:`) is a phase with `mode: live`: the graduation gates
//!    decide when a bot may touch real money;
//! 4. `--confirm-live ACCOUNT_NUMBER` names the account the live API reports for the keys
//!    (checked by the caller with [`confirm_account`] against `GET /v2/account` on the live
//!    host, the only request made there before every gate is known to hold).
//!
//! Anything short of that runs on the paper host, and [`decide`] says which gates are missing.
//! A base-URL override (for a mock broker) is only honoured on the paper side and never for
//! the live host.

use crate::config::manifest::{BotDoc, TradingMode};
use crate::config::phase::{PhaseDoc, PhaseMode};
use crate::diagnostics::{Diagnostic, codes};

use super::alpaca::{Environment, LIVE_TRADING_URL, PAPER_TRADING_URL};

/// Environment variable that arms live trading for the bot it names.
pub const ARM_VAR: &str = "TRADEDSL_ARM_LIVE";
/// Environment variable pointing the paper side at another Trading API host (a mock broker).
pub const TRADING_URL_VAR: &str = "TRADEDSL_ALPACA_TRADING_URL";
/// Environment variable pointing market data at another host (a mock server).
pub const DATA_URL_VAR: &str = "TRADEDSL_ALPACA_DATA_URL";

/// What the gates decided.
#[derive(Debug, Clone, PartialEq)]
pub enum GateDecision {
    /// Paper host; `missing` lists the live gates that did not hold when the manifest asked
    /// for live (empty when it asked for paper).
    Paper {
        /// Why live was refused, one entry per missing gate.
        missing: Vec<String>,
    },
    /// Gates 1-3 hold; the account named by `--confirm-live` must still match.
    LiveIfAccountMatches {
        /// The account number the person confirmed.
        account: String,
    },
}

/// Applies gates 1-3 (and checks that gate 4's flag was given).
/// `active`: the bot's active phase (the last promotion's or demotion's, else the manifest's
/// `phase:`; see [`super::phase_store::active_phase`]).
pub fn decide(
    bot: &BotDoc,
    phases: &[PhaseDoc],
    active: Option<&str>,
    armed: Option<&str>,
    confirm: Option<&str>,
) -> GateDecision {
    if bot.mode.value == TradingMode::Paper {
        return GateDecision::Paper { missing: Vec::new() };
    }
    let name = &bot.name.value;
    let mut missing = Vec::new();
    match armed {
        Some(v) if v == name => {}
        Some(v) => missing.push(format!("{ARM_VAR} is set to `{v}`, not to this bot's name `{name}`")),
        None => missing.push(format!("{ARM_VAR} is not set (set it to `{name}` to arm live trading)")),
    }
    match active.and_then(|a| phases.iter().find(|p| p.name.value == a)) {
        Some(p) if p.mode.value == PhaseMode::Live => {}
        Some(p) => missing.push(format!(
            "the active phase `{}` does not permit live trading (its mode is {})",
            p.name.value,
            p.mode.value.as_str()
        )),
        None => missing.push("the bot has no active phase (`phase:`) with `mode: live`".into()),
    }
    match confirm {
        Some(a) if !a.trim().is_empty() && missing.is_empty() => {
            return GateDecision::LiveIfAccountMatches { account: a.trim().to_string() };
        }
        Some(a) if !a.trim().is_empty() => {}
        _ => missing.push("`--confirm-live ACCOUNT_NUMBER` was not given".into()),
    }
    GateDecision::Paper { missing }
}

/// Gate 4: the account the live API reports must be the one confirmed.
///
/// # Errors
/// A diagnostic naming both numbers when they differ.
pub fn confirm_account(confirmed: &str, reported: &str) -> Result<(), Diagnostic> {
    if confirmed == reported {
        return Ok(());
    }
    Err(Diagnostic::error(
        codes::INVALID_VALUE,
        format!(
            "--confirm-live {confirmed} does not match the live account of these keys ({reported}); nothing was traded"
        ),
    )
    .help("check the keys in APCA_API_KEY_ID / APCA_API_SECRET_KEY and the account number in Alpaca's dashboard"))
}

/// The Trading API base URL for `env`: the live host for live (no override, ever); for paper
/// the paper host or `override_url` ([`TRADING_URL_VAR`]).
///
/// # Errors
/// An override that points at the live host.
pub fn trading_url(env: Environment, override_url: Option<&str>) -> Result<String, Diagnostic> {
    match (env, override_url) {
        (Environment::Live, _) => Ok(LIVE_TRADING_URL.to_string()),
        (Environment::Paper, None) => Ok(PAPER_TRADING_URL.to_string()),
        (Environment::Paper, Some(u))
            if u.contains("api.alpaca.markets") && !u.contains("paper-api.alpaca.markets") =>
        {
            Err(Diagnostic::error(
                codes::INVALID_VALUE,
                format!(
                    "{TRADING_URL_VAR} points at the live host ({u}); live trading only goes through the live gates"
                ),
            ))
        }
        (Environment::Paper, Some(u)) => Ok(u.trim_end_matches('/').to_string()),
    }
}

/// The banner printed when live trading is armed.
pub fn banner(bot: &str, account: &str) -> String {
    let line = "!".repeat(72);
    format!(
        "{line}\n!!  LIVE TRADING: REAL MONEY\n!!  bot `{bot}` on Alpaca account {account} ({LIVE_TRADING_URL})\n!!  every gate holds: mode: live, {ARM_VAR}, a live phase, --confirm-live\n{line}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_host_is_never_an_override() {
        assert_eq!(trading_url(Environment::Live, Some("http://127.0.0.1:9")).unwrap(), LIVE_TRADING_URL);
        assert_eq!(trading_url(Environment::Paper, None).unwrap(), PAPER_TRADING_URL);
        assert_eq!(trading_url(Environment::Paper, Some("http://127.0.0.1:9/")).unwrap(), "http://127.0.0.1:9");
        assert!(trading_url(Environment::Paper, Some("https://api.alpaca.markets")).is_err());
        assert!(trading_url(Environment::Paper, Some("https://paper-api.alpaca.markets")).is_ok());
        assert!(confirm_account("PA1", "PA2").is_err());
        assert!(confirm_account("PA1", "PA1").is_ok());
    }
}
