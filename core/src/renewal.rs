//! RFC 7592 registration management: renewing a secret with a PUT, reading, deleting.

use serde_json::Value;

use crate::config::ClientConfig;
use crate::error::{Error, ServerError};
use crate::record::Registration;
use crate::registration::adopt_answer;
use crate::wire::{json_object, json_request, server_error, string};

/// Members RFC 7592 §2.2 forbids in an update body; oidc-provider answers 400 to any of them
/// (MGMT-8, EDGE-12).
pub const FORBIDDEN_IN_UPDATE: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// Why a management call did not succeed, as the lifecycle must react to it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagementFailure {
    /// Management is not possible: no registration client URI or access token (MGMT-21).
    Unavailable,
    /// 401 or 404: the token is dead or the client is gone; they cannot be told apart, so
    /// the token is dropped (MGMT-16, MGMT-23, EDGE-17, EDGE-18).
    Gone(ServerError),
    /// 403: not allowed, but the registration is still valid; keep everything (MGMT-17).
    Forbidden(ServerError),
    /// Any other refusal (400 `invalid_client_metadata`, 5xx …); the old registration stays
    /// in force (MGMT-18).
    Rejected(ServerError),
    /// A 2xx whose body could not be used.
    BadAnswer(String),
}

impl std::fmt::Display for ManagementFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagementFailure::Unavailable => f.write_str(
                "the server offers no registration management for this client (no registration client URI or access token)",
            ),
            ManagementFailure::Gone(e) => write!(
                f,
                "{e}: the registration access token is invalid or the client no longer exists"
            ),
            ManagementFailure::Forbidden(e) => {
                write!(f, "{e}: the server does not let this client manage its registration")
            }
            ManagementFailure::Rejected(e) => write!(f, "{e}"),
            ManagementFailure::BadAnswer(reason) => f.write_str(reason),
        }
    }
}

/// The PUT body: every member last returned, minus the four forbidden ones, with `client_id`
/// (MGMT-7, MGMT-8, MGMT-9). The secret is left out: RFC 7592 allows omitting it (MGMT-10)
/// and it keeps one more copy of it off the wire.
pub fn update_body(registration: &Registration) -> Value {
    let mut body = registration.metadata.clone();
    for name in FORBIDDEN_IN_UPDATE {
        body.remove(name);
    }
    body.remove("client_secret");
    body.insert(
        "client_id".into(),
        Value::String(registration.client_id.clone()),
    );
    Value::Object(body)
}

fn endpoint(registration: &Registration) -> Result<(&str, &crate::Secret), ManagementFailure> {
    match (
        &registration.registration_client_uri,
        &registration.registration_access_token,
    ) {
        (Some(uri), Some(token)) => Ok((uri, token)),
        _ => Err(ManagementFailure::Unavailable),
    }
}

/// A management request with the registration access token as bearer (MGMT-1, MGMT-2):
/// `PUT` carries [`update_body`], `GET` and `DELETE` carry nothing.
pub fn management_request(
    registration: &Registration,
    method: http::Method,
) -> Result<http::Request<Vec<u8>>, ManagementFailure> {
    let (uri, token) = endpoint(registration)?;
    let body = if method == http::Method::PUT {
        update_body(registration)
    } else {
        Value::Null
    };
    let mut request = json_request(method.clone(), uri, &body, Some(token))
        .map_err(ManagementFailure::BadAnswer)?;
    if method != http::Method::PUT {
        request.body_mut().clear();
        request.headers_mut().remove(http::header::CONTENT_TYPE);
    }
    Ok(request)
}

/// Reads the answer to a PUT or GET (MGMT-4, MGMT-5, MGMT-6, MGMT-11, MGMT-12): the new
/// registration, or why not.
pub fn parse_management_answer(
    config: &ClientConfig,
    registration: &Registration,
    status: u16,
    body: &[u8],
) -> Result<(Registration, Vec<String>), ManagementFailure> {
    classify_status(status, body)?;
    let answer = json_object(body).map_err(ManagementFailure::BadAnswer)?;
    match string(&answer, "client_id") {
        Some(id) if id == registration.client_id => {}
        Some(id) => {
            return Err(ManagementFailure::BadAnswer(format!(
                "the answer names client_id `{id}`, not `{}`; the stored registration is kept",
                registration.client_id
            )))
        }
        None => {
            return Err(ManagementFailure::BadAnswer(
                "the answer has no client_id".into(),
            ))
        }
    }
    let mut warnings = Vec::new();
    let updated =
        adopt_answer(config, registration.clone(), answer, &mut warnings).map_err(|e| match e {
            Error::BadAnswer(reason) => ManagementFailure::BadAnswer(reason),
            other => ManagementFailure::BadAnswer(other.to_string()),
        })?;
    Ok((updated, warnings))
}

/// What a DELETE achieved (MGMT-13, MGMT-14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The server deleted the client.
    Deleted,
    /// The server does not support deletion (405): the registration may still exist.
    Unsupported,
    /// The client or its token was already gone (401/404).
    AlreadyGone,
}

/// Reads the answer to a DELETE; any 2xx counts as deleted (EDGE-21).
pub fn parse_deletion(status: u16, body: &[u8]) -> Result<Deletion, ManagementFailure> {
    if status == 405 {
        return Ok(Deletion::Unsupported);
    }
    match classify_status(status, body) {
        Ok(()) => Ok(Deletion::Deleted),
        Err(ManagementFailure::Gone(_)) => Ok(Deletion::AlreadyGone),
        Err(other) => Err(other),
    }
}

fn classify_status(status: u16, body: &[u8]) -> Result<(), ManagementFailure> {
    let error = || server_error(status, body);
    match status {
        200..=299 => Ok(()),
        401 | 404 => Err(ManagementFailure::Gone(error())),
        // Authlib answers a missing, wrong or dead registration access token, and an unknown
        // client, with 400 `access_denied` (and some servers with 400 `invalid_token` or
        // `invalid_client`) where RFC 7592 says 401: the same "cannot be managed with this
        // token" (MGMT-16), recognised by the error code.
        400 if ["access_denied", "invalid_token", "invalid_client"]
            .iter()
            .any(|code| error().is(code)) =>
        {
            Err(ManagementFailure::Gone(error()))
        }
        403 => Err(ManagementFailure::Forbidden(server_error(status, body))),
        _ => Err(ManagementFailure::Rejected(server_error(status, body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMethod;
    use crate::record::SecretExpiry;
    use crate::time::Timestamp;
    use crate::Secret;
    use serde_json::json;

    fn registration() -> Registration {
        let metadata = json!({
            "client_id": "c1", "client_name": "Demo", "client_name#fr": "Démo",
            "redirect_uris": ["http://127.0.0.1:8976/callback"],
            "token_endpoint_auth_method": "client_secret_post",
            "registration_client_uri": "https://as.example.com/register/c1",
            "client_secret_expires_at": 100, "client_id_issued_at": 1, "vendor": true
        });
        Registration {
            client_id: "c1".into(),
            client_secret: Some(Secret::new("old-secret")),
            secret_expires: SecretExpiry::At(Timestamp::from_unix_seconds(100)),
            registration_access_token: Some(Secret::new("rat-1")),
            registration_client_uri: Some("https://as.example.com/register/c1?x=1".into()),
            token_endpoint_auth_method: AuthMethod::ClientSecretPost,
            redirect_uri: Some("http://127.0.0.1:8976/callback".into()),
            registration_endpoint: "https://as.example.com/register".into(),
            obtained_at: None,
            unproven: false,
            metadata: metadata.as_object().unwrap().clone(),
        }
    }

    fn config() -> ClientConfig {
        ClientConfig::for_issuer("demo", "https://as.example.com")
    }

    #[test]
    fn put_body_drops_forbidden_fields_and_keeps_the_rest_mgmt_7_8_9() {
        let body = update_body(&registration());
        for name in FORBIDDEN_IN_UPDATE {
            assert!(body.get(name).is_none(), "{name} must not be sent");
        }
        assert_eq!(body["client_id"], "c1");
        assert_eq!(body["client_name#fr"], "Démo");
        assert_eq!(body["vendor"], true);
        assert!(body.get("client_secret").is_none());
    }

    #[test]
    fn put_goes_to_the_uri_as_given_with_the_bearer_mgmt_1_2() {
        let request = management_request(&registration(), http::Method::PUT).unwrap();
        assert_eq!(request.method(), http::Method::PUT);
        assert_eq!(request.uri(), "https://as.example.com/register/c1?x=1");
        assert_eq!(request.headers()["authorization"], "Bearer rat-1");
        let delete = management_request(&registration(), http::Method::DELETE).unwrap();
        assert!(delete.body().is_empty());
        let mut unmanaged = registration();
        unmanaged.registration_access_token = None;
        assert_eq!(
            management_request(&unmanaged, http::Method::PUT).unwrap_err(),
            ManagementFailure::Unavailable
        );
    }

    fn answer(value: Value) -> Result<(Registration, Vec<String>), ManagementFailure> {
        parse_management_answer(
            &config(),
            &registration(),
            200,
            value.to_string().as_bytes(),
        )
    }

    #[test]
    fn rotated_credentials_replace_the_old_mgmt_5_edge_8() {
        let (updated, _) = answer(json!({"client_id": "c1", "client_secret": "new-secret",
            "client_secret_expires_at": 500, "registration_access_token": "rat-2",
            "redirect_uris": ["http://127.0.0.1:8976/callback"],
            "token_endpoint_auth_method": "client_secret_post"}))
        .unwrap();
        assert_eq!(updated.client_secret.unwrap().expose(), "new-secret");
        assert_eq!(updated.registration_access_token.unwrap().expose(), "rat-2");
        assert_eq!(
            updated.secret_expires.at(),
            Some(Timestamp::from_unix_seconds(500))
        );
        assert_eq!(
            updated.registration_client_uri.as_deref(),
            Some("https://as.example.com/register/c1?x=1"),
            "absent means keep"
        );
    }

    #[test]
    fn answer_without_secret_keeps_the_stored_one_edge_9() {
        let (updated, warnings) = answer(json!({"client_id": "c1",
            "redirect_uris": ["http://127.0.0.1:8976/callback"],
            "token_endpoint_auth_method": "client_secret_post"}))
        .unwrap();
        assert_eq!(updated.client_secret.unwrap().expose(), "old-secret");
        assert_eq!(updated.registration_access_token.unwrap().expose(), "rat-1");
        assert!(!warnings.is_empty());
    }

    #[test]
    fn zero_expiry_in_a_renewal_answer_means_never() {
        let (updated, _) = answer(json!({"client_id": "c1", "client_secret": "s2",
            "client_secret_expires_at": 0, "redirect_uris": ["http://127.0.0.1:8976/callback"],
            "token_endpoint_auth_method": "client_secret_post"}))
        .unwrap();
        assert_eq!(updated.secret_expires, SecretExpiry::Never);
    }

    #[test]
    fn other_client_id_is_a_protocol_error_mgmt_6_edge_11() {
        assert!(matches!(
            answer(json!({"client_id": "c2", "client_secret": "x"})),
            Err(ManagementFailure::BadAnswer(_))
        ));
    }

    #[test]
    fn rotated_uri_on_another_origin_is_refused_edge_15() {
        let (updated, warnings) = answer(json!({"client_id": "c1",
            "registration_client_uri": "https://evil.example.net/register/c1",
            "registration_access_token": "rat-2",
            "redirect_uris": ["http://127.0.0.1:8976/callback"],
            "token_endpoint_auth_method": "client_secret_post"}))
        .unwrap();
        assert!(!updated.manageable());
        assert!(warnings.iter().any(|w| w.contains("refused")));
    }

    #[test]
    fn statuses_map_to_reactions_mgmt_15_16_17_18_23() {
        let reg = registration();
        let run = |status| parse_management_answer(&config(), &reg, status, b"{}").unwrap_err();
        assert!(matches!(run(401), ManagementFailure::Gone(_)));
        assert!(matches!(run(404), ManagementFailure::Gone(_)));
        let authlib =
            parse_management_answer(&config(), &reg, 400, br#"{"error":"access_denied"}"#)
                .unwrap_err();
        assert!(matches!(authlib, ManagementFailure::Gone(_)), "{authlib}");
        assert_eq!(
            parse_deletion(400, br#"{"error":"access_denied"}"#),
            Ok(Deletion::AlreadyGone)
        );
        assert!(matches!(
            parse_deletion(400, br#"{"error":"invalid_request"}"#),
            Err(ManagementFailure::Rejected(_))
        ));
        assert!(matches!(run(403), ManagementFailure::Forbidden(_)));
        assert!(matches!(run(400), ManagementFailure::Rejected(_)));
        assert!(matches!(run(503), ManagementFailure::Rejected(_)));
    }

    #[test]
    fn deletion_outcomes_mgmt_13_14_edge_20() {
        assert_eq!(parse_deletion(204, b""), Ok(Deletion::Deleted));
        assert_eq!(parse_deletion(202, b""), Ok(Deletion::Deleted));
        assert_eq!(parse_deletion(405, b""), Ok(Deletion::Unsupported));
        assert_eq!(parse_deletion(401, b""), Ok(Deletion::AlreadyGone));
        assert!(parse_deletion(500, b"").is_err());
    }
}
