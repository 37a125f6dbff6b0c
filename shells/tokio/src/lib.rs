//! `tenure-tokio`: the async shell that carries out the core's commands over the network,
//! and the embedder's API: a token in a few lines.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn tenure_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use tenure_tokio::{ClientConfig, Tenure};
//! let config = ClientConfig::for_issuer("my-tool", "https://auth.example.com");
//! let tenure = Tenure::builder(config, store).build().await?;
//! let token = tenure.token().await?; // TokenError says what to do when there is none
//! # let _ = token; Ok(()) }
//! ```
//!
//! ```text
//!   Tenure::token() ──▶ published token still valid? ──yes──▶ AccessToken (no round trip)
//!          │ no (or login, renew, logout, forget, challenge)
//!          ▼
//!   driver task: tenure_core::Client ──Command::Http────────▶ http::HttpClient (reqwest)
//!          ▲                         ──Command::OpenBrowser─▶ browser + callback listener
//!          │                         ──Command::Store───────▶ a store adapter
//!          │                         ──Command::ReadAssertion▶ a file, a variable or a program
//!          └──── Input (answers, callback query, ticks at poll_timeout) ◀───┘
//! ```
//!
//! The shell decides nothing: which URL, whether to renew, whether an error means fall back
//! are all the core's. The shell enforces the transport rules of design §4 (no redirects,
//! https except loopback, timeouts, body caps, a 127.0.0.1-only callback listener).

pub mod assertion;
pub mod browser;
pub mod callback;
mod clock;
mod driver;
mod error;
mod handle;
pub mod http;
pub mod recorder;
mod token;

pub use browser::BrowserMode;
pub use clock::Clock;
pub use driver::is_internal_profile;
pub use error::{BuildError, TokenError};
pub use handle::{Builder, Tenure};
pub use http::Timeouts;
pub use recorder::Recorder;
pub use tenure_core as core;
pub use tenure_core::{AuthMethod, ClientConfig, DpopMode, Grant, TokenScheme};
pub use token::{AccessToken, Notice, Verdict};
