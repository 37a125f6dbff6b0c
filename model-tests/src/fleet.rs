//! Stateright models of a fleet: several replicas of one client key sharing one store and one
//! authorization server (AS), with crashes, lease expiry and an unordered network.
//!
//! The replicas run an abstract copy of the core's decision procedure (`core/src/machine/`):
//! [`Fleet::next_step`] mirrors `Client::next_step`, `step_register` and `step_renewal` in
//! `decide.rs`; the answer handlers mirror `handle_store`, `handle_http` and
//! `handle_renewal_answer` in `inputs.rs`; `write`, `take_lease` and `release_lease` mirror
//! `effects.rs`. Every message between a replica and the store or the AS travels through one
//! unordered network, so the checker tries every interleaving and every delivery order.
//!
//! A model is a value of [`Fleet`]: its fields are the bounds (replicas, crashes, clock) and
//! switches that either describe the environment (does the AS accept the CIMD id, may a
//! renewal fail, does the AS revoke a secret when it issues a new one) or break the protocol
//! on purpose (no re-read under the lease, no compare-and-swap, a lease that expires under a
//! live holder) so that tests can show the checker finds the resulting violation.
//! `model-tests/MODELS.md` explains each model, its bounds and what it abstracts away.

use std::collections::BTreeMap;

use stateright::{Model, Property};

/// How many times a refused compare-and-swap is retried: 5, as `MAX_WRITE_RETRIES` in
/// `core/src/machine/mod.rs`.
pub const MAX_WRITE_RETRIES: u8 = 5;
/// How many times a replica waits for a busy lease before its operation fails (the core
/// allows 20, `MAX_LEASE_WAITS`).
pub const MAX_LEASE_WAITS: u8 = 2;

// ----- the durable record -----

/// A client id as the model tells them apart: the configured CIMD URL, or the n-th client
/// the AS registered through DCR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientId {
    /// The Client ID Metadata Document URL (the URL is the client id).
    Cimd,
    /// A client id the AS issued through dynamic registration.
    Dcr(u8),
}

/// A DCR registration: client id, secret (and registration access token) version, and the
/// secret's absolute expiry on the model clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registration {
    /// The client id the AS issued.
    pub client_id: ClientId,
    /// 0 for the secret from the registration, n after the n-th renewal.
    pub version: u8,
    /// The clock value at which the secret stops working.
    pub expires_at: u8,
}

impl Registration {
    /// Whether the secret has expired at `now` (`Registration::secret_expired`).
    pub fn expired(&self, now: u8) -> bool {
        self.expires_at <= now
    }

    /// Whether the secret expires within `window` of `now` (`Registration::secret_expiring`).
    pub fn expiring(&self, now: u8, window: u8) -> bool {
        self.expires_at <= now.saturating_add(window)
    }
}

/// The stored record: `core/src/record.rs` reduced to what the protocol decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Record {
    /// The compare-and-swap generation (INV-9).
    pub generation: u8,
    /// The CIMD identity, and whether the AS rejected it.
    pub cimd: Option<CimdId>,
    /// The DCR slot (INV-2: never holds the CIMD URL).
    pub dcr: Option<Registration>,
}

/// The stored CIMD identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CimdId {
    /// The AS refused the CIMD client id; DCR is used instead (INV-3).
    pub rejected: bool,
}

/// How a replica is identified (`IdentityKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identity {
    None,
    Cimd,
    Dcr,
}

impl Record {
    fn empty() -> Self {
        Record {
            generation: 0,
            cimd: None,
            dcr: None,
        }
    }

    /// `Record::identity` in `core/src/record.rs` (no pre-registered ids in the model).
    fn identity(&self) -> Identity {
        match (&self.cimd, &self.dcr) {
            (Some(cimd), _) if !cimd.rejected => Identity::Cimd,
            (_, Some(_)) => Identity::Dcr,
            _ => Identity::None,
        }
    }
}

/// A change to the record (`Patch` in `core/src/machine/mod.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Patch {
    /// Use the CIMD URL as the client id.
    SetCimd,
    /// The AS refused the CIMD id.
    RejectCimd,
    /// Store a new DCR registration.
    SetRegistration(Registration),
    /// Store a renewed registration.
    Renewed(Registration),
    /// The token endpoint refused this registration (`invalid_client`): drop it and register
    /// again (DCR-24).
    DropRegistration(Registration),
}

impl Patch {
    /// `Patch::apply`.
    fn apply(&self, record: &mut Record) {
        match *self {
            Patch::SetCimd => record.cimd = Some(CimdId { rejected: false }),
            Patch::RejectCimd => {
                if let Some(cimd) = &mut record.cimd {
                    cimd.rejected = true;
                }
            }
            Patch::SetRegistration(registration) | Patch::Renewed(registration) => {
                record.dcr = Some(registration)
            }
            Patch::DropRegistration(_) => {
                // INV-2: only the DCR slot is cleared; a CIMD id stays.
                record.dcr = None;
            }
        }
    }

    /// Whether the change still makes sense on `current`, the record another writer stored
    /// first. Used only by [`Retry::Recheck`], the retry rule these models propose.
    fn still_applies(&self, current: Option<&Record>) -> bool {
        let dcr = current.and_then(|r| r.dcr);
        let cimd = current.and_then(|r| r.cimd);
        match *self {
            Patch::SetCimd => cimd.is_none(),
            Patch::RejectCimd => cimd.is_some_and(|c| !c.rejected),
            Patch::SetRegistration(_) => current.is_none_or(|r| r.identity() == Identity::None),
            Patch::Renewed(new) => {
                dcr.is_none_or(|d| d.client_id == new.client_id && d.version < new.version)
            }
            Patch::DropRegistration(rejected) => dcr == Some(rejected),
        }
    }
}

// ----- processes and messages -----

/// One process: a replica in one of its lives (each crash starts a new incarnation, with a
/// new lease holder id, as a new process gets fresh entropy for `holder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proc {
    /// Which replica.
    pub replica: u8,
    /// How many times it crashed before this life.
    pub incarnation: u8,
}

/// A store operation (`StoreOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreOp {
    /// Read the record.
    Load,
    /// Write `record` if the stored generation is `expected`.
    Cas {
        /// The generation the writer read (`None`: nothing stored).
        expected: Option<u8>,
        /// The new record, at `expected + 1`.
        record: Record,
    },
    /// Take (or extend) the lease; the number counts the sender's acquisitions.
    TakeLease(u8),
    /// Release the lease if the sender holds it (under [`Release::Fenced`], only the
    /// acquisition with this number); nobody waits for the answer.
    ReleaseLease(u8),
}

/// A store answer (`StoreResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreAnswer {
    /// What is stored.
    Loaded(Option<Record>),
    /// The compare-and-swap was applied.
    Written,
    /// Another writer came first; carries what is stored.
    Conflict(Option<Record>),
    /// The sender holds the lease.
    LeaseTaken,
    /// Another holder has the lease.
    LeaseHeld,
}

/// A request to the AS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AsRequest {
    /// RFC 7591 registration.
    Register,
    /// RFC 7592 update of `registration` (authenticated with its registration access token).
    Renew(Registration),
    /// A token request with this client id and, for DCR, this secret, sent at `sent_at`.
    Token {
        /// The client id presented.
        client_id: ClientId,
        /// The secret presented, if any.
        secret: Option<Registration>,
        /// The clock when it was sent.
        sent_at: u8,
    },
}

/// An answer from the AS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AsAnswer {
    /// A new registration.
    Registered(Registration),
    /// A renewed registration.
    Renewed(Registration),
    /// The renewal failed (a 5xx, say).
    RenewalFailed,
    /// Tokens were issued.
    Tokens,
    /// `invalid_client` from the token endpoint.
    InvalidClient,
}

/// A request in flight. Answers are not messages: a request's answer is handled by its
/// sender in the same step as the request is carried out (see `MODELS.md`, "Abstractions").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// From a replica to the store.
    Store(Proc, StoreOp),
    /// From a replica to the AS.
    As(Proc, AsRequest),
}

// ----- replicas -----

/// What a replica waits for (`Wait` and `HttpPurpose`/`StorePurpose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Nothing: the next step is decided at once.
    Nothing,
    /// A load.
    Load,
    /// A lease.
    Lease,
    /// A busy lease: waiting before looking again (`Wait::Until`).
    Backoff,
    /// A registration answer.
    Register,
    /// A renewal answer.
    Renew(Registration),
    /// A compare-and-swap of `record`, made from `patch`.
    Write {
        /// The change.
        patch: Patch,
        /// The record sent.
        record: Record,
        /// Retries so far.
        retries: u8,
    },
    /// A token answer.
    Token(Option<Registration>),
    /// The operation is over, with tokens (`true`) or an error.
    Done(bool),
}

/// One operation ("get a token") and what it remembers (`Job`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Job {
    /// CIMD → DCR fallbacks in this operation (INV-3: at most one).
    pub fallbacks: u8,
    /// A renewal failed during this operation.
    pub renewal_failed: bool,
    /// A renewal succeeded during this operation.
    pub renewed: bool,
    /// The registration was dropped after `invalid_client` (once per operation).
    pub reregistered: bool,
    /// Tokens were obtained.
    pub obtained_tokens: bool,
    /// Waits for a busy lease.
    pub lease_waits: u8,
}

/// A replica's in-flight state; a crash loses all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    /// The current life.
    pub incarnation: u8,
    /// What it waits for.
    pub wait: Wait,
    /// The record as last acknowledged by the store.
    pub view: Option<Record>,
    /// Whether `view` reflects a load (`Client::loaded`).
    pub loaded: bool,
    /// Whether it believes it holds the lease.
    pub lease_held: bool,
    /// Renewal was attempted in this process start (INV-1).
    pub renewal_attempted: bool,
    /// Renewal requests sent in this process start (INV-1).
    pub renewals_sent: u8,
    /// Leases asked for in this process start.
    pub acquisitions: u8,
    /// The registration being renewed, from the request until its answer is stored.
    pub renewing: Option<Registration>,
    /// The operation.
    pub job: Job,
}

impl Replica {
    fn new(incarnation: u8) -> Self {
        Replica {
            incarnation,
            wait: Wait::Nothing,
            view: None,
            loaded: false,
            lease_held: false,
            renewal_attempted: false,
            renewals_sent: 0,
            acquisitions: 0,
            renewing: None,
            job: Job::default(),
        }
    }

    fn identity(&self) -> Identity {
        self.view.map_or(Identity::None, |r| r.identity())
    }

    fn registration(&self) -> Option<Registration> {
        self.view
            .filter(|r| r.identity() == Identity::Dcr)
            .and_then(|r| r.dcr)
    }
}

// ----- store, server, history -----

/// The shared store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    /// The record.
    pub record: Option<Record>,
    /// The lease holder and the number of the acquisition it holds, if any.
    pub lease: Option<(Proc, u8)>,
}

/// The authorization server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Server {
    /// Whether the CIMD id is accepted at the token endpoint.
    pub accepts_cimd: bool,
    /// The latest secret version of each registered client (index n-1 for `Dcr(n)`).
    pub versions: Vec<u8>,
}

/// Counters and flags the properties read: what happened so far in this run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Registration requests sent.
    pub registrations: u8,
    /// Registration requests whose sender crashed before their answer was stored.
    pub registrations_excused: u8,
    /// Per (client, secret version): renewal requests sent, and those excused: the AS failed
    /// them, or their sender crashed before their answer was stored.
    pub renewals: BTreeMap<(ClientId, u8), (u8, u8)>,
    /// Every registration (client, version) that was ever stored.
    pub stored: Vec<(ClientId, u8)>,
    /// A credential was presented before it was stored (INV-4).
    pub used_unstored: bool,
    /// An expired secret was sent to the token endpoint (INV-5).
    pub expired_secret_sent: bool,
    /// A write was applied over a generation its writer had not read (INV-9).
    pub stale_write: bool,
    /// A stored secret was replaced by an older one of the same client (INV-9).
    pub secret_rolled_back: bool,
    /// A registration the AS still accepted was dropped from the store (INV-9).
    pub live_registration_dropped: bool,
    /// A stored CIMD rejection was undone (INV-9, INV-3).
    pub cimd_unrejected: bool,
    /// A stored CIMD id was removed (INV-2).
    pub cimd_removed: bool,
    /// The AS issued tokens to the CIMD client id.
    pub cimd_tokens: bool,
    /// A replica crashed while a registration was in flight.
    pub crashed_registering: bool,
    /// A replica crashed while a renewal was in flight.
    pub crashed_renewing: bool,
    /// A replica took the lease, read again and found nothing left to do.
    pub found_done_under_lease: bool,
}

/// The state of the whole fleet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The shared wall clock, in renewal-window units.
    pub now: u8,
    /// Crashes so far.
    pub crashes: u8,
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// The store.
    pub store: Store,
    /// The AS.
    pub server: Server,
    /// Messages in flight: a multiset, kept sorted so that equal states hash alike.
    pub network: Vec<Msg>,
    /// What happened so far.
    pub history: History,
}

impl State {
    fn alive(&self, proc: Proc) -> bool {
        self.replicas[proc.replica as usize].incarnation == proc.incarnation
    }

    fn proc(&self, r: usize) -> Proc {
        Proc {
            replica: r as u8,
            incarnation: self.replicas[r].incarnation,
        }
    }
}

/// A step of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver one message; `fail` makes the AS answer a renewal with an error.
    Deliver {
        /// The message.
        msg: Msg,
        /// Whether the AS fails the request (renewals only).
        fail: bool,
    },
    /// A replica crashes and starts again from the store.
    Crash(u8),
    /// A replica waiting for a busy lease looks again.
    Wake(u8),
    /// The clock moves on by one unit.
    Tick,
    /// The lease times out.
    LeaseExpires,
}

// ----- the model -----

/// What the store holds when the model starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Nothing: the replicas must register.
    Empty,
    /// A DCR registration (client 1, version 0) whose secret expires at this clock value.
    Registered(u8),
}

/// Whether the AS supports CIMD and accepts the configured CIMD id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CimdSupport {
    /// No CIMD: DCR only.
    Unsupported,
    /// Supported; the checker tries both an AS that accepts the id and one that rejects it.
    Either,
}

/// When a lease can time out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseExpiry {
    /// Only after its holder crashed: the lease's time to live outlasts every critical section
    /// of a live holder (the deployment assumption the core relies on).
    AfterHolderCrash,
    /// At any moment, also under a live but slow holder.
    AnyTime,
}

/// What a replica does when its compare-and-swap is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Adopt the stored record and apply the same patch to it again (what the core does:
    /// `StoreResult::Conflict` in `inputs.rs` calls `write_with(patch, retries + 1)`).
    ReapplyPatch,
    /// Adopt the stored record and apply the patch only if it still makes sense there;
    /// otherwise decide again from the stored record (the rule these models propose).
    Recheck,
}

/// How a lease is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// By holder id, without waiting for the answer (what the core does: `release_lease` in
    /// `effects.rs`; the tokio shell runs each store command as its own task, so a release can
    /// overtake or be overtaken by the holder's next `TakeLease`).
    FireAndForget,
    /// By holder id and acquisition number: a release only ends the acquisition it names (the
    /// rule these models propose).
    Fenced,
}

/// A fleet model: bounds, environment and protocol switches. See the module documentation.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// How many replicas share the store.
    pub replicas: u8,
    /// How many crashes a run may have in all.
    pub max_crashes: u8,
    /// The clock runs from 0 to this value.
    pub max_time: u8,
    /// A secret's lifetime, in clock units.
    pub secret_lifetime: u8,
    /// The renewal window, in clock units.
    pub renew_within: u8,
    /// What is stored at the start.
    pub start: Start,
    /// CIMD support at the AS.
    pub cimd: CimdSupport,
    /// Whether the AS may fail a renewal.
    pub renewal_may_fail: bool,
    /// Whether the AS stops accepting a secret as soon as it issues a newer one.
    pub server_revokes_old_secret: bool,
    /// When leases time out.
    pub lease_expiry: LeaseExpiry,
    /// Whether a replica reads the record again once it holds the lease (the core does).
    pub reread_under_lease: bool,
    /// Whether the store checks the generation on a write (the store contract does).
    pub compare_and_swap: bool,
    /// The conflict retry rule.
    pub retry: Retry,
    /// The lease release rule.
    pub release: Release,
}

impl Fleet {
    /// Three replicas register against an AS with DCR only; one crash.
    pub fn registration() -> Self {
        Fleet {
            replicas: 3,
            max_crashes: 1,
            max_time: 0,
            secret_lifetime: 2,
            renew_within: 1,
            start: Start::Empty,
            cimd: CimdSupport::Unsupported,
            renewal_may_fail: false,
            server_revokes_old_secret: false,
            lease_expiry: LeaseExpiry::AfterHolderCrash,
            reread_under_lease: true,
            compare_and_swap: true,
            // The core's rules since findings F1–F3 were fixed (`Patch::still_applies`, and
            // no new lease while a release is unanswered).
            retry: Retry::Recheck,
            release: Release::Fenced,
        }
    }

    /// Two replicas against an AS that supports CIMD and either accepts or rejects the CIMD
    /// id (then both fall back to DCR); one crash.
    pub fn cimd_fallback() -> Self {
        Fleet {
            replicas: 2,
            cimd: CimdSupport::Either,
            ..Fleet::registration()
        }
    }

    /// Two replicas share a stored registration whose secret enters the renewal window at
    /// clock 1 and expires at clock 2; the AS may fail a renewal; one crash.
    pub fn renewal() -> Self {
        Fleet {
            replicas: 2,
            max_time: 2,
            start: Start::Registered(2),
            renewal_may_fail: true,
            ..Fleet::registration()
        }
    }

    /// Two replicas start from nothing, register, and the secret enters the renewal window
    /// and expires while they run; no crash.
    pub fn lifecycle() -> Self {
        Fleet {
            replicas: 2,
            max_crashes: 0,
            max_time: 2,
            ..Fleet::registration()
        }
    }

    /// Two replicas share a registration as in [`Fleet::renewal`], against an AS that stops
    /// accepting a secret as soon as it issues the next one; no crash, no failed renewal.
    pub fn revoking_server() -> Self {
        Fleet {
            max_crashes: 0,
            renewal_may_fail: false,
            server_revokes_old_secret: true,
            ..Fleet::renewal()
        }
    }

    /// The same model with the rules the core had before findings F1–F3 were fixed:
    /// [`Retry::ReapplyPatch`] and [`Release::FireAndForget`]. Kept so the tests show the
    /// checker refutes them.
    pub fn with_old_rules(self) -> Self {
        Fleet {
            retry: Retry::ReapplyPatch,
            release: Release::FireAndForget,
            ..self
        }
    }

    // ----- the replicas' decisions (`decide.rs`) -----

    /// `Client::advance`: decide until the replica waits for something.
    fn advance(&self, s: &mut State, r: usize) {
        while s.replicas[r].wait == Wait::Nothing {
            self.next_step(s, r);
        }
    }

    /// `Client::next_step` for the "token" operation.
    fn next_step(&self, s: &mut State, r: usize) {
        let replica = s.replicas[r];
        if !replica.loaded {
            return self.store_op(s, r, StoreOp::Load, Wait::Load);
        }
        // `step_credentials`: 1. an identity.
        let identity = replica.identity();
        if identity == Identity::None {
            return self.step_register(s, r);
        }
        // 2. a secret that will keep working.
        if let Some(registration) = replica.registration() {
            if self.step_renewal(s, r, registration) {
                return;
            }
        }
        // 3. tokens.
        if replica.job.obtained_tokens {
            return self.finish(s, r, true);
        }
        let now = s.now;
        let (client_id, secret) = match identity {
            Identity::Cimd => (ClientId::Cimd, None),
            _ => match replica.registration() {
                // `client_auth`: INV-5, an expired secret is never handed out.
                Some(registration) if registration.expired(now) => return self.finish(s, r, false),
                Some(registration) => (registration.client_id, Some(registration)),
                None => return self.finish(s, r, false),
            },
        };
        if let Some(registration) = secret {
            // Recorded for the INV-4 and INV-5 properties; the decision above is the core's.
            s.history.expired_secret_sent |= registration.expired(now);
            s.history.used_unstored |= !s
                .history
                .stored
                .contains(&(registration.client_id, registration.version));
        }
        let request = AsRequest::Token {
            client_id,
            secret,
            sent_at: now,
        };
        self.http(s, r, request, Wait::Token(secret));
    }

    /// `step_register`: CIMD needs no request; DCR only under the lease.
    fn step_register(&self, s: &mut State, r: usize) {
        let replica = s.replicas[r];
        let cimd_rejected = replica
            .view
            .and_then(|v| v.cimd)
            .is_some_and(|c| c.rejected);
        if self.cimd == CimdSupport::Either && !cimd_rejected {
            return self.write(s, r, Patch::SetCimd, 0);
        }
        if !replica.lease_held {
            return self.take_lease(s, r);
        }
        s.history.registrations += 1;
        self.http(s, r, AsRequest::Register, Wait::Register);
    }

    /// `step_renewal`: renew when due, once per process start, only under the lease. Returns
    /// whether a step was taken.
    fn step_renewal(&self, s: &mut State, r: usize, registration: Registration) -> bool {
        let replica = s.replicas[r];
        let now = s.now;
        if replica.job.renewed {
            return false;
        }
        let due = registration.expiring(now, self.renew_within);
        if due && !replica.job.renewal_failed && !replica.renewal_attempted {
            if !replica.lease_held {
                self.take_lease(s, r);
                return true;
            }
            let replica = &mut s.replicas[r];
            replica.renewal_attempted = true;
            replica.renewals_sent += 1;
            replica.renewing = Some(registration);
            let key = (registration.client_id, registration.version);
            s.history.renewals.entry(key).or_default().0 += 1;
            self.http(
                s,
                r,
                AsRequest::Renew(registration),
                Wait::Renew(registration),
            );
            return true;
        }
        if replica.lease_held && !due {
            // Under the lease the record was read again, and the work is done.
            s.history.found_done_under_lease = true;
            self.release_lease(s, r);
        }
        if registration.expired(now) {
            // INV-5, INV-6: a hard error, never a silent success.
            self.finish(s, r, false);
            return true;
        }
        false
    }

    // ----- effects (`effects.rs`) -----

    fn send(&self, s: &mut State, msg: Msg) {
        s.network.push(msg);
    }

    fn store_op(&self, s: &mut State, r: usize, op: StoreOp, wait: Wait) {
        let proc = s.proc(r);
        self.send(s, Msg::Store(proc, op));
        s.replicas[r].wait = wait;
    }

    fn http(&self, s: &mut State, r: usize, request: AsRequest, wait: Wait) {
        let proc = s.proc(r);
        if let AsRequest::Renew(registration) = request {
            // Using the registration access token is a use too (INV-4).
            s.history.used_unstored |= !s
                .history
                .stored
                .contains(&(registration.client_id, registration.version));
        }
        self.send(s, Msg::As(proc, request));
        s.replicas[r].wait = wait;
    }

    /// `take_lease`.
    fn take_lease(&self, s: &mut State, r: usize) {
        s.replicas[r].acquisitions += 1;
        let acquisition = s.replicas[r].acquisitions;
        self.store_op(s, r, StoreOp::TakeLease(acquisition), Wait::Lease);
    }

    /// `release_lease`: fire and forget.
    fn release_lease(&self, s: &mut State, r: usize) {
        if std::mem::take(&mut s.replicas[r].lease_held) {
            let proc = s.proc(r);
            let acquisition = s.replicas[r].acquisitions;
            self.send(s, Msg::Store(proc, StoreOp::ReleaseLease(acquisition)));
        }
    }

    /// `write_with`: compare-and-swap on the generation last read (INV-4, INV-9).
    fn write(&self, s: &mut State, r: usize, patch: Patch, retries: u8) {
        let base = s.replicas[r].view;
        let expected = base.map(|b| b.generation);
        let mut record = base.unwrap_or_else(Record::empty);
        patch.apply(&mut record);
        record.generation = expected.unwrap_or(0) + 1;
        let wait = Wait::Write {
            patch,
            record,
            retries,
        };
        self.store_op(s, r, StoreOp::Cas { expected, record }, wait);
    }

    /// `finish`: the operation ends and the lease is released.
    fn finish(&self, s: &mut State, r: usize, ok: bool) {
        self.release_lease(s, r);
        s.replicas[r].wait = Wait::Done(ok);
    }

    // ----- answers (`inputs.rs`) -----

    /// `handle_store`.
    fn on_store(&self, s: &mut State, r: usize, answer: StoreAnswer) {
        let wait = std::mem::replace(&mut s.replicas[r].wait, Wait::Nothing);
        match (wait, answer) {
            (Wait::Load, StoreAnswer::Loaded(record)) => {
                let replica = &mut s.replicas[r];
                replica.view = record;
                replica.loaded = true;
            }
            (Wait::Write { patch, record, .. }, StoreAnswer::Written) => {
                s.replicas[r].view = Some(record);
                if matches!(patch, Patch::SetRegistration(_) | Patch::Renewed(_)) {
                    self.release_lease(s, r);
                }
            }
            (Wait::Write { patch, retries, .. }, StoreAnswer::Conflict(current)) => {
                // INV-9: someone wrote first; adopt what they wrote.
                s.replicas[r].view = current;
                if retries >= MAX_WRITE_RETRIES {
                    return self.finish(s, r, false);
                }
                match self.retry {
                    Retry::ReapplyPatch => return self.write(s, r, patch, retries + 1),
                    Retry::Recheck if patch.still_applies(current.as_ref()) => {
                        return self.write(s, r, patch, retries + 1)
                    }
                    Retry::Recheck => {}
                }
            }
            (Wait::Lease, StoreAnswer::LeaseTaken) => {
                let replica = &mut s.replicas[r];
                replica.lease_held = true;
                // Read again under the lease: another replica may have just finished (INV-8).
                if self.reread_under_lease {
                    replica.loaded = false;
                }
            }
            (Wait::Lease, StoreAnswer::LeaseHeld) => {
                let replica = &mut s.replicas[r];
                replica.job.lease_waits += 1;
                if replica.job.lease_waits > MAX_LEASE_WAITS {
                    return self.finish(s, r, false);
                }
                replica.wait = Wait::Backoff;
                return;
            }
            (other, answer) => unreachable!("replica {r} waiting for {other:?} got {answer:?}"),
        }
        self.advance(s, r);
    }

    /// `handle_http`, `handle_renewal_answer`, `handle_token_answer`.
    fn on_http(&self, s: &mut State, r: usize, answer: AsAnswer) {
        let wait = std::mem::replace(&mut s.replicas[r].wait, Wait::Nothing);
        match (wait, answer) {
            (Wait::Register, AsAnswer::Registered(registration)) => {
                // INV-4: stored before anything else.
                return self.write(s, r, Patch::SetRegistration(registration), 0);
            }
            (Wait::Renew(_), AsAnswer::Renewed(registration)) => {
                s.replicas[r].job.renewed = true;
                return self.write(s, r, Patch::Renewed(registration), 0);
            }
            (Wait::Renew(_), AsAnswer::RenewalFailed) => {
                // INV-6: a warning before expiry, a hard error after (decided in next_step).
                self.release_lease(s, r);
                s.replicas[r].job.renewal_failed = true;
            }
            (Wait::Token(_), AsAnswer::Tokens) => {
                // Tokens are not stored in these models (INV-10 is the proptest harness's);
                // the operation ends at the next step, after the renewal check, as in the core.
                s.replicas[r].job.obtained_tokens = true;
            }
            (Wait::Token(presented), AsAnswer::InvalidClient) => {
                let replica = s.replicas[r];
                let identity = replica.identity();
                if identity == Identity::Cimd && replica.job.fallbacks == 0 {
                    // INV-3: `try_cimd_fallback`, once per operation.
                    s.replicas[r].job.fallbacks += 1;
                    return self.write(s, r, Patch::RejectCimd, 0);
                }
                if let (Identity::Dcr, Some(rejected)) = (identity, presented) {
                    if !replica.job.reregistered {
                        // DCR-24, MGMT-16: the AS no longer knows the client; register again.
                        s.replicas[r].job.reregistered = true;
                        return self.write(s, r, Patch::DropRegistration(rejected), 0);
                    }
                }
                return self.finish(s, r, false);
            }
            (other, answer) => unreachable!("replica {r} waiting for {other:?} got {answer:?}"),
        }
        self.advance(s, r);
    }

    // ----- the store and the AS -----

    fn on_store_op(&self, s: &mut State, from: Proc, op: StoreOp) -> Option<StoreAnswer> {
        let store = &mut s.store;
        match op {
            StoreOp::Load => Some(StoreAnswer::Loaded(store.record)),
            StoreOp::Cas { expected, record } => {
                let current = store.record.map(|r| r.generation);
                if self.compare_and_swap && current != expected {
                    return Some(StoreAnswer::Conflict(store.record));
                }
                let history = &mut s.history;
                history.stale_write |= current != expected;
                if let Some(old) = store.record {
                    let (old_dcr, new_dcr) = (old.dcr, record.dcr);
                    if let (Some(o), Some(n)) = (old_dcr, new_dcr) {
                        history.secret_rolled_back |=
                            o.client_id == n.client_id && n.version < o.version;
                    }
                    if let (Some(o), None) = (old_dcr, new_dcr) {
                        history.live_registration_dropped |=
                            accepts(&s.server, self.server_revokes_old_secret, o, s.now);
                    }
                    history.cimd_unrejected |= old.cimd.is_some_and(|c| c.rejected)
                        && record.cimd.is_some_and(|c| !c.rejected);
                    history.cimd_removed |= old.cimd.is_some() && record.cimd.is_none();
                }
                if let Some(dcr) = record.dcr {
                    let key = (dcr.client_id, dcr.version);
                    if !history.stored.contains(&key) {
                        history.stored.push(key);
                        history.stored.sort();
                    }
                }
                store.record = Some(record);
                Some(StoreAnswer::Written)
            }
            StoreOp::TakeLease(acquisition) => match store.lease {
                Some((holder, _)) if holder != from => Some(StoreAnswer::LeaseHeld),
                // Free, or held by the sender already: taken (or extended).
                _ => {
                    store.lease = Some((from, acquisition));
                    Some(StoreAnswer::LeaseTaken)
                }
            },
            StoreOp::ReleaseLease(acquisition) => {
                let releases = match (store.lease, self.release) {
                    (Some((holder, _)), Release::FireAndForget) => holder == from,
                    (Some((holder, held)), Release::Fenced) => {
                        holder == from && held == acquisition
                    }
                    (None, _) => false,
                };
                if releases {
                    store.lease = None;
                }
                None
            }
        }
    }

    fn on_request(&self, s: &mut State, request: AsRequest, fail: bool) -> AsAnswer {
        let now = s.now;
        let server = &mut s.server;
        match request {
            AsRequest::Register => {
                server.versions.push(0);
                AsAnswer::Registered(Registration {
                    client_id: ClientId::Dcr(server.versions.len() as u8),
                    version: 0,
                    expires_at: now + self.secret_lifetime,
                })
            }
            AsRequest::Renew(_) if fail => AsAnswer::RenewalFailed,
            AsRequest::Renew(registration) => {
                let ClientId::Dcr(n) = registration.client_id else {
                    return AsAnswer::RenewalFailed;
                };
                let version = &mut server.versions[n as usize - 1];
                *version += 1;
                AsAnswer::Renewed(Registration {
                    client_id: registration.client_id,
                    version: *version,
                    expires_at: now + self.secret_lifetime,
                })
            }
            AsRequest::Token {
                client_id: ClientId::Cimd,
                ..
            } if server.accepts_cimd => {
                s.history.cimd_tokens = true;
                AsAnswer::Tokens
            }
            AsRequest::Token {
                secret: Some(secret),
                sent_at,
                ..
            } if accepts(server, self.server_revokes_old_secret, secret, sent_at) => {
                AsAnswer::Tokens
            }
            AsRequest::Token { .. } => AsAnswer::InvalidClient,
        }
    }

    fn with_crash(&self, s: &mut State, r: usize) {
        let replica = s.replicas[r];
        let history = &mut s.history;
        // A crash between sending a registration or renewal and storing its answer excuses
        // one repetition: nobody can know whether the AS acted on it.
        if matches!(
            replica.wait,
            Wait::Register
                | Wait::Write {
                    patch: Patch::SetRegistration(_),
                    ..
                }
        ) {
            history.registrations_excused += 1;
            history.crashed_registering = true;
        }
        if let Some(from) = replica.renewing {
            history
                .renewals
                .entry((from.client_id, from.version))
                .or_default()
                .1 += 1;
            history.crashed_renewing = true;
        }
        // Its requests in flight may still arrive (or never do); answers to it are lost.
        s.replicas[r] = Replica::new(replica.incarnation + 1);
        s.crashes += 1;
        self.advance(s, r);
    }
}

/// Whether the AS accepts `secret` at `at`: not expired, and not replaced when the AS
/// revokes old secrets on renewal.
fn accepts(server: &Server, revokes_old: bool, secret: Registration, at: u8) -> bool {
    let ClientId::Dcr(n) = secret.client_id else {
        return false;
    };
    let latest = server.versions.get(n as usize - 1).copied();
    !secret.expired(at) && latest.is_some_and(|v| v == secret.version || !revokes_old)
}

impl Model for Fleet {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let (record, versions) = match self.start {
            Start::Empty => (None, vec![]),
            Start::Registered(expires_at) => {
                let dcr = Registration {
                    client_id: ClientId::Dcr(1),
                    version: 0,
                    expires_at,
                };
                let record = Record {
                    generation: 1,
                    cimd: None,
                    dcr: Some(dcr),
                };
                (Some(record), vec![0])
            }
        };
        let accepts_cimd: &[bool] = match self.cimd {
            CimdSupport::Unsupported => &[false],
            CimdSupport::Either => &[true, false],
        };
        accepts_cimd
            .iter()
            .map(|&accepts_cimd| {
                let mut state = State {
                    now: 0,
                    crashes: 0,
                    replicas: vec![Replica::new(0); self.replicas as usize],
                    store: Store {
                        record,
                        lease: None,
                    },
                    server: Server {
                        accepts_cimd,
                        versions: versions.clone(),
                    },
                    network: Vec::new(),
                    history: History {
                        stored: record
                            .and_then(|r| r.dcr)
                            .map(|d| (d.client_id, d.version))
                            .into_iter()
                            .collect(),
                        ..History::default()
                    },
                };
                for r in 0..self.replicas as usize {
                    self.advance(&mut state, r);
                }
                state.network.sort();
                state
            })
            .collect()
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let mut previous = None;
        for &msg in &s.network {
            if previous == Some(msg) {
                continue;
            }
            previous = Some(msg);
            actions.push(Action::Deliver { msg, fail: false });
            if self.renewal_may_fail && matches!(msg, Msg::As(_, AsRequest::Renew(_))) {
                actions.push(Action::Deliver { msg, fail: true });
            }
        }
        for (r, replica) in s.replicas.iter().enumerate() {
            if replica.wait == Wait::Backoff {
                actions.push(Action::Wake(r as u8));
            }
        }
        if s.crashes < self.max_crashes {
            for (r, replica) in s.replicas.iter().enumerate() {
                if !matches!(replica.wait, Wait::Done(_)) {
                    actions.push(Action::Crash(r as u8));
                }
            }
        }
        if s.now < self.max_time {
            actions.push(Action::Tick);
        }
        if let Some((holder, _)) = s.store.lease {
            if self.lease_expiry == LeaseExpiry::AnyTime || !s.alive(holder) {
                actions.push(Action::LeaseExpires);
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Deliver { msg, fail } => {
                let at = s.network.iter().position(|m| *m == msg)?;
                s.network.remove(at);
                match msg {
                    Msg::Store(from, op) => {
                        let answer = self.on_store_op(&mut s, from, op);
                        if let (Some(answer), true) = (answer, s.alive(from)) {
                            self.on_store(&mut s, from.replica as usize, answer);
                        }
                    }
                    Msg::As(from, request) => {
                        let answer = self.on_request(&mut s, request, fail);
                        if let (AsRequest::Renew(old), AsAnswer::RenewalFailed, true) =
                            (request, answer, s.alive(from))
                        {
                            // A failed renewal renewed nothing; another replica may try.
                            let key = (old.client_id, old.version);
                            s.history.renewals.entry(key).or_default().1 += 1;
                        }
                        if s.alive(from) {
                            self.on_http(&mut s, from.replica as usize, answer);
                        }
                    }
                }
            }
            Action::Crash(r) => self.with_crash(&mut s, r as usize),
            Action::Wake(r) => {
                let replica = &mut s.replicas[r as usize];
                replica.wait = Wait::Nothing;
                // `handle_tick`: someone else may have finished meanwhile; read again.
                replica.loaded = false;
                self.advance(&mut s, r as usize);
            }
            Action::Tick => s.now += 1,
            Action::LeaseExpires => s.store.lease = None,
        }
        for replica in &mut s.replicas {
            // A renewal is in flight until its answer is stored (or the attempt ends).
            let renewing = matches!(
                replica.wait,
                Wait::Renew(_)
                    | Wait::Write {
                        patch: Patch::Renewed(_),
                        ..
                    }
            );
            if !renewing {
                replica.renewing = None;
            }
        }
        s.network.sort();
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always("INV-8 one registration across replicas", |_, s: &State| {
                s.history
                    .registrations
                    .saturating_sub(s.history.registrations_excused)
                    <= 1
            }),
            Property::always(
                "INV-1 INV-8 one renewal per secret across replicas",
                |_, s: &State| {
                    s.history
                        .renewals
                        .values()
                        .all(|(sent, excused)| sent.saturating_sub(*excused) <= 1)
                        && s.replicas.iter().all(|r| r.renewals_sent <= 1)
                },
            ),
            Property::always(
                "INV-9 compare-and-swap: no write over an unread generation",
                |_, s: &State| !s.history.stale_write,
            ),
            Property::always(
                "INV-9 no stored secret rolled back or dropped while valid",
                |_, s: &State| {
                    !s.history.secret_rolled_back && !s.history.live_registration_dropped
                },
            ),
            Property::always("INV-4 persist before use", |_, s: &State| {
                !s.history.used_unstored
            }),
            Property::always(
                "INV-5 no expired secret sent to the token endpoint",
                |_, s: &State| !s.history.expired_secret_sent,
            ),
            Property::always(
                "INV-2 CIMD id never stored as a DCR client id nor removed",
                |_, s: &State| {
                    let stored = s.store.record.and_then(|r| r.dcr);
                    !s.history.cimd_removed && stored.is_none_or(|d| d.client_id != ClientId::Cimd)
                },
            ),
            Property::always(
                "INV-3 at most one CIMD fallback per operation",
                |_, s: &State| s.replicas.iter().all(|r| r.job.fallbacks <= 1),
            ),
            Property::sometimes(
                "a replica finds the work done once it holds the lease",
                |_, s: &State| s.history.found_done_under_lease,
            ),
            Property::sometimes("every replica obtains tokens", |_, s: &State| {
                s.replicas.iter().all(|r| r.wait == Wait::Done(true))
            }),
        ];
        if self.cimd == CimdSupport::Either {
            properties.push(Property::always(
                "INV-9 a stored CIMD rejection is never undone",
                |_, s: &State| !s.history.cimd_unrejected,
            ));
            properties.push(Property::sometimes(
                "CIMD fallback to DCR happens",
                |_, s: &State| {
                    s.store
                        .record
                        .is_some_and(|r| r.cimd.is_some_and(|c| c.rejected) && r.dcr.is_some())
                },
            ));
            properties.push(Property::sometimes(
                "the CIMD id is used",
                |_, s: &State| s.history.cimd_tokens,
            ));
        }
        if self.start == Start::Empty {
            properties.push(Property::sometimes(
                "a DCR registration is stored",
                |_, s: &State| s.store.record.is_some_and(|r| r.dcr.is_some()),
            ));
        }
        if self.max_crashes > 0 && self.start == Start::Empty {
            properties.push(Property::sometimes(
                "a replica crashes mid-registration",
                |_, s: &State| s.history.crashed_registering,
            ));
        }
        if self.max_time > 0 {
            properties.push(Property::sometimes(
                "a renewed secret is stored",
                |_, s: &State| {
                    s.store
                        .record
                        .and_then(|r| r.dcr)
                        .is_some_and(|d| d.version > 0)
                },
            ));
        }
        if self.max_crashes > 0 && self.max_time > 0 {
            properties.push(Property::sometimes(
                "a replica crashes mid-renewal",
                |_, s: &State| s.history.crashed_renewing,
            ));
            properties.push(Property::sometimes(
                "a renewal completes after a crash mid-renewal",
                |_, s: &State| {
                    s.history.crashed_renewing
                        && s.store
                            .record
                            .and_then(|r| r.dcr)
                            .is_some_and(|d| d.version > 0)
                },
            ));
        }
        properties
    }
}
