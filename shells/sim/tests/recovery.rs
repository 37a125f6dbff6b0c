//! Credentials that stay alive on servers that cannot renew a secret (the MCP SDKs' own
//! authorization servers expire secrets and have no RFC 7592), and no floods or dead ends on
//! the way: the real core against the simulated provider, in virtual time.
//!
//! INV-13: a credential Tenure can recover by itself never ends in a dead end.
//! INV-14: at most one registration attempt per backoff window per client key.

use tenure_core::{
    AuthMethod, ClientConfig, Duration, Error, Grant, Operation, RequestKind, SecretExpiry,
    Timestamp,
};
use tenure_sim::driver::{Outcome, Simulation, What};
use tenure_sim::provider::{Endpoint, Fault, ProviderConfig, SimulatedProvider};

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-01T08:00:00Z").unwrap()
}

/// A server like the MCP TypeScript SDK's: secrets that expire after `secret_days`, no
/// registration management.
fn no_management(secret_days: i64, access_token: Duration) -> ProviderConfig {
    ProviderConfig {
        secret_lifetime: Some(Duration::from_hours(24 * secret_days)),
        access_token_lifetime: access_token,
        management_enabled: false,
        ..ProviderConfig::default()
    }
}

fn simulation(provider: ProviderConfig, grant: Grant) -> Simulation {
    let provider = SimulatedProvider::new(provider);
    let mut config = ClientConfig::for_issuer("test", provider.config().issuer.clone());
    config.auth_method = Some(AuthMethod::ClientSecretPost);
    config.scopes = vec!["read".into()];
    config.grant = grant;
    config.seed = [3; 32];
    Simulation::new(config, provider, start())
}

fn expiry(sim: &Simulation) -> Timestamp {
    match sim.stored().unwrap().dcr.as_ref().unwrap().secret_expires {
        SecretExpiry::At(at) => at,
        other => panic!("no expiry: {other:?}"),
    }
}

fn client_id(sim: &Simulation) -> String {
    sim.stored()
        .unwrap()
        .dcr
        .as_ref()
        .unwrap()
        .client_id
        .clone()
}

fn warnings(sim: &Simulation, text: &str) -> usize {
    sim.timeline()
        .iter()
        .filter(|e| matches!(&e.what, What::Warning(w) if w.contains(text)))
        .count()
}

/// A process that starts `offset` after the secret's expiry (negative: before it).
fn restart_at(sim: &mut Simulation, offset: Duration, before: bool) {
    let at = if before {
        expiry(sim) - offset
    } else {
        expiry(sim) + offset
    };
    sim.set_now(at);
    sim.restart();
}

#[test]
fn a_valid_access_token_is_handed_out_after_the_secret_expired_inv_13() {
    let mut sim = simulation(
        no_management(7, Duration::from_hours(24 * 30)),
        Grant::AuthorizationCode,
    );
    assert!(sim.run(Operation::Login).unwrap().is_token());
    restart_at(&mut sim, Duration::from_hours(1), false);
    let sent = sim.requests().len();
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(
        sim.requests().len(),
        sent,
        "no request: the token needs no secret"
    );
    assert_eq!(sim.provider.stats().expired_secret_presented, 0, "INV-5");
}

#[test]
fn a_user_client_is_asked_to_log_in_and_the_login_registers_anew_inv_13() {
    let mut sim = simulation(
        no_management(7, Duration::from_hours(1)),
        Grant::AuthorizationCode,
    );
    assert!(sim.run(Operation::Login).unwrap().is_token());
    let first = client_id(&sim);

    // Inside the window: one warning with the date, however many calls.
    restart_at(&mut sim, Duration::from_hours(12), true);
    sim.take_timeline();
    for _ in 0..3 {
        assert!(sim.run(Operation::Token).unwrap().is_token());
        sim.advance(Duration::from_hours(1));
    }
    assert_eq!(warnings(&sim, "cannot renew it"), 1, "{:?}", sim.timeline());
    assert_eq!(sim.provider.stats().registrations, 1);

    // Expired: a login, not `forget`, and nothing sent with the dead secret.
    restart_at(&mut sim, Duration::from_hours(1), false);
    let sent = sim.requests().len();
    match sim.run(Operation::Token).unwrap() {
        Outcome::LoginRequired(reason) => {
            assert!(
                reason.contains("logging in registers a new client"),
                "{reason}"
            );
            assert!(!reason.contains("forget"), "{reason}");
        }
        other => panic!("expected a login to be asked for, got {other:?}"),
    }
    assert_eq!(sim.requests().len(), sent);
    assert!(sim.run(Operation::Login).unwrap().is_token());
    assert_eq!(sim.provider.stats().registrations, 2);
    assert_ne!(client_id(&sim), first);
    assert_eq!(sim.provider.stats().expired_secret_presented, 0, "INV-5");
    assert!(sim.run(Operation::Token).unwrap().is_token());
}

#[test]
fn a_machine_client_replaces_its_client_inside_the_window_without_failing() {
    let mut sim = simulation(
        no_management(7, Duration::from_hours(1)),
        Grant::ClientCredentials,
    );
    assert!(sim.run(Operation::Token).unwrap().is_token());
    let first = client_id(&sim);
    restart_at(&mut sim, Duration::from_hours(12), true);
    sim.take_timeline();
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.provider.stats().registrations, 2);
    let second = client_id(&sim);
    assert_ne!(second, first);
    assert_eq!(warnings(&sim, &format!("to replace {first}")), 1);
    // The replacement's secret is far from its window: nothing more happens.
    sim.advance(Duration::from_hours(2));
    sim.restart();
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.provider.stats().registrations, 2);
    assert_eq!(client_id(&sim), second);
    assert_eq!(sim.provider.stats().expired_secret_presented, 0);
}

#[test]
fn a_machine_client_whose_secret_expired_registers_anew_inv_13() {
    // A secret that lives no longer than the renewal window is replaced when it expires,
    // not the moment it is issued.
    let mut sim = simulation(
        no_management(1, Duration::from_hours(1)),
        Grant::ClientCredentials,
    );
    assert!(sim.run(Operation::Token).unwrap().is_token());
    sim.advance(Duration::from_hours(2));
    sim.restart();
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(
        sim.provider.stats().registrations,
        1,
        "no early replacement"
    );
    restart_at(&mut sim, Duration::from_hours(1), false);
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.provider.stats().registrations, 2);
    assert_eq!(sim.provider.stats().expired_secret_presented, 0, "INV-5");
}

#[test]
fn a_refused_registration_is_not_retried_inside_its_backoff_inv_14() {
    let provider = ProviderConfig {
        initial_access_token: Some("the-right-initial-token".into()),
        ..ProviderConfig::default()
    };
    let mut sim = simulation(provider, Grant::ClientCredentials);
    let first = sim.run(Operation::Token).unwrap();
    assert!(
        matches!(first.error(), Some(Error::RegistrationRejected { .. })),
        "{first:?}"
    );
    let backoff = sim.stored().unwrap().registration_backoff.clone().unwrap();
    assert_eq!(backoff.failures, 1);
    // Five more calls, each a new process, inside the backoff: no request at all.
    for _ in 0..5 {
        sim.advance(Duration::from_secs(1));
        sim.restart();
        let outcome = sim.run(Operation::Token).unwrap();
        match outcome.error() {
            Some(Error::RegistrationPaused { until, .. }) => assert_eq!(*until, backoff.until),
            other => panic!("expected a paused registration, got {other:?}"),
        }
    }
    assert_eq!(sim.count(RequestKind::Registration), 1);
    // After the backoff: one more attempt, and a longer pause after it.
    sim.set_now(backoff.until + Duration::from_secs(1));
    sim.restart();
    assert!(sim.run(Operation::Token).unwrap().error().is_some());
    assert_eq!(sim.count(RequestKind::Registration), 2);
    let second = sim.stored().unwrap().registration_backoff.clone().unwrap();
    assert_eq!(second.failures, 2);
    assert!(second.until.since(backoff.until) > Duration::from_secs(30));
}

#[test]
fn forget_keeps_the_record_on_a_transient_failure_and_forget_local_always_works() {
    let mut sim = simulation(ProviderConfig::default(), Grant::ClientCredentials);
    assert!(sim.run(Operation::Token).unwrap().is_token());
    sim.provider
        .fail_always(Endpoint::Management, Fault::ServerError);
    let outcome = sim.run(Operation::Forget).unwrap();
    let message = outcome.error().expect("the deletion failed").to_string();
    assert!(message.contains("the local record was kept"), "{message}");
    assert!(!message.contains("nothing was removed"), "{message}");
    assert!(sim.stored().is_some());
    let sent = sim.requests().len();
    assert_eq!(sim.run(Operation::ForgetLocal).unwrap(), Outcome::Done);
    assert!(sim.stored().is_none());
    assert_eq!(sim.requests().len(), sent, "forget --local sends nothing");
}
