//! One token request per grant across every process that shares a store (INV-10 across
//! processes): sixteen `tenure token` processes started at once, on Redis and on sled, against
//! a real oidc-provider whose refresh tokens rotate (a reused one revokes the whole grant) and
//! whose access tokens live 10 s. Counted at the server.

mod support;

use std::time::Duration;

use support::*;
use tenure_core::Timestamp;

const PROCESSES: usize = 16;

/// Starts `count` `tenure token NAME` at once and waits (bounded) for all; each must print a
/// token.
fn herd(tenure: &Tenure, name: &str, count: usize) {
    let processes: Vec<Background> = (0..count)
        .map(|_| tenure.spawn_with(&["token", name], &[]))
        .collect();
    for (i, process) in processes.into_iter().enumerate() {
        let run = process.finish(Duration::from_secs(90));
        assert_eq!(run.code, 0, "process {i} failed: {run:?}");
        assert!(
            !run.stdout.trim().is_empty(),
            "process {i} printed no token"
        );
    }
}

/// Sleeps until the stored access token of `name` has expired.
fn wait_for_expiry(tenure: &Tenure, name: &str) {
    let status = tenure.status(name);
    let at = Timestamp::parse_rfc3339(status["access_token_expires_at"].as_str().unwrap())
        .unwrap()
        .unix_millis();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis((at - now + 200).max(0) as u64));
}

fn requests(provider: &Provider) -> usize {
    provider.counts()["requests"].as_array().unwrap().len()
}

fn one_request_per_grant(tenure: Tenure) {
    let provider = Provider::start(&["--access-token-ttl", "10"]);
    let port = tenure.add_user_client("app", &provider.issuer, &["--auth-method", "none"]);
    tenure.log_in("app", &port);

    // A 10 s token is handed out for 9 s: warm calls send nothing.
    let before = requests(&provider);
    for _ in 0..3 {
        tenure.ok(&["token", "app"]);
    }
    assert_eq!(requests(&provider), before, "warm calls send nothing");

    // Sixteen processes find the token expired: one refresh between them.
    wait_for_expiry(&tenure, "app");
    let refreshes = provider.count("token_refresh_token");
    herd(&tenure, "app", PROCESSES);
    assert_eq!(
        provider.count("token_refresh_token") - refreshes,
        1,
        "one refresh for sixteen processes"
    );
    // The session is intact: the rotated refresh token is the one stored, and it works.
    wait_for_expiry(&tenure, "app");
    tenure.ok(&["token", "app"]);
    assert_eq!(provider.count("token_refresh_token") - refreshes, 2);

    // A machine client: one client-credentials request for sixteen processes.
    tenure.add_machine_client(&provider.issuer, &[]);
    tenure.ok(&["token", "svc"]);
    wait_for_expiry(&tenure, "svc");
    let issued = provider.count("token_client_credentials");
    herd(&tenure, "svc", PROCESSES);
    assert_eq!(
        provider.count("token_client_credentials") - issued,
        1,
        "one token request for sixteen processes"
    );
}

#[test]
fn sixteen_processes_on_redis_send_one_token_request_per_grant() {
    let redis = Redis::start();
    one_request_per_grant(Tenure::on(redis.url()));
}

#[test]
fn sixteen_processes_on_sled_send_one_token_request_per_grant() {
    one_request_per_grant(Tenure::new("fleet-tokens"));
}

/// Token requests per token lifetime for 1, 8 and 32 processes sharing Redis, each process
/// asking once after the token expired: the minimum is 1 whatever the fleet's size. Written
/// to `target/tmp/token-requests.tsv` for `scripts/bench`.
#[test]
fn token_requests_per_lifetime_stay_at_one_for_1_8_and_32_processes() {
    let redis = Redis::start();
    let provider = Provider::start(&["--access-token-ttl", "4"]);
    let tenure = Tenure::on(redis.url());
    tenure.add_machine_client(&provider.issuer, &[]);
    tenure.ok(&["token", "svc"]);
    let mut rows = String::new();
    for processes in [1, 8, 32] {
        wait_for_expiry(&tenure, "svc");
        let issued = provider.count("token_client_credentials");
        herd(&tenure, "svc", processes);
        let sent = provider.count("token_client_credentials") - issued;
        rows.push_str(&format!("{processes}\t{sent}\t1\n"));
        assert_eq!(
            sent, 1,
            "{processes} processes: one token request per lifetime"
        );
    }
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("token-requests.tsv");
    std::fs::write(path, rows).unwrap();
}

/// A Redis record outlives its expired secret when the server can renew it (RFC 7592): the
/// next call renews the secret, and nothing is registered again.
#[test]
fn an_expired_secret_in_redis_is_renewed_not_registered_again() {
    let redis = Redis::start();
    let provider = Provider::start(&["--secret-ttl", "3", "--access-token-ttl", "2"]);
    let tenure = Tenure::on(redis.url());
    tenure.add_machine_client(&provider.issuer, &["--renew-within", "1s"]);
    tenure.ok(&["token", "svc"]);
    let expires = tenure.status("svc")["secret_expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(4));
    let run = tenure.run(&["token", "svc"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(provider.count("registrations"), 1, "no second registration");
    assert_eq!(provider.count("updates"), 1, "renewed through RFC 7592");
    assert_ne!(tenure.status("svc")["secret_expires_at"], expires.as_str());
}
