//! A machine client that authenticates with `private_key_jwt` (RFC 7523 §2.2, SEP-1046)
//! against scripted authorization servers whose token endpoint checks the assertion with
//! the client's public key, end to end through inputs and commands: pre-registered, and
//! registered dynamically with its public key (RFC 7591 §2 `jwks`), where a key the operator
//! replaces is registered again through RFC 7592, or with a new client where the server
//! offers no registration management.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};
use tenure_core::{
    AssertionAudience, AuthMethod, ClientConfig, ConfigError, Duration, Grant, Operation, Outcome,
    RequestKind, Secret, Timestamp,
};
use tenure_sim::{Reply, Scripted, Server, Simulation};

const AS: &str = "https://as.example.com";
const TOKEN_ENDPOINT: &str = "https://as.example.com/token";
const REGISTRATION_ENDPOINT: &str = "https://as.example.com/register";
const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);

/// The authorization server: metadata from the script, and a token endpoint that grants a
/// token only for an assertion signed by `public`.
struct KeyCheckingServer {
    script: Scripted,
    public: VerifyingKey,
    /// The form fields of every token request.
    token_requests: Vec<Vec<(String, String)>>,
    /// Whether a token request carried an `Authorization` header.
    saw_authorization_header: bool,
}

impl Server for KeyCheckingServer {
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        if *request.uri() != TOKEN_ENDPOINT {
            return self.script.handle(now, request);
        }
        self.saw_authorization_header |= request.headers().contains_key("authorization");
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        self.token_requests.push(fields.clone());
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let verified = field("client_assertion_type").as_deref()
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && field("client_assertion").is_some_and(|jwt| verify(&self.public, &jwt).is_some());
        if !verified {
            return Reply::json(401, &json!({"error": "invalid_client"}));
        }
        Reply::json(
            200,
            &json!({"access_token": format!("token-{}", self.token_requests.len()),
                    "token_type": "Bearer", "expires_in": 3600}),
        )
    }
}

/// The claims of `jwt` when its ES256 signature verifies with `public`.
fn verify(public: &VerifyingKey, jwt: &str) -> Option<Value> {
    let mut parts = jwt.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header["alg"] != "ES256" {
        return None;
    }
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
    public
        .verify(
            format!("{}.{payload}", jwt.rsplitn(3, '.').nth(2)?).as_bytes(),
            &signature,
        )
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn key() -> (Secret, VerifyingKey) {
    let key = SigningKey::from_slice(&[42u8; 32]).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    (Secret::new(pem.as_str()), *key.verifying_key())
}

fn config(pem: Secret) -> ClientConfig {
    let mut config = ClientConfig::for_issuer("machine", AS)
        .with_grant(Grant::ClientCredentials)
        .with_private_key_jwt("client-1", pem, Some("key-1".into()));
    config.seed = [3; 32];
    config
}

/// The server's metadata: a token endpoint that takes `private_key_jwt`, and a registration
/// endpoint when one is given.
fn metadata(registration_endpoint: Option<&str>) -> Scripted {
    let mut metadata = json!({
        "issuer": AS,
        "token_endpoint": TOKEN_ENDPOINT,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
    });
    if let Some(endpoint) = registration_endpoint {
        metadata["registration_endpoint"] = json!(endpoint);
    }
    let mut script = Scripted::new();
    script.answer(
        "GET",
        "https://as.example.com/.well-known/oauth-authorization-server",
        200,
        metadata,
    );
    script
}

fn world(config: ClientConfig, public: VerifyingKey) -> Simulation<KeyCheckingServer> {
    let server = KeyCheckingServer {
        script: metadata(None),
        public,
        token_requests: Vec::new(),
        saw_authorization_header: false,
    };
    Simulation::new(config, server, NOW)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn token_of(outcome: Outcome) -> String {
    match outcome {
        Outcome::Token { access_token, .. } => access_token.expose().to_string(),
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn a_client_credentials_token_is_granted_for_a_signed_assertion() {
    let (pem, public) = key();
    let mut world = world(config(pem), public);
    let token = token_of(world.run(Operation::Token).unwrap());
    assert_eq!(token, "token-1");

    let server = &world.provider;
    assert_eq!(server.token_requests.len(), 1);
    let fields = &server.token_requests[0];
    assert_eq!(field(fields, "grant_type"), Some("client_credentials"));
    assert_eq!(field(fields, "client_secret"), None);
    assert!(!server.saw_authorization_header);
    let jwt = field(fields, "client_assertion").unwrap();
    let claims = verify(&public, jwt).unwrap();
    assert_eq!(claims["iss"], "client-1");
    assert_eq!(claims["sub"], "client-1");
    assert_eq!(
        claims["aud"], AS,
        "the issuer, the sole audience (rfc7523bis)"
    );
    assert_eq!(claims["iat"], NOW.unix_seconds());
    assert_eq!(claims["exp"], NOW.unix_seconds() + 60);
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "key-1");
    assert_eq!(header["typ"], "client-authentication+jwt");

    // INV-12: the assertion is a credential; nothing the embedder sees carries it.
    assert!(!format!("{:?}", world.timeline()).contains(jwt));
    assert!(!format!("{:?}", world.stored()).contains(jwt));
    assert!(!format!("{:?}", world.config()).contains("PRIVATE KEY"));
}

#[test]
fn every_request_gets_a_fresh_assertion_rfc_7523_3_7() {
    let (pem, public) = key();
    let mut world = world(config(pem), public);
    token_of(world.run(Operation::Token).unwrap());
    world.advance(Duration::from_secs(7200));
    assert_eq!(token_of(world.run(Operation::Token).unwrap()), "token-2");
    let claims: Vec<Value> = world
        .provider
        .token_requests
        .iter()
        .map(|fields| verify(&public, field(fields, "client_assertion").unwrap()).unwrap())
        .collect();
    assert_ne!(claims[0]["jti"], claims[1]["jti"], "a jti is never reused");
    assert_eq!(claims[1]["iat"], NOW.unix_seconds() + 7200);
}

#[test]
fn the_audience_can_be_the_token_endpoint_for_an_older_server() {
    let (pem, public) = key();
    let config = config(pem).with_assertion_audience(AssertionAudience::TokenEndpoint);
    let mut world = world(config, public);
    token_of(world.run(Operation::Token).unwrap());
    let jwt = field(&world.provider.token_requests[0], "client_assertion")
        .unwrap()
        .to_string();
    assert_eq!(verify(&public, &jwt).unwrap()["aud"], TOKEN_ENDPOINT);
}

#[test]
fn an_assertion_from_another_key_is_refused() {
    let (pem, _) = key();
    let other = *SigningKey::from_slice(&[9u8; 32]).unwrap().verifying_key();
    let mut world = world(config(pem), other);
    let outcome = world.run(Operation::Token).unwrap();
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
}

#[test]
fn the_configuration_needs_a_usable_key() {
    let (pem, _) = key();
    assert!(config(pem.clone()).validate().is_ok());

    let mut no_key = config(pem.clone());
    no_key.private_key = None;
    assert_eq!(no_key.validate(), Err(ConfigError::PrivateKeyMissing));

    // Without a client id, the key is registered dynamically (core/tests/registered_key.rs).
    let mut no_id = config(pem.clone());
    no_id.client_id = None;
    assert!(no_id.validate().is_ok());

    let mut unused = config(pem);
    unused.auth_method = Some(tenure_core::AuthMethod::ClientSecretPost);
    assert_eq!(unused.validate(), Err(ConfigError::PrivateKeyUnused));

    let bad = config(Secret::new(
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
    ));
    let error = bad.validate().unwrap_err().to_string();
    assert!(error.contains("PKCS#8"), "{error}");
    assert!(!error.contains("c2VjcmV0"), "the key never shows: {error}");
}

/// An authorization server that keeps each client's registered JWK Set and grants a token
/// only for an assertion signed by one of its keys.
struct KeyRegistry {
    script: Scripted,
    /// Whether it offers RFC 7592 management.
    manageable: bool,
    /// The registered clients: id and key set, in registration order.
    clients: Vec<(String, Value)>,
    /// The bodies of the registration and update requests.
    registrations: Vec<Value>,
    updates: Vec<Value>,
    tokens_issued: usize,
}

impl KeyRegistry {
    fn answer(&self, status: u16, client_id: &str, jwks: &Value) -> Reply {
        let mut body = json!({
            "client_id": client_id,
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["client_credentials"],
            "jwks": jwks,
        });
        if self.manageable {
            body["registration_client_uri"] = json!(format!("{REGISTRATION_ENDPOINT}/{client_id}"));
            body["registration_access_token"] = json!(format!(
                "rat-{}",
                self.registrations.len() + self.updates.len()
            ));
        }
        Reply::json(status, &body)
    }
}

impl Server for KeyRegistry {
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let uri = request.uri().to_string();
        if request.method() == "POST" && uri == REGISTRATION_ENDPOINT {
            let body: Value = serde_json::from_slice(request.body()).unwrap();
            self.registrations.push(body.clone());
            let client_id = format!("client-{}", self.clients.len() + 1);
            self.clients.push((client_id.clone(), body["jwks"].clone()));
            return self.answer(201, &client_id, &body["jwks"]);
        }
        if request.method() == "PUT" {
            let body: Value = serde_json::from_slice(request.body()).unwrap();
            self.updates.push(body.clone());
            let client_id = body["client_id"].as_str().unwrap().to_string();
            let entry = self.clients.iter_mut().find(|(id, _)| *id == client_id);
            entry.unwrap().1 = body["jwks"].clone();
            return self.answer(200, &client_id, &body["jwks"]);
        }
        if uri != TOKEN_ENDPOINT {
            return self.script.handle(now, request);
        }
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let client_id = field("client_id").cloned().unwrap_or_default();
        let Some((_, jwks)) = self.clients.iter().find(|(id, _)| *id == client_id) else {
            return Reply::json(401, &json!({"error": "invalid_client"}));
        };
        let verified = field("client_assertion").is_some_and(|jwt| {
            jwks["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|jwk| verifies(jwk, jwt))
        });
        if !verified {
            return Reply::json(401, &json!({"error": "invalid_client"}));
        }
        self.tokens_issued += 1;
        Reply::json(
            200,
            &json!({"access_token": format!("token-{}", self.tokens_issued),
                    "token_type": "Bearer", "expires_in": 60}),
        )
    }
}

/// Whether `jwt`'s ES256 signature verifies with the P-256 public key `jwk`.
fn verifies(jwk: &Value, jwt: &str) -> bool {
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    let mut point = vec![4u8];
    point.extend(coordinate("x"));
    point.extend(coordinate("y"));
    let Ok(public) = VerifyingKey::from_sec1_bytes(&point) else {
        return false;
    };
    let Some((input, signature)) = jwt.rsplit_once('.') else {
        return false;
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
    Signature::from_slice(&signature).is_ok_and(|s| public.verify(input.as_bytes(), &s).is_ok())
}

fn pem(seed: u8) -> Secret {
    let key = SigningKey::from_slice(&[seed; 32]).unwrap();
    Secret::new(key.to_pkcs8_pem(LineEnding::LF).unwrap().as_str())
}

fn dynamic_config(key: Secret) -> ClientConfig {
    let mut config = ClientConfig::for_issuer("machine", AS)
        .with_grant(Grant::ClientCredentials)
        .with_auth_method(AuthMethod::PrivateKeyJwt);
    config.private_key = Some(key);
    config.seed = [5; 32];
    config
}

fn registry(config: ClientConfig, manageable: bool) -> Simulation<KeyRegistry> {
    let server = KeyRegistry {
        script: metadata(Some(REGISTRATION_ENDPOINT)),
        manageable,
        clients: Vec::new(),
        registrations: Vec::new(),
        updates: Vec::new(),
        tokens_issued: 0,
    };
    Simulation::new(config, server, NOW)
}

/// The private scalar of a P-256 key as the JWK member `d` would carry it.
fn private_member(seed: u8) -> String {
    URL_SAFE_NO_PAD.encode([seed; 32])
}

#[test]
fn the_registration_carries_the_public_key_and_the_assertion_verifies_with_it() {
    let mut world = registry(dynamic_config(pem(42)), true);
    assert_eq!(token_of(world.run(Operation::Token).unwrap()), "token-1");

    let server = &world.provider;
    assert_eq!(server.registrations.len(), 1);
    let body = &server.registrations[0];
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(body["token_endpoint_auth_signing_alg"], "ES256");
    let keys = body["jwks"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    let public = SigningKey::from_slice(&[42u8; 32]).unwrap();
    let point = public.verifying_key().to_encoded_point(false);
    assert_eq!(jwk["x"], URL_SAFE_NO_PAD.encode(point.x().unwrap()));
    assert_eq!(jwk["y"], URL_SAFE_NO_PAD.encode(point.y().unwrap()));
    // The private half never leaves the process.
    assert!(jwk.get("d").is_none());
    let private = private_member(42);
    assert!(!body.to_string().contains(&private));
    assert!(!format!("{:?}", world.timeline()).contains(&private));
    assert!(!format!("{:?}", world.stored()).contains(&private));
    assert!(!format!("{:?}", world.stored()).contains("PRIVATE KEY"));
}

#[test]
fn a_replaced_key_is_registered_through_rfc_7592_before_it_is_used() {
    let mut world = registry(dynamic_config(pem(42)), true);
    token_of(world.run(Operation::Token).unwrap());
    let client_id = world.provider.clients[0].0.clone();

    // The operator replaces the key file. The next token request would be checked against
    // the old key, so the registered key follows first.
    world.restart_with(dynamic_config(pem(43)));
    world.advance(Duration::from_secs(120));
    assert_eq!(token_of(world.run(Operation::Token).unwrap()), "token-2");
    let server = &world.provider;
    assert_eq!(server.registrations.len(), 1, "no new client");
    assert_eq!(server.updates.len(), 1, "one RFC 7592 update");
    let update = &server.updates[0];
    assert_eq!(update["client_id"], client_id.as_str());
    assert!(update.get("registration_access_token").is_none(), "MGMT-8");
    let new_key = SigningKey::from_slice(&[43u8; 32]).unwrap();
    let point = new_key.verifying_key().to_encoded_point(false);
    assert_eq!(
        update["jwks"]["keys"][0]["x"],
        URL_SAFE_NO_PAD.encode(point.x().unwrap())
    );

    // Once registered, the key is current: the next run sends no update.
    world.restart_with(dynamic_config(pem(43)));
    world.advance(Duration::from_secs(120));
    token_of(world.run(Operation::Token).unwrap());
    assert_eq!(world.provider.updates.len(), 1);
    assert_eq!(world.count(RequestKind::RegistrationUpdate), 1);
}

#[test]
fn without_registration_management_a_replaced_key_gets_a_new_client() {
    let mut world = registry(dynamic_config(pem(42)), false);
    token_of(world.run(Operation::Token).unwrap());
    world.restart_with(dynamic_config(pem(43)));
    world.advance(Duration::from_secs(120));
    assert_eq!(token_of(world.run(Operation::Token).unwrap()), "token-2");
    let server = &world.provider;
    assert_eq!(server.registrations.len(), 2, "a client for the new key");
    assert!(server.updates.is_empty());
    let stored = world.stored().unwrap();
    assert_eq!(
        stored.dcr.as_ref().map(|r| r.client_id.as_str()),
        Some("client-2")
    );
}

#[test]
fn a_jwks_uri_is_registered_instead_of_the_key() {
    let mut config = dynamic_config(pem(42));
    config.jwks_uri = Some("https://app.example.com/jwks.json".into());
    let mut world = registry(config, true);
    // The scripted server has no key for this client (the embedder publishes it), so the
    // token request is refused; what matters here is what was registered.
    let _ = world.run(Operation::Token);
    let body = &world.provider.registrations[0];
    assert_eq!(body["jwks_uri"], "https://app.example.com/jwks.json");
    assert!(body.get("jwks").is_none());
}

#[test]
fn the_configuration_explains_what_a_registered_key_cannot_be_combined_with() {
    let mut cimd = dynamic_config(pem(42));
    cimd.cimd_url = Some("https://app.example.com/client.json".into());
    assert_eq!(cimd.validate(), Err(ConfigError::PrivateKeyWithCimd));

    let mut stray = ClientConfig::for_issuer("m", AS).with_grant(Grant::ClientCredentials);
    stray.jwks_uri = Some("https://app.example.com/jwks.json".into());
    assert_eq!(stray.validate(), Err(ConfigError::JwksUriUnused));

    let mut plain = dynamic_config(pem(42));
    plain.jwks_uri = Some("http://app.example.com/jwks.json".into());
    assert!(matches!(plain.validate(), Err(ConfigError::JwksUri(_))));
    assert!(dynamic_config(pem(42)).validate().is_ok());
}
