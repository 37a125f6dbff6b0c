//! `tenure-redis`: the store shared by replicas, on Redis (and Sentinel).
//!
//! Keys will be a prefix followed by the length-prefixed segments of
//! [`tenure_core::ClientKey::encode`], values JSON, writes an atomic compare-and-swap, and
//! leases `SET NX PX` with a holder check. Not built yet; the crate holds its place in the
//! workspace.

pub use tenure_core::ClientKey;
