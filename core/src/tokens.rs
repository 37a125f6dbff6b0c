//! The token endpoint: client authentication, the three grants, and reading answers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use crate::error::ServerError;
use crate::record::Tokens;
use crate::secret::Secret;
use crate::time::{Duration, Timestamp};
use crate::wire::{form, integer, json_object, server_error, string, Integer, FORM, JSON};

/// How the client proves who it is at the token endpoint, as registered (OAUTH-7).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum ClientAuth<'a> {
    /// A public client: `client_id` in the body.
    None {
        /// The client id.
        client_id: &'a str,
    },
    /// HTTP Basic over the form-encoded id and secret (OAUTH-8, EDGE-40).
    Basic {
        /// The client id.
        client_id: &'a str,
        /// The client secret.
        secret: &'a Secret,
    },
    /// `client_id` and `client_secret` in the body.
    Post {
        /// The client id.
        client_id: &'a str,
        /// The client secret.
        secret: &'a Secret,
    },
    /// A signed JWT in `client_assertion` (`private_key_jwt`, RFC 7523 §2.2).
    Assertion {
        /// The client id.
        client_id: &'a str,
        /// The signed assertion, made for this one request.
        assertion: &'a Secret,
    },
}

/// Which grant a token request uses.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum GrantRequest<'a> {
    /// Redeem an authorization code with its PKCE verifier (OAUTH-6, PKCE-5).
    Code {
        /// The code from the callback.
        code: &'a Secret,
        /// The verifier whose challenge was sent.
        verifier: &'a Secret,
        /// The redirect URI of the authorization request, identical.
        redirect_uri: &'a str,
    },
    /// Refresh (RT-1).
    Refresh {
        /// The current refresh token.
        refresh_token: &'a Secret,
    },
    /// A machine client's own credentials.
    ClientCredentials {
        /// Scopes to request.
        scopes: &'a [String],
    },
    /// Poll for the tokens of a device authorization (RFC 8628 §3.4).
    DeviceCode {
        /// The `device_code` of the device authorization answer.
        device_code: &'a Secret,
    },
    /// Present a JWT as the grant (RFC 7523 §2.1): a workload identity token or an ID-JAG.
    JwtBearer {
        /// The JWT, read or obtained for this one request.
        assertion: &'a Secret,
        /// Scopes to request.
        scopes: &'a [String],
    },
}

impl GrantRequest<'_> {
    /// The `grant_type` value.
    pub fn grant_type(&self) -> &'static str {
        match self {
            GrantRequest::Code { .. } => "authorization_code",
            GrantRequest::Refresh { .. } => "refresh_token",
            GrantRequest::ClientCredentials { .. } => "client_credentials",
            GrantRequest::DeviceCode { .. } => crate::device::DEVICE_CODE_GRANT,
            GrantRequest::JwtBearer { .. } => crate::jwt_bearer::JWT_BEARER_GRANT,
        }
    }
}

/// A grant request that owns its values, kept with a token request that carried a DPoP
/// proof so it can be sent once more with the server's nonce (RFC 9449 §8): by then the
/// code or refresh token it was made from is no longer at hand.
#[derive(Clone, Debug)]
pub(crate) enum OwnedGrant {
    Code {
        code: Secret,
        verifier: Secret,
        redirect_uri: String,
    },
    Refresh {
        refresh_token: Secret,
    },
    ClientCredentials {
        scopes: Vec<String>,
    },
    DeviceCode {
        device_code: Secret,
    },
    JwtBearer {
        assertion: Secret,
        scopes: Vec<String>,
    },
}

impl OwnedGrant {
    /// A copy of `grant`.
    pub(crate) fn of(grant: GrantRequest<'_>) -> Self {
        match grant {
            GrantRequest::Code {
                code,
                verifier,
                redirect_uri,
            } => OwnedGrant::Code {
                code: code.clone(),
                verifier: verifier.clone(),
                redirect_uri: redirect_uri.to_owned(),
            },
            GrantRequest::Refresh { refresh_token } => OwnedGrant::Refresh {
                refresh_token: refresh_token.clone(),
            },
            GrantRequest::ClientCredentials { scopes } => OwnedGrant::ClientCredentials {
                scopes: scopes.to_vec(),
            },
            GrantRequest::DeviceCode { device_code } => OwnedGrant::DeviceCode {
                device_code: device_code.clone(),
            },
            GrantRequest::JwtBearer { assertion, scopes } => OwnedGrant::JwtBearer {
                assertion: assertion.clone(),
                scopes: scopes.to_vec(),
            },
        }
    }

    /// The grant request it holds.
    pub(crate) fn request(&self) -> GrantRequest<'_> {
        match self {
            OwnedGrant::Code {
                code,
                verifier,
                redirect_uri,
            } => GrantRequest::Code {
                code,
                verifier,
                redirect_uri,
            },
            OwnedGrant::Refresh { refresh_token } => GrantRequest::Refresh { refresh_token },
            OwnedGrant::ClientCredentials { scopes } => GrantRequest::ClientCredentials { scopes },
            OwnedGrant::DeviceCode { device_code } => GrantRequest::DeviceCode { device_code },
            OwnedGrant::JwtBearer { assertion, scopes } => {
                GrantRequest::JwtBearer { assertion, scopes }
            }
        }
    }
}

/// The HTTP Basic credentials: each part form-urlencoded, then Base64 (RFC 6749 §2.3.1).
pub fn basic_credentials(client_id: &str, secret: &Secret) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret.expose()));
    format!("Basic {}", STANDARD.encode(pair))
}

/// A token request: a form POST with the grant's fields, the client authentication and, on
/// every grant, the resource (MCP-14, RT-10, RES-4).
pub fn token_request(
    endpoint: &str,
    auth: ClientAuth<'_>,
    grant: GrantRequest<'_>,
    resource: Option<&str>,
) -> Result<http::Request<Vec<u8>>, String> {
    let mut fields: Vec<(&str, &str)> = vec![("grant_type", grant.grant_type())];
    let joined_scopes;
    match grant {
        GrantRequest::Code {
            code,
            verifier,
            redirect_uri,
        } => {
            fields.push(("code", code.expose()));
            fields.push(("redirect_uri", redirect_uri));
            fields.push(("code_verifier", verifier.expose()));
        }
        GrantRequest::Refresh { refresh_token } => {
            fields.push(("refresh_token", refresh_token.expose()));
        }
        GrantRequest::JwtBearer { assertion, .. } => {
            fields.push(("assertion", assertion.expose()));
        }
        GrantRequest::ClientCredentials { .. } => {}
        GrantRequest::DeviceCode { device_code } => {
            fields.push(("device_code", device_code.expose()));
        }
    }
    // The grants without a user name their scopes in the token request itself.
    if let GrantRequest::ClientCredentials { scopes } | GrantRequest::JwtBearer { scopes, .. } =
        grant
    {
        if !scopes.is_empty() {
            joined_scopes = scopes.join(" ");
            fields.push(("scope", &joined_scopes));
        }
    }
    if let Some(resource) = resource {
        fields.push(("resource", resource));
    }
    authenticated_form(endpoint, auth, fields)
        .map_err(|e| format!("cannot build the token request: {e}"))
}

/// A form POST to an endpoint that authenticates the client the way the token endpoint
/// does (the token endpoint itself, and the device authorization endpoint, RFC 8628 §3.1).
pub(crate) fn authenticated_form<'a>(
    endpoint: &str,
    auth: ClientAuth<'a>,
    mut fields: Vec<(&'a str, &'a str)>,
) -> Result<http::Request<Vec<u8>>, http::Error> {
    let mut builder = http::Request::post(endpoint)
        .header(ACCEPT, JSON)
        .header(CONTENT_TYPE, FORM);
    match auth {
        ClientAuth::None { client_id } => fields.push(("client_id", client_id)),
        ClientAuth::Post { client_id, secret } => {
            fields.push(("client_id", client_id));
            fields.push(("client_secret", secret.expose()));
        }
        ClientAuth::Assertion {
            client_id,
            assertion,
        } => {
            // `client_id` is optional next to an assertion (RFC 7521 §4.2) but harmless, and
            // some servers look the client up by it before reading the assertion.
            fields.push(("client_id", client_id));
            fields.push((
                "client_assertion_type",
                crate::assertion::JWT_BEARER_ASSERTION_TYPE,
            ));
            fields.push(("client_assertion", assertion.expose()));
        }
        ClientAuth::Basic { client_id, secret } => {
            // The client id also goes in the body: RFC 6749 §3.2.1 lets a client name itself
            // there, and the MCP Python SDK's server refuses HTTP Basic without it.
            fields.push(("client_id", client_id));
            builder = builder.header(AUTHORIZATION, basic_credentials(client_id, secret));
        }
    }
    builder.body(form(&fields))
}

/// Why a token answer could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenFailure {
    /// The server refused (OAUTH-9); decisions are made on `error`, never on the status
    /// alone (an expired secret is 400 `invalid_client` at oidc-provider).
    Refused(ServerError),
    /// A 2xx that is not a usable token answer.
    BadAnswer(String),
}

/// The lifetime assumed for an access token whose answer has no usable `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The longest lifetime believed for an access token.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_hours(24 * 365);

/// Reads a token answer received at `now` (OAUTH-11, OAUTH-12, EDGE-29, EDGE-37, EDGE-38).
///
/// A refresh answer without a `refresh_token` keeps `previous_refresh` (RT-4, INV-10); a new
/// one replaces it (RT-3). `expires_in` counts from the local receive time; a missing or
/// unusable one gives `DEFAULT_TOKEN_LIFETIME`, and none is believed beyond
/// `MAX_TOKEN_LIFETIME`. The token type is Bearer, or DPoP when the request carried a
/// proof (`dpop_sent`, RFC 9449 §5); a server may answer a proof with a Bearer token.
pub fn parse_token_answer(
    status: u16,
    body: &[u8],
    now: Timestamp,
    previous_refresh: Option<&Secret>,
    dpop_sent: bool,
) -> Result<Tokens, TokenFailure> {
    if !(200..300).contains(&status) {
        return Err(TokenFailure::Refused(server_error(status, body)));
    }
    let answer = json_object(body).map_err(TokenFailure::BadAnswer)?;
    let access_token = string(&answer, "access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenFailure::BadAnswer("the token answer has no access_token".into()))?;
    let token_type = string(&answer, "token_type").unwrap_or_default();
    let dpop = crate::dpop::TokenScheme::of(&token_type) == crate::dpop::TokenScheme::Dpop;
    if dpop && !dpop_sent {
        return Err(TokenFailure::BadAnswer(
            "the token type is DPoP although the request carried no DPoP proof; the token is bound to no key of this client".into(),
        ));
    }
    if !dpop && !token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenFailure::BadAnswer(format!(
            "the token type `{}` is not supported; only Bearer and DPoP are",
            crate::wire::server_text(&token_type)
        )));
    }
    // A token without a usable lifetime is not trusted for ever: the client has no other way
    // to learn that it died. Absurd lifetimes are cut to a year.
    let seconds = match integer(&answer, "expires_in") {
        Integer::Value(seconds) => seconds.min(MAX_TOKEN_LIFETIME.as_millis() / 1000),
        Integer::Absent | Integer::Invalid => DEFAULT_TOKEN_LIFETIME.as_millis() / 1000,
    };
    let expires_at = Some(now + Duration::from_secs(seconds));
    let refresh_token = string(&answer, "refresh_token")
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .or_else(|| previous_refresh.cloned());
    Ok(Tokens {
        access_token: Secret::new(access_token),
        token_type,
        expires_at,
        refresh_token,
        scope: string(&answer, "scope"),
        issued_at: Some(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(fields: &[(String, String)], name: &str) -> Option<String> {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn basic_auth_form_encodes_before_base64_oauth_8_edge_40() {
        let secret = Secret::new("p:ss%wörd");
        let header = basic_credentials("id:1", &secret);
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "id%3A1:p%3Ass%25w%C3%B6rd"
        );
    }

    #[test]
    fn code_exchange_sends_verifier_redirect_and_resource_oauth_6_pkce_5_mcp_14() {
        let code = Secret::new("the-code");
        let verifier = Secret::new("the-verifier");
        let request = token_request(
            "https://as.example.com/token",
            ClientAuth::None { client_id: "pub" },
            GrantRequest::Code {
                code: &code,
                verifier: &verifier,
                redirect_uri: "http://127.0.0.1:1/callback",
            },
            Some("https://mcp.example.com/mcp"),
        )
        .unwrap();
        let fields = crate::wire::form_fields(&request);
        assert_eq!(
            field(&fields, "grant_type").as_deref(),
            Some("authorization_code")
        );
        assert_eq!(
            field(&fields, "code_verifier").as_deref(),
            Some("the-verifier")
        );
        assert_eq!(
            field(&fields, "redirect_uri").as_deref(),
            Some("http://127.0.0.1:1/callback")
        );
        assert_eq!(
            field(&fields, "resource").as_deref(),
            Some("https://mcp.example.com/mcp")
        );
        assert_eq!(field(&fields, "client_id").as_deref(), Some("pub"));
        assert_eq!(field(&fields, "client_secret"), None);
        assert_eq!(request.headers()["content-type"], FORM);
    }

    #[test]
    fn post_and_basic_place_the_secret_as_registered_oauth_7() {
        let secret = Secret::new("s");
        let grant = GrantRequest::ClientCredentials { scopes: &[] };
        let post = token_request(
            "https://a/t",
            ClientAuth::Post {
                client_id: "c",
                secret: &secret,
            },
            grant,
            None,
        )
        .unwrap();
        assert_eq!(
            field(&crate::wire::form_fields(&post), "client_secret").as_deref(),
            Some("s")
        );
        assert!(post.headers().get("authorization").is_none());
        let basic = token_request(
            "https://a/t",
            ClientAuth::Basic {
                client_id: "c",
                secret: &secret,
            },
            grant,
            None,
        )
        .unwrap();
        assert_eq!(
            field(&crate::wire::form_fields(&basic), "client_secret"),
            None
        );
        // The id also in the body, for servers that want it there (the MCP Python SDK).
        assert_eq!(
            field(&crate::wire::form_fields(&basic), "client_id").as_deref(),
            Some("c")
        );
        assert!(basic.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
    }

    #[test]
    fn an_assertion_goes_in_the_body_with_its_type_rfc_7523_2_2() {
        let assertion = Secret::new("header.payload.signature");
        let request = token_request(
            "https://a/t",
            ClientAuth::Assertion {
                client_id: "c",
                assertion: &assertion,
            },
            GrantRequest::ClientCredentials { scopes: &[] },
            None,
        )
        .unwrap();
        let fields = crate::wire::form_fields(&request);
        assert_eq!(
            field(&fields, "client_assertion_type").as_deref(),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert_eq!(
            field(&fields, "client_assertion").as_deref(),
            Some("header.payload.signature")
        );
        assert_eq!(field(&fields, "client_id").as_deref(), Some("c"));
        assert_eq!(field(&fields, "client_secret"), None);
        assert!(request.headers().get("authorization").is_none());
    }

    #[test]
    fn refresh_sends_resource_too_rt_1_rt_10() {
        let rt = Secret::new("rt");
        let request = token_request(
            "https://a/t",
            ClientAuth::None { client_id: "c" },
            GrantRequest::Refresh { refresh_token: &rt },
            Some("https://r.example"),
        )
        .unwrap();
        let fields = crate::wire::form_fields(&request);
        assert_eq!(
            field(&fields, "grant_type").as_deref(),
            Some("refresh_token")
        );
        assert_eq!(field(&fields, "refresh_token").as_deref(), Some("rt"));
        assert_eq!(
            field(&fields, "resource").as_deref(),
            Some("https://r.example")
        );
    }

    const NOW: Timestamp = Timestamp::from_unix_seconds(1_000);

    #[test]
    fn answer_without_refresh_token_keeps_the_old_one_rt_4_inv_10() {
        let old = Secret::new("old-rt");
        let tokens = parse_token_answer(
            200,
            br#"{"access_token":"a","token_type":"bearer","expires_in":"60"}"#,
            NOW,
            Some(&old),
            false,
        )
        .unwrap();
        assert_eq!(tokens.refresh_token, Some(old.clone()));
        assert_eq!(tokens.expires_at, Some(NOW + Duration::from_secs(60)));
        assert_eq!(tokens.issued_at, Some(NOW));
        // A tenth of a minute's lifetime and a second as the margin: handed out for 53 s.
        assert_eq!(tokens.margin(), Duration::from_secs(7));
        assert!(tokens.access_token_valid(NOW + Duration::from_secs(52)));
        assert!(!tokens.access_token_valid(NOW + Duration::from_secs(53)));
        // Jitter stretches the margin by at most half of it.
        assert!(!tokens.access_token_valid_with(NOW + Duration::from_millis(49_500), 1000));
        assert!(tokens.access_token_valid_with(NOW + Duration::from_millis(49_000), 1000));
        let rotated = parse_token_answer(
            200,
            br#"{"access_token":"a","token_type":"Bearer","refresh_token":"new-rt"}"#,
            NOW,
            Some(&old),
            false,
        )
        .unwrap();
        assert_eq!(rotated.refresh_token.unwrap().expose(), "new-rt");
        assert_eq!(
            rotated.expires_at,
            Some(NOW + DEFAULT_TOKEN_LIFETIME),
            "EDGE-37: an unknown lifetime is a bounded default"
        );
        for (expires_in, lifetime) in [
            (json!(1e19), DEFAULT_TOKEN_LIFETIME),
            (json!("soon"), DEFAULT_TOKEN_LIFETIME),
            (json!(-5), DEFAULT_TOKEN_LIFETIME),
            (json!(i64::MAX), MAX_TOKEN_LIFETIME),
        ] {
            let body =
                json!({"access_token": "a", "token_type": "Bearer", "expires_in": expires_in});
            let tokens =
                parse_token_answer(200, body.to_string().as_bytes(), NOW, None, false).unwrap();
            assert_eq!(tokens.expires_at, Some(NOW + lifetime), "{body}");
        }
    }

    #[test]
    fn a_dpop_token_is_taken_only_after_a_proof_and_bearer_is_fine_too_rfc_9449_5() {
        let dpop = br#"{"access_token":"a","token_type":"dpop","expires_in":60}"#;
        let tokens = parse_token_answer(200, dpop, NOW, None, true).unwrap();
        assert_eq!(tokens.scheme(), crate::dpop::TokenScheme::Dpop);
        let bearer = br#"{"access_token":"a","token_type":"Bearer"}"#;
        let tokens = parse_token_answer(200, bearer, NOW, None, true).unwrap();
        assert_eq!(tokens.scheme(), crate::dpop::TokenScheme::Bearer);
    }

    #[test]
    fn unusable_answers_are_refused_oauth_11_12() {
        assert!(matches!(
            parse_token_answer(200, br#"{"token_type":"Bearer"}"#, NOW, None, false),
            Err(TokenFailure::BadAnswer(_))
        ));
        // DPoP only after a proof; other types never.
        for (token_type, dpop_sent) in [("DPoP", false), ("MAC", true)] {
            let body = json!({"access_token": "a", "token_type": token_type}).to_string();
            assert!(matches!(
                parse_token_answer(200, body.as_bytes(), NOW, None, dpop_sent),
                Err(TokenFailure::BadAnswer(_))
            ));
        }
        assert!(matches!(
            parse_token_answer(200, b"<html>", NOW, None, false),
            Err(TokenFailure::BadAnswer(_))
        ));
        match parse_token_answer(400, br#"{"error":"invalid_client"}"#, NOW, None, false) {
            Err(TokenFailure::Refused(e)) => assert!(e.is("invalid_client")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
