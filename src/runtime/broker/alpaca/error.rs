//! What can go wrong talking to Alpaca.

use std::time::Duration;

/// A failed Alpaca request. Messages name the method and path (never a header, so never a
/// key) and, for rejections, Alpaca's own `code` and `message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrokerError {
    /// A credential variable is missing or empty.
    #[error("{variable} is not set: Alpaca API keys come from the environment only")]
    Credentials {
        /// The environment variable.
        variable: &'static str,
    },
    /// No response within the request timeout. For an order submission the order may or may
    /// not exist at the broker.
    #[error("{method} {path}: no response within {timeout:?}")]
    Timeout {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The connection failed (refused, reset, TLS). For an order submission the outcome is
    /// unknown.
    #[error("{method} {path}: connection failed: {detail}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// What the HTTP client said.
        detail: String,
    },
    /// HTTP 5xx. For an order submission the outcome is unknown.
    #[error("{method} {path}: server error HTTP {status}: {body}")]
    Server {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// Start of the body (at most 200 characters).
        body: String,
    },
    /// HTTP 429 on every try.
    #[error("{method} {path}: rate limited (HTTP 429) on {tries} tries: {body}")]
    RateLimited {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// Requests made.
        tries: usize,
        /// Start of the last body (often not JSON).
        body: String,
    },
    /// A 4xx other than 429: the request was refused and nothing happened at the broker
    /// (403 insufficient buying power or shorting not allowed, 404 unknown, 422 invalid).
    #[error("{method} {path}: rejected with HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Rejected {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// Alpaca's error code (`40010001`, `40310000`, ...), when the body had one.
        code: Option<i64>,
        /// Alpaca's message, or the start of the body.
        message: String,
    },
    /// A 2xx whose body is not what the API documents.
    #[error("{method} {path}: malformed response: {detail}")]
    Malformed {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// The parse error and the start of the body.
        detail: String,
    },
}

impl BrokerError {
    /// True when a request that changes state (an order submission) may or may not have taken
    /// effect: look it up (by `client_order_id`) before trying again.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, BrokerError::Timeout { .. } | BrokerError::Transport { .. } | BrokerError::Server { .. })
    }

    /// The HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            BrokerError::Server { status, .. } | BrokerError::Rejected { status, .. } => Some(*status),
            BrokerError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Short kind for journals and counters: `timeout`, `transport`, `server`, `rate_limited`,
    /// `rejected`, `malformed`, `credentials`.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerError::Credentials { .. } => "credentials",
            BrokerError::Timeout { .. } => "timeout",
            BrokerError::Transport { .. } => "transport",
            BrokerError::Server { .. } => "server",
            BrokerError::RateLimited { .. } => "rate_limited",
            BrokerError::Rejected { .. } => "rejected",
            BrokerError::Malformed { .. } => "malformed",
        }
    }
}
