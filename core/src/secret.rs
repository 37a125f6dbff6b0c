//! A value that must never be printed (INV-12).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a redacted secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A credential: client secret, registration access token, initial access token, access or
/// refresh token, authorization code or PKCE verifier.
///
/// `Debug` and `Display` print [`REDACTED`]; the value leaves only through [`Secret::expose`],
/// so every place that sends or stores a secret is visible in the code. Serialization writes the
/// real value, because the store must keep it; use [`crate::Record::redacted`] for display.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for sending it where it belongs or storing it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_inv_12() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(secret.expose(), "s3cr3t-value");
        let wrapped = Some(vec![secret]);
        assert!(!format!("{wrapped:?}").contains("s3cr3t"));
    }
}
