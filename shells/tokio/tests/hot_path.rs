//! The handle's cache: a stored valid token is readable the moment the handle is built, and
//! a token the resource refused is never read from it again. The issuer is the simulated
//! provider's, a host that does not resolve, so any request would fail.

use std::sync::Arc;

use tenure_core::{Operation, Timestamp};
use tenure_sim::provider::{ProviderConfig, SimulatedProvider};
use tenure_sim::Simulation;
use tenure_store::{MemoryStore, Store};
use tenure_tokio::{ClientConfig, Clock, Tenure, Verdict};

#[tokio::test]
async fn a_stored_token_is_published_at_build_and_a_refused_one_withdrawn() {
    let provider = SimulatedProvider::new(ProviderConfig::default());
    let config = ClientConfig::for_issuer("hot", provider.config().issuer.clone())
        .with_scopes(["read"])
        .with_grant(tenure_core::Grant::AuthorizationCode);
    let start = Timestamp::from_unix_seconds(1_767_225_600);
    let mut sim = Simulation::new(config.clone(), provider, start);
    assert!(sim.run(Operation::Login).expect("login").is_token());
    let mut record = sim.stored().expect("a record").clone();
    record.generation = 1;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .compare_and_swap(&record.key, None, &record)
        .await
        .expect("seeded");
    let tenure = Tenure::builder(config, store)
        .seed([4; 32])
        .clock(Clock::starting_at(sim.now()))
        .build()
        .await
        .expect("built");

    let stored = record.tokens.as_ref().expect("tokens");
    let (token, until) = tenure.cached().expect("published before the driver ran");
    assert_eq!(token.secret(), stored.access_token.expose());
    let expires = stored.expires_at.expect("an expiry");
    assert!(
        until.expect("a deadline") < expires,
        "handed out until the margin"
    );
    assert_eq!(tenure.token().await.expect("warm"), token);

    // The resource refuses it: it leaves the cache at once, and asking again means a
    // refresh, which cannot reach the simulated host.
    let verdict = tenure
        .challenge(Some(&token), vec![r#"Bearer error="invalid_token""#.into()])
        .await;
    assert!(tenure.cached().is_none_or(|(t, _)| t != token));
    match verdict {
        Err(error) => assert!(error.is_transient(), "{error:?}"),
        Ok(Verdict::Retry(fresh)) => panic!("no refresh can succeed here, yet got {fresh:?}"),
        Ok(other) => panic!("unexpected verdict {other:?}"),
    }
    assert!(
        !format!("{token:?}").contains(stored.access_token.expose()),
        "Debug shows no token"
    );
}

/// Configuration mistakes surface when the handle is built, not at the first operation.
#[tokio::test]
async fn a_configuration_that_cannot_work_is_refused_at_build() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let quiet = Tenure::builder(
        ClientConfig::for_issuer("x", "https://as.example.com"),
        store.clone(),
    )
    .browser(tenure_tokio::BrowserMode::Print)
    .build()
    .await
    .unwrap_err();
    assert!(
        matches!(quiet, tenure_tokio::BuildError::NoLoginUrlHook),
        "{quiet}"
    );
    let bad = Tenure::builder(ClientConfig::for_issuer("x", "ftp://as.example.com"), store)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(bad, tenure_tokio::BuildError::Config(_)), "{bad}");
    assert!(
        bad.to_string().contains("issuer"),
        "names the setting: {bad}"
    );
}
