//! The switchover test (`dsl run BOT.yaml --switchover`): a live manifest checked against all
//! four live gates for real, then traded on the paper account (the trader's "test switchover
//! mode: live config, paper account", before real capital).
//!
//! The gates are those of [`super::live_gate`]: `mode: live` in the manifest, the arm
//! variable set to the bot's name, a live active phase, and `--confirm-live ACCOUNT_NUMBER`
//! matching the account the live Trading API reports for the live keys (`APCA_API_KEY_ID` /
//! `APCA_API_SECRET_KEY`, as the live run will have them). That account lookup
//! (`GET /v2/account` on the live host) is the only request the test makes there; every
//! order goes to the paper account, with the paper keys ([`PAPER_KEY_ID_VAR`] /
//! [`PAPER_SECRET_VAR`]). A mock can stand in for the live host's account lookup
//! ([`LIVE_URL_VAR`], loopback only, honoured by the switchover test only); the verdict then
//! says the account was checked against it, not against Alpaca.
//!
//! The verdict is printed and journaled (`switchover_checks`, see
//! [`crate::runtime::journal::switchover_log`]) before the first bar is traded.

use serde::Serialize;

use crate::config::manifest::BotDoc;
use crate::config::phase::PhaseDoc;
use crate::runtime::broker::alpaca::{
    Credentials, KEY_ID_VAR, LIVE_TRADING_URL, PAPER_KEY_ID_VAR, PAPER_SECRET_VAR, RetryPolicy, SECRET_VAR,
    TradingClient,
};
use crate::runtime::broker::live_gate::{self, GateCheck};

/// Environment variable pointing the switchover test's live account lookup at a mock (a
/// loopback address only; never read outside a switchover test).
pub const LIVE_URL_VAR: &str = "TRADEDSL_ALPACA_LIVE_URL";

/// What a switchover test found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The bot.
    pub bot: String,
    /// Every gate held: `dsl run` without `--switchover` would trade live on this account.
    pub passed: bool,
    /// The four gates, in order (`mode`, `arm`, `phase`, `account`).
    pub gates: Vec<GateCheck>,
    /// The account number the live API reported for the live keys, when it answered.
    pub live_account: Option<String>,
    /// Where the account was looked up (Alpaca's live host, or the [`LIVE_URL_VAR`] mock).
    pub checked_at: String,
    /// The lookup went to a mock ([`LIVE_URL_VAR`]), not to Alpaca's live host.
    pub mock: bool,
    /// When the gates were checked (UTC seconds, wall clock).
    pub ts: i64,
}

impl Verdict {
    /// The verdict as journaled.
    pub fn record(&self) -> crate::runtime::journal::switchover_log::CheckRow {
        crate::runtime::journal::switchover_log::CheckRow {
            ts: self.ts,
            passed: self.passed,
            live_account: self.live_account.clone(),
            checked_at: self.checked_at.clone(),
            mock: self.mock,
            gates: serde_json::to_value(&self.gates).unwrap_or_default(),
        }
    }

    /// The verdict as printed: one line per gate and a conclusion.
    pub fn render(&self) -> String {
        let mut out =
            format!("switchover test of `{}`: the live configuration, traded on the PAPER account\n", self.bot);
        for g in &self.gates {
            out.push_str(&format!("  [{}] {:<8} {}\n", if g.held { " ok " } else { "FAIL" }, g.gate, g.detail));
        }
        let failed = self.gates.iter().filter(|g| !g.held).count();
        if self.passed {
            out.push_str("verdict: PASS: every live gate holds; without --switchover this bot would trade REAL MONEY");
        } else {
            out.push_str(&format!(
                "verdict: FAIL: {failed} of 4 live gates do not hold; without --switchover this bot would trade on the paper host"
            ));
        }
        if self.mock {
            out.push_str(&format!(
                "\nnote: the account was checked against {LIVE_URL_VAR} ({}), not Alpaca's live host",
                self.checked_at
            ));
        }
        out
    }
}

/// Checks the four gates for real (see the module doc); never fails: what could not be
/// checked (no live keys, the live host unreachable, a refused mock URL) is a gate that does
/// not hold, with the reason.
pub async fn check(
    bot: &BotDoc,
    phases: &[PhaseDoc],
    active: Option<&str>,
    armed: Option<&str>,
    confirm: Option<&str>,
    now: i64,
) -> Verdict {
    let mut gates = live_gate::checks(bot, phases, active, armed, confirm);
    let override_url = std::env::var(LIVE_URL_VAR).ok();
    let url = match &override_url {
        Some(u) => live_gate::allowed_override(LIVE_URL_VAR, u, LIVE_HOST).map_err(|d| d.message),
        None => Ok(LIVE_TRADING_URL.to_string()),
    };
    let checked_at = url.clone().unwrap_or_else(|_| override_url.clone().unwrap_or_default());
    let mut live_account = None;
    if let (Some(account_gate), Some(confirmed)) =
        (gates.iter_mut().find(|g| g.gate == "account"), confirm.map(str::trim).filter(|c| !c.is_empty()))
    {
        let looked_up = match url {
            Err(e) => Err(e),
            Ok(url) => lookup(&url).await,
        };
        match looked_up {
            Ok(reported) => {
                account_gate.held = live_gate::confirm_account(confirmed, &reported).is_ok();
                account_gate.detail = if account_gate.held {
                    format!("--confirm-live {confirmed} is the live account of the live keys")
                } else {
                    format!("--confirm-live {confirmed} is not the live account of the live keys ({reported})")
                };
                live_account = Some(reported);
            }
            Err(e) => {
                account_gate.held = false;
                account_gate.detail = format!("cannot verify --confirm-live {confirmed} against the live account: {e}");
            }
        }
    }
    Verdict {
        bot: bot.name.value.clone(),
        passed: gates.iter().all(|g| g.held),
        gates,
        live_account,
        checked_at,
        mock: override_url.is_some(),
        ts: now,
    }
}

/// The live Trading API's host name.
const LIVE_HOST: &str = "api.alpaca.markets";

/// The account number the live Trading API at `url` reports for the live keys.
async fn lookup(url: &str) -> Result<String, String> {
    let creds = Credentials::from_vars(KEY_ID_VAR, SECRET_VAR)
        .map_err(|e| format!("{e} (the live keys, as the live run will have them)"))?;
    let client = TradingClient::new(url, creds, RetryPolicy::default()).map_err(|e| e.to_string())?;
    client.account().await.map(|a| a.account_number).map_err(|e| e.to_string())
}

/// The paper account's keys of a switchover test.
///
/// # Errors
/// The variable that is missing, with what to export.
pub fn paper_credentials() -> Result<Credentials, crate::diagnostics::Diagnostic> {
    Credentials::from_vars(PAPER_KEY_ID_VAR, PAPER_SECRET_VAR).map_err(|e| {
        crate::diagnostics::Diagnostic::error(crate::diagnostics::codes::RUNTIME_REFUSED, e.to_string()).help(format!(
            "a switchover test trades on the paper account: export {PAPER_KEY_ID_VAR} and {PAPER_SECRET_VAR} \
             (the live keys stay in {KEY_ID_VAR} / {SECRET_VAR})"
        ))
    })
}
