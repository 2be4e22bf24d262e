//! One HTTP layer for both Alpaca APIs: auth headers, timeouts, error classification and
//! retries (with `backon`).
//!
//! Retries:
//! - **429** is always retried (the request was refused, so a retry is safe, even for an order
//!   submission): after `X-RateLimit-Reset` (Unix seconds) when present, else `Retry-After`,
//!   else [`RetryPolicy::rate_limit_wait`]; never longer than [`RetryPolicy::max_rate_limit_wait`].
//! - **Timeouts, connection failures and 5xx** are retried with exponential backoff only for
//!   idempotent requests (GET, DELETE). A non-idempotent request (POST an order) returns the
//!   error at once; [`super::BrokerError::outcome_unknown`] tells the caller to look the
//!   order up before anything else.
//! - Other 4xx are never retried.

use std::cell::Cell;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::de::DeserializeOwned;

use super::credentials::Credentials;
use super::error::BrokerError;

/// Timeouts and retry limits of a client.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Time allowed for one request, connection included.
    pub timeout: Duration,
    /// Tries of a request answered with 429 (the first included).
    pub rate_limit_tries: usize,
    /// Wait after a 429 without reset headers.
    pub rate_limit_wait: Duration,
    /// Longest wait after a 429, whatever its headers say.
    pub max_rate_limit_wait: Duration,
    /// Tries of an idempotent request that timed out, failed to connect or got a 5xx.
    pub idempotent_tries: usize,
    /// First backoff delay for those (doubling, at most 8 s).
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 s timeout; 429 tried 4 times, waiting 3 s by default (alpaca-py's wait) and at most
    /// 60 s; idempotent requests tried 3 times from 250 ms.
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(10),
            rate_limit_tries: 4,
            rate_limit_wait: Duration::from_secs(3),
            max_rate_limit_wait: Duration::from_secs(60),
            idempotent_tries: 3,
            backoff: Duration::from_millis(250),
        }
    }
}

/// An HTTP method the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A response with a 2xx status.
#[derive(Debug, Clone)]
pub(super) struct Response {
    pub body: String,
}

/// One failed try, and whether (and when) to try again.
struct Failure {
    err: BrokerError,
    retry: bool,
    wait: Option<Duration>,
    rate_limited: bool,
}

/// Authenticated requests against one base URL.
#[derive(Clone)]
pub(super) struct Http {
    client: reqwest::Client,
    base: String,
    creds: Credentials,
    policy: RetryPolicy,
}

impl Http {
    /// A client for `base` (no trailing slash needed). Redirects are not followed (as the
    /// Alpaca SDKs do): a redirect must not carry the keys to another host.
    pub fn new(base: &str, creds: Credentials, policy: RetryPolicy) -> Result<Self, BrokerError> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tradedsl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BrokerError::Transport { method: "-", path: base.into(), detail: e.to_string() })?;
        Ok(Http { client, base: base.trim_end_matches('/').to_string(), creds, policy })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request, retrying as the module documents.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, BrokerError> {
        let idempotent = method != Method::Post;
        let limited = Cell::new(0usize);
        let failed = Cell::new(0usize);
        let p = &self.policy;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(p.backoff)
            .with_max_delay(Duration::from_secs(8))
            .with_max_times(p.rate_limit_tries.max(p.idempotent_tries));
        let attempt = || self.once(method, path, query, body, idempotent);
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| {
                if f.rate_limited {
                    limited.set(limited.get() + 1);
                    f.retry && limited.get() < p.rate_limit_tries
                } else {
                    failed.set(failed.get() + 1);
                    f.retry && failed.get() < p.idempotent_tries
                }
            })
            .adjust(|f: &Failure, d| f.wait.or(d))
            .await;
        result.map_err(|f| match f.err {
            BrokerError::RateLimited { method, path, body, .. } => {
                BrokerError::RateLimited { method, path, tries: limited.get().max(1), body }
            }
            e => e,
        })
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        idempotent: bool,
    ) -> Result<Response, Failure> {
        let m = method.as_str();
        let url = format!("{}{}", self.base, path);
        let mut req = match method {
            Method::Get => self.client.get(&url),
            Method::Post => self.client.post(&url),
            Method::Delete => self.client.delete(&url),
        };
        req = req
            .header("APCA-API-KEY-ID", self.creds.key_id())
            .header("APCA-API-SECRET-KEY", self.creds.secret())
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let transient = |err: BrokerError| Failure { err, retry: idempotent, wait: None, rate_limited: false };
        // A request or body that failed on the way: a timeout or a connection failure.
        let lost = |e: reqwest::Error| {
            transient(if e.is_timeout() {
                BrokerError::Timeout { method: m, path: path.into(), timeout: self.policy.timeout }
            } else {
                BrokerError::Transport { method: m, path: path.into(), detail: self.creds.scrub(&error_chain(&e)) }
            })
        };
        let resp = req.send().await.map_err(lost)?;
        let status = resp.status().as_u16();
        let reset = header_secs(&resp, "x-ratelimit-reset");
        let retry_after = header_secs(&resp, "retry-after");
        let text = resp.text().await.map_err(lost)?;
        match status {
            200..=299 => Ok(Response { body: text }),
            429 => {
                let now = chrono::Utc::now().timestamp();
                let wait = match (reset, retry_after) {
                    (Some(r), _) => Duration::from_secs(r.saturating_sub(now).max(0) as u64),
                    (None, Some(s)) => Duration::from_secs(s.max(0) as u64),
                    _ => self.policy.rate_limit_wait,
                };
                Err(Failure {
                    err: BrokerError::RateLimited {
                        method: m,
                        path: path.into(),
                        tries: 1,
                        body: excerpt(&self.creds.scrub(&text)),
                    },
                    retry: true,
                    wait: Some(wait.min(self.policy.max_rate_limit_wait)),
                    rate_limited: true,
                })
            }
            500..=599 => Err(transient(BrokerError::Server {
                method: m,
                path: path.into(),
                status,
                body: excerpt(&self.creds.scrub(&text)),
            })),
            _ => {
                let (code, message) = error_body(&text);
                Err(Failure {
                    err: BrokerError::Rejected {
                        method: m,
                        path: path.into(),
                        status,
                        code,
                        message: self.creds.scrub(&message),
                    },
                    retry: false,
                    wait: None,
                    rate_limited: false,
                })
            }
        }
    }

    /// Parses a 2xx body. The error quotes the start of the body with the keys scrubbed out
    /// (a server may echo them back).
    pub fn parse<T: DeserializeOwned>(&self, method: Method, path: &str, body: &str) -> Result<T, BrokerError> {
        serde_json::from_str(body).map_err(|e| BrokerError::Malformed {
            method: method.as_str(),
            path: path.into(),
            detail: self.creds.scrub(&format!("{e}; body starts {:?}", excerpt(&self.creds.scrub(body)))),
        })
    }
}

/// Alpaca's `{"code": int, "message": str}`, or the start of a body that is not that.
fn error_body(text: &str) -> (Option<i64>, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        code: Option<i64>,
        message: Option<String>,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(Body { code, message: Some(m) }) => (code, m),
        Ok(Body { code, message: None }) => (code, excerpt(text)),
        Err(_) if text.trim().is_empty() => (None, "(empty body)".into()),
        Err(_) => (None, excerpt(text)),
    }
}

fn header_secs(resp: &reqwest::Response, name: &str) -> Option<i64> {
    resp.headers().get(name)?.to_str().ok()?.trim().parse::<f64>().ok().map(|v| v as i64)
}

/// The first 200 characters of `text`, on one line.
pub(super) fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(200).collect();
    if one_line.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_json_or_not() {
        assert_eq!(
            error_body(r#"{"code":40010001,"message":"qty or notional is required"}"#),
            (Some(40010001), "qty or notional is required".into())
        );
        assert_eq!(error_body("Too Many Requests"), (None, "Too Many Requests".into()));
        assert_eq!(error_body(""), (None, "(empty body)".into()));
    }
}
