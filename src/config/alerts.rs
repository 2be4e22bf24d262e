//! The `alerts:` section of a bot manifest: where a running bot sends a message when something
//! needs a person.
//!
//! ```yaml
//! alerts:
//!   webhook:
//!     url_env: TRADEDSL_ALERT_WEBHOOK   # the variable holding the URL (a Slack or Discord
//!                                       #   webhook is a secret: never in the manifest)
//!   telegram:                           # optional
//!     token_env: TRADEDSL_TELEGRAM_TOKEN
//!     chat_id_env: TRADEDSL_TELEGRAM_CHAT_ID
//!   on: [state, broker, approval, report, daily]   # default: all of them
//!   max_per_minute: 10                  # at most this many messages a minute (default 10)
//! ```
//!
//! Events: `state` (REDUCING, HALTED, a resume, a phase's demotion), `broker` (failing, and
//! back), `approval` (an order waits for a person), `report` (a scheduled report was written:
//! the daily P&L summary and the others), `daily` (the day's P&L and equity, at the first bar
//! of the next UTC day, with or without scheduled reports), `stale` (sent by `dsl status
//! --check --alert`).

use super::node::Node;
use super::reader::Reader;
use crate::diagnostics::{Spanned, codes};

/// The events a bot can send.
pub const EVENTS: [&str; 6] = ["state", "broker", "approval", "report", "daily", "stale"];

/// Where and when to send alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsDoc {
    /// The environment variable holding the webhook URL.
    pub webhook_env: Option<Spanned<String>>,
    /// The environment variables holding the Telegram bot token and chat id.
    pub telegram_env: Option<(Spanned<String>, Spanned<String>)>,
    /// The events sent (see [`EVENTS`]).
    pub on: Vec<&'static str>,
    /// At most this many messages a minute.
    pub max_per_minute: u32,
}

fn env_name(r: &mut Reader<'_>, node: &Node, what: &str) -> Option<Spanned<String>> {
    let s = r.string(node, what)?;
    let ok = !s.value.is_empty()
        && s.value.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !s.value.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Some(s)
    } else {
        r.fail(
            codes::INVALID_VALUE,
            s.span,
            format!("`{what}` names an environment variable, found `{}`", s.value),
            Some(
                "write the variable's name, e.g. `TRADEDSL_ALERT_WEBHOOK`; its value (the URL, a secret) stays in the \
                  environment"
                    .into(),
            ),
        )
    }
}

/// Reads the `alerts:` mapping of a manifest.
pub fn read_alerts(r: &mut Reader<'_>, node: &Node) -> Option<AlertsDoc> {
    let mut m = r.map(node, "alerts")?;
    let span = m.span();
    let webhook = m.get("webhook").map(|n| {
        let mut w = r.map(n, "webhook")?;
        let env = w.required(r, "url_env").and_then(|n| env_name(r, n, "url_env"));
        w.finish(r);
        env
    });
    let telegram = m.get("telegram").map(|n| {
        let mut t = r.map(n, "telegram")?;
        let token = t.required(r, "token_env").and_then(|n| env_name(r, n, "token_env"));
        let chat = t.required(r, "chat_id_env").and_then(|n| env_name(r, n, "chat_id_env"));
        t.finish(r);
        Some((token?, chat?))
    });
    let on = match m.get("on") {
        Some(n) => r.string_list(n, "on").map(|list| {
            list.iter()
                .filter_map(|e| match EVENTS.iter().find(|k| **k == e.value) {
                    Some(k) => Some(*k),
                    None => {
                        let help = match crate::diagnostics::did_you_mean(&e.value, EVENTS.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`? events: {}", EVENTS.join(", ")),
                            None => format!("events: {}", EVENTS.join(", ")),
                        };
                        r.fail::<()>(
                            codes::INVALID_VALUE,
                            e.span,
                            format!("unknown alert event `{}`", e.value),
                            Some(help),
                        );
                        None
                    }
                })
                .collect::<Vec<_>>()
        }),
        None => Some(EVENTS.to_vec()),
    };
    let max_per_minute = match m.get("max_per_minute") {
        Some(n) => r.positive_int(n, "max_per_minute").map(|v| v.value),
        None => Some(10),
    };
    m.finish(r);
    let webhook = match webhook {
        Some(w) => Some(w?),
        None => None,
    };
    let telegram = match telegram {
        Some(t) => Some(t?),
        None => None,
    };
    if webhook.is_none() && telegram.is_none() {
        return r.fail(
            codes::MISSING_KEY,
            span,
            "`alerts` needs a `webhook` or a `telegram` to send to".into(),
            Some("e.g. `alerts: {webhook: {url_env: TRADEDSL_ALERT_WEBHOOK}}`".into()),
        );
    }
    Some(AlertsDoc { webhook_env: webhook, telegram_env: telegram, on: on?, max_per_minute: max_per_minute? })
}
