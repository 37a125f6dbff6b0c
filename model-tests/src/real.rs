//! Stateright models whose replicas are the real [`tenure_core::Client`].
//!
//! Each replica is a `Client` value. Every command it emits waits in the replica's outbox
//! until the checker delivers it, in any order: a store operation is carried out by the
//! modelled store ([`Store`]: a compare-and-swap on the generation, one lease), an HTTP request
//! is parsed and answered by the modelled authorization server ([`Server`]) with a real
//! `http::Response`, and the answer is handed back to the same `Client`. The clock is model
//! state: it moves when a waiting replica is ticked at its deadline. A replica may crash:
//! what it sent but was not carried out yet may still arrive (or never), and it starts again
//! as a fresh `Client::new` with another seed, from the store alone.
//!
//! Nothing here decides what a client does next: that is the core's code, run as is. The
//! model only observes requests, writes and events, and keeps counters in [`History`] for
//! the properties. `MODELS.md` describes the models and why the state abstraction is sound.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use stateright::{Model, Path, Property};
use tenure_core::{
    AuthMethod, Client, ClientConfig, ClientKey, Command, DpopMode, Duration, Grant, Input, OpId,
    Operation, Record, RequestKind, StoreOp, StoreResult, Timestamp,
};

/// The authorization server's issuer.
pub const ISSUER: &str = "https://as.example.com";
/// The authorization server the resource names after a migration (SEP-2352).
pub const SECOND_ISSUER: &str = "https://as2.example.com";
/// The protected resource of the migration scenario.
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
/// Where the resource's metadata (RFC 9728) is.
pub const RESOURCE_METADATA: &str =
    "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
/// When every model starts.
pub const T0: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);

/// What the replicas find in the store when the model starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// An empty store: the replicas discover the server and register (DCR).
    Registration,
    /// A registration whose secret is in its renewal window (RFC 7592 renewal), and a
    /// valid access token.
    Renewal,
    /// A registration that needs nothing, and an expired access token with a refresh token.
    Refresh,
    /// An empty store and a server that supports CIMD: the replicas log in (authorization
    /// code + PKCE, the model's user always completes the browser step) with their CIMD
    /// client id, which the server accepts, or refuses at the token endpoint with
    /// `invalid_client`, and then each falls back to DCR (INV-2, INV-3).
    Cimd {
        /// Whether the server accepts the CIMD id.
        accepted: bool,
    },
    /// A DCR registration the server has forgotten (an administrator deleted the client) and
    /// an expired access token: the secret is refused with `invalid_client`, and the
    /// replicas must register anew without a dead end (INV-13).
    Forgotten,
    /// A server without RFC 7592, as the MCP SDKs' servers: the stored secret is in its
    /// renewal window and cannot be renewed, so one replacement client is registered before
    /// it expires (INV-13, INV-14).
    NoManagement,
    /// A protected resource whose metadata names [`ISSUER`], where the replicas are
    /// registered and hold a valid token; at some moment it names [`SECOND_ISSUER`] instead,
    /// and a replica that then meets the resource's challenge must register there once and
    /// never present the first server's credentials to it (INV-7, SEP-2352).
    Migration,
}

/// When a held lease may lapse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseExpiry {
    /// Only once its holder crashed: the core relies on the lease outliving every round
    /// trip of a live holder.
    AfterCrash,
    /// At any moment, also under a live, slow holder (broken on purpose).
    AnyTime,
}

/// A model: the scenario, the bounds and the switches that break it on purpose.
#[derive(Clone, Debug)]
pub struct RealFleet {
    /// What the store holds at the start.
    pub scenario: Scenario,
    /// How many replicas share the store.
    pub replicas: u8,
    /// How many crashes a run may have.
    pub crashes: u8,
    /// How many HTTP requests of live processes may fail in transport: not carried out, or
    /// carried out with the answer lost (`Input::HttpFailed` either way).
    pub transport_failures: u8,
    /// Whether the store compares generations on write (off: broken on purpose).
    pub compare_and_swap: bool,
    /// When a lease lapses.
    pub lease_expiry: LeaseExpiry,
    /// Every process of every replica uses the same seed, hence the same lease holder id
    /// (broken on purpose).
    pub shared_seed: bool,
    /// The AS refuses a secret as soon as it issued the next one (renewal scenario: the
    /// access token has then expired too, so tokens are requested with the secret).
    pub revoking_server: bool,
    /// How many HTTP requests of live processes the AS may answer with a 503 without acting.
    pub server_errors: u8,
    /// A replica may crash at any moment of its operation, not only under the lease
    /// mid-request (a larger model).
    pub crash_anywhere: bool,
    /// How many more "get a token" operations each replica may ask for after its first one
    /// ended, each after the clock moved on by [`LATER`] (across the next renewal window).
    pub later_operations: u8,
    /// The store answers a load made under the lease with the record the process saw last:
    /// the re-read under the lease sees nothing new (broken on purpose).
    pub stale_reads: bool,
    /// How many times a replica whose operation failed may ask again, [`RETRY_AFTER`] later:
    /// with it, "no dead end" (INV-13) means that asking again recovers.
    pub retries: u8,
    /// How many forged callbacks (another `state`, an attacker's code) may reach a replica
    /// waiting for its browser.
    pub forged_callbacks: u8,
    /// 503s and transport failures hit only renewal requests (RFC 7592 updates).
    pub faults_only_on_renewals: bool,
    /// The server offers DPoP (RFC 9449) and binds tokens to the proof's key; the replicas
    /// use it where offered, each process drawing a key from its own seed.
    pub dpop: bool,
    /// The store keeps only the record fields it knew before DPoP, so the DPoP key is never
    /// persisted: an adapter written against an older record (broken on purpose).
    pub store_drops_dpop_key: bool,
}

/// How long a caller waits before asking again after a failed operation: longer than the
/// first registration backoff window (INV-14), which a failure may have opened.
pub const RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// How far the clock moves before a later operation: past the next renewal window of a
/// secret renewed now (secrets live 60 h, the window is the last 24 h).
pub const LATER: Duration = Duration::from_hours(48);
/// The code a forged callback carries.
pub const FORGED_CODE: &str = "code-forged";
/// The CIMD client id of the CIMD scenarios.
pub const CIMD_URL: &str = "https://app.example.com/client.json";

impl RealFleet {
    /// Two replicas register against a DCR server, with one crash and one transport failure.
    pub fn registration() -> Self {
        RealFleet {
            transport_failures: 1,
            ..RealFleet::new(Scenario::Registration)
        }
    }

    /// Two replicas find a secret to renew, with one crash (transport failures: see
    /// [`RealFleet::renewal_over_a_lossy_network`]).
    pub fn renewal() -> Self {
        RealFleet::new(Scenario::Renewal)
    }

    /// Two replicas find a secret to renew, with one transport failure and no crash.
    pub fn renewal_over_a_lossy_network() -> Self {
        RealFleet {
            crashes: 0,
            transport_failures: 1,
            ..RealFleet::new(Scenario::Renewal)
        }
    }

    /// Two replicas renew against an AS that refuses the old secret as soon as it issued the
    /// new one, and request a token with the secret afterwards; one transport failure, no
    /// crash.
    pub fn revoking_server() -> Self {
        RealFleet {
            crashes: 0,
            transport_failures: 1,
            revoking_server: true,
            ..RealFleet::new(Scenario::Renewal)
        }
    }

    /// Two replicas find an access token to refresh, with one crash and one transport
    /// failure.
    pub fn refresh() -> Self {
        RealFleet {
            transport_failures: 1,
            ..RealFleet::new(Scenario::Refresh)
        }
    }

    /// Two replicas log in with a CIMD id the server accepts or refuses (then they fall back
    /// to DCR); no crash, no transport failure. Where the id is accepted, one forged callback
    /// may reach a replica waiting for its browser.
    pub fn cimd(accepted: bool) -> Self {
        RealFleet {
            crashes: 0,
            forged_callbacks: u8::from(accepted),
            ..RealFleet::new(Scenario::Cimd { accepted })
        }
    }

    /// Two replicas find a secret to renew; the renewal may fail with a 503 or in transport
    /// (one of each at most), before the secret expires (INV-6).
    pub fn failing_renewal() -> Self {
        RealFleet {
            crashes: 0,
            server_errors: 1,
            transport_failures: 1,
            faults_only_on_renewals: true,
            ..RealFleet::new(Scenario::Renewal)
        }
    }

    /// Two replicas find that the server forgot their client; one crash, and a replica
    /// whose operation failed may ask again once.
    pub fn forgotten() -> Self {
        RealFleet {
            retries: 1,
            ..RealFleet::new(Scenario::Forgotten)
        }
    }

    /// Two replicas registered with the authorization server a resource names; the resource
    /// moves to another one (SEP-2352); no crash (with one, the model outgrows a CI run).
    pub fn migration() -> Self {
        RealFleet {
            crashes: 0,
            ..RealFleet::new(Scenario::Migration)
        }
    }

    /// Two replicas find a secret in its renewal window at a server without RFC 7592; one
    /// crash.
    pub fn no_management() -> Self {
        RealFleet::new(Scenario::NoManagement)
    }

    /// Two replicas with DPoP find an access token to refresh whose refresh token is bound
    /// to the stored key, with one crash and one transport failure: every refresh must
    /// prove that key, and the tokens stored must stay bound to the key stored with them.
    pub fn refresh_with_dpop() -> Self {
        RealFleet {
            transport_failures: 1,
            dpop: true,
            ..RealFleet::new(Scenario::Refresh)
        }
    }

    /// Two replicas with DPoP register and ask for their first tokens against an empty store,
    /// with one crash: each process draws a key of its own, and which key is stored and which
    /// one the tokens are bound to must agree.
    pub fn registration_with_dpop() -> Self {
        RealFleet {
            dpop: true,
            ..RealFleet::new(Scenario::Registration)
        }
    }

    /// Three replicas register against a DCR server; no crash, no transport failure.
    pub fn registration_by_three() -> Self {
        RealFleet {
            replicas: 3,
            crashes: 0,
            ..RealFleet::new(Scenario::Registration)
        }
    }

    /// Two replicas renew, then each asks again after the clock crossed the next renewal
    /// window, in the same process; the AS may answer one request with a 503.
    pub fn two_windows() -> Self {
        RealFleet {
            crashes: 0,
            server_errors: 1,
            later_operations: 1,
            ..RealFleet::new(Scenario::Renewal)
        }
    }

    fn new(scenario: Scenario) -> Self {
        RealFleet {
            scenario,
            replicas: 2,
            crashes: 1,
            transport_failures: 0,
            compare_and_swap: true,
            lease_expiry: LeaseExpiry::AfterCrash,
            shared_seed: false,
            revoking_server: false,
            server_errors: 0,
            crash_anywhere: false,
            later_operations: 0,
            stale_reads: false,
            retries: 0,
            forged_callbacks: 0,
            faults_only_on_renewals: false,
            dpop: false,
            store_drops_dpop_key: false,
        }
    }

    /// The operation each process asks for: a login where a user is needed.
    fn operation(&self) -> Operation {
        match self.scenario {
            Scenario::Cimd { .. } => Operation::Login,
            _ => Operation::Token,
        }
    }

    /// The configuration of process `start` of replica `replica`.
    pub fn config(&self, replica: u8, start: u8) -> ClientConfig {
        let mut config = match self.scenario {
            Scenario::Migration => ClientConfig::for_resource("model", RESOURCE),
            _ => ClientConfig::for_issuer("model", ISSUER),
        };
        config = match self.scenario {
            Scenario::Cimd { .. } => config.with_cimd_url(CIMD_URL),
            _ => config
                .with_grant(Grant::ClientCredentials)
                .with_auth_method(AuthMethod::ClientSecretPost),
        };
        if self.dpop {
            config.dpop = DpopMode::IfOffered;
        }
        config.seed = if self.shared_seed {
            [7; 32]
        } else {
            let mut seed = [0; 32];
            seed[0] = replica + 1;
            seed[1] = start;
            seed
        };
        config
    }

    /// The server's behaviour in this scenario.
    fn server(&self) -> Server {
        Server {
            secret_lifetime: match self.scenario {
                Scenario::Renewal | Scenario::NoManagement => Some(60 * 3600),
                _ => None,
            },
            refresh_tokens: self.scenario == Scenario::Refresh,
            // In the renewal scenarios the access token is still good, so the model is about
            // the renewal (or the replacement) alone.
            access_token_lifetime: match self.scenario {
                Scenario::Renewal if !self.revoking_server => 72 * 3600,
                Scenario::NoManagement | Scenario::Migration => 72 * 3600,
                _ => 3600,
            },
            named: (self.scenario == Scenario::Migration).then(|| ISSUER.to_string()),
            revoking: self.revoking_server,
            cimd: match self.scenario {
                Scenario::Cimd { accepted } => Some(accepted),
                _ => None,
            },
            management: self.scenario != Scenario::NoManagement,
            dpop: self.dpop,
            ..Server::default()
        }
    }
}

// ----- the store -----

/// Records and leases by client key (one key, or two once the resource names another
/// authorization server).
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// The records.
    pub records: BTreeMap<ClientKey, Record>,
    /// The lease holders.
    pub leases: BTreeMap<ClientKey, String>,
}

/// What carrying out one store operation did.
struct Applied {
    /// The answer.
    result: StoreResult,
    /// The key it touched.
    key: ClientKey,
    /// `Some(old)` when a write replaced `old`.
    replaced: Option<Option<Record>>,
    /// The write replaced a generation its writer had not named (only without
    /// compare-and-swap).
    stale: bool,
}

impl Store {
    /// Carries out `op`; `None` for an operation the model does not know.
    fn apply(
        &mut self,
        op: &StoreOp,
        compare_and_swap: bool,
        drops_dpop_key: bool,
    ) -> Option<Applied> {
        let applied = |result, key: &ClientKey, replaced, stale| {
            Some(Applied {
                result,
                key: key.clone(),
                replaced,
                stale,
            })
        };
        match op {
            StoreOp::Load { key } => applied(
                StoreResult::Loaded(self.records.get(key).cloned()),
                key,
                None,
                false,
            ),
            StoreOp::CompareAndSwap {
                key,
                expected,
                record,
            } => {
                let current = self.records.get(key).map(|r| r.generation);
                let stale = current != *expected;
                if stale && compare_and_swap {
                    let stored = self.records.get(key).cloned();
                    return applied(StoreResult::Conflict(stored), key, None, false);
                }
                let mut record = (**record).clone();
                if drops_dpop_key {
                    record.dpop_key = None;
                }
                let old = self.records.insert(key.clone(), record);
                applied(StoreResult::Written, key, Some(old), stale)
            }
            StoreOp::Delete { key, expected } => {
                let current = self.records.get(key).map(|r| r.generation);
                let stale = current.is_some_and(|g| g != *expected);
                if stale && compare_and_swap {
                    let stored = self.records.get(key).cloned();
                    return applied(StoreResult::Conflict(stored), key, None, false);
                }
                let old = self.records.remove(key);
                applied(StoreResult::Deleted, key, Some(old), stale)
            }
            StoreOp::TakeLease { key, holder, .. } => match self.leases.get(key) {
                Some(other) if other != holder => applied(StoreResult::LeaseHeld, key, None, false),
                _ => {
                    self.leases.insert(key.clone(), holder.clone());
                    applied(StoreResult::LeaseTaken, key, None, false)
                }
            },
            StoreOp::ReleaseLease { key, holder } => {
                if self.leases.get(key) == Some(holder) {
                    self.leases.remove(key);
                }
                applied(StoreResult::LeaseReleased, key, None, false)
            }
            _ => None,
        }
    }

    /// Whether `holder` holds a lease.
    fn held_by(&self, holder: &str) -> bool {
        self.leases.values().any(|h| h == holder)
    }

    /// Whether a holder other than `holder` holds a lease.
    fn busy_for(&self, holder: &str) -> bool {
        self.leases.values().any(|h| h != holder)
    }

    fn fingerprint(&self, out: &mut String) {
        for (key, record) in &self.records {
            out.push_str(&key.encode());
            out.push_str(&serde_json::to_string(record).unwrap_or_default());
            out.push('|');
        }
        out.push_str(&format!("|leases {:?}|", self.leases));
    }
}

// ----- the authorization server -----

/// A registered client at the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsClient {
    /// The current secret.
    pub secret: String,
    /// Secrets issued before that still work until they expire.
    pub old_secrets: Vec<String>,
    /// Epoch seconds; 0: never.
    pub secret_expires_at: i64,
    /// The current registration access token (rotated by each renewal); empty at a server
    /// without RFC 7592.
    pub rat: String,
    /// Whether the client authenticates with its secret (`false`: a public client,
    /// `token_endpoint_auth_method` `none`).
    pub confidential: bool,
    /// The issuer that registered it.
    pub issuer: String,
}

/// A small authorization server: metadata, RFC 7591 registration, RFC 7592 renewal with
/// rotation of the secret and the registration access token, and a token endpoint for the
/// client-credentials and refresh-token grants (refresh tokens rotate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Server {
    /// Lifetime of issued secrets in seconds; `None`: they never expire.
    pub secret_lifetime: Option<i64>,
    /// Whether token answers carry a refresh token.
    pub refresh_tokens: bool,
    /// `expires_in` of access tokens, in seconds.
    pub access_token_lifetime: i64,
    /// Whether a renewal revokes the old secret at once.
    pub revoking: bool,
    /// CIMD: `None` not supported; `Some(accepted)`: advertised, and the CIMD id accepted
    /// or refused at the token endpoint.
    pub cimd: Option<bool>,
    /// Whether registrations come with RFC 7592 management (a registration access token).
    pub management: bool,
    /// Authorization codes not redeemed yet: code → (client id, PKCE challenge).
    pub codes: BTreeMap<String, (String, String)>,
    /// The authorization server the protected resource names (its metadata, RFC 9728);
    /// `None`: no protected resource.
    pub named: Option<String>,
    /// Registered clients by id.
    pub clients: BTreeMap<String, AsClient>,
    /// The one refresh token that is good now, per client.
    pub refresh: BTreeMap<String, String>,
    /// Serial of the next issued credential.
    pub serial: u32,
    /// Credentials issued whose answer was not stored yet (INV-4).
    pub unpersisted: BTreeSet<String>,
    /// Secrets issued by a renewal.
    pub renewed: BTreeSet<String>,
    /// Access tokens issued by a refresh.
    pub refreshed: BTreeSet<String>,
    /// Access tokens issued to the CIMD client.
    pub cimd_tokens: BTreeSet<String>,
    /// Whether the server offers DPoP (`dpop_signing_alg_values_supported`).
    pub dpop: bool,
    /// The key thumbprint (RFC 7638) each DPoP-bound access or refresh token is bound to.
    pub bound: BTreeMap<String, String>,
}

/// The parts of an HTTP request the server looks at.
pub struct Request<'a> {
    /// Scheme and host: which server it was sent to.
    pub origin: String,
    /// `GET`, `POST` …
    pub method: &'a str,
    /// The URL's path.
    pub path: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `DPoP` header: a proof (RFC 9449 §4).
    pub dpop: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// What one request was, for the history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// RFC 7591 registration that created a client.
    Registration,
    /// RFC 7592 update, by the registration access token it presented.
    Renewal(String),
    /// A refresh-token grant, by the refresh token it presented.
    Refresh(String),
    /// A client-credentials grant.
    ClientCredentials,
    /// An authorization-code grant, by the client id it presented.
    AuthorizationCode(String),
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// The client id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1; the
/// model's credentials need no form-encoding).
fn basic(authorization: Option<&str>) -> Option<(String, String)> {
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The RFC 7638 thumbprint of the public key in a DPoP proof's header, when the proof is a
/// `dpop+jwt` for `POST` to `token_endpoint` whose key has no private part (RFC 9449 §4.2,
/// §4.3). The signature is checked by the core's own tests, with a real verifier.
fn proof_thumbprint(proof: &str, token_endpoint: &str) -> Option<String> {
    let decode = |part: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let mut parts = proof.split('.');
    let (header, claims) = (decode(parts.next()?)?, decode(parts.next()?)?);
    let jwk = header.get("jwk")?;
    if header["typ"] != "dpop+jwt"
        || jwk.get("d").is_some()
        || claims["htm"] != "POST"
        || claims["htu"] != token_endpoint
    {
        return None;
    }
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        member("crv")?,
        member("kty")?,
        member("x")?,
        member("y")?
    );
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)))
}

/// The thumbprint of a stored DPoP key, remembered: deriving the public key is the costliest
/// step of a property check, and the models meet the same few keys in every state.
fn stored_thumbprint(key: &tenure_core::DpopKey) -> Option<String> {
    thread_local! {
        static SEEN: std::cell::RefCell<BTreeMap<String, Option<String>>> =
            const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    let secret = key.secret().expose().to_string();
    SEEN.with(|seen| {
        seen.borrow_mut()
            .entry(secret)
            .or_insert_with(|| key.thumbprint().ok())
            .clone()
    })
}

/// Whether every DPoP-bound token in the store is stored with the key it is bound to.
fn dpop_binding_kept(state: &State) -> bool {
    state.store.records.values().all(|record| {
        let Some(tokens) = &record.tokens else {
            return true;
        };
        let Some(bound) = state.server.bound.get(tokens.access_token.expose()) else {
            return true;
        };
        record
            .dpop_key
            .as_ref()
            .and_then(stored_thumbprint)
            .is_some_and(|stored| stored == *bound)
    })
}

/// The S256 PKCE challenge of `verifier` (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn oauth_error(status: u16, error: &str) -> (u16, Value) {
    (status, json!({ "error": error }))
}

impl Server {
    fn issue(&mut self, prefix: &str) -> String {
        self.serial += 1;
        let credential = format!("{prefix}-{}", self.serial);
        self.unpersisted.insert(credential.clone());
        credential
    }

    fn expiry(&self, now: Timestamp) -> i64 {
        self.secret_lifetime
            .map_or(0, |lifetime| now.unix_seconds() + lifetime)
    }

    fn client_information(&self, client_id: &str, metadata: Map<String, Value>) -> Value {
        let client = &self.clients[client_id];
        let mut answer = metadata;
        answer.insert("client_id".into(), json!(client_id));
        if client.confidential {
            answer.insert("client_secret".into(), json!(client.secret));
            answer.insert(
                "client_secret_expires_at".into(),
                json!(client.secret_expires_at),
            );
        }
        if self.management {
            answer.insert("registration_access_token".into(), json!(client.rat));
            answer.insert(
                "registration_client_uri".into(),
                json!(format!("{}/register/{client_id}", client.issuer)),
            );
        }
        Value::Object(answer)
    }

    /// Answers one request at `now`: the status, the JSON body, and what the request was.
    fn answer(
        &mut self,
        now: Timestamp,
        request: &Request<'_>,
        flags: &mut Flags,
    ) -> (u16, Value, Option<Kind>) {
        let path = request.path;
        let bearer = request
            .authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        if let Some(token) = &bearer {
            if self.unpersisted.contains(token) {
                flags.used_before_stored = true;
            }
        }
        let issuer = request.origin.as_str();
        if RESOURCE.starts_with(issuer) {
            // The protected resource answers its metadata only.
            return match (&self.named, format!("{issuer}{path}") == RESOURCE_METADATA) {
                (Some(named), true) => (
                    200,
                    json!({"resource": RESOURCE, "authorization_servers": [named]}),
                    None,
                ),
                _ => (404, json!({"error": "not_found"}), None),
            };
        }
        match (request.method, path) {
            ("GET", "/.well-known/oauth-authorization-server") => {
                let mut metadata = json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{issuer}/authorize"),
                    "token_endpoint": format!("{issuer}/token"),
                    "registration_endpoint": format!("{issuer}/register"),
                    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
                    "code_challenge_methods_supported": ["S256"],
                    "response_types_supported": ["code"],
                });
                if self.cimd.is_some() {
                    metadata["client_id_metadata_document_supported"] = json!(true);
                }
                if self.dpop {
                    metadata["dpop_signing_alg_values_supported"] = json!(["ES256"]);
                }
                (200, metadata, None)
            }
            ("POST", "/register") => {
                let Ok(Value::Object(metadata)) = serde_json::from_slice(request.body) else {
                    let (s, b) = oauth_error(400, "invalid_client_metadata");
                    return (s, b, None);
                };
                let client_id = self.issue("client");
                self.unpersisted.remove(&client_id);
                let confidential =
                    metadata.get("token_endpoint_auth_method") != Some(&json!("none"));
                let client = AsClient {
                    secret: if confidential {
                        self.issue("secret")
                    } else {
                        String::new()
                    },
                    old_secrets: Vec::new(),
                    secret_expires_at: if confidential { self.expiry(now) } else { 0 },
                    rat: if self.management {
                        self.issue("rat")
                    } else {
                        String::new()
                    },
                    confidential,
                    issuer: issuer.to_string(),
                };
                self.clients.insert(client_id.clone(), client);
                let body = self.client_information(&client_id, metadata);
                (201, body, Some(Kind::Registration))
            }
            ("PUT", _) if path.starts_with("/register/") => {
                let client_id = path["/register/".len()..].to_string();
                let presented = bearer.unwrap_or_default();
                let kind = Some(Kind::Renewal(presented.clone()));
                let Some(client) = self.clients.get(&client_id) else {
                    let (s, b) = oauth_error(401, "invalid_token");
                    return (s, b, kind);
                };
                if client.issuer != issuer {
                    flags.foreign_credentials = true;
                    let (s, b) = oauth_error(401, "invalid_token");
                    return (s, b, kind);
                }
                if client.rat.is_empty() || client.rat != presented {
                    let (s, b) = oauth_error(401, "invalid_token");
                    return (s, b, kind);
                }
                let Ok(Value::Object(mut metadata)) = serde_json::from_slice(request.body) else {
                    let (s, b) = oauth_error(400, "invalid_client_metadata");
                    return (s, b, kind);
                };
                metadata.remove("client_secret");
                let secret = self.issue("secret");
                let rat = self.issue("rat");
                let expires_at = self.expiry(now);
                self.renewed.insert(secret.clone());
                if let Some(client) = self.clients.get_mut(&client_id) {
                    let old = std::mem::replace(&mut client.secret, secret);
                    client.old_secrets.push(old);
                    client.secret_expires_at = expires_at;
                    client.rat = rat;
                }
                let body = self.client_information(&client_id, metadata);
                (200, body, kind)
            }
            ("POST", "/token") => {
                let mut form = form(request.body);
                if let Some((id, secret)) = basic(request.authorization) {
                    form.insert("client_id".into(), id);
                    form.insert("client_secret".into(), secret);
                }
                let jkt = match request.dpop {
                    Some(proof) if self.dpop => {
                        let jkt = proof_thumbprint(proof, &format!("{issuer}/token"));
                        if jkt.is_none() {
                            flags.dpop_proof_malformed = true;
                        }
                        jkt
                    }
                    _ => None,
                };
                self.token(now, issuer, &form, jkt, flags)
            }
            _ => (404, json!({"error": "not_found"}), None),
        }
    }

    /// The authorization endpoint and the user: every authorization request is approved at
    /// once, with a code bound to the client id and the PKCE challenge. The query the
    /// browser brings back to the callback.
    fn authorize(&mut self, url: &str) -> String {
        let Ok(url) = url::Url::parse(url) else {
            return "error=invalid_request".into();
        };
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        self.serial += 1;
        let code = format!("code-{}", self.serial);
        self.codes
            .insert(code.clone(), (param("client_id"), param("code_challenge")));
        let state = param("state");
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &state)
            .finish()
    }

    fn token(
        &mut self,
        now: Timestamp,
        issuer: &str,
        form: &BTreeMap<String, String>,
        jkt: Option<String>,
        flags: &mut Flags,
    ) -> (u16, Value, Option<Kind>) {
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        let secret = form.get("client_secret").cloned().unwrap_or_default();
        let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
        let kind = match grant {
            "refresh_token" => {
                Kind::Refresh(form.get("refresh_token").cloned().unwrap_or_default())
            }
            "authorization_code" => Kind::AuthorizationCode(client_id.clone()),
            _ => Kind::ClientCredentials,
        };
        if client_id == CIMD_URL {
            // A CIMD client is public; the server fetched (or failed to fetch) its document.
            return match self.cimd {
                Some(true) => self.grant(&client_id, &kind, grant, form, jkt, flags),
                _ => {
                    let (s, b) = oauth_error(401, "invalid_client");
                    (s, b, Some(kind))
                }
            };
        }
        if self.unpersisted.contains(&secret) {
            flags.used_before_stored = true;
        }
        if let Kind::Refresh(token) = &kind {
            if self.unpersisted.contains(token) {
                flags.used_before_stored = true;
            }
        }
        let Some(client) = self.clients.get(&client_id) else {
            let (s, b) = oauth_error(401, "invalid_client");
            return (s, b, Some(kind));
        };
        if client.issuer != issuer {
            // INV-7: credentials registered with one server presented to another.
            flags.foreign_credentials = true;
            let (s, b) = oauth_error(401, "invalid_client");
            return (s, b, Some(kind));
        }
        let known = !client.confidential
            || client.secret == secret
            || (!self.revoking && client.old_secrets.contains(&secret));
        let expired = client.confidential
            && client.secret_expires_at != 0
            && now.unix_seconds() >= client.secret_expires_at
            && client.secret == secret;
        if expired {
            flags.expired_secret_sent = true;
        }
        if !known || expired {
            let (s, b) = oauth_error(401, "invalid_client");
            return (s, b, Some(kind));
        }
        self.grant(&client_id, &kind, grant, form, jkt, flags)
    }

    /// The token endpoint once the client is authenticated: checks the grant itself and
    /// issues tokens.
    fn grant(
        &mut self,
        client_id: &str,
        kind: &Kind,
        grant: &str,
        form: &BTreeMap<String, String>,
        jkt: Option<String>,
        flags: &mut Flags,
    ) -> (u16, Value, Option<Kind>) {
        if let Kind::Refresh(token) = kind {
            // RFC 9449 §5: a bound refresh token is only good with a proof of its key.
            if let Some(bound) = self.bound.get(token) {
                if jkt.as_ref() != Some(bound) {
                    flags.dpop_key_switched = true;
                    let (s, b) = oauth_error(400, "invalid_grant");
                    return (s, b, Some(kind.clone()));
                }
            }
        }
        let refused = match kind {
            Kind::Refresh(token) if self.refresh.get(client_id) != Some(token) => {
                Some("invalid_grant")
            }
            Kind::Refresh(_) => None,
            Kind::AuthorizationCode(_) => {
                let code = form.get("code").cloned().unwrap_or_default();
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                if code == FORGED_CODE {
                    flags.forged_code_used = true;
                }
                match self.codes.remove(&code) {
                    Some((id, challenge)) if id == client_id && challenge == s256(&verifier) => {
                        None
                    }
                    _ => {
                        flags.pkce_unproven = true;
                        Some("invalid_grant")
                    }
                }
            }
            _ if grant != "client_credentials" => Some("unsupported_grant_type"),
            _ => None,
        };
        if let Some(error) = refused {
            let (s, b) = oauth_error(400, error);
            return (s, b, Some(kind.clone()));
        }
        let access_token = self.issue("access");
        if matches!(kind, Kind::Refresh(_)) {
            self.refreshed.insert(access_token.clone());
        }
        if client_id == CIMD_URL {
            self.cimd_tokens.insert(access_token.clone());
        }
        let mut body = json!({
            "access_token": access_token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": self.access_token_lifetime,
        });
        if let Some(jkt) = &jkt {
            self.bound.insert(access_token.clone(), jkt.clone());
        }
        if self.refresh_tokens {
            let refresh = self.issue("refresh");
            self.refresh.insert(client_id.to_string(), refresh.clone());
            if let Some(jkt) = &jkt {
                self.bound.insert(refresh.clone(), jkt.clone());
            }
            body["refresh_token"] = json!(refresh);
        }
        (200, body, Some(kind.clone()))
    }
}

/// Safety flags raised while answering.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// A credential was presented before the answer that carried it was stored (INV-4).
    pub used_before_stored: bool,
    /// An expired secret reached the token endpoint (INV-5).
    pub expired_secret_sent: bool,
    /// A write was applied over a generation its writer had not read (INV-9).
    pub stale_write: bool,
    /// A write dropped or rolled back a secret the server still accepts (INV-9).
    pub secret_lost: bool,
    /// A write erased or replaced a refresh token the server still accepts with one it does
    /// not (INV-10).
    pub token_lost: bool,
    /// An access token was handed out before it was stored (INV-4).
    pub token_handed_out_unstored: bool,
    /// A write stored the CIMD id as a DCR client id, or removed a stored CIMD id (INV-2).
    pub cimd_misstored: bool,
    /// A write cleared a stored rejection of the CIMD id (INV-9, finding F2).
    pub cimd_unrejected: bool,
    /// A code exchange did not prove the PKCE challenge its code was issued for (INV-11).
    pub pkce_unproven: bool,
    /// A code exchange presented the code of a forged callback (INV-11).
    pub forged_code_used: bool,
    /// An event or a client's `Debug` output showed a credential (INV-12).
    pub credential_shown: bool,
    /// A client id, secret or RAT registered with one server reached another (INV-7).
    pub foreign_credentials: bool,
    /// A bound refresh token was presented without a proof of the key it is bound to
    /// (RFC 9449 §5): a replica lost or replaced the key, and the user would be logged out.
    pub dpop_key_switched: bool,
    /// A DPoP proof at the token endpoint was not a `dpop+jwt` for `POST` to it with a
    /// public key.
    pub dpop_proof_malformed: bool,
}

// ----- history -----

/// A request that changed or could have changed something at the server, and its sender.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// What it was.
    pub kind: Kind,
    /// The process that sent it: (replica, start).
    pub origin: (u8, u8),
    /// Its sender crashed before storing what it learned, or it was sent by a process that
    /// had crashed: nobody can know whether it was acted on, so a repetition is excused.
    pub lost: bool,
    /// Its sender has stored a record (or ended its operation) since.
    pub settled: bool,
    /// The server answered with success.
    pub succeeded: bool,
}

/// What happened so far; only grows, except for attempts settling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Every registration, renewal and token request that reached the server.
    pub attempts: Vec<Attempt>,
    /// Safety flags.
    pub flags: Flags,
    /// Registrations stored.
    pub registered: bool,
    /// Renewed secrets stored.
    pub renewed: bool,
    /// Refreshed tokens stored.
    pub refreshed: bool,
    /// A registration stored next to a rejected CIMD id: the fallback to DCR.
    pub fell_back: bool,
    /// Tokens obtained with the CIMD id stored.
    pub cimd_used: bool,
    /// A registration other than the one the model started with stored.
    pub replaced: bool,
    /// A renewed secret stored after the clock moved on by [`LATER`].
    pub renewed_later: bool,
    /// A forged callback reached a replica.
    pub forged: bool,
    /// A renewal request failed (503 or transport) before the secret expired.
    pub renewal_failed: bool,
    /// A warning event was emitted.
    pub warned: bool,
    /// The resource now names [`SECOND_ISSUER`].
    pub migrated: bool,
    /// A registration with [`SECOND_ISSUER`] stored.
    pub registered_at_second: bool,
    /// A replica crashed with an unsettled attempt.
    pub crashed_mid_attempt: bool,
    /// The AS carried out a request whose answer was lost.
    pub answer_lost: bool,
    /// Transport failures so far.
    pub transport_failures: u8,
    /// 503 answers so far.
    pub server_errors: u8,
    /// Crashes so far.
    pub crashes: u8,
}

// ----- replicas and the state -----

/// One replica: the current process's `Client` and what it sent that was not carried out.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The real machine.
    pub client: Client,
    /// Commands emitted and not carried out yet.
    pub outbox: Vec<Command>,
    /// Which process start this is (0 first).
    pub start: u8,
    /// How the operation ended, if it did.
    pub outcome: Option<String>,
    /// Operations asked of this process so far.
    pub operations: u8,
    /// Failed operations asked again so far (by this replica, across its processes).
    pub retried: u8,
    /// A digest of all of the above, kept up to date by the model.
    pub digest: u64,
}

impl Replica {
    /// Moves the commands the client emitted into the outbox; events are dropped (used
    /// where nobody observes them: a process's start and the setup run).
    fn take_commands(&mut self) {
        let client = &mut self.client;
        self.outbox.extend(
            std::iter::from_fn(|| client.poll_command()).filter(|c| !matches!(c, Command::Emit(_))),
        );
    }

    /// Recomputes the digest after a change.
    fn seal(&mut self) {
        let mut out = format!(
            "start {} outcome {:?} ops {} retried {} {:?}|",
            self.start, self.outcome, self.operations, self.retried, self.client
        );
        match self.client.record() {
            Some(record) => out.push_str(&serde_json::to_string(record).unwrap_or_default()),
            None => out.push_str("none"),
        }
        out.push('|');
        for command in &self.outbox {
            render_command(command, &mut out);
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        out.hash(&mut hasher);
        self.digest = hasher.finish();
    }
}

/// A state of the model.
#[derive(Clone, Debug)]
pub struct State {
    /// The clock.
    pub now: Timestamp,
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// The store.
    pub store: Store,
    /// The authorization server.
    pub server: Server,
    /// Commands of crashed processes that may still be carried out: (origin, command).
    pub orphans: Vec<((u8, u8), Command)>,
    /// History for the properties.
    pub history: History,
    /// The client id the model started with (renewal, refresh, forgotten, no management).
    pub first_client: Option<String>,
    /// With [`RealFleet::stale_reads`]: the record each process last saw (loaded, written,
    /// or handed back by a conflict).
    pub snapshots: BTreeMap<(u8, u8), Option<Record>>,
}

/// Everything a command says, secrets included (its `Debug` redacts them).
fn render_command(command: &Command, out: &mut String) {
    match command {
        Command::Http { kind, request, .. } => {
            out.push_str(&format!(
                "http {kind:?} {} {} ",
                request.method(),
                request.uri()
            ));
            for (name, value) in request.headers() {
                out.push_str(&format!(
                    "{name}={} ",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            out.push_str(&String::from_utf8_lossy(request.body()));
        }
        Command::Store {
            op: StoreOp::CompareAndSwap {
                expected, record, ..
            },
            ..
        } => out.push_str(&format!(
            "cas {expected:?} {}",
            serde_json::to_string(record).unwrap_or_default()
        )),
        other => out.push_str(&format!("{other:?}")),
    }
    out.push(';');
}

impl State {
    /// A canonical text of everything that can influence what happens next. See
    /// `MODELS.md` ("State abstraction") for why it is enough.
    pub fn fingerprint(&self) -> String {
        let mut out = format!("now {}|", self.now.unix_seconds());
        for replica in &self.replicas {
            out.push_str(&format!("{}|", replica.digest));
        }
        self.store.fingerprint(&mut out);
        out.push_str(&format!("{:?}|", self.server));
        for (origin, command) in &self.orphans {
            out.push_str(&format!("{origin:?}"));
            render_command(command, &mut out);
        }
        for (origin, record) in &self.snapshots {
            let text = serde_json::to_string(record).unwrap_or_default();
            out.push_str(&format!("snapshot {origin:?} {text}|"));
        }
        out.push_str(&format!("{:?}", self.history));
        out
    }
}

impl Hash for State {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint().hash(state);
    }
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

impl Eq for State {}

/// A step the checker can take.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Carry out the `index`th pending command of `replica` and hand it the answer.
    Deliver {
        /// The replica.
        replica: u8,
        /// Which command.
        index: usize,
    },
    /// The `index`th pending command of `replica`, an HTTP request, fails in transport; the
    /// AS carried it out first when `applied` (the answer was lost).
    Fail {
        /// The replica.
        replica: u8,
        /// Which command.
        index: usize,
        /// Whether the AS carried it out.
        applied: bool,
    },
    /// The AS answers the `index`th pending command of `replica`, an HTTP request, with a
    /// 503 without acting on it.
    ServerError {
        /// The replica.
        replica: u8,
        /// Which command.
        index: usize,
    },
    /// Carry out the `index`th command of a crashed process; nobody hears the answer.
    DeliverOrphan(usize),
    /// A forged callback reaches `replica`, which waits for its browser: another `state`
    /// and an attacker's code (a local process that found the callback port).
    ForgeCallback(u8),
    /// The clock moves on by [`LATER`] and the replica, whose operation ended with a
    /// token, asks for another one.
    Later(u8),
    /// The clock moves on by [`RETRY_AFTER`] and the replica, whose operation failed, asks
    /// again.
    Retry(u8),
    /// The protected resource's metadata names [`SECOND_ISSUER`] from now on.
    Migrate,
    /// The resource refuses the replica's token with a challenge naming its metadata; the
    /// replica, whose operation ended with a token, asks for a token again.
    Challenge(u8),
    /// Move the clock to the replica's deadline and tick it.
    Tick(u8),
    /// The replica's process crashes and a new one starts from the store.
    Crash(u8),
    /// The lease lapses.
    LeaseExpires,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The credentials a record holds, secrets exposed.
fn credentials(record: &Record) -> BTreeSet<String> {
    record
        .secrets()
        .into_iter()
        .map(|s| s.expose().to_string())
        .chain(record.dcr.as_ref().map(|r| r.client_id.clone()))
        .collect()
}

/// Whether `text` shows a credential the model's AS issues (`secret-N`, `rat-N`,
/// `refresh-N`, `access-N`, `code-N`); client ids are not secret.
fn shows_a_credential(text: &str) -> bool {
    ["secret-", "rat-", "refresh-", "access-", "code-"]
        .iter()
        .any(|prefix| {
            text.match_indices(prefix).any(|(at, _)| {
                let rest = &text[at + prefix.len()..];
                // `client_secret-…` or a word that merely ends in the prefix is not a value.
                let starts_a_word = text[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '_');
                starts_a_word && rest.starts_with(|c: char| c.is_ascii_digit())
            })
        })
}

/// The serial number of a credential this server issued (`prefix-N`).
fn serial(credential: &str) -> u32 {
    credential
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl RealFleet {
    /// Starts process `start` of `replica` with one operation.
    fn boot(&self, replica: u8, start: u8, now: Timestamp) -> Replica {
        let mut client = Client::new(self.config(replica, start));
        client.handle(now, Input::Start { stored: None });
        client.handle(
            now,
            Input::Operation {
                id: OpId(1),
                op: self.operation(),
            },
        );
        let mut replica = Replica {
            client,
            outbox: Vec::new(),
            start,
            outcome: None,
            operations: 1,
            retried: 0,
            digest: 0,
        };
        replica.take_commands();
        replica.seal();
        replica
    }

    /// Runs one client alone until its operation ends, to build the starting store and
    /// server of a scenario.
    fn setup(&self, state: &mut State) {
        let mut replica = self.boot(200, 0, state.now);
        for _ in 0..100 {
            if replica.outbox.is_empty() {
                break;
            }
            let command = replica.outbox.remove(0);
            let mut flags = Flags::default();
            if let Some(input) = self.carry_out(state, &command, &mut flags, None) {
                replica.client.handle(state.now, input);
            }
            replica.take_commands();
        }
        // A setup that did not finish would start every model from a wrong state, silently.
        assert!(
            replica.outbox.is_empty(),
            "the setup run did not finish in 100 steps"
        );
        state.store.leases.clear();
        state.server.unpersisted.clear();
        state.history = History::default();
    }

    /// Carries out `command` against the store or the server; the input that answers it.
    /// `origin`: the live process that sent it, `None` for a crashed one.
    fn carry_out(
        &self,
        state: &mut State,
        command: &Command,
        flags: &mut Flags,
        origin: Option<(u8, u8)>,
    ) -> Option<Input> {
        match command {
            Command::Http { id, request, .. } => {
                let path = request.uri().path().to_string();
                let server = format!(
                    "{}://{}",
                    request.uri().scheme_str().unwrap_or("https"),
                    request.uri().host().unwrap_or_default()
                );
                let parts = Request {
                    origin: server,
                    method: request.method().as_str(),
                    path: &path,
                    authorization: request
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok()),
                    dpop: request.headers().get("dpop").and_then(|v| v.to_str().ok()),
                    body: request.body(),
                };
                let (status, body, kind) = state.server.answer(state.now, &parts, flags);
                if let Some(kind) = kind {
                    state.history.attempts.push(Attempt {
                        kind,
                        origin: origin.unwrap_or((u8::MAX, u8::MAX)),
                        lost: origin.is_none(),
                        settled: false,
                        succeeded: status < 300,
                    });
                }
                let mut input = Input::HttpResponse {
                    id: *id,
                    response: Default::default(),
                };
                if let Input::HttpResponse { response, .. } = &mut input {
                    *response.status_mut() = status.try_into().ok()?;
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".try_into().ok()?);
                    *response.body_mut() = body.to_string().into_bytes();
                }
                Some(input)
            }
            Command::OpenBrowser { url } => Some(Input::Callback {
                query: state.server.authorize(url),
            }),
            Command::Store {
                id,
                op: op @ StoreOp::Load { .. },
            } if self.stale_reads && self.holds_lease(state, origin) => {
                // Broken on purpose: the re-read under the lease sees only what this process
                // saw before it took the lease.
                let StoreOp::Load { key } = op else {
                    return None;
                };
                let seen = origin.and_then(|o| state.snapshots.get(&o).cloned());
                let record = seen.unwrap_or_else(|| state.store.records.get(key).cloned());
                Some(Input::Store {
                    id: *id,
                    result: StoreResult::Loaded(record),
                })
            }
            Command::Store { id, op } => {
                let Some(Applied {
                    result,
                    key,
                    replaced,
                    stale,
                }) = state
                    .store
                    .apply(op, self.compare_and_swap, self.store_drops_dpop_key)
                else {
                    let error = "the model store does not know this operation".to_string();
                    return Some(Input::Store {
                        id: *id,
                        result: StoreResult::Failed(error),
                    });
                };
                if let (true, Some(origin)) = (self.stale_reads, origin) {
                    let seen = match (&result, op) {
                        (StoreResult::Loaded(record) | StoreResult::Conflict(record), _) => {
                            Some(record.clone())
                        }
                        (StoreResult::Written, StoreOp::CompareAndSwap { record, .. }) => {
                            Some(Some((**record).clone()))
                        }
                        (StoreResult::Deleted, _) => Some(None),
                        _ => None,
                    };
                    if let Some(seen) = seen {
                        state.snapshots.insert(origin, seen);
                    }
                }
                if let Some(old) = replaced {
                    flags.stale_write |= stale;
                    self.check_write(state, &key, old.as_ref(), flags);
                    if let Some(origin) = origin {
                        for attempt in &mut state.history.attempts {
                            if attempt.origin == origin {
                                attempt.settled = true;
                            }
                        }
                    }
                }
                Some(Input::Store { id: *id, result })
            }
            _ => None,
        }
    }

    /// Whether the live process `origin` holds the lease.
    fn holds_lease(&self, state: &State, origin: Option<(u8, u8)>) -> bool {
        origin.is_some_and(|(replica, start)| {
            let replica = &state.replicas[replica as usize];
            replica.start == start && state.store.held_by(replica.client.holder())
        })
    }

    /// Judges a write that replaced `old` by what the store holds now.
    fn check_write(
        &self,
        state: &mut State,
        key: &ClientKey,
        old: Option<&Record>,
        flags: &mut Flags,
    ) {
        let new = state.store.records.get(key);
        if let Some(new) = new {
            for credential in credentials(new) {
                state.server.unpersisted.remove(&credential);
            }
        }
        // INV-9: a secret the server still accepts is neither dropped nor rolled back.
        if let Some(old_dcr) = old.and_then(|r| r.dcr.as_ref()) {
            if let Some(client) = state.server.clients.get(&old_dcr.client_id) {
                let old_secret = old_dcr
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .unwrap_or_default();
                let accepted = client.confidential && client.secret == old_secret;
                // Kept: the same client with this secret or a newer one, or a replacement
                // client registered after it (a deliberate move, counted by INV-1).
                let kept = new.and_then(|r| r.dcr.as_ref()).is_some_and(|d| {
                    if d.client_id == old_dcr.client_id {
                        d.client_secret
                            .as_ref()
                            .is_some_and(|s| serial(s.expose()) >= serial(&old_secret))
                    } else {
                        serial(&d.client_id) > serial(&old_dcr.client_id)
                    }
                });
                if accepted && !kept {
                    flags.secret_lost = true;
                }
            }
        }
        // INV-10: a refresh token the server still accepts is not erased or replaced by one
        // it does not accept.
        let refresh = |r: Option<&Record>| {
            r.and_then(|r| r.tokens.as_ref())
                .and_then(|t| t.refresh_token.as_ref())
                .map(|t| t.expose().to_string())
        };
        if let Some(old_token) = refresh(old) {
            let live = state.server.refresh.values().any(|t| *t == old_token);
            let new_token = refresh(new);
            let new_live = new_token
                .as_ref()
                .is_some_and(|t| state.server.refresh.values().any(|c| c == t));
            if live && !new_live {
                flags.token_lost = true;
            }
        }
        // INV-2: the CIMD id is kept apart from DCR credentials and never removed; INV-9: a
        // stored rejection of it is never undone.
        let cimd = |r: Option<&Record>| r.and_then(|r| r.cimd.as_ref()).map(|c| c.rejected);
        if new
            .and_then(|r| r.dcr.as_ref())
            .is_some_and(|d| d.client_id == CIMD_URL)
            || (cimd(old).is_some() && cimd(new).is_none())
        {
            flags.cimd_misstored = true;
        }
        if cimd(old) == Some(true) && cimd(new) != Some(true) {
            flags.cimd_unrejected = true;
        }
        if let Some(new) = new {
            if new.dcr.is_some() && new.key.issuer == SECOND_ISSUER {
                state.history.registered_at_second = true;
            }
            if new.dcr.is_some() {
                state.history.registered = true;
                if cimd(Some(new)) == Some(true) {
                    state.history.fell_back = true;
                }
            }
            if let (Some(dcr), Some(first)) = (&new.dcr, &state.first_client) {
                state.history.replaced |= dcr.client_id != *first;
            }
            if cimd(Some(new)) == Some(false)
                && new.dcr.is_none()
                && new
                    .tokens
                    .as_ref()
                    .is_some_and(|t| state.server.cimd_tokens.contains(t.access_token.expose()))
            {
                state.history.cimd_used = true;
            }
            if let Some(secret) = new.dcr.as_ref().and_then(|d| d.client_secret.as_ref()) {
                if state.server.renewed.contains(secret.expose()) {
                    state.history.renewed = true;
                    state.history.renewed_later |= state.now >= T0 + LATER;
                }
            }
            if let Some(tokens) = &new.tokens {
                if state
                    .server
                    .refreshed
                    .contains(tokens.access_token.expose())
                {
                    state.history.refreshed = true;
                }
            }
        }
    }

    /// The clock moves on by `wait`, and `replica`'s process asks for another operation.
    fn ask_again(&self, state: &mut State, replica: u8, wait: Duration) {
        let r = replica as usize;
        state.now = state.now + wait;
        let now = state.now;
        let target = &mut state.replicas[r];
        target.operations += 1;
        target.outcome = None;
        let id = OpId(u64::from(target.operations));
        let op = self.operation();
        target.client.handle(now, Input::Operation { id, op });
        self.collect(state, r);
    }

    fn collect(&self, state: &mut State, index: usize) {
        let replica = &mut state.replicas[index];
        let commands: Vec<Command> = std::iter::from_fn(|| replica.client.poll_command()).collect();
        for command in commands {
            match command {
                Command::Emit(event) => {
                    // INV-12: what the embedder is told never shows a credential.
                    let mut shown = format!("{event:?}");
                    if let tenure_core::Event::Failed { error, .. } = &event {
                        shown.push_str(&error.to_string());
                    }
                    if let tenure_core::Event::Warning(text) = &event {
                        state.history.warned = true;
                        shown.push_str(text);
                    }
                    if shows_a_credential(&shown) {
                        state.history.flags.credential_shown = true;
                    }
                    if let Some((_, outcome)) = event.ending() {
                        if let tenure_core::Outcome::Token { access_token, .. } = &outcome {
                            if state.server.unpersisted.contains(access_token.expose()) {
                                state.history.flags.token_handed_out_unstored = true;
                            }
                        }
                        let text = match &outcome {
                            tenure_core::Outcome::Token { .. } => "token".to_string(),
                            other => format!("{other:?}"),
                        };
                        let origin = (index as u8, state.replicas[index].start);
                        for attempt in &mut state.history.attempts {
                            if attempt.origin == origin {
                                attempt.settled = true;
                            }
                        }
                        state.replicas[index].outcome = Some(text);
                    }
                }
                command => state.replicas[index].outbox.push(command),
            }
        }
        state.replicas[index].seal();
        if shows_a_credential(&format!("{:?}", state.replicas[index].client)) {
            state.history.flags.credential_shown = true;
        }
    }
}

impl Model for RealFleet {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut state = State {
            now: T0,
            replicas: Vec::new(),
            store: Store::default(),
            server: self.server(),
            orphans: Vec::new(),
            history: History::default(),
            first_client: None,
            snapshots: BTreeMap::new(),
        };
        if !matches!(
            self.scenario,
            Scenario::Registration | Scenario::Cimd { .. }
        ) {
            // Registered (and the secret issued) 48 h before T0; the access token expired
            // 47 h before T0 (refresh, forgotten) or is still good (renewal, no management).
            state.now = T0 - Duration::from_hours(48);
            self.setup(&mut state);
            state.now = T0;
            state.first_client = state.server.clients.keys().next().cloned();
        }
        if self.scenario == Scenario::Forgotten {
            state.server.clients.clear();
            state.server.refresh.clear();
        }
        for replica in 0..self.replicas {
            state.replicas.push(self.boot(replica, 0, state.now));
        }
        vec![state]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for (r, replica) in state.replicas.iter().enumerate() {
            for (index, command) in replica.outbox.iter().enumerate() {
                actions.push(Action::Deliver {
                    replica: r as u8,
                    index,
                });
                let faultable = match command {
                    Command::Http { kind, .. } => {
                        !self.faults_only_on_renewals || *kind == RequestKind::RegistrationUpdate
                    }
                    _ => false,
                };
                if faultable && state.history.transport_failures < self.transport_failures {
                    for applied in [false, true] {
                        actions.push(Action::Fail {
                            replica: r as u8,
                            index,
                            applied,
                        });
                    }
                }
                if faultable && state.history.server_errors < self.server_errors {
                    actions.push(Action::ServerError {
                        replica: r as u8,
                        index,
                    });
                }
            }
            // Requests take seconds, not days: the clock does not jump under a request in
            // flight (the AS judges expiry when a request arrives).
            let in_flight = state
                .replicas
                .iter()
                .any(|r| r.outbox.iter().any(|c| matches!(c, Command::Http { .. })));
            if replica.client.awaits_callback()
                && replica.outcome.is_none()
                && u8::from(state.history.forged) < self.forged_callbacks
            {
                actions.push(Action::ForgeCallback(r as u8));
            }
            let token = replica.outcome.as_deref() == Some("token");
            if token && replica.operations <= self.later_operations && !in_flight {
                actions.push(Action::Later(r as u8));
            }
            if state.history.migrated && token && replica.operations == 1 {
                actions.push(Action::Challenge(r as u8));
            }
            if replica.outcome.is_some() && !token && replica.retried < self.retries && !in_flight {
                actions.push(Action::Retry(r as u8));
            }
            // A replica waits for time only while the lease is busy. Ticking it while another
            // process still holds the lease only repeats a refused `TakeLease` and moves the
            // clock by a second, which no decision here depends on; so it is ticked once the
            // lease is free (a dead holder's lease lapses by `LeaseExpires`; see `MODELS.md`).
            let busy = state.store.busy_for(replica.client.holder());
            // The model's user always completes the browser step in time: a replica waiting
            // for its callback is not ticked to its callback timeout.
            if replica.client.poll_timeout().is_some() && !busy && !replica.client.awaits_callback()
            {
                actions.push(Action::Tick(r as u8));
            }
            // A replica crashes while it holds the lease, after the server answered a
            // registration, renewal or token request and before the answer is stored, or with
            // a write in flight: the crashes that can lose what the server did, and leave a
            // lease to lapse and a late write to arrive. (A bound on the model, see
            // `MODELS.md`.)
            let holds = state.store.held_by(replica.client.holder());
            let origin = (r as u8, replica.start);
            let mid_request = state
                .history
                .attempts
                .iter()
                .any(|a| a.origin == origin && !a.settled);
            let writing = replica.outbox.iter().any(|c| {
                matches!(
                    c,
                    Command::Store {
                        op: StoreOp::CompareAndSwap { .. },
                        ..
                    }
                )
            });
            if state.history.crashes < self.crashes
                && replica.outcome.is_none()
                && (self.crash_anywhere || (holds && (mid_request || writing)))
            {
                actions.push(Action::Crash(r as u8));
            }
        }
        for index in 0..state.orphans.len() {
            actions.push(Action::DeliverOrphan(index));
        }
        if self.scenario == Scenario::Migration && !state.history.migrated {
            actions.push(Action::Migrate);
        }
        let lapses = state.store.leases.values().any(|holder| {
            let live = state
                .replicas
                .iter()
                .any(|r| r.client.holder() == holder && r.outcome.is_none());
            self.lease_expiry == LeaseExpiry::AnyTime || !live
        });
        if lapses {
            actions.push(Action::LeaseExpires);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        let mut flags = state.history.flags.clone();
        match action {
            Action::Deliver { replica, index } => {
                let r = replica as usize;
                let command = state.replicas[r].outbox.remove(index);
                state.replicas[r].seal();
                let origin = (replica, state.replicas[r].start);
                if let Some(input) = self.carry_out(&mut state, &command, &mut flags, Some(origin))
                {
                    let now = state.now;
                    state.replicas[r].client.handle(now, input);
                }
                self.collect(&mut state, r);
            }
            Action::Fail {
                replica,
                index,
                applied,
            } => {
                let r = replica as usize;
                let command = state.replicas[r].outbox.remove(index);
                state.replicas[r].seal();
                state.history.transport_failures += 1;
                let Command::Http { id, kind, .. } = &command else {
                    return None;
                };
                state.history.renewal_failed |= *kind == RequestKind::RegistrationUpdate;
                if applied {
                    // The sender cannot know what the AS did: like a crash, this excuses a
                    // repetition of the request.
                    let origin = (replica, state.replicas[r].start);
                    let before = state.history.attempts.len();
                    self.carry_out(&mut state, &command, &mut flags, Some(origin));
                    for attempt in &mut state.history.attempts[before..] {
                        attempt.lost = true;
                        state.history.answer_lost |= attempt.succeeded;
                    }
                }
                let now = state.now;
                state.replicas[r].client.handle(
                    now,
                    Input::HttpFailed {
                        id: *id,
                        error: "the connection closed before the answer arrived".into(),
                    },
                );
                self.collect(&mut state, r);
            }
            Action::ServerError { replica, index } => {
                let r = replica as usize;
                let command = state.replicas[r].outbox.remove(index);
                state.replicas[r].seal();
                state.history.server_errors += 1;
                let Command::Http { id, kind, .. } = &command else {
                    return None;
                };
                state.history.renewal_failed |= *kind == RequestKind::RegistrationUpdate;
                let mut response = http::Response::new(
                    json!({"error": "temporarily_unavailable"})
                        .to_string()
                        .into_bytes(),
                );
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                let now = state.now;
                state.replicas[r]
                    .client
                    .handle(now, Input::HttpResponse { id: *id, response });
                self.collect(&mut state, r);
            }
            Action::ForgeCallback(replica) => {
                state.history.forged = true;
                let now = state.now;
                let query = format!("code={FORGED_CODE}&state=forged-state");
                state.replicas[replica as usize]
                    .client
                    .handle(now, Input::Callback { query });
                self.collect(&mut state, replica as usize);
            }
            Action::Later(replica) => self.ask_again(&mut state, replica, LATER),
            Action::Migrate => {
                state.history.migrated = true;
                state.server.named = Some(SECOND_ISSUER.to_string());
            }
            Action::Challenge(replica) => {
                let now = state.now;
                let header = format!(r#"Bearer resource_metadata="{RESOURCE_METADATA}""#);
                let input = Input::ResourceChallenge {
                    headers: vec![header],
                    token: None,
                };
                state.replicas[replica as usize].client.handle(now, input);
                self.ask_again(&mut state, replica, Duration::from_secs(0));
            }
            Action::Retry(replica) => {
                state.replicas[replica as usize].retried += 1;
                self.ask_again(&mut state, replica, RETRY_AFTER);
            }
            Action::DeliverOrphan(index) => {
                let (_, command) = state.orphans.remove(index);
                self.carry_out(&mut state, &command, &mut flags, None);
            }
            Action::Tick(replica) => {
                let r = replica as usize;
                let at = state.replicas[r].client.poll_timeout()?;
                state.now = state.now.max(at);
                let now = state.now;
                state.replicas[r].client.handle(now, Input::Tick);
                self.collect(&mut state, r);
            }
            Action::Crash(replica) => {
                let r = replica as usize;
                state.history.crashes += 1;
                let origin = (replica, state.replicas[r].start);
                for attempt in &mut state.history.attempts {
                    if attempt.origin == origin && !attempt.settled {
                        attempt.lost = true;
                        state.history.crashed_mid_attempt = true;
                    }
                }
                // A browser the process opened has nobody to come back to.
                let outbox = std::mem::take(&mut state.replicas[r].outbox);
                state.orphans.extend(
                    outbox
                        .into_iter()
                        .filter(|c| !matches!(c, Command::OpenBrowser { .. }))
                        .map(|command| (origin, command)),
                );
                let start = state.replicas[r].start + 1;
                state.replicas[r] = self.boot(replica, start, state.now);
            }
            Action::LeaseExpires => {
                let live: Vec<String> = state
                    .replicas
                    .iter()
                    .filter(|r| r.outcome.is_none())
                    .map(|r| r.client.holder().to_string())
                    .collect();
                let any_time = self.lease_expiry == LeaseExpiry::AnyTime;
                state
                    .store
                    .leases
                    .retain(|_, holder| !any_time && live.contains(holder));
            }
        }
        state.history.flags = flags;
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always(ONE_REGISTRATION, |_, s: &State| {
                count(s, |k| *k == Kind::Registration) <= 1
            }),
            Property::always(ONE_RENEWAL, |_, s: &State| {
                // A refused renewal renewed nothing; another process may try again.
                let per_credential = max_per(
                    s,
                    |k| match k {
                        Kind::Renewal(rat) => Some(rat.clone()),
                        _ => None,
                    },
                    true,
                );
                let per_start = s
                    .history
                    .attempts
                    .iter()
                    .filter(|a| matches!(a.kind, Kind::Renewal(_)))
                    .fold(BTreeMap::new(), |mut m: BTreeMap<(u8, u8), usize>, a| {
                        *m.entry(a.origin).or_default() += 1;
                        m
                    })
                    .into_iter()
                    .filter(|(origin, _)| origin.0 != u8::MAX)
                    .map(|(_, n)| n)
                    .max()
                    .unwrap_or(0);
                per_credential <= 1 && per_start <= 1
            }),
            Property::always(ONE_REFRESH, |_, s: &State| {
                max_per(
                    s,
                    |k| match k {
                        Kind::Refresh(token) => Some(token.clone()),
                        _ => None,
                    },
                    false,
                ) <= 1
            }),
            Property::always(COMPARE_AND_SWAP, |_, s: &State| {
                !s.history.flags.stale_write
            }),
            Property::always(NO_SECRET_LOST, |_, s: &State| !s.history.flags.secret_lost),
            Property::always(NO_TOKEN_LOST, |_, s: &State| !s.history.flags.token_lost),
            Property::always(PERSIST_BEFORE_USE, |_, s: &State| {
                !s.history.flags.used_before_stored && !s.history.flags.token_handed_out_unstored
            }),
            Property::always(NO_EXPIRED_SECRET, |_, s: &State| {
                !s.history.flags.expired_secret_sent
            }),
            Property::always(CIMD_KEPT_APART, |_, s: &State| {
                !s.history.flags.cimd_misstored
            }),
            Property::always(CIMD_REJECTION_KEPT, |_, s: &State| {
                !s.history.flags.cimd_unrejected
            }),
            Property::always(ONE_FALLBACK, |_, s: &State| {
                let mut refusals: BTreeMap<(u8, u8), usize> = BTreeMap::new();
                for attempt in &s.history.attempts {
                    if attempt.kind == Kind::AuthorizationCode(CIMD_URL.into())
                        && !attempt.succeeded
                    {
                        *refusals.entry(attempt.origin).or_default() += 1;
                    }
                }
                refusals.values().all(|n| *n <= 1)
            }),
            Property::always(PKCE_PROVEN, |_, s: &State| !s.history.flags.pkce_unproven),
            Property::always(NO_FORGED_CODE, |_, s: &State| {
                !s.history.flags.forged_code_used
            }),
            Property::always(NO_CREDENTIAL_SHOWN, |_, s: &State| {
                !s.history.flags.credential_shown
            }),
            Property::always(DPOP_BINDING_KEPT, |_, s: &State| {
                dpop_binding_kept(s)
                    && !s.history.flags.dpop_key_switched
                    && !s.history.flags.dpop_proof_malformed
            }),
            Property::always(CREDENTIALS_STAY_WITH_THEIR_SERVER, |_, s: &State| {
                !s.history.flags.foreign_credentials
            }),
            Property::sometimes(EVERY_REPLICA_GOT_A_TOKEN, every_replica_got_a_token),
        ];
        // INV-13: where nothing fails on the way, no run ends without every replica holding a
        // token (checked in every final state).
        let faults = self.transport_failures + self.server_errors;
        if faults == 0 || self.faults_only_on_renewals {
            properties.push(Property::eventually(NO_DEAD_END, every_replica_got_a_token));
        }
        if self.dpop {
            properties.push(Property::sometimes(
                A_BOUND_TOKEN_WAS_STORED,
                |_, s: &State| {
                    s.store.records.values().any(|record| {
                        record
                            .tokens
                            .as_ref()
                            .is_some_and(|t| s.server.bound.contains_key(t.access_token.expose()))
                    })
                },
            ));
        }
        if self.crashes > 0 {
            properties.push(Property::sometimes(CRASH_MID_ATTEMPT, |_, s: &State| {
                s.history.crashed_mid_attempt
            }));
        }
        if self.scenario == Scenario::Renewal && self.crashes > 0 {
            // Observed behaviour, pinned: after a crash lost a renewal's answer, the RAT the
            // store holds is dead; the next renewal is refused and the core registers a
            // replacement client (`MODELS.md`, "What the checker found").
            properties.push(Property::sometimes(
                A_REPLACEMENT_AFTER_A_LOST_RENEWAL,
                |_, s: &State| {
                    s.history
                        .attempts
                        .iter()
                        .any(|a| a.kind == Kind::Registration && !a.lost)
                },
            ));
        }
        if self.transport_failures > 0 {
            properties.push(Property::sometimes(AN_ANSWER_WAS_LOST, |_, s: &State| {
                s.history.answer_lost
            }));
        }
        if self.forged_callbacks > 0 {
            properties.push(Property::sometimes(A_FORGED_CALLBACK, |_, s: &State| {
                s.history.forged
            }));
        }
        if self.faults_only_on_renewals {
            properties.push(Property::sometimes(
                A_FAILED_RENEWAL_WARNED,
                |_, s: &State| s.history.renewal_failed && s.history.warned,
            ));
        }
        if self.later_operations > 0 {
            properties.push(Property::sometimes(
                A_RENEWAL_IN_THE_NEXT_WINDOW,
                |_, s: &State| s.history.renewed_later,
            ));
        }
        properties.push(match self.scenario {
            Scenario::Registration => {
                Property::sometimes(A_REGISTRATION_HAPPENED, |_, s: &State| s.history.registered)
            }
            Scenario::Renewal => {
                Property::sometimes(A_RENEWAL_HAPPENED, |_, s: &State| s.history.renewed)
            }
            Scenario::Refresh => {
                Property::sometimes(A_REFRESH_HAPPENED, |_, s: &State| s.history.refreshed)
            }
            Scenario::Cimd { accepted: true } => {
                Property::sometimes(THE_CIMD_ID_WAS_USED, |_, s: &State| s.history.cimd_used)
            }
            Scenario::Cimd { accepted: false } => {
                Property::sometimes(A_FALLBACK_HAPPENED, |_, s: &State| s.history.fell_back)
            }
            Scenario::Migration => Property::sometimes(A_MIGRATION_HAPPENED, |_, s: &State| {
                s.history.registered_at_second
            }),
            Scenario::Forgotten | Scenario::NoManagement => {
                Property::sometimes(A_REPLACEMENT_HAPPENED, |_, s: &State| s.history.replaced)
            }
        });
        properties
    }
}

/// A path as one line per step, each naming the command it carried out, then how each
/// replica's operation ended: for failure messages and for reading what the checker found.
pub fn explain(path: &Path<State, Action>) -> String {
    let mut out = String::new();
    for (state, action) in path.clone().into_vec() {
        let Some(action) = action else { continue };
        let command = match &action {
            Action::Deliver { replica, index }
            | Action::Fail { replica, index, .. }
            | Action::ServerError { replica, index } => state
                .replicas
                .get(*replica as usize)
                .and_then(|r| r.outbox.get(*index))
                .map(summary),
            Action::DeliverOrphan(index) => state.orphans.get(*index).map(|(_, c)| summary(c)),
            _ => None,
        };
        match command {
            Some(command) => out.push_str(&format!("  {action:?}: {command}\n")),
            None => out.push_str(&format!("  {action:?}\n")),
        }
    }
    let last = path.last_state();
    for (index, replica) in last.replicas.iter().enumerate() {
        out.push_str(&format!("  => replica {index}: {:?}\n", replica.outcome));
    }
    out
}

/// One line for a command: the request line and the start of its body, or the store
/// operation (secrets are model values, so they may show).
fn summary(command: &Command) -> String {
    match command {
        Command::Http { request, .. } => {
            let body = String::from_utf8_lossy(request.body());
            let body: String = body.chars().take(90).collect();
            format!("{} {} {body}", request.method(), request.uri().path())
        }
        Command::Store { op, .. } => match op {
            StoreOp::CompareAndSwap {
                expected, record, ..
            } => format!(
                "compare-and-swap over {expected:?}: registration {:?}, CIMD {:?}",
                record.dcr.as_ref().map(|d| d.client_id.as_str()),
                record.cimd.as_ref().map(|c| c.rejected),
            ),
            other => {
                let text = format!("{other:?}");
                text.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            }
        },
        Command::OpenBrowser { .. } => "open the browser".into(),
        other => format!("{other:?}"),
    }
}

/// Every replica's (latest) operation handed out a token.
fn every_replica_got_a_token(_: &RealFleet, state: &State) -> bool {
    state
        .replicas
        .iter()
        .all(|r| r.outcome.as_deref() == Some("token"))
}

/// Requests of `kind` that reached the server and are not excused by a crash.
fn count(state: &State, kind: impl Fn(&Kind) -> bool) -> usize {
    state
        .history
        .attempts
        .iter()
        .filter(|a| !a.lost && kind(&a.kind))
        .count()
}

/// The most requests, not excused by a crash, that presented one same credential.
/// With `succeeded_only`, refused requests are not counted.
fn max_per(state: &State, key: impl Fn(&Kind) -> Option<String>, succeeded_only: bool) -> usize {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for attempt in state
        .history
        .attempts
        .iter()
        .filter(|a| !a.lost && (a.succeeded || !succeeded_only))
    {
        if let Some(k) = key(&attempt.kind) {
            *counts.entry(k).or_default() += 1;
        }
    }
    counts.into_values().max().unwrap_or(0)
}

/// INV-1: one registration for the key across the fleet.
pub const ONE_REGISTRATION: &str = "INV-1 one registration per key";
/// RFC 9449 §5 across processes: tokens stay bound to the stored key, and refreshes prove it.
pub const DPOP_BINDING_KEPT: &str =
    "DPoP: every stored bound token is stored with its key, every refresh proves it";
/// The DPoP models bind tokens at all.
pub const A_BOUND_TOKEN_WAS_STORED: &str = "a DPoP-bound token was stored";
/// INV-8: one renewal per registration access token across processes, one per start.
pub const ONE_RENEWAL: &str = "INV-8 one renewal per secret, at most one per start";
/// One token request per grant across processes: each refresh token presented once.
pub const ONE_REFRESH: &str = "INV-10 one refresh per refresh token across processes";
/// INV-9: a write replaces the generation its writer read.
pub const COMPARE_AND_SWAP: &str = "INV-9 compare-and-swap: no write over an unread generation";
/// INV-9: a secret the server accepts is never dropped or rolled back.
pub const NO_SECRET_LOST: &str = "INV-9 no accepted secret dropped or rolled back";
/// INV-10: a failed token request never erases a newer token.
pub const NO_TOKEN_LOST: &str = "INV-10 no live refresh token erased or replaced by a dead one";
/// INV-4: persist before use.
pub const PERSIST_BEFORE_USE: &str = "INV-4 every credential stored before it is used";
/// INV-5: no expired secret at the token endpoint.
pub const NO_EXPIRED_SECRET: &str = "INV-5 no expired secret sent";
/// Sometimes: every replica's operation handed out a token.
pub const EVERY_REPLICA_GOT_A_TOKEN: &str = "every replica got a token";
/// Sometimes: a replica crashed between a request and storing its answer.
pub const CRASH_MID_ATTEMPT: &str = "a replica crashed mid-request";
/// Sometimes: the AS carried out a registration, renewal or token request whose answer was
/// lost.
pub const AN_ANSWER_WAS_LOST: &str = "an answer was lost";
/// Sometimes (renewal scenario): a replacement client was registered.
pub const A_REPLACEMENT_AFTER_A_LOST_RENEWAL: &str =
    "a replacement client registered after a lost renewal answer";
/// Sometimes: a registration was stored.
pub const A_REGISTRATION_HAPPENED: &str = "a registration happened";
/// Sometimes: a renewed secret was stored.
pub const A_RENEWAL_HAPPENED: &str = "a renewal happened";
/// Sometimes: refreshed tokens were stored.
pub const A_REFRESH_HAPPENED: &str = "a refresh happened";
/// INV-2: the CIMD id is never stored as a DCR client id, nor removed.
pub const CIMD_KEPT_APART: &str = "INV-2 the CIMD id kept apart from DCR and never removed";
/// INV-9 (finding F2): a stored rejection of the CIMD id is never undone.
pub const CIMD_REJECTION_KEPT: &str = "INV-9 a stored CIMD rejection is never undone";
/// INV-3: at most one CIMD fallback per operation (each process runs one).
pub const ONE_FALLBACK: &str = "INV-3 at most one CIMD fallback per operation";
/// INV-13: every run in which nothing fails ends with every replica holding a token.
pub const NO_DEAD_END: &str = "INV-13 no dead end: every replica ends with a token";
/// Sometimes: the CIMD id obtained tokens that were stored.
pub const THE_CIMD_ID_WAS_USED: &str = "the CIMD id was used";
/// Sometimes: a DCR registration stored next to a rejected CIMD id.
pub const A_FALLBACK_HAPPENED: &str = "a fallback to DCR happened";
/// Sometimes: a registration replacing the first one was stored.
pub const A_REPLACEMENT_HAPPENED: &str = "a replacement registration happened";
/// Sometimes: a secret was renewed again after the clock crossed the next renewal window.
pub const A_RENEWAL_IN_THE_NEXT_WINDOW: &str = "a renewal in the next window happened";
/// INV-11: every code exchange presents the verifier of the S256 challenge its code was
/// issued for, with the client id it was issued to.
pub const PKCE_PROVEN: &str = "INV-11 every code exchange proves its PKCE challenge";
/// INV-11: a code from a forged callback never reaches the token endpoint.
pub const NO_FORGED_CODE: &str = "INV-11 a forged callback's code is never exchanged";
/// INV-12: no event and no client's `Debug` output shows a credential.
pub const NO_CREDENTIAL_SHOWN: &str = "INV-12 no credential in events or Debug output";
/// Sometimes: a forged callback reached a waiting replica.
pub const A_FORGED_CALLBACK: &str = "a forged callback arrived";
/// Sometimes: a renewal failed before expiry and a warning was emitted.
pub const A_FAILED_RENEWAL_WARNED: &str = "a failed renewal was warned about";

/// INV-7: credentials registered with one authorization server never reach another.
pub const CREDENTIALS_STAY_WITH_THEIR_SERVER: &str =
    "INV-7 credentials never presented to another authorization server";
/// Sometimes: after the resource moved, a registration with the new server was stored.
pub const A_MIGRATION_HAPPENED: &str = "a registration with the new server happened";

#[cfg(test)]
mod tests {
    use super::shows_a_credential;

    /// The INV-12 check finds a credential wherever it is shown, and only there.
    #[test]
    fn a_credential_is_recognised_in_any_text() {
        assert!(shows_a_credential("refused: secret-4"));
        assert!(shows_a_credential(r#"{"client_secret":"secret-12"}"#));
        assert!(shows_a_credential("Bearer access-7"));
        assert!(shows_a_credential("refresh_token=refresh-3&x"));
        assert!(!shows_a_credential("client_secret_post, client-3"));
        assert!(!shows_a_credential(
            "the secret-expiry of client-5 [redacted]"
        ));
        assert!(!shows_a_credential("authorization_code-exchange"));
    }
}
