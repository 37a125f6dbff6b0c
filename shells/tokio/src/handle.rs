//! The embedder's side: a [`Builder`] that checks the configuration and starts the driver,
//! and a [`Tenure`] handle whose `token()` reads a valid cached token without waking it.
//!
//! ```text
//!   token() ──▶ cache (ArcSwap) ── valid? ──yes──▶ AccessToken       (no message, no await)
//!                                   │ no
//!                                   ▼
//!               driver task ──▶ tenure_core::Client ──▶ HTTP / store / browser
//!                    └── after every input: cache = client.handout(now)
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tenure_core::{ClientConfig, ClientKey, Operation, Record, Status, Timestamp};
use tenure_store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::browser::BrowserMode;
use crate::clock::Clock;
use crate::driver::{Driver, Hooks, Message, ProofRequest};
use crate::error::{BuildError, TokenError};
use crate::http::{HttpClient, Timeouts};
use crate::recorder::Recorder;
use crate::token::{AccessToken, Notice, Verdict};

/// A token the driver published for reading without it, and until when it holds.
pub(crate) struct Cached {
    pub(crate) token: AccessToken,
    pub(crate) until: Option<Timestamp>,
}

/// What the handles share with the driver.
pub(crate) struct Shared {
    pub(crate) cache: ArcSwapOption<Cached>,
    pub(crate) clock: Clock,
}

/// Starts a [`Tenure`]: `Tenure::builder(config, store).build().await?`.
pub struct Builder {
    config: ClientConfig,
    store: Arc<dyn Store>,
    browser: BrowserMode,
    timeouts: Timeouts,
    clock: Clock,
    recorder: Option<Recorder>,
    stored_under: Option<ClientKey>,
    hooks: Hooks,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("browser", &self.browser)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// How the login URL reaches the user; [`BrowserMode::Open`] by default.
    pub fn browser(mut self, mode: BrowserMode) -> Self {
        self.browser = mode;
        self
    }

    /// Request timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The clock (tests shift it).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Records every exchange as a provider trace (design §7).
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// A fixed seed for PKCE, `state` and the lease holder id, for tests and replays only;
    /// by default it is drawn from the operating system, so no two processes share one.
    pub fn seed(mut self, seed: [u8; 32]) -> Self {
        self.config.seed = seed;
        self
    }

    /// The key the record was stored under, when the embedder keeps it itself. Without it a
    /// client configured by resource finds its record through a note Tenure keeps in the
    /// store beside it.
    pub fn stored_under(mut self, key: ClientKey) -> Self {
        self.stored_under = Some(key);
        self
    }

    /// Called with the authorization URL whenever a login needs the user (after the
    /// browser was asked to open it, with [`BrowserMode::Open`]). The library itself never
    /// prints; a command-line tool prints the URL here.
    pub fn on_login_url(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.hooks.login_url = Some(Arc::new(hook));
        self
    }

    /// Called with every warning and lifecycle change, as it happens (they go to `tracing`
    /// too).
    pub fn on_notice(mut self, hook: impl Fn(&Notice) + Send + Sync + 'static) -> Self {
        self.hooks.notice = Some(Arc::new(hook));
        self
    }

    /// Checks the configuration, reads the stored record and starts the driver task on the
    /// current Tokio runtime.
    pub async fn build(mut self) -> Result<Tenure, BuildError> {
        self.config.validate()?;
        if self.browser == BrowserMode::Print && self.hooks.login_url.is_none() {
            return Err(BuildError::NoLoginUrlHook);
        }
        if self.config.seed == [0; 32] {
            getrandom::fill(&mut self.config.seed)
                .map_err(|e| BuildError::Entropy(e.to_string()))?;
        }
        let key = match (self.stored_under.take(), &self.config.issuer) {
            (Some(key), _) => Some(key),
            (None, Some(issuer)) => Some(self.config.key_for(issuer)),
            (None, None) => crate::driver::noted_key(self.store.as_ref(), &self.config)
                .await
                .map_err(BuildError::Store)?,
        };
        let stored = match &key {
            Some(key) => self
                .store
                .get(key)
                .await
                .map_err(|e| BuildError::Store(e.to_string()))?,
            None => None,
        };
        let shared = Arc::new(Shared {
            cache: ArcSwapOption::empty(),
            clock: self.clock,
        });
        let (messages, inbox) = mpsc::unbounded_channel();
        let mut driver = Driver {
            client: tenure_core::Client::new(self.config),
            store: self.store,
            http: HttpClient::new(self.timeouts),
            browser: self.browser,
            clock: self.clock,
            recorder: self.recorder,
            hooks: self.hooks,
            shared: shared.clone(),
            noted_key: key,
            waiters: HashMap::new(),
            challenges: Default::default(),
            next_op: 0,
            last_warning: None,
        };
        driver.start(stored);
        tokio::spawn(driver.run(inbox));
        Ok(Tenure { messages, shared })
    }
}

/// A running client. Cheap to clone and to share between tasks; the driver stops when every
/// handle is gone.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn tenure_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
/// let config = tenure_core::ClientConfig::for_issuer("my-tool", "https://auth.example.com");
/// let tenure = tenure_tokio::Tenure::builder(config, store).build().await?;
/// let token = tenure.token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tenure {
    messages: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Tenure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenure").finish_non_exhaustive()
    }
}

impl Tenure {
    /// A builder for a client of `config` whose record lives in `store`.
    pub fn builder(config: ClientConfig, store: Arc<dyn Store>) -> Builder {
        Builder {
            config,
            store,
            browser: BrowserMode::Open,
            timeouts: Timeouts::default(),
            clock: Clock::system(),
            recorder: None,
            stored_under: None,
            hooks: Hooks::default(),
        }
    }

    /// A valid access token: registering, refreshing and renewing as needed, never opening a
    /// browser. While the cached token is valid this reads it without waking the driver.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        self.run(Operation::Token)
            .await?
            .ok_or_else(|| TokenError::from(no_token("token")))
    }

    /// The token [`Tenure::token`] hands out now without waking the driver, and the instant
    /// from which it asks the driver again (`None`: no deadline). `None` when there is no
    /// such token.
    pub fn cached(&self) -> Option<(AccessToken, Option<Timestamp>)> {
        let guard = self.shared.cache.load();
        let cached = guard.as_ref()?;
        match cached.until {
            Some(until) if self.shared.clock.now() >= until => None,
            until => Some((cached.token.clone(), until)),
        }
    }

    /// Logs in through the browser (or, for a client-credentials client, fetches a token).
    pub async fn login(&self) -> Result<AccessToken, TokenError> {
        self.run(Operation::Login)
            .await?
            .ok_or_else(|| TokenError::from(no_token("login")))
    }

    /// Renews the client secret now (RFC 7592).
    pub async fn renew(&self) -> Result<(), TokenError> {
        self.run(Operation::Renew).await.map(drop)
    }

    /// Drops the tokens and keeps the registration.
    pub async fn logout(&self) -> Result<(), TokenError> {
        self.run(Operation::Logout).await.map(drop)
    }

    /// Deletes the registration at the server (where it can be) and the local record.
    pub async fn forget(&self) -> Result<(), TokenError> {
        self.run(Operation::Forget).await.map(drop)
    }

    /// Runs one operation to its end: the token, if it hands one out. The typed methods
    /// above are this with the result narrowed.
    pub async fn run(&self, op: Operation) -> Result<Option<AccessToken>, TokenError> {
        // The hot path: a valid published token needs no round trip to the driver.
        if op == Operation::Token {
            if let Some((token, _)) = self.cached() {
                return Ok(Some(token));
            }
        }
        if matches!(
            op,
            Operation::Logout | Operation::Forget | Operation::ForgetLocal
        ) {
            // Nothing may read the cache once the tokens are on their way out.
            self.shared.cache.store(None);
        }
        let (reply, answer) = oneshot::channel();
        self.messages
            .send(Message::Op(op, reply))
            .map_err(|_| TokenError::Stopped)?;
        answer.await.map_err(|_| TokenError::Stopped)?
    }

    /// Tells Tenure that a protected resource refused `sent` (a 401 or 403), with every
    /// `WWW-Authenticate` value of its answer, and says what to do next. Nobody needs to
    /// parse the challenge: a `resource_metadata` link makes discovery run again (PRM-9),
    /// a `scope` is asked for at the next authorization (MCP-10), `insufficient_scope`
    /// prepares a step-up or gives up (MCP-18), and any other refusal marks the token, so
    /// the verdict carries a refreshed one or says a login is required.
    pub async fn challenge(
        &self,
        sent: Option<&AccessToken>,
        www_authenticate: Vec<String>,
    ) -> Result<Verdict, TokenError> {
        // A refused token must not be read from the cache again.
        if let Some(sent) = sent {
            let guard = self.shared.cache.load();
            if guard.as_ref().is_some_and(|c| c.token == *sent) {
                self.shared.cache.store(None);
            }
        } else {
            self.shared.cache.store(None);
        }
        let (reply, answer) = oneshot::channel();
        let token = sent.map(|t| tenure_core::Secret::new(t.secret()));
        self.messages
            .send(Message::Challenge(www_authenticate, token, reply))
            .map_err(|_| TokenError::Stopped)?;
        answer.await.map_err(|_| TokenError::Stopped)?
    }

    /// [`Tenure::challenge`] with the headers of the refusing answer.
    pub async fn challenge_headers(
        &self,
        sent: Option<&AccessToken>,
        headers: &http::HeaderMap,
    ) -> Result<Verdict, TokenError> {
        let values = headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::to_owned)
            .collect();
        self.challenge(sent, values).await
    }

    /// A DPoP proof (RFC 9449 §4.2, §7.1) for one request to a protected resource that
    /// carries `token`: the value of the request's `DPoP` header, beside `Authorization:
    /// DPoP <token>` ([`AccessToken::header_value`]). Made afresh for every request (its
    /// `jti` is new each time) with the client's stored key; `nonce` is the resource's latest
    /// `DPoP-Nonce`, when it asked for one (RFC 9449 §9). `url` may carry a query; the proof
    /// names the URL without it.
    pub async fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        token: &AccessToken,
        nonce: Option<&str>,
    ) -> Result<tenure_core::Secret, TokenError> {
        let (reply, answer) = oneshot::channel();
        let asked = ProofRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            access_token: tenure_core::Secret::new(token.secret()),
            nonce: nonce.map(str::to_owned),
        };
        self.messages
            .send(Message::Proof(asked, reply))
            .map_err(|_| TokenError::Stopped)?;
        answer.await.map_err(|_| TokenError::Stopped)?
    }

    /// Where the credentials stand, and the record (secrets inside: use
    /// [`Record::redacted`] to show it).
    pub async fn status(&self) -> Result<(Status, Option<Record>), TokenError> {
        let (reply, answer) = oneshot::channel();
        self.messages
            .send(Message::Status(reply))
            .map_err(|_| TokenError::Stopped)?;
        answer.await.map_err(|_| TokenError::Stopped)
    }
}

fn no_token(op: &str) -> tenure_core::Error {
    tenure_core::Error::Protocol(format!("the {op} operation ended without a token"))
}
