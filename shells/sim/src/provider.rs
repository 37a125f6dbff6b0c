//! A simulated OAuth authorization server: deterministic, sans-IO, with fault injection.
//!
//! Tests and `tenure demo` need an authorization server (AS) that behaves like a real one but
//! lives inside the process, answers at once and does the same thing every time. The picture:
//!
//! ```text
//!  tenure-core ──poll_command()──▶ driver ──handle(now, &request)──▶ SimulatedProvider
//!       ▲                                                                   │
//!       └──── handle(now, response | transport error) ◀── driver ◀── Reply ─┘
//! ```
//!
//! A driver takes each HTTP request the core asks for, hands it to
//! [`SimulatedProvider::handle`] with the virtual time, and feeds the [`Reply`] back to the
//! core. For the browser step the driver "follows" the authorization URL: it sends that GET
//! here too and hands the `Location` of the 302 to the core as the loopback callback.
//!
//! The provider never reads a clock, never touches the network and never asks the operating
//! system for randomness. Time is a parameter; every random value (client ids, secrets,
//! tokens, codes, and the coin flips of random faults) comes from [`FaultConfig::seed`]. The
//! same configuration and the same requests at the same times give the same replies, byte for
//! byte, so a failing simulation can be replayed exactly.
//!
//! # What it imitates
//!
//! The behaviour follows node `oidc-provider` v9, the real server the project also tests
//! against, including the details clients get wrong:
//!
//! - RFC 7591 registration answers `201` with *all* registered metadata, defaults filled in and
//!   unknown members kept, plus an extension member of its own (`sim_extension`) that an
//!   RFC 7592 update must send back (DCR-16, DCR-17).
//! - RFC 7592 `PUT` is a full replacement; the four server-managed members are refused with
//!   400 `invalid_request` (MGMT-7, MGMT-8); the registration access token rotates on every
//!   `PUT` and the old one dies at once (EDGE-13). Unlike oidc-provider, a secret can be given
//!   a lifetime ([`ProviderConfig::secret_lifetime`]); each `PUT` then issues a new secret and
//!   the old one dies at once, which is what the client's renewal exists for.
//! - An expired secret is refused with **400** `invalid_client`, a wrong one with **401**.
//! - PKCE is S256 only; a failed verifier does not burn the code; a reused code is refused
//!   and revokes what it granted (OAUTH-5).
//! - Refresh tokens rotate; presenting a rotated-out one revokes the whole grant (RT-6).
//! - Authorization responses carry `iss` (RFC 9207).
//!
//! # What it watches
//!
//! [`ProviderStats`] counts what the server did, and three counters record mistakes the
//! client must never make: an expired secret sent to the token endpoint (INV-5), a rotated-out
//! refresh token (INV-10) and a credential sent where it does not belong (MGMT-22). Those
//! three look at every request that reaches the provider, before any fault is injected: a
//! secret sent to the wrong place has leaked whether or not an answer came back.
//!
//! # Faults
//!
//! Each request to a known [`Endpoint`] can be made to fail: scripted with
//! [`SimulatedProvider::fail_next`] and [`SimulatedProvider::fail_always`], or at random with
//! the rates of [`FaultConfig`]. A [`Fault::LostResponse`] is the nasty one: the server applied
//! the request (a secret rotated, a refresh token was used up) but the client never hears of
//! it (EDGE-13, EDGE-36).

mod authorization;
mod discovery;
mod registration;
mod rng;
mod token;
mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use http::Method;
use serde_json::{json, Map, Value};
use tenure_core::time::{Duration, Timestamp};
use url::Url;

use self::rng::SplitMix64;
use self::wire::{Credentials, Params, Refusal, Response};

/// The issuer of the default simulated server.
pub const DEFAULT_ISSUER: &str = "https://as.sim.test";

/// The extension member every registration answer carries. The client does not know it, so
/// it tells whether an RFC 7592 update echoed unknown members back (DCR-17, MGMT-7).
pub const EXTENSION_MEMBER: (&str, &str) = ("sim_extension", "kept");

/// How long an authorization code can be redeemed: 60 s, oidc-provider's default.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// The members only the server may set. A registration request's copies are ignored; an
/// update that carries any of them is refused (MGMT-8).
const SERVER_MANAGED: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];
const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];
/// Why an `https://` client id is refused when [`ProviderConfig::cimd_accepted`] is off.
const CIMD_REFUSED: &str = "client id metadata documents are not accepted";
const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// Separates the fault stream from the token stream, so turning random faults on does not
/// change which secrets and tokens are issued.
const TOKEN_STREAM: u64 = 0x746F_6B65_6E73_2121;

/// How the simulated authorization server behaves.
///
/// `Default` gives an oidc-provider-like server at [`DEFAULT_ISSUER`] with open registration,
/// RFC 7592 management, refresh-token and registration-access-token rotation, `iss` in
/// authorization responses, secrets that never expire and no faults. Tests change the few
/// fields they care about with struct update syntax.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    /// The issuer identifier; every endpoint URL is built from it (`{issuer}/token` …). An
    /// issuer with a path is served at the RFC 8414 inserted and the OIDC appended
    /// metadata URLs (DISC-1, OIDC-1).
    pub issuer: String,
    /// When set, RFC 9728 protected resource metadata for this resource (e.g.
    /// `https://mcp.sim.test/mcp`) is served at its path-inserted well-known URL and at the
    /// root one, naming the issuer as its authorization server (PRM-2, MCP-3). Both carry
    /// this `resource`, as many MCP servers do; a strict RFC 9728 client accepts only the
    /// path form (PRM-5). A `resource` parameter in authorization or token requests must
    /// then equal it (RES-5).
    pub resource: Option<String>,
    /// `scopes_supported` in the protected resource metadata (MCP-10).
    pub resource_scopes: Option<Vec<String>>,
    /// How long an issued client secret lives. `None` answers `client_secret_expires_at: 0`
    /// (never, DCR-14) and keeps the secret across updates, as oidc-provider does; `Some`
    /// makes every registration and update issue a secret that expires, so renewal matters.
    pub secret_lifetime: Option<Duration>,
    /// `expires_in` of every access token.
    pub access_token_lifetime: Duration,
    /// Whether each refresh issues a new refresh token and kills the old one (RT-3, RT-6).
    /// When off, the same refresh token comes back, as oidc-provider does.
    pub rotate_refresh_tokens: bool,
    /// Whether each RFC 7592 `PUT` issues a new registration access token and kills the old
    /// one at once (oidc-provider `rotateRegistrationAccessToken`, MGMT-20, EDGE-13).
    pub rotate_registration_access_token: bool,
    /// Whether `registration_endpoint` is advertised and served (DISC-8).
    pub registration_enabled: bool,
    /// Whether RFC 7592 read/update/delete is served. When off, registration answers carry
    /// neither `registration_access_token` nor `registration_client_uri` (MGMT-21, EDGE-7).
    pub management_enabled: bool,
    /// Whether the metadata advertises `client_id_metadata_document_supported` (CIMD-9).
    pub cimd_supported: bool,
    /// What happens when an `https://` client id (a Client ID Metadata Document URL) is used:
    /// accepted as a public client, or refused with `invalid_client` (design §1 fallback).
    /// No document is fetched: the simulation has no network.
    pub cimd_accepted: bool,
    /// Whether authorization responses carry `iss` and the metadata says so (RFC 9207,
    /// ISS-1, ISS-2).
    pub iss_parameter: bool,
    /// When set, registration requires `Authorization: Bearer <token>` (DCR-11, DCR-20).
    pub initial_access_token: Option<String>,
    /// Scopes the server knows; requests and registrations for others are refused.
    pub scopes_supported: Vec<String>,
    /// Random failures.
    pub faults: FaultConfig,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            issuer: DEFAULT_ISSUER.into(),
            resource: None,
            resource_scopes: None,
            secret_lifetime: None,
            access_token_lifetime: Duration::from_hours(1),
            rotate_refresh_tokens: true,
            rotate_registration_access_token: true,
            registration_enabled: true,
            management_enabled: true,
            cimd_supported: false,
            cimd_accepted: true,
            iss_parameter: true,
            initial_access_token: None,
            scopes_supported: ["openid", "read", "write", "offline_access"]
                .map(String::from)
                .to_vec(),
            faults: FaultConfig::default(),
        }
    }
}

/// Random failures, drawn from a seeded stream so that a run can be repeated exactly.
///
/// One number in `[0, 1)` is drawn for every request to a known endpoint and compared with the
/// rates in order: below `server_error_rate` is a 503, below the sum with `timeout_rate` a
/// timeout, below the sum with `lost_response_rate` a lost answer. Rates are clamped to
/// `[0, 1]`; all are 0 by default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// The seed of every random choice the provider makes (faults, ids, secrets, tokens).
    pub seed: u64,
    /// Share of requests answered `503` with an HTML body, as a proxy would (EDGE-31).
    pub server_error_rate: f64,
    /// Share of requests that never get an answer and change nothing ([`Reply::Timeout`]).
    pub timeout_rate: f64,
    /// Share of requests applied whose answer is lost ([`Reply::Lost`]).
    pub lost_response_rate: f64,
}

/// One way a request can fail.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// `503 Service Unavailable` with an HTML body; nothing is applied (EDGE-31).
    ServerError,
    /// No answer and no change: [`Reply::Timeout`].
    Timeout,
    /// The request is applied, then the answer is lost: [`Reply::Lost`].
    LostResponse,
    /// Exactly this status and JSON body, without applying anything: for answers the
    /// simulation does not produce on its own (403, 404 from management, odd bodies …).
    Status(u16, Value),
}

/// The places a fault can be aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// The RFC 8414 / OpenID discovery documents.
    Metadata,
    /// The RFC 9728 protected resource metadata.
    ProtectedResource,
    /// `POST {issuer}/register` (RFC 7591).
    Registration,
    /// `{issuer}/register/{client_id}` (RFC 7592).
    Management,
    /// `GET {issuer}/authorize`, the browser step.
    Authorization,
    /// `POST {issuer}/token`.
    Token,
}

/// What became of one request.
#[derive(Debug)]
pub enum Reply {
    /// The server's answer.
    Response(http::Response<Vec<u8>>),
    /// The request never got an answer and changed nothing.
    Timeout,
    /// The server applied the request but the answer was lost on the way back.
    Lost,
}

impl Reply {
    /// A JSON answer, built the way the simulated provider builds its own.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::Response(wire::json(status, body))
    }

    /// A `302 Found` to `location`, as an authorization endpoint sends the browser back.
    pub fn redirect(location: &str) -> Reply {
        Reply::Response(wire::redirect(location))
    }

    /// What an authorization endpoint that approves at once answers the browser's
    /// `authorization_url`: a redirect to its `redirect_uri` with `code` and its `state`.
    /// For scripted servers; a request without those parameters panics, as a test bug.
    pub fn approve(authorization_url: &str, code: &str) -> Reply {
        let url = url::Url::parse(authorization_url).expect("an authorization URL");
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("the authorization request has no {name}"))
        };
        let back = format!(
            "{}?code={code}&state={}",
            param("redirect_uri"),
            param("state")
        );
        Reply::redirect(&back)
    }

    /// The answer, when there is one.
    pub fn response(&self) -> Option<&http::Response<Vec<u8>>> {
        match self {
            Reply::Response(response) => Some(response),
            Reply::Timeout | Reply::Lost => None,
        }
    }

    /// The answer, when there is one, by value.
    pub fn into_response(self) -> Option<http::Response<Vec<u8>>> {
        match self {
            Reply::Response(response) => Some(response),
            Reply::Timeout | Reply::Lost => None,
        }
    }

    /// The answer's status code, when there is an answer.
    pub fn status(&self) -> Option<u16> {
        self.response().map(|r| r.status().as_u16())
    }
}

/// What the provider did, and which client mistakes it saw.
///
/// The operation counters count requests the server *applied* successfully (a lost answer
/// still counts: the change happened). The last three count every offending request that
/// arrived, faults or not; the client core must keep them at 0.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct ProviderStats {
    /// Authorization server metadata documents served.
    pub metadata_fetches: u32,
    /// Protected resource metadata documents served.
    pub prm_fetches: u32,
    /// Successful RFC 7591 registrations.
    pub registrations: u32,
    /// Successful RFC 7592 `PUT`s.
    pub renewals: u32,
    /// Successful RFC 7592 `GET`s.
    pub reads: u32,
    /// Successful RFC 7592 `DELETE`s.
    pub deletes: u32,
    /// Authorization codes issued.
    pub authorizations: u32,
    /// Authorization codes redeemed at the token endpoint.
    pub code_exchanges: u32,
    /// Successful refresh-token grants.
    pub refreshes: u32,
    /// Successful client-credentials grants.
    pub client_credentials: u32,
    /// Token requests that presented an expired client secret (the client core must keep this
    /// 0: invariant INV-5).
    pub expired_secret_presented: u32,
    /// Refresh tokens presented after they were rotated out (must stay 0: INV-10).
    pub stale_refresh_presented: u32,
    /// Requests that sent a secret-bearing credential somewhere it does not belong (RAT
    /// anywhere but the registration client URI, client secret anywhere but /token, initial
    /// access token anywhere but /register) (MGMT-22).
    pub misplaced_credentials: u32,
}

/// The simulated authorization server. See the module documentation for the picture.
pub struct SimulatedProvider {
    config: ProviderConfig,
    layout: Option<Layout>,
    stats: ProviderStats,
    fault_rng: SplitMix64,
    token_rng: SplitMix64,
    scripted: BTreeMap<Endpoint, VecDeque<Fault>>,
    always: BTreeMap<Endpoint, Fault>,
    clients: BTreeMap<String, Client>,
    codes: BTreeMap<String, PendingCode>,
    grants: BTreeMap<u64, Grant>,
    next_grant: u64,
    /// Every refresh token ever issued, current or rotated out, and its grant.
    refresh_tokens: BTreeMap<String, u64>,
    access_tokens: BTreeMap<String, AccessToken>,
    /// Every secret-bearing credential ever issued, kept after rotation and deletion, so a
    /// stale or misplaced one is still recognised.
    ledger: BTreeMap<String, Issued>,
}

/// Something that answers the client's HTTP requests in virtual time: the simulated provider,
/// or a recorded trace played back ([`crate::replay`]).
pub trait Server {
    /// Answers one request at virtual time `now`.
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply;
}

impl Server for SimulatedProvider {
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        SimulatedProvider::handle(self, now, request)
    }
}

impl fmt::Debug for SimulatedProvider {
    /// Names the server and counts; issued credentials stay out of the output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedProvider")
            .field("issuer", &self.config.issuer)
            .field("clients", &self.clients.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SimulatedProvider {
    /// A server with no clients. An issuer that is not an absolute URL gives a server that
    /// answers 404 to everything, rather than a panic.
    pub fn new(config: ProviderConfig) -> Self {
        let seed = config.faults.seed;
        SimulatedProvider {
            layout: Layout::new(&config),
            config,
            stats: ProviderStats::default(),
            fault_rng: SplitMix64::new(seed),
            token_rng: SplitMix64::new(seed ^ TOKEN_STREAM),
            scripted: BTreeMap::new(),
            always: BTreeMap::new(),
            clients: BTreeMap::new(),
            codes: BTreeMap::new(),
            grants: BTreeMap::new(),
            next_grant: 0,
            refresh_tokens: BTreeMap::new(),
            access_tokens: BTreeMap::new(),
            ledger: BTreeMap::new(),
        }
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Answers one request at virtual time `now`.
    ///
    /// The request is matched by its full URL (scheme, host, port and path), so a client that
    /// talks to the wrong host gets a 404 exactly as it would on the network. Then, in order:
    /// the misuse counters look at it, a fault may strike, and the endpoint applies it.
    pub fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let route = match (&self.layout, wire::request_url(request)) {
            (Some(layout), Some(url)) => layout.route(&self.config, &url),
            _ => Route::Unknown,
        };
        self.witness(now, &route, request);
        let Some(endpoint) = route.endpoint() else {
            return Reply::Response(wire::page(404, "Not Found"));
        };
        match self.pick_fault(endpoint) {
            None => Reply::Response(self.apply(now, &route, request)),
            Some(Fault::LostResponse) => {
                self.apply(now, &route, request);
                Reply::Lost
            }
            Some(Fault::Timeout) => Reply::Timeout,
            Some(Fault::ServerError) => Reply::Response(wire::page(
                503,
                "The service is temporarily unavailable. Please try again later.",
            )),
            Some(Fault::Status(status, body)) => Reply::Response(wire::json(status, &body)),
        }
    }

    /// Makes the next request to `endpoint` fail with `fault` (a FIFO queue per endpoint;
    /// scripted faults win over random ones).
    pub fn fail_next(&mut self, endpoint: Endpoint, fault: Fault) {
        self.scripted.entry(endpoint).or_default().push_back(fault);
    }

    /// Makes every later request to `endpoint` fail with `fault` until `heal(endpoint)`.
    /// Faults queued with [`fail_next`](Self::fail_next) still come first.
    pub fn fail_always(&mut self, endpoint: Endpoint, fault: Fault) {
        self.always.insert(endpoint, fault);
    }

    /// Makes `endpoint` healthy again: the permanent fault and any queued ones are dropped.
    /// Random faults from [`FaultConfig`] still apply.
    pub fn heal(&mut self, endpoint: Endpoint) {
        self.always.remove(&endpoint);
        self.scripted.remove(&endpoint);
    }

    /// What the server did so far, and the client mistakes it saw.
    pub fn stats(&self) -> &ProviderStats {
        &self.stats
    }

    /// Whether `client_id`'s current secret is `secret` (for tests: the old secret is refused
    /// after renewal). Expiry is not considered.
    pub fn secret_is_current(&self, client_id: &str, secret: &str) -> bool {
        self.clients
            .get(client_id)
            .and_then(|client| client.secret.as_ref())
            .is_some_and(|current| current.value == secret)
    }

    /// How many clients are registered now (deleted ones are gone; a registration whose
    /// answer was lost still counts).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Whether `token` is an access token this server issued that is still good at `now`: not
    /// expired, its client not deleted, its grant not revoked (deletion and revocation drop
    /// the tokens they kill). A simulated resource server can use it to decide between 200
    /// and 401 (OAUTH-14).
    pub fn access_token_is_active(&self, now: Timestamp, token: &str) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|access| now < access.expires_at)
    }

    /// Registers a client out of band, as an administrator does before the client first runs
    /// (registration priority 1, MCP-7). `metadata` is validated as a registration request
    /// would be; the answer is the client information a registration would return (with
    /// `client_id`, and `client_secret` unless the method is `none`). Not counted in
    /// [`ProviderStats::registrations`].
    pub fn preregister(
        &mut self,
        now: Timestamp,
        metadata: Map<String, Value>,
    ) -> Result<Value, String> {
        let client_id = self
            .create_client(now, metadata)
            .map_err(|refusal| refusal.message())?;
        Ok(self.client_information(&client_id))
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

/// Where a request goes, decided by its full URL.
enum Route {
    Metadata,
    ProtectedResource,
    Registration,
    /// The registration client URI of this client id.
    Management(String),
    Authorization(Params),
    Token,
    Unknown,
}

impl Route {
    fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Route::Metadata => Some(Endpoint::Metadata),
            Route::ProtectedResource => Some(Endpoint::ProtectedResource),
            Route::Registration => Some(Endpoint::Registration),
            Route::Management(_) => Some(Endpoint::Management),
            Route::Authorization(_) => Some(Endpoint::Authorization),
            Route::Token => Some(Endpoint::Token),
            Route::Unknown => None,
        }
    }
}

/// The server's URLs, worked out once from the configuration.
struct Layout {
    /// The issuer's origin (`https://as.sim.test`), as the URL parser normalizes it.
    origin: String,
    /// The issuer's path without a terminating `/` (`""` or `/tenant1`).
    path: String,
    /// The resource's origin and path (without a terminating `/`), when PRM is served.
    resource: Option<(String, String)>,
}

impl Layout {
    fn new(config: &ProviderConfig) -> Option<Self> {
        let issuer = Url::parse(&config.issuer).ok()?;
        issuer.host()?;
        let resource = config
            .resource
            .as_deref()
            .and_then(|text| Url::parse(text).ok())
            .filter(|url| url.host().is_some())
            .map(|url| (url.origin().ascii_serialization(), trim_slash(url.path())));
        Some(Layout {
            origin: issuer.origin().ascii_serialization(),
            path: trim_slash(issuer.path()),
            resource,
        })
    }

    fn route(&self, config: &ProviderConfig, url: &Url) -> Route {
        let origin = url.origin().ascii_serialization();
        let path = url.path();
        if let Some((resource_origin, resource_path)) = &self.resource {
            // Path-inserted form, then the root form (PRM-2, MCP-3, checklist §15 B).
            let is_prm = path
                .strip_prefix(PRM_WELL_KNOWN)
                .is_some_and(|rest| rest.is_empty() || rest == resource_path);
            if origin == *resource_origin && is_prm {
                return Route::ProtectedResource;
            }
        }
        if origin != self.origin {
            return Route::Unknown;
        }
        let base = self.path.as_str();
        // RFC 8414 inserted (both suffixes, DISC-1, OIDC-8) and OIDC appended (OIDC-1).
        let metadata = [
            format!("/.well-known/oauth-authorization-server{base}"),
            format!("/.well-known/openid-configuration{base}"),
            format!("{base}/.well-known/openid-configuration"),
        ];
        if metadata.iter().any(|candidate| candidate == path) {
            return Route::Metadata;
        }
        match path.strip_prefix(base) {
            Some("/authorize") => Route::Authorization(Params::from_query(url)),
            Some("/token") => Route::Token,
            Some("/register") if config.registration_enabled => Route::Registration,
            Some(rest) if config.management_enabled => match rest.strip_prefix("/register/") {
                Some(id) if !id.is_empty() && !id.contains('/') => Route::Management(id.into()),
                _ => Route::Unknown,
            },
            _ => Route::Unknown,
        }
    }
}

/// A URL path without one terminating `/`, as RFC 8414 §3.1 builds well-known URLs.
fn trim_slash(path: &str) -> String {
    path.strip_suffix('/').unwrap_or(path).to_owned()
}

/// Answers 405 unless the method is one of `allowed`.
fn allow(method: &Method, allowed: &[Method], header: &'static str) -> Result<(), Refusal> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(Refusal::MethodNotAllowed(header))
    }
}

/// Adds one to a statistics counter; saturating, because a counter must never panic.
fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

// ---------------------------------------------------------------------------------------------
// Server state
// ---------------------------------------------------------------------------------------------

/// A registered client.
struct Client {
    /// The registered metadata without the server-managed members, defaults filled in.
    metadata: Map<String, Value>,
    issued_at: i64,
    secret: Option<IssuedSecret>,
    registration_access_token: Option<String>,
}

impl Client {
    /// The registered token endpoint auth method.
    fn auth_method(&self) -> &str {
        auth_method_of(&self.metadata)
    }

    fn strings(&self, name: &str) -> Option<Vec<String>> {
        string_list(&self.metadata, name).ok().flatten()
    }

    fn is_native(&self) -> bool {
        self.metadata
            .get("application_type")
            .and_then(Value::as_str)
            == Some("native")
    }
}

#[derive(Clone)]
struct IssuedSecret {
    value: String,
    /// Epoch seconds; 0 means never (DCR-14).
    expires_at: i64,
}

/// Whether a secret with this `client_secret_expires_at` is expired at `now`.
fn secret_expired(expires_at: i64, now: Timestamp) -> bool {
    expires_at != 0 && now.unix_seconds() >= expires_at
}

/// What an issued credential is, for recognising it later.
enum Issued {
    ClientSecret { expires_at: i64 },
    RegistrationAccessToken { client_id: String },
}

/// Who is asking, as far as grants are concerned: a registered client or an accepted CIMD
/// client id.
struct Party {
    client_id: String,
    grant_types: Vec<String>,
    /// The registered `scope`, which requests must stay within; `None` means any supported.
    scope: Option<Vec<String>>,
}

/// An authorization code waiting to be redeemed.
#[derive(Clone)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: Vec<String>,
    resources: Vec<String>,
    expires_at: Timestamp,
    /// The grant it was exchanged for; a second exchange revokes it (OAUTH-5).
    redeemed: Option<u64>,
}

/// What one authorization (or its refreshes) granted.
struct Grant {
    client_id: String,
    scope: Vec<String>,
    resources: Vec<String>,
    /// The one refresh token that is good now.
    refresh_token: String,
    revoked: bool,
}

struct AccessToken {
    client_id: String,
    grant: Option<u64>,
    expires_at: Timestamp,
}

/// The `token_endpoint_auth_method` of client metadata; absent means `client_secret_basic`
/// (DCR-5).
fn auth_method_of(metadata: &Map<String, Value>) -> &str {
    metadata
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("client_secret_basic")
}

/// A string array member: `Ok(None)` when absent, `Err` when not an array of strings.
fn string_list(map: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, ()> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or(()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(()),
    }
}

/// A space-separated scope string as a list, duplicates dropped, order kept.
fn scope_list(text: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in text.split_whitespace() {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

/// Whether a client id is a Client ID Metadata Document URL. Ids this server makes never
/// start with `https://` (CIMD-15).
fn is_cimd(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

impl SimulatedProvider {
    fn issuer_base(&self) -> &str {
        let issuer = self.config.issuer.as_str();
        issuer.strip_suffix('/').unwrap_or(issuer)
    }

    fn party(&self, client_id: &str) -> Option<Party> {
        if is_cimd(client_id) {
            // The document is not fetched; an accepted CIMD client is a public client that
            // may use the code flow and refresh (CIMD-6).
            return Some(Party {
                client_id: client_id.to_owned(),
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scope: None,
            });
        }
        let client = self.clients.get(client_id)?;
        Some(Party {
            client_id: client_id.to_owned(),
            grant_types: client.strings("grant_types").unwrap_or_default(),
            scope: client
                .metadata
                .get("scope")
                .and_then(Value::as_str)
                .map(scope_list),
        })
    }

    fn issue_secret(&mut self, now: Timestamp) -> IssuedSecret {
        let value = self.token_rng.token("cs_");
        let expires_at = match self.config.secret_lifetime {
            // Never 0, which would mean "never expires".
            Some(lifetime) => (now + lifetime).unix_seconds().max(1),
            None => 0,
        };
        self.ledger
            .insert(value.clone(), Issued::ClientSecret { expires_at });
        IssuedSecret { value, expires_at }
    }

    fn issue_registration_access_token(&mut self, client_id: &str) -> String {
        let value = self.token_rng.token("rat_");
        self.ledger.insert(
            value.clone(),
            Issued::RegistrationAccessToken {
                client_id: client_id.to_owned(),
            },
        );
        value
    }

    /// The client information response (RFC 7591 §3.2.1, RFC 7592 §3): registered metadata
    /// plus the server-managed members.
    fn client_information(&self, client_id: &str) -> Value {
        let Some(client) = self.clients.get(client_id) else {
            return Value::Object(Map::new());
        };
        let mut body = client.metadata.clone();
        body.insert("client_id".into(), json!(client_id));
        body.insert("client_id_issued_at".into(), json!(client.issued_at));
        if let Some(secret) = &client.secret {
            body.insert("client_secret".into(), json!(secret.value));
            body.insert("client_secret_expires_at".into(), json!(secret.expires_at));
        }
        if let Some(token) = &client.registration_access_token {
            body.insert("registration_access_token".into(), json!(token));
            body.insert(
                "registration_client_uri".into(),
                json!(format!("{}/register/{client_id}", self.issuer_base())),
            );
        }
        Value::Object(body)
    }

    fn delete_client(&mut self, client_id: &str) {
        self.clients.remove(client_id);
        self.codes.retain(|_, code| code.client_id != client_id);
        self.grants.retain(|_, grant| grant.client_id != client_id);
        let grants = &self.grants;
        self.refresh_tokens.retain(|_, id| grants.contains_key(id));
        self.access_tokens
            .retain(|_, token| token.client_id != client_id);
    }

    /// Scopes must be known to the server and, when the client registered a `scope`, within
    /// it.
    fn check_scope(
        &self,
        requested: &[String],
        registered: Option<&[String]>,
    ) -> Result<(), String> {
        for scope in requested {
            if !self.config.scopes_supported.contains(scope) {
                return Err(format!("scope `{scope}` is not supported"));
            }
            if registered.is_some_and(|allowed| !allowed.contains(scope)) {
                return Err(format!("scope `{scope}` is not registered for this client"));
            }
        }
        Ok(())
    }

    /// `resource` values must be the configured resource, or any absolute URI without a
    /// fragment when none is configured (RES-1, RES-5).
    fn check_resources(&self, resources: &[&str]) -> Result<(), String> {
        for resource in resources {
            let ok = match &self.config.resource {
                Some(expected) => resource == expected,
                None => wire::resource_syntax_ok(resource),
            };
            if !ok {
                return Err(format!("resource `{resource}` is not served here"));
            }
        }
        Ok(())
    }

    /// Revokes a grant and every access token it produced (RT-6, OAUTH-5).
    fn revoke_grant(&mut self, id: u64) {
        if let Some(grant) = self.grants.get_mut(&id) {
            grant.revoked = true;
        }
        self.access_tokens
            .retain(|_, token| token.grant != Some(id));
    }
}

// ---------------------------------------------------------------------------------------------
// Watching the client, and faults
// ---------------------------------------------------------------------------------------------

impl SimulatedProvider {
    /// Counts the client mistakes a request shows (INV-5, INV-10, MGMT-22). Runs for every
    /// request, before faults, and changes nothing but counters.
    fn witness(&mut self, now: Timestamp, route: &Route, request: &http::Request<Vec<u8>>) {
        if self.misplaced(route, request) {
            bump(&mut self.stats.misplaced_credentials);
        }
        if !matches!(route, Route::Token) {
            return;
        }
        let Ok(params) = Params::from_form(request.body()) else {
            return;
        };
        let presented = match wire::credentials(request) {
            Credentials::Basic { secret, .. } => Some(secret),
            _ => params
                .one("client_secret")
                .ok()
                .flatten()
                .map(str::to_owned),
        };
        if let Some(Issued::ClientSecret { expires_at }) =
            presented.and_then(|secret| self.ledger.get(&secret))
        {
            if secret_expired(*expires_at, now) {
                bump(&mut self.stats.expired_secret_presented);
            }
        }
        if params.one("grant_type") == Ok(Some("refresh_token")) {
            let token = params.one("refresh_token").ok().flatten();
            if token.is_some_and(|token| self.rotated_out(token)) {
                bump(&mut self.stats.stale_refresh_presented);
            }
        }
    }

    /// Whether the request carries a credential this server issued (or the configured initial
    /// access token) to a place it does not belong (MGMT-22, MGMT-19).
    fn misplaced(&self, route: &Route, request: &http::Request<Vec<u8>>) -> bool {
        let haystack = wire::haystack(request);
        let initial_misplaced = self
            .config
            .initial_access_token
            .as_deref()
            .filter(|token| !token.is_empty())
            .is_some_and(|token| {
                // A token made of word characters must appear as a whole word, so that a
                // token `secret` is not found inside the parameter name `client_secret`.
                let present = if token.chars().all(wire::is_word_char) {
                    wire::words(&haystack).any(|word| word == token)
                } else {
                    haystack.contains(token)
                };
                present && !matches!(route, Route::Registration)
            });
        let issued_misplaced = wire::words(&haystack).any(|word| match self.ledger.get(word) {
            Some(Issued::ClientSecret { .. }) => !matches!(route, Route::Token),
            Some(Issued::RegistrationAccessToken { client_id }) => {
                !matches!(route, Route::Management(id) if id == client_id)
            }
            None => false,
        });
        initial_misplaced || issued_misplaced
    }

    /// Whether a refresh token was issued here and has since been replaced by rotation.
    fn rotated_out(&self, token: &str) -> bool {
        self.refresh_tokens
            .get(token)
            .and_then(|id| self.grants.get(id))
            .is_some_and(|grant| grant.refresh_token != token)
    }

    /// The fault for this request, if any: scripted first, then permanent, then random.
    fn pick_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        // Drawn for every request, so adding a scripted fault does not shift the random ones.
        let roll = self.fault_rng.next_unit();
        if let Some(fault) = self
            .scripted
            .get_mut(&endpoint)
            .and_then(VecDeque::pop_front)
        {
            return Some(fault);
        }
        if let Some(fault) = self.always.get(&endpoint) {
            return Some(fault.clone());
        }
        let rates = &self.config.faults;
        let mut threshold = 0.0;
        for (rate, fault) in [
            (rates.server_error_rate, Fault::ServerError),
            (rates.timeout_rate, Fault::Timeout),
            (rates.lost_response_rate, Fault::LostResponse),
        ] {
            threshold += if rate.is_finite() {
                rate.clamp(0.0, 1.0)
            } else {
                0.0
            };
            if roll < threshold {
                return Some(fault);
            }
        }
        None
    }

    /// Applies a request at a known endpoint and answers it.
    fn apply(
        &mut self,
        now: Timestamp,
        route: &Route,
        request: &http::Request<Vec<u8>>,
    ) -> Response {
        let method = request.method();
        let answer = match route {
            Route::Metadata => self.metadata(method),
            Route::ProtectedResource => self.protected_resource(method),
            Route::Registration => self.register(now, request),
            Route::Management(client_id) => self.manage(now, client_id, request),
            Route::Authorization(params) => self.authorize(now, method, params),
            Route::Token => self.token(now, request),
            Route::Unknown => Ok(wire::page(404, "Not Found")),
        };
        answer.unwrap_or_else(Response::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};

    const ISSUER: &str = "https://as.sim.test";
    const REDIRECT: &str = "http://127.0.0.1:8976/callback";
    // RFC 7636 Appendix B (PKCE-9).
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + seconds)
    }

    fn url(path: &str) -> String {
        format!("{ISSUER}{path}")
    }

    fn build(
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> http::Request<Vec<u8>> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body.to_vec()).unwrap()
    }

    fn send(
        p: &mut SimulatedProvider,
        now: Timestamp,
        request: http::Request<Vec<u8>>,
    ) -> Response {
        match p.handle(now, &request) {
            Reply::Response(response) => response,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn get(p: &mut SimulatedProvider, now: Timestamp, url: &str) -> Response {
        send(p, now, build(Method::GET, url, &[], b""))
    }

    fn json_call(
        p: &mut SimulatedProvider,
        now: Timestamp,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> Response {
        let auth = bearer.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        send(
            p,
            now,
            build(method, url, &headers, &serde_json::to_vec(body).unwrap()),
        )
    }

    fn token_request(
        fields: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> http::Request<Vec<u8>> {
        // OAUTH-8: form-encode id and secret, then base64.
        let encode = |text: &str| -> String {
            url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
        };
        let auth = basic.map(|(id, secret)| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
            )
        });
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        build(Method::POST, &url("/token"), &headers, &wire_form(fields))
    }

    fn wire_form(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        form.finish().into_bytes()
    }

    fn token(
        p: &mut SimulatedProvider,
        now: Timestamp,
        fields: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Response {
        send(p, now, token_request(fields, basic))
    }

    fn body(response: &Response) -> Value {
        serde_json::from_slice(response.body()).expect("a JSON body")
    }

    fn error(response: &Response) -> (u16, String) {
        let value = body(response);
        (
            response.status().as_u16(),
            value["error"].as_str().unwrap_or("").to_owned(),
        )
    }

    fn str_of<'v>(value: &'v Value, name: &str) -> &'v str {
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing in {value}"))
    }

    fn register(p: &mut SimulatedProvider, now: Timestamp, metadata: Value) -> Value {
        let response = json_call(p, now, Method::POST, &url("/register"), None, &metadata);
        assert_eq!(
            response.status(),
            201,
            "{}",
            String::from_utf8_lossy(response.body())
        );
        body(&response)
    }

    fn public_client() -> Value {
        json!({
            "client_name": "test",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "scope": "openid read offline_access",
            "client_name#fr": "essai",
        })
    }

    fn confidential_client(method: &str) -> Value {
        json!({
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_method": method,
        })
    }

    /// The PUT body a well-behaved client sends: everything last returned minus the four
    /// forbidden members and the secret (MGMT-7, MGMT-8).
    fn update_body(information: &Value) -> Value {
        let mut body = information.as_object().unwrap().clone();
        for name in SERVER_MANAGED.iter().chain(&["client_secret"]) {
            body.remove(*name);
        }
        Value::Object(body)
    }

    fn authorize_url(client_id: &str, extra: &[(&str, &str)]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let defaults = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("state", "st-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("scope", "openid offline_access"),
        ];
        for (name, value) in defaults {
            if let Some((_, replaced)) = extra.iter().find(|(n, _)| *n == name) {
                if !replaced.is_empty() {
                    query.append_pair(name, replaced);
                }
            } else {
                query.append_pair(name, value);
            }
        }
        for (name, value) in extra {
            if !defaults.iter().any(|(n, _)| n == name) {
                query.append_pair(name, value);
            }
        }
        format!("{ISSUER}/authorize?{}", query.finish())
    }

    /// The query of a redirect's `Location`.
    fn callback_params(response: &Response) -> BTreeMap<String, String> {
        assert_eq!(
            response.status(),
            302,
            "{}",
            String::from_utf8_lossy(response.body())
        );
        let location = response.headers()[LOCATION].to_str().unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        Url::parse(location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    fn login(p: &mut SimulatedProvider, now: Timestamp, client_id: &str) -> String {
        let params = callback_params(&get(p, now, &authorize_url(client_id, &[])));
        params["code"].clone()
    }

    fn exchange(
        p: &mut SimulatedProvider,
        now: Timestamp,
        client_id: &str,
        code: &str,
        verifier: &str,
    ) -> Response {
        token(
            p,
            now,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
                ("client_id", client_id),
            ],
            None,
        )
    }

    fn refresh(
        p: &mut SimulatedProvider,
        now: Timestamp,
        client_id: &str,
        refresh_token: &str,
    ) -> Response {
        token(
            p,
            now,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client_id),
            ],
            None,
        )
    }

    fn expiring(lifetime_secs: i64) -> ProviderConfig {
        ProviderConfig {
            secret_lifetime: Some(Duration::from_secs(lifetime_secs)),
            ..ProviderConfig::default()
        }
    }

    #[test]
    fn metadata_is_served_at_the_discovery_urls() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        for path in [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let response = get(&mut p, at(0), &url(path));
            assert_eq!(response.status(), 200);
            assert!(response.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"));
            let doc = body(&response);
            assert_eq!(doc["issuer"], ISSUER);
            assert_eq!(doc["token_endpoint"], url("/token"));
            assert_eq!(doc["registration_endpoint"], url("/register"));
            assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
            assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
            assert!(doc.get("client_id_metadata_document_supported").is_none());
        }
        assert_eq!(p.stats().metadata_fetches, 2);

        let unknown = get(&mut p, at(0), "https://as.sim.test/nope");
        assert_eq!(unknown.status(), 404);
        assert!(unknown.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(
            get(&mut p, at(0), "https://other.sim.test/token").status(),
            404
        );
    }

    #[test]
    fn an_issuer_with_a_path_uses_inserted_and_appended_forms() {
        let mut p = SimulatedProvider::new(ProviderConfig {
            issuer: "https://as.sim.test/tenant1".into(),
            registration_enabled: false,
            cimd_supported: true,
            ..ProviderConfig::default()
        });
        for path in [
            "/.well-known/oauth-authorization-server/tenant1",
            "/.well-known/openid-configuration/tenant1",
            "/tenant1/.well-known/openid-configuration",
        ] {
            let doc = body(&get(&mut p, at(0), &url(path)));
            assert_eq!(doc["issuer"], "https://as.sim.test/tenant1");
            assert_eq!(
                doc["authorization_endpoint"],
                "https://as.sim.test/tenant1/authorize"
            );
            assert!(doc.get("registration_endpoint").is_none());
            assert_eq!(doc["client_id_metadata_document_supported"], true);
        }
        // The wrong path (appended 8414 form, or the root) is a miss.
        assert_eq!(
            get(
                &mut p,
                at(0),
                &url("/tenant1/.well-known/oauth-authorization-server")
            )
            .status(),
            404
        );
        assert_eq!(
            get(
                &mut p,
                at(0),
                &url("/.well-known/oauth-authorization-server")
            )
            .status(),
            404
        );
    }

    #[test]
    fn protected_resource_metadata_at_path_and_root() {
        let mut p = SimulatedProvider::new(ProviderConfig {
            resource: Some("https://mcp.sim.test/mcp".into()),
            resource_scopes: Some(vec!["read".into()]),
            ..ProviderConfig::default()
        });
        for prm in [
            "https://mcp.sim.test/.well-known/oauth-protected-resource/mcp",
            "https://mcp.sim.test/.well-known/oauth-protected-resource",
        ] {
            let doc = body(&get(&mut p, at(0), prm));
            assert_eq!(doc["resource"], "https://mcp.sim.test/mcp");
            assert_eq!(doc["authorization_servers"], json!([ISSUER]));
            assert_eq!(doc["scopes_supported"], json!(["read"]));
        }
        assert_eq!(p.stats().prm_fetches, 2);
        let other = "https://mcp.sim.test/.well-known/oauth-protected-resource/other";
        assert_eq!(get(&mut p, at(0), other).status(), 404);
    }

    #[test]
    fn registration_answer_shape_dcr_12_to_17() {
        let mut p = SimulatedProvider::new(expiring(3600));
        let mut request = confidential_client("client_secret_post");
        request["software_id"] = json!("tenure");
        request["x_custom"] = json!({"nested": [1, 2]});
        request["client_id"] = json!("chosen-by-client");
        let info = register(&mut p, at(0), request);

        let client_id = str_of(&info, "client_id");
        assert!(!client_id.starts_with("https://") && client_id != "chosen-by-client");
        assert_eq!(info["client_id_issued_at"], at(0).unix_seconds());
        assert!(p.secret_is_current(client_id, str_of(&info, "client_secret")));
        assert_eq!(info["client_secret_expires_at"], at(3600).unix_seconds());
        assert!(str_of(&info, "registration_access_token").starts_with("rat_"));
        assert_eq!(
            info["registration_client_uri"],
            url(&format!("/register/{client_id}"))
        );
        // Echoed, defaults filled in, extension member added.
        assert_eq!(info["x_custom"], json!({"nested": [1, 2]}));
        assert_eq!(info["software_id"], "tenure");
        assert_eq!(info["response_types"], json!(["code"]));
        assert_eq!(info[EXTENSION_MEMBER.0], EXTENSION_MEMBER.1);
        assert_eq!((p.stats().registrations, p.client_count()), (1, 1));

        // A public client gets no secret (oidc-provider note 9); no management, no RAT.
        let mut p = SimulatedProvider::new(ProviderConfig {
            management_enabled: false,
            ..ProviderConfig::default()
        });
        let info = register(&mut p, at(0), public_client());
        assert_eq!(info["client_name#fr"], "essai");
        for absent in [
            "client_secret",
            "client_secret_expires_at",
            "registration_access_token",
            "registration_client_uri",
        ] {
            assert!(info.get(absent).is_none(), "{absent}");
        }
        // A secret that never expires says 0 (DCR-14); auth method defaults to basic (DCR-5).
        let info = register(
            &mut p,
            at(0),
            json!({"grant_types": ["client_credentials"], "response_types": []}),
        );
        assert_eq!(info["client_secret_expires_at"], 0);
        assert_eq!(info["token_endpoint_auth_method"], "client_secret_basic");
    }

    #[test]
    fn registration_refusals() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let reg = url("/register");
        let cases = [
            (
                json!({"grant_types": ["authorization_code"]}),
                "invalid_redirect_uri",
            ),
            (
                json!({"redirect_uris": ["http://app.example/cb"]}),
                "invalid_redirect_uri",
            ),
            (
                json!({"redirect_uris": "https://app.example/cb"}),
                "invalid_redirect_uri",
            ),
            (
                json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": [REDIRECT], "scope": "openid admin"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]}),
                "invalid_client_metadata",
            ),
            (json!([1, 2]), "invalid_client_metadata"),
        ];
        for (metadata, expected) in cases {
            let response = json_call(&mut p, at(0), Method::POST, &reg, None, &metadata);
            assert_eq!(error(&response), (400, expected.to_owned()), "{metadata}");
        }
        let garbage = build(
            Method::POST,
            &reg,
            &[("content-type", "application/json")],
            b"{not json",
        );
        assert_eq!(
            error(&send(&mut p, at(0), garbage)),
            (400, "invalid_client_metadata".into())
        );
        let no_type = build(Method::POST, &reg, &[], b"{}");
        assert_eq!(
            error(&send(&mut p, at(0), no_type)),
            (400, "invalid_request".into())
        );
        assert_eq!(get(&mut p, at(0), &reg).status(), 405);
        assert_eq!((p.client_count(), p.stats().registrations), (0, 0));
    }

    #[test]
    fn initial_access_token_dcr_11_dcr_20() {
        let mut p = SimulatedProvider::new(ProviderConfig {
            initial_access_token: Some("iat-s3cret".into()),
            ..ProviderConfig::default()
        });
        for bearer in [None, Some("wrong")] {
            let response = json_call(
                &mut p,
                at(0),
                Method::POST,
                &url("/register"),
                bearer,
                &public_client(),
            );
            assert_eq!(error(&response), (401, "invalid_token".into()));
            assert_eq!(
                response.headers()[WWW_AUTHENTICATE],
                r#"Bearer error="invalid_token""#
            );
        }
        let ok = json_call(
            &mut p,
            at(0),
            Method::POST,
            &url("/register"),
            Some("iat-s3cret"),
            &public_client(),
        );
        assert_eq!(ok.status(), 201);
        assert_eq!(p.stats().misplaced_credentials, 0);
        // The initial access token sent to the token endpoint is misplaced (MGMT-22).
        let leak = build(
            Method::POST,
            &url("/token"),
            &[("authorization", "Bearer iat-s3cret")],
            b"",
        );
        send(&mut p, at(0), leak);
        assert_eq!(p.stats().misplaced_credentials, 1);
    }

    #[test]
    fn put_rotates_secret_and_registration_access_token() {
        let mut p = SimulatedProvider::new(expiring(3600));
        let info = register(&mut p, at(0), confidential_client("client_secret_basic"));
        let client_id = str_of(&info, "client_id").to_owned();
        let uri = str_of(&info, "registration_client_uri").to_owned();
        let old_rat = str_of(&info, "registration_access_token").to_owned();
        let old_secret = str_of(&info, "client_secret").to_owned();

        let response = json_call(
            &mut p,
            at(1800),
            Method::PUT,
            &uri,
            Some(&old_rat),
            &update_body(&info),
        );
        assert_eq!(response.status(), 200);
        let renewed = body(&response);
        let new_secret = str_of(&renewed, "client_secret");
        let new_rat = str_of(&renewed, "registration_access_token");
        assert_ne!(new_secret, old_secret);
        assert_ne!(new_rat, old_rat);
        assert_eq!(
            renewed["client_secret_expires_at"],
            at(1800 + 3600).unix_seconds()
        );
        assert_eq!(renewed["client_id"], client_id.as_str());
        assert_eq!(renewed["client_id_issued_at"], info["client_id_issued_at"]);
        assert_eq!(
            renewed[EXTENSION_MEMBER.0], EXTENSION_MEMBER.1,
            "echoed back (DCR-17)"
        );
        assert!(p.secret_is_current(&client_id, new_secret));
        assert!(!p.secret_is_current(&client_id, &old_secret));
        assert_eq!(p.stats().renewals, 1);

        // The old token died at once (EDGE-13); the new one works and a GET does not rotate.
        let stale = json_call(
            &mut p,
            at(1801),
            Method::GET,
            &uri,
            Some(&old_rat),
            &Value::Null,
        );
        assert_eq!(error(&stale), (401, "invalid_token".into()));
        assert_eq!(
            stale.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let read = json_call(
            &mut p,
            at(1801),
            Method::GET,
            &uri,
            Some(new_rat),
            &Value::Null,
        );
        assert_eq!(body(&read)["registration_access_token"], new_rat);
        assert_eq!(p.stats().reads, 1);

        // The old secret is refused at the token endpoint, the new one accepted.
        let cc = [("grant_type", "client_credentials")];
        let old = token(&mut p, at(1802), &cc, Some((&client_id, &old_secret)));
        assert_eq!(error(&old), (401, "invalid_client".into()));
        assert!(old.headers().contains_key(WWW_AUTHENTICATE));
        assert_eq!(
            token(&mut p, at(1802), &cc, Some((&client_id, new_secret))).status(),
            200
        );
        assert_eq!(p.stats().misplaced_credentials, 0);
    }

    #[test]
    fn without_secret_lifetime_or_rotation_the_credentials_stay() {
        let mut p = SimulatedProvider::new(ProviderConfig {
            rotate_registration_access_token: false,
            ..ProviderConfig::default()
        });
        let info = register(&mut p, at(0), confidential_client("client_secret_basic"));
        let rat = str_of(&info, "registration_access_token");
        let uri = str_of(&info, "registration_client_uri");
        let renewed = body(&json_call(
            &mut p,
            at(5),
            Method::PUT,
            uri,
            Some(rat),
            &update_body(&info),
        ));
        assert_eq!(renewed["client_secret"], info["client_secret"]);
        assert_eq!(renewed["client_secret_expires_at"], 0);
        assert_eq!(renewed["registration_access_token"], rat);
    }

    #[test]
    fn forbidden_put_bodies_mgmt_7_to_10() {
        let mut p = SimulatedProvider::new(expiring(3600));
        let info = register(&mut p, at(0), confidential_client("client_secret_basic"));
        let uri = str_of(&info, "registration_client_uri").to_owned();
        let rat = str_of(&info, "registration_access_token").to_owned();
        let good = update_body(&info);

        let mut cases = Vec::new();
        for name in SERVER_MANAGED {
            let mut body = good.clone();
            body[name] = info[name].clone();
            cases.push((body, "invalid_request"));
        }
        let mut missing_id = good.clone();
        missing_id.as_object_mut().unwrap().remove("client_id");
        cases.push((missing_id, "invalid_request"));
        let mut other_id = good.clone();
        other_id["client_id"] = json!("someone-else");
        cases.push((other_id, "invalid_request"));
        let mut other_secret = good.clone();
        other_secret["client_secret"] = json!("made-up");
        cases.push((other_secret, "invalid_request"));
        let mut no_redirects = good.clone();
        no_redirects
            .as_object_mut()
            .unwrap()
            .remove("redirect_uris");
        cases.push((no_redirects, "invalid_redirect_uri"));
        cases.push((
            json!({"client_id": info["client_id"]}),
            "invalid_redirect_uri",
        ));

        for (body, expected) in cases {
            let response = json_call(&mut p, at(1), Method::PUT, &uri, Some(&rat), &body);
            assert_eq!(error(&response), (400, expected.to_owned()), "{body}");
        }
        assert_eq!(p.stats().renewals, 0);
        assert!(p.secret_is_current(str_of(&info, "client_id"), str_of(&info, "client_secret")));

        // The current secret is allowed in the body (MGMT-10), though it is misplaced there.
        let mut with_secret = good.clone();
        with_secret["client_secret"] = info["client_secret"].clone();
        let response = json_call(&mut p, at(2), Method::PUT, &uri, Some(&rat), &with_secret);
        assert_eq!(response.status(), 200);
        assert_eq!(p.stats().misplaced_credentials, 1);
    }

    #[test]
    fn delete_removes_the_client_and_its_tokens() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let info = register(&mut p, at(0), public_client());
        let client_id = str_of(&info, "client_id").to_owned();
        let uri = str_of(&info, "registration_client_uri").to_owned();
        let rat = str_of(&info, "registration_access_token").to_owned();
        let code = login(&mut p, at(0), &client_id);
        let tokens = body(&exchange(&mut p, at(0), &client_id, &code, VERIFIER));
        let access = str_of(&tokens, "access_token");
        assert!(p.access_token_is_active(at(1), access));

        let deleted = json_call(
            &mut p,
            at(1),
            Method::DELETE,
            &uri,
            Some(&rat),
            &Value::Null,
        );
        assert_eq!(deleted.status(), 204);
        assert!(deleted.headers().contains_key(CONTENT_TYPE));
        assert_eq!((p.client_count(), p.stats().deletes), (0, 1));
        assert!(!p.access_token_is_active(at(1), access));
        let again = json_call(&mut p, at(2), Method::GET, &uri, Some(&rat), &Value::Null);
        assert_eq!(error(&again), (401, "invalid_token".into()));
        let refreshed = refresh(&mut p, at(2), &client_id, str_of(&tokens, "refresh_token"));
        assert_eq!(error(&refreshed), (401, "invalid_client".into()));
    }

    #[test]
    fn expired_secret_is_400_invalid_client_and_counted() {
        let mut p = SimulatedProvider::new(expiring(60));
        let info = register(&mut p, at(0), confidential_client("client_secret_post"));
        let client_id = str_of(&info, "client_id");
        let secret = str_of(&info, "client_secret");
        let fields = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ];
        assert_eq!(token(&mut p, at(59), &fields, None).status(), 200);
        assert_eq!(p.stats().expired_secret_presented, 0);

        let expired = token(&mut p, at(60), &fields, None);
        assert_eq!(error(&expired), (400, "invalid_client".into()));
        assert_eq!(p.stats().expired_secret_presented, 1);
        // A wrong secret is 401, and not counted as expired.
        let wrong = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", "nope"),
        ];
        assert_eq!(
            error(&token(&mut p, at(61), &wrong, None)),
            (401, "invalid_client".into())
        );
        assert_eq!(p.stats().expired_secret_presented, 1);
        // The wrong method is refused too (OAUTH-7).
        let basic = token(
            &mut p,
            at(10),
            &[("grant_type", "client_credentials")],
            Some((client_id, secret)),
        );
        assert_eq!(error(&basic), (401, "invalid_client".into()));
    }

    #[test]
    fn basic_credentials_are_form_encoded_edge_40() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let info = register(&mut p, at(0), confidential_client("client_secret_basic"));
        let client_id = str_of(&info, "client_id");
        let secret = str_of(&info, "client_secret");
        let ok = token(
            &mut p,
            at(0),
            &[("grant_type", "client_credentials"), ("scope", "read")],
            Some((client_id, secret)),
        );
        assert_eq!(ok.status(), 200);
        let answer = body(&ok);
        assert_eq!(
            (
                answer["token_type"].clone(),
                answer["expires_in"].clone(),
                answer["scope"].clone()
            ),
            (json!("Bearer"), json!(3600), json!("read"))
        );
        assert!(answer.get("refresh_token").is_none());
        assert_eq!(ok.headers()["cache-control"], "no-store");
        assert_eq!(p.stats().client_credentials, 1);

        for header in ["Basic %%%", "Basic Zm9v", "Bearer x"] {
            let request = build(
                Method::POST,
                &url("/token"),
                &[("content-type", wire::FORM), ("authorization", header)],
                b"grant_type=client_credentials",
            );
            assert_eq!(
                error(&send(&mut p, at(0), request)),
                (400, "invalid_request".into()),
                "{header}"
            );
        }
    }

    #[test]
    fn pkce_is_checked_and_a_failure_does_not_burn_the_code() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let info = register(&mut p, at(0), public_client());
        let client_id = str_of(&info, "client_id").to_owned();

        let response = get(&mut p, at(0), &authorize_url(&client_id, &[]));
        let params = callback_params(&response);
        assert_eq!(params["state"], "st-1");
        assert_eq!(params["iss"], ISSUER);
        let code = params["code"].clone();
        assert_eq!(p.stats().authorizations, 1);

        let wrong = exchange(&mut p, at(1), &client_id, &code, &"x".repeat(43));
        assert_eq!(error(&wrong), (400, "invalid_grant".into()));
        let missing = token(
            &mut p,
            at(1),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", &client_id),
            ],
            None,
        );
        assert_eq!(error(&missing), (400, "invalid_grant".into()));

        let ok = exchange(&mut p, at(2), &client_id, &code, VERIFIER);
        assert_eq!(ok.status(), 200);
        let tokens = body(&ok);
        assert!(str_of(&tokens, "refresh_token").starts_with("rt_"));
        assert_eq!(tokens["scope"], "openid offline_access");
        assert_eq!(p.stats().code_exchanges, 1);

        // OAUTH-5: a second use is refused and revokes what the first one granted.
        let reused = exchange(&mut p, at(3), &client_id, &code, VERIFIER);
        assert_eq!(error(&reused), (400, "invalid_grant".into()));
        assert!(!p.access_token_is_active(at(3), str_of(&tokens, "access_token")));

        // Codes live 60 seconds.
        let late = login(&mut p, at(10), &client_id);
        assert_eq!(
            error(&exchange(&mut p, at(70), &client_id, &late, VERIFIER)),
            (400, "invalid_grant".into())
        );
    }

    #[test]
    fn authorization_errors_redirect_only_to_a_trusted_uri() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let info = register(&mut p, at(0), public_client());
        let client_id = str_of(&info, "client_id").to_owned();

        for (extra, expected) in [
            (vec![("code_challenge", "")], "invalid_request"),
            (vec![("code_challenge_method", "plain")], "invalid_request"),
            (vec![("code_challenge_method", "")], "invalid_request"),
            (
                vec![("response_type", "token")],
                "unsupported_response_type",
            ),
            (vec![("scope", "admin")], "invalid_scope"),
            (vec![("scope", "write")], "invalid_scope"), // supported, but not registered
        ] {
            let params = callback_params(&get(&mut p, at(0), &authorize_url(&client_id, &extra)));
            assert_eq!(params["error"], expected, "{extra:?}");
            assert_eq!(
                (params["state"].as_str(), params["iss"].as_str()),
                ("st-1", ISSUER)
            );
            assert!(!params.contains_key("code"));
        }
        // No redirect when the redirect URI or the client cannot be trusted (OAUTH-2).
        for extra in [
            vec![("redirect_uri", "https://evil.example/cb")],
            vec![("redirect_uri", "http://127.0.0.1:8976/other")],
            vec![("client_id", "unknown")],
            vec![("client_id", "")],
        ] {
            let response = get(&mut p, at(0), &authorize_url(&client_id, &extra));
            assert_eq!(response.status(), 400, "{extra:?}");
            assert!(!response.headers().contains_key(LOCATION));
        }
        // A native client may come back on another loopback port (NAT-2).
        let other_port = get(
            &mut p,
            at(0),
            &authorize_url(
                &client_id,
                &[("redirect_uri", "http://127.0.0.1:5555/callback")],
            ),
        );
        assert_eq!(other_port.status(), 302);
        assert_eq!(p.stats().authorizations, 1);
    }

    #[test]
    fn cimd_client_ids_are_accepted_or_refused() {
        let cimd = "https://app.example/client.json";
        let mut p = SimulatedProvider::new(ProviderConfig {
            cimd_supported: true,
            iss_parameter: false,
            ..ProviderConfig::default()
        });
        let params = callback_params(&get(&mut p, at(0), &authorize_url(cimd, &[])));
        assert!(!params.contains_key("iss"));
        let ok = exchange(&mut p, at(1), cimd, &params["code"], VERIFIER);
        assert_eq!(ok.status(), 200);

        let mut p = SimulatedProvider::new(ProviderConfig {
            cimd_supported: true,
            cimd_accepted: false,
            ..ProviderConfig::default()
        });
        let params = callback_params(&get(&mut p, at(0), &authorize_url(cimd, &[])));
        assert_eq!(
            (params["error"].as_str(), params["state"].as_str()),
            ("invalid_client", "st-1")
        );
        assert_eq!(params["iss"], ISSUER);
        let no_state = get(&mut p, at(0), &authorize_url(cimd, &[("state", "")]));
        assert_eq!(no_state.status(), 400);
        let refused = exchange(&mut p, at(1), cimd, "code_x", VERIFIER);
        assert_eq!(error(&refused), (400, "invalid_client".into()));
    }

    #[test]
    fn refresh_rotation_and_reuse_detection_rt_6() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let info = register(&mut p, at(0), public_client());
        let client_id = str_of(&info, "client_id").to_owned();
        let code = login(&mut p, at(0), &client_id);
        let first = body(&exchange(&mut p, at(0), &client_id, &code, VERIFIER));
        let rt1 = str_of(&first, "refresh_token").to_owned();

        let second = body(&refresh(&mut p, at(10), &client_id, &rt1));
        let rt2 = str_of(&second, "refresh_token").to_owned();
        assert_ne!(rt1, rt2);
        assert_eq!(second["scope"], first["scope"], "RT-9");
        assert_eq!(p.stats().refreshes, 1);
        assert_eq!(p.stats().stale_refresh_presented, 0);

        // Presenting the rotated-out token: refused, counted, and the whole grant dies.
        let replay = refresh(&mut p, at(20), &client_id, &rt1);
        assert_eq!(error(&replay), (400, "invalid_grant".into()));
        assert_eq!(p.stats().stale_refresh_presented, 1);
        assert!(!p.access_token_is_active(at(20), str_of(&second, "access_token")));
        assert_eq!(
            error(&refresh(&mut p, at(21), &client_id, &rt2)),
            (400, "invalid_grant".into())
        );
        assert_eq!(
            p.stats().stale_refresh_presented,
            1,
            "rt2 was revoked, not rotated out"
        );

        // Scope may narrow but not widen (RT-1).
        let code = login(&mut p, at(30), &client_id);
        let fresh = body(&exchange(&mut p, at(30), &client_id, &code, VERIFIER));
        let widened = token(
            &mut p,
            at(31),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", str_of(&fresh, "refresh_token")),
                ("client_id", &client_id),
                ("scope", "read"),
            ],
            None,
        );
        assert_eq!(error(&widened), (400, "invalid_scope".into()));
    }

    #[test]
    fn without_rotation_the_same_refresh_token_comes_back() {
        let mut p = SimulatedProvider::new(ProviderConfig {
            rotate_refresh_tokens: false,
            ..ProviderConfig::default()
        });
        let info = register(&mut p, at(0), public_client());
        let client_id = str_of(&info, "client_id").to_owned();
        let code = login(&mut p, at(0), &client_id);
        let rt = str_of(
            &body(&exchange(&mut p, at(0), &client_id, &code, VERIFIER)),
            "refresh_token",
        )
        .to_owned();
        for step in 1..3 {
            let again = body(&refresh(&mut p, at(step), &client_id, &rt));
            assert_eq!(again["refresh_token"], rt.as_str());
        }
        assert_eq!(p.stats().stale_refresh_presented, 0);
    }

    #[test]
    fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let mut metadata = public_client();
        metadata["grant_types"] = json!(["authorization_code"]);
        let info = register(&mut p, at(0), metadata);
        let client_id = str_of(&info, "client_id").to_owned();
        let code = login(&mut p, at(0), &client_id);
        let tokens = body(&exchange(&mut p, at(0), &client_id, &code, VERIFIER));
        assert!(tokens.get("refresh_token").is_none());
    }

    #[test]
    fn resource_indicators_must_name_the_resource() {
        let resource = "https://mcp.sim.test/mcp";
        let mut p = SimulatedProvider::new(ProviderConfig {
            resource: Some(resource.into()),
            ..ProviderConfig::default()
        });
        let info = register(&mut p, at(0), public_client());
        let client_id = str_of(&info, "client_id").to_owned();
        let wrong = callback_params(&get(
            &mut p,
            at(0),
            &authorize_url(&client_id, &[("resource", "https://mcp.sim.test")]),
        ));
        assert_eq!(wrong["error"], "invalid_target");
        let params = callback_params(&get(
            &mut p,
            at(0),
            &authorize_url(&client_id, &[("resource", resource)]),
        ));
        let fields = [
            ("grant_type", "authorization_code"),
            ("code", params["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
            ("resource", resource),
        ];
        assert_eq!(token(&mut p, at(1), &fields, None).status(), 200);
    }

    #[test]
    fn misplaced_credentials_mgmt_22() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let a = register(&mut p, at(0), confidential_client("client_secret_post"));
        let b = register(&mut p, at(0), public_client());
        let rat_a = str_of(&a, "registration_access_token");
        let uri_a = str_of(&a, "registration_client_uri");
        let uri_b = str_of(&b, "registration_client_uri");

        // In place: no count.
        json_call(&mut p, at(1), Method::GET, uri_a, Some(rat_a), &Value::Null);
        let cc = [
            ("grant_type", "client_credentials"),
            ("client_id", str_of(&a, "client_id")),
            ("client_secret", str_of(&a, "client_secret")),
        ];
        assert_eq!(token(&mut p, at(1), &cc, None).status(), 200);
        assert_eq!(p.stats().misplaced_credentials, 0);

        // The RAT at the token endpoint, at another client's URI, in a query; the secret at
        // the registration endpoint.
        token(
            &mut p,
            at(2),
            &[
                ("grant_type", "client_credentials"),
                ("registration_access_token", rat_a),
            ],
            None,
        );
        json_call(&mut p, at(2), Method::GET, uri_b, Some(rat_a), &Value::Null);
        get(&mut p, at(2), &format!("{ISSUER}/authorize?token={rat_a}"));
        json_call(
            &mut p,
            at(2),
            Method::POST,
            &url("/register"),
            None,
            &json!({"x": a["client_secret"]}),
        );
        assert_eq!(p.stats().misplaced_credentials, 4);
    }

    #[test]
    fn scripted_faults_are_fifo_and_win_over_random_ones() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let reg = url("/register");
        p.fail_next(Endpoint::Registration, Fault::Timeout);
        p.fail_next(Endpoint::Registration, Fault::ServerError);
        p.fail_next(
            Endpoint::Registration,
            Fault::Status(403, json!({"error": "access_denied"})),
        );
        p.fail_next(Endpoint::Registration, Fault::LostResponse);
        let request = || {
            build(
                Method::POST,
                &reg,
                &[("content-type", "application/json")],
                &serde_json::to_vec(&public_client()).unwrap(),
            )
        };

        assert!(matches!(p.handle(at(0), &request()), Reply::Timeout));
        assert_eq!(p.client_count(), 0, "a timeout changes nothing");
        let unavailable = p.handle(at(0), &request()).into_response().unwrap();
        assert_eq!(unavailable.status(), 503);
        assert!(unavailable.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(
            error(&p.handle(at(0), &request()).into_response().unwrap()),
            (403, "access_denied".into())
        );
        assert_eq!(p.client_count(), 0);
        assert!(matches!(p.handle(at(0), &request()), Reply::Lost));
        assert_eq!(
            (p.client_count(), p.stats().registrations),
            (1, 1),
            "a lost answer was applied"
        );
        assert_eq!(p.handle(at(0), &request()).status(), Some(201));

        // Other endpoints are untouched; fail_always lasts until heal.
        p.fail_always(Endpoint::Metadata, Fault::ServerError);
        for _ in 0..3 {
            assert_eq!(
                get(
                    &mut p,
                    at(0),
                    &url("/.well-known/oauth-authorization-server")
                )
                .status(),
                503
            );
        }
        p.heal(Endpoint::Metadata);
        assert_eq!(
            get(
                &mut p,
                at(0),
                &url("/.well-known/oauth-authorization-server")
            )
            .status(),
            200
        );
        assert_eq!(p.stats().metadata_fetches, 1);
    }

    #[test]
    fn random_faults_are_deterministic_for_a_seed() {
        let run = |seed: u64| {
            let mut p = SimulatedProvider::new(ProviderConfig {
                faults: FaultConfig {
                    seed,
                    server_error_rate: 0.2,
                    timeout_rate: 0.2,
                    lost_response_rate: 0.2,
                },
                ..ProviderConfig::default()
            });
            let outcomes: Vec<String> = (0..200)
                .map(|i| {
                    let request = build(
                        Method::POST,
                        &url("/register"),
                        &[("content-type", "application/json")],
                        &serde_json::to_vec(&public_client()).unwrap(),
                    );
                    match p.handle(at(i), &request) {
                        Reply::Response(r) if r.status() == 201 => {
                            body(&r)["client_id"].as_str().unwrap().to_owned()
                        }
                        Reply::Response(r) => r.status().as_u16().to_string(),
                        Reply::Timeout => "timeout".into(),
                        Reply::Lost => "lost".into(),
                    }
                })
                .collect();
            (outcomes, p.client_count())
        };
        let (first, clients) = run(42);
        assert!(first.iter().any(|o| o.starts_with("c_")));
        assert_eq!(run(42), (first.clone(), clients));
        assert_ne!(run(43).0, first);
        let count = |what: &str| first.iter().filter(|o| *o == what).count();
        for what in ["503", "timeout", "lost"] {
            assert!((20..=60).contains(&count(what)), "{what}: {}", count(what));
        }
        assert_eq!(clients, 200 - count("503") - count("timeout"));
    }

    #[test]
    fn hostile_input_gets_an_answer_not_a_panic() {
        let mut p = SimulatedProvider::new(ProviderConfig::default());
        let info = register(&mut p, at(0), public_client());
        let uri = str_of(&info, "registration_client_uri").to_owned();
        let bodies: [&[u8]; 5] = [b"", b"\xff\xfe", b"{", b"a=1&a=2", b"null"];
        let targets = [
            (Method::POST, url("/token")),
            (Method::POST, url("/register")),
            (Method::PUT, uri.clone()),
            (Method::GET, url("/authorize?client_id=%FF&client_id=x")),
            (Method::PATCH, uri),
        ];
        for (method, target) in &targets {
            for payload in bodies {
                for content_type in ["application/json", wire::FORM, "text/plain"] {
                    let mut request = build(
                        method.clone(),
                        target,
                        &[("content-type", content_type)],
                        payload,
                    );
                    // Not ASCII, not valid base64: must not matter.
                    request.headers_mut().insert(
                        AUTHORIZATION,
                        http::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
                    );
                    let response = send(&mut p, at(0), request);
                    assert!(
                        response.status().is_client_error(),
                        "{method} {target}: {}",
                        response.status()
                    );
                    assert!(response.headers().contains_key(CONTENT_TYPE));
                }
            }
        }
        let relative = build(Method::GET, "/token", &[], b"");
        assert_eq!(send(&mut p, at(0), relative).status(), 404);
        let mut broken = SimulatedProvider::new(ProviderConfig {
            issuer: "not a url".into(),
            ..ProviderConfig::default()
        });
        assert_eq!(get(&mut broken, at(0), &url("/token")).status(), 404);
        p.fail_next(Endpoint::Token, Fault::Status(1234, json!("odd")));
        assert_eq!(token(&mut p, at(0), &[], None).status(), 500);
        assert_eq!(p.config().issuer, ISSUER);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Whatever arrives, the answer is a response with a content type or a fault reply,
        /// never a panic.
        #[test]
        fn random_requests_never_panic(
            method in proptest::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]),
            path in proptest::sample::select(vec!["/token", "/register", "/register/x", "/authorize?client_id=a&code_challenge=%ZZ", "/.well-known/openid-configuration"]),
            content_type in proptest::sample::select(vec!["application/json", wire::FORM, ""]),
            authorization in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut p = SimulatedProvider::new(ProviderConfig::default());
            let mut request = build(method, &url(path), &[("content-type", content_type)], &body);
            let mut header = b"Basic ".to_vec();
            header.extend(authorization);
            if let Ok(value) = http::HeaderValue::from_bytes(&header) {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            let response = send(&mut p, at(0), request);
            proptest::prop_assert!(response.headers().contains_key(CONTENT_TYPE));
        }
    }

    #[test]
    fn preregistered_clients_work_without_registration() {
        let mut p = SimulatedProvider::new(ProviderConfig {
            registration_enabled: false,
            management_enabled: false,
            ..ProviderConfig::default()
        });
        assert_eq!(
            json_call(
                &mut p,
                at(0),
                Method::POST,
                &url("/register"),
                None,
                &public_client()
            )
            .status(),
            404
        );
        let metadata = confidential_client("client_secret_basic")
            .as_object()
            .unwrap()
            .clone();
        let info = p.preregister(at(0), metadata).unwrap();
        let (id, secret) = (str_of(&info, "client_id"), str_of(&info, "client_secret"));
        assert_eq!(
            token(
                &mut p,
                at(0),
                &[("grant_type", "client_credentials")],
                Some((id, secret))
            )
            .status(),
            200
        );
        assert_eq!(p.stats().registrations, 0);
        assert!(p
            .preregister(at(0), Map::new())
            .unwrap_err()
            .contains("invalid_redirect_uri"));
    }
}
