//! What goes in and out of the machine: inputs, commands and events, all plain values.

use std::fmt;

use crate::dpop::TokenScheme;
use crate::error::Error;
use crate::jwt_bearer::AssertionSource;
use crate::key::ClientKey;
use crate::record::Record;
use crate::secret::Secret;
use crate::time::{Duration, Timestamp};

/// Identifies an HTTP request the machine asked for; the shell answers with the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Identifies a store operation the machine asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreOpId(pub u64);

/// Identifies a read of an assertion the machine asked for ([`Command::ReadAssertion`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssertionId(pub u64);

/// Identifies a user operation, so its outcome can be matched to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// What a user (or the embedding program) asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// A valid access token: discover, register, refresh and renew as needed, but never open
    /// a browser (a missing login is [`Event::LoginRequired`]).
    Token,
    /// Log in through the browser (authorization code + PKCE) or with the device grant
    /// (RFC 8628), as [`crate::config::LoginFlow`] says, or fetch a client-credentials token,
    /// even when tokens are held.
    Login,
    /// Renew the client secret now (RFC 7592).
    Renew,
    /// Delete the registration at the server (RFC 7592) and the local record.
    Forget,
    /// Drop the tokens and keep the registration.
    Logout,
    /// Remove the local record only, sending nothing: the way out when the server cannot
    /// be reached or will not delete the registration.
    ForgetLocal,
}

impl Operation {
    /// The operation's name on the command line and in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Token => "token",
            Operation::Login => "login",
            Operation::Renew => "renew",
            Operation::Forget => "forget",
            Operation::Logout => "logout",
            Operation::ForgetLocal => "forget-local",
        }
    }

    /// The operation named `name` on the command line and in traces.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Operation::Token,
            Operation::Login,
            Operation::Renew,
            Operation::Forget,
            Operation::Logout,
            Operation::ForgetLocal,
        ]
        .into_iter()
        .find(|op| op.as_str() == name)
    }
}

/// An input to [`crate::Client::handle`]. Its `Debug` output carries no secret: HTTP bodies
/// and credential headers are shown by size, and a callback's query (it holds the code) not
/// at all (INV-12).
#[derive(Clone)]
#[non_exhaustive]
pub enum Input {
    /// The process started; `stored` is what the store holds for this client, if the shell
    /// looked. The machine loads by key itself when it was not given a matching record.
    Start {
        /// The stored record.
        stored: Option<Record>,
    },
    /// A user operation.
    Operation {
        /// Chosen by the caller; echoed in the outcome event.
        id: OpId,
        /// What to do.
        op: Operation,
    },
    /// The answer to an HTTP request.
    HttpResponse {
        /// The request's id.
        id: RequestId,
        /// The answer, body read up to the command's limit.
        response: http::Response<Vec<u8>>,
    },
    /// An HTTP request failed in transport: connection, timeout, TLS, or a body over its
    /// limit.
    HttpFailed {
        /// The request's id.
        id: RequestId,
        /// What went wrong, without secrets.
        error: String,
    },
    /// A store operation finished.
    Store {
        /// The operation's id.
        id: StoreOpId,
        /// Its outcome.
        result: StoreResult,
    },
    /// The browser reached the loopback callback with this query string.
    Callback {
        /// The raw query, without the leading `?`.
        query: String,
    },
    /// The shell could not receive the browser's redirect (e.g. the callback port is taken):
    /// the login ends with this reason.
    CallbackUnavailable {
        /// What went wrong, and what to do.
        reason: String,
    },
    /// The protected resource answered 401/403 with these `WWW-Authenticate` values: the
    /// authorization server may have moved, so discovery runs again (PRM-9).
    ResourceChallenge {
        /// Every `WWW-Authenticate` header value.
        headers: Vec<String>,
        /// The access token the refused request carried, when known. A token newer than it
        /// is not marked refused: another caller already replaced the one the resource saw.
        token: Option<Secret>,
    },
    /// The answer to [`Command::ReadAssertion`]: the assertion text as read (the machine
    /// trims it), or why it could not be read, in words that name the source but not its
    /// content.
    Assertion {
        /// The read's id.
        id: AssertionId,
        /// The text read, or why there is none.
        result: Result<Secret, String>,
    },
    /// Time passed; see [`crate::Client::poll_timeout`].
    Tick,
}

/// The outcome of a [`StoreOp`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StoreResult {
    /// What a [`StoreOp::Load`] found.
    Loaded(Option<Record>),
    /// A compare-and-swap was applied.
    Written,
    /// A compare-and-swap was refused: someone else wrote first. Carries what is stored now.
    Conflict(Option<Record>),
    /// A delete was applied (or there was nothing to delete).
    Deleted,
    /// The lease is now held by this client.
    LeaseTaken,
    /// Another holder has the lease.
    LeaseHeld,
    /// A lease was released (or was not held).
    LeaseReleased,
    /// The store failed; the text names the key and the cause.
    Failed(String),
}

/// Work the machine asks the store to do. Every write is conditional (INV-9).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StoreOp {
    /// Read the record under `key`.
    Load {
        /// The key.
        key: ClientKey,
    },
    /// Write `record` if the stored generation is `expected` (`None`: only if absent).
    CompareAndSwap {
        /// The key.
        key: ClientKey,
        /// The generation the machine read.
        expected: Option<u64>,
        /// The new record; its generation is one more than `expected`.
        record: Box<Record>,
    },
    /// Remove the record if its generation is `expected`.
    Delete {
        /// The key.
        key: ClientKey,
        /// The generation the machine read.
        expected: u64,
    },
    /// Take the key's lease for `ttl`, so one replica registers or renews (INV-8).
    TakeLease {
        /// The key.
        key: ClientKey,
        /// Who asks.
        holder: String,
        /// How long the lease lasts unless released.
        ttl: Duration,
    },
    /// Release the lease if `holder` holds it.
    ReleaseLease {
        /// The key.
        key: ClientKey,
        /// Who held it.
        holder: String,
    },
}

/// What kind of request an HTTP command is; shells use it for body limits, recording and
/// counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// RFC 9728 protected resource metadata.
    ResourceMetadata,
    /// RFC 8414 / OIDC metadata.
    ServerMetadata,
    /// RFC 7591 registration.
    Registration,
    /// RFC 7592 update (the renewal PUT).
    RegistrationUpdate,
    /// RFC 7592 delete.
    RegistrationDelete,
    /// Authorization code exchange.
    CodeExchange,
    /// Refresh-token grant.
    Refresh,
    /// Client-credentials grant.
    ClientCredentials,
    /// RFC 8628 device authorization request.
    DeviceAuthorization,
    /// RFC 8628 device access token request: one poll of the token endpoint.
    DeviceToken,
    /// RFC 8693 token exchange at an enterprise identity provider: an ID token for an
    /// ID-JAG (SEP-990).
    TokenExchange,
    /// RFC 7523 JWT bearer grant at the token endpoint (SEP-990, SEP-1933).
    JwtBearer,
}

impl RequestKind {
    /// The most body bytes the shell should read for a successful answer (design §4);
    /// error answers are capped at [`crate::wire::ERROR_BODY_LIMIT`].
    pub fn body_limit(self) -> usize {
        crate::wire::BODY_LIMIT
    }

    /// Whether the request carries a secret or token, so the shell must not follow redirects.
    /// (Tenure follows none at all; this tells recorders which bodies to scrub.)
    pub fn carries_secret(self) -> bool {
        !matches!(
            self,
            RequestKind::ResourceMetadata | RequestKind::ServerMetadata
        )
    }
}

/// Something the machine wants done.
// Commands are built once and moved to the shell; boxing the request would buy nothing.
// `Debug` shows requests without their bodies or credential headers (INV-12).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
#[non_exhaustive]
pub enum Command {
    /// Send this request, without following redirects, and answer with
    /// [`Input::HttpResponse`] or [`Input::HttpFailed`].
    Http {
        /// Echo it back.
        id: RequestId,
        /// What the request is for.
        kind: RequestKind,
        /// The request itself.
        request: http::Request<Vec<u8>>,
    },
    /// Carry out a store operation and answer with [`Input::Store`].
    Store {
        /// Echo it back.
        id: StoreOpId,
        /// What to do.
        op: StoreOp,
    },
    /// Open this URL in the user's browser (or print it) and listen on the loopback
    /// callback; answer with [`Input::Callback`].
    OpenBrowser {
        /// The authorization URL.
        url: String,
    },
    /// Read the current assertion of the jwt-bearer grant from `source` and answer with
    /// [`Input::Assertion`]. The core reads nothing itself (it has no files, environment or
    /// processes); asked once per grant request, since the assertion is short-lived and the
    /// platform rotates it.
    ReadAssertion {
        /// Echo it back.
        id: AssertionId,
        /// Where the assertion is.
        source: AssertionSource,
    },
    /// Tell the embedder something.
    Emit(Event),
}

/// Where the credential lifecycle stands (design §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lifecycle {
    /// Nothing usable is stored.
    Unregistered,
    /// Fetching metadata.
    Discovering,
    /// Obtaining an identity.
    Registering,
    /// A usable identity.
    Registered,
    /// The secret expires within the renewal window.
    Expiring,
    /// An RFC 7592 update is in flight.
    Renewing,
    /// The secret was just renewed.
    Renewed,
    /// The secret's expiry has passed.
    Expired,
}

impl Lifecycle {
    /// A lowercase name for timelines and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Unregistered => "unregistered",
            Lifecycle::Discovering => "discovering",
            Lifecycle::Registering => "registering",
            Lifecycle::Registered => "registered",
            Lifecycle::Expiring => "expiring",
            Lifecycle::Renewing => "renewing",
            Lifecycle::Renewed => "renewed",
            Lifecycle::Expired => "expired",
        }
    }
}

/// What the embedder is told.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The lifecycle moved.
    StateChanged(Lifecycle),
    /// An operation produced a token.
    TokenReady {
        /// The operation.
        op: OpId,
        /// The access token.
        access_token: Secret,
        /// When it expires, if known.
        expires_at: Option<Timestamp>,
        /// How it is presented (a DPoP token needs a proof with every request).
        scheme: TokenScheme,
    },
    /// An operation needs a browser login first.
    LoginRequired {
        /// The operation.
        op: OpId,
        /// Why, in words.
        reason: String,
    },
    /// An operation without a token result finished.
    Done {
        /// The operation.
        op: OpId,
    },
    /// An operation failed.
    Failed {
        /// The operation.
        op: OpId,
        /// Why.
        error: Error,
    },
    /// Something is wrong but work goes on (e.g. renewal failed before expiry, INV-6).
    Warning(String),
    /// What a [`Input::ResourceChallenge`] means for the caller that was refused.
    Challenged(ChallengeVerdict),
    /// A device login (RFC 8628 §3.3) waits for the user: show them where to go and the code
    /// to enter there. The device code itself is never in it.
    DeviceAuthorization {
        /// The operation.
        op: OpId,
        /// Where the user goes, on any device with a browser.
        verification_uri: String,
        /// The code the user enters there.
        user_code: String,
        /// The verification URI with the code in it (for a QR code or a click), when the
        /// server offers one (RFC 8628 §3.3.1).
        verification_uri_complete: Option<String>,
        /// When the code expires and the login gives up.
        expires_at: Timestamp,
    },
}

/// What the caller whose request a resource refused should do next (RFC 6750 §3.1,
/// MCP-10, MCP-18): the core decides it from the challenge and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeVerdict {
    /// Ask for a token again: the refused one is marked (or was already replaced), so the
    /// next [`Operation::Token`] refreshes, hands out the newer token, or says a login is
    /// required.
    TokenAgain,
    /// The resource wants more scope: the next [`Operation::Login`] asks for these.
    StepUp {
        /// The scopes the next authorization requests.
        scopes: Vec<String>,
    },
    /// Authorizing again cannot help, or was tried too often (MCP-18).
    GiveUp(String),
}

/// How an operation ended, as the embedder sees it: what [`Event::ending`] makes of the
/// event that ends it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// A valid access token.
    Token {
        /// The token.
        access_token: Secret,
        /// When it expires, if known.
        expires_at: Option<Timestamp>,
        /// How it is presented (a DPoP token needs a proof with every request).
        scheme: TokenScheme,
    },
    /// Done, with nothing to hand out.
    Done,
    /// A browser login is needed first.
    LoginRequired(String),
    /// It failed.
    Failed(Error),
}

impl Outcome {
    /// The error, if the operation failed.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// Whether a token was handed out.
    pub fn is_token(&self) -> bool {
        matches!(self, Outcome::Token { .. })
    }
}

impl Event {
    /// The operation this event ends and how it ended; `None` for an event that ends none
    /// (a state change, a warning).
    pub fn ending(self) -> Option<(OpId, Outcome)> {
        match self {
            Event::TokenReady {
                op,
                access_token,
                expires_at,
                scheme,
            } => Some((
                op,
                Outcome::Token {
                    access_token,
                    expires_at,
                    scheme,
                },
            )),
            Event::Done { op } => Some((op, Outcome::Done)),
            Event::LoginRequired { op, reason } => Some((op, Outcome::LoginRequired(reason))),
            Event::Failed { op, error } => Some((op, Outcome::Failed(error))),
            Event::StateChanged(_)
            | Event::Warning(_)
            | Event::Challenged(_)
            | Event::DeviceAuthorization { .. } => None,
        }
    }
}

/// Header names whose values are credentials, shown as [`crate::secret::REDACTED`].
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "set-cookie",
    "dpop",
    "proxy-authorization",
];

/// Headers for `Debug`, each credential value replaced by the redaction marker.
fn headers(map: &http::HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(name, value)| {
            let shown = if CREDENTIAL_HEADERS.contains(&name.as_str()) {
                crate::secret::REDACTED.to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.to_string(), shown)
        })
        .collect()
}

fn body(bytes: &[u8]) -> String {
    format!("[{} bytes]", bytes.len())
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Http { id, kind, request } => f
                .debug_struct("Http")
                .field("id", id)
                .field("kind", kind)
                .field("method", request.method())
                .field(
                    "url",
                    &crate::endpoint::sanitize(&request.uri().to_string()),
                )
                .field("headers", &headers(request.headers()))
                .field("body", &body(request.body()))
                .finish(),
            Command::Store { id, op } => f
                .debug_struct("Store")
                .field("id", id)
                .field("op", op)
                .finish(),
            Command::OpenBrowser { url } => f
                .debug_struct("OpenBrowser")
                .field("url", &crate::endpoint::sanitize(url))
                .finish(),
            Command::ReadAssertion { id, source } => f
                .debug_struct("ReadAssertion")
                .field("id", id)
                .field("source", source)
                .finish(),
            Command::Emit(event) => f.debug_tuple("Emit").field(event).finish(),
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Start { stored } => f.debug_struct("Start").field("stored", stored).finish(),
            Input::Operation { id, op } => f
                .debug_struct("Operation")
                .field("id", id)
                .field("op", op)
                .finish(),
            Input::HttpResponse { id, response } => f
                .debug_struct("HttpResponse")
                .field("id", id)
                .field("status", &response.status().as_u16())
                .field("headers", &headers(response.headers()))
                .field("body", &body(response.body()))
                .finish(),
            Input::HttpFailed { id, error } => f
                .debug_struct("HttpFailed")
                .field("id", id)
                .field("error", error)
                .finish(),
            Input::Store { id, result } => f
                .debug_struct("Store")
                .field("id", id)
                .field("result", result)
                .finish(),
            Input::Callback { query } => f
                .debug_struct("Callback")
                .field("query", &body(query.as_bytes()))
                .finish(),
            Input::CallbackUnavailable { reason } => f
                .debug_struct("CallbackUnavailable")
                .field("reason", reason)
                .finish(),
            Input::ResourceChallenge { headers, token } => f
                .debug_struct("ResourceChallenge")
                .field("headers", headers)
                .field("token", token)
                .finish(),
            Input::Assertion { id, result } => f
                .debug_struct("Assertion")
                .field("id", id)
                .field("result", result)
                .finish(),
            Input::Tick => f.write_str("Tick"),
        }
    }
}
