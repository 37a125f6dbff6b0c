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
//! The [`Simulation`] is the one harness the core's tests, the models and the benches drive
//! the core with. It runs operations to their end, or hands a test each request to answer by
//! hand; the server behind it is the [`SimulatedProvider`], a recorded trace ([`replay`]), or a
//! [`Scripted`] one that answers fixed documents.
//!
//! Everything is deterministic: the same configuration, seeds and script always produce the
//! same requests, answers and timeline. `tenure demo` and the lifecycle tests are built on it,
//! and [`replay`] plays recorded provider traces (design §7) back to the core the same way.

pub mod driver;
pub mod provider;
pub mod replay;
pub mod scripted;
pub mod store;

pub use driver::{Browser, Entry, Outcome, PendingRequest, SimError, Simulation, What};
pub use provider::{Endpoint, Fault, ProviderConfig, Reply, Server, SimulatedProvider};
pub use scripted::Scripted;
pub use store::SimStore;
