//! One lifecycle against every real authorization server people run: oidc-provider, the MCP
//! TypeScript SDK's `mcpAuthRouter`, the MCP Python SDK's `create_auth_routes` and Authlib.
//! The `tenure` binary is driven as a black box; every count is taken at the server.
//!
//! Each server gets one test that runs the same scenarios — login with each auth method the
//! server lists, warm start, refresh, the MCP server accepting the token, secret expiry with
//! and without RFC 7592, a server that forgot its clients, forget — and writes its column of
//! the matrix to `target/tmp/matrix-SERVER.md`, which `scripts/test` prints. A scenario that
//! fails is marked in the matrix and fails the test.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::*;

/// INV-12: none of the secrets the client holds (the servers issued them) appears on stderr.
fn assert_no_secret_in(run: &Run, record: Option<&tenure_core::Record>) {
    for secret in record.map(|r| r.secrets()).unwrap_or_default() {
        assert!(
            !run.stderr.contains(secret.expose()),
            "a secret reached stderr: {}",
            run.stderr
        );
    }
}

/// The RFC 3339 time `seconds` from now, for `--now`.
fn from_now(seconds: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tenure_core::Timestamp::from_unix_seconds((now + seconds) as i64).to_rfc3339()
}

/// How many requests the server has seen from the client: the browser's visits to the
/// authorization endpoint (and oidc-provider's login pages) are not Tenure's and not counted.
fn seen(provider: &Provider) -> usize {
    let browser = ["/auth", "/interaction"];
    provider.counts()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            !browser
                .iter()
                .any(|b| r["path"].as_str().unwrap().starts_with(b))
        })
        .count()
}

/// The server's metadata.
fn metadata(provider: &Provider) -> Value {
    let url = format!("{}/.well-known/oauth-authorization-server", provider.origin);
    let (status, _, body) = request("GET", &url, &[], "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The token endpoint auth methods the server lists that Tenure can use.
fn auth_methods(provider: &Provider) -> Vec<String> {
    let listed = metadata(provider)["token_endpoint_auth_methods_supported"].clone();
    ["none", "client_secret_post", "client_secret_basic"]
        .into_iter()
        .filter(|m| listed.as_array().unwrap().iter().any(|l| l == m))
        .map(str::to_string)
        .collect()
}

/// A user client of `provider`, found through the MCP server's metadata where the server has
/// one, else by issuer. Returns its redirect port.
fn add_user_client(
    tenure: &Tenure,
    provider: &Provider,
    method: Option<&str>,
    extra: &[&str],
) -> String {
    let port = free_port().to_string();
    let resource = format!("{}/mcp", provider.origin);
    let mut args = vec!["add", "app", "--redirect-port", &port];
    args.extend_from_slice(extra);
    if has_mcp_server(provider.kind) {
        args.extend(["--resource", &resource]);
    } else {
        args.extend(["--issuer", &provider.issuer, "--scope", "read"]);
    }
    if let Some(method) = method {
        args.extend(["--auth-method", method]);
    }
    tenure.ok(&args);
    port
}

fn has_mcp_server(kind: ServerKind) -> bool {
    matches!(kind, ServerKind::McpTsSdk | ServerKind::McpPythonSdk)
}

/// The MCP server at `/mcp` answers `initialize` with the bearer token.
fn mcp_accepts(provider: &Provider, token: &str) -> u16 {
    let authorization = format!("Bearer {token}");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tenure-matrix","version":"1"}}}"#;
    request(
        "POST",
        &format!("{}/mcp", provider.origin),
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        body,
    )
    .0
}

/// Counter deltas around `f`.
fn delta(provider: &Provider, names: &[&str], f: impl FnOnce()) -> Vec<u64> {
    let before: Vec<u64> = names.iter().map(|n| provider.count(n)).collect();
    f();
    names
        .iter()
        .zip(before)
        .map(|(n, b)| provider.count(n) - b)
        .collect()
}

/// What a scenario measured: a line for the matrix and, where the scenario is one of the
/// lifecycle's steps, the requests the server saw next to the protocol's minimum.
struct Measured {
    text: String,
    requests: Option<(usize, usize)>,
}

impl From<&str> for Measured {
    fn from(text: &str) -> Self {
        Measured {
            text: text.into(),
            requests: None,
        }
    }
}

impl From<String> for Measured {
    fn from(text: String) -> Self {
        Measured {
            text,
            requests: None,
        }
    }
}

/// `text`, measured as `requests` against the `minimum` a client needs.
fn requests(text: &str, requests: usize, minimum: usize) -> Measured {
    Measured {
        text: format!("{text}; {requests} requests (minimum {minimum})"),
        requests: Some((requests, minimum)),
    }
}

/// The matrix column of one server.
struct Column {
    kind: ServerKind,
    rows: Vec<(String, Result<String, String>)>,
    /// Per lifecycle step: the requests seen and the protocol minimum.
    requests: Vec<(String, usize, usize)>,
}

impl Column {
    /// Runs one scenario, recording what it measured or why it failed.
    fn cell(&mut self, name: &str, scenario: impl FnOnce() -> Measured) {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(scenario)).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        let result = result.map(|measured| {
            if let Some((seen, minimum)) = measured.requests {
                self.requests.push((name.to_string(), seen, minimum));
            }
            format!(
                "{} ({:.1} s)",
                measured.text,
                started.elapsed().as_secs_f64()
            )
        });
        self.rows.push((name.to_string(), result));
    }

    /// Writes the column and fails the test if any scenario failed.
    fn finish(self) {
        let mut text = format!(
            "\n### {}\n\n| scenario | result |\n|---|---|\n",
            self.kind.name()
        );
        for (name, result) in &self.rows {
            let shown = match result {
                Ok(text) => format!("ok: {text}"),
                Err(why) => format!("FAILED: {}", why.lines().next().unwrap_or_default()),
            };
            text.push_str(&format!("| {name} | {} |\n", shown.replace('|', "/")));
        }
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("matrix-{}.md", self.kind.name()));
        std::fs::write(&path, &text).unwrap();
        let counts: String = self
            .requests
            .iter()
            .map(|(name, seen, minimum)| {
                format!("{}\t{name}\t{seen}\t{minimum}\n", self.kind.name())
            })
            .collect();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("requests-{}.tsv", self.kind.name()));
        std::fs::write(&path, counts).unwrap();
        println!("{text}");
        let failed: Vec<&String> = self
            .rows
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(n, _)| n)
            .collect();
        assert!(
            failed.is_empty(),
            "{}: failed {failed:?}\n{text}",
            self.kind.name()
        );
    }
}

/// Login with `method`, a warm start that sends nothing, a refresh, and the MCP server
/// accepting the token.
fn login_warm_refresh(column: &mut Column, provider: &Provider, method: &str) {
    let tenure = Tenure::new(&format!("matrix-{}-{method}", provider.kind.name()));
    column.cell(&format!("login, {method}"), || {
        let port = add_user_client(&tenure, provider, Some(method), &[]);
        let before = seen(provider);
        let counts = delta(
            provider,
            &["registrations", "token_authorization_code"],
            || tenure.log_in("app", &port),
        );
        assert_eq!(counts, [1, 1], "registrations, code exchanges");
        let registered = tenure.record().dcr.unwrap().token_endpoint_auth_method;
        assert_eq!(registered.as_str(), method);
        // Metadata (and the resource's metadata first, for an MCP server), registration,
        // the code exchange.
        let minimum = if has_mcp_server(provider.kind) { 4 } else { 3 };
        requests(
            "1 registration, 1 code exchange",
            seen(provider) - before,
            minimum,
        )
    });
    column.cell(&format!("warm start, {method}"), || {
        let before = seen(provider);
        let run = tenure.ok(&["token", "app"]);
        assert_eq!(seen(provider), before, "a warm start sends no request");
        assert_no_secret_in(&run, tenure.stored().as_ref());
        if has_mcp_server(provider.kind) {
            let status = mcp_accepts(provider, run.stdout.trim());
            assert_eq!(status, 200, "the MCP server refused the token");
            return requests("the MCP server accepts the token", 0, 0);
        }
        requests("a token", 0, 0)
    });
    column.cell(&format!("refresh, {method}"), || {
        let old = tenure.record().tokens.unwrap().refresh_token;
        let before = seen(provider);
        let counts = delta(provider, &["token_refresh_token"], || {
            let run = tenure.run(&["--now", &from_now(7200), "token", "app"]);
            assert_eq!(run.code, 0, "{run:?}");
        });
        assert_eq!(counts, [1]);
        let new = tenure.record().tokens.unwrap().refresh_token;
        assert!(
            new.is_some() && new != old,
            "the rotated refresh token is kept"
        );
        requests("rotated refresh token stored", seen(provider) - before, 1)
    });
}

/// A configured auth method the server does not list: the other secret method where the
/// server has it (with a warning), else a clear error before any browser step.
fn unlisted_method(column: &mut Column, provider: &Provider, method: &str) {
    let tenure = Tenure::new(&format!(
        "matrix-{}-unlisted-{method}",
        provider.kind.name()
    ));
    column.cell(&format!("unlisted method {method}"), || {
        let port = add_user_client(&tenure, provider, Some(method), &[]);
        let listed = auth_methods(provider);
        let secret_method = method != "none";
        let other = if method == "client_secret_basic" {
            "client_secret_post"
        } else {
            "client_secret_basic"
        };
        if secret_method && listed.iter().any(|m| m == other) {
            tenure.log_in("app", &port);
            let registered = tenure.record().dcr.unwrap().token_endpoint_auth_method;
            assert_eq!(registered.as_str(), other);
            tenure.ok(&["token", "app"]);
            return format!("registered {other} instead, with a warning; login works").into();
        }
        let counts = delta(provider, &["registrations"], || {
            let run = tenure.run(&["login", "app", "--no-browser"]);
            assert_ne!(run.code, 0, "{run:?}");
            assert!(!run.stderr.contains("open: "), "no browser step: {run:?}");
            assert!(run.stderr.contains("--auth-method"), "{run:?}");
        });
        assert_eq!(counts, [0], "nothing registered");
        "refused before registering or opening a browser".into()
    });
}

/// An issuer typed without the trailing slash the server publishes: refused (the comparison
/// stays exact), with the exact `--issuer` to use in the message; that advice works.
fn issuer_without_its_slash(column: &mut Column, provider: &Provider) {
    if !provider.issuer.ends_with('/') {
        return;
    }
    let tenure = Tenure::new(&format!("matrix-{}-slash", provider.kind.name()));
    column.cell("issuer typed without its trailing slash", || {
        tenure.ok(&["add", "app", "--issuer", &provider.origin]);
        let run = tenure.run(&["token", "app"]);
        assert_ne!(run.code, 0, "{run:?}");
        let advice = format!("give `--issuer` exactly as {}", provider.issuer);
        assert!(run.stderr.contains(&advice), "{run:?}");
        tenure.ok(&["forget", "app"]);
        let port = free_port().to_string();
        tenure.ok(&[
            "add",
            "app",
            "--issuer",
            &provider.issuer,
            "--redirect-port",
            &port,
        ]);
        tenure.log_in("app", &port);
        "refused, naming the exact --issuer, which then works".into()
    });
}

/// A server that refuses registration (here: an initial access token is required and none is
/// configured): five calls send one registration request, and the later ones say until when
/// registration is paused (INV-14).
fn refused_registration(column: &mut Column, kind: ServerKind) {
    if !matches!(kind, ServerKind::OidcProvider | ServerKind::Authlib) {
        return;
    }
    let provider = Provider::start_kind(kind, &["--initial-access-token", "only-with-this"]);
    let tenure = Tenure::new(&format!("matrix-{}-refused", kind.name()));
    column.cell("refused registration, 5 calls", || {
        tenure.add_machine_client(&provider.issuer, &[]);
        let before = seen(&provider);
        for call in 0..5 {
            let run = tenure.run(&["token", "svc"]);
            assert_eq!(run.code, 5, "{run:?}");
            if call > 0 {
                assert!(
                    run.stderr.contains("registration is paused until"),
                    "{run:?}"
                );
            }
        }
        let posts = provider.counts()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["method"] == "POST"
                    && ["/reg", "/register"].contains(&r["path"].as_str().unwrap())
            })
            .count();
        assert_eq!(posts, 1, "one registration request");
        // Metadata and one registration request.
        requests("later calls report the pause", seen(&provider) - before, 2)
    });
}

/// A secret that expires: renewed through RFC 7592 where the server has it; elsewhere the
/// access token outlives it, a login is asked for, and the login registers a new client.
fn secret_expiry(column: &mut Column, kind: ServerKind) {
    // With RFC 7592, access tokens that have expired by the time the secret has, so that the
    // call after the secret's expiry must both renew and refresh.
    let flags: &[&str] = if kind.manages_registrations() {
        &["--secret-ttl", "6", "--access-token-ttl", "5"]
    } else {
        &["--secret-ttl", "6"]
    };
    let provider = Provider::start_kind(kind, flags);
    let tenure = Tenure::new(&format!("matrix-{}-expiry", kind.name()));
    // A renewal window shorter than the secret's life, so the login itself renews nothing.
    let extra = ["--renew-within", "2s"];
    let port = add_user_client(&tenure, &provider, Some("client_secret_post"), &extra);
    tenure.log_in("app", &port);
    let registered = Instant::now();
    let first = tenure.record().dcr.unwrap();
    std::thread::sleep(Duration::from_secs(7).saturating_sub(registered.elapsed()));
    if kind.manages_registrations() {
        column.cell("secret expired, RFC 7592", || {
            let before = seen(&provider);
            let counts = delta(
                &provider,
                &["updates", "registrations", "token_refresh_token"],
                || {
                    let run = tenure.run(&["token", "app"]);
                    assert_eq!(run.code, 0, "{run:?}");
                },
            );
            assert_eq!(counts, [1, 0, 1], "updates, registrations, refreshes");
            let renewed = tenure.record().dcr.unwrap();
            assert_eq!(renewed.client_id, first.client_id);
            assert_ne!(renewed.client_secret, first.client_secret);
            requests(
                "renewed after expiry, then refreshed with the new secret",
                seen(&provider) - before,
                2,
            )
        });
        return;
    }
    column.cell("secret expired, access token valid", || {
        let before = seen(&provider);
        let run = tenure.run(&["token", "app"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_no_secret_in(&run, tenure.stored().as_ref());
        assert_eq!(seen(&provider), before);
        requests("the stored access token handed out", 0, 0)
    });
    column.cell("secret expired, no RFC 7592", || {
        let before = seen(&provider);
        let run = tenure.run(&["--now", &from_now(7200), "token", "app"]);
        assert_eq!(run.code, 4, "login required: {run:?}");
        assert_no_secret_in(&run, tenure.stored().as_ref());
        assert!(run.stderr.contains("tenure login app"), "{run:?}");
        assert!(!run.stderr.contains("forget"), "{run:?}");
        assert_eq!(seen(&provider), before, "nothing sent with a dead secret");
        let counts = delta(&provider, &["registrations"], || {
            tenure.log_in("app", &port)
        });
        let sent = seen(&provider) - before;
        assert_eq!(counts, [1], "the login registers a new client");
        assert_ne!(tenure.record().dcr.unwrap().client_id, first.client_id);
        tenure.ok(&["token", "app"]);
        // Registration, the code exchange.
        requests(
            "exit 4 naming `tenure login`; the login registers anew",
            sent,
            2,
        )
    });
}

/// The server loses every client, as a restart of an in-memory server does: oidc-provider's
/// harness is restarted on the same port, the others are told to forget.
fn forget_everything(provider: Provider) -> Provider {
    if provider.kind != ServerKind::OidcProvider {
        provider.forget_clients();
        return provider;
    }
    let port = provider.origin.rsplit(':').next().unwrap().to_string();
    drop(provider);
    Provider::start_kind(ServerKind::OidcProvider, &["--port", &port])
}

/// The server forgets its clients (a restart of an in-memory server): the next refresh meets
/// `invalid_client`, the client registers again once, and a login completes the recovery;
/// `forget` of a client the server no longer knows still removes it locally.
fn server_forgot(column: &mut Column, kind: ServerKind) {
    let provider = Provider::start_kind(kind, &[]);
    let tenure = Tenure::new(&format!("matrix-{}-restart", kind.name()));
    let port = add_user_client(&tenure, &provider, None, &[]);
    tenure.log_in("app", &port);
    let provider = forget_everything(provider);
    column.cell("server forgot the client", || {
        let before = seen(&provider);
        let counts = delta(&provider, &["registrations"], || {
            let run = tenure.run(&["--now", &from_now(7200), "token", "app"]);
            assert_eq!(
                run.code, 4,
                "login required after registering again: {run:?}"
            );
            assert!(run.stderr.contains("registering again"), "{run:?}");
        });
        assert_eq!(counts, [1]);
        let counts = delta(&provider, &["registrations"], || {
            tenure.log_in("app", &port)
        });
        assert_eq!(counts, [0], "the new registration is used");
        let sent = seen(&provider) - before;
        tenure.ok(&["token", "app"]);
        // The refused refresh, the registration, then the login's code exchange.
        requests("1 new registration, then a login", sent, 3)
    });
    column.cell("forget", || {
        let deletes = delta(&provider, &["deletes"], || {
            let run = tenure.run(&["forget", "app"]);
            assert_eq!(run.code, 0, "{run:?}");
            if !kind.manages_registrations() {
                assert!(run.stderr.contains("cannot be deleted there"), "{run:?}");
            }
        });
        let expected = u64::from(kind.manages_registrations());
        assert_eq!(deletes, [expected]);
        assert!(tenure.stored().is_none(), "removed locally");
        if kind.manages_registrations() {
            "deleted at the server and locally".into()
        } else {
            "no RFC 7592: said so, removed locally".into()
        }
    });
    if kind.manages_registrations() {
        let again = Tenure::new(&format!("matrix-{}-forget", kind.name()));
        let port = add_user_client(&again, &provider, None, &[]);
        again.log_in("app", &port);
        let _restarted = forget_everything(provider);
        column.cell("forget after the server forgot", || {
            let run = again.run(&["forget", "app"]);
            assert_eq!(run.code, 0, "{run:?}");
            assert!(run.stderr.contains("no longer knows"), "{run:?}");
            assert!(again.stored().is_none());
            "the server's refusal reported; removed locally".into()
        });
    }
}

/// A machine client, where the server offers the client credentials grant.
fn machine_client(column: &mut Column, provider: &Provider) {
    let grants = metadata(provider)["grant_types_supported"].clone();
    let offered = grants
        .as_array()
        .is_some_and(|g| g.iter().any(|g| g == "client_credentials"));
    if !offered {
        column.rows.push((
            "client credentials".into(),
            Ok("not offered by the server".into()),
        ));
        return;
    }
    let tenure = Tenure::new(&format!("matrix-{}-machine", provider.kind.name()));
    column.cell("client credentials", || {
        tenure.add_machine_client(&provider.issuer, &[]);
        let counts = delta(
            provider,
            &["registrations", "token_client_credentials"],
            || {
                tenure.ok(&["token", "svc"]);
                tenure.ok(&["token", "svc"]);
            },
        );
        assert_eq!(counts, [1, 1], "the second call is warm");
        "1 registration, 1 token request for 2 calls".into()
    });
}

fn run_matrix(kind: ServerKind) {
    let mut column = Column {
        kind,
        rows: Vec::new(),
        requests: Vec::new(),
    };
    let provider = Provider::start_kind(kind, &[]);
    let listed = auth_methods(&provider);
    for method in ["none", "client_secret_post", "client_secret_basic"] {
        if listed.iter().any(|m| m == method) {
            login_warm_refresh(&mut column, &provider, method);
        } else {
            unlisted_method(&mut column, &provider, method);
        }
    }
    machine_client(&mut column, &provider);
    issuer_without_its_slash(&mut column, &provider);
    drop(provider);
    refused_registration(&mut column, kind);
    secret_expiry(&mut column, kind);
    server_forgot(&mut column, kind);
    column.finish();
}

#[test]
fn matrix_oidc_provider() {
    run_matrix(ServerKind::OidcProvider);
}

#[test]
fn matrix_mcp_typescript_sdk() {
    run_matrix(ServerKind::McpTsSdk);
}

#[test]
fn matrix_mcp_python_sdk() {
    run_matrix(ServerKind::McpPythonSdk);
}

#[test]
fn matrix_authlib() {
    run_matrix(ServerKind::Authlib);
}
