//! Authorization code + PKCE: the browser step and the callback that ends it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::ServerError;
use crate::secret::Secret;

/// `BASE64URL(SHA-256(ASCII(verifier)))` without padding: the S256 challenge (PKCE-3).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What one authorization request needs in its URL.
#[derive(Clone, Debug)]
pub struct AuthorizationParams<'a> {
    /// The authorization endpoint.
    pub endpoint: &'a str,
    /// The client id in use.
    pub client_id: &'a str,
    /// The redirect URI, as registered.
    pub redirect_uri: &'a str,
    /// Scopes to request; omitted when empty (MCP-10).
    pub scopes: &'a [String],
    /// The one-time `state` (OAUTH-3, NAT-6).
    pub state: &'a str,
    /// The S256 challenge of this request's verifier.
    pub code_challenge: &'a str,
    /// The RFC 8707 resource, when there is one (MCP-14, RES-4).
    pub resource: Option<&'a str>,
}

/// The URL to open in the browser: `response_type=code`, PKCE S256 always (PKCE-4, PKCE-6),
/// `state`, the scopes and the resource, added to whatever query the endpoint already has.
pub fn authorization_url(params: &AuthorizationParams<'_>) -> Result<String, String> {
    let mut url = Url::parse(params.endpoint)
        .map_err(|e| format!("the authorization endpoint is not a URL ({e})"))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", params.client_id)
            .append_pair("redirect_uri", params.redirect_uri)
            .append_pair("state", params.state)
            .append_pair("code_challenge", params.code_challenge)
            .append_pair("code_challenge_method", "S256");
        if !params.scopes.is_empty() {
            query.append_pair("scope", &params.scopes.join(" "));
        }
        if let Some(resource) = params.resource {
            query.append_pair("resource", resource);
        }
    }
    Ok(url.to_string())
}

/// What a callback that passed every check carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackResult {
    /// The authorization code.
    Code(Secret),
    /// An authorization error redirect (OAUTH-1).
    Error(ServerError),
}

/// What the pending authorization request expects of its callback.
#[derive(Clone, Debug)]
pub struct CallbackExpectation<'a> {
    /// The `state` that was sent.
    pub state: &'a str,
    /// The issuer the request was sent to (MCP26-2).
    pub issuer: &'a str,
    /// Whether the server promised `iss` (ISS-2).
    pub iss_required: bool,
}

/// Checks a callback's query. An `Err` means the callback must be ignored entirely: not
/// acted on and its `error` not shown (EDGE-35, MCP26-2). The reason names no secret.
///
/// Rules: no repeated parameters and not both `code` and `error`; `state` equal to the one
/// sent (OAUTH-3, INV-11); `iss`, when present, equal to the issuer by plain string
/// comparison, and present when the server promised it (ISS-1, ISS-2).
pub fn check_callback(
    query: &str,
    expected: &CallbackExpectation<'_>,
) -> Result<CallbackResult, String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if pairs.iter().any(|(seen, _)| *seen == name) {
            return Err(format!("the callback repeats the parameter `{name}`"));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    match get("state") {
        Some(state) if state == expected.state => {}
        Some(_) => return Err("the callback's state does not match the pending login".into()),
        None => return Err("the callback has no state".into()),
    }
    match get("iss") {
        Some(iss) if iss == expected.issuer => {}
        Some(_) => return Err("the callback's iss names another authorization server".into()),
        None if expected.iss_required => {
            return Err("the callback lacks iss although the server promised it".into())
        }
        None => {}
    }
    match (get("code"), get("error")) {
        (Some(_), Some(_)) => Err("the callback carries both code and error".into()),
        (Some(code), None) if !code.is_empty() => Ok(CallbackResult::Code(Secret::new(code))),
        (None, Some(error)) => Ok(CallbackResult::Error(ServerError {
            status: 302,
            code: Some(error.to_string()),
            description: get("error_description").map(str::to_owned),
        })),
        _ => Err("the callback carries neither code nor error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_test_vector_pkce_9() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    fn params<'a>(scopes: &'a [String]) -> AuthorizationParams<'a> {
        AuthorizationParams {
            endpoint: "https://as.example.com/authorize?tenant=1",
            client_id: "https://app.example.com/client.json",
            redirect_uri: "http://127.0.0.1:8976/callback",
            scopes,
            state: "st",
            code_challenge: "ch",
            resource: Some("https://mcp.example.com/mcp"),
        }
    }

    #[test]
    fn url_carries_pkce_s256_state_and_resource_pkce_4_mcp_14() {
        let scopes = vec!["read".to_string(), "write".to_string()];
        let url = Url::parse(&authorization_url(&params(&scopes)).unwrap()).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("tenant"), Some("1"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("code_challenge"), Some("ch"));
        assert_eq!(get("state"), Some("st"));
        assert_eq!(get("scope"), Some("read write"));
        assert_eq!(get("resource"), Some("https://mcp.example.com/mcp"));
        assert_eq!(
            get("client_id"),
            Some("https://app.example.com/client.json")
        );
    }

    #[test]
    fn no_scope_parameter_without_scopes_mcp_10() {
        let url = authorization_url(&params(&[])).unwrap();
        assert!(!url.contains("scope="));
    }

    const ISSUER: &str = "https://as.example.com";

    fn expect(iss_required: bool) -> CallbackExpectation<'static> {
        CallbackExpectation {
            state: "s1",
            issuer: ISSUER,
            iss_required,
        }
    }

    #[test]
    fn good_callback_yields_the_code() {
        let result = check_callback(
            "code=abc&state=s1&iss=https%3A%2F%2Fas.example.com",
            &expect(true),
        );
        assert_eq!(result, Ok(CallbackResult::Code(Secret::new("abc"))));
    }

    #[test]
    fn wrong_or_missing_state_is_ignored_inv_11_oauth_3() {
        assert!(check_callback("code=abc&state=other", &expect(false)).is_err());
        assert!(check_callback("code=abc", &expect(false)).is_err());
        assert!(check_callback("error=access_denied&state=evil", &expect(false)).is_err());
    }

    #[test]
    fn iss_rules_iss_1_iss_2_mcp26_2() {
        assert!(check_callback("code=a&state=s1", &expect(true)).is_err());
        assert!(check_callback("code=a&state=s1", &expect(false)).is_ok());
        assert!(check_callback(
            "code=a&state=s1&iss=https%3A%2F%2Fas.example.com%2F",
            &expect(false)
        )
        .is_err());
        assert!(check_callback(
            "code=a&state=s1&iss=https%3A%2F%2FAS.example.com",
            &expect(false)
        )
        .is_err());
        assert!(check_callback(
            "error=invalid_client&state=s1&iss=https%3A%2F%2Fevil.example",
            &expect(false)
        )
        .is_err());
    }

    #[test]
    fn malformed_callbacks_are_ignored_edge_35() {
        assert!(check_callback("code=a&code=b&state=s1", &expect(false)).is_err());
        assert!(check_callback("code=a&error=x&state=s1", &expect(false)).is_err());
        assert!(check_callback("state=s1", &expect(false)).is_err());
        assert!(check_callback("code=&state=s1", &expect(false)).is_err());
        assert!(check_callback("%%%", &expect(false)).is_err());
    }

    #[test]
    fn error_redirect_is_structured_oauth_1() {
        match check_callback(
            "error=unauthorized_client&error_description=bad+id&state=s1",
            &expect(false),
        ) {
            Ok(CallbackResult::Error(error)) => {
                assert!(error.is("unauthorized_client"));
                assert_eq!(error.description.as_deref(), Some("bad id"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
