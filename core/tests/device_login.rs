//! The device authorization grant (RFC 8628) end to end through the machine's inputs and
//! commands: which login is chosen, the request, the polling with `authorization_pending`
//! and `slow_down`, the ends (approval, refusal, expiry), all in virtual time.

use std::collections::VecDeque;

use serde_json::{json, Value};
use tenure_core::{
    ClientConfig, Duration, Error, LoginFlow, Operation, Outcome, RequestKind, Timestamp,
};
use tenure_sim::{Browser, Reply, Scripted, Server, Simulation, What};

const AS: &str = "https://as.example.com";
const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);
const DEVICE_CODE: &str = "planted-device-code-3f9a";

/// An authorization server with a device authorization endpoint whose token endpoint answers
/// the polls from a queue, then with tokens.
struct DeviceServer {
    script: Scripted,
    /// What the device authorization endpoint answers.
    authorization: (u16, Value),
    /// The answers to the next polls, in order (`None`: the connection is lost); once it
    /// is empty, the user has approved and tokens are issued.
    polls: VecDeque<Option<(u16, Value)>>,
    /// The bodies of the registration and device authorization requests.
    registrations: Vec<Value>,
    device_requests: Vec<String>,
    /// The bodies of the polls.
    poll_bodies: Vec<String>,
}

impl DeviceServer {
    fn new(offered: bool) -> Self {
        let mut script = Scripted::new();
        let mut metadata = json!({
            "issuer": AS,
            "authorization_endpoint": format!("{AS}/authorize"),
            "token_endpoint": format!("{AS}/token"),
            "registration_endpoint": format!("{AS}/register"),
            "code_challenge_methods_supported": ["S256"],
        });
        if offered {
            metadata["device_authorization_endpoint"] = json!(format!("{AS}/device/auth"));
        }
        script.answer(
            "GET",
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            metadata,
        );
        DeviceServer {
            script,
            authorization: (
                200,
                json!({
                    "device_code": DEVICE_CODE,
                    "user_code": "WDJB-MJHT",
                    "verification_uri": format!("{AS}/device"),
                    "verification_uri_complete": format!("{AS}/device?user_code=WDJB-MJHT"),
                    "expires_in": 600,
                }),
            ),
            polls: VecDeque::new(),
            registrations: Vec::new(),
            device_requests: Vec::new(),
            poll_bodies: Vec::new(),
        }
    }

    fn pending(mut self, answers: &[&str]) -> Self {
        for error in answers {
            self.polls.push_back(Some((400, json!({ "error": error }))));
        }
        self
    }
}

impl Server for DeviceServer {
    fn handle(&mut self, now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let url = request.uri().to_string();
        let body = String::from_utf8_lossy(request.body()).into_owned();
        if url == format!("{AS}/register") {
            let sent: Value = serde_json::from_str(&body).unwrap();
            self.registrations.push(sent);
            return Reply::json(
                201,
                &json!({"client_id": "device-client", "token_endpoint_auth_method": "none",
                        "redirect_uris": ["http://127.0.0.1:8976/callback"]}),
            );
        }
        if url == format!("{AS}/device/auth") {
            self.device_requests.push(body);
            return Reply::json(self.authorization.0, &self.authorization.1);
        }
        if url == format!("{AS}/token") {
            self.poll_bodies.push(body);
            return match self.polls.pop_front() {
                Some(Some((status, answer))) => Reply::json(status, &answer),
                Some(None) => Reply::Lost,
                None => Reply::json(
                    200,
                    &json!({"access_token": "device-access-token", "token_type": "Bearer",
                            "expires_in": 3600, "refresh_token": "device-refresh-token"}),
                ),
            };
        }
        self.script.handle(now, request)
    }
}

type World = Simulation<DeviceServer>;

fn world(flow: LoginFlow, server: DeviceServer) -> World {
    let mut config = ClientConfig::for_issuer("dev", AS);
    config.seed = [3; 32];
    config.scopes = vec!["openid".into()];
    config.login_flow = flow;
    let mut world = Simulation::new(config, server, NOW);
    world.browser = Browser::Never;
    world
}

fn login(world: &mut World) -> Outcome {
    world
        .run(Operation::Login)
        .unwrap_or_else(|e| panic!("login did not end: {e}; timeline: {:?}", world.timeline()))
}

/// When each poll was sent, in seconds after the device authorization answer.
fn poll_times(world: &World) -> Vec<i64> {
    let requests = world.requests();
    let start = requests
        .iter()
        .find(|r| r.kind == RequestKind::DeviceAuthorization)
        .map(|r| r.at)
        .expect("a device authorization request");
    requests
        .iter()
        .filter(|r| r.kind == RequestKind::DeviceToken)
        .map(|r| r.at.unix_seconds() - start.unix_seconds())
        .collect()
}

fn shown(world: &World) -> Vec<(String, String)> {
    world
        .timeline()
        .iter()
        .filter_map(|e| match &e.what {
            What::DeviceCode {
                verification_uri,
                user_code,
            } => Some((verification_uri.clone(), user_code.clone())),
            _ => None,
        })
        .collect()
}

fn failure(outcome: Outcome) -> Error {
    match outcome {
        Outcome::Failed(error) => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn an_approved_device_login_stores_the_tokens_rfc8628_3_4() {
    let server =
        DeviceServer::new(true).pending(&["authorization_pending", "authorization_pending"]);
    let mut world = world(LoginFlow::Device, server);
    let outcome = login(&mut world);
    match &outcome {
        Outcome::Token { access_token, .. } => {
            assert_eq!(access_token.expose(), "device-access-token")
        }
        other => panic!("expected a token, got {other:?}"),
    }
    // The user was shown where to go and what to enter (RFC 8628 §3.3).
    assert_eq!(
        shown(&world),
        vec![(format!("{AS}/device"), "WDJB-MJHT".to_string())]
    );
    // No browser, and polls every 5 s, the default interval (RFC 8628 §3.2).
    assert!(!world.timeline().iter().any(|e| e.what == What::Browser));
    assert_eq!(poll_times(&world), vec![5, 10, 15]);
    // The request names the client and the scopes (§3.1); the polls the grant and the
    // device code (§3.4).
    let server = &world.provider;
    assert!(server.device_requests[0].contains("client_id=device-client"));
    assert!(server.device_requests[0].contains("scope=openid"));
    for poll in &server.poll_bodies {
        assert!(poll.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"));
        assert!(poll.contains(&format!("device_code={DEVICE_CODE}")));
        assert!(poll.contains("client_id=device-client"));
    }
    // The client registered for the device grant, since the server offers it.
    assert_eq!(
        server.registrations[0]["grant_types"],
        json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    // Stored like the tokens of a code exchange: the next token call sends nothing.
    let stored = world
        .stored()
        .and_then(|r| r.tokens.clone())
        .expect("tokens stored");
    assert_eq!(stored.access_token.expose(), "device-access-token");
    let sent = world.requests().len();
    assert!(matches!(
        world.run(Operation::Token),
        Ok(Outcome::Token { .. })
    ));
    assert_eq!(world.requests().len(), sent);
    // INV-12: the device code is in no timeline line and no Debug output.
    let timeline = format!("{:?}", world.timeline());
    let text: Vec<String> = world.timeline().iter().map(|e| e.to_string()).collect();
    assert!(!timeline.contains(DEVICE_CODE), "{timeline}");
    assert!(!text.join("\n").contains(DEVICE_CODE));
    assert!(!format!("{:?}", world.client()).contains(DEVICE_CODE));
}

#[test]
fn slow_down_adds_five_seconds_to_every_later_poll_rfc8628_3_5() {
    let server = DeviceServer::new(true).pending(&[
        "authorization_pending",
        "slow_down",
        "authorization_pending",
        "slow_down",
    ]);
    let mut world = world(LoginFlow::Device, server);
    assert!(matches!(login(&mut world), Outcome::Token { .. }));
    assert_eq!(poll_times(&world), vec![5, 10, 20, 30, 45]);
}

#[test]
fn the_server_interval_is_honoured_rfc8628_3_2() {
    let mut server = DeviceServer::new(true).pending(&["authorization_pending"]);
    server.authorization.1["interval"] = json!(7);
    let mut world = world(LoginFlow::Device, server);
    assert!(matches!(login(&mut world), Outcome::Token { .. }));
    assert_eq!(poll_times(&world), vec![7, 14]);
}

#[test]
fn a_lost_poll_backs_off_and_polling_goes_on_rfc8628_3_5() {
    let mut server = DeviceServer::new(true);
    server.polls.push_back(None);
    let mut world = world(LoginFlow::Device, server);
    assert!(matches!(login(&mut world), Outcome::Token { .. }));
    assert_eq!(poll_times(&world), vec![5, 15]);
}

#[test]
fn a_refusal_ends_the_login_rfc8628_3_5() {
    let server = DeviceServer::new(true).pending(&["authorization_pending", "access_denied"]);
    let mut world = world(LoginFlow::Device, server);
    let error = failure(login(&mut world));
    assert!(
        matches!(&error, Error::AuthorizationDenied(cause) if cause.is("access_denied")),
        "{error:?}"
    );
    assert!(world.stored().and_then(|r| r.tokens.as_ref()).is_none());
}

#[test]
fn an_expired_token_answer_ends_the_login_rfc8628_3_5() {
    let server = DeviceServer::new(true).pending(&["expired_token"]);
    let mut world = world(LoginFlow::Device, server);
    let error = failure(login(&mut world));
    assert!(matches!(error, Error::DeviceCodeExpired(_)), "{error:?}");
    assert!(error.to_string().contains("run the login again"), "{error}");
}

#[test]
fn polling_gives_up_at_expires_in_rfc8628_3_2() {
    let pending = vec!["authorization_pending"; 100];
    let mut server = DeviceServer::new(true).pending(&pending);
    server.authorization.1["expires_in"] = json!(22);
    let mut world = world(LoginFlow::Device, server);
    let start = world.now();
    let error = failure(login(&mut world));
    assert_eq!(
        error,
        Error::DeviceCodeExpired(start + Duration::from_secs(22))
    );
    // Polls at 5, 10, 15 and 20 s; none at or after the expiry.
    assert_eq!(poll_times(&world), vec![5, 10, 15, 20]);
    assert_eq!(world.now(), start + Duration::from_secs(22));
}

#[test]
fn an_unauthorized_client_is_told_to_use_the_browser() {
    let mut server = DeviceServer::new(true);
    server.authorization = (400, json!({"error": "unauthorized_client"}));
    let mut world = world(LoginFlow::Device, server);
    let error = failure(login(&mut world));
    assert!(
        error.to_string().contains("log in through a browser"),
        "{error}"
    );
}

#[test]
fn device_login_needs_the_endpoint() {
    let mut world = world(LoginFlow::Device, DeviceServer::new(false));
    let error = failure(login(&mut world));
    assert!(
        error.to_string().contains("device_authorization_endpoint"),
        "{error}"
    );
    assert_eq!(world.count(RequestKind::DeviceAuthorization), 0);
}

#[test]
fn device_if_offered_chooses_by_what_the_server_offers() {
    // Offered: the device login.
    let mut world_offered = world(LoginFlow::DeviceIfOffered, DeviceServer::new(true));
    assert!(matches!(login(&mut world_offered), Outcome::Token { .. }));
    assert_eq!(world_offered.count(RequestKind::DeviceAuthorization), 1);
    // Not offered: the browser, as before.
    let mut world_plain = world(LoginFlow::DeviceIfOffered, DeviceServer::new(false));
    let _ = login(&mut world_plain);
    assert!(world_plain
        .timeline()
        .iter()
        .any(|e| e.what == What::Browser));
    assert_eq!(world_plain.count(RequestKind::DeviceAuthorization), 0);
    // The browser flow stays the default even where the device login is offered.
    let mut world_browser = world(LoginFlow::Browser, DeviceServer::new(true));
    let _ = login(&mut world_browser);
    assert!(world_browser
        .timeline()
        .iter()
        .any(|e| e.what == What::Browser));
    assert_eq!(world_browser.count(RequestKind::DeviceAuthorization), 0);
}
