//! `tenure-sim`: Tenure's core, run without a network.
//!
//! ```text
//!   Simulation (driver) ──Command::Http──▶ SimulatedProvider (provider)
//!        │      ▲                              an OAuth server in memory:
//!        │      └── Input::HttpResponse ───────  RFC 8414, 7591, 7592, PKCE, refresh
//!        ├──Command::Store──▶ SimStore (store)   rotation, CIMD, seeded faults
//!        └── virtual clock: jumps to Client::poll_timeout()
//! ```
//!
//! Everything is deterministic: the same configuration, seeds and script always produce the
//! same requests, answers and timeline. `tenure demo` and the lifecycle tests are built on it,
//! and [`replay`] plays recorded provider traces (design §7) back to the core the same way.

pub mod driver;
pub mod provider;
pub mod replay;
pub mod store;

pub use driver::{Browser, Entry, Outcome, SimError, Simulation, What};
pub use provider::{Endpoint, Fault, ProviderConfig, Reply, Server, SimulatedProvider};
pub use store::SimStore;
