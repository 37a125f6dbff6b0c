//! What can go wrong, grouped by what the caller should do about it.

use tenure_core::{ConfigError, Error, ErrorClass, Timestamp};

/// Why an operation ([`crate::Tenure::token`], `login`, `renew`, `logout`, `forget`) gave
/// no result. The variants are what the caller should do; [`std::error::Error::source`] is
/// the core's [`Error`], whose message says what happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A user must log in through the browser: call [`crate::Tenure::login`] (a command-line
    /// tool tells the user to run its login command).
    #[error("login required: {reason}")]
    LoginRequired {
        /// Why, in words.
        reason: String,
    },
    /// The configuration, or what the server offers, rules this out: change the
    /// configuration before trying again.
    #[error("the client configuration cannot work with this server")]
    Configuration {
        /// What exactly.
        #[source]
        source: Error,
    },
    /// The server refused, or broke the protocol; trying again unchanged gets the same.
    #[error("the authorization server refused")]
    Refused {
        /// What it said.
        #[source]
        source: Error,
    },
    /// The network, the store or the server is unavailable for now: try again later
    /// (after `retry_after` when known).
    #[error("temporarily unavailable; try again later")]
    Transient {
        /// What failed.
        #[source]
        source: Error,
        /// The earliest moment trying again can help, when known.
        retry_after: Option<Timestamp>,
    },
    /// The driver task is gone (its runtime shut down).
    #[error("the Tenure driver stopped; build a new handle")]
    Stopped,
}

impl TokenError {
    /// Whether trying again later, unchanged, may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TokenError::Transient { .. })
    }

    /// Whether a browser login would help.
    pub fn is_login_required(&self) -> bool {
        matches!(self, TokenError::LoginRequired { .. })
    }

    /// The core's error, when there is one.
    pub fn core(&self) -> Option<&Error> {
        match self {
            TokenError::Configuration { source }
            | TokenError::Refused { source }
            | TokenError::Transient { source, .. } => Some(source),
            TokenError::LoginRequired { .. } | TokenError::Stopped => None,
        }
    }
}

impl From<Error> for TokenError {
    fn from(error: Error) -> Self {
        match error.class() {
            ErrorClass::LoginRequired => TokenError::LoginRequired {
                reason: error.to_string(),
            },
            ErrorClass::Configuration => TokenError::Configuration { source: error },
            ErrorClass::Transient => TokenError::Transient {
                retry_after: error.retry_after(),
                source: error,
            },
            _ => TokenError::Refused { source: error },
        }
    }
}

/// Why [`crate::Builder::build`] could not start a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is unusable; the message names the setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be read.
    #[error("cannot read the store: {0}")]
    Store(String),
    /// The operating system gave no randomness for the seed.
    #[error("the operating system gave no randomness for PKCE, state and the lease holder ({0}); pass one with `Builder::seed`")]
    Entropy(String),
    /// A login URL would reach nobody.
    #[error("BrowserMode::Print shows the login URL only through a hook; set one with `Builder::on_login_url`")]
    NoLoginUrlHook,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn errors_are_grouped_by_what_to_do_and_keep_the_cause() {
        let transport = Error::Transport {
            url: "https://as.example/token".into(),
            detail: "connection refused".into(),
        };
        let grouped = TokenError::from(transport.clone());
        assert!(grouped.is_transient());
        assert_eq!(
            grouped.source().map(ToString::to_string),
            Some(transport.to_string())
        );
        let login = TokenError::from(Error::LoginRequired("no refresh token".into()));
        assert!(login.is_login_required() && login.core().is_none());
        let config = TokenError::from(Error::Config(ConfigError::NoServer));
        assert!(matches!(config, TokenError::Configuration { .. }));
        let refused = TokenError::from(Error::Protocol("no access_token".into()));
        assert!(matches!(refused, TokenError::Refused { .. }) && !refused.is_transient());
    }
}
