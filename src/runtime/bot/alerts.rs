//! Alerts of a running bot (`alerts:` in its manifest, see [`crate::config::alerts`]): a
//! message to a webhook (a JSON POST whose body Slack, Discord and generic receivers read:
//! `text` and `content` hold the message, `bot`, `kind` and `time` the facts) and optionally
//! to Telegram (`sendMessage`).
//!
//! **Never in the way.** The bot hands an alert to a bounded queue and goes on; a task on the
//! bot's runtime delivers it, waiting for the rate limit (`governor`, `max_per_minute`) and
//! retrying a failed POST with exponential backoff (`backon`: 5 tries from 250 ms). A full queue
//! drops the alert. Every delivery, failure and drop comes back to the bot, which journals it
//! (`events`: `alert_sent`, `alert_failed`, `alert_dropped`) at its next checkpoint; at the end
//! of the run it waits up to 15 s for the last ones.
//!
//! **Secrets.** The webhook URL and the Telegram token come from the environment variables the
//! manifest names; a missing one refuses the start. They never appear in a message, a log line
//! or the journal (errors are reported without their URL). A webhook must be `https`, or `http`
//! on loopback (a local relay or a test's mock); `TRADEDSL_TELEGRAM_URL` may point Telegram's
//! API at a loopback mock.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{Quota, RateLimiter};

use crate::config::alerts::AlertsDoc;
use crate::diagnostics::{Diagnostic, codes};

/// Alerts waiting for delivery at most; more are dropped (and journaled as dropped).
const QUEUE: usize = 256;
/// Telegram's Bot API.
const TELEGRAM_URL: &str = "https://api.telegram.org";
/// The variable that may point Telegram's API at a loopback mock.
pub const TELEGRAM_URL_VAR: &str = "TRADEDSL_TELEGRAM_URL";

/// Something a person should know.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `state`, `broker`, `approval`, `report` or `stale`.
    pub kind: &'static str,
    /// Bar time (UTC seconds) it is about.
    pub ts: i64,
    /// The message.
    pub text: String,
}

/// What became of an alert on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The alert.
    pub alert: Alert,
    /// `webhook` or `telegram` (`queue` for a drop).
    pub channel: &'static str,
    /// `None` when delivered, else why not.
    pub error: Option<String>,
}

#[derive(Clone)]
struct Channels {
    http: reqwest::Client,
    bot: String,
    webhook: Option<String>,
    telegram: Option<(String, String, String)>,
}

/// What the delivery task reports: an outcome on one channel, or an alert done with.
enum Report {
    Outcome(Delivery),
    Done,
}

/// The bot's alert sender.
pub struct Alerter {
    on: Vec<&'static str>,
    tx: tokio::sync::mpsc::Sender<Alert>,
    results: tokio::sync::mpsc::UnboundedReceiver<Report>,
    dropped: Vec<Delivery>,
    task: tokio::task::JoinHandle<()>,
    /// Alerts queued and not done with yet.
    in_flight: usize,
}

fn secret(var: &str) -> Result<String, Diagnostic> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(Diagnostic::error(
            codes::RUNTIME_REFUSED,
            format!("the manifest's alerts read `{var}`, which is not set"),
        )
        .help(format!("export {var}=... (kept out of the manifest: it is a secret), or remove the alert"))),
    }
}

/// A webhook URL the bot may post to: https, or http on loopback.
fn webhook_url(value: &str, var: &str) -> Result<String, Diagnostic> {
    let refuse = |why: &str| {
        Diagnostic::error(codes::RUNTIME_REFUSED, format!("the webhook URL in `{var}` is refused: {why}"))
            .help("a webhook is https (Slack, Discord), or http on loopback for a local relay")
    };
    let url = url::Url::parse(value).map_err(|_| refuse("it is not a URL"))?;
    let Some(loopback) = crate::runtime::broker::live_gate::is_loopback(&url) else {
        return Err(refuse("it has no host"));
    };
    match url.scheme() {
        "https" => Ok(value.to_string()),
        "http" if loopback => Ok(value.to_string()),
        _ => Err(refuse("it is not https (an http URL is accepted on loopback only)")),
    }
}

impl Alerter {
    /// Starts the sender for `doc` on the current tokio runtime.
    ///
    /// # Errors
    /// A variable the manifest names is not set, a webhook URL that is neither https nor
    /// loopback, or an HTTP client that cannot be built.
    pub fn start(doc: &AlertsDoc, bot: &str) -> Result<Self, Diagnostic> {
        let webhook = match &doc.webhook_env {
            Some(var) => Some(webhook_url(&secret(&var.value)?, &var.value)?),
            None => None,
        };
        let telegram = match &doc.telegram_env {
            Some((token, chat)) => {
                let base = match std::env::var(TELEGRAM_URL_VAR) {
                    Ok(u) => {
                        crate::runtime::broker::live_gate::allowed_override(TELEGRAM_URL_VAR, &u, "api.telegram.org")?
                    }
                    Err(_) => TELEGRAM_URL.to_string(),
                };
                Some((base.trim_end_matches('/').to_string(), secret(&token.value)?, secret(&chat.value)?))
            }
            None => None,
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| {
            Diagnostic::error(codes::IO, format!("cannot build the alerts' HTTP client: {}", e.without_url()))
        })?;
        let channels = Channels { http, bot: bot.to_string(), webhook, telegram };
        let per_minute = NonZeroU32::new(doc.max_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = Arc::new(RateLimiter::direct(Quota::per_minute(per_minute)));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Alert>(QUEUE);
        let (results_tx, results) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(alert) = rx.recv().await {
                limiter.until_ready().await;
                for (channel, result) in channels.deliver(&alert).await {
                    let _ = results_tx.send(Report::Outcome(Delivery {
                        alert: alert.clone(),
                        channel,
                        error: result.err(),
                    }));
                }
                let _ = results_tx.send(Report::Done);
            }
        });
        Ok(Alerter { on: doc.on.clone(), tx, results, dropped: Vec::new(), task, in_flight: 0 })
    }

    /// Queues `alert` when its kind is one the manifest sends; never waits.
    pub fn send(&mut self, alert: Alert) {
        if !self.on.contains(&alert.kind) {
            return;
        }
        match self.tx.try_send(alert) {
            Ok(()) => self.in_flight += 1,
            Err(e) => {
                let alert = match e {
                    tokio::sync::mpsc::error::TrySendError::Full(a)
                    | tokio::sync::mpsc::error::TrySendError::Closed(a) => a,
                };
                self.dropped.push(Delivery { alert, channel: "queue", error: Some("the alert queue is full".into()) });
            }
        }
    }

    /// The deliveries, failures and drops since the last call.
    pub fn drain(&mut self) -> Vec<Delivery> {
        let mut out = std::mem::take(&mut self.dropped);
        while let Ok(r) = self.results.try_recv() {
            match r {
                Report::Outcome(d) => out.push(d),
                Report::Done => self.in_flight = self.in_flight.saturating_sub(1),
            }
        }
        out
    }

    /// Stops taking alerts and waits up to `wait` for the queued ones; returns every outcome
    /// not drained yet, and one drop for the alerts still undelivered then (bar time `ts`).
    pub async fn finish(mut self, wait: Duration, ts: i64) -> Vec<Delivery> {
        let (tx, _) = tokio::sync::mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        let _ = tokio::time::timeout(wait, &mut self.task).await;
        self.task.abort();
        let mut out = self.drain();
        if self.in_flight > 0 {
            let text = format!("{} alert(s)", self.in_flight);
            out.push(Delivery {
                alert: Alert { kind: "queue", ts, text },
                channel: "queue",
                error: Some("not delivered before the bot stopped".into()),
            });
        }
        out
    }
}

impl Channels {
    async fn deliver(&self, alert: &Alert) -> Vec<(&'static str, Result<(), String>)> {
        let mut out = Vec::new();
        let time = crate::runtime::data::timeparse::format_utc(alert.ts);
        if let Some(url) = &self.webhook {
            let body = serde_json::json!({
                "text": alert.text,
                "content": alert.text,
                "bot": self.bot,
                "kind": alert.kind,
                "time": time,
            });
            out.push(("webhook", self.post(url, &body).await));
        }
        if let Some((base, token, chat)) = &self.telegram {
            let body = serde_json::json!({"chat_id": chat, "text": alert.text});
            out.push(("telegram", self.post(&format!("{base}/bot{token}/sendMessage"), &body).await));
        }
        out
    }

    /// POSTs `body`, retrying failures (5 tries, 250 ms doubling: 3.75 s of waits in all, inside
    /// the 15 s a stopping bot gives its last alerts); errors without the URL.
    async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let attempt = || async {
            let r = self.http.post(url).json(body).send().await.map_err(|e| e.without_url().to_string())?;
            if r.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", r.status().as_u16())) }
        };
        attempt.retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(250)).with_max_times(4)).await
    }
}

/// The watchdog's alert (`dsl status --check --alert`): when the check found `problems` and
/// the manifest sends `stale` alerts, one message naming them, sent on every channel and
/// journaled (`watchdog_alerts`), once per `episode` (the stale run's last heartbeat, or the
/// time the bot was halted). Returns the outcomes, empty when nothing was due.
///
/// # Errors
/// A variable the manifest names is not set, or the journal cannot be read or written.
pub fn watchdog(
    doc: &AlertsDoc,
    journal: &std::path::Path,
    bot: &str,
    problems: &[String],
    episode: i64,
) -> Result<Vec<Delivery>, Diagnostic> {
    use crate::runtime::journal::watchdog_log;
    if problems.is_empty() || !doc.on.contains(&"stale") {
        return Ok(Vec::new());
    }
    let text = format!("check failed: {}", problems.join("; "));
    if watchdog_log::delivered(journal, bot, episode, &text)? {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot start the async runtime: {e}")))?;
    let now = chrono::Utc::now().timestamp();
    let deliveries = runtime.block_on(async {
        let mut alerter = Alerter::start(doc, bot)?;
        alerter.send(Alert { kind: "stale", ts: now, text: text.clone() });
        Ok::<_, Diagnostic>(alerter.finish(Duration::from_secs(30), now).await)
    })?;
    let outcomes: Vec<(&str, Option<String>)> = deliveries.iter().map(|d| (d.channel, d.error.clone())).collect();
    watchdog_log::record(journal, bot, episode, &text, &outcomes)?;
    Ok(deliveries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_https_or_loopback() {
        assert!(webhook_url("https://hooks.slack.com/services/T/B/X", "V").is_ok());
        assert!(webhook_url("http://127.0.0.1:9000/hook", "V").is_ok());
        assert!(webhook_url("http://localhost/hook", "V").is_ok());
        let e = webhook_url("http://hooks.slack.com/services/T/B/SECRET", "V").unwrap_err();
        assert!(!e.message.contains("SECRET"), "the URL is a secret: {}", e.message);
        assert!(webhook_url("not a url", "V").is_err());
    }
}
