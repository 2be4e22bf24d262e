//! API keys, read from the environment only.

use std::fmt;

use super::error::BrokerError;

/// Environment variable holding the API key id.
pub const KEY_ID_VAR: &str = "APCA_API_KEY_ID";
/// Environment variable holding the API secret key.
pub const SECRET_VAR: &str = "APCA_API_SECRET_KEY";

/// Environment variable holding the paper account's key id in a switchover test (where
/// [`KEY_ID_VAR`] holds the live keys the live run will use).
pub const PAPER_KEY_ID_VAR: &str = "APCA_PAPER_API_KEY_ID";
/// Environment variable holding the paper account's secret key in a switchover test.
pub const PAPER_SECRET_VAR: &str = "APCA_PAPER_API_SECRET_KEY";

/// An Alpaca key pair. `Debug` and `Display` show at most the first four characters of the key
/// id and never the secret, so a credential that ends up in a log or an error leaks nothing.
#[derive(Clone)]
pub struct Credentials {
    key_id: String,
    secret: String,
}

impl Credentials {
    /// A key pair from values (tests and mock servers).
    pub fn new(key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials { key_id: key_id.into(), secret: secret.into() }
    }

    /// Reads `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY`.
    ///
    /// # Errors
    /// [`BrokerError::Credentials`] naming the variable that is missing or empty (never its
    /// value).
    pub fn from_env() -> Result<Self, BrokerError> {
        Self::from_vars(KEY_ID_VAR, SECRET_VAR)
    }

    /// Reads a key pair from the environment variables `key_id_var` and `secret_var` (e.g.
    /// the paper account's keys of a switchover test, [`PAPER_KEY_ID_VAR`]).
    ///
    /// # Errors
    /// As [`Credentials::from_env`].
    pub fn from_vars(key_id_var: &'static str, secret_var: &'static str) -> Result<Self, BrokerError> {
        let read = |var: &'static str| match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(BrokerError::Credentials { variable: var }),
        };
        Ok(Credentials { key_id: read(key_id_var)?, secret: read(secret_var)? })
    }

    pub(super) fn key_id(&self) -> &str {
        &self.key_id
    }

    pub(super) fn secret(&self) -> &str {
        &self.secret
    }

    /// `text` with the key id and the secret replaced by `[redacted]`, as they are and in the
    /// spellings a server echoing them might use (JSON-escaped, percent-encoded), for any text
    /// that came from a server (an error body, a parse error quoting a body) before it reaches
    /// an error message, a log line or the journal.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in [&self.secret, &self.key_id] {
            if s.len() < 4 {
                continue;
            }
            let json = serde_json::to_string(s).unwrap_or_default();
            let json = json.trim_matches('"').to_string();
            let percent: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            for form in [s.clone(), json, percent, percent_all(s)] {
                if form.len() >= 4 && out.contains(&form) {
                    out = out.replace(&form, "[redacted]");
                }
            }
        }
        out
    }
}

/// `s` with every byte outside `A-Za-z0-9-._~` percent-encoded (RFC 3986 unreserved).
fn percent_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.key_id.chars().take(4).collect();
        write!(f, "Credentials {{ key_id: {shown}…, secret: [redacted] }}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let c = Credentials::new("PKTESTKEY123456", "s3cr3t-value-xyz");
        for text in [format!("{c:?}"), format!("{c}")] {
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(!text.contains("PKTESTKEY123456"), "{text}");
        }
        assert_eq!(c.scrub("echo s3cr3t-value-xyz and PKTESTKEY123456"), "echo [redacted] and [redacted]");
        let odd = Credentials::new("PK/KEY+1", "se\"cr/et +x&y");
        for echoed in ["k=se%22cr%2Fet+%2Bx%26y", "k=se%22cr%2Fet%20%2Bx%26y", r#"{"k":"se\"cr/et +x&y"}"#] {
            let out = odd.scrub(echoed);
            assert!(out.contains("[redacted]") && !out.contains("cr"), "{echoed} -> {out}");
        }
    }
}
