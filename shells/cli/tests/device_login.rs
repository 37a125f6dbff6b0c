//! `tenure login --device` (RFC 8628) against a real authorization server: oidc-provider
//! with its device flow on. The test plays the user: it reads the user code the login
//! prints, and approves (or refuses) it at the server, as its confirmation page would.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{request, Provider, Tenure};

/// The initial access token the server demands for registration: a credential the test
/// knows, so it can check that no output ever shows it (INV-12).
const PLANTED: &str = "planted-initial-access-token-7c1e";
const IAT_VAR: &str = "TENURE_TEST_IAT";

/// A login running in the background, its stderr read line by line as it comes.
struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Login {
    fn spawn(tenure: &Tenure, args: &[&str], env: &[(&str, &str)]) -> Login {
        let mut command = tenure.command(args);
        command.env(IAT_VAR, PLANTED);
        // No display and no SSH session unless the test says so.
        for name in ["DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_TTY"] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = support::spawn_piped(command);
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Login {
            child,
            lines,
            seen: Vec::new(),
            stdout: Some(stdout),
        }
    }

    /// The value of the first stderr line `PREFIX: VALUE`, waiting at most 30 s.
    fn read(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        if let Some(value) = self.seen.iter().find_map(|l| l.strip_prefix(prefix)) {
            return value.to_string();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no `{prefix}` line on stderr; it said: {:?}", self.seen)
            });
            self.seen.push(line.clone());
            if let Some(value) = line.strip_prefix(prefix) {
                return value.to_string();
            }
        }
    }

    /// Waits for the end, at most 60 s; the exit code, stdout and all of stderr.
    fn finish(mut self) -> (i32, String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the login did not end within 60 s; stderr: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.seen.extend(self.lines.try_iter());
        // The reader thread may still hold the last lines for a moment.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        let stdout = self
            .stdout
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        (status.code().unwrap_or(-1), stdout, self.seen.join("\n"))
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn add_client(provider: &Provider, tenure: &Tenure) {
    tenure.ok(&[
        "add",
        "dev",
        "--issuer",
        &provider.issuer,
        "--scope",
        "read",
        "--auth-method",
        "client_secret_basic",
        "--initial-access-token-env",
        IAT_VAR,
    ]);
}

/// The user's decision at the server's confirmation step.
fn decide(provider: &Provider, user_code: &str, deny: bool) {
    // oidc-provider's user codes are letters and a dash: nothing to escape in a query.
    assert!(
        user_code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "an unexpected user code: {user_code}"
    );
    let query = format!("user_code={user_code}&deny={}", u8::from(deny));
    let (status, _, body) = request(
        "POST",
        &provider.admin(&format!("approve-device?{query}")),
        &[],
        "",
    );
    assert_eq!(status, 200, "the server did not take the decision: {body}");
}

/// Waits until the login has polled the token endpoint at least once (oidc-provider counts
/// a device poll as `token_other`), so the approval comes after an `authorization_pending`.
fn wait_for_a_poll(provider: &Provider) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while provider.count("token_other") == 0 {
        assert!(Instant::now() < deadline, "the login never polled");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_approved_device_login_stores_tokens_that_tenure_token_hands_out() {
    let provider = Provider::start(&["--device-flow", "--initial-access-token", PLANTED]);
    let tenure = Tenure::new("device-login");
    add_client(&provider, &tenure);

    let mut login = Login::spawn(&tenure, &["login", "dev", "--device"], &[]);
    let visit = login.read("visit: ");
    let code = login.read("code: ");
    assert!(
        visit.starts_with(&format!("{}/device", provider.issuer)),
        "the verification URI is the server's: {visit}"
    );
    // The complete URI carries the code (RFC 8628 §3.3.1).
    let complete = login.read("or visit (code included): ");
    assert!(complete.contains("user_code="), "{complete}");

    wait_for_a_poll(&provider);
    decide(&provider, &code, false);
    let (status, stdout, stderr) = login.finish();
    assert_eq!(status, 0, "the login failed: {stderr}");
    assert_eq!(provider.count("registrations"), 1);
    assert!(
        provider.count("token_other") >= 2,
        "pending, then the tokens"
    );

    // Stored like any login: `tenure token` prints the access token without a login.
    let record = tenure.record();
    let tokens = record.tokens.clone().expect("tokens are stored");
    assert!(tokens.refresh_token.is_some(), "offline_access was granted");
    let token = tenure.ok(&["token", "dev"]);
    assert_eq!(token.stdout.trim(), tokens.access_token.expose());

    // INV-12: no credential in what the login printed.
    let secret = record
        .dcr
        .as_ref()
        .and_then(|d| d.client_secret.clone())
        .expect("a confidential client");
    let printed = format!("{stdout}\n{stderr}");
    for credential in [
        PLANTED,
        secret.expose(),
        tokens.access_token.expose(),
        tokens.refresh_token.as_ref().unwrap().expose(),
    ] {
        assert!(
            !printed.contains(credential),
            "a credential was printed: {printed}"
        );
    }
}

#[test]
fn without_a_display_the_device_login_is_chosen_and_a_refusal_ends_it() {
    let provider = Provider::start(&["--device-flow", "--initial-access-token", PLANTED]);
    let tenure = Tenure::new("device-refused");
    add_client(&provider, &tenure);

    // An SSH session, no flag: the server offers the device login, so it is used.
    let mut login = Login::spawn(
        &tenure,
        &["login", "dev"],
        &[("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")],
    );
    let code = login.read("code: ");
    decide(&provider, &code, true);
    let (status, stdout, stderr) = login.finish();
    assert_ne!(status, 0, "a refused login must fail");
    assert!(stderr.contains("access_denied"), "{stderr}");
    assert!(tenure.record().tokens.is_none());
    let printed = format!("{stdout}\n{stderr}");
    assert!(!printed.contains(PLANTED), "{printed}");
}

#[test]
fn device_login_against_a_server_without_it_says_so() {
    let provider = Provider::start(&["--initial-access-token", PLANTED]);
    let tenure = Tenure::new("device-absent");
    add_client(&provider, &tenure);
    let login = Login::spawn(&tenure, &["login", "dev", "--device"], &[]);
    let (status, _, stderr) = login.finish();
    assert_ne!(status, 0);
    assert!(stderr.contains("device_authorization_endpoint"), "{stderr}");
}
