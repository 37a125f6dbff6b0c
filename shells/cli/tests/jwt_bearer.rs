//! `tenure add --grant jwt-bearer` and `tenure token` against a scripted authorization server
//! and identity provider on 127.0.0.1: the workload identity token (SEP-1933) and the ID
//! token exchanged for an ID-JAG (SEP-990) are kept by reference (file, variable), read when
//! a token is needed, and never stored or shown.

mod support;

use serde_json::json;
use support::*;

const WORKLOAD_JWT: &str = "planted-workload-jwt";
const ID_TOKEN: &str = "planted-id-token";
const ID_JAG: &str = "planted-id-jag";
const ACCESS_TOKEN: &str = "planted-access-token";
const AS_SECRET: &str = "planted-as-secret";

/// An authorization server that grants jwt-bearer requests with `token`, and an identity
/// provider under `/idp` that issues an ID-JAG.
fn servers(token: Answer) -> FakeServer {
    FakeServer::start(|origin| {
        vec![
            (
                "GET /.well-known/oauth-authorization-server".into(),
                Answer::json(
                    200,
                    &json!({
                        "issuer": origin,
                        "token_endpoint": format!("{origin}/token"),
                        "grant_types_supported": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
                        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
                    }),
                ),
            ),
            ("POST /token".into(), token),
            (
                "GET /idp/.well-known/openid-configuration".into(),
                Answer::json(
                    200,
                    &json!({"issuer": format!("{origin}/idp"), "token_endpoint": format!("{origin}/idp/token")}),
                ),
            ),
            (
                "POST /idp/token".into(),
                Answer::json(
                    200,
                    &json!({
                        "access_token": ID_JAG,
                        "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                        "token_type": "N_A",
                    }),
                ),
            ),
        ]
    })
}

fn granted() -> Answer {
    Answer::json(
        200,
        &json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 300}),
    )
}

/// `tenure add wif`: a public workload client of `server` whose JWT is at `source`.
fn add_workload(tenure: &Tenure, server: &FakeServer, source: &[&str]) {
    let mut args = vec![
        "add",
        "wif",
        "--issuer",
        &server.origin,
        "--client-id",
        "workload",
        "--auth-method",
        "none",
        "--grant",
        "jwt-bearer",
    ];
    args.extend_from_slice(source);
    tenure.ok(&args);
}

/// Every byte the store holds, as text, to look for a value that must not be in it.
fn store_bytes(tenure: &Tenure) -> String {
    fn walk(dir: &std::path::Path, out: &mut Vec<u8>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut bytes = Vec::new();
    walk(&tenure.store, &mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn a_workload_token_file_is_read_for_the_grant_and_never_stored() {
    let server = servers(granted());
    let tenure = Tenure::new("jwt-bearer-workload");
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("workload-{}.jwt", std::process::id()));
    std::fs::write(&file, format!("{WORKLOAD_JWT}\n")).unwrap();
    let path = file.display().to_string();
    add_workload(&tenure, &server, &["--assertion-file", &path]);
    let run = tenure.ok(&["token", "wif"]);
    assert_eq!(run.stdout.trim(), ACCESS_TOKEN);
    assert!(!run.stderr.contains(WORKLOAD_JWT), "{run:?}");
    assert_eq!(
        server.hits(),
        ["GET /.well-known/oauth-authorization-server", "POST /token"]
    );
    // The profile keeps the path (which shows the store's bytes are readable here), and
    // neither it nor the record keeps the token.
    let stored = store_bytes(&tenure);
    assert!(stored.contains(&path));
    assert!(!stored.contains(WORKLOAD_JWT));
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn an_id_token_is_exchanged_at_the_identity_provider_first() {
    let server = servers(granted());
    let endpoint = format!("{}/idp/token", server.origin);
    let issuer = format!("{}/idp", server.origin);
    // The identity provider named by its token endpoint, or by its issuer (whose metadata
    // names the endpoint).
    for (name, idp) in [
        ("by-endpoint", ["--idp-token-endpoint", &endpoint]),
        ("by-issuer", ["--idp-issuer", &issuer]),
    ] {
        let tenure = Tenure::new(&format!("jwt-bearer-enterprise-{name}"));
        let mut args = vec![
            "add",
            "xaa",
            "--issuer",
            &server.origin,
            "--client-id",
            "xaa-client",
            "--client-secret-env",
            "TENURE_TEST_AS_SECRET",
            "--grant",
            "jwt-bearer",
            "--idp-client-id",
            "idp-client",
            "--id-token-env",
            "TENURE_TEST_ID_TOKEN",
        ];
        args.extend(idp);
        tenure.ok(&args);
        let before = server.hits().len();
        let run = tenure.run_with(
            &["token", "xaa"],
            &[
                ("TENURE_TEST_ID_TOKEN", ID_TOKEN),
                ("TENURE_TEST_AS_SECRET", AS_SECRET),
            ],
        );
        assert_eq!(run.code, 0, "{name}: {run:?}");
        assert_eq!(run.stdout.trim(), ACCESS_TOKEN);
        let hits = server.hits()[before..].to_vec();
        assert_eq!(
            hits[hits.len() - 2..],
            ["POST /idp/token", "POST /token"],
            "{name}: {hits:?}"
        );
        let stored = store_bytes(&tenure);
        assert!(stored.contains("TENURE_TEST_ID_TOKEN"));
        for planted in [ID_TOKEN, ID_JAG, AS_SECRET] {
            assert!(!stored.contains(planted), "{planted} is stored");
            assert!(!run.stderr.contains(planted), "{planted} is shown: {run:?}");
        }
    }
    assert!(server
        .hits()
        .contains(&"GET /idp/.well-known/openid-configuration".to_string()));
}

#[test]
fn a_refused_assertion_is_reported_once_without_a_retry() {
    let server = servers(Answer::json(
        400,
        &json!({"error": "invalid_grant", "error_description": "audience mismatch"}),
    ));
    let tenure = Tenure::new("jwt-bearer-refused");
    add_workload(
        &tenure,
        &server,
        &["--assertion-env", "TENURE_TEST_WORKLOAD_JWT"],
    );
    let run = tenure.run_with(
        &["token", "wif"],
        &[("TENURE_TEST_WORKLOAD_JWT", WORKLOAD_JWT)],
    );
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("its audience names the authorization server"),
        "{run:?}"
    );
    assert!(!run.stderr.contains(WORKLOAD_JWT), "{run:?}");
    let token_requests = server.hits().iter().filter(|h| *h == "POST /token").count();
    assert_eq!(token_requests, 1);
}

#[test]
fn an_assertion_goes_only_to_a_named_authorization_server() {
    let tenure = Tenure::new("jwt-bearer-resource");
    let run = tenure.run(&[
        "add",
        "wif",
        "--resource",
        "https://mcp.example.com/mcp",
        "--client-id",
        "workload",
        "--grant",
        "jwt-bearer",
        "--assertion-env",
        "TENURE_TEST_WORKLOAD_JWT",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--issuer"), "{run:?}");
}
