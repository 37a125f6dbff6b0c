//! DPoP-bound tokens (RFC 9449) against a real authorization server that requires nonces
//! everywhere: oidc-provider with `--dpop`. The login's code exchange is answered
//! `use_dpop_nonce` and repeated with the nonce, the token is DPoP-bound, its userinfo
//! endpoint (a resource that checks proofs, `ath` and the key binding) is reached through the
//! middleware after its own nonce challenge, and a later process refreshes with the same
//! stored key. No token and no key shows in any output or log line. The exchanges are
//! recorded as a provider trace, which replays against the core without a network.

use std::sync::{Arc, Mutex};

use reqwest_middleware::ClientBuilder;
use serde_json::Value;
use tenure_reqwest::BearerAuth;
use tenure_store::{MemoryStore, Store};
use tenure_test_harness::{browser_thread, free_port, Answer, FakeServer, Provider};
use tenure_tokio::core::Duration;
use tenure_tokio::{BrowserMode, ClientConfig, Clock, DpopMode, Recorder, Tenure, TokenScheme};

/// Every log line of the process at every level, kept for inspection.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(lines.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only test here sets it");
    lines
}

/// The requests the server saw to `path`, as `METHOD STATUS`.
fn seen(provider: &Provider, path: &str) -> Vec<String> {
    provider.counts()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == path)
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["status"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_login_reaches_userinfo_and_refreshes_with_the_same_key_despite_nonces() {
    let logs = capture_logs();
    let provider = Provider::start(&["--dpop"]);
    let port = free_port();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let config = || {
        ClientConfig::for_issuer("dpop", &provider.issuer)
            .with_redirect_port(port)
            .with_scopes(["openid", "offline_access", "read"])
            .with_dpop(DpopMode::IfOffered)
    };
    let trace = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dpop-nonces-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&trace);
    let recorder = Recorder::open(&trace).expect("a trace file");
    recorder.config(serde_json::json!({
        "name": "dpop", "issuer": provider.issuer, "scope": ["openid", "offline_access", "read"],
        "redirect_port": port, "dpop": "if_offered",
    }));

    let (show_url, browser) = browser_thread(format!("http://127.0.0.1:{port}/callback"));
    let first = Tenure::builder(config(), store.clone())
        .recorder(recorder.clone())
        .browser(BrowserMode::Print)
        .on_login_url(show_url)
        .build()
        .await
        .expect("built");
    let token = first.login().await.expect("logged in");
    browser.join().expect("the login completed");
    assert_eq!(token.scheme(), TokenScheme::Dpop);
    assert!(token.header_value().starts_with("DPoP "));
    // RFC 9449 §8: the first code exchange lacked the nonce the server requires.
    assert_eq!(seen(&provider, "/token"), ["POST 400", "POST 200"]);

    let (_, record) = first.status().await.unwrap();
    let record = record.expect("a record");
    let tokens = record.tokens.clone().expect("tokens");
    assert_eq!(tokens.token_type, "DPoP");
    let refresh_token = tokens.refresh_token.clone().expect("a refresh token");
    let key = record.dpop_key.clone().expect("a DPoP key");

    // The userinfo endpoint checks the proof, its `ath` and the token's binding to the key;
    // it asks for its own nonce first (RFC 9449 §9), which the middleware sends it.
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuth::new(first.clone()))
        .build();
    let userinfo = format!("{}/me", provider.issuer);
    let answer = http.get(&userinfo).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let claims: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(claims["sub"], "test-user");
    assert_eq!(seen(&provider, "/me"), ["GET 401", "GET 200"]);
    // The nonce is remembered for the origin: the next request needs no repetition.
    let answer = http.get(&userinfo).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(seen(&provider, "/me").len(), 3);

    // A later process on the same store (a restart, or another replica) refreshes the
    // expired token with the stored key, which stays the same.
    let later = Tenure::builder(config(), store.clone())
        .recorder(recorder)
        .clock(Clock::starting_at(
            Clock::system().now() + Duration::from_hours(2),
        ))
        .build()
        .await
        .expect("built");
    let refreshed = later.token().await.expect("refreshed");
    assert_eq!(refreshed.scheme(), TokenScheme::Dpop);
    assert_ne!(refreshed, token);
    // A new process knows no nonce yet: its refresh is repeated once with the server's.
    assert_eq!(provider.count("token_refresh_token"), 2);
    assert_eq!(
        seen(&provider, "/token"),
        ["POST 400", "POST 200", "POST 400", "POST 200"]
    );
    let (_, record) = later.status().await.unwrap();
    let record = record.expect("a record");
    assert_eq!(record.dpop_key.as_ref(), Some(&key), "the same key");
    assert_eq!(
        record.tokens.as_ref().map(|t| t.token_type.as_str()),
        Some("DPoP")
    );
    let http_later = ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuth::new(later.clone()))
        .build();
    let answer = http_later.get(&userinfo).send().await.unwrap();
    assert_eq!(
        answer.status(),
        200,
        "the refreshed token is bound to the key"
    );

    // A resource that asks for a nonce again right after it was given one: the caller gets
    // the refusal after one repetition, and the token is not taken for refused.
    let fussy = FakeServer::start(|_| {
        let challenge = Answer {
            status: 401,
            headers: vec![
                (
                    "WWW-Authenticate".into(),
                    r#"DPoP error="use_dpop_nonce""#.into(),
                ),
                ("DPoP-Nonce".into(), "always-another".into()),
            ],
            body: Vec::new(),
        };
        vec![("GET /api".into(), challenge)]
    });
    let answer = http_later
        .get(format!("{}/api", fussy.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(fussy.hits(), ["GET /api", "GET /api"]);
    assert_eq!(later.token().await.unwrap(), refreshed);
    assert_eq!(seen(&provider, "/token").len(), 4, "no refresh");

    // The trace replays: the same requests, each nonce dance included, and a DPoP token.
    let recorded = std::fs::read_to_string(&trace).unwrap();
    let summary = tenure_sim::replay::replay(&tenure_sim::replay::parse(&recorded).unwrap())
        .expect("the trace replays");
    assert_eq!(summary.diverged, None);
    assert_eq!(summary.outcome, "ok", "{:?}", summary.error);
    let token_requests = summary.requests.iter().filter(|r| r.ends_with("/token"));
    assert_eq!(token_requests.count(), 4);
    assert_eq!(summary.refreshes, 2);
    let replayed = summary.record.clone().expect("a record");
    assert_eq!(replayed["tokens"]["token_type"], "DPoP");
    assert_eq!(replayed["dpop_key"], "[redacted]");

    // INV-12: no token, refresh token or private key in any Debug output, in what is
    // shown of the record, in the trace, or in any log line.
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logged.contains("request"), "the log was captured: {logged}");
    let shown = format!(
        "{first:?} {later:?} {token:?} {refreshed:?} {http:?} {record:?} {} {:?} {recorded} {logged}",
        record.redacted(),
        record.tokens
    );
    let refreshed_rt = record.tokens.as_ref().and_then(|t| t.refresh_token.clone());
    for secret in [
        token.secret(),
        refreshed.secret(),
        refresh_token.expose(),
        key.secret().expose(),
    ]
    .into_iter()
    .chain(refreshed_rt.as_ref().map(|s| s.expose()))
    {
        assert!(!shown.contains(secret), "a secret in the output: {shown}");
    }
}
