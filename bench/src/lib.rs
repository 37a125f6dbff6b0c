//! `tenure-bench`: what Tenure's benchmark report measures, in one place.
//!
//! - `benches/core.rs` (criterion): inputs the core handles per second, simulated lifecycles
//!   per second, replayed traces per second;
//! - `src/bin/scenarios.rs`: the scenario measurements (warm start, cold start request counts
//!   per registration method, single flight, memory per stored client), printed as markdown;
//! - `scripts/bench` runs both, plus the store benches, and writes `docs/benchmarks.md`.
//!
//! The shared pieces live here so the bench and the scenarios measure the same lifecycle.

use tenure_core::{AuthMethod, ClientConfig, Duration, Operation, Timestamp};
use tenure_sim::provider::{ProviderConfig, SimulatedProvider};
use tenure_sim::Simulation;

/// When every simulated lifecycle starts.
pub fn epoch() -> Timestamp {
    Timestamp::from_unix_seconds(1_767_225_600)
}

/// A server whose secrets live a week and access tokens an hour.
pub fn provider() -> SimulatedProvider {
    SimulatedProvider::new(ProviderConfig {
        secret_lifetime: Some(Duration::from_hours(7 * 24)),
        access_token_lifetime: Duration::from_hours(1),
        ..ProviderConfig::default()
    })
}

/// A confidential user client of `provider`.
pub fn client(provider: &SimulatedProvider) -> ClientConfig {
    let mut config = ClientConfig::for_issuer("bench", provider.config().issuer.clone());
    config.auth_method = Some(AuthMethod::ClientSecretPost);
    config.scopes = vec!["read".into()];
    config.seed = [5; 32];
    config
}

/// One whole lifecycle: discovery, registration, login, a refresh, a restart inside the
/// renewal window that renews, and a warm start served from the store. Returns the inputs
/// the core handled; panics if any step fails, so a broken core cannot look fast.
pub fn lifecycle() -> u64 {
    let provider = provider();
    let config = client(&provider);
    let mut sim = Simulation::new(config, provider, epoch());
    let expect_token = |sim: &mut Simulation, op| {
        let outcome = sim.run(op).expect("the lifecycle runs");
        assert!(outcome.is_token(), "{outcome:?}");
    };
    expect_token(&mut sim, Operation::Login);
    sim.advance(Duration::from_hours(2));
    expect_token(&mut sim, Operation::Token);
    sim.advance(Duration::from_hours(6 * 24 + 12));
    sim.restart();
    expect_token(&mut sim, Operation::Token);
    sim.restart();
    expect_token(&mut sim, Operation::Token);
    sim.inputs_handled()
}
