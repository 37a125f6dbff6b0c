//! RFC 7591 registration answers and RFC 7592 management answers, with any status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::parsers::parse_registration;
use tenure_core::parsers::{parse_deletion, parse_management_answer};
use tenure_core::{AuthMethod, ClientConfig, Registration, Secret, SecretExpiry, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let status = [200u16, 201, 204, 400, 401, 403, 404, 405, 500][usize::from(first) % 9];
    let config = ClientConfig::for_issuer("fuzz", "https://as.example.com");
    let _ = parse_registration(&config, "https://as.example.com/register", status, body);
    let registration = Registration {
        client_id: "c1".into(),
        client_secret: Some(Secret::new("s")),
        secret_expires: SecretExpiry::At(Timestamp::from_unix_seconds(100)),
        registration_access_token: Some(Secret::new("rat")),
        registration_client_uri: Some("https://as.example.com/register/c1".into()),
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        redirect_uri: None,
        registration_endpoint: "https://as.example.com/register".into(),
        obtained_at: None,
        unproven: false,
        metadata: Default::default(),
    };
    let _ = parse_management_answer(&config, &registration, status, body);
    let _ = parse_deletion(status, body);
});
