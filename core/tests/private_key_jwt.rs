//! A machine client that authenticates with `private_key_jwt` (RFC 7523 §2.2, SEP-1046)
//! against a scripted authorization server whose token endpoint checks the assertion with
//! the client's public key, end to end through inputs and commands.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};
use tenure_core::{
    AssertionAudience, ClientConfig, ConfigError, Duration, Grant, Operation, Outcome, Secret,
    Timestamp,
};
use tenure_sim::{Reply, Scripted, Server, Simulation};

const AS: &str = "https://as.example.com";
const TOKEN_ENDPOINT: &str = "https://as.example.com/token";
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

fn world(config: ClientConfig, public: VerifyingKey) -> Simulation<KeyCheckingServer> {
    let mut script = Scripted::new();
    script.answer(
        "GET",
        "https://as.example.com/.well-known/oauth-authorization-server",
        200,
        json!({
            "issuer": AS,
            "token_endpoint": TOKEN_ENDPOINT,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        }),
    );
    let server = KeyCheckingServer {
        script,
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
    assert_eq!(claims["aud"], TOKEN_ENDPOINT);
    assert_eq!(claims["iat"], NOW.unix_seconds());
    assert_eq!(claims["exp"], NOW.unix_seconds() + 60);
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "key-1");

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
fn the_audience_can_be_the_issuer() {
    let (pem, public) = key();
    let config = config(pem).with_assertion_audience(AssertionAudience::Issuer);
    let mut world = world(config, public);
    token_of(world.run(Operation::Token).unwrap());
    let jwt = field(&world.provider.token_requests[0], "client_assertion")
        .unwrap()
        .to_string();
    assert_eq!(verify(&public, &jwt).unwrap()["aud"], AS);
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
fn the_configuration_needs_a_usable_key_and_a_client_id() {
    let (pem, _) = key();
    assert!(config(pem.clone()).validate().is_ok());

    let mut no_key = config(pem.clone());
    no_key.private_key = None;
    assert_eq!(no_key.validate(), Err(ConfigError::PrivateKeyMissing));

    let mut no_id = config(pem.clone());
    no_id.client_id = None;
    assert_eq!(no_id.validate(), Err(ConfigError::PrivateKeyWithoutId));

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
