//! The middleware against a real authorization server (oidc-provider) and a protected API
//! that introspects every token there: the token goes on every request, a token the server
//! revoked is replaced (a request whose body is streamed is not sent twice), and a bare 403
//! is the caller's.

use std::sync::Arc;

use reqwest_middleware::ClientBuilder;
use tenure_reqwest::BearerAuth;
use tenure_store::MemoryStore;
use tenure_test_harness::{request, start_resource_server, Provider};
use tenure_tokio::{AuthMethod, ClientConfig, Grant, Tenure};

/// Revokes `token` at the provider as the client that holds it (client_secret_post).
async fn revoke(provider: &Provider, token: String, client_id: String, secret: String) {
    let url = format!("{}/token/revocation", provider.issuer.trim_end_matches('/'));
    let (status, _, body) = tokio::task::spawn_blocking(move || {
        let form = format!("token={token}&client_id={client_id}&client_secret={secret}");
        request(
            "POST",
            &url,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "revocation: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_replaced_and_the_request_sent_again() {
    let provider = Provider::start(&[]);
    let api = start_resource_server(&[("/a", &provider)], Some("/a/private"));
    // The API registered its own introspection client.
    let registered = provider.count("registrations");
    let mut config = ClientConfig::for_issuer("middleware", &provider.issuer);
    config.grant = Grant::ClientCredentials;
    config.scopes = vec!["read".into()];
    config.auth_method = Some(AuthMethod::ClientSecretPost);
    let tenure = Tenure::builder(config, Arc::new(MemoryStore::new()))
        .build()
        .await
        .expect("a valid configuration");
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuth::new(tenure.clone()))
        .build();

    let answer = http.get(format!("{api}/a/ping")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "ok /a/ping");
    assert_eq!(provider.count("token_client_credentials"), 1);

    // The server revokes the token: the API answers 401, the middleware hands the refusal
    // to Tenure, which fetches a new token, and the request is sent again.
    let first = tenure.token().await.unwrap();
    let (_, record) = tenure.status().await.unwrap();
    let registration = record.and_then(|r| r.dcr).expect("a registration");
    let secret = registration.client_secret.expect("a client secret");
    let revoke_token = |token: &tenure_tokio::AccessToken| {
        revoke(
            &provider,
            token.secret().to_string(),
            registration.client_id.clone(),
            secret.expose().to_string(),
        )
    };
    revoke_token(&first).await;
    let answer = http.get(format!("{api}/a/ping")).send().await.unwrap();
    assert_eq!(answer.status(), 200, "sent again with a fresh token");
    let second = tenure.token().await.unwrap();
    assert_ne!(first, second, "the revoked token is never handed out again");
    assert_eq!(provider.count("token_client_credentials"), 2);

    // A streamed body cannot be sent twice: the caller gets the refusal, and Tenure has
    // already replaced the token for the next request.
    revoke_token(&second).await;
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(b"{}".to_vec())]);
    let answer = http
        .post(format!("{api}/a/ping"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401, "a streamed body is not replayed");
    assert_eq!(provider.count("token_client_credentials"), 3);
    let answer = http.get(format!("{api}/a/ping")).send().await.unwrap();
    assert_eq!(
        answer.status(),
        200,
        "the next request carries the fresh token"
    );
    let third = tenure.token().await.unwrap();
    assert_ne!(third, second);
    assert_eq!(provider.count("token_client_credentials"), 3);

    // A 403 without a challenge is the API's own decision: handed back, nothing fetched.
    let answer = http.get(format!("{api}/a/private/x")).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(provider.count("token_client_credentials"), 3);
    assert_eq!(provider.count("registrations"), registered + 1);

    // Nothing shows the tokens or the secret.
    let shown = format!("{tenure:?} {first:?} {second:?} {third:?} {http:?}");
    for secret in [
        first.secret(),
        second.secret(),
        third.secret(),
        secret.expose(),
    ] {
        assert!(!shown.contains(secret), "a secret in Debug output: {shown}");
    }
}
