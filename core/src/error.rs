//! The errors the core reports. Each message says what happened and what to do about it, and
//! none carries a secret (INV-12).

use std::fmt;

use crate::time::Timestamp;

/// A configuration the core refuses before sending anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The client has no name.
    #[error("the client needs a name")]
    EmptyName,
    /// Neither issuer nor resource.
    #[error("no authorization server: give the setting `issuer` or the setting `resource`")]
    NoServer,
    /// The issuer is unusable.
    #[error("bad setting `issuer`: {0}")]
    Issuer(String),
    /// The resource is unusable.
    #[error("bad setting `resource`: {0}")]
    Resource(String),
    /// The CIMD URL is unusable.
    #[error("bad setting `cimd_url`: {0}")]
    CimdUrl(String),
    /// A secret was given with no client id.
    #[error("the setting `client_secret` needs the setting `client_id`: a secret belongs to a pre-registered client")]
    SecretWithoutId,
    /// The pre-registered client id is empty.
    #[error("the setting `client_id` is empty")]
    EmptyClientId,
    /// The redirect URI is unusable.
    #[error("bad redirect URI: {0}")]
    RedirectUri(String),
    /// `private_key_jwt` without a private key.
    #[error("the auth method `private_key_jwt` needs the setting `private_key` (PKCS#8 PEM text of a P-256 EC or RSA key)")]
    PrivateKeyMissing,
    /// A private key for a client that would identify itself with a CIMD URL.
    #[error("the setting `private_key` cannot be used with the setting `cimd_url`: a CIMD client is public; drop the setting `cimd_url` to register the key dynamically, or give the setting `client_id` of a pre-registered client")]
    PrivateKeyWithCimd,
    /// A `jwks_uri` where no key is registered dynamically.
    #[error("the setting `jwks_uri` is only used to register a `private_key_jwt` client dynamically; drop it, or use the setting `auth_method` private_key_jwt without the setting `client_id`")]
    JwksUriUnused,
    /// A `jwks_uri` that is not an https URL.
    #[error("bad setting `jwks_uri`: {0}")]
    JwksUri(String),
    /// A private key while another auth method is chosen.
    #[error("the setting `private_key` is only used with the auth method `private_key_jwt`; choose that method or drop the key")]
    PrivateKeyUnused,
    /// The private key cannot sign.
    #[error("bad setting `private_key`: {0}")]
    PrivateKey(crate::assertion::KeyError),
    /// The jwt-bearer grant's assertion settings are unusable.
    #[error("bad jwt-bearer setting: {0}")]
    BearerAssertion(String),
}

/// An OAuth error as the server sent it: the HTTP status and, when the body was a JSON object
/// with a string `error`, its code and description (DCR-19, OAUTH-9, EDGE-31, EDGE-32).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// The HTTP status code.
    pub status: u16,
    /// The `error` code, when the body had one.
    pub code: Option<String>,
    /// The `error_description`, when the body had one.
    pub description: Option<String>,
}

impl ServerError {
    /// Whether the error code is exactly `code`. Decisions are made on codes, never on text.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

/// What went wrong in the lifecycle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No metadata document could be used.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The authorization server does not support PKCE with S256 (MCP-13).
    #[error("the authorization server {issuer} does not advertise PKCE S256 (code_challenge_methods_supported); refusing to log in without it")]
    PkceUnsupported {
        /// The issuer.
        issuer: String,
    },
    /// An endpoint is not https (or loopback http).
    #[error("refusing an insecure endpoint: {0}")]
    InsecureEndpoint(String),
    /// No way to obtain a client identity.
    #[error("no way to register with {issuer}: it offers no registration endpoint and no usable Client ID Metadata Document; pre-register a client there and give the setting `client_id` (and the setting `client_secret`), or the setting `cimd_url`")]
    NoRegistrationMethod {
        /// The issuer.
        issuer: String,
    },
    /// The registration request was refused.
    #[error("registration at {endpoint} failed: {cause}; check the client metadata or the initial access token")]
    RegistrationRejected {
        /// The sanitized endpoint.
        endpoint: String,
        /// What the server said.
        cause: ServerError,
    },
    /// A registration or management answer could not be used.
    #[error("unusable answer from the authorization server: {0}")]
    BadAnswer(String),
    /// The client secret expired and could not be renewed (INV-6). Only reported where
    /// Tenure cannot recover by itself: a transient renewal failure, or an explicit renewal.
    #[error("client secret expired at {at} and renewal failed: {reason}; try again later")]
    SecretExpired {
        /// When it expired.
        at: Timestamp,
        /// Why renewal failed.
        reason: String,
    },
    /// Registration is paused after the server refused it, or after registering again did
    /// not help (INV-14); nothing was sent.
    #[error("registration is paused until {until} ({reason}); nothing was sent, and the next attempt is allowed after that time")]
    RegistrationPaused {
        /// When the next attempt is allowed.
        until: Timestamp,
        /// What went wrong last.
        reason: String,
    },
    /// The configured token endpoint auth method is not one the server supports, and no
    /// method of the same kind is (DISC-10). Reported before any browser step.
    #[error("the authorization server supports the token endpoint auth methods {supported:?}, not `{configured}`; choose one of them with the setting `auth_method`")]
    AuthMethodUnsupported {
        /// The configured method.
        configured: String,
        /// What the server lists.
        supported: Vec<String>,
    },
    /// Renewal was asked for explicitly and failed.
    #[error("renewal failed: {0}")]
    RenewalFailed(String),
    /// The token endpoint refused a request.
    #[error("the token endpoint refused the {grant} request: {cause}{hint}")]
    TokenRejected {
        /// The grant type that was sent.
        grant: String,
        /// What the server said.
        cause: ServerError,
        /// What to do next, starting with `; ` when present.
        hint: String,
    },
    /// The authorization endpoint answered with an error redirect.
    #[error("authorization failed: {0}")]
    AuthorizationDenied(ServerError),
    /// A user must log in in a browser.
    #[error("login required: {0}")]
    LoginRequired(String),
    /// The browser never came back to the loopback callback.
    #[error("no redirect reached the loopback callback within {0}; run the login again")]
    CallbackTimeout(crate::time::Duration),
    /// A device login (RFC 8628) was not approved before its code expired.
    #[error("the device login was not approved before its code expired at {0}; run the login again and enter the code sooner")]
    DeviceCodeExpired(Timestamp),
    /// The loopback callback could not be opened.
    #[error("cannot receive the login redirect: {0}")]
    CallbackUnavailable(String),
    /// A request failed in transport (connection, timeout, oversized body).
    #[error("request to {url} failed: {detail}")]
    Transport {
        /// The sanitized URL.
        url: String,
        /// What the shell reported.
        detail: String,
    },
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The store failed or stayed busy.
    #[error("store error: {0}")]
    Store(String),
    /// The registration management endpoint refused or is missing.
    #[error("registration management failed: {0}")]
    Management(String),
    /// The shell could not read the assertion of the jwt-bearer grant (a workload identity
    /// token or an ID token); nothing was sent.
    #[error("cannot read the assertion for the jwt-bearer grant: {0}; check that the source is configured and that the platform or the login provides a current token")]
    AssertionUnavailable(String),
    /// The enterprise identity provider refused the token exchange (RFC 8693, SEP-990).
    #[error("the identity provider's token endpoint {endpoint} refused the token exchange: {cause}{hint}")]
    TokenExchangeRejected {
        /// The sanitized endpoint.
        endpoint: String,
        /// What the identity provider said.
        cause: ServerError,
        /// What to do next, starting with `; ` when present.
        hint: String,
    },
    /// The identity provider answered the token exchange with no usable ID-JAG.
    #[error("the identity provider's token endpoint {endpoint} gave no usable ID-JAG: {reason}; check that it supports the token exchange for the token type urn:ietf:params:oauth:token-type:id-jag")]
    TokenExchangeUnusable {
        /// The sanitized endpoint.
        endpoint: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// A resource refused the token for insufficient scope, and authorizing again would not
    /// help or was tried too often (MCP-18). The text says which.
    #[error("step-up authorization refused: {0}")]
    StepUpRefused(String),
}

/// What a caller should do about an [`Error`]: the grouping embedders branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The configuration, or what the server offers, rules the operation out: change the
    /// configuration (or the server) before trying again.
    Configuration,
    /// A user must log in (again) through the browser.
    LoginRequired,
    /// The server refused, or broke the protocol: trying again unchanged gets the same.
    Refused,
    /// Nothing is wrong with the request: the network, the store or the server is
    /// unavailable for now, so try again later.
    Transient,
}

impl Error {
    /// What the caller should do: decided on the variant and, for a server's answer, on its
    /// status (5xx and 429 are transient), never on text.
    pub fn class(&self) -> ErrorClass {
        let by_status = |cause: &ServerError| {
            if cause.status >= 500 || cause.status == 429 {
                ErrorClass::Transient
            } else {
                ErrorClass::Refused
            }
        };
        match self {
            Error::Config(_)
            | Error::PkceUnsupported { .. }
            | Error::InsecureEndpoint(_)
            | Error::NoRegistrationMethod { .. }
            | Error::AuthMethodUnsupported { .. }
            | Error::AssertionUnavailable(_) => ErrorClass::Configuration,
            Error::LoginRequired(_) | Error::CallbackTimeout(_) | Error::DeviceCodeExpired(_) => {
                ErrorClass::LoginRequired
            }
            Error::RegistrationRejected { cause, .. }
            | Error::TokenRejected { cause, .. }
            | Error::TokenExchangeRejected { cause, .. } => by_status(cause),
            Error::SecretExpired { .. }
            | Error::RegistrationPaused { .. }
            | Error::RenewalFailed(_)
            | Error::CallbackUnavailable(_)
            | Error::Transport { .. }
            | Error::Store(_) => ErrorClass::Transient,
            Error::Discovery(_)
            | Error::BadAnswer(_)
            | Error::AuthorizationDenied(_)
            | Error::Protocol(_)
            | Error::Management(_)
            | Error::StepUpRefused(_)
            | Error::TokenExchangeUnusable { .. } => ErrorClass::Refused,
        }
    }

    /// The earliest moment trying again can help, when the core knows one.
    pub fn retry_after(&self) -> Option<Timestamp> {
        match self {
            Error::RegistrationPaused { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// Whether this is a registration or renewal failure (the CLI's exit code 5).
    pub fn is_registration_failure(&self) -> bool {
        matches!(
            self,
            Error::NoRegistrationMethod { .. }
                | Error::RegistrationRejected { .. }
                | Error::RegistrationPaused { .. }
                | Error::SecretExpired { .. }
                | Error::RenewalFailed(_)
                | Error::Management(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> Error {
        Error::TokenRejected {
            grant: "refresh_token".into(),
            cause: ServerError {
                status,
                code: Some("server_error".into()),
                description: None,
            },
            hint: String::new(),
        }
    }

    #[test]
    fn a_server_answer_is_classed_by_its_status_not_its_text() {
        assert_eq!(rejected(503).class(), ErrorClass::Transient);
        assert_eq!(rejected(429).class(), ErrorClass::Transient);
        assert_eq!(rejected(400).class(), ErrorClass::Refused);
        assert_eq!(
            Error::Config(ConfigError::NoServer).class(),
            ErrorClass::Configuration
        );
        let paused = Error::RegistrationPaused {
            until: Timestamp::from_unix_millis(5_000),
            reason: "refused".into(),
        };
        assert_eq!(paused.class(), ErrorClass::Transient);
        assert_eq!(
            paused.retry_after(),
            Some(Timestamp::from_unix_millis(5_000))
        );
    }
}
