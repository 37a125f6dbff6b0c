//! The access token handed to callers, and what a resource's refusal means.

use std::fmt;
use std::sync::Arc;

use tenure_core::{Lifecycle, Operation, Secret, Timestamp, TokenScheme};

/// A valid access token. Cloning is cheap (the text is shared), and `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    expires_at: Option<Timestamp>,
    scheme: TokenScheme,
}

impl AccessToken {
    pub(crate) fn new(secret: &Secret, expires_at: Option<Timestamp>, scheme: TokenScheme) -> Self {
        AccessToken {
            secret: Arc::from(secret.expose()),
            expires_at,
            scheme,
        }
    }

    /// The token itself, to put on a request.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// How the token is presented: a [`TokenScheme::Dpop`] token goes with a fresh proof
    /// from [`crate::Tenure::dpop_proof`] in the `DPoP` header of every request.
    pub fn scheme(&self) -> TokenScheme {
        self.scheme
    }

    /// The `Authorization` header value: `Bearer <token>`, or `DPoP <token>` for a token
    /// bound to the client's DPoP key (RFC 9449 §7.1).
    pub fn header_value(&self) -> String {
        format!("{} {}", self.scheme.as_str(), self.secret)
    }

    /// When the server said it expires, if it did.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// Whether this is the same token as `secret`.
    pub(crate) fn is(&self, secret: &str) -> bool {
        &*self.secret == secret
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
    }
}

impl Eq for AccessToken {}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &tenure_core::secret::REDACTED)
            .field("expires_at", &self.expires_at)
            .field("scheme", &self.scheme)
            .finish()
    }
}

/// What to do after a protected resource refused a request ([`crate::Tenure::challenge`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Send the request again with this token (refreshed, or newer than the refused one).
    Retry(AccessToken),
    /// No token can be had without the user: call [`crate::Tenure::login`], then retry.
    LoginRequired {
        /// Why, in words.
        reason: String,
    },
    /// The resource wants more scope: [`crate::Tenure::login`] asks for these, then retry.
    StepUp {
        /// The scopes the next login requests.
        scopes: Vec<String>,
    },
    /// Authorizing again cannot help (MCP-18): hand the refusal to the caller.
    GiveUp {
        /// Why, in words.
        reason: String,
    },
}

/// Something worth knowing that is not the result of an operation: delivered to the
/// callback of [`crate::Builder::on_notice`] as it happens, and to `tracing`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Something is wrong but work goes on (a renewal failed before expiry, a secret that
    /// the server cannot renew, an old registration that cannot be deleted). Each is raised
    /// once per process.
    Warning {
        /// What is wrong, in words for the user.
        message: String,
        /// The operation being worked on when it was raised, if any.
        during: Option<Operation>,
    },
    /// The lifecycle moved (registering, renewing, logging in, …).
    Lifecycle(Lifecycle),
    /// A device login (RFC 8628) waits for the user: show them the URI and the code. The
    /// login goes on polling until they approve, refuse, or the code expires.
    DeviceCode {
        /// Where the user goes, on any device with a browser.
        verification_uri: String,
        /// The code to enter there.
        user_code: String,
        /// The verification URI with the code in it, when the server offers one.
        verification_uri_complete: Option<String>,
        /// When the code expires.
        expires_at: Timestamp,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = AccessToken::new(
            &Secret::new("planted-access-token"),
            None,
            TokenScheme::Bearer,
        );
        let shown = format!("{token:?} {:?}", Verdict::Retry(token.clone()));
        assert!(!shown.contains("planted-access-token"), "{shown}");
        assert_eq!(token.header_value(), "Bearer planted-access-token");
        let bound = AccessToken::new(&Secret::new("bound"), None, TokenScheme::Dpop);
        assert_eq!(bound.header_value(), "DPoP bound");
    }
}
