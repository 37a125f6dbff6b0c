//! `tenure-store`: the store trait every adapter implements, the in-memory store, and the
//! conformance kit each adapter must pass.
//!
//! The contract is the one the core's [`tenure_core::StoreOp`] commands spell out: load by
//! [`tenure_core::ClientKey`], compare-and-swap on the record's generation (insert only if
//! absent), delete, and an expiring lease. The simulated store in `tenure-sim` already keeps
//! it in memory; the async trait and the shared kit are the next piece of work.

pub use tenure_core::{ClientKey, Record, StoreOp, StoreResult};
