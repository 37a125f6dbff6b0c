//! `tenure token --format` and `tenure git-credential` against a real authorization server
//! (oidc-provider): each format carries the same token in the shape its reader expects, and
//! git's `erase` makes the next `get` hand out another.

mod support;

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;
use support::Tenure;
use tenure_test_harness::Provider;

/// Runs `tenure ARGS` with `input` on stdin; returns the exit code, stdout and stderr.
fn with_stdin(tenure: &Tenure, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = tenure
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tenure starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn every_format_prints_the_same_token_in_its_readers_shape() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("formats");
    tenure.add_machine_client(&provider.issuer, &[]);
    let token = tenure.ok(&["token", "svc"]).stdout.trim().to_string();
    assert!(!token.is_empty());

    let header = tenure.ok(&["token", "svc", "--format", "header"]).stdout;
    assert_eq!(header, format!("Authorization: Bearer {token}\n"));
    let plain = json(&tenure.ok(&["token", "svc", "--format", "json"]).stdout);
    assert_eq!(plain["access_token"], token.as_str());
    assert_eq!(plain["token_type"], "Bearer");
    assert!(plain["expires_at"].is_string(), "{plain}");
    let headers = json(
        &tenure
            .ok(&["token", "svc", "--format", "headers-json"])
            .stdout,
    );
    assert_eq!(
        headers,
        serde_json::json!({"Authorization": format!("Bearer {token}")})
    );
    let exec = json(
        &tenure
            .ok(&["token", "svc", "--format", "exec-credential"])
            .stdout,
    );
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(exec["status"]["token"], token.as_str());
    assert!(exec["status"]["expirationTimestamp"].is_string(), "{exec}");
    assert_eq!(
        provider.count("token_client_credentials"),
        1,
        "all from one token"
    );
}

#[test]
fn git_gets_the_token_and_erase_replaces_it() {
    let provider = Provider::start(&[]);
    let tenure = Tenure::new("git-credential");
    tenure.add_machine_client(&provider.issuer, &[]);
    let request = "protocol=https\nhost=git.example.com\npath=team/repo.git\n\n";

    let (code, first, stderr) = with_stdin(&tenure, &["git-credential", "svc", "get"], request);
    assert_eq!(code, 0, "{stderr}");
    let field = |out: &str, key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    };
    assert_eq!(field(&first, "username").as_deref(), Some("oauth2"));
    let password = field(&first, "password").expect("a password");
    let expiry: i64 = field(&first, "password_expiry_utc")
        .expect("an expiry")
        .parse()
        .unwrap();
    assert!(expiry > 1_700_000_000, "{first}");
    assert!(!stderr.contains(&password), "the token stays off stderr");

    let (code, again, _) = with_stdin(&tenure, &["git-credential", "svc", "get"], request);
    assert_eq!(
        (code, field(&again, "password")),
        (0, Some(password.clone()))
    );
    let (code, stored, _) = with_stdin(&tenure, &["git-credential", "svc", "store"], request);
    assert_eq!((code, stored.as_str()), (0, ""));
    assert_eq!(provider.count("token_client_credentials"), 1);

    // git erases a credential the server refused: the next get hands out another.
    let (code, erased, _) = with_stdin(&tenure, &["git-credential", "svc", "erase"], request);
    assert_eq!((code, erased.as_str()), (0, ""), "erase prints nothing");
    let (code, fresh, _) = with_stdin(&tenure, &["git-credential", "svc", "get"], request);
    assert_eq!(code, 0);
    let replaced = field(&fresh, "password").expect("a password");
    assert_ne!(replaced, password);
    assert_eq!(provider.count("token_client_credentials"), 2);

    // Never over plain http to another machine.
    let clear = "protocol=http\nhost=git.example.com\n\n";
    let (code, out, stderr) = with_stdin(&tenure, &["git-credential", "svc", "get"], clear);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(out, "", "no token printed");
    assert!(stderr.contains("https"), "{stderr}");
}
