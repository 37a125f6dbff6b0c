//! The durable record: everything that must survive a crash, and nothing else.
//!
//! In-flight state (a PKCE verifier, request ids, a held lease) lives in the machine and dies
//! with the process; after a crash the machine is rebuilt from this record alone. Every write is
//! a compare-and-swap on [`Record::generation`] (INV-9).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::AuthMethod;
use crate::dpop::{DpopKey, TokenScheme};
use crate::key::ClientKey;
use crate::secret::{Secret, REDACTED};
use crate::time::{Duration, Timestamp};

/// One client key's persisted credentials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Which lifecycle this is.
    pub key: ClientKey,
    /// Bumped by every write; a write names the generation it read (INV-9).
    pub generation: u64,
    /// The validated authorization server metadata, so a warm start sends no request.
    pub server: AuthServer,
    /// A pre-registered client id in use (its secret stays in the configuration).
    #[serde(default)]
    pub pre_registered_client_id: Option<String>,
    /// The CIMD client id, kept apart from DCR credentials (INV-2).
    #[serde(default)]
    pub cimd: Option<CimdIdentity>,
    /// The RFC 7591 registration, when DCR was used.
    #[serde(default)]
    pub dcr: Option<Registration>,
    /// Tokens of the current grant.
    #[serde(default)]
    pub tokens: Option<Tokens>,
    /// Registration attempts are paused until this backoff ends (INV-14): set when the server
    /// refused a registration, or when a fresh registration was needed again because the
    /// token endpoint stopped accepting the client. Cleared once a token is obtained.
    #[serde(default)]
    pub registration_backoff: Option<Backoff>,
    /// The client's DPoP key (RFC 9449), made the first time a token request carries a proof
    /// and kept for as long as the record: tokens bound to it stay usable across restarts and
    /// by every replica reading this record.
    #[serde(default)]
    pub dpop_key: Option<DpopKey>,
}

/// Why and until when registration is paused for one client key (INV-14).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// How many registrations in a row ended badly; the pause doubles with each.
    pub failures: u32,
    /// No registration request is sent before this instant.
    pub until: Timestamp,
    /// What went wrong last, in words fit for a user (server text already sanitized).
    pub reason: String,
    /// A digest of the refused registration request (its metadata and initial access token),
    /// when a refusal set this backoff: a changed configuration is a new request, and the
    /// user who fixed it is not made to wait. `None` pauses every registration.
    #[serde(default)]
    pub request: Option<String>,
}

/// The first pause after a refused registration.
pub const REGISTRATION_BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest pause between two registration attempts.
pub const REGISTRATION_BACKOFF_CAP: Duration = Duration::from_hours(1);

impl Backoff {
    /// The backoff after one more failure than `previous`, starting at `now`: the base pause
    /// doubled per earlier failure, capped, then shortened by up to a quarter according to
    /// `jitter` (any `u64`; drawn from the client's entropy) so that replicas refused together
    /// do not come back together.
    pub fn after(previous: Option<&Backoff>, now: Timestamp, reason: String, jitter: u64) -> Self {
        let failures = previous.map_or(0, |b| b.failures).saturating_add(1);
        let doublings = (failures - 1).min(16);
        let full = REGISTRATION_BACKOFF_BASE
            .as_millis()
            .saturating_mul(1 << doublings)
            .min(REGISTRATION_BACKOFF_CAP.as_millis());
        let cut = (full / 4).max(1);
        let pause = full - (jitter % cut as u64) as i64;
        Backoff {
            failures,
            until: now + Duration::from_millis(pause),
            reason,
            request: None,
        }
    }

    /// Whether a registration request with digest `request` is still paused at `now`.
    pub fn pauses(&self, request: Option<&str>, now: Timestamp) -> bool {
        let same = match (&self.request, request) {
            (Some(refused), Some(next)) => refused == next,
            _ => true,
        };
        same && now < self.until
    }
}

/// How the client identifies itself at the authorization server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum IdentityKind {
    /// A client id (and secret) from configuration.
    PreRegistered,
    /// A Client ID Metadata Document URL used as the client id.
    Cimd,
    /// An RFC 7591 dynamic registration.
    Dcr,
    /// Nothing usable yet.
    None,
}

impl IdentityKind {
    /// `pre-registered`, `cimd`, `dcr` or `none`, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::PreRegistered => "pre-registered",
            IdentityKind::Cimd => "cimd",
            IdentityKind::Dcr => "dcr",
            IdentityKind::None => "none",
        }
    }
}

/// A CIMD client id and whether this authorization server rejected it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CimdIdentity {
    /// The document URL, which is the client id.
    pub client_id: String,
    /// Set once the server refused it; from then on DCR is used (INV-3), and the flag
    /// survives restarts so the fallback cannot loop.
    pub rejected: bool,
}

/// When the client secret stops working (DCR-14, EDGE-1, EDGE-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "at")]
pub enum SecretExpiry {
    /// `client_secret_expires_at: 0`, or no secret at all.
    Never,
    /// An absolute expiry.
    At(Timestamp),
    /// A secret arrived without `client_secret_expires_at`; `invalid_client` will tell.
    Unknown,
}

impl SecretExpiry {
    /// The expiry instant, if there is one.
    pub fn at(self) -> Option<Timestamp> {
        match self {
            SecretExpiry::At(at) => Some(at),
            _ => None,
        }
    }
}

/// An RFC 7591 registration as the server answered it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The server-issued client id (DCR-13, DCR-21).
    pub client_id: String,
    /// The client secret, when one was issued.
    pub client_secret: Option<Secret>,
    /// When the secret expires.
    pub secret_expires: SecretExpiry,
    /// The RFC 7592 registration access token (MGMT-19).
    pub registration_access_token: Option<Secret>,
    /// The RFC 7592 registration client URI, used exactly as given (MGMT-1).
    pub registration_client_uri: Option<String>,
    /// The registered token endpoint auth method (DCR-5: absent means `client_secret_basic`).
    pub token_endpoint_auth_method: AuthMethod,
    /// The redirect URI registered, port included.
    pub redirect_uri: Option<String>,
    /// Where the registration was made; the registration client URI must stay on its origin.
    pub registration_endpoint: String,
    /// When this client's secret was last issued (registration or renewal), as the client saw
    /// it; `None` in records written before it was kept.
    #[serde(default)]
    pub obtained_at: Option<Timestamp>,
    /// The token endpoint has not yet accepted this registration. A fresh registration the
    /// token endpoint refuses is not cured by registering at once yet again (and sending the
    /// user through the browser once more): the next one waits for a backoff (INV-14).
    #[serde(default)]
    pub unproven: bool,
    /// Every member of the last answer except the two secrets, unknown members included,
    /// because an RFC 7592 update sends them back (DCR-17, MGMT-7).
    pub metadata: Map<String, Value>,
}

impl Registration {
    /// Whether RFC 7592 management is possible: both the URI and the token are known
    /// (MGMT-21, EDGE-7).
    pub fn manageable(&self) -> bool {
        self.registration_client_uri.is_some() && self.registration_access_token.is_some()
    }

    /// Whether the secret has expired at `now` (INV-5).
    pub fn secret_expired(&self, now: Timestamp) -> bool {
        self.client_secret.is_some()
            && matches!(self.secret_expires, SecretExpiry::At(at) if at <= now)
    }

    /// Whether replacing this secret early, inside the renewal window, gains anything: only
    /// when a fresh secret would live longer than the window. Otherwise a replacement would
    /// itself be due at once, and the secret is replaced when it expires instead.
    pub fn outlives_window(&self, window: Duration) -> bool {
        match (self.secret_expires, self.obtained_at) {
            (SecretExpiry::At(at), Some(obtained)) => at.since(obtained) > window,
            _ => false,
        }
    }

    /// Whether the secret expires within `window` of `now` (the renewal window).
    pub fn secret_expiring(&self, now: Timestamp, window: Duration) -> bool {
        self.client_secret.is_some()
            && matches!(self.secret_expires, SecretExpiry::At(at) if at <= now + window)
    }
}

/// Tokens of one grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: Secret,
    /// The token type as sent (compared case-insensitively, OAUTH-12): `Bearer`, or `DPoP`
    /// for a token bound to [`Record::dpop_key`].
    #[serde(default = "bearer")]
    pub token_type: String,
    /// When the access token expires: receive time plus `expires_in` (EDGE-29); `None` when
    /// the server gave no lifetime.
    pub expires_at: Option<Timestamp>,
    /// The refresh token, when one was issued (INV-10).
    pub refresh_token: Option<Secret>,
    /// The granted scope, when the server said (OAUTH-11).
    pub scope: Option<String>,
    /// When the answer arrived; with `expires_at` it gives the token's lifetime, which sizes
    /// the refresh margin. `None` in records written before it was kept.
    #[serde(default)]
    pub issued_at: Option<Timestamp>,
}

/// The longest safety margin: an access token is not handed out within this of its expiry.
pub const ACCESS_TOKEN_MARGIN: Duration = Duration::from_secs(30);

fn bearer() -> String {
    "Bearer".into()
}

impl Tokens {
    /// How the access token is presented: DPoP for a token bound to the client's key.
    pub fn scheme(&self) -> TokenScheme {
        TokenScheme::of(&self.token_type)
    }

    /// How long before its stated expiry the access token is treated as expired, so it is not
    /// handed out just as it dies: a tenth of its lifetime plus one second (servers count
    /// expiry in whole seconds from when they issued the token, so it may die up to a second
    /// before receipt plus `expires_in`), at most [`ACCESS_TOKEN_MARGIN`]. A 10 s token is
    /// used for 8 s, not fetched again on every call; a token whose lifetime is unknown gets
    /// the whole margin.
    pub fn margin(&self) -> Duration {
        match (self.expires_at, self.issued_at) {
            (Some(expires), Some(issued)) => Duration::from_millis(
                (expires.since(issued).as_millis() / 10 + 1_000)
                    .min(ACCESS_TOKEN_MARGIN.as_millis()),
            ),
            _ => ACCESS_TOKEN_MARGIN,
        }
    }

    /// Whether the access token can still be handed out at `now`.
    pub fn access_token_valid(&self, now: Timestamp) -> bool {
        self.access_token_valid_with(now, 0)
    }

    /// Whether the access token can still be handed out at `now`, with the margin stretched
    /// by `jitter` per mille of itself (at most half again). Each process draws its own, so a
    /// fleet whose tokens expire together does not refresh in lockstep.
    pub fn access_token_valid_with(&self, now: Timestamp, jitter: u16) -> bool {
        let margin = self.margin().as_millis();
        let extra = margin * i64::from(jitter.min(1000)) / 2000;
        match self.expires_at {
            Some(at) => now + Duration::from_millis(margin + extra) < at,
            None => true,
        }
    }
}

/// Validated authorization server metadata, cached in the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthServer {
    /// The issuer, identical to the one expected (DISC-4).
    pub issuer: String,
    /// The authorization endpoint, when the server has one.
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The RFC 7591 registration endpoint, when DCR is offered (DISC-8).
    pub registration_endpoint: Option<String>,
    /// The RFC 8628 device authorization endpoint, when the server offers logins on devices
    /// without a browser (RFC 8628 §4).
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// `client_id_metadata_document_supported` (CIMD-9).
    pub cimd_supported: bool,
    /// `authorization_response_iss_parameter_supported` (ISS-2).
    pub iss_parameter_supported: bool,
    /// Whether S256 is in `code_challenge_methods_supported` (MCP-13).
    pub pkce_s256: bool,
    /// `token_endpoint_auth_methods_supported`, `None` when absent (DISC-10).
    pub token_endpoint_auth_methods: Option<Vec<String>>,
    /// `scopes_supported` of the protected resource (MCP-10), when discovery went through one.
    pub resource_scopes: Option<Vec<String>>,
    /// The `resource` exactly as the protected resource metadata published it; sent as the
    /// RFC 8707 `resource` parameter (MCP26-3), when discovery went through a resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Whether `dpop_signing_alg_values_supported` lists ES256, the algorithm Tenure signs
    /// DPoP proofs with (RFC 9449 §5.1).
    #[serde(default)]
    pub dpop_es256: bool,
}

impl AuthServer {
    /// Whether the server accepts `method` at the token endpoint; an absent list means
    /// `client_secret_basic` only (DISC-10).
    pub fn supports_auth_method(&self, method: AuthMethod) -> bool {
        match &self.token_endpoint_auth_methods {
            Some(list) => list.iter().any(|m| m == method.as_str()),
            None => method == AuthMethod::ClientSecretBasic,
        }
    }
}

impl Record {
    /// A fresh record for `key` at generation 0 (not yet stored).
    pub fn new(key: ClientKey, server: AuthServer) -> Self {
        Record {
            key,
            generation: 0,
            server,
            pre_registered_client_id: None,
            cimd: None,
            dcr: None,
            tokens: None,
            registration_backoff: None,
            dpop_key: None,
        }
    }

    /// Which identity is in use: a recorded pre-registered client first (MCP-7), then CIMD
    /// while the server accepts it, then DCR.
    pub fn identity(&self) -> IdentityKind {
        match (&self.pre_registered_client_id, &self.cimd, &self.dcr) {
            (Some(_), _, _) => IdentityKind::PreRegistered,
            (None, Some(cimd), _) if !cimd.rejected => IdentityKind::Cimd,
            (None, _, Some(_)) => IdentityKind::Dcr,
            _ => IdentityKind::None,
        }
    }

    /// The client id in use, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self.identity() {
            IdentityKind::Cimd => self.cimd.as_ref().map(|c| c.client_id.as_str()),
            IdentityKind::Dcr => self.dcr.as_ref().map(|d| d.client_id.as_str()),
            IdentityKind::PreRegistered => self.pre_registered_client_id.as_deref(),
            IdentityKind::None => None,
        }
    }

    /// Every secret the record holds: client secret, registration access token, access and
    /// refresh token, DPoP private key. For checks that none of them leaks (INV-12).
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut found = Vec::new();
        if let Some(dcr) = &self.dcr {
            found.extend(&dcr.client_secret);
            found.extend(&dcr.registration_access_token);
        }
        if let Some(tokens) = &self.tokens {
            found.push(&tokens.access_token);
            found.extend(&tokens.refresh_token);
        }
        found.extend(self.dpop_key.as_ref().map(DpopKey::secret));
        found
    }

    /// The record as JSON with every secret replaced by the redaction marker, for output.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        redact_members(
            &mut value,
            &[
                "client_secret",
                "registration_access_token",
                "access_token",
                "refresh_token",
                "dpop_key",
            ],
        );
        value
    }
}

fn redact_members(value: &mut Value, names: &[&str]) {
    match value {
        Value::Object(map) => {
            for (name, member) in map.iter_mut() {
                if names.contains(&name.as_str()) && !member.is_null() {
                    *member = Value::String(REDACTED.into());
                } else {
                    redact_members(member, names);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_members(item, names)),
        _ => {}
    }
}
