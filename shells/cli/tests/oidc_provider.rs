//! The `tenure` binary against a real authorization server (oidc-provider on 127.0.0.1),
//! driven as a user drives it. Counts are taken at the server, not from Tenure's output.

mod support;

use std::time::{Duration, Instant};

use support::{client_credentials, complete_login, free_port, Provider, Tenure};

fn wait_until(at: Instant) {
    if let Some(left) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// A confidential DCR client with client credentials. With a secret that lives 8 s and a
/// renewal window of 5 s: the first token registers and does not renew; once in the window,
/// one start renews exactly once (MGMT-7, INV-1), the new secret and rotated registration
/// access token are stored (INV-4, MGMT-5), the new secret works and the old one is refused;
/// a second start with the fresh secret does not renew again.
#[test]
fn a_confidential_client_renews_its_secret_once_and_keeps_working() {
    let provider = Provider::start(&["--secret-ttl", "8"]);
    let tenure = Tenure::new("renew");
    let registered_at = Instant::now();
    tenure.add_machine_client(
        &provider.issuer,
        &[
            "--auth-method",
            "client_secret_basic",
            "--renew-within",
            "5s",
        ],
    );
    let first = tenure.ok(&["token", "svc"]);
    assert!(!first.stdout.trim().is_empty(), "no token printed");
    assert_eq!(provider.count("registrations"), 1);
    assert_eq!(
        provider.count("updates"),
        0,
        "a fresh secret must not be renewed"
    );
    let before = tenure.record();
    let old = before.dcr.clone().expect("a DCR registration is stored");
    let status = tenure.status("svc");
    assert_eq!(status["identity"], "dcr");
    assert_eq!(status["renewal_due"], false);

    // Into the renewal window (expiry at +8 s, window 5 s).
    wait_until(registered_at + Duration::from_millis(4_000));
    let renewed_run = tenure.ok(&["token", "svc"]);
    assert!(!renewed_run.stdout.trim().is_empty());
    assert_eq!(provider.count("updates"), 1, "exactly one PUT per start");
    assert_eq!(provider.count("registrations"), 1);
    let after = tenure.record();
    let new = after.dcr.clone().unwrap();
    assert_eq!(
        new.client_id, old.client_id,
        "MGMT-6: the client id never changes"
    );
    assert_ne!(
        new.client_secret, old.client_secret,
        "the renewed secret is stored"
    );
    assert_ne!(
        new.registration_access_token, old.registration_access_token,
        "the rotated registration access token is stored"
    );
    assert!(after.generation > before.generation);
    let (status, _) = client_credentials(
        &provider,
        &new.client_id,
        new.client_secret.as_ref().unwrap().expose(),
    );
    assert_eq!(status, 200, "the new secret works");
    let (status, error) = client_credentials(
        &provider,
        &old.client_id,
        old.client_secret.as_ref().unwrap().expose(),
    );
    assert_eq!(
        (status, error.as_str()),
        (401, "invalid_client"),
        "the old secret is refused"
    );

    // A new start while the renewed secret is fresh: a token, and no second renewal.
    tenure.ok(&["token", "svc"]);
    assert_eq!(
        provider.count("updates"),
        1,
        "a fresh secret is not renewed again"
    );
}

/// Renewal failing before expiry is a warning and the old secret keeps working; after expiry
/// it is the hard error, exit 5, naming the expiry time (INV-6).
#[test]
fn a_failing_renewal_warns_before_expiry_and_fails_hard_after() {
    // Access tokens shorter than Tenure's 30 s margin are never reused, so every `token`
    // really goes to the token endpoint with the client secret.
    let provider = Provider::start(&["--secret-ttl", "6", "--access-token-ttl", "1"]);
    let tenure = Tenure::new("failing");
    let registered_at = Instant::now();
    tenure.add_machine_client(&provider.issuer, &["--renew-within", "4s"]);
    tenure.ok(&["token", "svc"]);
    provider.fail_updates(true);

    wait_until(registered_at + Duration::from_millis(3_000));
    let soft = tenure.run(&["token", "svc"]);
    assert_eq!(
        soft.code, 0,
        "a renewal failing before expiry must not fail the command: {soft:?}"
    );
    assert!(
        !soft.stdout.trim().is_empty(),
        "the old secret still gets a token"
    );
    assert!(
        soft.stderr.contains("warning"),
        "the failure is a warning: {soft:?}"
    );
    assert_eq!(provider.count("updates"), 1);
    assert_eq!(
        provider.count("token_client_credentials"),
        2,
        "the old secret was used"
    );

    wait_until(registered_at + Duration::from_millis(7_000));
    let hard = tenure.run(&["token", "svc"]);
    assert_eq!(
        hard.code, 5,
        "after expiry a failed renewal is exit 5: {hard:?}"
    );
    let expiry = tenure.status("svc")["secret_expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        hard.stderr.contains(&expiry),
        "the error names the expiry {expiry}: {hard:?}"
    );
    assert_eq!(
        provider.count("token_client_credentials"),
        2,
        "INV-5: no expired secret sent"
    );
}

/// A public client logs in with authorization code + PKCE through the loopback callback,
/// completed by an HTTP client following the redirects; a restart with valid tokens sends
/// no request at all; an expired access token is refreshed and the rotated refresh token
/// replaces the old one (INV-10).
#[test]
fn a_public_client_logs_in_then_starts_warm_then_refreshes() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("login");
    let port = free_port().to_string();
    tenure.ok(&[
        "add",
        "cli",
        "--issuer",
        &provider.issuer,
        "--scope",
        "read",
        "--scope",
        "offline_access",
        "--auth-method",
        "none",
        "--redirect-port",
        &port,
    ]);
    let (mut login, url) = tenure.start_login("cli");
    assert!(
        url.contains("code_challenge_method=S256"),
        "PKCE S256: {url}"
    );
    let query = complete_login(&url, &format!("http://127.0.0.1:{port}/callback"));
    assert!(query.contains("code=") && query.contains("iss="), "{query}");
    let status = login.wait().unwrap();
    assert!(status.success(), "tenure login failed");
    assert_eq!(provider.count("registrations"), 1);
    assert_eq!(provider.count("token_authorization_code"), 1);

    let before = provider.counts()["requests"].as_array().unwrap().len();
    let token = tenure.ok(&["token", "cli"]);
    assert!(!token.stdout.trim().is_empty());
    let after = provider.counts()["requests"].as_array().unwrap().len();
    assert_eq!(
        after, before,
        "a warm start with a valid token sends no request"
    );

    let first_refresh = tenure.record().tokens.unwrap().refresh_token;
    assert!(first_refresh.is_some(), "a refresh token was issued");
    let later = "2100-01-01T00:00:00Z";
    let refreshed = tenure.run(&["--now", later, "token", "cli"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    assert_eq!(provider.count("token_refresh_token"), 1);
    let rotated = tenure.record().tokens.unwrap().refresh_token;
    assert!(
        rotated.is_some() && rotated != first_refresh,
        "the rotated refresh token is kept"
    );
}

/// `logout` drops the tokens and keeps the registration; `forget` deletes the registration at
/// the server (MGMT-13), after which the server refuses it, and removes it locally.
#[test]
fn logout_keeps_the_registration_and_forget_deletes_it_at_the_server() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("forget");
    tenure.add_machine_client(&provider.issuer, &[]);
    tenure.ok(&["token", "svc"]);
    tenure.ok(&["logout", "svc"]);
    let status = tenure.status("svc");
    assert_eq!(status["identity"], "dcr", "logout keeps the registration");
    assert_eq!(status["access_token_expires_at"], serde_json::Value::Null);
    let record = tenure.record();
    assert!(record.tokens.is_none());
    let dcr = record.dcr.unwrap();

    tenure.ok(&["forget", "svc"]);
    assert_eq!(provider.count("deletes"), 1);
    let (status, error) = client_credentials(
        &provider,
        &dcr.client_id,
        dcr.client_secret.as_ref().unwrap().expose(),
    );
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    let gone = tenure.run(&["token", "svc"]);
    assert_eq!(gone.code, 2, "the client is gone locally too: {gone:?}");
    assert!(gone.stderr.contains("tenure add svc"), "{gone:?}");
}

/// Registration with an RFC 7591 initial access token read from the environment.
#[test]
fn an_initial_access_token_opens_registration() {
    let provider = Provider::start(&["--initial-access-token", "let-me-in"]);
    let tenure = Tenure::new("iat");
    tenure.add_machine_client(
        &provider.issuer,
        &["--initial-access-token-env", "TENURE_TEST_IAT"],
    );
    let refused = tenure.run_with(&["token", "svc"], &[("TENURE_TEST_IAT", "wrong")]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(
        !refused.stderr.contains("wrong"),
        "INV-12: no secret in errors"
    );
    let run = tenure.run_with(&["token", "svc"], &[("TENURE_TEST_IAT", "let-me-in")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(provider.count("registrations"), 1);
}

/// Metadata whose issuer differs from the configured one is never used (DISC-4).
#[test]
fn an_issuer_mismatch_is_refused() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("mismatch");
    let wrong = provider.issuer.replace("127.0.0.1", "localhost");
    tenure.add_machine_client(&wrong, &[]);
    let run = tenure.run(&["token", "svc"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("issuer"), "{run:?}");
    assert_eq!(
        provider.count("registrations"),
        0,
        "nothing registered with a wrong issuer"
    );
}

/// Serves `body` (announcing `length` bytes when given) to up to `answers` requests on a
/// free port, in a thread; returns the port.
fn serve(body: String, answers: usize, length: Option<usize>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    serve_listener(listener, body, answers, length)
}

fn serve_on(port: u16, body: String, answers: usize) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    serve_listener(listener, body, answers, None);
}

fn serve_listener(
    listener: std::net::TcpListener,
    body: String,
    answers: usize,
    length: Option<usize>,
) -> u16 {
    use std::io::{Read, Write};
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(answers) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                length.unwrap_or(body.len())
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    });
    port
}

/// A 10 MB metadata document is refused from its announced length, without reading it whole.
#[test]
fn a_ten_megabyte_metadata_document_is_refused() {
    let port = serve("{".repeat(1024), 4, Some(10 * 1024 * 1024));
    let tenure = Tenure::new("huge");
    let issuer = format!("http://127.0.0.1:{port}");
    tenure.add_machine_client(&issuer, &[]);
    let run = tenure.run(&["token", "svc"]);
    assert_ne!(run.code, 0, "{run:?}");
    // Refused from the announced length, before the body is read.
    assert!(
        run.stderr.contains("announces 10485760 bytes, over the"),
        "the error names the announced size and the limit: {run:?}"
    );
}

/// Every command works on a Redis store too (`--store redis://…`), and the record is there
/// for a second process on the same store.
#[test]
fn the_cli_keeps_its_credentials_in_redis() {
    let redis_port = free_port();
    let _redis = support::Guard(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian: apt-get install redis-server)"),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let provider = Provider::start(&[]);
    let url = format!("redis://127.0.0.1:{redis_port}/0");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(["--store", &url])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let added = run(&support::add_machine_client_args(&provider.issuer));
    assert_eq!(added.0, Some(0), "{added:?}");
    let first = run(&["token", "svc"]);
    let second = run(&["token", "svc"]);
    assert_eq!(first.0, Some(0));
    assert_eq!(
        first.1, second.1,
        "the second process is served the stored token"
    );
    assert_eq!(provider.count("registrations"), 1);
    assert_eq!(provider.count("token_client_credentials"), 1);
    let status = run(&["--json", "status"]);
    assert!(status.1.contains("\"identity\":\"dcr\""), "{status:?}");
}

/// A CIMD client id the server accepts: no registration request at all (CIMD-1), and the
/// login completes with the document URL as the client id.
#[test]
fn a_cimd_client_id_is_used_without_registering() {
    let provider = Provider::start(&["--cimd"]);
    let redirect_port = free_port().to_string();
    // The harness fetches https://127.0.0.1:P/… ids over plain http on the same port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let document_port = listener.local_addr().unwrap().port();
    drop(listener);
    let client_id = format!("https://127.0.0.1:{document_port}/client.json");
    let document = serde_json::json!({
        "client_id": client_id,
        "client_name": "Tenure CIMD test",
        "redirect_uris": [format!("http://127.0.0.1:{redirect_port}/callback")],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    serve_on(document_port, document.to_string(), 8);
    let tenure = Tenure::new("cimd");
    tenure.ok(&[
        "add",
        "cimd",
        "--issuer",
        &provider.issuer,
        "--scope",
        "read",
        "--cimd-url",
        &client_id,
        "--redirect-port",
        &redirect_port,
    ]);
    let (mut login, url) = tenure.start_login("cimd");
    assert!(url.contains("client_id=https%3A%2F%2F127.0.0.1"), "{url}");
    complete_login(&url, &format!("http://127.0.0.1:{redirect_port}/callback"));
    assert!(login.wait().unwrap().success());
    assert_eq!(
        provider.count("registrations"),
        0,
        "CIMD needs no registration"
    );
    assert_eq!(provider.count("token_authorization_code"), 1);
    assert_eq!(tenure.status("cimd")["identity"], "cimd");
}

/// A CIMD client id the server refuses at the authorization endpoint (`unauthorized_client`
/// in the error redirect) falls back to dynamic registration exactly once (INV-3), and the
/// refusal is remembered so the CIMD id is not tried again (INV-2: it is never stored as a
/// DCR id).
#[test]
fn a_refused_cimd_client_id_falls_back_to_registration_once() {
    use std::io::{BufRead, BufReader};
    let provider = Provider::start(&["--cimd"]);
    let url = provider.admin("reject-cimd?on=1");
    assert_eq!(support::request("POST", &url, &[], "").0, 200);
    let redirect_port = free_port().to_string();
    let client_id = format!("https://127.0.0.1:{}/client.json", free_port());
    let tenure = Tenure::new("cimd-refused");
    tenure.ok(&[
        "add",
        "cimd",
        "--issuer",
        &provider.issuer,
        "--scope",
        "read",
        "--cimd-url",
        &client_id,
        "--redirect-port",
        &redirect_port,
    ]);
    let mut login = tenure
        .command(&["login", "cimd", "--no-browser"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let callback = format!("http://127.0.0.1:{redirect_port}/callback");
    let mut logins = Vec::new();
    for line in BufReader::new(login.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take(40)
    {
        if let Some(url) = line.strip_prefix("open: ") {
            logins.push(url.to_string());
            complete_login(url, &callback);
        }
    }
    assert!(
        login.wait().unwrap().success(),
        "the login ends with a token"
    );
    assert_eq!(
        logins.len(),
        2,
        "one refused CIMD login, one after registering"
    );
    assert!(
        logins[0].contains("client_id=https%3A%2F%2F127.0.0.1"),
        "{}",
        logins[0]
    );
    assert!(!logins[1].contains("client_id=https"), "{}", logins[1]);
    assert_eq!(
        provider.count("registrations"),
        1,
        "exactly one fallback to DCR"
    );
    assert_eq!(tenure.status("cimd")["identity"], "dcr");
    let record = tenure.record();
    assert!(
        record.cimd.as_ref().is_some_and(|c| c.rejected),
        "the refusal is kept"
    );
    assert_ne!(record.dcr.unwrap().client_id, client_id, "INV-2");
}

/// `tenure token --refused`: the resource refused the token printed last, so it is never
/// printed again; a machine client fetches a new one at once (RFC 6750 §3.1).
#[test]
fn a_token_the_resource_refused_is_replaced() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("refused");
    tenure.add_machine_client(&provider.issuer, &[]);
    let first = tenure.ok(&["token", "svc"]).stdout;
    assert_eq!(tenure.ok(&["token", "svc"]).stdout, first, "a warm call");
    let issued = provider.count("token_client_credentials");
    let second = tenure.ok(&["token", "svc", "--refused"]).stdout;
    assert_ne!(second, first, "the refused token is not handed out again");
    assert_eq!(provider.count("token_client_credentials"), issued + 1);
    assert_eq!(
        tenure.ok(&["token", "svc"]).stdout,
        second,
        "the new one is kept"
    );
}

/// A warm `tenure token` prints the token the last command left valid without opening the
/// store: with the store's database moved away it still prints it. Commands that change what
/// `token` should print remove that handout first (logout here; `--refused` above).
#[test]
fn a_warm_token_is_printed_without_opening_the_store() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("handout");
    tenure.add_machine_client(&provider.issuer, &[]);
    let first = tenure.ok(&["token", "svc"]).stdout;
    let handouts = tenure.store.join("handouts");
    let files = || std::fs::read_dir(&handouts).map_or(0, |d| d.count());
    assert_eq!(files(), 1, "the token command left a handout");

    tenure.ok(&["logout", "svc"]);
    assert_eq!(files(), 0, "logout removes it");
    let second = tenure.ok(&["token", "svc"]).stdout;
    assert_ne!(second, first, "logged out: a new token was fetched");
    let issued = provider.count("token_client_credentials");

    let database = tenure.store.join("db");
    let away = tenure.store.join("db.away");
    std::fs::rename(&database, &away).expect("the sled database file");
    let warm = tenure.run(&["token", "svc"]);
    std::fs::rename(&away, &database).unwrap();
    assert_eq!(warm.code, 0, "{warm:?}");
    assert_eq!(
        warm.stdout, second,
        "served from the handout, not the store"
    );
    assert_eq!(provider.count("token_client_credentials"), issued);
    let json: serde_json::Value =
        serde_json::from_str(&tenure.ok(&["--json", "token", "svc"]).stdout).unwrap();
    assert_eq!(json["access_token"].as_str(), Some(second.trim()));
}

/// Writes a P-256 key made from `seed` as PKCS#8 PEM to `path`; returns the PEM's Base64
/// body, to look for in output.
fn write_key(path: &std::path::Path, seed: u8) -> String {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    std::fs::write(path, pem.as_bytes()).unwrap();
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect()
}

/// A `private_key_jwt` machine client with no client id registers its public key (RFC 7591
/// `jwks`) and gets tokens for its assertions; when the operator replaces the key file, the
/// next run registers the new key through RFC 7592 (one PUT, same client), the new key's
/// assertions are accepted, and no private key material shows in any output (INV-12).
#[test]
fn a_key_client_registers_its_key_and_follows_a_replaced_one() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("keyed");
    let key_file = tenure.store.with_extension("key.pem");
    let first_private = write_key(&key_file, 42);
    tenure.add_machine_client(
        &provider.issuer,
        &[
            "--auth-method",
            "private_key_jwt",
            "--private-key-file",
            key_file.to_str().unwrap(),
        ],
    );
    let first = tenure.ok(&["token", "svc"]);
    assert!(!first.stdout.trim().is_empty());
    assert_eq!(provider.count("registrations"), 1);
    assert_eq!(provider.count("token_client_credentials"), 1);
    let client_id = tenure.record().dcr.expect("registered").client_id;

    // `--refused` sets the held token aside, so the next token needs an assertion.
    let second_private = write_key(&key_file, 43);
    let second = tenure.ok(&["token", "svc", "--refused"]);
    assert!(!second.stdout.trim().is_empty());
    assert_eq!(provider.count("registrations"), 1, "no new client");
    assert_eq!(provider.count("updates"), 1, "the key was registered again");
    assert_eq!(provider.count("token_client_credentials"), 2);
    assert_eq!(tenure.record().dcr.unwrap().client_id, client_id);

    tenure.ok(&["token", "svc", "--refused"]);
    assert_eq!(provider.count("token_client_credentials"), 3);
    assert_eq!(
        provider.count("updates"),
        1,
        "a current key is not sent again"
    );

    let status = tenure.ok(&["--json", "status", "svc"]);
    for run in [&first, &second, &status] {
        for private in [&first_private, &second_private] {
            assert!(
                !run.stdout.contains(private.as_str()) && !run.stderr.contains(private.as_str())
            );
        }
        assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));
    }
}
