//! API keys, read from the environment only.

use std::fmt;

use super::error::BrokerError;

/// Environment variable holding the API key id.
pub const KEY_ID_VAR: &str = "APCA_API_KEY_ID";
/// Environment variable holding the API secret key.
pub const SECRET_VAR: &str = "APCA_API_SECRET_KEY";

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

    /// Reads [`KEY_ID_VAR`] and [`SECRET_VAR`].
    ///
    /// # Errors
    /// [`BrokerError::Credentials`] naming the variable that is missing or empty (never its
    /// value).
    pub fn from_env() -> Result<Self, BrokerError> {
        let read = |var: &'static str| match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(BrokerError::Credentials { variable: var }),
        };
        Ok(Credentials { key_id: read(KEY_ID_VAR)?, secret: read(SECRET_VAR)? })
    }

    pub(super) fn key_id(&self) -> &str {
        &self.key_id
    }

    pub(super) fn secret(&self) -> &str {
        &self.secret
    }

    /// The secret, for scrubbing it out of text that might echo it (a server error body).
    pub(super) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in [&self.secret, &self.key_id] {
            if s.len() >= 4 {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
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
    }
}
