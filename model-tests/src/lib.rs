//! `tenure-model-tests`: property tests of the lifecycle invariants of design §3, run against
//! the real core, the simulated provider and the simulated store.
//!
//! The tests live in `tests/`; this library only holds the helpers they share.
