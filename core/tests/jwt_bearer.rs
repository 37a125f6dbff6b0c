//! The jwt-bearer grant family against scripted servers: workload identity (SEP-1933: the
//! platform's JWT is the assertion) and enterprise-managed authorization (SEP-990: the ID
//! token is exchanged at the identity provider for an ID-JAG, RFC 8693, which is the
//! assertion at the authorization server, RFC 7523). What goes on the wire, that nothing is
//! retried after a refusal, and that no planted secret is ever shown (INV-12).

use serde_json::{json, Value};
use tenure_core::jwt_bearer::{ID_JAG_TYPE, ID_TOKEN_TYPE, JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
use tenure_core::{
    AssertionSource, AuthMethod, BearerAssertion, ClientConfig, DpopMode, Duration, Error,
    IdentityProvider, Operation, Outcome, RequestKind, Secret, Timestamp,
};
use tenure_sim::{Reply, Scripted, Server, Simulation, What};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const AS: &str = "https://as.example.com";
const AS_TOKEN: &str = "https://as.example.com/token";
const IDP_TOKEN: &str = "https://idp.example.com/oauth2/token";
const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);

/// Values planted to be found if they leak.
const ID_TOKEN: &str = "planted-id-token-eyJ0";
const ID_JAG: &str = "planted-id-jag-eyJ1";
const WORKLOAD_JWT: &str = "planted-workload-jwt-eyJ2";
const AS_SECRET: &str = "planted-as-client-secret";
const IDP_SECRET: &str = "planted-idp-client-secret";
const ACCESS_TOKEN: &str = "planted-access-token";

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    url: String,
    authorization: Option<String>,
    /// The `DPoP` header: a proof (RFC 9449 §4).
    dpop: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request in full, to search for a value that must not be in it.
    fn text(&self) -> String {
        format!("{} {:?} {:?}", self.url, self.authorization, self.form)
    }
}

/// The resource, the authorization server and the identity provider: documents from the
/// script, token endpoints that answer what the test set.
struct Servers {
    script: Scripted,
    /// The requests to either token endpoint, in order.
    seen: Vec<Seen>,
    /// What the identity provider answers to a token exchange.
    exchange_answer: (u16, Value),
    /// What the authorization server's token endpoint answers.
    token_answer: (u16, Value),
}

impl Server for Servers {
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let url = request.uri().to_string();
        if url == AS_TOKEN || url == IDP_TOKEN {
            self.seen.push(Seen {
                url: url.clone(),
                authorization: request
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string()),
                dpop: request
                    .headers()
                    .get("dpop")
                    .map(|v| v.to_str().unwrap().to_string()),
                form: url::form_urlencoded::parse(request.body())
                    .into_owned()
                    .collect(),
            });
            let (status, body) = if url == IDP_TOKEN {
                &self.exchange_answer
            } else {
                &self.token_answer
            };
            return Reply::json(*status, body);
        }
        self.script.handle(now, request)
    }
}

type World = Simulation<Servers>;

/// The authorization server's metadata, with the `extra` members added.
fn as_metadata(extra: Value) -> Value {
    let mut metadata = json!({
        "issuer": AS,
        "token_endpoint": AS_TOKEN,
        "grant_types_supported": [JWT_BEARER_GRANT],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
    });
    if let (Some(metadata), Value::Object(extra)) = (metadata.as_object_mut(), extra) {
        metadata.extend(extra);
    }
    metadata
}

const AS_METADATA: &str = "https://as.example.com/.well-known/oauth-authorization-server";

fn world(config: ClientConfig) -> World {
    let mut script = Scripted::new();
    script.answer(
        "GET",
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        200,
        json!({"resource": RESOURCE, "authorization_servers": [AS]}),
    );
    script.answer("GET", AS_METADATA, 200, as_metadata(json!({})));
    let servers = Servers {
        script,
        seen: Vec::new(),
        exchange_answer: (
            200,
            json!({"access_token": ID_JAG, "issued_token_type": ID_JAG_TYPE, "token_type": "N_A"}),
        ),
        token_answer: (
            200,
            json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 300}),
        ),
    };
    Simulation::new(config, servers, NOW)
}

fn workload_source() -> AssertionSource {
    AssertionSource::File("/var/run/secrets/tokens/mcp".into())
}

fn id_token_source() -> AssertionSource {
    AssertionSource::Env("ENTERPRISE_ID_TOKEN".into())
}

/// A public workload client, as the conformance scenario has it: `client_id` in the body.
fn workload() -> World {
    let mut config = ClientConfig::for_resource("wif", RESOURCE)
        .with_jwt_bearer("wif-client", BearerAssertion::Workload(workload_source()))
        .with_auth_method(AuthMethod::None);
    config.seed = [3; 32];
    let mut world = world(config);
    // The file ends with a newline, as files do.
    world
        .assertions
        .insert(workload_source(), format!("{WORKLOAD_JWT}\n"));
    world
}

/// An enterprise client with a secret at each of the identity provider and the
/// authorization server.
fn enterprise() -> World {
    enterprise_with(IdentityProvider::new(
        IDP_TOKEN,
        "idp-client",
        Some(Secret::new(IDP_SECRET)),
        id_token_source(),
    ))
}

/// An enterprise client of the authorization server, with a secret there, and of `idp`,
/// whose ID token source holds the planted ID token.
fn enterprise_with(idp: IdentityProvider) -> World {
    let mut config = ClientConfig::for_resource("xaa", RESOURCE)
        .with_jwt_bearer("as-client", BearerAssertion::Enterprise(idp));
    config.client_secret = Some(Secret::new(AS_SECRET));
    config.seed = [4; 32];
    let mut world = world(config);
    world
        .assertions
        .insert(id_token_source(), ID_TOKEN.to_string());
    world
}

fn run(world: &mut World, op: Operation) -> Outcome {
    world
        .run(op)
        .unwrap_or_else(|e| panic!("{op:?} did not end: {e}; timeline: {:?}", world.timeline()))
}

fn reads(world: &World) -> usize {
    world
        .timeline()
        .iter()
        .filter(|e| matches!(e.what, What::Assertion(_)))
        .count()
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// Everything a user or a log could see of the world: the timeline, the outcome, the
/// stored record and the machine.
fn shown(world: &World, outcome: &Outcome) -> String {
    let mut text = format!(
        "{:?} {:?} {:?} {:?}",
        world.timeline(),
        outcome,
        world.stored(),
        world.client()
    );
    for entry in world.timeline() {
        text.push_str(&entry.to_string());
    }
    if let Some(error) = outcome.error() {
        text.push_str(&error.to_string());
    }
    text
}

fn assert_nothing_planted_in(text: &str) {
    for planted in [
        ID_TOKEN,
        ID_JAG,
        WORKLOAD_JWT,
        AS_SECRET,
        IDP_SECRET,
        ACCESS_TOKEN,
    ] {
        assert!(!text.contains(planted), "{planted} is shown: {text}");
    }
}

#[test]
fn a_workload_jwt_is_the_assertion_read_afresh_for_every_grant_request() {
    let mut world = workload();
    let outcome = run(&mut world, Operation::Token);
    assert!(outcome.is_token(), "{outcome:?}");
    let [request] = world.provider.seen.as_slice() else {
        panic!("expected one token request: {:?}", world.provider.seen);
    };
    assert_eq!(request.url, AS_TOKEN);
    assert_eq!(request.field("grant_type"), Some(JWT_BEARER_GRANT));
    // Trimmed of the file's newline.
    assert_eq!(request.field("assertion"), Some(WORKLOAD_JWT));
    assert_eq!(request.field("client_id"), Some("wif-client"));
    assert_eq!(request.field("resource"), Some(RESOURCE));
    assert_eq!(request.field("client_secret"), None);
    assert_eq!(request.authorization, None);
    assert_eq!(world.count(RequestKind::JwtBearer), 1);
    assert_eq!(reads(&world), 1);

    // A valid token is handed out without reading the source again.
    assert!(run(&mut world, Operation::Token).is_token());
    assert_eq!(reads(&world), 1);

    // The token expires; the platform has rotated its JWT meanwhile, and the new one is sent.
    world.advance(Duration::from_secs(600));
    world
        .assertions
        .insert(workload_source(), "rotated-workload-jwt".into());
    assert!(run(&mut world, Operation::Token).is_token());
    assert_eq!(reads(&world), 2);
    assert_eq!(
        world.provider.seen.last().unwrap().field("assertion"),
        Some("rotated-workload-jwt")
    );
    // The assertion is never stored.
    let record = serde_json::to_string(world.stored().unwrap()).unwrap();
    assert!(!record.contains("rotated-workload-jwt"));
    assert!(!record.contains(WORKLOAD_JWT));
}

#[test]
fn an_unreadable_assertion_ends_the_operation_before_anything_is_sent() {
    let mut world = workload();
    world.assertions.clear();
    let outcome = run(&mut world, Operation::Token);
    let Some(Error::AssertionUnavailable(reason)) = outcome.error() else {
        panic!("expected an unreadable assertion, got {outcome:?}");
    };
    assert!(reason.contains("/var/run/secrets/tokens/mcp"), "{reason}");
    assert!(world.provider.seen.is_empty());

    world.assertions.insert(workload_source(), "  \n".into());
    let outcome = run(&mut world, Operation::Token);
    assert!(
        matches!(outcome.error(), Some(Error::AssertionUnavailable(_))),
        "{outcome:?}"
    );
    assert!(world.provider.seen.is_empty());
}

#[test]
fn the_enterprise_flow_exchanges_the_id_token_then_presents_the_id_jag() {
    let mut world = enterprise();
    let outcome = run(&mut world, Operation::Token);
    assert!(outcome.is_token(), "{outcome:?}");
    let [exchange, bearer] = world.provider.seen.as_slice() else {
        panic!(
            "expected an exchange and a grant: {:?}",
            world.provider.seen
        );
    };

    // RFC 8693 at the identity provider, for the authorization server and the resource.
    assert_eq!(exchange.url, IDP_TOKEN);
    assert_eq!(exchange.field("grant_type"), Some(TOKEN_EXCHANGE_GRANT));
    assert_eq!(exchange.field("subject_token"), Some(ID_TOKEN));
    assert_eq!(exchange.field("subject_token_type"), Some(ID_TOKEN_TYPE));
    assert_eq!(exchange.field("requested_token_type"), Some(ID_JAG_TYPE));
    assert_eq!(exchange.field("audience"), Some(AS));
    assert_eq!(exchange.field("resource"), Some(RESOURCE));
    assert_eq!(exchange.field("client_id"), Some("idp-client"));
    assert_eq!(
        exchange.authorization.as_deref(),
        Some(basic("idp-client", IDP_SECRET).as_str())
    );
    // INV-7: the authorization server's credentials never go to the identity provider.
    assert!(!exchange.text().contains(AS_SECRET));
    assert!(!exchange.text().contains("as-client"));

    // RFC 7523 at the authorization server, with its own client credentials.
    assert_eq!(bearer.url, AS_TOKEN);
    assert_eq!(bearer.field("grant_type"), Some(JWT_BEARER_GRANT));
    assert_eq!(bearer.field("assertion"), Some(ID_JAG));
    assert_eq!(bearer.field("resource"), Some(RESOURCE));
    assert_eq!(
        bearer.authorization.as_deref(),
        Some(basic("as-client", AS_SECRET).as_str())
    );
    // Nor the identity provider's, or the ID token, to the authorization server.
    assert!(!bearer.text().contains(IDP_SECRET));
    assert!(!bearer.text().contains(ID_TOKEN));
    assert!(!bearer.text().contains("idp-client"));

    assert_eq!(world.count(RequestKind::TokenExchange), 1);
    assert_eq!(world.count(RequestKind::JwtBearer), 1);
    assert_nothing_planted_in(&shown(&world, &outcome));
    let record = serde_json::to_string(world.stored().unwrap()).unwrap();
    assert!(!record.contains(ID_TOKEN) && !record.contains(ID_JAG));
}

#[test]
fn a_token_of_another_type_from_the_identity_provider_is_refused() {
    let mut world = enterprise();
    world.provider.exchange_answer = (
        200,
        json!({
            "access_token": ID_JAG,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
        }),
    );
    let outcome = run(&mut world, Operation::Token);
    let Some(Error::TokenExchangeUnusable { reason, .. }) = outcome.error() else {
        panic!("expected an unusable exchange answer, got {outcome:?}");
    };
    assert!(reason.contains("access_token"), "{reason}");
    // The token is never presented to the authorization server.
    assert_eq!(world.provider.seen.len(), 1);
    assert_eq!(world.count(RequestKind::JwtBearer), 0);
    assert_nothing_planted_in(&shown(&world, &outcome));
}

#[test]
fn a_refused_exchange_is_not_retried() {
    let mut world = enterprise();
    world.provider.exchange_answer = (
        400,
        json!({"error": "invalid_grant", "error_description": "ID token expired"}),
    );
    let outcome = run(&mut world, Operation::Token);
    let Some(Error::TokenExchangeRejected { cause, hint, .. }) = outcome.error() else {
        panic!("expected a refused exchange, got {outcome:?}");
    };
    assert!(cause.is("invalid_grant"));
    assert!(hint.contains("ID token"), "{hint}");
    assert_eq!(world.provider.seen.len(), 1);
    assert_nothing_planted_in(&shown(&world, &outcome));
}

#[test]
fn no_retry_and_no_other_grant_after_a_refusal_sep_1933() {
    for (code, what_to_check) in [
        ("invalid_grant", "audience"),
        ("invalid_scope", "scope"),
        ("unauthorized_client", "grant permission"),
    ] {
        for mut world in [workload(), enterprise()] {
            // Server text goes through the sanitizer: a control character becomes a space.
            world.provider.token_answer = (
                400,
                json!({"error": code, "error_description": "refused\u{1b}[31m here"}),
            );
            let outcome = run(&mut world, Operation::Token);
            let Some(Error::TokenRejected { grant, cause, .. }) = outcome.error() else {
                panic!("{code}: expected a refusal, got {outcome:?}");
            };
            assert_eq!(grant, JWT_BEARER_GRANT);
            assert!(cause.is(code));
            let text = outcome.error().unwrap().to_string();
            assert!(text.contains(what_to_check), "{code}: {text}");
            assert!(!text.contains('\u{1b}'), "{text}");
            // One grant request, nothing after it.
            let at_the_server: Vec<_> = world
                .provider
                .seen
                .iter()
                .filter(|s| s.url == AS_TOKEN)
                .collect();
            assert_eq!(at_the_server.len(), 1, "{code}: {at_the_server:?}");
            assert_eq!(at_the_server[0].field("grant_type"), Some(JWT_BEARER_GRANT));
            assert_nothing_planted_in(&shown(&world, &outcome));
        }
    }
}

/// An enterprise client whose identity provider is known by its issuer only.
fn enterprise_by_issuer(metadata: Value) -> World {
    let mut world = enterprise_with(IdentityProvider::discovered(
        "https://idp.example.com",
        "idp-client",
        None,
        id_token_source(),
    ));
    // RFC 8414's location answers 404; OpenID discovery's has the document.
    world.provider.script.answer(
        "GET",
        "https://idp.example.com/.well-known/openid-configuration",
        200,
        metadata,
    );
    world
}

#[test]
fn an_identity_provider_known_by_its_issuer_is_discovered_once() {
    let mut world = enterprise_by_issuer(json!({
        "issuer": "https://idp.example.com",
        "token_endpoint": IDP_TOKEN,
    }));
    assert!(run(&mut world, Operation::Token).is_token());
    let [exchange, bearer] = world.provider.seen.as_slice() else {
        panic!(
            "expected an exchange and a grant: {:?}",
            world.provider.seen
        );
    };
    assert_eq!(exchange.url, IDP_TOKEN);
    assert_eq!(exchange.field("subject_token"), Some(ID_TOKEN));
    assert_eq!(exchange.authorization, None);
    assert_eq!(bearer.field("assertion"), Some(ID_JAG));
    assert_eq!(idp_metadata_reads(&world), 2);
    // The next grant request in this process uses the endpoint it found.
    assert!(run(&mut world, Operation::Login).is_token());
    assert_eq!(world.count(RequestKind::TokenExchange), 2);
    assert_eq!(idp_metadata_reads(&world), 2);
}

/// How many requests went to the identity provider's metadata locations.
fn idp_metadata_reads(world: &World) -> usize {
    world
        .requests()
        .iter()
        .filter(|r| r.url.starts_with("https://idp.example.com/.well-known/"))
        .count()
}

#[test]
fn identity_provider_metadata_for_another_issuer_is_not_used() {
    let mut world = enterprise_by_issuer(json!({
        "issuer": "https://evil.example.com",
        "token_endpoint": "https://evil.example.com/token",
    }));
    let outcome = run(&mut world, Operation::Token);
    let Some(Error::Discovery(reason)) = outcome.error() else {
        panic!("expected a discovery failure, got {outcome:?}");
    };
    assert!(reason.contains("identity provider"), "{reason}");
    // Nothing was sent anywhere: no exchange, no grant, and the ID token was not even read.
    assert!(world.provider.seen.is_empty());
    assert_eq!(reads(&world), 0);
}

#[test]
fn the_grant_needs_its_settings() {
    let config =
        ClientConfig::for_resource("x", RESOURCE).with_grant(tenure_core::Grant::JwtBearer);
    assert!(config.validate().is_err());
    let mut config = ClientConfig::for_resource("x", RESOURCE)
        .with_jwt_bearer("c", BearerAssertion::Workload(workload_source()));
    assert!(config.validate().is_ok());
    config.client_id = None;
    assert!(config.validate().is_err());
    let mut unused = ClientConfig::for_resource("x", RESOURCE);
    unused.bearer_assertion = Some(BearerAssertion::Workload(workload_source()));
    assert!(unused.validate().is_err());
    let insecure = ClientConfig::for_resource("x", RESOURCE).with_jwt_bearer(
        "c",
        BearerAssertion::Enterprise(IdentityProvider::new(
            "http://idp.example.com/token",
            "idp",
            None,
            id_token_source(),
        )),
    );
    let error = insecure.validate().unwrap_err().to_string();
    assert!(error.contains("identity provider"), "{error}");
}

/// RFC 9449 with a jwt-bearer grant: a workload client that uses DPoP where the server offers
/// it stores its key before the first grant request, which carries a proof for `POST` to the
/// token endpoint; the DPoP-bound answer is taken.
#[test]
fn a_workload_client_with_dpop_proves_its_key_at_the_grant_request() {
    let mut world = workload();
    let mut config = world.config().clone();
    config.dpop = DpopMode::IfOffered;
    world.restart_with(config);
    world.provider.script.answer(
        "GET",
        AS_METADATA,
        200,
        as_metadata(json!({"dpop_signing_alg_values_supported": ["ES256"]})),
    );
    world.provider.token_answer = (
        200,
        json!({"access_token": ACCESS_TOKEN, "token_type": "DPoP", "expires_in": 300}),
    );
    let outcome = run(&mut world, Operation::Token);
    assert!(outcome.is_token(), "{outcome:?}");
    let [request] = world.provider.seen.as_slice() else {
        panic!("one grant request: {:?}", world.provider.seen);
    };
    assert_eq!(request.field("grant_type"), Some(JWT_BEARER_GRANT));
    let proof = request.dpop.as_deref().expect("a DPoP proof");
    let decode = |part: &str| -> Value {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let mut parts = proof.split('.');
    let (header, claims) = (decode(parts.next().unwrap()), decode(parts.next().unwrap()));
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(
        (claims["htm"].as_str(), claims["htu"].as_str()),
        (Some("POST"), Some(AS_TOKEN))
    );
    let stored = world.stored().expect("a record");
    let key = stored.dpop_key.as_ref().expect("the key is stored");
    let jwk = &header["jwk"];
    assert!(jwk.get("d").is_none());
    assert_eq!(
        jwk,
        &key.public_jwk().unwrap(),
        "the proof's key is the stored one"
    );
    assert_eq!(
        stored.tokens.as_ref().map(|t| t.token_type.as_str()),
        Some("DPoP")
    );
    assert_nothing_planted_in(&shown(&world, &outcome));
}
