//! Three gateway replicas started together in front of two upstream providers (two real
//! oidc-providers), sharing one real Redis: one registration per upstream, one renewal per
//! upstream when the renewal window opens, and the survivors keep serving after one replica
//! is killed. Counts are taken at the authorization servers.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tenure_test_harness::{request, start_resource_server, Guard, Provider, Redis};

/// Starts one replica and waits for its `listening on URL` line.
fn start_gateway(redis: &Redis, upstreams: &[String]) -> (Guard, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .args(["--listen", "127.0.0.1:0", "--store", &redis.url()])
        .args(["--scope", "read", "--renew-within", "5"]);
    for upstream in upstreams {
        command.args(["--upstream", upstream]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway starts");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let line = BufReader::new(stdout).lines().next();
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the gateway said nothing within 30 s")
        .expect("the gateway closed its output")
        .unwrap();
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line `{line}`"))
        .to_string();
    (guard, url)
}

/// Calls every upstream through every listed replica at once; each answer must be 200.
fn call_all(gateways: &[&str], names: &[&str]) {
    let mut calls = Vec::new();
    for gateway in gateways {
        for name in names {
            let url = format!("{gateway}/call/{name}");
            calls.push(std::thread::spawn(move || {
                let (status, _, body) = request("GET", &url, &[], "");
                (url, status, body)
            }));
        }
    }
    for call in calls {
        let (url, status, body) = call.join().unwrap();
        assert_eq!(status, 200, "{url} answered {status}: {body}");
    }
}

#[test]
fn replicas_register_once_renew_once_and_survive_a_kill() {
    let redis = Redis::start();
    let a = Provider::start(&["--secret-ttl", "8", "--access-token-ttl", "60"]);
    let b = Provider::start(&["--secret-ttl", "8", "--access-token-ttl", "60"]);
    let api = start_resource_server(&[("/a", &a), ("/b", &b)], None);
    let upstreams = [
        format!("a={}={api}/a/ping", a.issuer),
        format!("b={}={api}/b/ping", b.issuer),
    ];
    // Access tokens outlive the test (60 s, past Tenure's 30 s margin), so the API's
    // introspection never races a token's expiry on a loaded machine; the renewal is driven
    // by the secret's window, not by the tokens.
    let registered_at = Instant::now();
    let mut replicas: Vec<(Guard, String)> =
        (0..3).map(|_| start_gateway(&redis, &upstreams)).collect();
    let urls: Vec<String> = replicas.iter().map(|(_, url)| url.clone()).collect();
    let all: Vec<&str> = urls.iter().map(String::as_str).collect();

    call_all(&all, &["a", "b"]);
    // The API registered one introspection client at each server; the gateways one more.
    assert_eq!(
        a.count("registrations"),
        2,
        "INV-8: one registration per upstream"
    );
    assert_eq!(
        b.count("registrations"),
        2,
        "INV-8: one registration per upstream"
    );
    assert_eq!(a.count("updates"), 0);

    // Secrets live 8 s and renew within 5 s of expiry: from 3 s on, the window is open.
    let window = registered_at + Duration::from_millis(3_500);
    if let Some(wait) = window.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    call_all(&all, &["a", "b"]);
    assert_eq!(
        a.count("updates"),
        1,
        "INV-1, INV-8: one renewal per upstream"
    );
    assert_eq!(
        b.count("updates"),
        1,
        "INV-1, INV-8: one renewal per upstream"
    );

    let (mut killed, _) = replicas.remove(0);
    let _ = killed.0.kill();
    let _ = killed.0.wait();
    let survivors: Vec<&str> = all[1..].to_vec();
    call_all(&survivors, &["a", "b"]);
    assert_eq!(a.count("registrations"), 2, "no replica registered again");
    assert_eq!(b.count("registrations"), 2);
    println!(
        "gateway replicas: 3 started, 1 killed; registrations per upstream 1, renewals per \
         upstream 1; token requests a={} b={}",
        a.count("token_client_credentials"),
        b.count("token_client_credentials")
    );
}

/// Three replicas on one Redis serve a steady stream of requests with upstream tokens that
/// live 4 s: the token requests are shared (one under the store's lease, the other replicas
/// read its token), so the upstream sees about one per token lifetime, not one per replica
/// (at least one per 4 s, which no sharing can avoid).
#[test]
fn replicas_share_short_lived_upstream_tokens() {
    let redis = Redis::start();
    let upstream = Provider::start(&["--access-token-ttl", "4"]);
    let api = start_resource_server(&[("/a", &upstream)], None);
    let upstreams = [format!("a={}={api}/a/ping", upstream.issuer)];
    let replicas: Vec<(Guard, String)> =
        (0..3).map(|_| start_gateway(&redis, &upstreams)).collect();
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(12) {
        let urls: Vec<&str> = replicas.iter().map(|(_, url)| url.as_str()).collect();
        call_all(&urls, &["a"]);
        calls += urls.len();
        std::thread::sleep(Duration::from_millis(100));
    }
    let lifetimes = started.elapsed().as_secs_f64() / 4.0;
    let requests = upstream.count("token_client_credentials");
    println!(
        "gateway replicas: {calls} calls over {:.1} s ({lifetimes:.1} token lifetimes): {requests} token requests",
        started.elapsed().as_secs_f64()
    );
    // A 4 s token is used for 4 s less its margin (1.4 s) and up to half that again of
    // jitter: at most one request per 1.9 s, plus the first.
    let most = (started.elapsed().as_secs_f64() / 1.9).ceil() as u64 + 1;
    assert!(
        (lifetimes.floor() as u64..=most).contains(&requests),
        "{requests} token requests for {lifetimes:.1} lifetimes (at most {most})"
    );
}
