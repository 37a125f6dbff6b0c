//! `tenure-model-tests`: property tests of the lifecycle invariants of design §3, run against
//! the real core, the simulated provider and the simulated store.
//!
//! A test is a random *script*: operations, clock jumps (forward and backward), restarts
//! (in-flight state lost, the store kept) and server faults (5xx, timeouts, lost answers).
//! [`Harness::step`] plays one step and [`Harness::check`] checks every invariant the
//! simulation can observe after it. The tests live in `tests/`.
//!
//! [`real`] holds the stateright models of several replicas sharing one store and one
//! authorization server, whose replicas are the real `tenure_core::Client` (INV-1 to INV-5,
//! INV-8 to INV-11 across processes, INV-13, INV-14); `MODELS.md` describes them and
//! `tests/real.rs` runs the checker on them. No decision of the core is copied here.

pub mod checking;
pub mod real;

use proptest::prelude::*;
use tenure_core::{AuthMethod, ClientConfig, Duration, Grant, Operation, RequestKind, Timestamp};
use tenure_sim::driver::What;
use tenure_sim::provider::{FaultConfig, ProviderConfig, SimulatedProvider};
use tenure_sim::{Outcome, Simulation};

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Step {
    /// Ask for an operation.
    Op(Operation),
    /// Move the clock forward by this many minutes.
    Forward(i64),
    /// Move the clock backward by this many minutes (a wall clock can jump back).
    Backward(i64),
    /// Crash and start a new process from the store.
    Restart,
}

/// Which client the script drives.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A user client (authorization code + PKCE) with a confidential DCR registration.
    User,
    /// A machine client (client credentials).
    Machine,
    /// A CIMD client whose id the server may refuse.
    Cimd {
        /// Whether the server accepts the CIMD id.
        accepted: bool,
    },
}

/// Random steps, weighted towards operations.
pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::sample::select(vec![
            Operation::Token,
            Operation::Token,
            Operation::Login,
            Operation::Renew,
            Operation::Logout,
            Operation::Forget,
        ])
        .prop_map(Step::Op),
        3 => (1i64..4 * 24 * 60).prop_map(Step::Forward),
        1 => (1i64..6 * 60).prop_map(Step::Backward),
        2 => Just(Step::Restart),
    ]
}

/// Random client kinds.
pub fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::User),
        2 => Just(Kind::Machine),
        1 => any::<bool>().prop_map(|accepted| Kind::Cimd { accepted }),
    ]
}

/// A simulation plus what the checks remember between steps.
pub struct Harness {
    /// The simulation.
    pub sim: Simulation,
    renewals_at_start: usize,
    last_generation: u64,
    lost_answers: bool,
}

impl Harness {
    /// A harness for `kind` against a provider with short secret lifetimes and the given
    /// fault rates.
    pub fn new(kind: Kind, faults: FaultConfig) -> Self {
        let lost_answers = faults.lost_response_rate > 0.0;
        let provider = SimulatedProvider::new(ProviderConfig {
            secret_lifetime: Some(Duration::from_hours(3 * 24)),
            access_token_lifetime: Duration::from_hours(1),
            cimd_supported: matches!(kind, Kind::Cimd { .. }),
            cimd_accepted: !matches!(kind, Kind::Cimd { accepted: false }),
            faults,
            ..ProviderConfig::default()
        });
        let mut config = ClientConfig::for_issuer("model", provider.config().issuer.clone());
        config.scopes = vec!["read".into()];
        config.seed = [5; 32];
        match kind {
            Kind::User => config.auth_method = Some(AuthMethod::ClientSecretBasic),
            Kind::Machine => {
                config.grant = Grant::ClientCredentials;
                config.auth_method = Some(AuthMethod::ClientSecretPost);
            }
            Kind::Cimd { .. } => {
                config.cimd_url = Some("https://app.example.com/tenure/client.json".into())
            }
        }
        let start = Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap_or(Timestamp::EPOCH);
        Harness {
            sim: Simulation::new(config, provider, start),
            renewals_at_start: 0,
            last_generation: 0,
            lost_answers,
        }
    }

    /// Plays one step; an operation must end (no livelock, no stall).
    pub fn step(&mut self, step: &Step) -> Result<Option<Outcome>, String> {
        match step {
            Step::Op(op) => return self.sim.run(*op).map(Some).map_err(|e| e.to_string()),
            Step::Forward(minutes) => self.sim.advance(Duration::from_secs(minutes * 60)),
            Step::Backward(minutes) => {
                let now = self.sim.now() - Duration::from_secs(minutes * 60);
                self.sim.set_now(now);
            }
            Step::Restart => {
                self.sim.restart();
                self.renewals_at_start = self.sim.count(RequestKind::RegistrationUpdate);
            }
        }
        Ok(None)
    }

    /// Checks every invariant observable after a step; the error names the one broken.
    pub fn check(&mut self) -> Result<(), String> {
        let stats = self.sim.provider.stats().clone();
        // INV-5: an expired client secret is never sent to a token endpoint.
        if stats.expired_secret_presented != 0 {
            return Err("INV-5: an expired secret reached the token endpoint".into());
        }
        // MGMT-22: each credential only where it belongs.
        if stats.misplaced_credentials != 0 {
            return Err("MGMT-22: a credential was sent where it does not belong".into());
        }
        // INV-10: a rotated refresh token replaces the old one. A lost answer leaves the
        // client with the old token through no fault of its own, so only runs without lost
        // answers can check this.
        if !self.lost_answers && stats.stale_refresh_presented != 0 {
            return Err("INV-10: a rotated-out refresh token was presented".into());
        }
        // INV-1: at most one renewal attempt per process start.
        let renewals = self.sim.count(RequestKind::RegistrationUpdate) - self.renewals_at_start;
        if renewals > 1 {
            return Err(format!("INV-1: {renewals} renewal attempts in one start"));
        }
        if let Some(record) = self.sim.stored() {
            // INV-2: a CIMD URL is never stored as a DCR client id.
            if let (Some(cimd), Some(dcr)) = (&record.cimd, &record.dcr) {
                if cimd.client_id == dcr.client_id {
                    return Err("INV-2: the CIMD URL was stored as a DCR client id".into());
                }
            }
            // INV-9: generations only grow (a forget may reset the record to nothing).
            if record.generation < self.last_generation {
                return Err("INV-9: the stored generation went backwards".into());
            }
            self.last_generation = record.generation;
            // INV-12: no stored secret shows up in the timeline.
            let rendered: Vec<String> = self.sim.timeline().iter().map(|e| e.to_string()).collect();
            for secret in secrets_of(record) {
                if rendered.iter().any(|line| line.contains(&secret)) {
                    return Err("INV-12: a secret appeared in the timeline".into());
                }
            }
        } else {
            self.last_generation = 0;
        }
        check_persist_before_use(self.sim.timeline())
    }
}

/// INV-4: after an answer that carries a credential, no request goes out before the record
/// is written.
pub fn check_persist_before_use(timeline: &[tenure_sim::Entry]) -> Result<(), String> {
    let mut unstored: Option<RequestKind> = None;
    for entry in timeline {
        match &entry.what {
            What::Request(request) => {
                if let Some(kind) = unstored {
                    return Err(format!(
                        "INV-4: {:?} was sent before the credential from a {kind:?} answer was stored",
                        request.kind
                    ));
                }
                let credential = matches!(
                    request.kind,
                    RequestKind::Registration
                        | RequestKind::RegistrationUpdate
                        | RequestKind::CodeExchange
                        | RequestKind::Refresh
                        | RequestKind::ClientCredentials
                );
                if credential && (request.answer == "200" || request.answer == "201") {
                    unstored = Some(request.kind);
                }
            }
            What::Stored(_) | What::Outcome(_) | What::Start { .. } => unstored = None,
            _ => {}
        }
    }
    Ok(())
}

fn secrets_of(record: &tenure_core::Record) -> Vec<String> {
    record
        .secrets()
        .into_iter()
        .map(|s| s.expose().to_string())
        .collect()
}
