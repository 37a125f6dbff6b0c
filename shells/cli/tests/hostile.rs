//! The `tenure` binary against hostile servers and hostile neighbours on 127.0.0.1: answers in
//! unexpected shapes full of planted secrets, absurd numbers, escape sequences, redirects,
//! insecure endpoints, a proxy that must not see loopback traffic, and bad options.
//!
//! Every case checks that nothing panics (exit code never 101), that no planted secret
//! appears in stdout, stderr or the `--record` trace, and what the user is told.

mod support;

use serde_json::{json, Value};
use support::*;

/// Values no output may ever show.
const PLANTED: [&str; 4] = [
    "planted-client-secret",
    "planted-access-token",
    "planted-refresh-token",
    "planted-registration-token",
];

/// Metadata for a machine client, with the endpoints of `origin` unless overridden.
fn metadata(origin: &str, overrides: Value) -> Value {
    let mut document = json!({
        "issuer": origin,
        "token_endpoint": format!("{origin}/token"),
        "registration_endpoint": format!("{origin}/register"),
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "grant_types_supported": ["client_credentials"],
    });
    for (name, value) in overrides.as_object().unwrap() {
        document[name] = value.clone();
    }
    document
}

/// A registration answer; `extra` members are merged in.
fn registration(extra: Value) -> Value {
    let mut answer = json!({
        "client_id": "c1",
        "client_secret": "planted-client-secret",
        "client_secret_expires_at": 0,
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["client_credentials"],
    });
    for (name, value) in extra.as_object().unwrap() {
        answer[name] = value.clone();
    }
    answer
}

/// A server answering discovery, registration and the token endpoint as scripted.
fn server(meta: Value, registered: Value, token: Answer) -> FakeServer {
    FakeServer::start(|origin| {
        let mut meta = meta;
        if meta.is_null() {
            meta = metadata(origin, json!({}));
        }
        let meta_text = meta.to_string().replace("{origin}", origin);
        vec![
            (
                "GET /.well-known/oauth-authorization-server".into(),
                Answer::raw(200, "application/json", meta_text.as_bytes()),
            ),
            ("POST /register".into(), Answer::json(201, &registered)),
            ("POST /token".into(), token),
        ]
    })
}

/// Runs `token svc` for a machine client of `server` with a trace, and checks the common
/// rules: no panic, no planted secret in any output or in the trace.
fn run_case(name: &str, server: &FakeServer, env: &[(&str, &str)]) -> Run {
    let tenure = Tenure::new(&format!("hostile-{name}"));
    tenure.add_machine_client(&server.origin, &[]);
    let trace = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hostile-{name}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&trace);
    let trace_arg = trace.display().to_string();
    let run = tenure.run_with(&["--record", &trace_arg, "token", "svc"], env);
    assert_ne!(run.code, 101, "{name}: the binary panicked: {run:?}");
    let trace_text = std::fs::read_to_string(&trace).unwrap_or_default();
    for secret in PLANTED {
        for (what, text) in [
            ("stdout", &run.stdout),
            ("stderr", &run.stderr),
            ("trace", &trace_text),
        ] {
            // The one intended output: a successful `token` prints the access token.
            let intended = run.code == 0 && what == "stdout" && secret == "planted-access-token";
            assert!(
                intended || !text.contains(secret),
                "{name}: {secret} in {what}: {text}"
            );
        }
    }
    // A refused or unreadable answer leaves nothing of itself in the store.
    if run.code != 0 {
        let tokens = tenure.stored().and_then(|record| record.tokens);
        assert!(tokens.is_none(), "{name}: a refused answer was stored");
    }
    run
}

fn token_answer(extra: Value) -> Answer {
    let mut answer = json!({"access_token": "planted-access-token", "token_type": "Bearer",
                            "expires_in": 3600});
    for (name, value) in extra.as_object().unwrap() {
        answer[name] = value.clone();
    }
    Answer::json(200, &answer)
}

#[test]
fn token_answers_in_other_shapes_are_never_quoted() {
    let shapes: [(&str, &[u8], &str); 3] = [
        (
            "form",
            b"access_token=planted-access-token&token_type=bearer&refresh_token=planted-refresh-token",
            "form-encoded",
        ),
        (
            "trailing",
            br#"{"access_token":"planted-access-token","token_type":"Bearer"} and more"#,
            "followed by more bytes",
        ),
        (
            "cut",
            br#"{"access_token":"planted-access-token","token_ty"#,
            "cut short",
        ),
    ];
    for (name, body, said) in shapes {
        let fake = server(
            Value::Null,
            registration(json!({})),
            Answer::raw(200, "application/x-www-form-urlencoded", body),
        );
        let run = run_case(name, &fake, &[]);
        assert_ne!(run.code, 0, "{name}: {run:?}");
        assert!(run.stderr.contains(said), "{name}: {run:?}");
    }
}

#[test]
fn json_behind_a_byte_order_mark_is_read() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(
        br#"{"access_token":"planted-access-token","token_type":"Bearer","expires_in":60}"#,
    );
    let fake = server(
        Value::Null,
        registration(json!({})),
        Answer::raw(200, "application/json", &body),
    );
    let tenure = Tenure::new("hostile-bom");
    tenure.add_machine_client(&fake.origin, &[]);
    let run = tenure.run(&["token", "svc"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), "planted-access-token");
}

#[test]
fn escape_sequences_and_dumps_from_the_server_are_cleaned() {
    let description = format!("\u{1b}]0;pwned\u{7}\u{1b}[31mred\n{}", "x".repeat(5000));
    let fake = server(
        Value::Null,
        registration(json!({})),
        Answer::json(
            400,
            &json!({"error": "invalid_client", "error_description": description}),
        ),
    );
    let run = run_case("escapes", &fake, &[]);
    assert_ne!(run.code, 0);
    assert!(!run.stderr.contains('\u{1b}'), "{run:?}");
    assert!(!run.stderr.contains('\u{7}'), "{run:?}");
    assert!(
        run.stderr.len() < 2000,
        "bounded: {} bytes",
        run.stderr.len()
    );
}

#[test]
fn absurd_numbers_neither_panic_nor_leak() {
    let expiries = [json!(1e300), json!("-1"), json!(i64::MAX), json!(-5)];
    for (i, expiry) in expiries.iter().enumerate() {
        let fake = server(
            Value::Null,
            registration(json!({"client_secret_expires_at": expiry})),
            token_answer(json!({})),
        );
        let run = run_case(&format!("secret-expiry-{i}"), &fake, &[]);
        assert_eq!(run.code, 0, "{expiry}: {run:?}");
    }
    let lifetimes = [json!(1e19), json!("soon"), json!(-5), json!(i64::MAX)];
    for (i, lifetime) in lifetimes.iter().enumerate() {
        let fake = server(
            Value::Null,
            registration(json!({})),
            token_answer(json!({"expires_in": lifetime})),
        );
        let tenure = Tenure::new(&format!("hostile-lifetime-{i}"));
        tenure.add_machine_client(&fake.origin, &[]);
        let run = tenure.run(&["--json", "token", "svc"]);
        assert_eq!(run.code, 0, "{lifetime}: {run:?}");
        let printed: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert!(
            printed["expires_at"].is_string(),
            "{lifetime}: a bounded lifetime, never `valid for ever`: {printed}"
        );
    }
}

#[test]
fn a_token_endpoint_that_redirects_is_not_followed() {
    let elsewhere = FakeServer::start(|_| Vec::new());
    let target = format!("{}/steal", elsewhere.origin);
    let fake = server(
        Value::Null,
        registration(json!({})),
        Answer {
            status: 302,
            headers: vec![("Location".into(), target)],
            body: Vec::new(),
        },
    );
    let run = run_case("redirect", &fake, &[]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        elsewhere.hits().is_empty(),
        "the other port received {:?}",
        elsewhere.hits()
    );
}

#[test]
fn javascript_and_file_endpoints_are_refused() {
    for (i, endpoint) in ["javascript:alert(1)", "file:///etc/passwd"]
        .iter()
        .enumerate()
    {
        let fake = FakeServer::start(|origin| {
            vec![(
                "GET /.well-known/oauth-authorization-server".into(),
                Answer::json(200, &metadata(origin, json!({"token_endpoint": endpoint}))),
            )]
        });
        let run = run_case(&format!("endpoint-{i}"), &fake, &[]);
        assert_ne!(run.code, 0, "{endpoint}: {run:?}");
        assert!(
            !fake.hits().iter().any(|h| h.starts_with("POST")),
            "nothing registered: {:?}",
            fake.hits()
        );
    }
}

#[test]
fn a_registration_client_uri_on_another_origin_gets_no_token() {
    let elsewhere = FakeServer::start(|_| Vec::new());
    let uri = format!("{}/register/c1", elsewhere.origin);
    let fake = server(
        Value::Null,
        registration(json!({
            "registration_client_uri": uri,
            "registration_access_token": "planted-registration-token",
            "client_secret_expires_at": 1,
        })),
        token_answer(json!({})),
    );
    let run = run_case("foreign-uri", &fake, &[]);
    assert!(
        run.stderr.contains("refused the registration client URI"),
        "{run:?}"
    );
    assert!(elsewhere.hits().is_empty(), "{:?}", elsewhere.hits());
    // Its secret expired in 1970 and cannot be renewed: one more registration, then a
    // clear failure, never a loop.
    let registrations = fake
        .hits()
        .iter()
        .filter(|h| *h == "POST /register")
        .count();
    assert_eq!(registrations, 2, "{:?}", fake.hits());
    assert_eq!(run.code, 5, "{run:?}");
}

#[test]
fn a_proxy_never_sees_loopback_traffic() {
    let proxy = FakeServer::start(|_| Vec::new());
    let fake = server(
        Value::Null,
        registration(json!({})),
        token_answer(json!({})),
    );
    let proxy_url = proxy.origin.clone();
    let run = run_case(
        "proxy",
        &fake,
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("http_proxy", proxy_url.as_str()),
            ("ALL_PROXY", proxy_url.as_str()),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(proxy.hits().is_empty(), "the proxy saw {:?}", proxy.hits());
    assert!(fake.hits().contains(&"POST /token".to_string()));
}

#[test]
fn bad_options_are_usage_errors_before_anything_is_sent() {
    let tenure = Tenure::new("hostile-options");
    let run = tenure.run(&[
        "add",
        "app",
        "--issuer",
        "https://as.example.com",
        "--redirect-port",
        "0",
    ]);
    assert_eq!(run.code, 2, "port 0: {run:?}");
    let run = tenure.run_with(
        &[
            "add",
            "app",
            "--resource",
            "https://mcp.example.com/mcp",
            "--client-id",
            "pre",
            "--client-secret-env",
            "TENURE_TEST_SECRET",
        ],
        &[("TENURE_TEST_SECRET", "planted-client-secret")],
    );
    assert_eq!(run.code, 2, "a secret without --issuer: {run:?}");
    assert!(run.stderr.contains("--issuer"), "{run:?}");
    assert!(!run.stderr.contains("planted-client-secret"));
    let run = tenure.run(&["add", ".tenure/key/x", "--issuer", "https://as.example.com"]);
    assert_eq!(run.code, 2, "a name in Tenure's own space: {run:?}");
    assert!(run.stderr.contains("choose another name"), "{run:?}");
}

/// A local process that reaches the loopback callback first (a forged `state`, idle
/// connections) neither ends the login nor delays it: the real redirect still completes it.
#[test]
fn a_forged_callback_does_not_kill_the_login() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("hostile-forged-callback");
    let port = tenure.add_user_client("app", &provider.issuer, &[]);
    let (mut login, url) = tenure.start_login("app");
    let callback = format!("http://127.0.0.1:{port}/callback");
    let idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap())
        .collect();
    let (status, _, forged_page) = request(
        "GET",
        &format!("{callback}?code=forged&state=not-the-state"),
        &[],
        "",
    );
    assert_eq!(status, 200, "a constant page for every caller");
    complete_login(&url, &callback);
    let status = login.wait().unwrap();
    assert!(status.success(), "the real redirect completed the login");
    assert!(forged_page.contains("close this tab"));
    drop(idle);
    tenure.ok(&["token", "app"]);
}

/// Adds a machine client of a well-behaved fake server and gets its token, both with `env`;
/// insists that both succeed and returns the two runs.
fn served_machine_client(tenure: &Tenure, env: &[(&str, &str)]) -> (Run, Run) {
    let fake = server(
        Value::Null,
        registration(json!({})),
        token_answer(json!({})),
    );
    let add = tenure.run_with(
        &[
            "add",
            "svc",
            "--issuer",
            &fake.origin,
            "--grant",
            "client_credentials",
        ],
        env,
    );
    assert_eq!(add.code, 0, "{add:?}");
    let run = tenure.run_with(&["token", "svc"], env);
    assert_eq!(run.code, 0, "{run:?}");
    (add, run)
}

/// A Redis that wants a password: given in the environment it works, and neither it nor a
/// password in the URL ever appears in what the binary prints.
#[test]
fn a_redis_password_works_from_the_environment_and_is_never_shown() {
    let password = "planted-redis-password";
    let redis = Redis::start_with(&["--requirepass", password]);
    let store = redis.url();
    let tenure = Tenure::on(store.clone());
    let without = tenure.run(&["status"]);
    assert_ne!(without.code, 0, "no password: {without:?}");
    assert_ne!(without.code, 101);
    let (add, run) = served_machine_client(&tenure, &[("TENURE_REDIS_PASSWORD", password)]);
    let wrong_url = store.replacen("redis://", "redis://:planted-wrong-password@", 1);
    let wrong = Tenure::on(wrong_url).run(&["status"]);
    assert_ne!(wrong.code, 0, "{wrong:?}");
    for run in [&without, &add, &run, &wrong] {
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains("planted-redis-password"), "{text}");
            assert!(!text.contains("planted-wrong-password"), "{text}");
        }
    }
}

/// `rediss://`: Redis over TLS, its certificate issued by a private CA that
/// `SSL_CERT_FILE` names.
#[test]
fn redis_over_tls_with_a_private_ca() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let file = |name: &str| dir.join(name).display().to_string();
    let tls_port = free_port().to_string();
    let (cert, key, ca) = (file("cert.pem"), file("key.pem"), file("ca.pem"));
    let redis = Redis::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let tenure = Tenure::on(format!("rediss://127.0.0.1:{tls_port}/0"));
    served_machine_client(&tenure, &[("SSL_CERT_FILE", ca.as_str())]);
    // Without the CA, the server's certificate is refused.
    let refused = tenure.run(&["status"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert_ne!(refused.code, 101, "{refused:?}");
    drop(redis);
}

/// `tenure status` of every client: one that cannot be read (its secret's variable unset)
/// is reported by name and the command fails, but the others are still listed, in the
/// table and as JSON lines.
#[test]
fn status_lists_the_other_clients_when_one_cannot_be_read() {
    let tenure = Tenure::new("status-unusable");
    tenure.ok(&[
        "add",
        "broken",
        "--issuer",
        "https://as.example.com",
        "--client-id",
        "x",
        "--client-secret-env",
        "TENURE_TEST_VARIABLE_NEVER_SET",
    ]);
    tenure.ok(&["add", "fine", "--issuer", "https://as.example.com"]);
    let table = tenure.run(&["status"]);
    assert_eq!(table.code, 1, "{table:?}");
    assert!(table.stdout.contains("fine"), "{table:?}");
    assert!(
        table.stderr.contains("`broken`")
            && table.stderr.contains("TENURE_TEST_VARIABLE_NEVER_SET"),
        "{table:?}"
    );
    let lines = tenure.run(&["--json", "status"]);
    let rows: Vec<Value> = lines
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{lines:?}");
    assert!(rows
        .iter()
        .any(|r| r["name"] == "fine" && r["state"] == "unregistered"));
    assert!(rows
        .iter()
        .any(|r| r["name"] == "broken" && r["error"].as_str().is_some()));
    // Asked for by name, the broken client is the command's error, as before.
    let one = tenure.run(&["status", "broken"]);
    assert_eq!(one.code, 1, "{one:?}");
    assert!(one.stdout.is_empty(), "{one:?}");
}
