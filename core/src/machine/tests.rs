//! The machine against a scripted resource and authorization server: scope selection,
//! step-up, refused tokens and the 2025-03-26 fallback, end to end through inputs and
//! commands.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const AS: &str = "https://as.example.com";
const PRM_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);

/// One scripted answer: status and JSON body.
type Answer = (u16, Value);

/// A resource and authorization server answering by `METHOD URL-without-query`, a store in
/// memory, and a browser that is redirected at once with a code.
struct World {
    client: Client,
    answers: HashMap<String, Answer>,
    /// The store, one record per client key.
    stored: HashMap<ClientKey, Record>,
    sent: Vec<String>,
    /// Every request in full: method, URL, headers and body.
    wire: Vec<String>,
    authorizations: Vec<Url>,
    events: Vec<Event>,
    next_op: u64,
    /// The `scope` the token endpoint grants; `None` grants what was asked for, silently.
    granted: Option<String>,
    /// When set, the token endpoint answers this instead of a token.
    token_error: Option<Answer>,
}

use url::Url;

impl World {
    fn new(config: ClientConfig) -> Self {
        let mut client = Client::new(config);
        client.handle(NOW, Input::Start { stored: None });
        World {
            client,
            answers: HashMap::new(),
            stored: HashMap::new(),
            sent: Vec::new(),
            wire: Vec::new(),
            authorizations: Vec::new(),
            events: Vec::new(),
            next_op: 0,
            granted: None,
            token_error: None,
        }
    }

    /// A resource whose metadata lists `scopes_supported` (when given) and an AS that
    /// registers dynamically.
    fn mcp(scopes_supported: Option<&[&str]>) -> Self {
        let mut config = ClientConfig::for_resource("mcp", RESOURCE);
        config.seed = [7; 32];
        let mut world = World::new(config);
        let mut prm = json!({"resource": RESOURCE, "authorization_servers": [AS]});
        if let Some(scopes) = scopes_supported {
            prm["scopes_supported"] = json!(scopes);
        }
        world.answer("GET", PRM_URL, 200, prm);
        world.answer(
            "GET",
            "https://as.example.com/.well-known/oauth-authorization-server",
            200,
            json!({
                "issuer": AS,
                "authorization_endpoint": "https://as.example.com/authorize",
                "token_endpoint": "https://as.example.com/token",
                "registration_endpoint": "https://as.example.com/register",
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["mcp:basic", "offline_access"],
            }),
        );
        world.answer(
            "POST",
            "https://as.example.com/register",
            201,
            json!({"client_id": "dcr-client", "token_endpoint_auth_method": "none",
                   "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
        );
        world
    }

    fn answer(&mut self, method: &str, url: &str, status: u16, body: Value) {
        self.answers
            .insert(format!("{method} {url}"), (status, body));
    }

    fn challenge(&mut self, header: &str) {
        self.client.handle(
            NOW,
            Input::ResourceChallenge {
                headers: vec![header.to_string()],
                token: None,
            },
        );
        self.pump();
    }

    /// Runs `op` to its end and returns the event that ended it.
    fn run(&mut self, op: Operation) -> Event {
        self.next_op += 1;
        let id = OpId(self.next_op);
        self.client.handle(NOW, Input::Operation { id, op });
        self.pump();
        self.events
            .iter()
            .rev()
            .find(|event| match event {
                Event::TokenReady { op, .. }
                | Event::LoginRequired { op, .. }
                | Event::Done { op }
                | Event::Failed { op, .. } => *op == id,
                _ => false,
            })
            .cloned()
            .unwrap_or_else(|| panic!("{op:?} did not end; events: {:?}", self.events))
    }

    fn pump(&mut self) {
        for _ in 0..200 {
            let Some(command) = self.client.poll_command() else {
                return;
            };
            let input = match command {
                Command::Http { id, request, .. } => {
                    let url = request.uri().to_string();
                    let bare = url.split('?').next().unwrap_or_default().to_string();
                    let key = format!("{} {bare}", request.method());
                    self.sent.push(key.clone());
                    self.wire.push(format!(
                        "{key} {:?} {}",
                        request.headers(),
                        String::from_utf8_lossy(request.body())
                    ));
                    let (status, body) = if bare.ends_with("/token") {
                        self.token_error
                            .clone()
                            .unwrap_or_else(|| self.token_answer(request.body()))
                    } else {
                        self.answers
                            .get(&key)
                            .cloned()
                            .unwrap_or((404, json!({"error": "not_found"})))
                    };
                    let response = http::Response::builder()
                        .status(status)
                        .body(body.to_string().into_bytes())
                        .unwrap();
                    Input::HttpResponse { id, response }
                }
                Command::Store { id, op } => Input::Store {
                    id,
                    result: self.store(op),
                },
                Command::OpenBrowser { url } => {
                    let url = Url::parse(&url).unwrap();
                    let state = url
                        .query_pairs()
                        .find(|(k, _)| k == "state")
                        .map(|(_, v)| v.into_owned())
                        .unwrap();
                    self.authorizations.push(url);
                    Input::Callback {
                        query: format!("code=the-code&state={state}"),
                    }
                }
                Command::Emit(event) => {
                    self.events.push(event);
                    continue;
                }
            };
            self.client.handle(NOW, input);
        }
        panic!("the machine never settled");
    }

    /// Grants the scope of the last authorization (or `granted`) with a fresh token.
    fn token_answer(&self, _body: &[u8]) -> Answer {
        let asked = self
            .authorizations
            .last()
            .and_then(|url| url.query_pairs().find(|(k, _)| k == "scope"))
            .map(|(_, v)| v.into_owned());
        let mut body = json!({
            "access_token": format!("token-{}", self.authorizations.len()),
            "token_type": "Bearer",
            "expires_in": 3600,
        });
        if let Some(scope) = self.granted.clone().or(asked) {
            body["scope"] = json!(scope);
        }
        (200, body)
    }

    fn store(&mut self, op: StoreOp) -> StoreResult {
        match op {
            StoreOp::Load { key } => StoreResult::Loaded(self.stored.get(&key).cloned()),
            StoreOp::CompareAndSwap {
                key,
                expected,
                record,
            } => {
                if self.stored.get(&key).map(|r| r.generation) == expected {
                    self.stored.insert(key, *record);
                    StoreResult::Written
                } else {
                    StoreResult::Conflict(self.stored.get(&key).cloned())
                }
            }
            StoreOp::Delete { key, .. } => {
                self.stored.remove(&key);
                StoreResult::Deleted
            }
            StoreOp::TakeLease { .. } => StoreResult::LeaseTaken,
            StoreOp::ReleaseLease { .. } => StoreResult::LeaseReleased,
        }
    }

    /// The `scope` parameter of authorization request `n` (0-based), if it had one.
    fn scope_of(&self, n: usize) -> Option<String> {
        self.authorizations[n]
            .query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
    }

    /// Logs in the way an MCP client does after a 401: token, then login when needed.
    fn log_in(&mut self) -> Event {
        match self.run(Operation::Token) {
            Event::LoginRequired { .. } => self.run(Operation::Login),
            other => other,
        }
    }
}

fn token_of(event: &Event) -> String {
    match event {
        Event::TokenReady { access_token, .. } => access_token.expose().to_string(),
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn the_challenge_scope_is_asked_for_first_mcp_10_mcp_11() {
    let mut world = World::mcp(Some(&["mcp:basic", "mcp:read"]));
    world.challenge(&format!(
        r#"Bearer error="invalid_token", scope="mcp:read", resource_metadata="{PRM_URL}""#
    ));
    token_of(&world.log_in());
    // MCP26-7: offline_access is added because the AS lists it.
    assert_eq!(
        world.scope_of(0).as_deref(),
        Some("mcp:read offline_access")
    );
}

#[test]
fn scopes_supported_is_asked_for_without_a_challenge_scope_mcp_10() {
    let mut world = World::mcp(Some(&["mcp:basic", "mcp:read"]));
    world.challenge(&format!(r#"Bearer resource_metadata="{PRM_URL}""#));
    token_of(&world.log_in());
    assert_eq!(
        world.scope_of(0).as_deref(),
        Some("mcp:basic mcp:read offline_access")
    );
}

#[test]
fn no_scope_is_sent_when_nothing_names_one_mcp_10() {
    let mut world = World::mcp(None);
    world.challenge(&format!(r#"Bearer resource_metadata="{PRM_URL}""#));
    token_of(&world.log_in());
    assert_eq!(world.scope_of(0), None);
}

#[test]
fn step_up_asks_for_the_union_then_gives_up_mcp_18_mcp26_8() {
    let mut world = World::mcp(None);
    world.challenge(&format!(
        r#"Bearer scope="mcp:basic", resource_metadata="{PRM_URL}""#
    ));
    let first = token_of(&world.log_in());
    world.challenge(&format!(
        r#"Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="{PRM_URL}""#
    ));
    // The held token still serves requests it suffices for.
    assert_eq!(token_of(&world.run(Operation::Token)), first);
    let second = token_of(&world.run(Operation::Login));
    assert_ne!(first, second);
    // MCP26-8: everything asked for before (offline_access included, MCP26-7) and more.
    assert_eq!(
        world.scope_of(1).as_deref(),
        Some("mcp:basic offline_access mcp:write")
    );
    // The resource refuses again for scopes the new token holds: no third authorization.
    world.challenge(r#"Bearer error="insufficient_scope", scope="mcp:write""#);
    match world.run(Operation::Login) {
        Event::Failed {
            error: Error::StepUpRefused(reason),
            ..
        } => assert!(reason.contains("Tenure stops here"), "{reason}"),
        other => panic!("expected a refused step-up, got {other:?}"),
    }
    assert_eq!(world.authorizations.len(), 2);
}

#[test]
fn a_downscoping_server_gets_a_limited_number_of_step_ups_mcp_18() {
    let mut world = World::mcp(None);
    world.granted = Some("mcp:basic".into());
    world.challenge(&format!(
        r#"Bearer scope="mcp:basic", resource_metadata="{PRM_URL}""#
    ));
    token_of(&world.log_in());
    let mut refused = false;
    for _ in 0..5 {
        world.challenge(r#"Bearer error="insufficient_scope", scope="mcp:admin""#);
        if let Event::Failed { error, .. } = world.run(Operation::Login) {
            assert!(matches!(error, Error::StepUpRefused(_)), "{error}");
            refused = true;
            break;
        }
    }
    assert!(refused);
    assert_eq!(
        world.authorizations.len(),
        1 + crate::scope::MAX_STEP_UPS as usize
    );
}

#[test]
fn a_refused_token_is_not_handed_out_again_rfc_6750() {
    let mut world = World::mcp(None);
    world.challenge(&format!(r#"Bearer resource_metadata="{PRM_URL}""#));
    let first = token_of(&world.log_in());
    assert_eq!(token_of(&world.run(Operation::Token)), first);
    world.challenge(r#"Bearer error="invalid_token""#);
    assert!(matches!(
        world.run(Operation::Token),
        Event::LoginRequired { .. }
    ));
    // The refusal is stored: the next process does not hand the token out either.
    let record = world.stored.values().next().unwrap().clone();
    assert_eq!(
        record.tokens.as_ref().unwrap().expires_at,
        Some(Timestamp::EPOCH)
    );
    let mut config = ClientConfig::for_resource("mcp", RESOURCE);
    config.seed = [8; 32];
    world.client = Client::new(config);
    world.client.handle(
        NOW,
        Input::Start {
            stored: Some(record),
        },
    );
    assert!(matches!(
        world.run(Operation::Token),
        Event::LoginRequired { .. }
    ));
}

fn legacy_world() -> World {
    let mut config = ClientConfig::for_resource("mcp", RESOURCE);
    config.legacy_discovery = true;
    config.seed = [3; 32];
    let mut world = World::new(config);
    world.answer(
        "POST",
        "https://mcp.example.com/register",
        201,
        json!({"client_id": "legacy-client", "token_endpoint_auth_method": "none",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    world
}

#[test]
fn without_any_metadata_the_2025_03_26_defaults_are_used_edge_27() {
    let mut world = legacy_world();
    world.challenge(r#"Bearer error="invalid_token""#);
    token_of(&world.log_in());
    assert_eq!(
        world.authorizations[0].as_str().split('?').next(),
        Some("https://mcp.example.com/authorize")
    );
    assert!(world
        .sent
        .contains(&"GET https://mcp.example.com/.well-known/oauth-authorization-server".into()));
    assert!(world
        .sent
        .contains(&"POST https://mcp.example.com/token".into()));
}

#[test]
fn root_metadata_on_the_same_origin_is_used_the_2025_03_26_way_edge_27() {
    let mut world = legacy_world();
    world.answer(
        "GET",
        "https://mcp.example.com/.well-known/oauth-authorization-server",
        200,
        json!({
            "issuer": "https://mcp.example.com/oauth",
            "authorization_endpoint": "https://mcp.example.com/oauth/authorize",
            "token_endpoint": "https://mcp.example.com/oauth/token",
            "registration_endpoint": "https://mcp.example.com/register",
            "code_challenge_methods_supported": ["S256"],
        }),
    );
    token_of(&world.log_in());
    assert_eq!(
        world.authorizations[0].as_str().split('?').next(),
        Some("https://mcp.example.com/oauth/authorize")
    );
    assert_eq!(
        world.client.record().unwrap().key.issuer,
        "https://mcp.example.com/oauth"
    );
}

#[test]
fn a_mismatched_resource_document_is_never_bypassed_edge_23_edge_27() {
    let mut world = legacy_world();
    world.answer(
        "GET",
        PRM_URL,
        200,
        json!({"resource": "https://evil.example.com/mcp", "authorization_servers": [AS]}),
    );
    world.challenge(&format!(r#"Bearer resource_metadata="{PRM_URL}""#));
    match world.run(Operation::Token) {
        Event::Failed {
            error: Error::Discovery(reason),
            ..
        } => assert!(
            reason.contains("names resource `https://evil.example.com/mcp`"),
            "{reason}"
        ),
        other => panic!("expected a discovery failure, got {other:?}"),
    }
    assert!(world.authorizations.is_empty());
    assert!(!world
        .sent
        .iter()
        .any(|s| s.contains("oauth-authorization-server")));
}

#[test]
fn without_the_option_a_missing_document_is_an_error() {
    let mut config = ClientConfig::for_resource("mcp", RESOURCE);
    config.seed = [3; 32];
    let mut world = World::new(config);
    assert!(matches!(
        world.run(Operation::Token),
        Event::Failed {
            error: Error::Discovery(_),
            ..
        }
    ));
}

// ----- refused writes and late lease releases (found by the stateright models) -----

fn registration(id: &str, secret: &str, expires: i64) -> Registration {
    Registration {
        client_id: id.into(),
        client_secret: Some(Secret::new(secret)),
        secret_expires: SecretExpiry::At(Timestamp::from_unix_seconds(expires)),
        registration_access_token: None,
        registration_client_uri: None,
        token_endpoint_auth_method: crate::AuthMethod::ClientSecretBasic,
        redirect_uri: None,
        registration_endpoint: format!("{AS}/register"),
        obtained_at: None,
        unproven: false,
        metadata: Default::default(),
    }
}

fn stored_with(dcr: Option<Registration>, cimd: Option<(&str, bool)>) -> Record {
    let key = ClientKey::new(AS, "up", "http://127.0.0.1:1/callback", &[]);
    let server = crate::record::AuthServer {
        issuer: AS.into(),
        authorization_endpoint: None,
        token_endpoint: format!("{AS}/token"),
        registration_endpoint: None,
        cimd_supported: true,
        iss_parameter_supported: false,
        pkce_s256: true,
        token_endpoint_auth_methods: None,
        resource_scopes: None,
        resource: None,
    };
    let mut record = Record::new(key, server);
    record.dcr = dcr;
    record.cimd = cimd.map(|(id, rejected)| crate::record::CimdIdentity {
        client_id: id.into(),
        rejected,
    });
    record
}

/// F2 (INV-9, INV-3): a stale "use the CIMD id" must not undo a stored rejection.
#[test]
fn a_refused_write_never_undoes_a_stored_cimd_rejection_inv_9() {
    let rejected = stored_with(None, Some(("https://app.example.com/c.json", true)));
    let set = Patch::SetCimd("https://app.example.com/c.json".into());
    assert!(!set.still_applies(Some(&rejected), None));
    assert!(!Patch::RejectCimd.still_applies(Some(&rejected), None));
    assert!(set.still_applies(None, None));
}

/// F3 (INV-9): dropping a registration judged dead must not drop the secret another replica
/// renewed meanwhile; a renewal older than the stored one is not written over it.
#[test]
fn a_refused_write_never_drops_or_rolls_back_a_newer_secret_inv_9() {
    let old = registration("c1", "old", 1_000);
    let renewed = registration("c1", "new", 2_000);
    let current = stored_with(Some(renewed.clone()), None);
    assert!(!Patch::DropRegistration(None).still_applies(Some(&current), Some(&old)));
    assert!(!Patch::DropManagement.still_applies(Some(&current), Some(&old)));
    assert!(Patch::DropRegistration(None).still_applies(Some(&current), Some(&renewed)));
    let older = Patch::Renewed(Box::new(registration("c1", "older", 1_500)));
    assert!(!older.still_applies(Some(&current), Some(&old)));
    let newer = Patch::Renewed(Box::new(registration("c1", "newest", 3_000)));
    assert!(newer.still_applies(Some(&current), Some(&old)));
    let someone_registered = Patch::SetRegistration(Box::new(registration("c2", "s", 9_000)));
    assert!(!someone_registered.still_applies(Some(&current), None));
}

/// F1 (INV-1, INV-8): the lease is not taken again while its release is unanswered, so a
/// late release can never free the new lease.
#[test]
fn the_lease_is_not_taken_again_before_its_release_is_answered_inv_8() {
    let mut config = ClientConfig::for_issuer("lease", AS);
    config.seed = [1; 32];
    let mut client = Client::new(config);
    client.handle(NOW, Input::Start { stored: None });
    client.server = Some(stored_with(None, None).server);
    client.lease_held = true;
    client.release_lease();
    let release = match client.out.pop_back() {
        Some(Command::Store {
            id,
            op: StoreOp::ReleaseLease { .. },
        }) => id,
        other => panic!("expected a release, got {other:?}"),
    };
    assert!(matches!(client.take_lease(), Step::Wait(Wait::Release)));
    client.wait = Wait::Release;
    client.handle(
        NOW,
        Input::Store {
            id: release,
            result: StoreResult::LeaseReleased,
        },
    );
    assert!(!matches!(client.wait, Wait::Release));
    assert!(matches!(
        client.take_lease(),
        Step::Wait(Wait::Store(_, StorePurpose::Lease))
    ));
}

const AS2: &str = "https://as2.example.com";

/// MCP26-3, MCP26-4, INV-7 (SEP-2352): when the resource's metadata names another
/// authorization server, the client registers there and never presents the first server's
/// credentials to it; the first server's record is kept apart, under its own key.
#[test]
fn a_new_authorization_server_gets_its_own_registration_mcp26_3_inv_7() {
    let mut world = World::mcp(None);
    world.answer(
        "POST",
        "https://as.example.com/register",
        201,
        json!({"client_id": "as1-client", "client_secret": "as1-secret",
               "client_secret_expires_at": 0, "token_endpoint_auth_method": "client_secret_post",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    assert!(matches!(world.log_in(), Event::TokenReady { .. }));

    world.answer(
        "GET",
        PRM_URL,
        200,
        json!({"resource": RESOURCE, "authorization_servers": [AS2]}),
    );
    world.answer(
        "GET",
        "https://as2.example.com/.well-known/oauth-authorization-server",
        200,
        json!({
            "issuer": AS2,
            "authorization_endpoint": "https://as2.example.com/authorize",
            "token_endpoint": "https://as2.example.com/token",
            "registration_endpoint": "https://as2.example.com/register",
            "code_challenge_methods_supported": ["S256"],
        }),
    );
    world.answer(
        "POST",
        "https://as2.example.com/register",
        201,
        json!({"client_id": "as2-client", "token_endpoint_auth_method": "none",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    world.challenge(&format!(r#"Bearer resource_metadata="{PRM_URL}""#));
    let before = world.wire.len();
    assert!(matches!(world.log_in(), Event::TokenReady { .. }));
    assert!(world
        .sent
        .contains(&"POST https://as2.example.com/register".to_string()));
    let to_as2: Vec<&String> = world.wire[before..]
        .iter()
        .filter(|line| line.contains("as2.example.com"))
        .collect();
    assert!(to_as2.iter().any(|line| line.contains("/token")));
    for line in &to_as2 {
        assert!(!line.contains("as1-client"), "INV-7: {line}");
        assert!(!line.contains("as1-secret"), "INV-7: {line}");
    }
    let issuers: Vec<&str> = world.stored.keys().map(|k| k.issuer.as_str()).collect();
    assert_eq!(world.stored.len(), 2, "{issuers:?}");
    let first = world.stored.values().find(|r| r.key.issuer == AS).unwrap();
    assert_eq!(first.client_id(), Some("as1-client"));
}

/// MCP-14 as the 2026-07-28 revision checks it: `resource` is sent exactly as the protected
/// resource metadata publishes it, here the origin of the MCP server found at the root
/// well-known URL, in the authorization and the token request alike.
#[test]
fn the_resource_is_sent_as_the_metadata_publishes_it_mcp_14() {
    let mut world = World::mcp(None);
    world.answer("GET", PRM_URL, 404, json!({}));
    world.answer(
        "GET",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
        200,
        json!({"resource": "https://mcp.example.com", "authorization_servers": [AS]}),
    );
    assert!(matches!(world.log_in(), Event::TokenReady { .. }));
    let resource = world.authorizations[0]
        .query_pairs()
        .find(|(k, _)| k == "resource")
        .map(|(_, v)| v.into_owned());
    assert_eq!(resource.as_deref(), Some("https://mcp.example.com"));
    let token = world
        .wire
        .iter()
        .find(|line| line.starts_with("POST https://as.example.com/token"))
        .unwrap();
    assert!(
        token.ends_with("&resource=https%3A%2F%2Fmcp.example.com")
            || token.contains("resource=https%3A%2F%2Fmcp.example.com&"),
        "{token}"
    );
}

fn registrations(world: &World) -> usize {
    world
        .sent
        .iter()
        .filter(|s| *s == "POST https://as.example.com/register")
        .count()
}

/// A client registered for this very login that the token endpoint refuses is not
/// registered yet again, and the user is not sent through the browser a second time.
#[test]
fn a_fresh_registration_refused_at_its_first_exchange_is_not_registered_again() {
    let mut world = World::mcp(None);
    world.token_error = Some((401, json!({"error": "invalid_client"})));
    match world.log_in() {
        Event::Failed {
            error: Error::TokenRejected { hint, .. },
            ..
        } => assert!(hint.contains("does not register again before"), "{hint}"),
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert_eq!(registrations(&world), 1);
    assert_eq!(world.authorizations.len(), 1);
    // No dead end: the refused client is gone, and the next call after the backoff
    // registers afresh; inside it, nothing is sent.
    let stored = world.stored.values().next().unwrap();
    assert!(stored.dcr.is_none());
    assert!(stored.registration_backoff.is_some());
    match world.run(Operation::Login) {
        Event::Failed {
            error: Error::RegistrationPaused { .. },
            ..
        } => {}
        other => panic!("expected the pause, got {other:?}"),
    }
    assert_eq!(registrations(&world), 1);
}

/// INV-14: a server that keeps refusing the client at the token endpoint gets one new
/// registration, and then none until the backoff has passed.
#[test]
fn registering_again_after_invalid_client_is_paused_after_once_inv_14() {
    let mut world = World::mcp(None);
    assert!(matches!(world.log_in(), Event::TokenReady { .. }));
    world.token_error = Some((401, json!({"error": "invalid_client"})));
    // The stored client is refused: one new registration, which fares no better.
    assert!(matches!(
        world.run(Operation::Login),
        Event::Failed {
            error: Error::TokenRejected { .. },
            ..
        }
    ));
    assert_eq!(registrations(&world), 2);
    let sent = world.sent.len();
    match world.run(Operation::Login) {
        Event::Failed {
            error: Error::RegistrationPaused { reason, .. },
            ..
        } => assert!(reason.contains("invalid_client"), "{reason}"),
        other => panic!("expected the pause, got {other:?}"),
    }
    assert_eq!(registrations(&world), 2, "no third registration");
    assert!(world.sent.len() > sent, "the login did try its code");
}

/// INV-12: `Debug` of commands, inputs, the configuration and the whole machine shows no
/// secret, whatever it holds.
#[test]
fn debug_output_carries_no_secret_inv_12() {
    let planted = [
        "planted-client-secret",
        "planted-access-token",
        "planted-code",
        "planted-initial-token",
    ];
    let request = http::Request::post("https://as.example.com/token")
        .header("authorization", "Basic cGxhbnRlZC1jbGllbnQtc2VjcmV0")
        .body(b"client_secret=planted-client-secret&code=planted-code".to_vec())
        .unwrap();
    let command = Command::Http {
        id: RequestId(1),
        kind: RequestKind::CodeExchange,
        request,
    };
    let response = http::Response::builder()
        .status(200)
        .body(br#"{"access_token":"planted-access-token"}"#.to_vec())
        .unwrap();
    let inputs = [
        Input::HttpResponse {
            id: RequestId(1),
            response,
        },
        Input::Callback {
            query: "code=planted-code&state=s".into(),
        },
    ];
    let mut config = ClientConfig::for_issuer("x", AS);
    config.client_id = Some("pre".into());
    config.client_secret = Some(Secret::new("planted-client-secret"));
    config.initial_access_token = Some(Secret::new("planted-initial-token"));
    config.seed = [0x42; 32];
    let mut world = World::mcp(None);
    world.answer(
        "POST",
        "https://as.example.com/register",
        201,
        json!({"client_id": "c", "client_secret": "planted-client-secret",
               "client_secret_expires_at": 0, "token_endpoint_auth_method": "client_secret_post",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    assert!(matches!(world.log_in(), Event::TokenReady { .. }));
    let shown = format!(
        "{command:?} {inputs:?} {config:?} {:?} {:?}",
        world.client, world.stored
    );
    for secret in planted {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(!shown.contains("token-1"), "the access token in {shown}");
    assert!(!shown.contains("66, 66, 66"), "the seed in {shown}");
    assert!(!shown.contains("cGxhbnRlZC1jbGllbnQtc2VjcmV0"), "{shown}");
}
