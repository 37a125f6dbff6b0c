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

use std::collections::VecDeque;

use crate::authorization::{
    authorization_url, check_callback, pkce_challenge, AuthorizationParams, CallbackExpectation,
    CallbackResult,
};
use crate::challenge::resource_challenge;
use crate::config::{ClientConfig, Grant};
use crate::discovery::{
    canonical_resource, metadata_candidates, parse_protected_resource, parse_server_metadata,
    prm_candidates, PrmCandidate,
};
use crate::endpoint::sanitize;
use crate::entropy::Entropy;
use crate::error::{ConfigError, Error, ServerError};
use crate::io::{
    Command, Event, Input, Lifecycle, OpId, Operation, RequestId, RequestKind, StoreOp, StoreOpId,
    StoreResult,
};
use crate::key::ClientKey;
use crate::record::{AuthServer, CimdIdentity, IdentityKind, Record, Registration, Tokens};
use crate::registration::{choose_method, parse_registration, registration_request, Method};
use crate::renewal::{
    management_request, parse_deletion, parse_management_answer, Deletion, ManagementFailure,
};
use crate::secret::Secret;
use crate::time::{Duration, Timestamp};
use crate::tokens::{parse_token_answer, token_request, ClientAuth, GrantRequest, TokenFailure};
use crate::wire::json_object;

/// How many times a refused compare-and-swap is retried on the fresh record before giving up.
const MAX_WRITE_RETRIES: u32 = 5;
/// How many times to wait for another holder's lease before giving up.
const MAX_LEASE_WAITS: u32 = 20;
/// The first wait for a busy lease; it doubles up to [`LEASE_BACKOFF_CAP`].
const LEASE_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two looks at a busy lease.
const LEASE_BACKOFF_CAP: Duration = Duration::from_secs(4);

/// The sans-IO client for one configuration. See the module documentation.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    config_error: Option<ConfigError>,
    /// The canonical resource, when one is configured.
    resource: Option<String>,
    entropy: Entropy,
    holder: String,
    started: bool,

    /// The record as last acknowledged by the store; `None` until one exists.
    record: Option<Record>,
    /// The key whose stored value `record` reflects.
    loaded: Option<ClientKey>,
    /// Validated server metadata for this process.
    server: Option<AuthServer>,
    /// A `resource_metadata` URL from the last challenge (PRM-9).
    challenge_prm: Option<String>,
    /// Whether renewal was attempted in this process start (INV-1: at most one attempt, so
    /// a failing or misconfigured server cannot cause a loop). A long-running embedder gets
    /// another attempt by starting a new machine from the stored record.
    renewal_attempted: bool,
    lease_held: bool,
    /// The record a compare-and-swap in flight would store.
    pending_write: Option<Record>,

    jobs: VecDeque<Job>,
    wait: Wait,
    out: VecDeque<Command>,
    next_id: u64,
    reported: Option<Lifecycle>,
    just_renewed: bool,
}

/// One operation being worked on, and the callers waiting for it (single flight).
#[derive(Debug)]
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
    /// Tokens were obtained during this job (a login is then complete).
    obtained_tokens: bool,
    refresh_failed: bool,
    deleted_remote: bool,
    lease_waits: u32,
    login: Option<PendingLogin>,
}

/// In-flight state of one authorization request; never persisted.
#[derive(Debug)]
struct PendingLogin {
    state: String,
    verifier: Secret,
    issuer: String,
    redirect_uri: String,
    client_id: String,
    iss_required: bool,
    deadline: Timestamp,
}

/// What the machine is waiting for.
#[derive(Debug)]
enum Wait {
    Nothing,
    Http(RequestId, HttpPurpose),
    Store(StoreOpId, StorePurpose),
    Callback,
    Until(Timestamp),
}

#[derive(Debug)]
enum HttpPurpose {
    ResourceMetadata {
        candidates: VecDeque<PrmCandidate>,
        current: PrmCandidate,
        failures: Vec<String>,
    },
    ServerMetadata {
        issuer: String,
        candidates: VecDeque<String>,
        current: String,
        failures: Vec<String>,
        resource_scopes: Option<Vec<String>>,
    },
    Register {
        endpoint: String,
    },
    Renew,
    Delete,
    Token {
        grant: &'static str,
    },
}

#[derive(Debug)]
enum StorePurpose {
    Load,
    Write { patch: Patch, retries: u32 },
    Delete,
    Lease,
}

/// A change to the durable record. Kept as a value so that a refused compare-and-swap can
/// be re-applied to the record another writer stored (INV-9).
#[derive(Clone, Debug)]
enum Patch {
    SetRegistration(Box<Registration>),
    /// A renewed registration; the lifecycle reports `Renewed` once it is stored.
    Renewed(Box<Registration>),
    DropManagement,
    DropRegistration,
    SetCimd(String),
    RejectCimd,
    SetPreRegistered(Option<String>),
    SetTokens(Tokens),
    ClearTokens,
}

impl Patch {
    fn apply(&self, record: &mut Record) {
        match self {
            Patch::SetRegistration(registration) | Patch::Renewed(registration) => {
                record.dcr = Some((**registration).clone());
            }
            Patch::DropManagement => {
                if let Some(dcr) = &mut record.dcr {
                    dcr.registration_access_token = None;
                    dcr.registration_client_uri = None;
                }
            }
            Patch::DropRegistration => {
                // INV-2: only the DCR slot is cleared; a CIMD id stays.
                record.dcr = None;
                record.tokens = None;
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
            Patch::SetTokens(tokens) => record.tokens = Some(tokens.clone()),
            Patch::ClearTokens => record.tokens = None,
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

enum Outcome {
    Token(Tokens),
    Done,
    LoginRequired(String),
    Failed(Error),
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
        Client {
            config,
            config_error,
            resource,
            entropy,
            holder,
            started: false,
            record: None,
            loaded: None,
            server: None,
            challenge_prm: None,
            renewal_attempted: false,
            lease_held: false,
            pending_write: None,
            jobs: VecDeque::new(),
            wait: Wait::Nothing,
            out: VecDeque::new(),
            next_id: 0,
            reported: None,
            just_renewed: false,
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
                    self.handle_http(now, purpose, Ok((status, response.into_body())));
                }
            }
            Input::HttpFailed { id, error } => {
                if let Some(purpose) = self.take_http(id) {
                    self.handle_http(now, purpose, Err(error));
                }
            }
            Input::Store { id, result } => {
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
            Input::ResourceChallenge { headers } => self.handle_challenge(&headers),
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
            Wait::Until(at) => Some(*at),
            Wait::Callback => self
                .jobs
                .front()
                .and_then(|job| job.login.as_ref())
                .map(|login| login.deadline),
            _ => None,
        }
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
        if let Some(state) = self.phase() {
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
    fn phase(&self) -> Option<Lifecycle> {
        match &self.wait {
            Wait::Http(_, HttpPurpose::ResourceMetadata { .. })
            | Wait::Http(_, HttpPurpose::ServerMetadata { .. }) => Some(Lifecycle::Discovering),
            Wait::Http(_, HttpPurpose::Register { .. }) => Some(Lifecycle::Registering),
            Wait::Http(_, HttpPurpose::Renew) => Some(Lifecycle::Renewing),
            Wait::Store(_, StorePurpose::Write { patch, .. }) => match patch {
                Patch::SetRegistration(_) | Patch::SetCimd(_) | Patch::SetPreRegistered(_) => {
                    Some(Lifecycle::Registering)
                }
                Patch::Renewed(_) => Some(Lifecycle::Renewing),
                _ => None,
            },
            // A lease is only taken to register or to renew.
            Wait::Store(_, StorePurpose::Lease) | Wait::Until(_) => Some(match self.identity() {
                IdentityKind::Dcr => Lifecycle::Renewing,
                _ => Lifecycle::Registering,
            }),
            _ => None,
        }
    }

    // ----- inputs -----

    fn handle_start(&mut self, stored: Option<Record>) {
        if self.started {
            self.warn("ignored a second start: build a new client for a new process".into());
            return;
        }
        self.started = true;
        if let Some(record) = stored {
            if self.record_fits(&record) {
                self.server = Some(record.server.clone());
                self.loaded = Some(record.key.clone());
                self.record = Some(record);
            } else {
                self.warn(format!(
                    "the stored record for {} belongs to another configuration (issuer, resource, redirect URI or scopes changed); it is left alone and the client starts afresh",
                    sanitize(&record.key.issuer)
                ));
            }
        }
    }

    fn record_fits(&self, record: &Record) -> bool {
        let key = &record.key;
        let issuer_ok = self.config.issuer.as_ref().is_none_or(|i| *i == key.issuer);
        issuer_ok && record.server.issuer == key.issuer && *key == self.config.key_for(&key.issuer)
    }

    fn handle_operation(&mut self, id: OpId, op: Operation) {
        // Single flight: a caller asking for what is already being done joins it.
        if let Some(job) = self.jobs.iter_mut().find(|job| job.op == op) {
            job.waiters.push(id);
            return;
        }
        self.jobs.push_back(Job {
            op,
            waiters: vec![id],
            cimd_fallback_used: false,
            renewal_failure: None,
            renewed: false,
            reregistered: false,
            obtained_tokens: false,
            refresh_failed: false,
            deleted_remote: false,
            lease_waits: 0,
            login: None,
        });
    }

    fn handle_challenge(&mut self, headers: &[String]) {
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let challenge = resource_challenge(&refs);
        if challenge.resource_metadata.is_some() && self.resource.is_some() {
            // PRM-9: fetch the metadata again; the AS may have changed.
            self.challenge_prm = challenge.resource_metadata;
        }
    }

    fn handle_tick(&mut self, now: Timestamp) {
        match self.wait {
            Wait::Until(at) if now >= at => {
                self.wait = Wait::Nothing;
                // Someone else may have finished meanwhile: read again.
                self.loaded = None;
            }
            Wait::Callback => {
                let expired = self
                    .jobs
                    .front()
                    .and_then(|job| job.login.as_ref())
                    .is_some_and(|login| now >= login.deadline);
                if expired {
                    self.wait = Wait::Nothing;
                    self.finish(Outcome::Failed(Error::CallbackTimeout(
                        self.config.callback_timeout,
                    )));
                }
            }
            _ => {}
        }
    }

    fn handle_callback(&mut self, now: Timestamp, query: &str) {
        if !matches!(self.wait, Wait::Callback) {
            self.warn("ignored a callback: no login is waiting for one".into());
            return;
        }
        let Some(login) = self.jobs.front().and_then(|job| job.login.as_ref()) else {
            return;
        };
        let expectation = CallbackExpectation {
            state: &login.state,
            issuer: &login.issuer,
            iss_required: login.iss_required,
        };
        match check_callback(query, &expectation) {
            // INV-11: a callback that fails the checks is ignored, and its error not shown.
            Err(reason) => self.warn(format!("ignored a callback: {reason}")),
            Ok(CallbackResult::Code(code)) => {
                self.wait = Wait::Nothing;
                let login = self.jobs.front_mut().and_then(|job| job.login.take());
                if let Some(login) = login {
                    self.send_code_exchange(now, &login, &code);
                }
            }
            Ok(CallbackResult::Error(error)) => {
                self.wait = Wait::Nothing;
                if let Some(job) = self.jobs.front_mut() {
                    job.login = None;
                }
                if !self.try_cimd_fallback(&error) {
                    self.finish(Outcome::Failed(Error::AuthorizationDenied(error)));
                }
            }
        }
    }

    fn handle_http(
        &mut self,
        now: Timestamp,
        purpose: HttpPurpose,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        match purpose {
            HttpPurpose::ResourceMetadata {
                candidates,
                current,
                mut failures,
            } => {
                let found = answer.and_then(|(status, body)| {
                    if status != 200 {
                        return Err(format!("HTTP {status}"));
                    }
                    let document = json_object(&body)?;
                    parse_protected_resource(&document, &current)
                });
                match found {
                    Ok(prm) => {
                        let chosen = match &self.config.issuer {
                            Some(issuer) if prm.authorization_servers.contains(issuer) => {
                                Some(issuer.clone())
                            }
                            Some(_) => None,
                            None => prm.authorization_servers.first().cloned(),
                        };
                        let step = match chosen {
                            Some(issuer) => self.begin_server_metadata(issuer, prm.scopes_supported),
                            None => Step::Finish(Outcome::Failed(Error::Discovery(format!(
                                "the resource lists authorization servers {:?}, not the configured --issuer",
                                prm.authorization_servers
                            )))),
                        };
                        self.apply(step);
                    }
                    Err(reason) => {
                        failures.push(format!("{}: {reason}", sanitize(&current.url)));
                        let step = self.next_resource_candidate(candidates, failures);
                        self.apply(step);
                    }
                }
            }
            HttpPurpose::ServerMetadata {
                issuer,
                candidates,
                current,
                mut failures,
                resource_scopes,
            } => {
                let found = answer.and_then(|(status, body)| {
                    if status != 200 {
                        return Err(format!("HTTP {status}"));
                    }
                    parse_server_metadata(&json_object(&body)?, &issuer)
                });
                match found {
                    Ok(mut server) => {
                        if self.config.grant == Grant::AuthorizationCode && !server.pkce_s256 {
                            // MCP-13: PKCE support is confirmed before anything else happens.
                            self.finish(Outcome::Failed(Error::PkceUnsupported { issuer }));
                            return;
                        }
                        server.resource_scopes = resource_scopes;
                        self.server = Some(server);
                    }
                    Err(reason) => {
                        failures.push(format!("{}: {reason}", sanitize(&current)));
                        let step = self.next_server_candidate(
                            issuer,
                            candidates,
                            failures,
                            resource_scopes,
                        );
                        self.apply(step);
                    }
                }
            }
            HttpPurpose::Register { endpoint } => {
                let parsed = answer
                    .map_err(|detail| Error::Transport {
                        url: sanitize(&endpoint),
                        detail,
                    })
                    .and_then(|(status, body)| {
                        parse_registration(&self.config, &endpoint, status, &body)
                    });
                match parsed {
                    Ok((registration, warnings)) => {
                        warnings.into_iter().for_each(|w| self.warn(w));
                        let step = self.write(Patch::SetRegistration(Box::new(registration)));
                        self.apply(step);
                    }
                    Err(error) => {
                        self.release_lease();
                        self.finish(Outcome::Failed(error));
                    }
                }
            }
            HttpPurpose::Renew => self.handle_renewal_answer(now, answer),
            HttpPurpose::Delete => {
                let outcome = match answer {
                    Ok((status, body)) => parse_deletion(status, &body),
                    Err(detail) => Err(ManagementFailure::BadAnswer(detail)),
                };
                match outcome {
                    Ok(deletion) => {
                        if deletion == Deletion::Unsupported {
                            self.warn("the server does not support deleting registrations (405); the registration still exists there (MGMT-14)".into());
                        }
                        if let Some(job) = self.jobs.front_mut() {
                            job.deleted_remote = true;
                        }
                    }
                    Err(failure) => self.finish(Outcome::Failed(Error::Management(format!(
                        "deleting the registration failed: {failure}; nothing was removed locally"
                    )))),
                }
            }
            HttpPurpose::Token { grant } => self.handle_token_answer(now, grant, answer),
        }
    }

    fn handle_renewal_answer(&mut self, now: Timestamp, answer: Result<(u16, Vec<u8>), String>) {
        let Some(current) = self.registration().cloned() else {
            self.release_lease();
            return;
        };
        let outcome = match answer {
            Ok((status, body)) => parse_management_answer(&self.config, &current, status, &body),
            Err(detail) => Err(ManagementFailure::BadAnswer(format!("no answer: {detail}"))),
        };
        match outcome {
            Ok((renewed, warnings)) => {
                warnings.into_iter().for_each(|w| self.warn(w));
                if let Some(job) = self.jobs.front_mut() {
                    job.renewed = true;
                }
                // INV-4: stored before anything else; the lease is released once it is.
                let step = self.write(Patch::Renewed(Box::new(renewed)));
                self.apply(step);
            }
            Err(failure) => {
                self.release_lease();
                let reason = failure.to_string();
                if let Some(job) = self.jobs.front_mut() {
                    job.renewal_failure = Some(reason.clone());
                }
                if !current.secret_expired(now) && self.current_op() != Some(Operation::Renew) {
                    // INV-6: before expiry a failed renewal is a warning; the old secret goes on.
                    self.warn(format!(
                        "renewing the client secret failed ({reason}); the current secret stays in use until {}",
                        current.secret_expires.at().map(|t| t.to_rfc3339()).unwrap_or_default()
                    ));
                }
                if matches!(failure, ManagementFailure::Gone(_)) {
                    let step = self.write(Patch::DropManagement);
                    self.apply(step);
                }
            }
        }
    }

    fn handle_token_answer(
        &mut self,
        now: Timestamp,
        grant: &'static str,
        answer: Result<(u16, Vec<u8>), String>,
    ) {
        let token_endpoint = self
            .server
            .as_ref()
            .map(|s| s.token_endpoint.clone())
            .unwrap_or_default();
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(detail) => {
                self.finish(Outcome::Failed(Error::Transport {
                    url: sanitize(&token_endpoint),
                    detail,
                }));
                return;
            }
        };
        let previous = self
            .record
            .as_ref()
            .and_then(|r| r.tokens.as_ref())
            .and_then(|t| t.refresh_token.clone())
            .filter(|_| grant == "refresh_token");
        match parse_token_answer(status, &body, now, previous.as_ref()) {
            Ok(tokens) => {
                if let Some(job) = self.jobs.front_mut() {
                    job.obtained_tokens = true;
                }
                // INV-4, INV-10: the (possibly rotated) tokens are stored before anything else.
                let step = self.write(Patch::SetTokens(tokens));
                self.apply(step);
            }
            Err(TokenFailure::BadAnswer(reason)) => self.finish(Outcome::Failed(Error::Protocol(
                format!("token endpoint: {reason}"),
            ))),
            Err(TokenFailure::Refused(cause)) => self.handle_token_refusal(grant, cause),
        }
    }

    fn handle_token_refusal(&mut self, grant: &'static str, cause: ServerError) {
        if self.try_cimd_fallback(&cause) {
            return;
        }
        let identity = self.identity();
        if grant == "refresh_token" && cause.is("invalid_grant") {
            // RT-7: the refresh token is dead; drop it and never retry it.
            if let Some(job) = self.jobs.front_mut() {
                job.refresh_failed = true;
            }
            let step = self.write(Patch::ClearTokens);
            self.apply(step);
            return;
        }
        let may_reregister = self.jobs.front().is_some_and(|job| !job.reregistered);
        if cause.is("invalid_client") && identity == IdentityKind::Dcr && may_reregister {
            // DCR-24, MGMT-16, EDGE-13: the server no longer knows this client (deleted,
            // expired, or a renewal answer was lost). Register again, once.
            self.warn(format!(
                "the token endpoint no longer accepts the registered client ({cause}); registering again"
            ));
            if let Some(job) = self.jobs.front_mut() {
                job.reregistered = true;
            }
            let step = self.write(Patch::DropRegistration);
            self.apply(step);
            return;
        }
        let hint = match (cause.code.as_deref(), identity) {
            (Some("invalid_client"), IdentityKind::PreRegistered) => {
                "; check --client-id and the secret".to_string()
            }
            (Some("invalid_client"), _) => {
                "; run `tenure forget` and try again to register anew".into()
            }
            (Some("invalid_grant"), _) => "; run `tenure login` again".into(),
            _ => String::new(),
        };
        self.finish(Outcome::Failed(Error::TokenRejected {
            grant: grant.into(),
            cause,
            hint,
        }));
    }

    /// INV-3: a CIMD client id refused with `invalid_client` or `unauthorized_client` falls
    /// back to DCR once per login. Decided on the error code, never on its text.
    fn try_cimd_fallback(&mut self, error: &ServerError) -> bool {
        let rejected = error.is("invalid_client") || error.is("unauthorized_client");
        let can = self.identity() == IdentityKind::Cimd
            && self.jobs.front().is_some_and(|job| !job.cimd_fallback_used);
        if !(rejected && can) {
            return false;
        }
        if let Some(job) = self.jobs.front_mut() {
            job.cimd_fallback_used = true;
        }
        self.warn(format!(
            "the authorization server rejected the CIMD client id ({error}); falling back to dynamic registration"
        ));
        let step = self.write(Patch::RejectCimd);
        self.apply(step);
        true
    }

    fn handle_store(&mut self, now: Timestamp, purpose: StorePurpose, result: StoreResult) {
        match (purpose, result) {
            (_, StoreResult::Failed(reason)) => {
                self.release_lease();
                self.finish(Outcome::Failed(Error::Store(reason)));
            }
            (StorePurpose::Load, StoreResult::Loaded(found)) => {
                let key = self.current_key();
                match found {
                    Some(record) if Some(&record.key) == key.as_ref() => self.record = Some(record),
                    Some(_) => {
                        self.finish(Outcome::Failed(Error::Store(
                            "the store answered with a record of another key".into(),
                        )));
                        return;
                    }
                    None => self.record = None,
                }
                self.loaded = key;
            }
            (StorePurpose::Write { patch, .. }, StoreResult::Written) => {
                if let Some(record) = self.pending_write.take() {
                    self.record = Some(record);
                }
                if matches!(patch, Patch::Renewed(_)) {
                    // Reported as `Renewed` until the job ends.
                    self.just_renewed = true;
                }
                if matches!(patch, Patch::SetRegistration(_) | Patch::Renewed(_)) {
                    self.release_lease();
                }
            }
            (StorePurpose::Write { patch, retries }, StoreResult::Conflict(current)) => {
                // INV-9: someone wrote first. Adopt what they wrote and apply the change to it.
                self.record = current;
                if retries >= MAX_WRITE_RETRIES {
                    self.finish(Outcome::Failed(Error::Store(
                        "the record kept changing under concurrent writers; try again".into(),
                    )));
                } else {
                    let step = self.write_with(patch, retries + 1);
                    self.apply(step);
                }
            }
            (StorePurpose::Delete, StoreResult::Deleted) => {
                self.record = None;
                self.finish(Outcome::Done);
            }
            (StorePurpose::Delete, StoreResult::Conflict(current)) => {
                self.record = current;
            }
            (StorePurpose::Lease, StoreResult::LeaseTaken) => {
                self.lease_held = true;
                // Read again under the lease: another replica may have just finished.
                self.loaded = None;
            }
            (StorePurpose::Lease, StoreResult::LeaseHeld) => {
                let Some(job) = self.jobs.front_mut() else {
                    return;
                };
                job.lease_waits += 1;
                if job.lease_waits > MAX_LEASE_WAITS {
                    self.finish(Outcome::Failed(Error::Store(
                        "another process has held the registration lease for too long; try again later".into(),
                    )));
                    return;
                }
                let exponent = job.lease_waits.min(5) - 1;
                let backoff = Duration::from_millis(LEASE_BACKOFF.as_millis() << exponent)
                    .min(LEASE_BACKOFF_CAP);
                self.wait = Wait::Until(now + backoff);
            }
            (_, other) => {
                self.finish(Outcome::Failed(Error::Store(format!(
                    "unexpected store answer {other:?}"
                ))));
            }
        }
    }

    // ----- deciding -----

    /// Carries out a step decided outside [`Client::next_step`].
    fn apply(&mut self, step: Step) {
        match step {
            Step::Wait(wait) => self.wait = wait,
            Step::Finish(outcome) => self.finish(outcome),
        }
    }

    fn advance(&mut self, now: Timestamp) {
        // Bounded: every iteration either issues a command and returns, or finishes a job.
        while matches!(self.wait, Wait::Nothing) && self.started && !self.jobs.is_empty() {
            let step = self.next_step(now);
            self.apply(step);
        }
    }

    /// The one place where the lifecycle decides what happens next.
    fn next_step(&mut self, now: Timestamp) -> Step {
        let Some(op) = self.current_op() else {
            return Step::Finish(Outcome::Done);
        };
        if let Some(error) = &self.config_error {
            return Step::Finish(Outcome::Failed(error.clone().into()));
        }
        if self.challenge_prm.is_some() {
            // PRM-9: a challenge named metadata; discover again, the AS may have moved.
            self.server = None;
        }
        let Some(server) = self.server.clone() else {
            if matches!(op, Operation::Forget | Operation::Logout) && self.record.is_none() {
                // Nothing is held, so there is nothing to discover for.
                return Step::Finish(Outcome::Done);
            }
            return self.begin_discovery();
        };
        let key = self.config.key_for(&server.issuer);
        if self.loaded.as_ref() != Some(&key) {
            return self.store(StoreOp::Load { key }, StorePurpose::Load);
        }
        match op {
            Operation::Logout => match self.record.as_ref().and_then(|r| r.tokens.as_ref()) {
                Some(_) => self.write(Patch::ClearTokens),
                None => Step::Finish(Outcome::Done),
            },
            Operation::Forget => self.step_forget(),
            Operation::Token | Operation::Login | Operation::Renew => {
                self.step_credentials(now, op, &server)
            }
        }
    }

    fn step_forget(&mut self) -> Step {
        let deleted_remote = self.jobs.front().is_some_and(|job| job.deleted_remote);
        if !deleted_remote {
            if let Some(registration) = self.registration().filter(|r| r.manageable()) {
                let request = management_request(registration, http::Method::DELETE);
                return match request {
                    Ok(request) => self.http(
                        RequestKind::RegistrationDelete,
                        request,
                        HttpPurpose::Delete,
                    ),
                    Err(failure) => {
                        Step::Finish(Outcome::Failed(Error::Management(failure.to_string())))
                    }
                };
            }
            if self.identity() == IdentityKind::Dcr {
                self.warn("the registration cannot be deleted at the server (no registration management); it is only forgotten locally".into());
            }
        }
        match &self.record {
            Some(record) => {
                let op = StoreOp::Delete {
                    key: record.key.clone(),
                    expected: record.generation,
                };
                self.store(op, StorePurpose::Delete)
            }
            None => Step::Finish(Outcome::Done),
        }
    }

    fn step_credentials(&mut self, now: Timestamp, op: Operation, server: &AuthServer) -> Step {
        // 1. An identity.
        let identity = self.identity();
        if identity == IdentityKind::None || self.pre_registration_stale() {
            return self.step_register(server);
        }

        // 2. A secret that will keep working.
        match self.registration().cloned() {
            Some(registration) => {
                if let Some(step) = self.step_renewal(now, op, &registration) {
                    return step;
                }
            }
            None if op == Operation::Renew => {
                return Step::Finish(Outcome::Failed(Error::RenewalFailed(format!(
                    "the client is {}; only a dynamically registered client has a secret to renew",
                    identity.as_str()
                ))))
            }
            None => {}
        }
        if op == Operation::Renew {
            return Step::Finish(Outcome::Done);
        }

        // 3. Tokens.
        let Some(job) = self.jobs.front() else {
            return Step::Finish(Outcome::Done);
        };
        let logged_in = job.obtained_tokens;
        let refresh_failed = job.refresh_failed;
        let tokens = self.record.as_ref().and_then(|r| r.tokens.clone());
        if let Some(tokens) = &tokens {
            // A token obtained during this job is handed out even when its lifetime is
            // shorter than the safety margin; asking again would only loop.
            if (op == Operation::Token && tokens.access_token_valid(now)) || logged_in {
                return Step::Finish(Outcome::Token(tokens.clone()));
            }
        }
        if op == Operation::Token && !refresh_failed {
            if let Some(refresh_token) = tokens.as_ref().and_then(|t| t.refresh_token.clone()) {
                // INV-10: one refresh in flight per grant, since jobs run one at a time.
                return self.send_token_request(
                    now,
                    GrantRequest::Refresh {
                        refresh_token: &refresh_token,
                    },
                );
            }
        }
        match self.config.grant {
            Grant::ClientCredentials => {
                let scopes = self.config.scopes.clone();
                self.send_token_request(now, GrantRequest::ClientCredentials { scopes: &scopes })
            }
            Grant::AuthorizationCode if op == Operation::Login => {
                self.begin_authorization(now, server)
            }
            Grant::AuthorizationCode => Step::Finish(Outcome::LoginRequired(if refresh_failed {
                "the refresh token is no longer accepted".into()
            } else {
                "no valid tokens are held".into()
            })),
        }
    }

    /// Whether the stored pre-registered client id differs from the configured one (added,
    /// changed or removed since the record was written).
    fn pre_registration_stale(&self) -> bool {
        let stored = self
            .record
            .as_ref()
            .and_then(|r| r.pre_registered_client_id.as_ref());
        stored != self.config.client_id.as_ref()
    }

    fn step_register(&mut self, server: &AuthServer) -> Step {
        let cimd_rejected = self
            .record
            .as_ref()
            .and_then(|r| r.cimd.as_ref())
            .is_some_and(|c| c.rejected);
        match choose_method(&self.config, server, cimd_rejected) {
            _ if self.pre_registration_stale() => {
                self.write(Patch::SetPreRegistered(self.config.client_id.clone()))
            }
            Some(Method::PreRegistered) => Step::Finish(Outcome::Failed(Error::Protocol(
                "the pre-registered client id is already recorded".into(),
            ))),
            // No request: the URL is the client id (INV-2 keeps it apart from DCR).
            Some(Method::Cimd) => {
                let url = self.config.cimd_url.clone().unwrap_or_default();
                self.write(Patch::SetCimd(url))
            }
            Some(Method::Dcr) => {
                if !self.lease_held {
                    return self.take_lease();
                }
                let endpoint = server.registration_endpoint.clone().unwrap_or_default();
                match registration_request(&self.config, server, &endpoint) {
                    Ok(request) => self.http(
                        RequestKind::Registration,
                        request,
                        HttpPurpose::Register { endpoint },
                    ),
                    Err(error) => Step::Finish(Outcome::Failed(error)),
                }
            }
            None => Step::Finish(Outcome::Failed(Error::NoRegistrationMethod {
                issuer: server.issuer.clone(),
            })),
        }
    }

    /// Renews when due and allowed (INV-1, INV-5, INV-6, INV-8); `None` means go on with the
    /// current secret.
    fn step_renewal(
        &mut self,
        now: Timestamp,
        op: Operation,
        registration: &Registration,
    ) -> Option<Step> {
        let job = self.jobs.front()?;
        if job.renewed {
            return None;
        }
        let due =
            op == Operation::Renew || registration.secret_expiring(now, self.config.renew_within);
        if due && job.renewal_failure.is_none() && !self.renewal_attempted {
            if registration.manageable() {
                if !self.lease_held {
                    // Under the lease the record is read again first: another replica may
                    // have renewed while this one waited (INV-8).
                    return Some(self.take_lease());
                }
                self.renewal_attempted = true;
                return Some(match management_request(registration, http::Method::PUT) {
                    Ok(request) => {
                        self.http(RequestKind::RegistrationUpdate, request, HttpPurpose::Renew)
                    }
                    Err(failure) => {
                        Step::Finish(Outcome::Failed(Error::RenewalFailed(failure.to_string())))
                    }
                });
            }
            self.renewal_attempted = true;
            let reason = ManagementFailure::Unavailable.to_string();
            if !registration.secret_expired(now) && op != Operation::Renew {
                self.warn(format!(
                    "the client secret expires soon and cannot be renewed: {reason}"
                ));
            }
            if let Some(job) = self.jobs.front_mut() {
                job.renewal_failure = Some(reason);
            }
        }
        if self.lease_held && !due {
            self.release_lease();
        }
        let reason = self
            .jobs
            .front()
            .and_then(|job| job.renewal_failure.clone())
            .unwrap_or_else(|| {
                "renewal was already attempted since this process started; start again to retry"
                    .into()
            });
        match registration.secret_expires.at() {
            // INV-5, INV-6: an expired secret is never sent; this is a hard error.
            Some(at) if registration.secret_expired(now) => {
                Some(Step::Finish(Outcome::Failed(Error::SecretExpired {
                    at,
                    reason,
                })))
            }
            _ if op == Operation::Renew => {
                Some(Step::Finish(Outcome::Failed(Error::RenewalFailed(reason))))
            }
            _ => None,
        }
    }

    fn begin_authorization(&mut self, now: Timestamp, server: &AuthServer) -> Step {
        let Some(endpoint) = server.authorization_endpoint.clone() else {
            return Step::Finish(Outcome::Failed(Error::Discovery(
                "the authorization server has no authorization_endpoint; use --grant client_credentials".into(),
            )));
        };
        let Some(client_id) = self.client_id().map(str::to_owned) else {
            return Step::Finish(Outcome::Failed(Error::Protocol("no client id".into())));
        };
        // PKCE-1, PKCE-7: a fresh verifier and state for every authorization request.
        let verifier = Secret::new(self.entropy.token());
        let state = self.entropy.token();
        let redirect_uri = self
            .registration()
            .and_then(|r| r.redirect_uri.clone())
            .unwrap_or_else(|| self.config.redirect_uri.clone());
        let challenge = pkce_challenge(verifier.expose());
        let url = authorization_url(&AuthorizationParams {
            endpoint: &endpoint,
            client_id: &client_id,
            redirect_uri: &redirect_uri,
            scopes: &self.config.scopes,
            state: &state,
            code_challenge: &challenge,
            resource: self.resource.as_deref(),
        });
        let url = match url {
            Ok(url) => url,
            Err(reason) => return Step::Finish(Outcome::Failed(Error::Discovery(reason))),
        };
        let login = PendingLogin {
            state,
            verifier,
            issuer: server.issuer.clone(),
            redirect_uri,
            client_id,
            iss_required: server.iss_parameter_supported,
            deadline: now + self.config.callback_timeout,
        };
        if let Some(job) = self.jobs.front_mut() {
            job.login = Some(login);
        }
        self.out.push_back(Command::OpenBrowser { url });
        Step::Wait(Wait::Callback)
    }

    fn send_code_exchange(&mut self, now: Timestamp, login: &PendingLogin, code: &Secret) {
        let step = if self.client_id() != Some(login.client_id.as_str()) {
            Step::Finish(Outcome::Failed(Error::Protocol(
                "the client identity changed during the login; log in again".into(),
            )))
        } else {
            self.send_token_request(
                now,
                GrantRequest::Code {
                    code,
                    verifier: &login.verifier,
                    redirect_uri: &login.redirect_uri,
                },
            )
        };
        self.apply(step);
    }

    fn send_token_request(&mut self, now: Timestamp, grant: GrantRequest<'_>) -> Step {
        let Some(server) = self.server.clone() else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no server metadata".into(),
            )));
        };
        let auth = match self.client_auth(now) {
            Ok(auth) => auth,
            Err(error) => return Step::Finish(Outcome::Failed(error)),
        };
        let (client_id, secret, method) = auth;
        let auth = match (method, secret.as_ref()) {
            (crate::config::AuthMethod::ClientSecretBasic, Some(secret)) => ClientAuth::Basic {
                client_id: &client_id,
                secret,
            },
            (crate::config::AuthMethod::ClientSecretPost, Some(secret)) => ClientAuth::Post {
                client_id: &client_id,
                secret,
            },
            _ => ClientAuth::None {
                client_id: &client_id,
            },
        };
        let kind = match grant {
            GrantRequest::Code { .. } => RequestKind::CodeExchange,
            GrantRequest::Refresh { .. } => RequestKind::Refresh,
            _ => RequestKind::ClientCredentials,
        };
        let grant_type = grant.grant_type();
        match token_request(
            &server.token_endpoint,
            auth,
            grant,
            self.resource.as_deref(),
        ) {
            Ok(request) => self.http(kind, request, HttpPurpose::Token { grant: grant_type }),
            Err(reason) => Step::Finish(Outcome::Failed(Error::Protocol(reason))),
        }
    }

    /// The client id, secret and method for the token endpoint. A secret is only handed out
    /// while it has not expired (INV-5), and only ever to the token endpoint (MGMT-22).
    fn client_auth(
        &self,
        now: Timestamp,
    ) -> Result<(String, Option<Secret>, crate::config::AuthMethod), Error> {
        use crate::config::AuthMethod;
        match self.identity() {
            IdentityKind::PreRegistered => Ok((
                self.config.client_id.clone().unwrap_or_default(),
                self.config.client_secret.clone(),
                self.config
                    .auth_method
                    .unwrap_or(if self.config.client_secret.is_some() {
                        AuthMethod::ClientSecretBasic
                    } else {
                        AuthMethod::None
                    }),
            )),
            IdentityKind::Cimd => Ok((
                self.client_id().unwrap_or_default().to_owned(),
                None,
                AuthMethod::None,
            )),
            IdentityKind::Dcr => {
                let registration = self
                    .registration()
                    .ok_or_else(|| Error::Protocol("no registration".into()))?;
                if let Some(at) = registration
                    .secret_expires
                    .at()
                    .filter(|_| registration.secret_expired(now))
                {
                    return Err(Error::SecretExpired {
                        at,
                        reason: "it was not renewed".into(),
                    });
                }
                Ok((
                    registration.client_id.clone(),
                    registration.client_secret.clone(),
                    registration.token_endpoint_auth_method,
                ))
            }
            IdentityKind::None => Err(Error::Protocol("no client identity".into())),
        }
    }

    // ----- discovery -----

    fn begin_discovery(&mut self) -> Step {
        match (self.resource.clone(), self.config.issuer.clone()) {
            (Some(resource), _) => {
                let link = self.challenge_prm.take();
                match prm_candidates(&resource, link.as_deref()) {
                    Ok(candidates) => self.next_resource_candidate(candidates.into(), Vec::new()),
                    Err(reason) => Step::Finish(Outcome::Failed(Error::Discovery(reason))),
                }
            }
            (None, Some(issuer)) => self.begin_server_metadata(issuer, None),
            (None, None) => Step::Finish(Outcome::Failed(ConfigError::NoServer.into())),
        }
    }

    fn next_resource_candidate(
        &mut self,
        mut candidates: VecDeque<PrmCandidate>,
        mut failures: Vec<String>,
    ) -> Step {
        let Some(current) = candidates.pop_front() else {
            return Step::Finish(Outcome::Failed(Error::Discovery(format!(
                "no usable protected resource metadata ({}); check --resource, or give --issuer",
                failures.join("; ")
            ))));
        };
        match crate::wire::get_json(&current.url) {
            Ok(request) => {
                let purpose = HttpPurpose::ResourceMetadata {
                    candidates,
                    current,
                    failures,
                };
                self.http(RequestKind::ResourceMetadata, request, purpose)
            }
            Err(reason) => {
                failures.push(reason);
                self.next_resource_candidate(candidates, failures)
            }
        }
    }

    fn begin_server_metadata(
        &mut self,
        issuer: String,
        resource_scopes: Option<Vec<String>>,
    ) -> Step {
        match metadata_candidates(&issuer) {
            Ok(candidates) => {
                self.next_server_candidate(issuer, candidates.into(), Vec::new(), resource_scopes)
            }
            Err(reason) => Step::Finish(Outcome::Failed(Error::Discovery(reason))),
        }
    }

    fn next_server_candidate(
        &mut self,
        issuer: String,
        mut candidates: VecDeque<String>,
        mut failures: Vec<String>,
        resource_scopes: Option<Vec<String>>,
    ) -> Step {
        let Some(current) = candidates.pop_front() else {
            return Step::Finish(Outcome::Failed(Error::Discovery(format!(
                "no usable metadata for issuer {issuer} ({}); check the issuer URL",
                failures.join("; ")
            ))));
        };
        match crate::wire::get_json(&current) {
            Ok(request) => {
                let purpose = HttpPurpose::ServerMetadata {
                    issuer,
                    candidates,
                    current,
                    failures,
                    resource_scopes,
                };
                self.http(RequestKind::ServerMetadata, request, purpose)
            }
            Err(reason) => {
                failures.push(reason);
                self.next_server_candidate(issuer, candidates, failures, resource_scopes)
            }
        }
    }

    // ----- effects -----

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn http(
        &mut self,
        kind: RequestKind,
        request: http::Request<Vec<u8>>,
        purpose: HttpPurpose,
    ) -> Step {
        let id = RequestId(self.next_id());
        self.out.push_back(Command::Http { id, kind, request });
        Step::Wait(Wait::Http(id, purpose))
    }

    fn store(&mut self, op: StoreOp, purpose: StorePurpose) -> Step {
        let id = StoreOpId(self.next_id());
        self.out.push_back(Command::Store { id, op });
        Step::Wait(Wait::Store(id, purpose))
    }

    fn take_lease(&mut self) -> Step {
        let Some(key) = self.current_key() else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no key for the lease".into(),
            )));
        };
        let op = StoreOp::TakeLease {
            key,
            holder: self.holder.clone(),
            ttl: self.config.lease_ttl,
        };
        self.store(op, StorePurpose::Lease)
    }

    /// Releases the lease without waiting for the answer: an unreleased lease only expires.
    fn release_lease(&mut self) {
        if !std::mem::take(&mut self.lease_held) {
            return;
        }
        if let Some(key) = self.current_key() {
            let id = StoreOpId(self.next_id());
            let op = StoreOp::ReleaseLease {
                key,
                holder: self.holder.clone(),
            };
            self.out.push_back(Command::Store { id, op });
        }
    }

    /// Writes a change with compare-and-swap on the generation last read (INV-4, INV-9).
    fn write(&mut self, patch: Patch) -> Step {
        self.write_with(patch, 0)
    }

    fn write_with(&mut self, patch: Patch, retries: u32) -> Step {
        let (Some(server), Some(key)) = (self.server.clone(), self.current_key()) else {
            return Step::Finish(Outcome::Failed(Error::Protocol(
                "no authorization server to write a record for".into(),
            )));
        };
        let base = self.record.clone();
        let expected = base.as_ref().map(|r| r.generation);
        let mut next = base.unwrap_or_else(|| Record::new(key.clone(), server.clone()));
        next.server = server;
        patch.apply(&mut next);
        next.generation = expected.unwrap_or(0) + 1;
        self.pending_write = Some(next.clone());
        let op = StoreOp::CompareAndSwap {
            key,
            expected,
            record: Box::new(next),
        };
        self.store(op, StorePurpose::Write { patch, retries })
    }

    fn warn(&mut self, message: String) {
        self.out.push_back(Command::Emit(Event::Warning(message)));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.release_lease();
        self.just_renewed = false;
        self.wait = Wait::Nothing;
        let Some(job) = self.jobs.pop_front() else {
            return;
        };
        for op in job.waiters {
            let event = match &outcome {
                Outcome::Token(tokens) => Event::TokenReady {
                    op,
                    access_token: tokens.access_token.clone(),
                    expires_at: tokens.expires_at,
                },
                Outcome::Done => Event::Done { op },
                Outcome::LoginRequired(reason) => Event::LoginRequired {
                    op,
                    reason: reason.clone(),
                },
                Outcome::Failed(error) => Event::Failed {
                    op,
                    error: error.clone(),
                },
            };
            self.out.push_back(Command::Emit(event));
        }
    }

    fn report_lifecycle(&mut self, now: Timestamp, at: usize) {
        if matches!(self.wait, Wait::Store(_, StorePurpose::Load)) {
            // A read says nothing about the lifecycle; report once its result is known.
            return;
        }
        let state = self.lifecycle(now);
        if self.reported != Some(state) {
            self.reported = Some(state);
            let at = at.min(self.out.len());
            self.out
                .insert(at, Command::Emit(Event::StateChanged(state)));
        }
    }

    // ----- reading state -----

    fn current_op(&self) -> Option<Operation> {
        self.jobs.front().map(|job| job.op)
    }

    fn current_key(&self) -> Option<ClientKey> {
        self.server.as_ref().map(|s| self.config.key_for(&s.issuer))
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
