//! DPoP-bound tokens (RFC 9449, SEP-1932) end to end through inputs and commands: a scripted
//! authorization server whose token endpoint checks each proof with the key in its header,
//! asks for nonces when told to, and binds its tokens or not.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tenure_core::{
    ClientConfig, DpopMode, Duration, Error, Grant, Input, LoginFlow, Operation, Outcome, Secret,
    Timestamp, TokenScheme,
};
use tenure_sim::{Browser, Reply, Scripted, Server, Simulation};

const AS: &str = "https://as.example.com";
const TOKEN_ENDPOINT: &str = "https://as.example.com/token";
const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);

/// What one token request's proof said, checked as RFC 9449 §4.3 says a server checks it.
#[derive(Debug)]
struct Proof {
    header: Value,
    claims: Value,
    /// The RFC 7638 thumbprint of the proof's `jwk`, computed here from the header.
    thumbprint: String,
}

/// The authorization server: metadata from the script, an authorization endpoint that sends
/// the browser straight back with a code, and a token endpoint that checks proofs.
struct DpopServer {
    script: Scripted,
    /// The proof of every token request (`None`: it carried none), in order.
    proofs: Vec<Option<Proof>>,
    /// The grant type of every token request.
    grants: Vec<String>,
    /// The nonce a proof must carry; answered `use_dpop_nonce` with it otherwise.
    nonce: Option<String>,
    /// Asks for a new nonce on every request, whatever the proof carried.
    nonce_every_time: bool,
    /// Asks for a nonce without giving one (no `DPoP-Nonce` header).
    nonce_withheld: bool,
    /// Answers `token_type: DPoP` to a request with a proof; Bearer otherwise.
    binds: bool,
}

impl Server for DpopServer {
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let url = request.uri().to_string();
        if url.starts_with("https://as.example.com/authorize") {
            return Reply::approve(&url, "the-code");
        }
        if url != TOKEN_ENDPOINT {
            return self.script.handle(now, request);
        }
        let grant = url::form_urlencoded::parse(request.body())
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        self.grants.push(grant);
        let proof = request
            .headers()
            .get("dpop")
            .map(|value| check_proof(value.to_str().unwrap()));
        let carried = proof
            .as_ref()
            .and_then(|p| p.claims["nonce"].as_str().map(str::to_owned));
        let has_proof = proof.is_some();
        self.proofs.push(proof);
        if has_proof && self.nonce_withheld {
            return Reply::json(400, &json!({"error": "use_dpop_nonce"}));
        }
        if has_proof && self.nonce_every_time {
            let nonce = format!("nonce-{}", self.proofs.len());
            return use_dpop_nonce(&nonce);
        }
        if let Some(wanted) = self.nonce.clone().filter(|_| has_proof) {
            if carried.as_deref() != Some(wanted.as_str()) {
                return use_dpop_nonce(&wanted);
            }
        }
        let n = self.proofs.len();
        let token_type = if has_proof && self.binds {
            "DPoP"
        } else {
            "Bearer"
        };
        Reply::json(
            200,
            &json!({"access_token": format!("at-{n}"), "refresh_token": format!("rt-{n}"),
                    "token_type": token_type, "expires_in": 3600}),
        )
    }
}

/// A 400 `use_dpop_nonce` with the nonce in `DPoP-Nonce` (RFC 9449 §8).
fn use_dpop_nonce(nonce: &str) -> Reply {
    let body = json!({"error": "use_dpop_nonce", "error_description": "nonce required"});
    let response = http::Response::builder()
        .status(400)
        .header("content-type", "application/json")
        .header("DPoP-Nonce", nonce)
        .body(body.to_string().into_bytes())
        .unwrap();
    Reply::Response(response)
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Reads a proof and checks its signature with the public key its header carries.
fn check_proof(jwt: &str) -> Proof {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let header = decode(parts[0]);
    let claims = decode(parts[1]);
    let jwk = &header["jwk"];
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = p256::EncodedPoint::from_affine_coordinates(
        coordinate("x").as_slice().into(),
        coordinate("y").as_slice().into(),
        false,
    );
    let public = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
    let signature =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    public
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the proof verifies with the key in its header");
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["kty"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    Proof {
        thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
        header,
        claims,
    }
}

fn metadata(dpop_algs: Option<&[&str]>) -> Value {
    let mut document = json!({
        "issuer": AS,
        "authorization_endpoint": "https://as.example.com/authorize",
        "token_endpoint": TOKEN_ENDPOINT,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
        "device_authorization_endpoint": "https://as.example.com/device/auth",
    });
    if let Some(algs) = dpop_algs {
        document["dpop_signing_alg_values_supported"] = json!(algs);
    }
    document
}

fn config(mode: DpopMode) -> ClientConfig {
    let mut config = ClientConfig::for_issuer("dpop", AS)
        .with_client("public-client", None)
        .with_dpop(mode);
    config.seed = [5; 32];
    config
}

fn world(config: ClientConfig, dpop_algs: Option<&[&str]>) -> Simulation<DpopServer> {
    let mut script = Scripted::new();
    script.answer(
        "GET",
        "https://as.example.com/.well-known/oauth-authorization-server",
        200,
        metadata(dpop_algs),
    );
    script.answer(
        "POST",
        "https://as.example.com/device/auth",
        200,
        json!({"device_code": "the-device-code", "user_code": "WDJB-MJHT",
               "verification_uri": "https://as.example.com/device", "expires_in": 600}),
    );
    let server = DpopServer {
        script,
        proofs: Vec::new(),
        grants: Vec::new(),
        nonce: None,
        nonce_every_time: false,
        nonce_withheld: false,
        binds: true,
    };
    Simulation::new(config, server, NOW)
}

fn offered() -> Simulation<DpopServer> {
    world(config(DpopMode::IfOffered), Some(&["RS256", "ES256"]))
}

/// The token of `outcome` and its scheme.
fn token_of(outcome: Outcome) -> (String, TokenScheme) {
    match outcome {
        Outcome::Token {
            access_token,
            scheme,
            ..
        } => (access_token.expose().to_string(), scheme),
        other => panic!("expected a token, got {other:?}"),
    }
}

fn proof(world: &Simulation<DpopServer>, n: usize) -> &Proof {
    world.provider.proofs[n]
        .as_ref()
        .unwrap_or_else(|| panic!("token request {n} carried no proof"))
}

fn stored_thumbprint(world: &Simulation<DpopServer>) -> String {
    let key = world.stored().and_then(|r| r.dpop_key.clone()).unwrap();
    key.thumbprint().unwrap()
}

#[test]
fn the_code_exchange_carries_a_proof_and_the_token_is_dpop_bound_rfc_9449_5() {
    let mut world = offered();
    let (token, scheme) = token_of(world.run(Operation::Login).unwrap());
    assert_eq!((token.as_str(), scheme), ("at-1", TokenScheme::Dpop));
    assert_eq!(world.provider.grants, ["authorization_code"]);

    let proof = proof(&world, 0);
    assert_eq!(proof.header["typ"], "dpop+jwt");
    assert_eq!(proof.header["alg"], "ES256");
    let mut members: Vec<&String> = proof.header["jwk"].as_object().unwrap().keys().collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["crv", "kty", "x", "y"],
        "the public key only, no `d`"
    );
    assert_eq!(proof.claims["htm"], "POST");
    assert_eq!(proof.claims["htu"], TOKEN_ENDPOINT);
    assert_eq!(proof.claims["iat"], NOW.unix_seconds());
    assert!(proof.claims["jti"].as_str().is_some_and(|j| j.len() >= 32));
    assert!(proof.claims.get("ath").is_none(), "no access token yet");
    assert!(
        proof.claims.get("nonce").is_none(),
        "no nonce was asked for"
    );

    // The key is stored with the tokens it binds, and is the key of the proof.
    let record = world.stored().unwrap();
    assert_eq!(record.tokens.as_ref().unwrap().token_type, "DPoP");
    assert_eq!(stored_thumbprint(&world), proof.thumbprint);
}

#[test]
fn a_use_dpop_nonce_answer_is_retried_once_with_the_nonce_rfc_9449_8() {
    let mut world = offered();
    world.provider.nonce = Some("server-nonce-1".into());
    let (_, scheme) = token_of(world.run(Operation::Login).unwrap());
    assert_eq!(scheme, TokenScheme::Dpop);
    assert_eq!(world.provider.grants, ["authorization_code"; 2]);
    let (first, second) = (proof(&world, 0), proof(&world, 1));
    assert!(first.claims.get("nonce").is_none());
    assert_eq!(second.claims["nonce"], "server-nonce-1");
    assert_ne!(first.claims["jti"], second.claims["jti"], "a fresh proof");
    assert_eq!(first.thumbprint, second.thumbprint, "the same key");

    // The nonce is remembered: the next token request carries it at once.
    world.advance(Duration::from_hours(2));
    token_of(world.run(Operation::Token).unwrap());
    assert_eq!(world.provider.grants.len(), 3);
    assert_eq!(proof(&world, 2).claims["nonce"], "server-nonce-1");
}

#[test]
fn client_credentials_and_device_polls_carry_proofs_and_nonces_too() {
    let mut machine = config(DpopMode::IfOffered)
        .with_grant(Grant::ClientCredentials)
        .with_client("machine", Some(Secret::new("machine-secret")));
    machine.seed = [6; 32];
    let mut world = world(machine, Some(&["ES256"]));
    world.provider.nonce = Some("cc-nonce".into());
    let (_, scheme) = token_of(world.run(Operation::Token).unwrap());
    assert_eq!(scheme, TokenScheme::Dpop);
    assert_eq!(world.provider.grants, ["client_credentials"; 2]);
    assert_eq!(proof(&world, 1).claims["nonce"], "cc-nonce");

    let mut device = config(DpopMode::IfOffered);
    device.login_flow = LoginFlow::Device;
    let mut world = self::world(device, Some(&["ES256"]));
    world.browser = Browser::Never;
    world.provider.nonce = Some("device-nonce".into());
    let (_, scheme) = token_of(world.run(Operation::Login).unwrap());
    assert_eq!(scheme, TokenScheme::Dpop);
    let device_grant = "urn:ietf:params:oauth:grant-type:device_code";
    assert_eq!(world.provider.grants, [device_grant; 2]);
    assert!(proof(&world, 0).claims.get("nonce").is_none());
    assert_eq!(proof(&world, 1).claims["nonce"], "device-nonce");
}

#[test]
fn a_second_use_dpop_nonce_ends_the_login_with_a_clear_error() {
    let mut world = offered();
    world.provider.nonce_every_time = true;
    let outcome = world.run(Operation::Login).unwrap();
    let Outcome::Failed(error @ Error::TokenRejected { .. }) = outcome else {
        panic!("expected a token refusal, got {outcome:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains("use_dpop_nonce") && message.contains("again"),
        "{message}"
    );
    assert_eq!(world.provider.grants.len(), 2, "one repetition, not a loop");
    assert_eq!(proof(&world, 1).claims["nonce"], "nonce-1");
}

#[test]
fn a_use_dpop_nonce_without_a_nonce_is_not_repeated() {
    let mut world = offered();
    world.provider.nonce_withheld = true;
    let outcome = world.run(Operation::Login).unwrap();
    let Outcome::Failed(error @ Error::TokenRejected { .. }) = outcome else {
        panic!("expected a token refusal, got {outcome:?}");
    };
    assert!(error.to_string().contains("sent none"), "{error}");
    assert_eq!(world.provider.grants.len(), 1);
}

#[test]
fn a_refresh_keeps_the_key_across_restarts_and_replicas() {
    let mut world = offered();
    token_of(world.run(Operation::Login).unwrap());
    let bound_to = proof(&world, 0).thumbprint.clone();

    world.advance(Duration::from_hours(2));
    let (token, scheme) = token_of(world.run(Operation::Token).unwrap());
    assert_eq!((token.as_str(), scheme), ("at-2", TokenScheme::Dpop));
    assert_eq!(world.provider.grants[1], "refresh_token");
    assert_eq!(proof(&world, 1).thumbprint, bound_to);

    // A replica with another seed, reading the same record, proves the same key.
    let mut replica = config(DpopMode::IfOffered);
    replica.seed = [9; 32];
    world.restart_with(replica);
    world.advance(Duration::from_hours(2));
    token_of(world.run(Operation::Token).unwrap());
    assert_eq!(world.provider.grants[2], "refresh_token");
    assert_eq!(proof(&world, 2).thumbprint, bound_to);
    assert_eq!(stored_thumbprint(&world), bound_to);
}

#[test]
fn a_refresh_refused_for_nonces_keeps_the_refresh_token_inv_10() {
    let mut world = offered();
    token_of(world.run(Operation::Login).unwrap());
    world.provider.nonce_every_time = true;
    world.advance(Duration::from_hours(2));
    let outcome = world.run(Operation::Token).unwrap();
    assert!(
        matches!(outcome, Outcome::Failed(Error::TokenRejected { .. })),
        "{outcome:?}"
    );
    assert_eq!(world.provider.grants[1..], ["refresh_token"; 2]);
    let tokens = world.stored().unwrap().tokens.clone().unwrap();
    assert_eq!(tokens.refresh_token, Some(Secret::new("rt-1")));

    // Once the server stops asking, the same refresh token works.
    world.provider.nonce_every_time = false;
    let (token, _) = token_of(world.run(Operation::Token).unwrap());
    assert_eq!(token, "at-4");
}

#[test]
fn a_bearer_answer_to_a_proof_is_taken_as_bearer() {
    let mut world = offered();
    world.provider.binds = false;
    let (token, scheme) = token_of(world.run(Operation::Login).unwrap());
    assert_eq!((token.as_str(), scheme), ("at-1", TokenScheme::Bearer));
    assert!(world.provider.proofs[0].is_some(), "the proof was sent");
    assert_eq!(
        world.stored().unwrap().tokens.as_ref().unwrap().token_type,
        "Bearer"
    );
}

#[test]
fn no_proof_is_sent_unless_the_setting_and_the_server_agree() {
    // The server offers DPoP with another algorithm only: nothing Tenure can sign.
    let mut world = world(config(DpopMode::IfOffered), Some(&["RS256"]));
    let (_, scheme) = token_of(world.run(Operation::Login).unwrap());
    assert_eq!(scheme, TokenScheme::Bearer);
    assert!(world.provider.proofs[0].is_none());
    assert!(world.stored().unwrap().dpop_key.is_none(), "no key is made");

    // The default setting sends none either, whatever the server offers.
    let mut world = world_default_offered();
    token_of(world.run(Operation::Login).unwrap());
    assert!(world.provider.proofs[0].is_none());

    // Always sends one to a server that does not advertise DPoP.
    let mut world = self::world(config(DpopMode::Always), None);
    let (_, scheme) = token_of(world.run(Operation::Login).unwrap());
    assert_eq!(scheme, TokenScheme::Dpop);
    assert!(world.provider.proofs[0].is_some());
}

fn world_default_offered() -> Simulation<DpopServer> {
    let mut config = ClientConfig::for_issuer("dpop", AS).with_client("public-client", None);
    config.seed = [5; 32];
    world(config, Some(&["ES256"]))
}

#[test]
fn a_dpop_token_type_without_a_proof_is_refused_oauth_12() {
    // A server that answers DPoP although no proof was sent: the token is bound to no key
    // of this client, so it could not be used.
    struct Confused(DpopServer);
    impl Server for Confused {
        fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
            if request.uri() == TOKEN_ENDPOINT {
                return Reply::json(
                    200,
                    &json!({"access_token": "at", "token_type": "DPoP", "expires_in": 60}),
                );
            }
            self.0.handle(now, request)
        }
    }
    let inner = world_default_offered();
    let mut world = Simulation::new(inner.config().clone(), Confused(inner.provider), NOW);
    let outcome = world.run(Operation::Login).unwrap();
    let Outcome::Failed(Error::Protocol(reason)) = outcome else {
        panic!("expected a refusal, got {outcome:?}");
    };
    assert!(reason.contains("DPoP proof"), "{reason}");
}

#[test]
fn a_resource_nonce_challenge_refuses_no_token_rfc_9449_9() {
    let mut world = offered();
    let (token, _) = token_of(world.run(Operation::Login).unwrap());
    let sent = world.requests().len();
    world.handle(Input::ResourceChallenge {
        headers: vec![
            r#"DPoP error="use_dpop_nonce", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource""#.into(),
        ],
        token: Some(Secret::new(token.as_str())),
    });
    let (again, _) = token_of(world.run(Operation::Token).unwrap());
    assert_eq!(again, token, "the same token, not a refresh");
    assert_eq!(world.requests().len(), sent, "no discovery, no refresh");

    // Any other refusal of a DPoP token is one: the next call refreshes.
    world.handle(Input::ResourceChallenge {
        headers: vec![r#"DPoP error="invalid_token""#.into()],
        token: Some(Secret::new(token.as_str())),
    });
    let (refreshed, _) = token_of(world.run(Operation::Token).unwrap());
    assert_ne!(refreshed, token);
}

#[test]
fn a_resource_proof_carries_ath_and_the_stored_key_and_never_leaks_it_inv_12() {
    let mut world = offered();
    let (token, _) = token_of(world.run(Operation::Login).unwrap());
    let mut client = world.client().clone();
    let access_token = Secret::new(token.as_str());
    let first = client
        .resource_proof(
            "GET",
            "https://mcp.example.com/mcp?cursor=2#x",
            &access_token,
            Some("rs-nonce"),
            NOW,
        )
        .unwrap();
    let second = client
        .resource_proof(
            "GET",
            "https://mcp.example.com/mcp",
            &access_token,
            None,
            NOW,
        )
        .unwrap();
    let first = check_proof(first.expose());
    let second = check_proof(second.expose());
    assert_eq!(first.claims["htm"], "GET");
    assert_eq!(first.claims["htu"], "https://mcp.example.com/mcp");
    assert_eq!(first.claims["nonce"], "rs-nonce");
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
    assert_eq!(first.claims["ath"], ath);
    assert_ne!(first.claims["jti"], second.claims["jti"]);
    assert_eq!(first.thumbprint, stored_thumbprint(&world));

    // The private key is in the record's secrets, and in no Debug output or timeline.
    let record = world.stored().unwrap().clone();
    let key = record.dpop_key.clone().unwrap();
    assert!(record.secrets().contains(&key.secret()));
    let shown = format!(
        "{record:?} {:?} {:?} {}",
        world.client(),
        world.timeline(),
        record.redacted()
    );
    for secret in record.secrets() {
        assert!(!shown.contains(secret.expose()), "a secret leaked: {shown}");
    }
}
