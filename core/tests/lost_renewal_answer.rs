//! A renewal whose answer was lost (the process was killed after the PUT reached the server,
//! EDGE-13) leaves a stored secret and registration access token that the server has rotated
//! away. The next start's renewal is then refused with 401 (MGMT-16). These tests answer the
//! machine's requests by hand, one at a time, while the simulation carries out its store
//! operations, and check that it never keeps handing out tokens on a secret nobody has
//! checked, nor ends in a record that can only ever fail: it presents the secret at the token
//! endpoint, and registers again when that says `invalid_client` (DCR-24) or when the secret
//! has expired (INV-5).

use serde_json::{json, Value};
use tenure_core::record::AuthServer;
use tenure_core::{
    AuthMethod, ClientConfig, Error, Grant, OpId, Operation, Outcome, Record, Registration,
    RequestKind, Secret, SecretExpiry, Timestamp, Tokens,
};
use tenure_sim::{Reply, Scripted, Simulation, What};

const ISSUER: &str = "https://as.example.com";

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000)
}

fn config(grant: Grant) -> ClientConfig {
    let mut config = ClientConfig::for_issuer("svc", ISSUER);
    config.grant = grant;
    config.scopes = vec!["read".into()];
    config
}

fn server() -> AuthServer {
    AuthServer {
        issuer: ISSUER.into(),
        authorization_endpoint: Some(format!("{ISSUER}/auth")),
        token_endpoint: format!("{ISSUER}/token"),
        registration_endpoint: Some(format!("{ISSUER}/reg")),
        device_authorization_endpoint: None,
        cimd_supported: false,
        iss_parameter_supported: true,
        pkce_s256: true,
        token_endpoint_auth_methods: None,
        resource_scopes: None,
        resource: None,
        dpop_es256: false,
    }
}

/// A stored DCR registration whose secret expires at `expires` (inside the default 24 h
/// renewal window), with a valid access token and, optionally, a refresh token.
fn stored(config: &ClientConfig, expires: Timestamp, refresh: bool) -> Record {
    let mut record = Record::new(config.key_for(ISSUER), server());
    record.generation = 7;
    record.dcr = Some(Registration {
        client_id: "c1".into(),
        client_secret: Some(Secret::new("s1")),
        secret_expires: SecretExpiry::At(expires),
        registration_access_token: Some(Secret::new("rat1")),
        registration_client_uri: Some(format!("{ISSUER}/reg/c1")),
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        redirect_uri: None,
        registration_endpoint: format!("{ISSUER}/reg"),
        obtained_at: None,
        unproven: false,
        metadata: json!({"client_id": "c1", "grant_types": ["client_credentials"],
                         "token_endpoint_auth_method": "client_secret_basic"})
        .as_object()
        .unwrap()
        .clone(),
    });
    record.tokens = Some(Tokens {
        access_token: Secret::new("at1"),
        token_type: "Bearer".into(),
        expires_at: Some(now() + tenure_core::Duration::from_hours(1)),
        refresh_token: refresh.then(|| Secret::new("rt1")),
        scope: Some("read".into()),
        issued_at: None,
    });
    record
}

/// The client started from `record` in a simulation whose requests the test answers by hand
/// (the scripted server is only there to be asked nothing), with `op` asked for.
fn start(config: ClientConfig, record: Record, op: Operation) -> (Simulation<Scripted>, OpId) {
    let mut sim = Simulation::new(config, Scripted::new(), now());
    sim.store.put(record);
    sim.restart();
    let op = sim.begin(op);
    (sim, op)
}

/// Expects a request of `kind` next, answers it with `status` and `body`, and returns it.
fn expect(
    sim: &mut Simulation<Scripted>,
    kind: RequestKind,
    status: u16,
    body: Value,
) -> http::Request<Vec<u8>> {
    let pending = sim
        .poll_request()
        .unwrap_or_else(|| panic!("expected a {kind:?} request; timeline {:?}", sim.timeline()));
    assert_eq!(pending.kind, kind, "timeline so far {:?}", sim.timeline());
    sim.handle_reply(&pending, Reply::json(status, &body));
    pending.request
}

/// The registration stored now.
fn registration(sim: &Simulation<Scripted>) -> &Registration {
    sim.stored().unwrap().dcr.as_ref().unwrap()
}

/// Whether the client warned with `text` in the message.
fn warned(sim: &Simulation<Scripted>, text: &str) -> bool {
    sim.timeline()
        .iter()
        .any(|e| matches!(&e.what, What::Warning(w) if w.contains(text)))
}

/// How `op` ended, once the client has nothing more to send; none of these needs the user.
fn outcome(sim: &mut Simulation<Scripted>, op: OpId) -> Outcome {
    assert!(sim.poll_request().is_none(), "no more requests expected");
    assert!(
        !sim.timeline().iter().any(|e| e.what == What::Browser),
        "no browser step expected"
    );
    sim.outcome(op).cloned().expect("the operation ended")
}

fn refused_rat() -> Value {
    json!({"error": "invalid_token"})
}

fn registered() -> Value {
    json!({"client_id": "c2", "client_secret": "s2",
           "client_secret_expires_at": now().unix_seconds() + 7 * 86_400,
           "registration_access_token": "rat2", "registration_client_uri": format!("{ISSUER}/reg/c2"),
           "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"})
}

fn token(value: &str) -> Value {
    json!({"access_token": value, "token_type": "Bearer", "expires_in": 3600})
}

/// MGMT-16, EDGE-13, DCR-24: the stored access token is still valid, but the renewal's 401
/// says the secret may be dead. The stored access token is dropped in the same write that
/// drops the registration access token, the secret is presented at the token endpoint, and
/// its `invalid_client` leads to one new registration; what ends up stored works.
#[test]
fn a_refused_renewal_makes_the_secret_prove_itself_and_a_dead_one_is_replaced() {
    let config = config(Grant::ClientCredentials);
    let record = stored(&config, now() + tenure_core::Duration::from_hours(2), false);
    let (mut sim, op) = start(config, record, Operation::Token);

    expect(
        &mut sim,
        RequestKind::RegistrationUpdate,
        401,
        refused_rat(),
    );
    let pending = sim.poll_request().expect("a token request");
    // What is stored by the time the next request goes out.
    let after_refusal = sim.stored().cloned().unwrap();
    let dcr = after_refusal.dcr.as_ref().unwrap();
    assert!(!dcr.manageable(), "MGMT-16: the refused token is dropped");
    assert!(
        after_refusal.tokens.is_none(),
        "the stored access token goes in the same write, so no crash can keep serving it"
    );
    assert_eq!(
        pending.kind,
        RequestKind::ClientCredentials,
        "the secret is presented"
    );
    assert!(pending.request.headers().contains_key("authorization"));
    sim.handle_reply(
        &pending,
        Reply::json(401, &json!({"error": "invalid_client"})),
    );
    expect(&mut sim, RequestKind::Registration, 201, registered());
    expect(&mut sim, RequestKind::ClientCredentials, 200, token("at2"));
    match outcome(&mut sim, op) {
        Outcome::Token { access_token, .. } => assert_eq!(access_token.expose(), "at2"),
        other => panic!("expected a token, got {other:?}"),
    }
    assert!(warned(&sim, "registering again"), "{:?}", sim.timeline());
    let dcr = registration(&sim);
    assert_eq!(dcr.client_id, "c2");
    assert_eq!(dcr.client_secret.as_ref().unwrap().expose(), "s2");
    assert!(dcr.manageable());
}

/// MGMT-16: when the token endpoint accepts the secret, only the management token was bad:
/// the registration and secret stay, no new registration.
#[test]
fn a_refused_renewal_with_a_secret_that_still_works_keeps_the_registration() {
    let config = config(Grant::ClientCredentials);
    let record = stored(&config, now() + tenure_core::Duration::from_hours(2), false);
    let (mut sim, op) = start(config, record, Operation::Token);

    expect(
        &mut sim,
        RequestKind::RegistrationUpdate,
        401,
        refused_rat(),
    );
    expect(&mut sim, RequestKind::ClientCredentials, 200, token("at2"));
    assert!(matches!(outcome(&mut sim, op), Outcome::Token { .. }));
    let dcr = registration(&sim);
    assert_eq!(dcr.client_id, "c1");
    assert_eq!(dcr.client_secret.as_ref().unwrap().expose(), "s1");
    assert!(!dcr.manageable());
}

/// MGMT-16, DCR-24, INV-5: a refused renewal of an expired secret leaves nothing usable (the
/// secret may not be sent, management is gone): register again at once rather than store a
/// record that can only fail from now on. The expired secret never reaches the token
/// endpoint.
#[test]
fn a_refused_renewal_of_an_expired_secret_registers_again() {
    let config = config(Grant::ClientCredentials);
    let record = stored(&config, now() - tenure_core::Duration::from_secs(5), false);
    let (mut sim, op) = start(config, record, Operation::Token);

    expect(
        &mut sim,
        RequestKind::RegistrationUpdate,
        401,
        refused_rat(),
    );
    let request = expect(&mut sim, RequestKind::Registration, 201, registered());
    assert!(
        !String::from_utf8_lossy(request.body()).contains("s1"),
        "INV-5"
    );
    let request = expect(&mut sim, RequestKind::ClientCredentials, 200, token("at2"));
    let sent = request.headers()["authorization"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(sent, format!("Basic {}", "YzE6czE="), "INV-5: never c1:s1");
    assert!(matches!(outcome(&mut sim, op), Outcome::Token { .. }));
    assert!(
        warned(&sim, "registering a new client"),
        "{:?}",
        sim.timeline()
    );
    assert_eq!(registration(&sim).client_id, "c2");
}

/// A login's refresh token survives the refused renewal: it is presented with the secret
/// (which proves the secret), so a user whose secret still works need not log in again.
#[test]
fn a_refused_renewal_keeps_the_refresh_token_and_refreshes() {
    let config = config(Grant::AuthorizationCode);
    let record = stored(&config, now() + tenure_core::Duration::from_hours(2), true);
    let (mut sim, op) = start(config, record, Operation::Token);

    expect(
        &mut sim,
        RequestKind::RegistrationUpdate,
        401,
        refused_rat(),
    );
    let pending = sim.poll_request().expect("a refresh");
    let tokens = sim.stored().unwrap().tokens.clone().unwrap();
    assert_eq!(tokens.refresh_token.as_ref().unwrap().expose(), "rt1");
    assert!(
        !tokens.access_token_valid(now()),
        "the access token is not handed out"
    );
    assert_eq!(pending.kind, RequestKind::Refresh);
    sim.handle_reply(
        &pending,
        Reply::json(
            200,
            &json!({"access_token": "at2", "token_type": "Bearer", "expires_in": 3600,
                    "refresh_token": "rt2"}),
        ),
    );
    match outcome(&mut sim, op) {
        Outcome::Token { access_token, .. } => assert_eq!(access_token.expose(), "at2"),
        other => panic!("expected a token, got {other:?}"),
    }
    assert_eq!(registration(&sim).client_id, "c1");
}

/// An explicit `tenure renew` reports the refused renewal as a failure and sends nothing
/// more; the record it leaves behind is no dead end: management is dropped, so the next token
/// request registers a new client (the test above).
#[test]
fn an_explicit_renew_refused_after_expiry_fails_and_leaves_a_recoverable_record() {
    let config = config(Grant::ClientCredentials);
    let record = stored(&config, now() - tenure_core::Duration::from_secs(5), false);
    let (mut sim, op) = start(config, record, Operation::Renew);

    expect(
        &mut sim,
        RequestKind::RegistrationUpdate,
        401,
        refused_rat(),
    );
    match outcome(&mut sim, op) {
        Outcome::Failed(Error::RenewalFailed(reason)) => {
            assert!(reason.contains("invalid_token"), "{reason}")
        }
        other => panic!("expected the renewal failure, got {other:?}"),
    }
    assert_eq!(registration(&sim).client_id, "c1");
    assert!(!registration(&sim).manageable());
}
