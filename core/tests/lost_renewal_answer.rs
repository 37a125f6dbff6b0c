//! A renewal whose answer was lost (the process was killed after the PUT reached the server,
//! EDGE-13) leaves a stored secret and registration access token that the server has rotated
//! away. The next start's renewal is then refused with 401 (MGMT-16). These tests drive the
//! machine by hand, answering its store operations from one in-memory record, and check that
//! it never keeps handing out tokens on a secret nobody has checked, nor ends in a record that
//! can only ever fail: it presents the secret at the token endpoint, and registers again when
//! that says `invalid_client` (DCR-24) or when the secret has expired (INV-5).

use serde_json::{json, Value};
use tenure_core::record::AuthServer;
use tenure_core::{
    AuthMethod, Client, ClientConfig, Command, Error, Event, Grant, Input, OpId, Operation, Record,
    Registration, RequestId, RequestKind, Secret, SecretExpiry, StoreOp, StoreResult, Timestamp,
    Tokens,
};

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
        cimd_supported: false,
        iss_parameter_supported: true,
        pkce_s256: true,
        token_endpoint_auth_methods: None,
        resource_scopes: None,
        resource: None,
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

/// The machine, one in-memory record for the store, and the events seen.
struct Harness {
    client: Client,
    record: Option<Record>,
    events: Vec<Event>,
}

impl Harness {
    fn start(config: ClientConfig, record: Record, op: Operation) -> Harness {
        let mut client = Client::new(config);
        client.handle(
            now(),
            Input::Start {
                stored: Some(record.clone()),
            },
        );
        client.handle(now(), Input::Operation { id: OpId(1), op });
        Harness {
            client,
            record: Some(record),
            events: Vec::new(),
        }
    }

    /// Carries out store operations until the machine sends a request (returned) or has
    /// nothing more to do (`None`). Bounded.
    fn next_request(&mut self) -> Option<(RequestId, RequestKind, http::Request<Vec<u8>>)> {
        for _ in 0..100 {
            match self.client.poll_command()? {
                Command::Http { id, kind, request } => return Some((id, kind, request)),
                Command::Store { id, op } => {
                    let result = self.store(op);
                    self.client.handle(now(), Input::Store { id, result });
                }
                Command::Emit(event) => self.events.push(event),
                other => panic!("unexpected command {other:?}"),
            }
        }
        panic!("the machine kept issuing store operations");
    }

    fn store(&mut self, op: StoreOp) -> StoreResult {
        match op {
            StoreOp::Load { .. } => StoreResult::Loaded(self.record.clone()),
            StoreOp::CompareAndSwap {
                expected, record, ..
            } => {
                if expected == self.record.as_ref().map(|r| r.generation) {
                    self.record = Some(*record);
                    StoreResult::Written
                } else {
                    StoreResult::Conflict(self.record.clone())
                }
            }
            StoreOp::TakeLease { .. } => StoreResult::LeaseTaken,
            StoreOp::ReleaseLease { .. } => StoreResult::LeaseReleased,
            other => panic!("unexpected store operation {other:?}"),
        }
    }

    fn answer(&mut self, id: RequestId, status: u16, body: Value) {
        let response = http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .unwrap();
        self.client
            .handle(now(), Input::HttpResponse { id, response });
    }

    /// Expects a request of `kind` next and answers it.
    fn expect(&mut self, kind: RequestKind, status: u16, body: Value) -> http::Request<Vec<u8>> {
        let (id, sent, request) = self
            .next_request()
            .unwrap_or_else(|| panic!("expected a {kind:?} request; events {:?}", self.events));
        assert_eq!(sent, kind, "events so far {:?}", self.events);
        self.answer(id, status, body);
        request
    }

    fn dcr(&self) -> &Registration {
        self.record.as_ref().unwrap().dcr.as_ref().unwrap()
    }

    fn warned(&self, text: &str) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Warning(w) if w.contains(text)))
    }

    fn outcome(&mut self) -> Event {
        assert!(self.next_request().is_none(), "no more requests expected");
        self.events
            .iter()
            .find(|e| {
                matches!(
                    e,
                    Event::TokenReady { .. } | Event::Failed { .. } | Event::LoginRequired { .. }
                )
            })
            .cloned()
            .expect("the operation ended")
    }
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
    let mut harness = Harness::start(config, record, Operation::Token);

    harness.expect(RequestKind::RegistrationUpdate, 401, refused_rat());
    let (id, kind, request) = harness.next_request().expect("a token request");
    // What is stored by the time the next request goes out.
    let after_refusal = harness.record.clone().unwrap();
    let dcr = after_refusal.dcr.as_ref().unwrap();
    assert!(!dcr.manageable(), "MGMT-16: the refused token is dropped");
    assert!(
        after_refusal.tokens.is_none(),
        "the stored access token goes in the same write, so no crash can keep serving it"
    );
    assert_eq!(
        kind,
        RequestKind::ClientCredentials,
        "the secret is presented"
    );
    assert!(request.headers().contains_key("authorization"));
    harness.answer(id, 401, json!({"error": "invalid_client"}));
    harness.expect(RequestKind::Registration, 201, registered());
    harness.expect(RequestKind::ClientCredentials, 200, token("at2"));
    match harness.outcome() {
        Event::TokenReady { access_token, .. } => assert_eq!(access_token.expose(), "at2"),
        other => panic!("expected a token, got {other:?}"),
    }
    assert!(harness.warned("registering again"), "{:?}", harness.events);
    let dcr = harness.dcr();
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
    let mut harness = Harness::start(config, record, Operation::Token);

    harness.expect(RequestKind::RegistrationUpdate, 401, refused_rat());
    harness.expect(RequestKind::ClientCredentials, 200, token("at2"));
    assert!(matches!(harness.outcome(), Event::TokenReady { .. }));
    let dcr = harness.dcr();
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
    let mut harness = Harness::start(config, record, Operation::Token);

    harness.expect(RequestKind::RegistrationUpdate, 401, refused_rat());
    let request = harness.expect(RequestKind::Registration, 201, registered());
    assert!(
        !String::from_utf8_lossy(request.body()).contains("s1"),
        "INV-5"
    );
    let request = harness.expect(RequestKind::ClientCredentials, 200, token("at2"));
    let sent = request.headers()["authorization"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(sent, format!("Basic {}", "YzE6czE="), "INV-5: never c1:s1");
    assert!(matches!(harness.outcome(), Event::TokenReady { .. }));
    assert!(
        harness.warned("registering a new client"),
        "{:?}",
        harness.events
    );
    assert_eq!(harness.dcr().client_id, "c2");
}

/// A login's refresh token survives the refused renewal: it is presented with the secret
/// (which proves the secret), so a user whose secret still works need not log in again.
#[test]
fn a_refused_renewal_keeps_the_refresh_token_and_refreshes() {
    let config = config(Grant::AuthorizationCode);
    let record = stored(&config, now() + tenure_core::Duration::from_hours(2), true);
    let mut harness = Harness::start(config, record, Operation::Token);

    harness.expect(RequestKind::RegistrationUpdate, 401, refused_rat());
    let (id, kind, _) = harness.next_request().expect("a refresh");
    let tokens = harness.record.as_ref().unwrap().tokens.clone().unwrap();
    assert_eq!(tokens.refresh_token.as_ref().unwrap().expose(), "rt1");
    assert!(
        !tokens.access_token_valid(now()),
        "the access token is not handed out"
    );
    assert_eq!(kind, RequestKind::Refresh);
    harness.answer(
        id,
        200,
        json!({"access_token": "at2", "token_type": "Bearer", "expires_in": 3600,
               "refresh_token": "rt2"}),
    );
    match harness.outcome() {
        Event::TokenReady { access_token, .. } => assert_eq!(access_token.expose(), "at2"),
        other => panic!("expected a token, got {other:?}"),
    }
    assert_eq!(harness.dcr().client_id, "c1");
}

/// An explicit `tenure renew` reports the refused renewal as a failure and sends nothing
/// more; the record it leaves behind is no dead end: management is dropped, so the next token
/// request registers a new client (the test above).
#[test]
fn an_explicit_renew_refused_after_expiry_fails_and_leaves_a_recoverable_record() {
    let config = config(Grant::ClientCredentials);
    let record = stored(&config, now() - tenure_core::Duration::from_secs(5), false);
    let mut harness = Harness::start(config, record, Operation::Renew);

    harness.expect(RequestKind::RegistrationUpdate, 401, refused_rat());
    match harness.outcome() {
        Event::Failed {
            error: Error::RenewalFailed(reason),
            ..
        } => assert!(reason.contains("invalid_token"), "{reason}"),
        other => panic!("expected the renewal failure, got {other:?}"),
    }
    assert_eq!(harness.dcr().client_id, "c1");
    assert!(!harness.dcr().manageable());
}
