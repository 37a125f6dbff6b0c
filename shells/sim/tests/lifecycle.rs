//! The whole lifecycle, driven by the real core against the simulated provider and store.
//! Each test names the rules (checklist IDs, design invariants) it proves.

use tenure_core::{
    AuthMethod, ClientConfig, Duration, Error, Grant, IdentityKind, Lifecycle, Operation,
    RequestKind, SecretExpiry, Timestamp,
};
use tenure_sim::driver::{Browser, Outcome, Simulation, What};
use tenure_sim::provider::{Endpoint, Fault, ProviderConfig, SimulatedProvider};

const DAY: i64 = 24;

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-02-01T08:00:00Z").unwrap()
}

fn provider(config: ProviderConfig) -> SimulatedProvider {
    SimulatedProvider::new(config)
}

fn expiring_provider() -> ProviderConfig {
    ProviderConfig {
        secret_lifetime: Some(Duration::from_hours(7 * DAY)),
        access_token_lifetime: Duration::from_hours(1),
        ..ProviderConfig::default()
    }
}

fn confidential(issuer: &str) -> ClientConfig {
    let mut config = ClientConfig::for_issuer("test", issuer);
    config.auth_method = Some(AuthMethod::ClientSecretPost);
    config.scopes = vec!["read".into()];
    config.seed = [9; 32];
    config
}

fn simulation(provider_config: ProviderConfig) -> Simulation {
    let provider = provider(provider_config);
    let config = confidential(&provider.config().issuer.clone());
    Simulation::new(config, provider, start())
}

fn logged_in(provider_config: ProviderConfig) -> Simulation {
    let mut sim = simulation(provider_config);
    let outcome = sim.run(Operation::Login).unwrap();
    assert!(outcome.is_token(), "{outcome:?}");
    sim
}

fn kinds(sim: &Simulation) -> Vec<RequestKind> {
    sim.requests().iter().map(|r| r.kind).collect()
}

fn secret_expiry(sim: &Simulation) -> Timestamp {
    match sim.stored().unwrap().dcr.as_ref().unwrap().secret_expires {
        SecretExpiry::At(at) => at,
        other => panic!("no expiry: {other:?}"),
    }
}

/// Starts a new process at `offset` hours relative to the secret's expiry (negative: before).
fn restart_near_expiry(sim: &mut Simulation, offset_hours: i64) {
    let expiry = secret_expiry(sim);
    let at = if offset_hours < 0 {
        expiry - Duration::from_hours(-offset_hours)
    } else {
        expiry + Duration::from_hours(offset_hours)
    };
    sim.set_now(at);
    sim.restart();
}

fn current_secret(sim: &Simulation) -> String {
    let dcr = sim.stored().unwrap().dcr.as_ref().unwrap();
    dcr.client_secret.as_ref().unwrap().expose().to_string()
}

#[test]
fn cold_start_discovers_registers_and_logs_in_with_the_minimum_requests() {
    let sim = logged_in(expiring_provider());
    assert_eq!(
        kinds(&sim),
        vec![
            RequestKind::ServerMetadata,
            RequestKind::Registration,
            RequestKind::CodeExchange
        ]
    );
    let record = sim.stored().unwrap();
    assert_eq!(record.identity(), IdentityKind::Dcr);
    assert!(record.tokens.as_ref().unwrap().refresh_token.is_some());
    assert_eq!(sim.provider.stats().registrations, 1);
}

#[test]
fn registration_is_stored_before_it_is_used_inv_4() {
    let sim = logged_in(expiring_provider());
    let timeline = sim.timeline();
    let position =
        |pred: &dyn Fn(&What) -> bool| timeline.iter().position(|e| pred(&e.what)).unwrap();
    let registered =
        position(&|w| matches!(w, What::Request(r) if r.kind == RequestKind::Registration));
    let stored = position(&|w| matches!(w, What::Stored(_)));
    let exchanged =
        position(&|w| matches!(w, What::Request(r) if r.kind == RequestKind::CodeExchange));
    assert!(registered < stored && stored < exchanged, "{timeline:?}");
}

#[test]
fn warm_start_sends_no_request() {
    let mut sim = logged_in(expiring_provider());
    sim.advance(Duration::from_secs(60));
    sim.restart();
    let before = sim.requests().len();
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.requests().len(), before);
}

#[test]
fn refresh_rotates_and_keeps_the_new_refresh_token_inv_10_rt_3() {
    let mut sim = logged_in(expiring_provider());
    let first = sim.stored().unwrap().tokens.clone().unwrap();
    sim.advance(Duration::from_hours(2));
    assert!(sim.run(Operation::Token).unwrap().is_token());
    let second = sim.stored().unwrap().tokens.clone().unwrap();
    assert_ne!(first.refresh_token, second.refresh_token);
    sim.advance(Duration::from_hours(2));
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.provider.stats().refreshes, 2);
    assert_eq!(sim.provider.stats().stale_refresh_presented, 0);
}

#[test]
fn concurrent_callers_share_one_registration_and_one_login_inv_8() {
    let mut sim = simulation(expiring_provider());
    let outcomes = sim
        .run_all(&[Operation::Login, Operation::Login, Operation::Login])
        .unwrap();
    assert!(outcomes.iter().all(Outcome::is_token));
    assert_eq!(sim.provider.stats().registrations, 1);
    assert_eq!(sim.count(RequestKind::CodeExchange), 1);
    sim.advance(Duration::from_hours(2));
    let outcomes = sim.run_all(&[Operation::Token; 5]).unwrap();
    assert!(outcomes.iter().all(Outcome::is_token));
    assert_eq!(
        sim.count(RequestKind::Refresh),
        1,
        "one refresh in flight per grant (INV-10)"
    );
}

#[test]
fn renewal_in_the_window_stores_the_new_secret_and_rotated_token_mgmt_5() {
    let mut sim = logged_in(expiring_provider());
    let old_secret = current_secret(&sim);
    let client_id = sim.stored().unwrap().client_id().unwrap().to_string();
    restart_near_expiry(&mut sim, -12);
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.count(RequestKind::RegistrationUpdate), 1);
    let new_secret = current_secret(&sim);
    assert_ne!(old_secret, new_secret);
    assert!(sim.provider.secret_is_current(&client_id, &new_secret));
    assert!(!sim.provider.secret_is_current(&client_id, &old_secret));
    assert!(secret_expiry(&sim) > sim.now() + Duration::from_hours(6 * DAY));
    // A second start while the renewed secret is fresh does not renew again.
    sim.restart();
    sim.advance(Duration::from_hours(2));
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.count(RequestKind::RegistrationUpdate), 1);
    // The rotated registration access token works for the next renewal.
    restart_near_expiry(&mut sim, -1);
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.provider.stats().renewals, 2);
}

#[test]
fn renewal_failure_before_expiry_warns_and_keeps_the_old_secret_inv_6() {
    let mut sim = logged_in(expiring_provider());
    sim.provider
        .fail_always(Endpoint::Management, Fault::ServerError);
    restart_near_expiry(&mut sim, -12);
    sim.take_timeline();
    assert!(sim.run(Operation::Token).unwrap().is_token());
    let warned = sim.timeline().iter().any(
        |e| matches!(&e.what, What::Warning(w) if w.contains("renewing the client secret failed")),
    );
    assert!(warned, "{:?}", sim.timeline());
    // INV-1: one attempt per start, however many operations follow.
    sim.advance(Duration::from_hours(2));
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.count(RequestKind::RegistrationUpdate), 1);
    // The next start tries once more.
    sim.restart();
    sim.advance(Duration::from_hours(2));
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.count(RequestKind::RegistrationUpdate), 2);
}

#[test]
fn renewal_failure_after_expiry_is_a_hard_error_and_the_secret_is_never_sent_inv_5() {
    let mut sim = logged_in(expiring_provider());
    sim.provider
        .fail_always(Endpoint::Management, Fault::ServerError);
    let expiry = secret_expiry(&sim);
    sim.set_now(expiry + Duration::from_hours(1));
    sim.restart();
    let outcome = sim.run(Operation::Token).unwrap();
    match outcome.error() {
        Some(Error::SecretExpired { at, .. }) => assert_eq!(*at, expiry),
        other => panic!("expected the hard error, got {other:?}"),
    }
    let message = outcome.error().unwrap().to_string();
    assert!(
        message.contains("expired at") && message.contains("renewal failed"),
        "{message}"
    );
    assert_eq!(sim.provider.stats().expired_secret_presented, 0);
    assert_eq!(sim.client().lifecycle(sim.now()), Lifecycle::Expired);
    // Asking again in the same start neither renews again nor sends the secret.
    let again = sim.run(Operation::Token).unwrap();
    assert!(matches!(again.error(), Some(Error::SecretExpired { .. })));
    assert_eq!(sim.count(RequestKind::RegistrationUpdate), 1);
    assert_eq!(sim.provider.stats().expired_secret_presented, 0);
}

#[test]
fn an_expired_secret_is_renewed_when_the_server_allows_it() {
    let mut sim = logged_in(expiring_provider());
    restart_near_expiry(&mut sim, 1);
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.provider.stats().expired_secret_presented, 0);
}

#[test]
fn lost_renewal_answer_recovers_by_registering_again_edge_13() {
    let mut sim = logged_in(expiring_provider());
    sim.provider
        .fail_next(Endpoint::Management, Fault::LostResponse);
    restart_near_expiry(&mut sim, -12);
    // The server rotated the secret but the answer never came: the old secret is dead, the
    // token endpoint says invalid_client, and the client registers again. The old grant
    // belonged to the old client, so the user logs in once more.
    let outcome = sim.run(Operation::Token).unwrap();
    assert!(matches!(outcome, Outcome::LoginRequired(_)), "{outcome:?}");
    assert_eq!(sim.provider.stats().registrations, 2);
    assert_eq!(sim.count(RequestKind::RegistrationUpdate), 1);
    assert!(sim.run(Operation::Login).unwrap().is_token());
    assert_eq!(sim.provider.stats().registrations, 2);
    assert_eq!(sim.provider.stats().expired_secret_presented, 0);
}

#[test]
fn lost_renewal_answer_recovers_a_machine_client_without_help() {
    let provider = provider(expiring_provider());
    let mut config = confidential(&provider.config().issuer.clone());
    config.grant = Grant::ClientCredentials;
    let mut sim = Simulation::new(config, provider, start());
    assert!(sim.run(Operation::Token).unwrap().is_token());
    sim.provider
        .fail_next(Endpoint::Management, Fault::LostResponse);
    restart_near_expiry(&mut sim, -12);
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.provider.stats().registrations, 2);
}

#[test]
fn cimd_is_used_without_any_registration_request_cimd_9() {
    let provider = provider(ProviderConfig {
        cimd_supported: true,
        ..expiring_provider()
    });
    let mut config = ClientConfig::for_issuer("cimd", provider.config().issuer.clone());
    config.cimd_url = Some("https://app.example.com/tenure/client.json".into());
    let mut sim = Simulation::new(config, provider, start());
    assert!(sim.run(Operation::Login).unwrap().is_token());
    assert_eq!(sim.count(RequestKind::Registration), 0);
    let record = sim.stored().unwrap();
    assert_eq!(record.identity(), IdentityKind::Cimd);
    assert_eq!(
        record.client_id(),
        Some("https://app.example.com/tenure/client.json")
    );
    assert!(
        record.dcr.is_none(),
        "INV-2: a CIMD id is never stored as a DCR id"
    );
}

#[test]
fn rejected_cimd_falls_back_to_dcr_exactly_once_inv_2_inv_3() {
    let provider = provider(ProviderConfig {
        cimd_supported: true,
        cimd_accepted: false,
        ..expiring_provider()
    });
    let mut config = ClientConfig::for_issuer("cimd", provider.config().issuer.clone());
    config.cimd_url = Some("https://app.example.com/tenure/client.json".into());
    let mut sim = Simulation::new(config, provider, start());
    let outcome = sim.run(Operation::Login).unwrap();
    assert!(outcome.is_token(), "{outcome:?}");
    assert_eq!(sim.count(RequestKind::Registration), 1);
    let record = sim.stored().unwrap();
    assert_eq!(record.identity(), IdentityKind::Dcr);
    let cimd = record.cimd.as_ref().expect("INV-2: the CIMD id is kept");
    assert!(cimd.rejected);
    assert_ne!(record.dcr.as_ref().unwrap().client_id, cimd.client_id);
    // Later logins and restarts stay on DCR: no loop.
    sim.restart();
    assert!(sim.run(Operation::Login).unwrap().is_token());
    assert_eq!(sim.count(RequestKind::Registration), 1);
}

#[test]
fn cimd_rejected_at_the_token_endpoint_also_falls_back_once() {
    let provider = provider(ProviderConfig {
        cimd_supported: true,
        ..expiring_provider()
    });
    let mut config = ClientConfig::for_issuer("cimd", provider.config().issuer.clone());
    config.cimd_url = Some("https://app.example.com/tenure/client.json".into());
    let mut sim = Simulation::new(config, provider, start());
    sim.provider.fail_next(
        Endpoint::Token,
        Fault::Status(400, serde_json::json!({"error": "invalid_client"})),
    );
    let outcome = sim.run(Operation::Login).unwrap();
    assert!(outcome.is_token(), "{outcome:?}");
    assert_eq!(sim.count(RequestKind::Registration), 1);
    assert_eq!(sim.count(RequestKind::CodeExchange), 2);
}

#[test]
fn other_authorization_errors_are_reported_as_they_are_inv_3() {
    let mut sim = simulation(expiring_provider());
    sim.browser =
        Browser::Deliver("error=access_denied&state={state}&iss=https%3A%2F%2Fas.sim.test".into());
    let outcome = sim.run(Operation::Login).unwrap();
    match outcome.error() {
        Some(Error::AuthorizationDenied(e)) => assert!(e.is("access_denied")),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.count(RequestKind::Registration), 1);
    assert_eq!(sim.count(RequestKind::CodeExchange), 0);
}

#[test]
fn callback_with_a_wrong_state_is_ignored_inv_11() {
    let mut sim = simulation(expiring_provider());
    sim.browser = Browser::Deliver("code=stolen&state=forged&iss=https%3A%2F%2Fas.sim.test".into());
    let outcome = sim.run(Operation::Login).unwrap();
    assert!(
        matches!(outcome.error(), Some(Error::CallbackTimeout(_))),
        "{outcome:?}"
    );
    assert_eq!(sim.count(RequestKind::CodeExchange), 0);
}

#[test]
fn callback_with_a_foreign_iss_is_ignored_iss_1() {
    let mut sim = simulation(expiring_provider());
    sim.browser = Browser::Deliver("code=x&state={state}&iss=https%3A%2F%2Fevil.example".into());
    let outcome = sim.run(Operation::Login).unwrap();
    assert!(matches!(outcome.error(), Some(Error::CallbackTimeout(_))));
    assert_eq!(sim.count(RequestKind::CodeExchange), 0);
}

#[test]
fn a_browser_that_never_returns_times_out_oauth_2() {
    let mut sim = simulation(expiring_provider());
    sim.browser = Browser::Never;
    let began = sim.now();
    let outcome = sim.run(Operation::Login).unwrap();
    assert!(matches!(outcome.error(), Some(Error::CallbackTimeout(_))));
    assert_eq!(sim.now().since(began), Duration::from_secs(120));
}

#[test]
fn token_without_a_login_asks_for_one() {
    let mut sim = simulation(expiring_provider());
    assert!(matches!(
        sim.run(Operation::Token).unwrap(),
        Outcome::LoginRequired(_)
    ));
}

#[test]
fn a_dead_refresh_token_is_dropped_and_a_login_is_required_rt_7() {
    let mut sim = logged_in(expiring_provider());
    sim.provider.fail_next(
        Endpoint::Token,
        Fault::Status(400, serde_json::json!({"error": "invalid_grant"})),
    );
    sim.advance(Duration::from_hours(2));
    assert!(matches!(
        sim.run(Operation::Token).unwrap(),
        Outcome::LoginRequired(_)
    ));
    assert!(sim.stored().unwrap().tokens.is_none());
    assert_eq!(sim.count(RequestKind::Refresh), 1);
}

#[test]
fn issuer_mismatch_is_never_used_disc_4() {
    let provider = provider(expiring_provider());
    let config = confidential("https://other.sim.test");
    let mut sim = Simulation::new(config, provider, start());
    let outcome = sim.run(Operation::Login).unwrap();
    assert!(
        matches!(outcome.error(), Some(Error::Discovery(_))),
        "{outcome:?}"
    );
    assert_eq!(sim.count(RequestKind::Registration), 0);
}

#[test]
fn no_registration_method_names_what_to_configure() {
    let provider = provider(ProviderConfig {
        registration_enabled: false,
        ..expiring_provider()
    });
    let config = confidential(&provider.config().issuer.clone());
    let mut sim = Simulation::new(config, provider, start());
    let error = sim.run(Operation::Login).unwrap().error().cloned().unwrap();
    assert!(matches!(error, Error::NoRegistrationMethod { .. }));
    let message = error.to_string();
    assert!(
        message.contains("`client_id`") && message.contains("`cimd_url`"),
        "{message}"
    );
}

#[test]
fn pre_registered_credentials_come_first_mcp_7() {
    let provider = provider(expiring_provider());
    let mut config = confidential(&provider.config().issuer.clone());
    config.client_id = Some("unknown-to-the-server".into());
    config.client_secret = Some(tenure_core::Secret::new("s"));
    let mut sim = Simulation::new(config, provider, start());
    let outcome = sim.run(Operation::Login).unwrap();
    assert_eq!(sim.count(RequestKind::Registration), 0);
    assert_eq!(
        sim.stored().unwrap().identity(),
        IdentityKind::PreRegistered
    );
    // The server does not know the id, so the login fails rather than registering anew.
    assert!(outcome.error().is_some(), "{outcome:?}");
}

#[test]
fn machine_client_uses_client_credentials() {
    let provider = provider(expiring_provider());
    let mut config = confidential(&provider.config().issuer.clone());
    config.grant = Grant::ClientCredentials;
    config.auth_method = Some(AuthMethod::ClientSecretBasic);
    let mut sim = Simulation::new(config, provider, start());
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(
        kinds(&sim),
        vec![
            RequestKind::ServerMetadata,
            RequestKind::Registration,
            RequestKind::ClientCredentials
        ]
    );
    sim.advance(Duration::from_hours(2));
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.count(RequestKind::ClientCredentials), 2);
}

#[test]
fn discovery_from_a_protected_resource_mcp_2_mcp_14() {
    let provider = provider(ProviderConfig {
        resource: Some("https://mcp.sim.test/mcp".into()),
        ..expiring_provider()
    });
    let mut config = ClientConfig::for_resource("mcp", "https://mcp.sim.test/mcp");
    config.seed = [3; 32];
    let mut sim = Simulation::new(config, provider, start());
    assert!(sim.run(Operation::Login).unwrap().is_token());
    assert_eq!(
        sim.requests()[0].url,
        "https://mcp.sim.test/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(sim.requests()[1].kind, RequestKind::ServerMetadata);
    let record = sim.stored().unwrap();
    assert_eq!(record.key.upstream, "https://mcp.sim.test/mcp");
    // A restart finds the record and needs no discovery.
    sim.restart();
    let before = sim.requests().len();
    assert!(sim.run(Operation::Token).unwrap().is_token());
    assert_eq!(sim.requests().len(), before);
}

#[test]
fn a_lease_held_elsewhere_delays_registration_until_it_expires_inv_8() {
    let provider = provider(expiring_provider());
    let config = confidential(&provider.config().issuer.clone());
    let key = config.key_for(&provider.config().issuer);
    let mut sim = Simulation::new(config, provider, start());
    let taken = sim.store.apply(
        start(),
        &tenure_core::StoreOp::TakeLease {
            key,
            holder: "another-replica".into(),
            ttl: Duration::from_secs(5),
        },
    );
    assert_eq!(taken, tenure_core::StoreResult::LeaseTaken);
    assert!(sim.run(Operation::Login).unwrap().is_token());
    assert_eq!(sim.provider.stats().registrations, 1);
    assert!(sim.now() >= start() + Duration::from_secs(5));
}

#[test]
fn a_concurrent_writer_is_never_overwritten_inv_9() {
    let mut sim = logged_in(expiring_provider());
    // Another replica rewrites the record (same content, newer generation).
    let mut record = sim.stored().unwrap().clone();
    record.generation += 1;
    sim.store.put(record);
    sim.advance(Duration::from_hours(2));
    assert!(sim.run(Operation::Token).unwrap().is_token());
    // The refresh runs under the lease, after reading the record again: the other writer's
    // generation is the one the write names, so it is not even refused.
    assert_eq!(sim.store.conflicts, 0);
    let stored = sim.stored().unwrap();
    assert_eq!(
        stored.generation, 4,
        "1 registration, 2 tokens, 3 other writer, 4 refresh"
    );
}

#[test]
fn logout_keeps_the_registration_forget_deletes_it_mgmt_13() {
    let mut sim = logged_in(expiring_provider());
    let client_id = sim.stored().unwrap().client_id().unwrap().to_string();
    assert_eq!(sim.run(Operation::Logout).unwrap(), Outcome::Done);
    let record = sim.stored().unwrap();
    assert!(record.tokens.is_none());
    assert_eq!(record.client_id(), Some(client_id.as_str()));
    assert_eq!(sim.run(Operation::Forget).unwrap(), Outcome::Done);
    assert!(sim.stored().is_none());
    assert_eq!(sim.provider.stats().deletes, 1);
    assert_eq!(sim.provider.client_count(), 0);
}

#[test]
fn explicit_renew_reports_failure_even_before_expiry() {
    let mut sim = logged_in(expiring_provider());
    sim.provider.fail_always(
        Endpoint::Management,
        Fault::Status(403, serde_json::json!({})),
    );
    let outcome = sim.run(Operation::Renew).unwrap();
    assert!(
        matches!(outcome.error(), Some(Error::RenewalFailed(_))),
        "{outcome:?}"
    );
    // MGMT-17: a 403 keeps the registration and its token.
    assert!(sim.stored().unwrap().dcr.as_ref().unwrap().manageable());
}

#[test]
fn registration_gone_drops_the_management_token_mgmt_16() {
    let mut sim = logged_in(expiring_provider());
    sim.provider.fail_always(
        Endpoint::Management,
        Fault::Status(401, serde_json::json!({"error": "invalid_token"})),
    );
    assert!(sim.run(Operation::Renew).unwrap().error().is_some());
    assert!(!sim.stored().unwrap().dcr.as_ref().unwrap().manageable());
}

#[test]
fn secrets_never_appear_in_debug_output_inv_12() {
    let sim = logged_in(expiring_provider());
    let record = sim.stored().unwrap();
    let secret = current_secret(&sim);
    let tokens = record.tokens.as_ref().unwrap();
    let rendered = format!("{record:?} {:?} {}", sim.client(), record.redacted());
    for value in [
        secret.as_str(),
        tokens.access_token.expose(),
        tokens.refresh_token.as_ref().unwrap().expose(),
        record
            .dcr
            .as_ref()
            .unwrap()
            .registration_access_token
            .as_ref()
            .unwrap()
            .expose(),
    ] {
        assert!(
            !rendered.contains(value),
            "a secret leaked into debug output"
        );
    }
    for entry in sim.timeline() {
        assert!(!entry.to_string().contains(&secret));
    }
}
