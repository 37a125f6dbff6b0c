//! Discovery: from a protected resource or an issuer to validated authorization server
//! metadata.
//!
//! Two steps, both pure: which URLs to try, in the order MCP prescribes (checklist §15), and
//! whether an answer may be used. A candidate that answers with anything but a usable JSON
//! object is a miss and the next one is tried (EDGE-25, EDGE-26); a document whose `issuer` or
//! `resource` differs from the expected one is never used (DISC-4, PRM-5).

use serde_json::{Map, Value};
use url::Url;

use crate::config::check_issuer;
use crate::endpoint::secure_endpoint;
use crate::record::AuthServer;
use crate::wire::{string, strings};

/// One URL to try for protected resource metadata, and the `resource` values that make its
/// answer usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrmCandidate {
    /// Where to fetch.
    pub url: String,
    /// Accepted values of the document's `resource` member, compared exactly.
    pub expected_resources: Vec<String>,
}

/// The canonical form of a resource URI (MCP-15, EDGE-24): lowercase scheme and host, no
/// fragment, and no trailing `/` on a bare origin.
pub fn canonical_resource(text: &str) -> Result<String, String> {
    let mut url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    url.set_fragment(None);
    let mut out = url.to_string();
    if url.path() == "/" && url.query().is_none() {
        out.pop();
    }
    Ok(out)
}

/// The origin of a URL as a resource identifier (`https://host[:port]`).
fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Where to look for the resource's metadata (MCP-3, PRM-2): the `resource_metadata` URL of a
/// challenge first when there is one, then the path-inserted well-known URL (skipped at the
/// root), then the root one.
pub fn prm_candidates(
    resource: &str,
    from_challenge: Option<&str>,
) -> Result<Vec<PrmCandidate>, String> {
    let canonical = canonical_resource(resource)?;
    let url = Url::parse(&canonical).map_err(|e| e.to_string())?;
    let origin = origin_of(&url);
    let mut candidates = Vec::new();
    if let Some(link) = from_challenge {
        // PRM-6: a document found through a challenge must name the URL that was requested.
        candidates.push(PrmCandidate {
            url: link.to_string(),
            expected_resources: vec![canonical.clone()],
        });
    }
    let path = url.path().trim_end_matches('/');
    if !path.is_empty() {
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        candidates.push(PrmCandidate {
            url: format!("{origin}/.well-known/oauth-protected-resource{path}{query}"),
            expected_resources: vec![canonical.clone()],
        });
    }
    let mut root_expected = vec![origin.clone()];
    if canonical != origin {
        root_expected.push(canonical.clone());
    }
    candidates.push(PrmCandidate {
        url: format!("{origin}/.well-known/oauth-protected-resource"),
        expected_resources: root_expected,
    });
    // A challenge usually names a well-known URL itself: no document is fetched twice.
    let mut seen: Vec<String> = Vec::new();
    candidates.retain(|candidate| {
        let fresh = !seen.contains(&candidate.url);
        seen.push(candidate.url.clone());
        fresh
    });
    Ok(candidates)
}

/// Protected resource metadata that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedResource {
    /// The `resource` member.
    pub resource: String,
    /// Valid issuer identifiers from `authorization_servers`, in document order (EDGE-28).
    pub authorization_servers: Vec<String>,
    /// `scopes_supported`, when present.
    pub scopes_supported: Option<Vec<String>>,
}

/// Validates a protected resource metadata document fetched from `candidate` (PRM-4, PRM-5,
/// MCP-5). Unknown members are ignored; invalid issuer entries are skipped.
pub fn parse_protected_resource(
    document: &Map<String, Value>,
    candidate: &PrmCandidate,
) -> Result<ProtectedResource, String> {
    let resource =
        string(document, "resource").ok_or("the protected resource metadata has no `resource`")?;
    if !candidate.expected_resources.contains(&resource) {
        return Err(format!(
            "the protected resource metadata names resource `{resource}`, expected `{}`",
            candidate.expected_resources.join("` or `")
        ));
    }
    let authorization_servers: Vec<String> = strings(document, "authorization_servers")
        .unwrap_or_default()
        .into_iter()
        .filter(|issuer| check_issuer(issuer).is_ok())
        .collect();
    if authorization_servers.is_empty() {
        return Err("the protected resource metadata lists no usable authorization server".into());
    }
    Ok(ProtectedResource {
        resource,
        authorization_servers,
        scopes_supported: strings(document, "scopes_supported"),
    })
}

/// The AS metadata URLs for `issuer`, in the MCP order (MCP-6, DISC-1, OIDC-1, OIDC-8):
/// RFC 8414 inserted, OIDC inserted, OIDC appended; two for an issuer without a path. One
/// terminating `/` is removed to build them, but the issuer is compared as given.
pub fn metadata_candidates(issuer: &str) -> Result<Vec<String>, String> {
    check_issuer(issuer)?;
    let url = Url::parse(issuer).map_err(|e| e.to_string())?;
    let origin = origin_of(&url);
    let path = url.path().strip_suffix('/').unwrap_or(url.path());
    Ok(if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    })
}

/// Validates authorization server metadata against the issuer it was fetched for.
///
/// The `issuer` member must be identical, code point for code point, to `expected_issuer`
/// (DISC-4, DISC-5, OIDC-4, MCP26-1); every endpoint must be https or loopback (MCP-19).
/// Absent arrays mean "not advertised" (DISC-13).
pub fn parse_server_metadata(
    document: &Map<String, Value>,
    expected_issuer: &str,
) -> Result<AuthServer, String> {
    let issuer = string(document, "issuer").ok_or("the metadata has no `issuer`")?;
    if issuer != expected_issuer {
        let shown = crate::wire::server_text(&issuer);
        // The comparison stays exact (DISC-4); a user who typed the issuer without the
        // trailing slash the server publishes (the MCP TypeScript SDK does) is told the
        // exact value to use.
        let hint = if issuer.trim_end_matches('/') == expected_issuer.trim_end_matches('/') {
            format!("; the issuer must be given exactly as the server publishes it: give the setting `issuer` exactly as {shown}")
        } else {
            String::new()
        };
        return Err(format!(
            "the metadata names issuer `{shown}`, expected exactly `{expected_issuer}`{hint}"
        ));
    }
    let endpoint = |name: &str| -> Result<Option<String>, String> {
        match string(document, name) {
            None => Ok(None),
            Some(url) => secure_endpoint(&url)
                .map(|_| Some(url))
                .map_err(|e| format!("{name}: {e}")),
        }
    };
    let token_endpoint =
        endpoint("token_endpoint")?.ok_or("the metadata has no `token_endpoint`")?;
    let pkce_s256 = strings(document, "code_challenge_methods_supported")
        .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
    Ok(AuthServer {
        issuer,
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint,
        registration_endpoint: endpoint("registration_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        cimd_supported: document.get("client_id_metadata_document_supported")
            == Some(&Value::Bool(true)),
        iss_parameter_supported: document.get("authorization_response_iss_parameter_supported")
            == Some(&Value::Bool(true)),
        pkce_s256,
        token_endpoint_auth_methods: strings(document, "token_endpoint_auth_methods_supported"),
        resource_scopes: None,
        resource: None,
        dpop_es256: strings(document, "dpop_signing_alg_values_supported")
            .is_some_and(|algs| algs.iter().any(|alg| alg == crate::dpop::DPOP_ALG)),
    })
}

/// Where a client that follows MCP revision 2025-03-26 looks for authorization server
/// metadata when the resource publishes no protected resource metadata (EDGE-27): the MCP
/// server's origin is the authorization base URL, and RFC 8414 metadata sits at its root.
/// Returns the origin and the metadata URL.
pub fn legacy_metadata_url(resource: &str) -> Result<(String, String), String> {
    let canonical = canonical_resource(resource)?;
    let url = Url::parse(&canonical).map_err(|e| e.to_string())?;
    let origin = origin_of(&url);
    let metadata = format!("{origin}/.well-known/oauth-authorization-server");
    Ok((origin, metadata))
}

/// Validates metadata found the 2025-03-26 way at `origin`'s root.
///
/// That revision named no issuer: the client knew only the origin. The document's `issuer`
/// is used as it is, provided it is a valid issuer on that same origin (a server on another
/// origin cannot be vouched for by this document); every other rule of
/// [`parse_server_metadata`] applies.
pub fn parse_legacy_server_metadata(
    document: &Map<String, Value>,
    origin: &str,
) -> Result<AuthServer, String> {
    let issuer = string(document, "issuer").ok_or("the metadata has no `issuer`")?;
    check_issuer(&issuer)?;
    let issuer_origin = Url::parse(&issuer)
        .map(|url| origin_of(&url))
        .map_err(|e| e.to_string())?;
    if issuer_origin != origin {
        return Err(format!(
            "the metadata at the MCP server's root names issuer `{issuer}` on another origin than `{origin}`; it is not used"
        ));
    }
    parse_server_metadata(document, &issuer)
}

/// The endpoints MCP revision 2025-03-26 told clients to assume when the MCP server's origin
/// publishes no metadata at all: `/authorize`, `/token` and `/register` on that origin
/// (EDGE-27). The origin stands for the issuer. That revision required PKCE of every server,
/// so S256 is taken as supported.
pub fn legacy_default_server(origin: &str) -> AuthServer {
    AuthServer {
        issuer: origin.to_string(),
        authorization_endpoint: Some(format!("{origin}/authorize")),
        token_endpoint: format!("{origin}/token"),
        registration_endpoint: Some(format!("{origin}/register")),
        device_authorization_endpoint: None,
        cimd_supported: false,
        iss_parameter_supported: false,
        pkce_s256: true,
        token_endpoint_auth_methods: None,
        resource_scopes: None,
        resource: None,
        dpop_es256: false,
    }
}

/// The authorization server's `scopes_supported`, when it lists any (MCP26-7).
pub fn server_scopes(document: &Map<String, Value>) -> Option<Vec<String>> {
    strings(document, "scopes_supported")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn metadata_order_for_a_path_issuer_section_15() {
        assert_eq!(
            metadata_candidates("https://auth.example.com/tenant1").unwrap(),
            vec![
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn trailing_slash_builds_the_same_urls_section_15() {
        assert_eq!(
            metadata_candidates("https://auth.example.com/tenant1/").unwrap(),
            metadata_candidates("https://auth.example.com/tenant1").unwrap()
        );
        assert_eq!(
            metadata_candidates("https://auth.example.com/a/b").unwrap()[2],
            "https://auth.example.com/a/b/.well-known/openid-configuration"
        );
    }

    #[test]
    fn metadata_order_without_a_path_disc_1_oidc_1() {
        assert_eq!(
            metadata_candidates("https://auth.example.com").unwrap(),
            vec![
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_candidates("http://127.0.0.1:3000").unwrap()[0],
            "http://127.0.0.1:3000/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn a_trailing_slash_is_not_forgiven_but_the_exact_issuer_is_named_disc_4() {
        let metadata = doc(json!({"issuer": "http://127.0.0.1:3000/",
            "token_endpoint": "http://127.0.0.1:3000/token"}));
        let error = parse_server_metadata(&metadata, "http://127.0.0.1:3000").unwrap_err();
        assert!(
            error.ends_with("give the setting `issuer` exactly as http://127.0.0.1:3000/"),
            "{error}"
        );
        let other = doc(json!({"issuer": "http://127.0.0.1:4000/",
            "token_endpoint": "http://127.0.0.1:4000/token"}));
        let error = parse_server_metadata(&other, "http://127.0.0.1:3000").unwrap_err();
        assert!(!error.contains("exactly as"), "{error}");
    }

    #[test]
    fn issuer_must_be_identical_disc_4_disc_5() {
        let metadata = doc(json!({"issuer": "https://auth.example.com/tenant1",
                                  "token_endpoint": "https://auth.example.com/token"}));
        assert!(parse_server_metadata(&metadata, "https://auth.example.com/tenant1").is_ok());
        // The trailing-slash variant is compared with the original string (rmcp #1144).
        assert!(parse_server_metadata(&metadata, "https://auth.example.com/tenant1/").is_err());
        let upper = doc(json!({"issuer": "https://AUTH.example.com",
                               "token_endpoint": "https://auth.example.com/token"}));
        assert!(parse_server_metadata(&upper, "https://auth.example.com").is_err());
    }

    #[test]
    fn absent_pkce_methods_mean_no_pkce_disc_9() {
        let without =
            doc(json!({"issuer": "https://a.example", "token_endpoint": "https://a.example/t"}));
        assert!(
            !parse_server_metadata(&without, "https://a.example")
                .unwrap()
                .pkce_s256
        );
        let plain_only = doc(
            json!({"issuer": "https://a.example", "token_endpoint": "https://a.example/t",
                                    "code_challenge_methods_supported": ["plain"]}),
        );
        assert!(
            !parse_server_metadata(&plain_only, "https://a.example")
                .unwrap()
                .pkce_s256
        );
    }

    #[test]
    fn insecure_endpoints_are_refused_mcp_19() {
        let metadata =
            doc(json!({"issuer": "https://a.example", "token_endpoint": "http://a.example/t"}));
        assert!(parse_server_metadata(&metadata, "https://a.example").is_err());
    }

    #[test]
    fn cimd_flag_and_unknown_members_disc_13_cimd_9() {
        let metadata = doc(
            json!({"issuer": "https://a.example", "token_endpoint": "https://a.example/t",
                                  "client_id_metadata_document_supported": true, "x-extra": [1]}),
        );
        let server = parse_server_metadata(&metadata, "https://a.example").unwrap();
        assert!(server.cimd_supported);
        assert_eq!(server.token_endpoint_auth_methods, None);
    }

    #[test]
    fn prm_order_mcp_3_prm_2() {
        let candidates = prm_candidates("https://mcp.example.com/public/mcp", None).unwrap();
        let urls: Vec<_> = candidates.iter().map(|c| c.url.as_str()).collect();
        assert_eq!(
            urls,
            vec![
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ]
        );
        let root = prm_candidates("https://MCP.example.com/", None).unwrap();
        assert_eq!(root.len(), 1);
        assert_eq!(root[0].expected_resources, vec!["https://mcp.example.com"]);
        let challenged = prm_candidates(
            "https://mcp.example.com/mcp",
            Some("https://mcp.example.com/prm"),
        )
        .unwrap();
        assert_eq!(challenged[0].url, "https://mcp.example.com/prm");
        assert_eq!(challenged.len(), 3);
        // A challenge naming the path-form well-known URL does not make it fetched twice.
        let same = prm_candidates(
            "https://mcp.example.com/mcp",
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"),
        )
        .unwrap();
        assert_eq!(same.len(), 2);
        assert_eq!(
            same[0].expected_resources,
            vec!["https://mcp.example.com/mcp"]
        );
    }

    #[test]
    fn prm_resource_must_match_prm_5_edge_23() {
        let candidates = prm_candidates("https://mcp.example.com/mcp", None).unwrap();
        let good = doc(json!({"resource": "https://mcp.example.com/mcp",
                              "authorization_servers": ["https://as.example.com"]}));
        assert!(parse_protected_resource(&good, &candidates[0]).is_ok());
        let other_origin = doc(json!({"resource": "https://evil.example.com/mcp",
                                      "authorization_servers": ["https://as.example.com"]}));
        assert!(parse_protected_resource(&other_origin, &candidates[0]).is_err());
        let slash = doc(json!({"resource": "https://mcp.example.com/mcp/",
                               "authorization_servers": ["https://as.example.com"]}));
        assert!(parse_protected_resource(&slash, &candidates[0]).is_err());
    }

    #[test]
    fn prm_skips_invalid_servers_edge_28_mcp_5() {
        let candidates = prm_candidates("https://mcp.example.com/mcp", None).unwrap();
        let mixed = doc(json!({"resource": "https://mcp.example.com/mcp",
            "authorization_servers": ["http://insecure.example.com", "https://as.example.com?x=1", 7,
                                      "https://as.example.com"]}));
        assert_eq!(
            parse_protected_resource(&mixed, &candidates[0])
                .unwrap()
                .authorization_servers,
            vec!["https://as.example.com"]
        );
        let empty =
            doc(json!({"resource": "https://mcp.example.com/mcp", "authorization_servers": []}));
        assert!(parse_protected_resource(&empty, &candidates[0]).is_err());
    }

    #[test]
    fn legacy_discovery_uses_the_origin_root_edge_27() {
        let (origin, url) = legacy_metadata_url("http://localhost:3000/mcp").unwrap();
        assert_eq!(origin, "http://localhost:3000");
        assert_eq!(
            url,
            "http://localhost:3000/.well-known/oauth-authorization-server"
        );
        let server = legacy_default_server(&origin);
        assert_eq!(server.token_endpoint, "http://localhost:3000/token");
        assert_eq!(
            server.registration_endpoint.as_deref(),
            Some("http://localhost:3000/register")
        );
        assert_eq!(
            server.authorization_endpoint.as_deref(),
            Some("http://localhost:3000/authorize")
        );
    }

    #[test]
    fn legacy_metadata_issuer_must_stay_on_the_origin_edge_27() {
        let same = doc(json!({"issuer": "https://mcp.example.com/oauth",
                              "token_endpoint": "https://mcp.example.com/oauth/token",
                              "code_challenge_methods_supported": ["S256"]}));
        let server = parse_legacy_server_metadata(&same, "https://mcp.example.com").unwrap();
        assert_eq!(server.issuer, "https://mcp.example.com/oauth");
        let elsewhere = doc(json!({"issuer": "https://as.example.com",
                                   "token_endpoint": "https://as.example.com/token"}));
        assert!(parse_legacy_server_metadata(&elsewhere, "https://mcp.example.com").is_err());
    }
}
