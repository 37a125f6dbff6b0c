//! `tenure-tokio`: the async shell that carries out the core's commands over the network.
//!
//! ```text
//!   tenure_core::Client ──Command::Http────────▶ http::HttpClient (reqwest + rustls)
//!          ▲             ──Command::OpenBrowser─▶ browser::show + callback::CallbackListener
//!          │             ──Command::Store───────▶ a store adapter
//!          └──── Input (answers, callback query, ticks at poll_timeout) ◀───┘
//! ```
//!
//! The shell decides nothing: which URL, whether to renew, whether an error means fall back
//! are all the core's. The shell enforces the transport rules of design §4 (no redirects,
//! https except loopback, timeouts, body caps, a 127.0.0.1-only callback listener).

pub mod browser;
pub mod callback;
pub mod driver;
pub mod http;
pub mod recorder;

pub use tenure_core as core;

/// The README's "Embedding Tenure" snippets, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeSnippets;
