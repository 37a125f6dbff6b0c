//! The machine against a scripted resource and authorization server: scope selection,
//! step-up, refused tokens and the 2025-03-26 fallback, end to end through inputs and
//! commands.

use serde_json::{json, Value};
use tenure_core::{
    ClientConfig, Command, Error, Input, Operation, Outcome, RequestId, RequestKind, Secret,
    Timestamp, MAX_STEP_UPS,
};
use tenure_sim::{Reply, Scripted, Server, Simulation};
use url::Url;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const AS: &str = "https://as.example.com";
const PRM_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);

/// The resource and authorization servers: documents and registrations from the script, an
/// authorization endpoint that sends the browser back at once with a code, and a token
/// endpoint that grants what the last authorization asked for.
#[derive(Default)]
struct Servers {
    script: Scripted,
    /// Every request in full: method, URL without the query, headers and body.
    wire: Vec<String>,
    /// The authorization requests, in order.
    authorizations: Vec<Url>,
    /// The `scope` the token endpoint grants; `None` grants what was asked for, silently.
    granted: Option<String>,
    /// When set, the token endpoint answers this instead of a token.
    token_error: Option<(u16, Value)>,
}

impl Server for Servers {
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let url = request.uri().to_string();
        let bare = url.split('?').next().unwrap_or_default();
        self.wire.push(format!(
            "{} {bare} {:?} {}",
            request.method(),
            request.headers(),
            String::from_utf8_lossy(request.body())
        ));
        if bare.ends_with("/authorize") {
            self.authorizations.push(Url::parse(&url).unwrap());
            return Reply::approve(&url, "the-code");
        }
        if bare.ends_with("/token") {
            let (status, body) = self
                .token_error
                .clone()
                .unwrap_or_else(|| self.token_answer());
            return Reply::json(status, &body);
        }
        self.script.handle(now, request)
    }
}

impl Servers {
    /// Grants the scope of the last authorization (or `granted`) with a fresh token.
    fn token_answer(&self) -> (u16, Value) {
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

    /// The `scope` parameter of authorization request `n` (0-based), if it had one.
    fn scope_of(&self, n: usize) -> Option<String> {
        self.authorizations[n]
            .query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
    }
}

type World = Simulation<Servers>;

fn world(config: ClientConfig) -> World {
    Simulation::new(config, Servers::default(), NOW)
}

/// A resource whose metadata lists `scopes_supported` (when given) and an AS that
/// registers dynamically.
fn mcp(scopes_supported: Option<&[&str]>) -> World {
    let mut config = ClientConfig::for_resource("mcp", RESOURCE);
    config.seed = [7; 32];
    let mut world = world(config);
    let mut prm = json!({"resource": RESOURCE, "authorization_servers": [AS]});
    if let Some(scopes) = scopes_supported {
        prm["scopes_supported"] = json!(scopes);
    }
    let script = &mut world.provider.script;
    script.answer("GET", PRM_URL, 200, prm);
    script.answer(
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
    script.answer(
        "POST",
        "https://as.example.com/register",
        201,
        json!({"client_id": "dcr-client", "token_endpoint_auth_method": "none",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    world
}

/// The resource refused a request with this `WWW-Authenticate` header.
fn challenge(world: &mut World, header: &str) {
    world.handle(Input::ResourceChallenge {
        headers: vec![header.to_string()],
        token: None,
    });
}

/// Runs `op` to its end.
fn run(world: &mut World, op: Operation) -> Outcome {
    world
        .run(op)
        .unwrap_or_else(|e| panic!("{op:?} did not end: {e}; timeline: {:?}", world.timeline()))
}

/// Logs in the way an MCP client does after a 401: token, then login when needed.
fn log_in(world: &mut World) -> Outcome {
    match run(world, Operation::Token) {
        Outcome::LoginRequired(_) => run(world, Operation::Login),
        other => other,
    }
}

/// How many requests the client sent to `method url` (without the query).
fn sent(world: &World, method: &str, url: &str) -> usize {
    world
        .requests()
        .iter()
        .filter(|r| r.method == method && r.url.split('?').next() == Some(url))
        .count()
}

fn token_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Token { access_token, .. } => access_token.expose().to_string(),
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn the_challenge_scope_is_asked_for_first_mcp_10_mcp_11() {
    let mut world = mcp(Some(&["mcp:basic", "mcp:read"]));
    challenge(
        &mut world,
        &format!(
            r#"Bearer error="invalid_token", scope="mcp:read", resource_metadata="{PRM_URL}""#
        ),
    );
    token_of(&log_in(&mut world));
    // MCP26-7: offline_access is added because the AS lists it.
    assert_eq!(
        world.provider.scope_of(0).as_deref(),
        Some("mcp:read offline_access")
    );
}

#[test]
fn scopes_supported_is_asked_for_without_a_challenge_scope_mcp_10() {
    let mut world = mcp(Some(&["mcp:basic", "mcp:read"]));
    challenge(
        &mut world,
        &format!(r#"Bearer resource_metadata="{PRM_URL}""#),
    );
    token_of(&log_in(&mut world));
    assert_eq!(
        world.provider.scope_of(0).as_deref(),
        Some("mcp:basic mcp:read offline_access")
    );
}

#[test]
fn no_scope_is_sent_when_nothing_names_one_mcp_10() {
    let mut world = mcp(None);
    challenge(
        &mut world,
        &format!(r#"Bearer resource_metadata="{PRM_URL}""#),
    );
    token_of(&log_in(&mut world));
    assert_eq!(world.provider.scope_of(0), None);
}

#[test]
fn step_up_asks_for_the_union_then_gives_up_mcp_18_mcp26_8() {
    let mut world = mcp(None);
    challenge(
        &mut world,
        &format!(r#"Bearer scope="mcp:basic", resource_metadata="{PRM_URL}""#),
    );
    let first = token_of(&log_in(&mut world));
    challenge(
        &mut world,
        &format!(
            r#"Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="{PRM_URL}""#
        ),
    );
    // The held token still serves requests it suffices for.
    assert_eq!(token_of(&run(&mut world, Operation::Token)), first);
    let second = token_of(&run(&mut world, Operation::Login));
    assert_ne!(first, second);
    // MCP26-8: everything asked for before (offline_access included, MCP26-7) and more.
    assert_eq!(
        world.provider.scope_of(1).as_deref(),
        Some("mcp:basic offline_access mcp:write")
    );
    // The resource refuses again for scopes the new token holds: no third authorization.
    challenge(
        &mut world,
        r#"Bearer error="insufficient_scope", scope="mcp:write""#,
    );
    match run(&mut world, Operation::Login) {
        Outcome::Failed(Error::StepUpRefused(reason)) => {
            assert!(reason.contains("Tenure stops here"), "{reason}")
        }
        other => panic!("expected a refused step-up, got {other:?}"),
    }
    assert_eq!(world.provider.authorizations.len(), 2);
}

#[test]
fn a_downscoping_server_gets_a_limited_number_of_step_ups_mcp_18() {
    let mut world = mcp(None);
    world.provider.granted = Some("mcp:basic".into());
    challenge(
        &mut world,
        &format!(r#"Bearer scope="mcp:basic", resource_metadata="{PRM_URL}""#),
    );
    token_of(&log_in(&mut world));
    let mut refused = false;
    for _ in 0..5 {
        challenge(
            &mut world,
            r#"Bearer error="insufficient_scope", scope="mcp:admin""#,
        );
        if let Outcome::Failed(error) = run(&mut world, Operation::Login) {
            assert!(matches!(error, Error::StepUpRefused(_)), "{error}");
            refused = true;
            break;
        }
    }
    assert!(refused);
    assert_eq!(
        world.provider.authorizations.len(),
        1 + MAX_STEP_UPS as usize
    );
}

#[test]
fn a_refused_token_is_not_handed_out_again_rfc_6750() {
    let mut world = mcp(None);
    challenge(
        &mut world,
        &format!(r#"Bearer resource_metadata="{PRM_URL}""#),
    );
    let first = token_of(&log_in(&mut world));
    assert_eq!(token_of(&run(&mut world, Operation::Token)), first);
    challenge(&mut world, r#"Bearer error="invalid_token""#);
    assert!(matches!(
        run(&mut world, Operation::Token),
        Outcome::LoginRequired(_)
    ));
    // The refusal is stored: the next process does not hand the token out either.
    let record = world.stored().unwrap();
    assert_eq!(
        record.tokens.as_ref().unwrap().expires_at,
        Some(Timestamp::EPOCH)
    );
    let mut config = ClientConfig::for_resource("mcp", RESOURCE);
    config.seed = [8; 32];
    world.restart_with(config);
    assert!(matches!(
        run(&mut world, Operation::Token),
        Outcome::LoginRequired(_)
    ));
}

fn legacy_world() -> World {
    let mut config = ClientConfig::for_resource("mcp", RESOURCE);
    config.legacy_discovery = true;
    config.seed = [3; 32];
    let mut world = world(config);
    world.provider.script.answer(
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
    challenge(&mut world, r#"Bearer error="invalid_token""#);
    token_of(&log_in(&mut world));
    assert_eq!(
        world.provider.authorizations[0].as_str().split('?').next(),
        Some("https://mcp.example.com/authorize")
    );
    assert!(
        sent(
            &world,
            "GET",
            "https://mcp.example.com/.well-known/oauth-authorization-server"
        ) > 0
    );
    assert!(sent(&world, "POST", "https://mcp.example.com/token") > 0);
}

#[test]
fn root_metadata_on_the_same_origin_is_used_the_2025_03_26_way_edge_27() {
    let mut world = legacy_world();
    world.provider.script.answer(
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
    token_of(&log_in(&mut world));
    assert_eq!(
        world.provider.authorizations[0].as_str().split('?').next(),
        Some("https://mcp.example.com/oauth/authorize")
    );
    assert_eq!(
        world.client().record().unwrap().key.issuer,
        "https://mcp.example.com/oauth"
    );
}

#[test]
fn a_mismatched_resource_document_is_never_bypassed_edge_23_edge_27() {
    let mut world = legacy_world();
    world.provider.script.answer(
        "GET",
        PRM_URL,
        200,
        json!({"resource": "https://evil.example.com/mcp", "authorization_servers": [AS]}),
    );
    challenge(
        &mut world,
        &format!(r#"Bearer resource_metadata="{PRM_URL}""#),
    );
    match run(&mut world, Operation::Token) {
        Outcome::Failed(Error::Discovery(reason)) => assert!(
            reason.contains("names resource `https://evil.example.com/mcp`"),
            "{reason}"
        ),
        other => panic!("expected a discovery failure, got {other:?}"),
    }
    assert!(world.provider.authorizations.is_empty());
    assert!(!world
        .requests()
        .iter()
        .any(|r| r.url.contains("oauth-authorization-server")));
}

#[test]
fn without_the_option_a_missing_document_is_an_error() {
    let mut config = ClientConfig::for_resource("mcp", RESOURCE);
    config.seed = [3; 32];
    let mut world = world(config);
    assert!(matches!(
        run(&mut world, Operation::Token),
        Outcome::Failed(Error::Discovery(_))
    ));
}

const AS2: &str = "https://as2.example.com";

/// MCP26-3, MCP26-4, INV-7 (SEP-2352): when the resource's metadata names another
/// authorization server, the client registers there and never presents the first server's
/// credentials to it; the first server's record is kept apart, under its own key.
#[test]
fn a_new_authorization_server_gets_its_own_registration_mcp26_3_inv_7() {
    let mut world = mcp(None);
    world.provider.script.answer(
        "POST",
        "https://as.example.com/register",
        201,
        json!({"client_id": "as1-client", "client_secret": "as1-secret",
               "client_secret_expires_at": 0, "token_endpoint_auth_method": "client_secret_post",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    assert!(matches!(log_in(&mut world), Outcome::Token { .. }));

    let script = &mut world.provider.script;
    script.answer(
        "GET",
        PRM_URL,
        200,
        json!({"resource": RESOURCE, "authorization_servers": [AS2]}),
    );
    script.answer(
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
    script.answer(
        "POST",
        "https://as2.example.com/register",
        201,
        json!({"client_id": "as2-client", "token_endpoint_auth_method": "none",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    challenge(
        &mut world,
        &format!(r#"Bearer resource_metadata="{PRM_URL}""#),
    );
    let before = world.provider.wire.len();
    assert!(matches!(log_in(&mut world), Outcome::Token { .. }));
    assert!(sent(&world, "POST", "https://as2.example.com/register") > 0);
    let to_as2: Vec<&String> = world.provider.wire[before..]
        .iter()
        .filter(|line| line.contains("as2.example.com"))
        .collect();
    assert!(to_as2.iter().any(|line| line.contains("/token")));
    for line in &to_as2 {
        assert!(!line.contains("as1-client"), "INV-7: {line}");
        assert!(!line.contains("as1-secret"), "INV-7: {line}");
    }
    let issuers: Vec<&str> = world
        .store
        .records()
        .map(|r| r.key.issuer.as_str())
        .collect();
    assert_eq!(issuers.len(), 2, "{issuers:?}");
    let first = world.store.records().find(|r| r.key.issuer == AS).unwrap();
    assert_eq!(first.client_id(), Some("as1-client"));
}

/// MCP-14 as the 2026-07-28 revision checks it: `resource` is sent exactly as the protected
/// resource metadata publishes it, here the origin of the MCP server found at the root
/// well-known URL, in the authorization and the token request alike.
#[test]
fn the_resource_is_sent_as_the_metadata_publishes_it_mcp_14() {
    let mut world = mcp(None);
    let script = &mut world.provider.script;
    script.answer("GET", PRM_URL, 404, json!({}));
    script.answer(
        "GET",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
        200,
        json!({"resource": "https://mcp.example.com", "authorization_servers": [AS]}),
    );
    assert!(matches!(log_in(&mut world), Outcome::Token { .. }));
    let resource = world.provider.authorizations[0]
        .query_pairs()
        .find(|(k, _)| k == "resource")
        .map(|(_, v)| v.into_owned());
    assert_eq!(resource.as_deref(), Some("https://mcp.example.com"));
    let token = world
        .provider
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
    sent(world, "POST", "https://as.example.com/register")
}

/// A client registered for this very login that the token endpoint refuses is not
/// registered yet again, and the user is not sent through the browser a second time.
#[test]
fn a_fresh_registration_refused_at_its_first_exchange_is_not_registered_again() {
    let mut world = mcp(None);
    world.provider.token_error = Some((401, json!({"error": "invalid_client"})));
    match log_in(&mut world) {
        Outcome::Failed(Error::TokenRejected { hint, .. }) => {
            assert!(hint.contains("does not register again before"), "{hint}")
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert_eq!(registrations(&world), 1);
    assert_eq!(world.provider.authorizations.len(), 1);
    // No dead end: the refused client is gone, and the next call after the backoff
    // registers afresh; inside it, nothing is sent.
    let stored = world.stored().unwrap();
    assert!(stored.dcr.is_none());
    assert!(stored.registration_backoff.is_some());
    match run(&mut world, Operation::Login) {
        Outcome::Failed(Error::RegistrationPaused { .. }) => {}
        other => panic!("expected the pause, got {other:?}"),
    }
    assert_eq!(registrations(&world), 1);
}

/// INV-14: a server that keeps refusing the client at the token endpoint gets one new
/// registration, and then none until the backoff has passed.
#[test]
fn registering_again_after_invalid_client_is_paused_after_once_inv_14() {
    let mut world = mcp(None);
    assert!(matches!(log_in(&mut world), Outcome::Token { .. }));
    world.provider.token_error = Some((401, json!({"error": "invalid_client"})));
    // The stored client is refused: one new registration, which fares no better.
    assert!(matches!(
        run(&mut world, Operation::Login),
        Outcome::Failed(Error::TokenRejected { .. })
    ));
    assert_eq!(registrations(&world), 2);
    let sent = world.requests().len();
    match run(&mut world, Operation::Login) {
        Outcome::Failed(Error::RegistrationPaused { reason, .. }) => {
            assert!(reason.contains("invalid_client"), "{reason}")
        }
        other => panic!("expected the pause, got {other:?}"),
    }
    assert_eq!(registrations(&world), 2, "no third registration");
    assert!(world.requests().len() > sent, "the login did try its code");
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
    let mut world = mcp(None);
    world.provider.script.answer(
        "POST",
        "https://as.example.com/register",
        201,
        json!({"client_id": "c", "client_secret": "planted-client-secret",
               "client_secret_expires_at": 0, "token_endpoint_auth_method": "client_secret_post",
               "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
    );
    assert!(matches!(log_in(&mut world), Outcome::Token { .. }));
    let shown = format!(
        "{command:?} {inputs:?} {config:?} {:?} {:?}",
        world.client(),
        world.store
    );
    for secret in planted {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(!shown.contains("token-1"), "the access token in {shown}");
    assert!(!shown.contains("66, 66, 66"), "the seed in {shown}");
    assert!(!shown.contains("cGxhbnRlZC1jbGllbnQtc2VjcmV0"), "{shown}");
}
