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
//! The files follow the lifecycle: `discovery.rs` finds and validates metadata,
//! `registration.rs` obtains an identity, `renewal.rs` keeps an expiring secret alive through
//! RFC 7592, `authorization.rs` runs the PKCE browser step and `device.rs` the device login
//! (RFC 8628), `tokens.rs` talks to the token endpoint, [`jwt_bearer`] obtains tokens for a
//! workload identity or an enterprise identity provider's ID-JAG (RFC 7523, RFC 8693),
//! [`assertion`] signs `private_key_jwt` client assertions, [`dpop`] binds tokens to the
//! client's key (RFC 9449), both through `jws.rs`, and [`record`] is what survives a crash.
//! `machine/` ties them together: `inputs.rs` takes what happened, `decide.rs` chooses the
//! next step, `effects.rs` turns it into commands, `bearer.rs` runs the jwt-bearer grants.
//!
//! The public surface is what embedders and shells need: the [`Client`] and its inputs and
//! commands ([`io`]), the configuration, the record, errors, keys, secrets and time. The
//! parsers stay inside; fuzz targets and property tests reach them through a hidden module.

pub mod assertion;
mod authorization;
mod challenge;
pub mod config;
mod device;
mod discovery;
pub mod dpop;
pub mod endpoint;
mod entropy;
pub mod error;
pub mod io;
mod jws;
pub mod jwt_bearer;
pub mod key;
mod machine;
pub mod record;
mod registration;
mod renewal;
mod scope;
pub mod secret;
pub mod time;
mod tokens;
mod wire;

pub use assertion::{AssertionAudience, AssertionKey, KeyError};
pub use config::{AuthMethod, ClientConfig, Grant, LoginFlow};
pub use dpop::{DpopKey, DpopMode, TokenScheme};
pub use error::{ConfigError, Error, ErrorClass, ServerError};
pub use io::{
    AssertionId, ChallengeVerdict, Command, Event, Input, Lifecycle, OpId, Operation, Outcome,
    RequestId, RequestKind, StoreOp, StoreOpId, StoreResult,
};
pub use jwt_bearer::{AssertionSource, BearerAssertion, IdentityProvider};
pub use key::ClientKey;
pub use machine::{Client, Handout, Status};
pub use record::{IdentityKind, Record, Registration, SecretExpiry, Tokens};
pub use scope::MAX_STEP_UPS;
pub use secret::Secret;
pub use time::{Duration, Timestamp};
pub use wire::{BODY_LIMIT, ERROR_BODY_LIMIT};

/// The parsers of what servers and browsers send, for the fuzz targets and the property
/// tests that throw arbitrary input at them. Not part of the API: embedders never call a
/// parser, the [`Client`] does.
#[doc(hidden)]
pub mod parsers {
    pub use crate::authorization::{check_callback, CallbackExpectation};
    pub use crate::challenge::{parse, resource_challenge};
    pub use crate::device::parse_device_authorization;
    pub use crate::discovery::{parse_protected_resource, parse_server_metadata, prm_candidates};
    pub use crate::registration::parse_registration;
    pub use crate::renewal::{parse_deletion, parse_management_answer};
    pub use crate::tokens::parse_token_answer;
    pub use crate::wire::{json_object, server_error};
}
