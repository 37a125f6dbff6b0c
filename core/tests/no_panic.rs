//! No outside input makes the core panic: every parser of what servers, browsers and stores
//! send is fed arbitrary bytes and arbitrary JSON.

use proptest::prelude::*;
use serde_json::Value;
use tenure_core::parsers::parse_device_authorization;
use tenure_core::parsers::parse_registration;
use tenure_core::parsers::parse_token_answer;
use tenure_core::parsers::{check_callback, CallbackExpectation};
use tenure_core::parsers::{json_object, server_error};
use tenure_core::parsers::{parse, resource_challenge};
use tenure_core::parsers::{parse_deletion, parse_management_answer};
use tenure_core::parsers::{parse_protected_resource, parse_server_metadata, prm_candidates};
use tenure_core::{AuthMethod, ClientConfig, Registration, SecretExpiry, Timestamp};

fn config() -> ClientConfig {
    ClientConfig::for_issuer("fuzz", "https://as.example.com")
}

fn registration() -> Registration {
    Registration {
        client_id: "c1".into(),
        client_secret: Some(tenure_core::Secret::new("s")),
        secret_expires: SecretExpiry::At(Timestamp::from_unix_seconds(100)),
        registration_access_token: Some(tenure_core::Secret::new("rat")),
        registration_client_uri: Some("https://as.example.com/register/c1".into()),
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        redirect_uri: None,
        registration_endpoint: "https://as.example.com/register".into(),
        obtained_at: None,
        unproven: false,
        metadata: Default::default(),
    }
}

/// JSON values shaped like what servers send: objects whose members have the names the
/// parsers look for, with values of any type.
fn server_json() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "client_id",
        "client_secret",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
        "token_endpoint_auth_method",
        "redirect_uris",
        "issuer",
        "token_endpoint",
        "authorization_endpoint",
        "registration_endpoint",
        "resource",
        "authorization_servers",
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "error",
        "error_description",
        "code_challenge_methods_supported",
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "interval",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,40}".prop_map(Value::String),
        Just(Value::String("https://as.example.com/register/c1".into())),
        Just(Value::String("client_secret_basic".into())),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::vec((names, value), 0..10).prop_map(|members| {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    })
}

fn feed_everything(status: u16, body: &[u8]) {
    let _ = json_object(body);
    let _ = server_error(status, body);
    let _ = parse_registration(&config(), "https://as.example.com/register", status, body);
    let _ = parse_management_answer(&config(), &registration(), status, body);
    let _ = parse_deletion(status, body);
    for dpop_sent in [false, true] {
        let _ = parse_token_answer(
            status,
            body,
            Timestamp::from_unix_seconds(1),
            None,
            dpop_sent,
        );
    }
    let _ = parse_device_authorization(status, body, Timestamp::from_unix_seconds(1));
    if let Ok(document) = json_object(body) {
        let _ = parse_server_metadata(&document, "https://as.example.com");
        for candidate in prm_candidates("https://mcp.example.com/mcp", None).unwrap() {
            let _ = parse_protected_resource(&document, &candidate);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bodies(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..256)) {
        feed_everything(status, &body);
    }

    #[test]
    fn shaped_json_bodies(status in prop::sample::select(vec![200u16, 201, 204, 400, 401, 403, 404, 500]),
                          value in server_json()) {
        feed_everything(status, value.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_challenges(header in "[ -~]{0,120}") {
        let _ = parse(&header);
        let _ = resource_challenge(&[&header, &header]);
    }

    #[test]
    fn arbitrary_callbacks(query in "[ -~]{0,120}", iss in any::<bool>()) {
        let expectation = CallbackExpectation { state: "s", issuer: "https://as.example.com", iss_required: iss };
        let _ = check_callback(&query, &expectation);
    }

    #[test]
    fn arbitrary_records(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<tenure_core::Record>(&body);
    }
}
