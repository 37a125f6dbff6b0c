//! Tenure's core: the pure, sans-IO state machine of an OAuth client's credential lifecycle.
//!
//! ```text
//!                 ┌───────────────────────── tenure-core ─────────────────────────┐
//!   Input ───────▶│ handle(now, input)                                            │
//!   (start, op,   │   discovery ─▶ registration ─▶ renewal ─▶ authorization ─▶   │
//!    HTTP answer, │   tokens, all decided in Client::next_step from the Record   │
//!    store result,│                                                               │
//!    callback,    │ poll_command() ──▶ Http / Store / OpenBrowser / Emit(Event)   │──▶ shell
//!    tick)        │ poll_timeout() ──▶ next deadline                              │
//!                 └───────────────────────────────────────────────────────────────┘
//! ```
//!
//! The core reads no clock, opens no socket and draws no randomness: time comes with every
//! input, entropy from the configuration's seed. Shells (`tenure-tokio`, `tenure-sim`) carry
//! out the commands and feed back what happened. The same inputs always produce the same
//! commands, so every path of the lifecycle is testable without a network.
//!
//! The files follow the lifecycle: [`discovery`] finds and validates metadata,
//! [`registration`] obtains an identity, [`renewal`] keeps an expiring secret alive through
//! RFC 7592, [`authorization`] runs the PKCE browser step, [`tokens`] talks to the token
//! endpoint, and [`record`] is what survives a crash. [`machine`] ties them together.

pub mod authorization;
pub mod challenge;
pub mod config;
pub mod discovery;
pub mod endpoint;
pub mod entropy;
pub mod error;
pub mod io;
pub mod key;
pub mod machine;
pub mod record;
pub mod registration;
pub mod renewal;
pub mod scope;
pub mod secret;
pub mod time;
pub mod tokens;
pub mod wire;

pub use config::{AuthMethod, ClientConfig, Grant};
pub use error::{ConfigError, Error, ServerError};
pub use io::{
    Command, Event, Input, Lifecycle, OpId, Operation, Outcome, RequestId, RequestKind, StoreOp,
    StoreOpId, StoreResult,
};
pub use key::ClientKey;
pub use machine::{Client, Status};
pub use record::{IdentityKind, Record, Registration, SecretExpiry, Tokens};
pub use secret::Secret;
pub use time::{Duration, Timestamp};
