//! The lifecycle machine: one client key's discovery, registration, renewal and tokens.
//!
//! The machine never waits for anything. [`Client::handle`] takes an input with the current
//! time; [`Client::poll_command`] hands out what must be done next; [`Client::poll_timeout`]
//! says when to come back with [`Input::Tick`]. At most one request or store operation is in
//! flight at a time, which is what makes "persist before use" (INV-4) hold by construction: the
//! next step is chosen only after the previous write was acknowledged.
//!
//! Every decision is made in one place, [`Client::next_step`], from the durable record, the
//! validated server metadata and the current operation. Handlers of answers only fold the
//! answer into that state and call it again.

use std::collections::{BTreeSet, VecDeque};

use crate::record::SecretExpiry;

use crate::authorization::{
    authorization_url, check_callback, pkce_challenge, AuthorizationParams, CallbackExpectation,
    CallbackResult,
};
use crate::challenge::resource_challenge;
use crate::config::{ClientConfig, Grant, LoginFlow};
use crate::device::{
    backed_off, device_authorization_request, parse_device_authorization, slowed_down,
    DEVICE_CODE_GRANT,
};
use crate::discovery::{
    canonical_resource, legacy_default_server, legacy_metadata_url, metadata_candidates,
    parse_legacy_server_metadata, parse_protected_resource, parse_server_metadata, prm_candidates,
    server_scopes, PrmCandidate, ProtectedResource,
};
use crate::dpop::{DpopKey, TokenScheme};
use crate::endpoint::sanitize;
use crate::entropy::Entropy;
use crate::error::{ConfigError, Error, ServerError};
use crate::io::{
    AssertionId, ChallengeVerdict, Command, Event, Input, Lifecycle, OpId, Operation, RequestId,
    RequestKind, StoreOp, StoreOpId, StoreResult,
};
use crate::key::ClientKey;
use crate::record::{
    AuthServer, Backoff, CimdIdentity, IdentityKind, Record, Registration, Tokens,
};
use crate::registration::{
    choose_method, negotiate_auth_method, parse_registration, registered_key_current,
    registration_request, with_configured_key, Method,
};
use crate::renewal::{
    management_request, parse_deletion, parse_management_answer, Deletion, ManagementFailure,
};
use crate::scope::{requested_scopes, split, step_up, ScopeSources, StepUp};
use crate::secret::Secret;
use crate::time::{Duration, Timestamp};
use crate::tokens::{
    parse_token_answer, token_request, ClientAuth, GrantRequest, OwnedGrant, TokenFailure,
};
use crate::wire::json_object;

mod bearer;
mod decide;
mod discover;
mod effects;
mod inputs;
#[cfg(test)]
mod tests;

/// How many times a refused compare-and-swap is retried on the fresh record before giving up.
const MAX_WRITE_RETRIES: u32 = 5;
/// How many times to wait for another holder's lease before giving up: long enough (about
/// 77 s) for a dead holder's lease of the default lifetime to lapse.
const MAX_LEASE_WAITS: u32 = 80;
/// The first wait for a busy lease; it doubles up to [`LEASE_BACKOFF_CAP`].
const LEASE_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two looks at a busy lease. Short, because the lease now guards
/// token requests too: processes queue behind one another's short requests, and a waiter
/// that looked only every few seconds could come back after the work it waited for had to
/// be done again (a renewal window reopening, a short token expiring).
const LEASE_BACKOFF_CAP: Duration = Duration::from_secs(1);

/// The sans-IO client for one configuration. See the module documentation.
///
/// `Clone` copies the whole machine, pending work included: model checkers branch on it.
#[derive(Clone, Debug)]
pub struct Client {
    config: ClientConfig,
    /// [`crate::key::scope_hash`] of the configured scopes, computed once: every step
    /// compares keys.
    scope_hash: String,
    config_error: Option<ConfigError>,
    /// The canonical resource, when one is configured.
    resource: Option<String>,
    entropy: Entropy,
    holder: String,
    /// This process's stretch of the refresh margin, per mille (see
    /// [`Tokens::access_token_valid_with`]).
    token_jitter: u16,
    started: bool,

    /// The record as last acknowledged by the store; `None` until one exists.
    record: Option<Record>,
    /// The key whose stored value `record` reflects.
    loaded: Option<ClientKey>,
    /// Validated server metadata for this process.
    server: Option<AuthServer>,
    /// A `resource_metadata` URL from the last challenge (PRM-9).
    challenge_prm: Option<String>,
    /// What the resource's challenges said about scopes and tokens (MCP-10, MCP-18).
    scopes: ScopeState,
    /// Whether renewal was attempted in this process start (INV-1: at most one attempt, so
    /// a failing or misconfigured server cannot cause a loop). A long-running embedder gets
    /// another attempt by starting a new machine from the stored record.
    renewal_attempted: bool,
    /// Whether a replacement client was registered (or tried) in this process start, for a
    /// secret the server cannot renew; at most once, like renewal.
    rotation_attempted: bool,
    /// Warnings already given in this process: each is given once, not per call.
    warned: BTreeSet<String>,
    lease_held: bool,
    /// The release of the lease not yet answered by the store, if any.
    release_pending: Option<StoreOpId>,
    /// The record a compare-and-swap in flight would store.
    pending_write: Option<Record>,
    /// The DCR registration the compare-and-swap in flight was computed from, so a refused
    /// write can tell whether its change still makes sense (INV-9).
    write_base: Option<Registration>,

    jobs: VecDeque<Job>,
    wait: Wait,
    out: VecDeque<Command>,
    next_id: u64,
    reported: Option<Lifecycle>,
    just_renewed: bool,
    /// The enterprise identity provider's token endpoint, read from its metadata in this
    /// process when only its issuer is configured (SEP-990).
    idp_token_endpoint: Option<String>,
    /// The latest `DPoP-Nonce` of the token endpoint, with the issuer it came from (RFC 9449
    /// §8): every proof to that server carries it. Not persisted; nonces are short-lived.
    dpop_nonce: Option<(String, String)>,
}

/// One operation being worked on, and the callers waiting for it (single flight).
#[derive(Clone, Debug)]
struct Job {
    op: Operation,
    waiters: Vec<OpId>,
    /// INV-3: at most one CIMD → DCR fallback per login.
    cimd_fallback_used: bool,
    /// Why renewal failed during this job, if it did.
    renewal_failure: Option<String>,
    renewed: bool,
    /// Re-registration after `invalid_client`, at most once per job (DCR-24, MGMT-16).
    reregistered: bool,
    /// The job ends with this error once the write in flight is acknowledged (a refusal
    /// that is remembered in the store first, such as a registration backoff).
    failure: Option<Error>,
    /// Tokens were obtained during this job (a login is then complete).
    obtained_tokens: bool,
    refresh_failed: bool,
    deleted_remote: bool,
    lease_waits: u32,
    login: Option<PendingLogin>,
    /// The device login (RFC 8628) being polled for, if any.
    device: Option<PendingDevice>,
    /// The assertion the shell read for the jwt-bearer grant (a workload token or an ID
    /// token), until it is sent; never persisted, and taken when sent, so every grant
    /// request reads a fresh one.
    assertion: Option<Secret>,
    /// The ID-JAG the identity provider issued, until it is sent to the token endpoint.
    id_jag: Option<Secret>,
}

/// What the client learned about scopes from the resource and the authorization server in
/// this process. Not persisted: a restart begins with the granted scope in the record.
#[derive(Clone, Debug, Default)]
struct ScopeState {
    /// The `scope` of the latest challenge (MCP-10, MCP-11).
    challenged: Option<Vec<String>>,
    /// What the latest authorization or client-credentials request asked for.
    requested: Option<Vec<String>>,
    /// The authorization server's `scopes_supported` (MCP26-7), when discovery read it.
    server_supported: Option<Vec<String>>,
    /// An access token the resource refused (a 401 challenge): never handed out again.
    refused_token: Option<Secret>,
    /// The scope set of the last step-up and how often it was tried (MCP-18).
    step_up: Option<(Vec<String>, u32)>,
    /// Why the last step-up was decided against; the next login reports it.
    gave_up: Option<String>,
}

/// In-flight state of one authorization request; never persisted.
#[derive(Clone, Debug)]
struct PendingLogin {
    state: String,
    verifier: Secret,
    issuer: String,
    redirect_uri: String,
    client_id: String,
    iss_required: bool,
    deadline: Timestamp,
}

/// In-flight state of one device login (RFC 8628); never persisted: after a restart the
/// user logs in again.
#[derive(Clone, Debug)]
struct PendingDevice {
    /// A credential: only ever sent to the token endpoint, never shown (INV-12).
    device_code: Secret,
    /// The client the codes were issued to; a login whose client changed meanwhile ends.
    client_id: String,
    /// The wait between two polls, grown by `slow_down` (RFC 8628 §3.5).
    interval: Duration,
    /// When the codes expire: no poll is sent after it (RFC 8628 §3.2 `expires_in`).
    expires_at: Timestamp,
}

/// What the machine is waiting for.
#[derive(Clone, Debug)]
enum Wait {
    Nothing,
    Http(RequestId, HttpPurpose),
    Store(StoreOpId, StorePurpose),
    Callback,
    Until(Timestamp),
    /// The next poll of a device login (RFC 8628 §3.4): due at this instant.
    DevicePoll(Timestamp),
    /// The shell reads the jwt-bearer grant's assertion.
    Assertion(AssertionId),
    /// A lease release is still in flight: taking the lease again now could let that late
    /// release free the new lease (INV-1, INV-8), so the answer is awaited first.
    Release,
}

#[derive(Clone, Debug)]
enum HttpPurpose {
    ResourceMetadata {
        candidates: VecDeque<PrmCandidate>,
        current: PrmCandidate,
        failures: Vec<String>,
        /// Some candidate served a JSON document that failed validation: the resource does
        /// publish metadata, so the 2025-03-26 fallback must not be used (EDGE-23).
        found_document: bool,
    },
    ServerMetadata {
        /// The issuer expected; for the 2025-03-26 fallback, the resource's origin.
        issuer: String,
        candidates: VecDeque<String>,
        current: String,
        failures: Vec<String>,
        /// The validated protected resource metadata that named this issuer, if any.
        prm: Option<ProtectedResource>,
        /// Metadata looked up the 2025-03-26 way (EDGE-27).
        legacy: bool,
    },
    Register {
        endpoint: String,
        /// The client this registration replaces, for a secret the server cannot renew.
        replacing: Option<String>,
        /// The request's digest, remembered with a refusal (INV-14).
        digest: String,
    },
    Renew,
    Delete,
    Token {
        grant: &'static str,
        /// The refresh token sent, for a refresh: a refusal may drop only that one.
        refresh_token: Option<Secret>,
        /// Set when the request carried a DPoP proof.
        dpop: Option<DpopSent>,
    },
    /// A device authorization request for this client id (RFC 8628 §3.1).
    DeviceAuthorization {
        client_id: String,
    },
    /// One poll of the token endpoint for a device login (RFC 8628 §3.4).
    DevicePoll {
        /// Set when the poll carried a DPoP proof.
        dpop: Option<DpopSent>,
    },
    /// An RFC 8693 token exchange at the enterprise identity provider (SEP-990).
    TokenExchange,
    /// The enterprise identity provider's metadata, for its token endpoint.
    IdpMetadata {
        issuer: String,
        candidates: VecDeque<String>,
        current: String,
        failures: Vec<String>,
    },
}

/// A token request that carried a DPoP proof (RFC 9449 §5).
#[derive(Clone, Debug)]
struct DpopSent {
    /// The grant, to send once more with the nonce the server asks for (RFC 9449 §8);
    /// `None` when this request is that second one.
    retry: Option<Box<OwnedGrant>>,
}

impl HttpPurpose {
    /// The DPoP proof a token request carried, if any.
    fn dpop(&self) -> Option<&DpopSent> {
        match self {
            HttpPurpose::Token { dpop, .. } | HttpPurpose::DevicePoll { dpop } => dpop.as_ref(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
enum StorePurpose {
    Load,
    Write { patch: Patch, retries: u32 },
    Delete,
    Lease,
}

/// Orders secret expiries: an unknown expiry first, then by time, a secret that never
/// expires last.
fn expiry_rank(registration: &Registration) -> (u8, i64) {
    match registration.secret_expires {
        SecretExpiry::Unknown => (0, 0),
        SecretExpiry::At(at) => (1, at.unix_millis()),
        SecretExpiry::Never => (2, 0),
    }
}

/// A change to the durable record. Kept as a value so that a refused compare-and-swap can
/// be re-applied to the record another writer stored (INV-9).
#[derive(Clone, Debug)]
enum Patch {
    SetRegistration(Box<Registration>),
    /// A renewed registration; the lifecycle reports `Renewed` once it is stored.
    Renewed(Box<Registration>),
    /// A registration that replaces the stored one, whose secret the server cannot renew; it
    /// applies only while the stored client is still the one replaced.
    ReplaceRegistration(Box<Registration>),
    /// The registration access token was refused (MGMT-16): management ends, and the secret
    /// is in doubt until the token endpoint accepts it again.
    DropManagement,
    /// The registration is given up, to register anew; with a backoff when this happens
    /// because the server stopped accepting the client (INV-14).
    DropRegistration(Option<Backoff>),
    /// The server refused a registration: no attempt before the backoff ends (INV-14).
    PauseRegistration(Backoff),
    SetCimd(String),
    RejectCimd,
    SetPreRegistered(Option<String>),
    SetTokens(Tokens),
    ClearTokens,
    /// The token endpoint refused this refresh token: the tokens go, but only while this is
    /// still the stored refresh token; another process may have refreshed meanwhile, and
    /// its tokens must survive (INV-10).
    DropRefreshToken(Secret),
    /// A resource refused this access token: it is stored as expired (the refresh token
    /// stays), while it is still the stored one.
    ExpireAccessToken(Secret),
    /// The client's DPoP key, stored before any proof made with it is sent (INV-4): a token
    /// bound to a key that a crash lost would be useless. Only where none is stored yet.
    SetDpopKey(DpopKey),
}

impl Patch {
    /// Whether this change, refused by a compare-and-swap, still makes sense on the record
    /// another writer stored meanwhile (`base`: the registration it was computed from). When
    /// it does not, the machine decides again from the stored record instead of re-applying
    /// it: a stale change must never undo a newer one (INV-9), such as a stored CIMD
    /// rejection (INV-3) or a secret another replica renewed.
    fn still_applies(&self, current: Option<&Record>, base: Option<&Registration>) -> bool {
        let dcr = current.and_then(|r| r.dcr.as_ref());
        let cimd = current.and_then(|r| r.cimd.as_ref());
        let same = |a: &Registration, b: &Registration| {
            a.client_id == b.client_id && a.client_secret == b.client_secret
        };
        match self {
            Patch::SetCimd(_) => cimd.is_none(),
            Patch::RejectCimd => cimd.is_some_and(|c| !c.rejected),
            Patch::SetRegistration(_) | Patch::PauseRegistration(_) => {
                current.is_none_or(|r| r.identity() == IdentityKind::None)
            }
            Patch::ReplaceRegistration(_) => match (dcr, base) {
                (Some(stored), Some(replaced)) => stored.client_id == replaced.client_id,
                _ => false,
            },
            Patch::Renewed(new) => dcr
                .is_none_or(|d| d.client_id == new.client_id && expiry_rank(d) <= expiry_rank(new)),
            Patch::DropManagement | Patch::DropRegistration(_) => match (dcr, base) {
                (Some(stored), Some(judged)) => same(stored, judged),
                (None, _) => false,
                (Some(_), None) => false,
            },
            Patch::DropRefreshToken(sent) => {
                let stored = current
                    .and_then(|r| r.tokens.as_ref())
                    .and_then(|t| t.refresh_token.as_ref());
                stored == Some(sent)
            }
            Patch::ExpireAccessToken(refused) => current
                .and_then(|r| r.tokens.as_ref())
                .is_some_and(|t| &t.access_token == refused),
            // Another writer's key wins: tokens may already be bound to it.
            Patch::SetDpopKey(_) => current.is_some_and(|r| r.dpop_key.is_none()),
            Patch::SetPreRegistered(_) | Patch::SetTokens(_) | Patch::ClearTokens => true,
        }
    }

    fn apply(&self, record: &mut Record) {
        match self {
            Patch::SetRegistration(registration)
            | Patch::Renewed(registration)
            | Patch::ReplaceRegistration(registration) => {
                record.dcr = Some((**registration).clone());
            }
            Patch::DropManagement => {
                let Some(dcr) = &mut record.dcr else {
                    return;
                };
                dcr.registration_access_token = None;
                dcr.registration_client_uri = None;
                if dcr.client_secret.is_none() {
                    return;
                }
                // MGMT-16, EDGE-13: a refused registration access token may mean that a
                // renewal whose answer was lost (a crash, a dropped connection) rotated the
                // secret away at the server. So the stored access token is not handed out
                // again until the secret has been presented at the token endpoint, where
                // `invalid_client` leads to registering again (DCR-24). A refresh token is
                // kept: refreshing presents the secret too. In the same write, so that no
                // crash can keep the one and lose the other.
                match &mut record.tokens {
                    Some(tokens) if tokens.refresh_token.is_some() => {
                        tokens.expires_at = Some(Timestamp::EPOCH);
                    }
                    _ => record.tokens = None,
                }
            }
            Patch::DropRegistration(backoff) => {
                // INV-2: only the DCR slot is cleared; a CIMD id stays.
                record.dcr = None;
                record.tokens = None;
                if backoff.is_some() {
                    record.registration_backoff = backoff.clone();
                }
            }
            Patch::PauseRegistration(backoff) => {
                record.registration_backoff = Some(backoff.clone());
            }
            Patch::SetCimd(url) => {
                record.cimd = Some(CimdIdentity {
                    client_id: url.clone(),
                    rejected: false,
                })
            }
            Patch::RejectCimd => {
                if let Some(cimd) = &mut record.cimd {
                    cimd.rejected = true;
                }
                record.tokens = None;
            }
            Patch::SetPreRegistered(id) => record.pre_registered_client_id = id.clone(),
            Patch::SetTokens(tokens) => {
                record.tokens = Some(tokens.clone());
                // The token endpoint accepted the registration.
                if let Some(dcr) = &mut record.dcr {
                    dcr.unproven = false;
                }
                // A token obtained: whatever paused registration is over.
                record.registration_backoff = None;
            }
            Patch::ClearTokens => record.tokens = None,
            Patch::DropRefreshToken(sent) => {
                let stored = record
                    .tokens
                    .as_ref()
                    .and_then(|t| t.refresh_token.as_ref());
                if stored == Some(sent) {
                    record.tokens = None;
                }
            }
            Patch::ExpireAccessToken(refused) => {
                if let Some(tokens) = &mut record.tokens {
                    if &tokens.access_token == refused {
                        tokens.expires_at = Some(Timestamp::EPOCH);
                    }
                }
            }
            Patch::SetDpopKey(key) => {
                record.dpop_key.get_or_insert_with(|| key.clone());
            }
        }
    }
}

/// What [`Client::next_step`] decided.
enum Step {
    /// A command was issued; wait for its answer.
    Wait(Wait),
    /// The job is over.
    Finish(Outcome),
}

/// What `Client::step_secret` found about the stored client secret.
enum SecretState {
    /// A request was issued (a renewal, a lease, a replacement registration); wait for it.
    Go(Step),
    /// The secret can be used.
    Usable,
    /// The secret cannot be used, for this reason.
    Unusable(Error),
}

enum Outcome {
    Token(Tokens),
    Done,
    LoginRequired(String),
    Failed(Error),
}
/// A token that can be handed out without the machine, and for how long
/// ([`Client::handout`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handout {
    /// The access token.
    pub access_token: Secret,
    /// When the server said it expires, if it did.
    pub expires_at: Option<Timestamp>,
    /// The instant from which the machine must be asked again (`None`: never, for a token
    /// with no known expiry and no expiring secret).
    pub until: Option<Timestamp>,
    /// How the token is presented: a DPoP token needs a proof with every request
    /// ([`Client::resource_proof`]).
    pub scheme: TokenScheme,
}

/// What `tenure status` shows about a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// How the client is identified.
    pub identity: IdentityKind,
    /// The client id in use.
    pub client_id: Option<String>,
    /// When the secret expires, if it does.
    pub secret_expires_at: Option<Timestamp>,
    /// Whether the renewal window is open.
    pub renewal_due: bool,
    /// When the access token expires, if one is held and its lifetime is known.
    pub access_token_expires_at: Option<Timestamp>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// The lifecycle state.
    pub lifecycle: Lifecycle,
}

impl Client {
    /// A machine for `config`. An invalid configuration is reported when the first operation
    /// runs, as a failed operation that names the option to fix.
    pub fn new(config: ClientConfig) -> Self {
        let mut config_error = config.validate().err();
        let resource = match config.resource.as_deref().map(canonical_resource) {
            Some(Ok(resource)) => Some(resource),
            Some(Err(reason)) => {
                config_error.get_or_insert(ConfigError::Resource(reason));
                None
            }
            None => None,
        };
        let mut entropy = Entropy::new(config.seed);
        let holder = format!("holder-{}", &entropy.token()[..16]);
        let block = entropy.next_block();
        let token_jitter = u16::from_be_bytes([block[0], block[1]]) % 1001;
        Client {
            scope_hash: crate::key::scope_hash(&config.scopes),
            config,
            config_error,
            resource,
            entropy,
            holder,
            token_jitter,
            started: false,
            record: None,
            loaded: None,
            server: None,
            challenge_prm: None,
            scopes: ScopeState::default(),
            renewal_attempted: false,
            rotation_attempted: false,
            warned: BTreeSet::new(),
            lease_held: false,
            release_pending: None,
            pending_write: None,
            write_base: None,
            jobs: VecDeque::new(),
            wait: Wait::Nothing,
            out: VecDeque::new(),
            next_id: 0,
            reported: None,
            just_renewed: false,
            idp_token_endpoint: None,
            dpop_nonce: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The record as last acknowledged by the store.
    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    /// The lease holder id this client uses.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Feeds one input at wall-clock time `now`.
    pub fn handle(&mut self, now: Timestamp, input: Input) {
        // A change of lifecycle state is reported before the commands that follow from it.
        let mark = self.out.len();
        match input {
            Input::Start { stored } => self.handle_start(stored),
            Input::Operation { id, op } => self.handle_operation(id, op),
            Input::HttpResponse { id, response } => {
                if let Some(purpose) = self.take_http(id) {
                    let status = response.status().as_u16();
                    let nonce_given =
                        purpose.dpop().is_some() && self.note_dpop_nonce(response.headers());
                    let body = response.into_body();
                    let retried =
                        self.retry_with_dpop_nonce(now, purpose, status, &body, nonce_given);
                    if let Some(purpose) = retried {
                        self.handle_http(now, purpose, Ok((status, body)));
                    }
                }
            }
            Input::HttpFailed { id, error } => {
                if let Some(purpose) = self.take_http(id) {
                    self.handle_http(now, purpose, Err(error));
                }
            }
            Input::Store { id, result } => {
                if self.release_pending == Some(id) {
                    self.release_pending = None;
                    if matches!(self.wait, Wait::Release) {
                        self.wait = Wait::Nothing;
                    }
                }
                if let Some(purpose) = self.take_store(id) {
                    self.handle_store(now, purpose, result);
                }
            }
            Input::Callback { query } => self.handle_callback(now, &query),
            Input::CallbackUnavailable { reason } => {
                if matches!(self.wait, Wait::Callback) {
                    self.finish(Outcome::Failed(Error::CallbackUnavailable(reason)));
                }
            }
            Input::ResourceChallenge { headers, token } => {
                self.handle_challenge(&headers, token.as_ref())
            }
            Input::Assertion { id, result } => self.handle_assertion(id, result),
            Input::Tick => self.handle_tick(now),
        }
        self.advance(now);
        self.report_lifecycle(now, mark);
    }

    /// The next thing to do, until `None`.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// When to send [`Input::Tick`] next, if the machine waits for time.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.wait {
            Wait::Until(at) | Wait::DevicePoll(at) => Some(*at),
            Wait::Callback => self
                .jobs
                .front()
                .and_then(|job| job.login.as_ref())
                .map(|login| login.deadline),
            _ => None,
        }
    }

    /// The token an [`Operation::Token`] would hand out at `now` without sending anything,
    /// and until when that stays true; `None` when asking needs the machine (nothing
    /// loaded yet, a refused or expiring token, a secret in its renewal window, a
    /// pending challenge, a logout or forget on its way).
    ///
    /// Shells keep it beside the machine so that callers can read a valid token without a
    /// round trip through the driver: the answer is exactly what the machine would give
    /// until [`Handout::until`], because nothing but an input changes it.
    pub fn handout(&self, now: Timestamp) -> Option<Handout> {
        let server = self.server.as_ref()?;
        let settled = self.config_error.is_none()
            && self.challenge_prm.is_none()
            && self
                .loaded
                .as_ref()
                .is_some_and(|k| self.is_key_for(k, &server.issuer))
            && self.identity() != IdentityKind::None
            && !self.pre_registration_stale()
            && self.jobs.iter().all(|job| {
                matches!(
                    job.op,
                    Operation::Token | Operation::Login | Operation::Renew
                )
            });
        if !settled {
            return None;
        }
        let tokens = self.usable_tokens(now)?;
        let token_until = tokens.expires_at.map(|at| {
            let margin = tokens.margin().as_millis();
            let extra = margin * i64::from(self.token_jitter.min(1000)) / 2000;
            at - Duration::from_millis(margin + extra)
        });
        let secret_until = self
            .registration()
            .filter(|r| r.client_secret.is_some())
            .and_then(|r| r.secret_expires.at())
            .map(|at| at - self.config.renew_within);
        if secret_until.is_some_and(|at| at <= now) {
            return None;
        }
        let until = match (token_until, secret_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Handout {
            scheme: tokens.scheme(),
            access_token: tokens.access_token,
            expires_at: tokens.expires_at,
            until,
        })
    }

    /// A DPoP proof (RFC 9449 §4.2, §7.1) for a request to a protected resource that
    /// carries `access_token`: signed with the stored key, with a fresh `jti` from the
    /// client's entropy, `ath` the token's hash, and the resource's latest `nonce` when it
    /// asked for one (§9). The value of the request's `DPoP` header.
    pub fn resource_proof(
        &mut self,
        method: &str,
        url: &str,
        access_token: &Secret,
        nonce: Option<&str>,
        now: Timestamp,
    ) -> Result<Secret, Error> {
        self.sign_proof(method, url, now, nonce, Some(access_token))
    }

    /// A proof signed with the stored DPoP key, with a fresh `jti` from the client's entropy.
    fn sign_proof(
        &mut self,
        method: &str,
        url: &str,
        now: Timestamp,
        nonce: Option<&str>,
        access_token: Option<&Secret>,
    ) -> Result<Secret, Error> {
        let key = self
            .record
            .as_ref()
            .and_then(|r| r.dpop_key.clone())
            .ok_or_else(|| {
                Error::Protocol(
                    "no DPoP key is stored, so no proof can be made; only a DPoP token needs one"
                        .into(),
                )
            })?;
        let jti = self.entropy.token();
        key.proof(&crate::dpop::ProofClaims {
            method,
            url,
            jti: &jti,
            now,
            nonce,
            access_token,
        })
        .map_err(|e| Error::Protocol(e.to_string()))
    }

    /// The operation being worked on, if any.
    pub fn operation(&self) -> Option<Operation> {
        self.current_op()
    }

    /// Whether a login waits for the browser's redirect to the loopback callback.
    pub fn awaits_callback(&self) -> bool {
        matches!(self.wait, Wait::Callback)
    }

    /// Whether no operation is pending.
    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty()
    }

    /// A summary of the credentials at `now`.
    pub fn status(&self, now: Timestamp) -> Status {
        let record = self.record.as_ref();
        let identity = self.identity();
        let dcr = record
            .and_then(|r| r.dcr.as_ref())
            .filter(|_| identity == IdentityKind::Dcr);
        let tokens = record.and_then(|r| r.tokens.as_ref());
        Status {
            identity,
            client_id: self.client_id().map(str::to_owned),
            secret_expires_at: dcr.and_then(|d| d.secret_expires.at()),
            renewal_due: dcr.is_some_and(|d| d.secret_expiring(now, self.config.renew_within)),
            access_token_expires_at: tokens.and_then(|t| t.expires_at),
            has_refresh_token: tokens.is_some_and(|t| t.refresh_token.is_some()),
            lifecycle: self.lifecycle(now),
        }
    }

    /// Where the lifecycle stands at `now`.
    pub fn lifecycle(&self, now: Timestamp) -> Lifecycle {
        if let Some(state) = self.phase(now) {
            return state;
        }
        if self.just_renewed {
            return Lifecycle::Renewed;
        }
        match self.identity() {
            IdentityKind::None => Lifecycle::Unregistered,
            IdentityKind::Dcr => match self.registration() {
                Some(d) if d.secret_expired(now) => Lifecycle::Expired,
                Some(d) if d.secret_expiring(now, self.config.renew_within) => Lifecycle::Expiring,
                _ => Lifecycle::Registered,
            },
            _ => Lifecycle::Registered,
        }
    }

    /// The state implied by what the machine is waiting for, if any.
    fn phase(&self, now: Timestamp) -> Option<Lifecycle> {
        match &self.wait {
            Wait::Http(_, HttpPurpose::ResourceMetadata { .. })
            | Wait::Http(_, HttpPurpose::ServerMetadata { .. }) => Some(Lifecycle::Discovering),
            Wait::Http(_, HttpPurpose::Register { .. }) => Some(Lifecycle::Registering),
            Wait::Http(_, HttpPurpose::Renew) => Some(Lifecycle::Renewing),
            Wait::Store(_, StorePurpose::Write { patch, .. }) => match patch {
                Patch::SetRegistration(_)
                | Patch::ReplaceRegistration(_)
                | Patch::SetCimd(_)
                | Patch::SetPreRegistered(_) => Some(Lifecycle::Registering),
                Patch::Renewed(_) => Some(Lifecycle::Renewing),
                _ => None,
            },
            // A lease is taken to register, to renew, or to ask for a token; only the first
            // two are lifecycle states.
            Wait::Store(_, StorePurpose::Lease) | Wait::Until(_) => match self.identity() {
                IdentityKind::None => Some(Lifecycle::Registering),
                IdentityKind::Dcr
                    if self
                        .registration()
                        .is_some_and(|r| r.secret_expiring(now, self.config.renew_within)) =>
                {
                    Some(Lifecycle::Renewing)
                }
                _ => None,
            },
            _ => None,
        }
    }

    // ----- reading state -----

    /// The key of this client's record at `issuer` ([`ClientConfig::key_for`], with the
    /// scope hash computed once).
    fn key_for(&self, issuer: &str) -> ClientKey {
        ClientKey {
            issuer: issuer.to_owned(),
            upstream: self.config.upstream().to_owned(),
            redirect_uri: self.config.redirect_uri.clone(),
            scope_hash: self.scope_hash.clone(),
        }
    }

    /// Whether `key` is this client's key at `issuer`, without building one.
    fn is_key_for(&self, key: &ClientKey, issuer: &str) -> bool {
        key.issuer == issuer
            && key.upstream == self.config.upstream()
            && key.redirect_uri == self.config.redirect_uri
            && key.scope_hash == self.scope_hash
    }

    fn current_op(&self) -> Option<Operation> {
        self.jobs.front().map(|job| job.op)
    }

    fn current_key(&self) -> Option<ClientKey> {
        self.server.as_ref().map(|s| self.key_for(&s.issuer))
    }

    fn identity(&self) -> IdentityKind {
        match &self.record {
            Some(record) => record.identity(),
            None => IdentityKind::None,
        }
    }

    fn client_id(&self) -> Option<&str> {
        self.record.as_ref().and_then(Record::client_id)
    }

    fn registration(&self) -> Option<&Registration> {
        self.record
            .as_ref()
            .filter(|r| r.identity() == IdentityKind::Dcr)
            .and_then(|r| r.dcr.as_ref())
    }

    /// The stored access token, when it can be handed out at `now`: not expired, and not
    /// refused by the resource (RFC 6750 §3.1).
    fn usable_tokens(&self, now: Timestamp) -> Option<Tokens> {
        let tokens = self.record.as_ref()?.tokens.as_ref()?;
        let refused = self.scopes.refused_token.as_ref() == Some(&tokens.access_token);
        let valid = tokens.access_token_valid_with(now, self.token_jitter);
        (valid && !refused).then(|| tokens.clone())
    }

    /// The RFC 8707 `resource` to send: exactly as the protected resource metadata published
    /// it (MCP-14, as the 2026-07-28 revision checks), else the configured resource.
    fn resource_indicator(&self) -> Option<&str> {
        self.server
            .as_ref()
            .and_then(|s| s.resource.as_deref())
            .or(self.resource.as_deref())
    }

    /// The registration backoff in force at `now` for a request with digest `request`
    /// (`None`: any registration), if any (INV-14).
    fn registration_paused(&self, request: Option<&str>, now: Timestamp) -> Option<&Backoff> {
        self.record
            .as_ref()
            .and_then(|r| r.registration_backoff.as_ref())
            .filter(|b| b.pauses(request, now))
    }

    /// A number for jitter, drawn from the client's entropy.
    fn jitter(&mut self) -> u64 {
        let block = self.entropy.next_block();
        u64::from_be_bytes(block[..8].try_into().unwrap_or_default())
    }

    fn take_http(&mut self, id: RequestId) -> Option<HttpPurpose> {
        match std::mem::replace(&mut self.wait, Wait::Nothing) {
            Wait::Http(waiting, purpose) if waiting == id => Some(purpose),
            other => {
                self.wait = other;
                None
            }
        }
    }

    fn take_store(&mut self, id: StoreOpId) -> Option<StorePurpose> {
        match std::mem::replace(&mut self.wait, Wait::Nothing) {
            Wait::Store(waiting, purpose) if waiting == id => Some(purpose),
            other => {
                self.wait = other;
                None
            }
        }
    }
}
