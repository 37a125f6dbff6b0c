//! What the embedder tells the client: where the server is and how to register.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::assertion::{AssertionAudience, AssertionKey};
use crate::dpop::DpopMode;
use crate::endpoint::{is_loopback, secure_endpoint};
use crate::error::ConfigError;
use crate::jwt_bearer::BearerAssertion;
use crate::key::ClientKey;
use crate::secret::Secret;
use crate::time::Duration;

/// How the client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// A public client: `client_id` in the body, no secret.
    None,
    /// HTTP Basic with the form-encoded id and secret (OAUTH-8).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT the client signs with its private key, sent as `client_assertion` (RFC 7523
    /// §2.2, SEP-1046). Needs [`ClientConfig::private_key`]: with a pre-registered client id,
    /// or, registering dynamically, the key's public half is registered with the client.
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses an RFC 7591 name; other methods (e.g. `client_secret_jwt`) are not supported.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(AuthMethod::None),
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            _ => None,
        }
    }

    /// Whether this method sends a client secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

/// Which grant obtains access tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Grant {
    /// Authorization code with PKCE through a browser and the loopback callback.
    AuthorizationCode,
    /// A machine client with no user.
    ClientCredentials,
    /// The JWT bearer grant (RFC 7523 §2.1) with an assertion the client holds but does
    /// not sign: a workload identity token (MCP SEP-1933) or an ID-JAG from the enterprise
    /// identity provider (MCP SEP-990), as [`ClientConfig::bearer_assertion`] says. No user
    /// and no browser; like client credentials, a new token is asked for with a fresh
    /// assertion when the old one expires.
    JwtBearer,
}

impl Grant {
    /// Whether tokens come only through a user's login (or a refresh of one). Every other
    /// grant is a machine's: it asks the token endpoint whenever it needs a token.
    pub fn needs_user(self) -> bool {
        self == Grant::AuthorizationCode
    }

    /// The OAuth `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::ClientCredentials => "client_credentials",
            Grant::JwtBearer => crate::jwt_bearer::JWT_BEARER_GRANT,
        }
    }
}

/// How a user logs in, for the authorization code grant's [`crate::Operation::Login`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoginFlow {
    /// Authorization code + PKCE through a browser and the loopback callback.
    #[default]
    Browser,
    /// The device authorization grant (RFC 8628): the user opens a URL on any device and
    /// enters a code. Fails when the server offers no `device_authorization_endpoint`.
    Device,
    /// The device authorization grant when the server offers it, else the browser: for a
    /// machine without a display (an SSH session), where a browser can only be used on
    /// another device.
    DeviceIfOffered,
}

/// RFC 7591 / OIDC `application_type` (MCP26-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    /// A desktop, CLI or loopback-redirect client.
    Native,
    /// A remotely hosted client.
    Web,
}

/// The default renewal window: renew a secret that expires within 24 hours.
pub const DEFAULT_RENEW_WITHIN: Duration = Duration::from_hours(24);
/// The default time to wait for the browser's redirect to the loopback callback.
pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(120);
/// The default lifetime of a store lease taken to register, renew or ask for a token. It must
/// outlive the longest request made under it, or a second process could take the lease and
/// repeat the request while the first is still waiting for its answer: the tokio shell's
/// default total timeout (30 s) plus a margin for the write that follows.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(45);
/// The default loopback callback port.
pub const DEFAULT_REDIRECT_PORT: u16 = 8976;

/// Everything the core needs to know about one client. Its `Debug` output shows neither the
/// secrets (they redact themselves) nor the seed, from which every PKCE verifier and `state`
/// is drawn.
///
/// Start from [`ClientConfig::for_issuer`] or [`ClientConfig::for_resource`] and chain the
/// `with_*` methods (or set the public fields); new fields get defaults, so the struct is
/// never built literally outside this crate.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The embedder's name for this client (used as the upstream when no resource is set).
    pub name: String,
    /// The authorization server's issuer, when known up front.
    pub issuer: Option<String>,
    /// The protected resource (e.g. an MCP server URL); discovery starts from it (RFC 9728).
    pub resource: Option<String>,
    /// Scopes to request.
    pub scopes: Vec<String>,
    /// A pre-registered client id (registration priority 1, MCP-7).
    pub client_id: Option<String>,
    /// The pre-registered client's secret.
    pub client_secret: Option<Secret>,
    /// The pre-registered client's private key for `private_key_jwt`: PKCS#8 PEM text of a
    /// P-256 EC key (ES256) or an RSA key of 2048 to 4096 bits (RS256).
    pub private_key: Option<Secret>,
    /// The key id (`kid`) the JWS header of a client assertion names, when the server needs
    /// one to pick among the client's keys.
    pub private_key_id: Option<String>,
    /// What the `aud` claim of a client assertion names.
    pub assertion_audience: AssertionAudience,
    /// Where the authorization server finds the public key of a dynamically registered
    /// `private_key_jwt` client: a JWK Set the embedder publishes at this https URL, sent as
    /// `jwks_uri` (RFC 7591 §2). When unset, the key's public half is registered inline as
    /// `jwks`, and a changed key is registered again through RFC 7592.
    pub jwks_uri: Option<String>,
    /// A Client ID Metadata Document URL (registration priority 2).
    pub cimd_url: Option<String>,
    /// The token endpoint auth method to use (pre-registered) or to request (DCR).
    pub auth_method: Option<AuthMethod>,
    /// Which grant obtains tokens.
    pub grant: Grant,
    /// The redirect URI, `http://127.0.0.1:PORT/callback` for the loopback listener.
    pub redirect_uri: String,
    /// Renew the client secret once it expires within this window.
    pub renew_within: Duration,
    /// An RFC 7591 initial access token, sent only to the registration endpoint (MGMT-22).
    pub initial_access_token: Option<Secret>,
    /// `client_name` for DCR (DCR-8).
    pub client_name: String,
    /// `software_id` for DCR: stable across instances and versions (DCR-9).
    pub software_id: Option<String>,
    /// `software_version` for DCR.
    pub software_version: Option<String>,
    /// A signed software statement (DCR-10), sent as it is.
    pub software_statement: Option<String>,
    /// `application_type` for DCR (MCP26-5).
    pub application_type: ApplicationType,
    /// Entropy for PKCE verifiers, `state` and lease holder ids. Left at zero, the tokio shell
    /// draws it from the operating system (every process needs its own: replicas sharing one
    /// would share a lease holder id); tests and replays fix it so runs are reproducible.
    pub seed: [u8; 32],
    /// How long to wait for the browser's redirect.
    pub callback_timeout: Duration,
    /// How long a store lease lasts unless renewed.
    pub lease_ttl: Duration,
    /// Follow MCP revision 2025-03-26 when a resource publishes no protected resource
    /// metadata: take the resource's origin as the authorization server, read RFC 8414
    /// metadata at its root, and else use `/authorize`, `/token` and `/register` there
    /// (EDGE-27). Off by default; only for resources that are MCP servers.
    pub legacy_discovery: bool,
    /// How [`crate::Operation::Login`] logs a user in. Not part of the client key: the same
    /// stored client logs in either way.
    pub login_flow: LoginFlow,
    /// What [`Grant::JwtBearer`] presents and where the shell reads it: set with that grant
    /// and only with it. A description of a source, never an assertion: assertions are
    /// short-lived and read afresh for every grant request.
    pub bearer_assertion: Option<BearerAssertion>,
    /// When token requests carry a DPoP proof, so that the tokens are bound to the client's
    /// key (RFC 9449). [`DpopMode::Never`] by default; see there why.
    pub dpop: DpopMode,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .field("scopes", &self.scopes)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("private_key", &self.private_key)
            .field("private_key_id", &self.private_key_id)
            .field("assertion_audience", &self.assertion_audience)
            .field("jwks_uri", &self.jwks_uri)
            .field("cimd_url", &self.cimd_url)
            .field("auth_method", &self.auth_method)
            .field("grant", &self.grant)
            .field("redirect_uri", &self.redirect_uri)
            .field("renew_within", &self.renew_within)
            .field("initial_access_token", &self.initial_access_token)
            .field("client_name", &self.client_name)
            .field("software_id", &self.software_id)
            .field("software_version", &self.software_version)
            .field("software_statement", &self.software_statement)
            .field("application_type", &self.application_type)
            .field("seed", &crate::secret::REDACTED)
            .field("callback_timeout", &self.callback_timeout)
            .field("lease_ttl", &self.lease_ttl)
            .field("legacy_discovery", &self.legacy_discovery)
            .field("login_flow", &self.login_flow)
            .field("bearer_assertion", &self.bearer_assertion)
            .field("dpop", &self.dpop)
            .finish()
    }
}

impl ClientConfig {
    /// A configuration for the authorization server `issuer` with every other field defaulted.
    pub fn for_issuer(name: impl Into<String>, issuer: impl Into<String>) -> Self {
        ClientConfig {
            issuer: Some(issuer.into()),
            ..ClientConfig::empty(name.into())
        }
    }

    /// A configuration that discovers its authorization server from a protected resource.
    pub fn for_resource(name: impl Into<String>, resource: impl Into<String>) -> Self {
        ClientConfig {
            resource: Some(resource.into()),
            ..ClientConfig::empty(name.into())
        }
    }

    fn empty(name: String) -> Self {
        ClientConfig {
            client_name: format!("Tenure ({name})"),
            name,
            issuer: None,
            resource: None,
            scopes: Vec::new(),
            client_id: None,
            client_secret: None,
            private_key: None,
            private_key_id: None,
            assertion_audience: AssertionAudience::Issuer,
            jwks_uri: None,
            cimd_url: None,
            auth_method: None,
            grant: Grant::AuthorizationCode,
            redirect_uri: loopback_redirect_uri(DEFAULT_REDIRECT_PORT),
            renew_within: DEFAULT_RENEW_WITHIN,
            initial_access_token: None,
            software_id: None,
            software_version: None,
            software_statement: None,
            application_type: ApplicationType::Native,
            seed: [0; 32],
            callback_timeout: DEFAULT_CALLBACK_TIMEOUT,
            lease_ttl: DEFAULT_LEASE_TTL,
            legacy_discovery: false,
            login_flow: LoginFlow::Browser,
            bearer_assertion: None,
            dpop: DpopMode::Never,
        }
    }

    /// The scopes to ask for.
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The grant: a user's browser login (the default) or client credentials.
    pub fn with_grant(mut self, grant: Grant) -> Self {
        self.grant = grant;
        self
    }

    /// A client registered beforehand: its id, and its secret when it has one.
    pub fn with_client(mut self, client_id: impl Into<String>, secret: Option<Secret>) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret = secret;
        self
    }

    /// A pre-registered client that authenticates with `private_key_jwt`: its id and its
    /// private key (PKCS#8 PEM text), with the key id for the JWS header when the server
    /// needs one.
    pub fn with_private_key_jwt(
        mut self,
        client_id: impl Into<String>,
        private_key_pem: Secret,
        key_id: Option<String>,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret = None;
        self.private_key = Some(private_key_pem);
        self.private_key_id = key_id;
        self.auth_method = Some(AuthMethod::PrivateKeyJwt);
        self
    }

    /// A pre-registered client that obtains tokens with the JWT bearer grant, presenting
    /// `assertion` (RFC 7523 §2.1): a workload identity token or an ID-JAG from an enterprise
    /// identity provider. The client authenticates at the token endpoint as set otherwise
    /// (a secret, a key, or `none` with the client id in the body).
    pub fn with_jwt_bearer(
        mut self,
        client_id: impl Into<String>,
        assertion: BearerAssertion,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.grant = Grant::JwtBearer;
        self.bearer_assertion = Some(assertion);
        self
    }

    /// What the `aud` claim of a client assertion names: the issuer (the default) or, for an
    /// older server, the token endpoint.
    pub fn with_assertion_audience(mut self, audience: AssertionAudience) -> Self {
        self.assertion_audience = audience;
        self
    }

    /// The token endpoint auth method to register with (negotiated with the server's list
    /// when not set).
    pub fn with_auth_method(mut self, method: AuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    /// The URL of this client's Client ID Metadata Document, used where the server supports
    /// them.
    pub fn with_cimd_url(mut self, url: impl Into<String>) -> Self {
        self.cimd_url = Some(url.into());
        self
    }

    /// The loopback port the browser comes back to after a login.
    pub fn with_redirect_port(mut self, port: u16) -> Self {
        self.redirect_uri = loopback_redirect_uri(port);
        self
    }

    /// When token requests carry a DPoP proof (RFC 9449): [`DpopMode::IfOffered`] binds
    /// tokens to the client's key wherever the server supports it.
    pub fn with_dpop(mut self, mode: DpopMode) -> Self {
        self.dpop = mode;
        self
    }

    /// How long before a client secret expires it is renewed.
    pub fn with_renew_within(mut self, window: Duration) -> Self {
        self.renew_within = window;
        self
    }

    /// The `client_name` registered, and the software id and version.
    pub fn with_software(
        mut self,
        client_name: impl Into<String>,
        software_id: impl Into<String>,
        software_version: impl Into<String>,
    ) -> Self {
        self.client_name = client_name.into();
        self.software_id = Some(software_id.into());
        self.software_version = Some(software_version.into());
        self
    }

    /// Checks the configuration before anything is sent; each error names the option to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        match (&self.issuer, &self.resource) {
            (None, None) => return Err(ConfigError::NoServer),
            (Some(issuer), _) => check_issuer(issuer).map_err(ConfigError::Issuer)?,
            (None, Some(_)) => {}
        }
        if let Some(resource) = &self.resource {
            let url = secure_endpoint(resource).map_err(ConfigError::Resource)?;
            if url.fragment().is_some() {
                return Err(ConfigError::Resource(
                    "a resource identifier has no fragment".into(),
                ));
            }
        }
        if let Some(url) = &self.cimd_url {
            check_cimd_url(url).map_err(ConfigError::CimdUrl)?;
        }
        if self.client_secret.is_some() && self.client_id.is_none() {
            return Err(ConfigError::SecretWithoutId);
        }
        if let Some(id) = &self.client_id {
            if id.trim().is_empty() {
                return Err(ConfigError::EmptyClientId);
            }
        }
        match (self.auth_method, &self.private_key) {
            (Some(AuthMethod::PrivateKeyJwt), None) => return Err(ConfigError::PrivateKeyMissing),
            (Some(AuthMethod::PrivateKeyJwt), Some(pem)) => {
                // A CIMD client is public: its document would have to publish the key, and
                // this client would never get to use it.
                if self.client_id.is_none() && self.cimd_url.is_some() {
                    return Err(ConfigError::PrivateKeyWithCimd);
                }
                AssertionKey::from_pkcs8_pem(pem, self.private_key_id.as_deref())
                    .map_err(ConfigError::PrivateKey)?;
            }
            (_, Some(_)) => return Err(ConfigError::PrivateKeyUnused),
            (_, None) => {}
        }
        if let Some(uri) = &self.jwks_uri {
            if self.auth_method != Some(AuthMethod::PrivateKeyJwt) || self.client_id.is_some() {
                return Err(ConfigError::JwksUriUnused);
            }
            secure_endpoint(uri).map_err(ConfigError::JwksUri)?;
        }
        if self.grant == Grant::AuthorizationCode {
            check_redirect_uri(&self.redirect_uri).map_err(ConfigError::RedirectUri)?;
        } else if self.redirect_uri.is_empty() {
            return Err(ConfigError::RedirectUri("the redirect URI is empty".into()));
        }
        if self.grant == Grant::ClientCredentials && self.cimd_url.is_some() {
            return Err(ConfigError::CimdUrl(
                "a CIMD client is public and cannot use client_credentials".into(),
            ));
        }
        self.validate_bearer_assertion()
    }

    /// The jwt-bearer grant's own settings: an assertion source with the grant and only with
    /// it, a pre-registered client (the server must know beforehand which assertions it
    /// trusts for which client), and a usable identity provider.
    fn validate_bearer_assertion(&self) -> Result<(), ConfigError> {
        use crate::jwt_bearer::AssertionSource;
        let check_source = |source: &AssertionSource| match source {
            AssertionSource::File(path) if path.trim().is_empty() => Err(
                ConfigError::BearerAssertion("the assertion file path is empty".into()),
            ),
            AssertionSource::Env(name) if name.trim().is_empty() => Err(
                ConfigError::BearerAssertion("the assertion variable name is empty".into()),
            ),
            AssertionSource::Command(argv) if argv.first().is_none_or(|p| p.trim().is_empty()) => {
                Err(ConfigError::BearerAssertion(
                    "the assertion command names no program".into(),
                ))
            }
            _ => Ok(()),
        };
        match (self.grant, &self.bearer_assertion) {
            (Grant::JwtBearer, None) => Err(ConfigError::BearerAssertion(
                "the grant jwt-bearer needs an assertion: a workload identity token source or an enterprise identity provider".into(),
            )),
            (Grant::JwtBearer, Some(assertion)) => {
                if self.client_id.is_none() {
                    return Err(ConfigError::BearerAssertion(
                        "the grant jwt-bearer needs the setting `client_id`: the authorization server must know the client beforehand".into(),
                    ));
                }
                if self.cimd_url.is_some() {
                    return Err(ConfigError::CimdUrl(
                        "a CIMD client cannot use the jwt-bearer grant; give the setting `client_id`".into(),
                    ));
                }
                match assertion {
                    BearerAssertion::Workload(source) => check_source(source),
                    BearerAssertion::Enterprise(idp) => {
                        let bad = |what: &str, e: String| {
                            ConfigError::BearerAssertion(format!("bad identity provider {what}: {e}"))
                        };
                        match (&idp.token_endpoint, &idp.issuer) {
                            (Some(endpoint), _) => {
                                secure_endpoint(endpoint).map_err(|e| bad("token endpoint", e))?;
                            }
                            (None, Some(issuer)) => {
                                check_issuer(issuer).map_err(|e| bad("issuer", e))?
                            }
                            (None, None) => {
                                return Err(ConfigError::BearerAssertion(
                                    "the identity provider needs its token endpoint or its issuer".into(),
                                ))
                            }
                        }
                        if idp.client_id.trim().is_empty() {
                            return Err(ConfigError::BearerAssertion(
                                "the client id at the identity provider is empty".into(),
                            ));
                        }
                        check_source(&idp.id_token)
                    }
                }
            }
            (_, Some(_)) => Err(ConfigError::BearerAssertion(
                "an assertion source is only used with the grant jwt-bearer; choose that grant or drop the source".into(),
            )),
            (_, None) => Ok(()),
        }
    }

    /// The upstream component of the client key.
    pub fn upstream(&self) -> &str {
        self.resource.as_deref().unwrap_or(&self.name)
    }

    /// The client key for this configuration at `issuer`.
    pub fn key_for(&self, issuer: &str) -> ClientKey {
        ClientKey::new(issuer, self.upstream(), &self.redirect_uri, &self.scopes)
    }
}

/// `http://127.0.0.1:PORT/callback`.
pub fn loopback_redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/callback")
}

/// An issuer is an https URL (or loopback http) with no query and no fragment (DISC-7).
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    let url = secure_endpoint(issuer)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "issuer `{issuer}` has a query or fragment; an issuer has neither"
        ));
    }
    Ok(())
}

/// A CIMD client id is an https URL with a path, no dot segments, no fragment and no userinfo
/// (CIMD-1).
pub fn check_cimd_url(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
        return Err("a CIMD client id must use https".into());
    }
    if url.path().is_empty() || url.path() == "/" {
        return Err("a CIMD client id must have a path".into());
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("a CIMD client id has no fragment and no userinfo".into());
    }
    // `Url` resolves dot segments, so a difference from the text means it had some.
    let raw_path = text
        .split("://")
        .nth(1)
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    let raw_path = raw_path.split(['?', '#']).next().unwrap_or("");
    if raw_path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("a CIMD client id has no `.` or `..` path segments".into());
    }
    Ok(())
}

/// A redirect URI is https, or http on a loopback host (DCR-4, BCP-7).
pub fn check_redirect_uri(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if url.port() == Some(0) {
        return Err(format!(
            "redirect URI `{text}` has port 0, which no listener can be reached on; choose a port from 1 to 65535"
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(format!(
            "redirect URI `{text}` must be https or http on 127.0.0.1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_an_issuer_or_a_resource() {
        let mut config = ClientConfig::for_issuer("x", "https://as.example.com");
        assert!(config.validate().is_ok());
        config.issuer = None;
        assert_eq!(config.validate(), Err(ConfigError::NoServer));
    }

    #[test]
    fn issuer_rules_disc_7() {
        assert!(check_issuer("https://as.example.com/tenant1").is_ok());
        assert!(check_issuer("https://as.example.com/?x=1").is_err());
        assert!(check_issuer("https://as.example.com/#f").is_err());
        assert!(check_issuer("http://as.example.com").is_err());
        assert!(check_issuer("http://127.0.0.1:3000").is_ok());
    }

    #[test]
    fn cimd_url_rules_cimd_1() {
        assert!(check_cimd_url("https://app.example.com/client.json").is_ok());
        assert!(check_cimd_url("https://app.example.com").is_err());
        assert!(check_cimd_url("https://app.example.com/").is_err());
        assert!(check_cimd_url("https://app.example.com/a/../client.json").is_err());
        assert!(check_cimd_url("https://app.example.com/./client.json").is_err());
        assert!(check_cimd_url("https://u:p@app.example.com/client.json").is_err());
        assert!(check_cimd_url("https://app.example.com/c.json#x").is_err());
        assert!(check_cimd_url("http://app.example.com/c.json").is_err());
    }

    #[test]
    fn redirect_uri_rules_dcr_4() {
        assert!(check_redirect_uri("http://127.0.0.1:8976/callback").is_ok());
        assert!(check_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://app.example.com/cb").is_err());
    }

    #[test]
    fn secret_without_id_is_refused() {
        let mut config = ClientConfig::for_issuer("x", "https://as.example.com");
        config.client_secret = Some(Secret::new("s"));
        assert_eq!(config.validate(), Err(ConfigError::SecretWithoutId));
    }

    #[test]
    fn keys_differ_by_upstream_for_one_issuer() {
        let a = ClientConfig::for_resource("a", "https://one.example.com/mcp");
        let b = ClientConfig::for_resource("b", "https://two.example.com/mcp");
        assert_ne!(
            a.key_for("https://as.example.com"),
            b.key_for("https://as.example.com")
        );
    }
}
