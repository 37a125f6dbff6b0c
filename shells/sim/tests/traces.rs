//! The trace corpus in `testing/traces/`: recorded from oidc-provider with `tenure --record`,
//! and written by hand for behaviours real providers are known for. Each trace is replayed
//! against the core and checked for its expected outcome.

use serde_json::Value;
use tenure_sim::replay::{parse, replay, Summary};

fn run(name: &str) -> Summary {
    let path = format!(
        "{}/../../testing/traces/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let summary = replay(&parse(&text).expect("the trace parses")).expect("the trace replays");
    assert_eq!(summary.diverged, None, "{name} diverged");
    summary
}

fn dcr(summary: &Summary) -> &Value {
    &summary.record.as_ref().expect("a record is stored")["dcr"]
}

fn methods(summary: &Summary) -> Vec<&str> {
    summary
        .requests
        .iter()
        .map(|r| r.split(' ').next().unwrap_or_default())
        .collect()
}

#[test]
fn oidc_provider_renewal_rotates_secret_and_registration_access_token() {
    let summary = run("oidc-provider-client-credentials-renewal");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.registrations, 1);
    // Three starts, the last two inside the renewal window: one PUT each (INV-1).
    assert_eq!(summary.renewals, 2);
    assert_eq!(dcr(&summary)["client_secret"], "[redacted]");
}

#[test]
fn oidc_provider_login_then_warm_start_then_refresh_with_rotation() {
    let summary = run("oidc-provider-login-refresh");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.registrations, 1);
    assert_eq!(summary.refreshes, 2);
    // The warm start in between sent nothing: discovery, registration, code, two refreshes.
    assert_eq!(summary.requests.len(), 5);
}

/// Recorded from oidc-provider requiring DPoP nonces (`--dpop`): the code exchange and the
/// refresh of a later process are each answered `use_dpop_nonce` once and repeated with the
/// server's nonce (RFC 9449 §8); the tokens are DPoP-bound, and the key stays in the record.
#[test]
fn oidc_provider_dpop_nonces_are_sent_on_the_second_try() {
    let summary = run("oidc-provider-dpop-nonces");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.registrations, 1);
    assert_eq!(
        summary.refreshes, 2,
        "a refresh and its repetition with the nonce"
    );
    assert_eq!(
        methods(&summary),
        ["GET", "POST", "POST", "POST", "POST", "POST"]
    );
    let record = summary.record.as_ref().expect("a record is stored");
    assert_eq!(record["tokens"]["token_type"], "DPoP");
    assert_eq!(record["dpop_key"], "[redacted]");
}

/// Keycloak's registration access token is single use: each PUT must present the one the
/// previous answer rotated in (MGMT-5). The trace refuses any other.
#[test]
fn keycloak_each_renewal_presents_the_latest_registration_access_token() {
    let summary = run("keycloak-single-use-registration-access-token");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.renewals, 2);
}

/// The OAuth document (asked first) advertises CIMD and the OIDC one does not: the first
/// accepted document decides, so the CIMD id is used and nothing is registered (CIMD-1).
#[test]
fn the_first_accepted_metadata_document_decides_cimd() {
    let summary = run("oidc-document-without-cimd-flag");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.registrations, 0);
    let record = summary.record.as_ref().unwrap();
    assert_eq!(
        record["cimd"]["client_id"],
        "https://client.example.com/tenure.json"
    );
    assert_eq!(
        record["dcr"],
        Value::Null,
        "INV-2: no DCR identity from a CIMD id"
    );
}

/// `client_secret_expires_at: 0` in a renewal answer means the new secret never expires
/// (DCR-14): a start a month later does not renew.
#[test]
fn a_renewed_secret_that_never_expires_is_not_renewed_again() {
    let summary = run("renewal-answer-expires-at-zero");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.renewals, 1);
    assert_eq!(dcr(&summary)["secret_expires"]["kind"], "never");
}

/// A secret already expired on receipt is never sent (INV-5): it is renewed first.
#[test]
fn a_secret_expired_on_receipt_is_renewed_before_use() {
    let summary = run("secret-expired-on-receipt");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(methods(&summary), ["GET", "POST", "PUT", "POST"]);
    assert!(summary.requests[2].ends_with("/register/c1"));
}

/// A renewal answer moving the registration client URI to another origin: the URI is
/// refused, so management is dropped, while the renewed secret (from the real registration
/// endpoint's own answer) is kept (design §4).
#[test]
fn a_registration_uri_rotated_to_another_origin_is_refused() {
    let summary = run("rotated-registration-uri-on-another-origin");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    let dcr = dcr(&summary);
    assert_eq!(dcr["registration_client_uri"], Value::Null);
    assert_eq!(dcr["registration_access_token"], Value::Null);
    assert_eq!(dcr["secret_expires"]["at"], 1_769_817_600_000_i64);
}

/// 401 and 404 from the registration client URI: the registration is no longer manageable
/// (MGMT-16, MGMT-23); the still valid secret keeps working.
#[test]
fn a_registration_uri_answering_401_or_404_ends_management_not_the_client() {
    for name in ["registration-uri-401", "registration-uri-404"] {
        let summary = run(name);
        assert_eq!(summary.outcome, "ok", "{name}: {:?}", summary.error);
        assert_eq!(summary.renewals, 1, "{name}");
        let dcr = dcr(&summary);
        assert_eq!(dcr["registration_access_token"], Value::Null, "{name}");
        assert_eq!(dcr["secret_expires"]["at"], 1_767_229_200_000_i64, "{name}");
        assert_eq!(
            methods(&summary).last(),
            Some(&"POST"),
            "{name}: a token after all"
        );
    }
}

/// A refresh answer without a refresh token keeps the stored one (INV-10), and the next
/// refresh uses it.
#[test]
fn a_refresh_answer_without_a_refresh_token_keeps_the_stored_one() {
    let summary = run("refresh-answer-without-refresh-token");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.refreshes, 2);
    let tokens = &summary.record.as_ref().unwrap()["tokens"];
    assert_eq!(tokens["refresh_token"], "[redacted]");
}

/// An issuer with a path and a trailing slash: the metadata URL drops one trailing slash
/// before inserting the well-known segment (DISC-1), and the issuer matches exactly (DISC-4).
#[test]
fn an_issuer_with_a_path_and_trailing_slash_is_discovered() {
    let summary = run("issuer-with-path-and-trailing-slash");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(
        summary.requests[0],
        "GET https://as.example.com/.well-known/oauth-authorization-server/tenant1"
    );
}

/// Every trace in the corpus has a test above.
#[test]
fn every_trace_in_the_corpus_is_checked() {
    let dir = format!("{}/../../testing/traces", env!("CARGO_MANIFEST_DIR"));
    let this = include_str!("traces.rs");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    assert!(names.len() >= 11);
    for name in names {
        let stem = name.trim_end_matches(".jsonl");
        assert!(this.contains(&format!("\"{stem}\"")), "{name} has no test");
    }
}

/// Recorded from the MCP TypeScript SDK's router: its secrets expire (here after 6 s) and it
/// has no RFC 7592. After the expiry the stored access token is still handed out without a
/// request; once that is gone too, a login is asked for (nothing is sent with the dead
/// secret), and the login registers a new client before the browser step.
#[test]
fn mcp_ts_sdk_an_expired_secret_leads_to_a_login_that_registers_anew() {
    let summary = run("mcp-ts-sdk-secret-expires-without-management");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.registrations, 2);
    assert_eq!(summary.renewals, 0);
    // Discovery, registration and code exchange, then nothing for the two token calls, then
    // the second registration and code exchange.
    assert_eq!(methods(&summary), ["GET", "POST", "POST", "POST", "POST"]);
    assert_eq!(dcr(&summary)["registration_client_uri"], Value::Null);
}

/// Recorded from Authlib after it forgot its clients (a restart of an in-memory server): the
/// RFC 7592 DELETE gets Authlib's stock 400 `access_denied`, which means the registration
/// cannot be managed any more; `forget` removes the local record instead of failing forever.
#[test]
fn authlib_forget_of_a_client_the_server_forgot_removes_it_locally() {
    let summary = run("authlib-forgotten-client-access-denied");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(methods(&summary).last(), Some(&"DELETE"));
    assert!(summary.record.is_none(), "removed locally");
}

/// Recorded from Authlib refusing registration (it wants an initial access token): three
/// calls, one registration request; the other two report the pause (INV-14).
#[test]
fn authlib_a_refused_registration_is_sent_once_per_backoff() {
    let summary = run("authlib-refused-registration-backoff");
    assert_eq!(summary.outcome, "error");
    assert_eq!(summary.registrations, 1);
    assert!(
        summary.error.as_deref().unwrap().contains("paused until"),
        "{:?}",
        summary.error
    );
}

/// Recorded with `tenure --record` against the MCP conformance suite's servers (0.2.0-alpha.12,
/// `auth/wif-jwt-bearer`): the workload JWT is the assertion, one grant request, no
/// registration (SEP-1933). The replay hands the client a stand-in JWT.
#[test]
fn conformance_workload_identity_is_one_jwt_bearer_request() {
    let summary = run("conformance-wif-jwt-bearer");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.registrations, 0);
    assert_eq!(methods(&summary), ["GET", "POST"]);
}

/// The suite's `auth/enterprise-managed-authorization`, the identity provider known by its
/// issuer: its metadata (the RFC 8414 location answers 404, OpenID discovery's has it), the
/// token exchange there, then the jwt-bearer grant at the authorization server (SEP-990).
#[test]
fn conformance_enterprise_flow_discovers_the_idp_then_exchanges_then_presents_the_id_jag() {
    let summary = run("conformance-enterprise-managed-authorization");
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    assert_eq!(summary.requests.len(), 6, "{:?}", summary.requests);
    assert!(summary.requests[3].ends_with("/.well-known/openid-configuration"));
    let posts: Vec<_> = summary
        .requests
        .iter()
        .filter(|r| r.starts_with("POST"))
        .collect();
    assert_eq!(posts.len(), 2);
    // The exchange at the identity provider, then the grant at the authorization server.
    assert_ne!(posts[0], posts[1]);
}

/// The same identity provider refuses an exchange without `resource` (a client configured
/// by issuer alone has none to send): the operation ends there, with nothing sent to the
/// authorization server's token endpoint and no retry.
#[test]
fn conformance_identity_provider_refusal_ends_the_operation() {
    let summary = run("conformance-idp-exchange-needs-resource");
    assert_eq!(summary.outcome, "error");
    let error = summary.error.unwrap_or_default();
    assert!(error.contains("refused the token exchange"), "{error}");
    assert!(error.contains("resource"), "{error}");
    assert_eq!(
        summary
            .requests
            .iter()
            .filter(|r| r.starts_with("POST"))
            .count(),
        1
    );
}
