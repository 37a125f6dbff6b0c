//! Registration: choosing how the client gets an identity, and RFC 7591 Dynamic Client
//! Registration.

use serde_json::{json, Map, Value};

use crate::config::{ApplicationType, AuthMethod, ClientConfig, Grant};
use crate::endpoint::{check_registration_client_uri, sanitize};
use crate::error::Error;
use crate::record::{AuthServer, Registration, SecretExpiry};
use crate::time::Timestamp;
use crate::wire::{integer, json_object, json_request, server_error, string, strings, Integer};

/// The ways a client can obtain an identity, in the order they are tried (MCP-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// A client id (and secret) from configuration.
    PreRegistered,
    /// The configured Client ID Metadata Document URL is the client id; nothing is sent.
    Cimd,
    /// An RFC 7591 registration request.
    Dcr,
}

/// Picks the registration method: pre-registered, then CIMD when the server supports it and
/// a URL is configured and was not rejected, then DCR when a registration endpoint exists
/// (MCP-7, CIMD-9, DISC-8). `None` means none is possible.
pub fn choose_method(
    config: &ClientConfig,
    server: &AuthServer,
    cimd_rejected: bool,
) -> Option<Method> {
    if config.client_id.is_some() {
        Some(Method::PreRegistered)
    } else if config.cimd_url.is_some() && server.cimd_supported && !cimd_rejected {
        Some(Method::Cimd)
    } else if server.registration_endpoint.is_some() {
        Some(Method::Dcr)
    } else {
        None
    }
}

/// The token endpoint auth method to register, chosen against the server's
/// `token_endpoint_auth_methods_supported` (DISC-10: an absent list means
/// `client_secret_basic` only), with a warning when the configured one had to give way.
///
/// - A configured method the server lists is used as it is.
/// - A configured secret method the server does not list gives way to the other secret
///   method when the server lists that one (HTTP Basic and form body carry the same secret);
///   otherwise, and for a configured `none`, the error names what the server supports. This is
///   decided before registering, so a user is never sent through the browser for a client
///   the token endpoint will refuse.
/// - Without a configured method: a user client is public (`none`) where the server allows
///   it; a machine client, or a user client at a server that wants a secret, uses
///   `client_secret_post` where listed, else `client_secret_basic` (EDGE-40).
pub fn negotiate_auth_method(
    config: &ClientConfig,
    server: &AuthServer,
) -> Result<(AuthMethod, Option<String>), Error> {
    use AuthMethod::{ClientSecretBasic, ClientSecretPost};
    let listed = |method: AuthMethod| server.supports_auth_method(method);
    let supported = || {
        server
            .token_endpoint_auth_methods
            .clone()
            .unwrap_or_else(|| vec![ClientSecretBasic.as_str().into()])
    };
    match config.auth_method {
        Some(method) if listed(method) => Ok((method, None)),
        Some(method @ (ClientSecretBasic | ClientSecretPost)) => {
            let other = if method == ClientSecretBasic {
                ClientSecretPost
            } else {
                ClientSecretBasic
            };
            if !listed(other) {
                return Err(Error::AuthMethodUnsupported {
                    configured: method.as_str().into(),
                    supported: supported(),
                });
            }
            Ok((
                other,
                Some(format!(
                    "the authorization server does not support `{}`; using `{}`, which sends the same secret another way",
                    method.as_str(),
                    other.as_str()
                )),
            ))
        }
        Some(method) => Err(Error::AuthMethodUnsupported {
            configured: method.as_str().into(),
            supported: supported(),
        }),
        None => {
            let public = config.grant == Grant::AuthorizationCode && listed(AuthMethod::None);
            let choice = [ClientSecretPost, ClientSecretBasic]
                .into_iter()
                .find(|m| listed(*m));
            match (public, choice) {
                (true, _) => Ok((AuthMethod::None, None)),
                (false, Some(method)) => Ok((method, None)),
                (false, None) => Err(Error::AuthMethodUnsupported {
                    configured: "none, client_secret_post or client_secret_basic".into(),
                    supported: supported(),
                }),
            }
        }
    }
}

/// The RFC 7591 metadata the client asks for (DCR-1, DCR-3, DCR-5, DCR-6, DCR-8, DCR-9,
/// DCR-10, MCP26-5, MCP26-7). `device_grant`: the server offers the device authorization
/// grant, so the client registers for it too (RFC 8628 §3.4): a client registered from a
/// desktop can then log in from an SSH session without registering again.
pub fn registration_metadata(
    config: &ClientConfig,
    method: AuthMethod,
    device_grant: bool,
) -> Value {
    let mut body = Map::new();
    body.insert("client_name".into(), json!(config.client_name));
    match config.grant {
        Grant::AuthorizationCode => {
            body.insert("redirect_uris".into(), json!([config.redirect_uri]));
            let mut grants = vec!["authorization_code", "refresh_token"];
            if device_grant {
                grants.push(crate::device::DEVICE_CODE_GRANT);
            }
            body.insert("grant_types".into(), json!(grants));
            body.insert("response_types".into(), json!(["code"]));
        }
        Grant::ClientCredentials => {
            body.insert("grant_types".into(), json!(["client_credentials"]));
            body.insert("response_types".into(), json!([]));
        }
        // Not reached today (the grant needs a pre-registered client), but a registration
        // for it would ask for nothing else.
        Grant::JwtBearer => {
            body.insert(
                "grant_types".into(),
                json!([crate::jwt_bearer::JWT_BEARER_GRANT]),
            );
            body.insert("response_types".into(), json!([]));
        }
    }
    body.insert("token_endpoint_auth_method".into(), json!(method.as_str()));
    if method == AuthMethod::PrivateKeyJwt {
        // RFC 7591 §2: the server checks the client's assertions with the key registered
        // here, either published by the embedder or sent inline.
        match (&config.jwks_uri, client_key(config)) {
            (Some(uri), _) => {
                body.insert("jwks_uri".into(), json!(uri));
            }
            (None, Some(key)) => body.extend(key_metadata(&key)),
            (None, None) => {}
        }
    }
    body.insert(
        "application_type".into(),
        json!(match config.application_type {
            ApplicationType::Native => "native",
            ApplicationType::Web => "web",
        }),
    );
    if !config.scopes.is_empty() {
        body.insert("scope".into(), json!(config.scopes.join(" ")));
    }
    for (name, value) in [
        ("software_id", &config.software_id),
        ("software_version", &config.software_version),
        ("software_statement", &config.software_statement),
    ] {
        if let Some(value) = value {
            body.insert(name.into(), json!(value));
        }
    }
    Value::Object(body)
}

/// The configured private key, when it can sign; [`ClientConfig::validate`] has already
/// refused one that cannot.
pub fn client_key(config: &ClientConfig) -> Option<crate::assertion::AssertionKey> {
    let pem = config.private_key.as_ref()?;
    crate::assertion::AssertionKey::from_pkcs8_pem(pem, config.private_key_id.as_deref()).ok()
}

/// Whether a registration made with an inline `jwks` still holds the configured key. `None`
/// when the question does not arise: another method, a `jwks_uri`, or no key.
pub fn registered_key_current(config: &ClientConfig, registration: &Registration) -> Option<bool> {
    if registration.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt
        || config.jwks_uri.is_some()
    {
        return None;
    }
    let key = client_key(config)?;
    // A server that does not echo the key set leaves nothing to compare with.
    let keys = registration
        .metadata
        .get("jwks")
        .and_then(|jwks| jwks.get("keys"))
        .and_then(Value::as_array)?;
    Some(keys.iter().any(|jwk| key.matches_jwk(jwk)))
}

/// `registration` with its registered key set replaced by the configured key's public half:
/// what an RFC 7592 update sends to rotate the key (RFC 7592 §2.2 replaces every member).
pub fn with_configured_key(config: &ClientConfig, registration: &Registration) -> Registration {
    let mut updated = registration.clone();
    if let Some(key) = client_key(config) {
        updated.metadata.extend(key_metadata(&key));
    }
    updated
}

/// The registration metadata that names `key`: its public half as the client's key set, and
/// the algorithm its assertions are signed with.
fn key_metadata(key: &crate::assertion::AssertionKey) -> [(String, Value); 2] {
    [
        ("jwks".into(), json!({ "keys": [key.public_jwk()] })),
        ("token_endpoint_auth_signing_alg".into(), json!(key.alg())),
    ]
}

/// The registration request: a JSON POST, with the initial access token as a bearer token
/// when one is configured (DCR-1, DCR-11, MGMT-22).
pub fn registration_request(
    config: &ClientConfig,
    method: AuthMethod,
    endpoint: &str,
    device_grant: bool,
) -> Result<http::Request<Vec<u8>>, Error> {
    json_request(
        http::Method::POST,
        endpoint,
        &registration_metadata(config, method, device_grant),
        config.initial_access_token.as_ref(),
    )
    .map_err(Error::Protocol)
}

/// Reads a registration answer (RFC 7591 §3.2) into a [`Registration`], with warnings for
/// what the server got wrong but the client can live with.
///
/// Refused: a non-2xx status (the OAuth error is kept, DCR-19, DCR-20), a body that is not a
/// JSON object, no `client_id` (DCR-13, EDGE-6), an auth method the client cannot perform, a
/// secret method without a secret, or a registration that lacks the redirect URI the client
/// will use (DCR-16).
pub fn parse_registration(
    config: &ClientConfig,
    endpoint: &str,
    status: u16,
    body: &[u8],
) -> Result<(Registration, Vec<String>), Error> {
    if !(200..300).contains(&status) {
        return Err(Error::RegistrationRejected {
            endpoint: sanitize(endpoint),
            cause: server_error(status, body),
        });
    }
    let mut warnings = Vec::new();
    if status != 201 {
        warnings.push(format!(
            "the registration endpoint answered {status} instead of 201"
        ));
    }
    let answer = json_object(body).map_err(|e| Error::BadAnswer(format!("registration: {e}")))?;
    let client_id = match string(&answer, "client_id") {
        Some(id) if !id.is_empty() => id,
        _ => {
            return Err(Error::BadAnswer(
                "the registration answer has no client_id; nothing was stored".into(),
            ))
        }
    };
    let empty = Registration {
        client_id,
        client_secret: None,
        secret_expires: SecretExpiry::Never,
        registration_access_token: None,
        registration_client_uri: None,
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        redirect_uri: None,
        registration_endpoint: endpoint.to_string(),
        obtained_at: None,
        unproven: false,
        metadata: Map::new(),
    };
    let registration = adopt_answer(config, empty, answer, &mut warnings)?;
    Ok((registration, warnings))
}

/// Folds a registration or RFC 7592 answer into `registration`: each credential present in
/// the answer replaces the stored one and each absent one is kept (MGMT-5, EDGE-8), and the
/// answer becomes the registered metadata (DCR-16, DCR-17, MGMT-11).
pub fn adopt_answer(
    config: &ClientConfig,
    mut registration: Registration,
    mut answer: Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Registration, Error> {
    let method_name = string(&answer, "token_endpoint_auth_method");
    let method = match method_name.as_deref() {
        None => AuthMethod::ClientSecretBasic, // DCR-5
        Some(name) => AuthMethod::parse(name).ok_or_else(|| {
            Error::BadAnswer(format!(
                "the server registered token_endpoint_auth_method `{name}`, which Tenure cannot use; choose a supported one with the setting `auth_method`"
            ))
        })?,
    };
    let new_secret = string(&answer, "client_secret").map(crate::Secret::new);
    let had_secret = registration.client_secret.is_some();
    let secret_replaced = new_secret.is_some();
    if let Some(secret) = new_secret {
        registration.client_secret = Some(secret);
    } else if !method.uses_secret() {
        registration.client_secret = None;
    } else if had_secret {
        warnings.push("the answer carried no client_secret; keeping the stored one".into());
    }
    registration.secret_expires = match integer(&answer, "client_secret_expires_at") {
        _ if registration.client_secret.is_none() => SecretExpiry::Never,
        Integer::Value(0) => SecretExpiry::Never,
        Integer::Value(at) => SecretExpiry::At(Timestamp::from_unix_seconds(at)),
        Integer::Absent if !secret_replaced => registration.secret_expires,
        Integer::Absent => {
            warnings.push(
                "a client_secret came without client_secret_expires_at; its expiry is unknown"
                    .into(),
            );
            SecretExpiry::Unknown
        }
        Integer::Invalid => {
            warnings.push(
                "client_secret_expires_at is not a usable number; its expiry is unknown".into(),
            );
            SecretExpiry::Unknown
        }
    };
    if method.uses_secret() && registration.client_secret.is_none() {
        return Err(Error::BadAnswer(format!(
            "the server registered `{}` but issued no client_secret",
            method.as_str()
        )));
    }
    registration.token_endpoint_auth_method = method;

    if let Some(token) = string(&answer, "registration_access_token") {
        registration.registration_access_token = Some(crate::Secret::new(token));
    }
    if let Some(uri) = string(&answer, "registration_client_uri") {
        match check_registration_client_uri(&uri, &registration.registration_endpoint) {
            Ok(()) => registration.registration_client_uri = Some(uri),
            Err(reason) => {
                // The token must never travel to such a URI; management ends here (EDGE-15).
                warnings.push(format!(
                    "refused the registration client URI: {reason}; registration management is disabled"
                ));
                registration.registration_client_uri = None;
                registration.registration_access_token = None;
            }
        }
    }
    if let (false, Some(at)) = (registration.manageable(), registration.secret_expires.at()) {
        warnings.push(format!(
            "the server offers no registration management (RFC 7592), so the client secret, which expires at {at}, cannot be renewed; a new client is registered when it is needed"
        ));
    }

    if config.grant == Grant::AuthorizationCode {
        let registered = strings(&answer, "redirect_uris").unwrap_or_default();
        if !registered.contains(&config.redirect_uri) {
            return Err(Error::BadAnswer(format!(
                "the server did not register the redirect URI {}",
                config.redirect_uri
            )));
        }
        registration.redirect_uri = Some(config.redirect_uri.clone());
    }
    answer.remove("client_secret");
    answer.remove("registration_access_token");
    registration.metadata = answer;
    Ok(registration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use serde_json::json;

    fn server() -> AuthServer {
        AuthServer {
            issuer: "https://as.example.com".into(),
            authorization_endpoint: Some("https://as.example.com/authorize".into()),
            token_endpoint: "https://as.example.com/token".into(),
            registration_endpoint: Some("https://as.example.com/register".into()),
            device_authorization_endpoint: None,
            cimd_supported: false,
            iss_parameter_supported: true,
            pkce_s256: true,
            token_endpoint_auth_methods: Some(vec!["none".into(), "client_secret_post".into()]),
            resource_scopes: None,
            resource: None,
            dpop_es256: false,
        }
    }

    fn config() -> ClientConfig {
        ClientConfig::for_issuer("demo", "https://as.example.com")
    }

    const ENDPOINT: &str = "https://as.example.com/register";

    fn parse(answer: Value) -> Result<(Registration, Vec<String>), Error> {
        parse_registration(&config(), ENDPOINT, 201, answer.to_string().as_bytes())
    }

    fn confidential() -> Value {
        json!({"client_id": "c1", "client_secret": "s1", "client_secret_expires_at": 2_000_000_000,
               "registration_access_token": "rat1",
               "registration_client_uri": "https://as.example.com/register/c1",
               "token_endpoint_auth_method": "client_secret_post",
               "redirect_uris": ["http://127.0.0.1:8976/callback"],
               "client_name#fr": "Démo", "vendor_extension": {"x": 1}})
    }

    #[test]
    fn priority_pre_registered_cimd_dcr_mcp_7() {
        let mut config = config();
        let mut server = server();
        assert_eq!(choose_method(&config, &server, false), Some(Method::Dcr));
        config.cimd_url = Some("https://app.example.com/client.json".into());
        assert_eq!(
            choose_method(&config, &server, false),
            Some(Method::Dcr),
            "CIMD-9: flag absent"
        );
        server.cimd_supported = true;
        assert_eq!(choose_method(&config, &server, false), Some(Method::Cimd));
        assert_eq!(
            choose_method(&config, &server, true),
            Some(Method::Dcr),
            "INV-3"
        );
        config.client_id = Some("pre".into());
        assert_eq!(
            choose_method(&config, &server, false),
            Some(Method::PreRegistered)
        );
        let mut bare = server.clone();
        bare.registration_endpoint = None;
        bare.cimd_supported = false;
        assert_eq!(
            choose_method(
                &ClientConfig::for_issuer("x", "https://as.example.com"),
                &bare,
                false
            ),
            None
        );
    }

    #[test]
    fn request_body_dcr_1_3_5_6_8_mcp26_5() {
        let mut config = config();
        config.scopes = vec!["read".into(), "write".into()];
        config.software_id = Some("tenure".into());
        let (method, warning) = negotiate_auth_method(&config, &server()).unwrap();
        assert_eq!(warning, None);
        let body = registration_metadata(&config, method, false);
        assert_eq!(
            body["redirect_uris"],
            json!(["http://127.0.0.1:8976/callback"])
        );
        assert_eq!(
            body["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(body["response_types"], json!(["code"]));
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert_eq!(body["application_type"], "native");
        assert_eq!(body["scope"], "read write");
        assert_eq!(body["software_id"], "tenure");
        assert!(body["client_name"].is_string());
        let request = registration_request(&config, method, ENDPOINT, false).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.headers()["content-type"], "application/json");
        assert!(request.headers().get("authorization").is_none());
    }

    #[test]
    fn auth_method_is_negotiated_against_the_server_list_disc_10() {
        let mut config = config();
        // The MCP TypeScript SDK lists only `client_secret_post` and `none`.
        let mut ts = server();
        ts.token_endpoint_auth_methods = Some(vec!["client_secret_post".into(), "none".into()]);
        config.auth_method = Some(AuthMethod::ClientSecretBasic);
        let (method, warning) = negotiate_auth_method(&config, &ts).unwrap();
        assert_eq!(method, AuthMethod::ClientSecretPost);
        assert!(warning.unwrap().contains("client_secret_basic"));
        // A listed preference is honoured as it is.
        config.auth_method = Some(AuthMethod::ClientSecretPost);
        assert_eq!(
            negotiate_auth_method(&config, &ts).unwrap(),
            (AuthMethod::ClientSecretPost, None)
        );
        // Nothing of the same kind: a clear error, before anything is sent.
        let mut basic_only = server();
        basic_only.token_endpoint_auth_methods = None;
        config.auth_method = Some(AuthMethod::None);
        let error = negotiate_auth_method(&config, &basic_only).unwrap_err();
        assert!(
            matches!(error, Error::AuthMethodUnsupported { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("client_secret_basic"), "{error}");
        // The MCP Python SDK lists only the secret methods: a user client takes a secret.
        let mut python = server();
        python.token_endpoint_auth_methods = Some(vec![
            "client_secret_post".into(),
            "client_secret_basic".into(),
        ]);
        config.auth_method = None;
        assert_eq!(
            negotiate_auth_method(&config, &python).unwrap(),
            (AuthMethod::ClientSecretPost, None)
        );
        assert_eq!(
            negotiate_auth_method(&config, &ts).unwrap(),
            (AuthMethod::None, None)
        );
        let mut odd = server();
        odd.token_endpoint_auth_methods = Some(vec!["private_key_jwt".into()]);
        assert!(negotiate_auth_method(&config, &odd).is_err());
    }

    #[test]
    fn machine_client_registers_client_credentials_only() {
        let mut config = config();
        config.grant = Grant::ClientCredentials;
        let (method, _) = negotiate_auth_method(&config, &server()).unwrap();
        let body = registration_metadata(&config, method, false);
        assert_eq!(body["grant_types"], json!(["client_credentials"]));
        assert_eq!(body["response_types"], json!([]));
        assert!(body.get("redirect_uris").is_none());
        assert_eq!(body["token_endpoint_auth_method"], "client_secret_post");
    }

    #[test]
    fn initial_access_token_is_a_bearer_dcr_11() {
        let mut config = config();
        config.initial_access_token = Some(crate::Secret::new("iat"));
        let request = registration_request(&config, AuthMethod::None, ENDPOINT, false).unwrap();
        assert_eq!(request.headers()["authorization"], "Bearer iat");
    }

    #[test]
    fn whole_answer_is_kept_without_secrets_dcr_17() {
        let (registration, warnings) = parse(confidential()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(registration.client_id, "c1");
        assert_eq!(registration.client_secret.as_ref().unwrap().expose(), "s1");
        assert_eq!(
            registration.secret_expires,
            SecretExpiry::At(Timestamp::from_unix_seconds(2_000_000_000))
        );
        assert!(registration.manageable());
        assert_eq!(registration.metadata["client_name#fr"], "Démo");
        assert_eq!(registration.metadata["vendor_extension"], json!({"x": 1}));
        assert!(!registration.metadata.contains_key("client_secret"));
        assert!(!registration
            .metadata
            .contains_key("registration_access_token"));
    }

    #[test]
    fn zero_expiry_means_never_dcr_14_edge_1() {
        let mut answer = confidential();
        answer["client_secret_expires_at"] = json!(0);
        assert_eq!(parse(answer).unwrap().0.secret_expires, SecretExpiry::Never);
    }

    #[test]
    fn missing_or_odd_expiry_is_unknown_edge_3_edge_4() {
        let mut answer = confidential();
        answer
            .as_object_mut()
            .unwrap()
            .remove("client_secret_expires_at");
        let (registration, warnings) = parse(answer).unwrap();
        assert_eq!(registration.secret_expires, SecretExpiry::Unknown);
        assert_eq!(warnings.len(), 1);
        let mut answer = confidential();
        answer["client_secret_expires_at"] = json!("1.7e9");
        assert_eq!(
            parse(answer).unwrap().0.secret_expires,
            SecretExpiry::At(Timestamp::from_unix_seconds(1_700_000_000))
        );
        let mut answer = confidential();
        answer["client_secret_expires_at"] = json!(-5);
        assert_eq!(
            parse(answer).unwrap().0.secret_expires,
            SecretExpiry::Unknown
        );
    }

    #[test]
    fn no_client_id_is_refused_dcr_13_edge_6() {
        let mut answer = confidential();
        answer.as_object_mut().unwrap().remove("client_id");
        assert!(matches!(parse(answer), Err(Error::BadAnswer(_))));
        let mut answer = confidential();
        answer["client_id"] = json!(42);
        assert!(matches!(parse(answer), Err(Error::BadAnswer(_))));
    }

    #[test]
    fn missing_auth_method_means_basic_dcr_5() {
        let mut answer = confidential();
        answer
            .as_object_mut()
            .unwrap()
            .remove("token_endpoint_auth_method");
        assert_eq!(
            parse(answer).unwrap().0.token_endpoint_auth_method,
            AuthMethod::ClientSecretBasic
        );
    }

    #[test]
    fn half_management_is_none_edge_7_mgmt_21() {
        let mut answer = confidential();
        answer
            .as_object_mut()
            .unwrap()
            .remove("registration_access_token");
        let (registration, warnings) = parse(answer).unwrap();
        assert!(!registration.manageable());
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn foreign_registration_client_uri_is_refused_edge_15() {
        let mut answer = confidential();
        answer["registration_client_uri"] = json!("https://elsewhere.example.net/register/c1");
        let (registration, _) = parse(answer).unwrap();
        assert_eq!(registration.registration_client_uri, None);
        assert_eq!(registration.registration_access_token, None);
    }

    #[test]
    fn missing_redirect_uri_is_refused_dcr_16() {
        let mut answer = confidential();
        answer["redirect_uris"] = json!(["http://127.0.0.1:1/other"]);
        assert!(matches!(parse(answer), Err(Error::BadAnswer(_))));
    }

    #[test]
    fn errors_keep_the_oauth_code_dcr_19_dcr_20() {
        let error = parse_registration(
            &config(),
            ENDPOINT,
            400,
            br#"{"error":"invalid_redirect_uri","error_description":"no"}"#,
        )
        .unwrap_err();
        match error {
            Error::RegistrationRejected { cause, .. } => assert!(cause.is("invalid_redirect_uri")),
            other => panic!("unexpected {other:?}"),
        }
        let unauthorized = parse_registration(&config(), ENDPOINT, 401, b"").unwrap_err();
        assert!(unauthorized.is_registration_failure());
    }

    #[test]
    fn status_200_is_accepted_with_a_warning_edge_21() {
        let (_, warnings) = parse_registration(
            &config(),
            ENDPOINT,
            200,
            confidential().to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn public_client_gets_no_secret_and_never_expires() {
        let answer = json!({"client_id": "pub", "token_endpoint_auth_method": "none",
                            "redirect_uris": ["http://127.0.0.1:8976/callback"],
                            "registration_access_token": "r", "registration_client_uri": "https://as.example.com/register/pub"});
        let (registration, _) = parse(answer).unwrap();
        assert_eq!(registration.client_secret, None);
        assert_eq!(registration.secret_expires, SecretExpiry::Never);
    }
}
