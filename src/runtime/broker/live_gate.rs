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

use crate::runtime::broker::alpaca::{DATA_URL, Environment, LIVE_TRADING_URL, PAPER_TRADING_URL};

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

/// One live gate, checked: which, whether it holds, and what was seen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateCheck {
    /// The gate: `mode`, `arm`, `phase` or `account`.
    pub gate: &'static str,
    /// It holds (for `account`: the flag was given; the account itself is checked against the
    /// live API by the caller, see [`confirm_account`]).
    pub held: bool,
    /// What was seen, as a person reads it.
    pub detail: String,
}

/// Checks each of the four gates (gate 4: only that `--confirm-live` was given), in order.
/// `active`: the bot's active phase (the last promotion's or demotion's, else the manifest's
/// `phase:`; see `phases::phase_store::active_phase`).
pub fn checks(
    bot: &BotDoc,
    phases: &[PhaseDoc],
    active: Option<&str>,
    armed: Option<&str>,
    confirm: Option<&str>,
) -> Vec<GateCheck> {
    let name = &bot.name.value;
    let mode = match bot.mode.value {
        TradingMode::Live => GateCheck { gate: "mode", held: true, detail: "the manifest says `mode: live`".into() },
        TradingMode::Paper => GateCheck {
            gate: "mode",
            held: false,
            detail: "the manifest says `mode: paper` (live needs `mode: live`)".into(),
        },
    };
    let arm = match armed {
        Some(v) if v == name => GateCheck { gate: "arm", held: true, detail: format!("{ARM_VAR} is set to `{name}`") },
        Some(v) => GateCheck {
            gate: "arm",
            held: false,
            detail: format!("{ARM_VAR} is set to `{v}`, not to this bot's name `{name}`"),
        },
        None => GateCheck {
            gate: "arm",
            held: false,
            detail: format!("{ARM_VAR} is not set (set it to `{name}` to arm live trading)"),
        },
    };
    let phase = match active.and_then(|a| phases.iter().find(|p| p.name.value == a)) {
        Some(p) if p.mode.value == PhaseMode::Live => GateCheck {
            gate: "phase",
            held: true,
            detail: format!("the active phase `{}` has mode live", p.name.value),
        },
        Some(p) => GateCheck {
            gate: "phase",
            held: false,
            detail: format!(
                "the active phase `{}` does not permit live trading (its mode is {})",
                p.name.value,
                p.mode.value.as_str()
            ),
        },
        None => GateCheck {
            gate: "phase",
            held: false,
            detail: "the bot has no active phase (`phase:`) with `mode: live`".into(),
        },
    };
    let account = match confirm.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => GateCheck { gate: "account", held: true, detail: format!("--confirm-live {a}") },
        None => {
            GateCheck { gate: "account", held: false, detail: "`--confirm-live ACCOUNT_NUMBER` was not given".into() }
        }
    };
    vec![mode, arm, phase, account]
}

/// Applies gates 1-3 (and checks that gate 4's flag was given).
/// `active`: the bot's active phase (the last promotion's or demotion's, else the manifest's
/// `phase:`; see `phases::phase_store::active_phase`).
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
    let missing: Vec<String> =
        checks(bot, phases, active, armed, confirm).into_iter().filter(|c| !c.held).map(|c| c.detail).collect();
    match confirm.map(str::trim) {
        Some(a) if missing.is_empty() => GateDecision::LiveIfAccountMatches { account: a.to_string() },
        _ => GateDecision::Paper { missing },
    }
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
        codes::LIVE_GATE,
        format!(
            "--confirm-live {confirmed} does not match the live account of these keys ({reported}); nothing was traded"
        ),
    )
    .help("check the keys in APCA_API_KEY_ID / APCA_API_SECRET_KEY and the account number in Alpaca's dashboard"))
}

/// The Trading API base URL for `env`: the live host for live, the paper host for paper, or
/// for paper only an override ([`TRADING_URL_VAR`], a mock broker) that passes
/// [`allowed_override`] for the paper host.
///
/// # Errors
/// An override in live mode (live money goes to the live host and nowhere else), or one
/// whose host is not a loopback address or the paper host.
pub fn trading_url(env: Environment, override_url: Option<&str>) -> Result<String, Diagnostic> {
    match (env, override_url) {
        (Environment::Live, Some(u)) => Err(Diagnostic::error(
            codes::LIVE_GATE,
            format!(
                "{TRADING_URL_VAR} is set ({u}) but every live gate holds; live trading goes to the live host only"
            ),
        )
        .help(format!("unset {TRADING_URL_VAR} to trade live, or drop a live gate to trade against the mock"))),
        (Environment::Live, None) => Ok(LIVE_TRADING_URL.to_string()),
        (Environment::Paper, None) => Ok(PAPER_TRADING_URL.to_string()),
        (Environment::Paper, Some(u)) => allowed_override(TRADING_URL_VAR, u, PAPER_HOST),
    }
}

/// The Market Data API base URL: Alpaca's data host, or an override ([`DATA_URL_VAR`]) that
/// passes [`allowed_override`] for the data host; an override is refused in live mode.
///
/// # Errors
/// As [`trading_url`].
pub fn data_url(env: Environment, override_url: Option<&str>) -> Result<String, Diagnostic> {
    match (env, override_url) {
        (_, None) => Ok(DATA_URL.to_string()),
        (Environment::Live, Some(u)) => Err(Diagnostic::error(
            codes::LIVE_GATE,
            format!("{DATA_URL_VAR} is set ({u}) but every live gate holds; a live bot reads Alpaca's data host only"),
        )
        .help(format!("unset {DATA_URL_VAR} to trade live"))),
        (Environment::Paper, Some(u)) => allowed_override(DATA_URL_VAR, u, DATA_HOST),
    }
}

/// The paper Trading API's host name.
pub const PAPER_HOST: &str = "paper-api.alpaca.markets";
/// The Market Data API's host name.
pub const DATA_HOST: &str = "data.alpaca.markets";

/// Whether `url` names this machine (127.0.0.0/8, ::1 and its IPv4-mapped form, `localhost`);
/// `None` without a host.
pub fn is_loopback(url: &url::Url) -> Option<bool> {
    Some(match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        url::Host::Domain(d) => d.trim_end_matches('.') == "localhost",
    })
}

/// Checks a base-URL override from environment variable `var` and returns it normalised
/// (`scheme://host[:port][/path]`, no trailing slash).
///
/// The URL is parsed (WHATWG rules, as the HTTP client parses it: the host is lowercased,
/// IP literals are canonical, `%`-escapes are decoded) and then allowed only when
/// - its scheme is `http` or `https`;
/// - it has no user name or password (`https://paper-api.alpaca.markets@api.alpaca.markets`
///   is a request to `api.alpaca.markets`), no query and no fragment;
/// - its host, without a trailing dot, is `allowed_host` (with https), `localhost`, or a
///   loopback IP address (127.0.0.0/8, `::1`, or `::ffff:127.x.y.z`).
///
/// Everything else is refused (an allow-list: no other host ever gets the keys). Redirects are
/// never followed by the HTTP client, so an allowed host cannot send the keys elsewhere.
///
/// # Errors
/// A diagnostic naming the variable, the value and what is allowed.
pub fn allowed_override(var: &str, value: &str, allowed_host: &str) -> Result<String, Diagnostic> {
    let refuse = |why: &str| {
        Diagnostic::error(codes::LIVE_GATE, format!("{var} = `{value}` is refused: {why}")).help(format!(
            "an override may only name a loopback address (a mock server, e.g. http://127.0.0.1:8080) or \
             https://{allowed_host}"
        ))
    };
    let url = url::Url::parse(value.trim()).map_err(|e| refuse(&format!("it is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(&format!("the scheme `{}` is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries a user name or password (`user@host`)"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("it has a query or a fragment"));
    }
    let Some(loopback) = is_loopback(&url) else { return Err(refuse("it has no host")) };
    let named = matches!(url.host(), Some(url::Host::Domain(d)) if d.trim_end_matches('.') == allowed_host);
    if named && url.scheme() != "https" {
        return Err(refuse(&format!("{allowed_host} is only reached over https")));
    }
    if !loopback && !named {
        let host = url.host_str().unwrap_or_default();
        return Err(refuse(&format!("its host `{host}` is neither a loopback address nor {allowed_host}")));
    }
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default().trim_end_matches('.'));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path().trim_end_matches('/'));
    Ok(out)
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
        assert!(trading_url(Environment::Live, Some("http://127.0.0.1:9")).is_err());
        assert_eq!(trading_url(Environment::Live, None).unwrap(), LIVE_TRADING_URL);
        assert_eq!(trading_url(Environment::Paper, None).unwrap(), PAPER_TRADING_URL);
        assert_eq!(trading_url(Environment::Paper, Some("http://127.0.0.1:9/")).unwrap(), "http://127.0.0.1:9");
        assert!(trading_url(Environment::Paper, Some("https://api.alpaca.markets")).is_err());
        assert!(trading_url(Environment::Paper, Some("https://paper-api.alpaca.markets")).is_ok());
        assert!(data_url(Environment::Live, Some("http://127.0.0.1:9")).is_err());
        assert_eq!(data_url(Environment::Live, None).unwrap(), DATA_URL);
        assert!(confirm_account("PA1", "PA2").is_err());
        assert!(confirm_account("PA1", "PA1").is_ok());
    }

    /// Spellings that must never pass as the paper host or a loopback address.
    #[test]
    fn overrides_are_allowed_by_parsed_host_only() {
        let refused = [
            "https://api.alpaca.markets",
            "https://API.ALPACA.MARKETS",
            "https://Api.Alpaca.Markets/v2",
            "https://api.alpaca.markets/?x=paper-api.alpaca.markets",
            "https://api.alpaca.markets/#paper-api.alpaca.markets",
            "https://api.alpaca.markets./",
            "https://api.alpaca.markets:443",
            "https://paper-api.alpaca.markets@api.alpaca.markets",
            "https://paper-api.alpaca.markets:x@api.alpaca.markets",
            "https://user@paper-api.alpaca.markets",
            "https://paper-api.alpaca.markets.evil.example",
            "https://paper-api.alpaca.markets.api.alpaca.markets",
            "https://evil.example/paper-api.alpaca.markets",
            "https://paper-api.alpaca.markets/?q=1",
            "https://paper-api.alpaca.markets/#frag",
            "http://paper-api.alpaca.markets",
            "https://paper-api%2ealpaca%2emarkets@api.alpaca.markets",
            "https://[::ffff:8.8.8.8]",
            "http://8.8.8.8:8080",
            "http://10.0.0.1",
            "http://0.0.0.0:8080",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "ftp://127.0.0.1",
            "file:///etc/passwd",
            "127.0.0.1:8080",
            "",
            "not a url",
        ];
        for u in refused {
            assert!(allowed_override(TRADING_URL_VAR, u, PAPER_HOST).is_err(), "{u} was allowed");
        }
        let allowed = [
            ("https://paper-api.alpaca.markets", "https://paper-api.alpaca.markets"),
            ("https://PAPER-API.Alpaca.Markets/", "https://paper-api.alpaca.markets"),
            ("https://paper-api.alpaca.markets./", "https://paper-api.alpaca.markets"),
            ("https://paper-api.alpaca.markets:443", "https://paper-api.alpaca.markets"),
            ("https://paper-api.alpaca.markets:8443/x/", "https://paper-api.alpaca.markets:8443/x"),
            ("http://127.0.0.1:9", "http://127.0.0.1:9"),
            ("http://127.1.2.3:9/", "http://127.1.2.3:9"),
            ("http://2130706433:9", "http://127.0.0.1:9"),
            ("http://0x7f.0.0.1:9", "http://127.0.0.1:9"),
            ("http://[::1]:9", "http://[::1]:9"),
            ("http://[::ffff:127.0.0.1]:9", "http://[::ffff:7f00:1]:9"),
            ("http://LOCALHOST:9", "http://localhost:9"),
            ("http://localhost.:9", "http://localhost:9"),
        ];
        for (u, normal) in allowed {
            assert_eq!(allowed_override(TRADING_URL_VAR, u, PAPER_HOST).unwrap(), normal, "{u}");
        }
        assert!(allowed_override(DATA_URL_VAR, "https://data.alpaca.markets", DATA_HOST).is_ok());
        assert!(allowed_override(DATA_URL_VAR, "https://paper-api.alpaca.markets", DATA_HOST).is_err());
        assert!(
            allowed_override(DATA_URL_VAR, "https://DATA.alpaca.markets@stream.data.alpaca.markets", DATA_HOST)
                .is_err()
        );
    }
}
