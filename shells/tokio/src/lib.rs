//! `tenure-tokio`: the async shell that will carry out the core's commands over the network.
//!
//! It is the next piece of work: reqwest with rustls for HTTP (no redirects on requests that
//! carry a secret, connect and total timeouts, body caps), the loopback callback listener on
//! 127.0.0.1, timers for [`tenure_core::Client::poll_timeout`], and a store adapter behind
//! the core's store commands. Until then the crate only names the core it drives.

pub use tenure_core as core;
