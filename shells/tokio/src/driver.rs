//! The driver: one task that owns the core and carries out its commands.
//!
//! Callers talk to the task through a [`Tenure`] handle. Every operation goes into the core,
//! which merges concurrent callers of the same operation into one job (single flight: one
//! registration, one login, one refresh). The task waits on four things at once: callers,
//! the answer in flight, the browser's redirect, and the core's next deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tenure_core::endpoint::sanitize;
pub use tenure_core::Outcome;
use tenure_core::{
    Client, ClientConfig, ClientKey, Command, Event, Input, OpId, Operation, Record, Status,
    Timestamp,
};
use tenure_store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::browser::{headless_redirect, show, BrowserMode};
use crate::callback::CallbackListener;
use crate::http::{HttpClient, Timeouts};
use crate::recorder::Recorder;

/// Wall-clock time, optionally shifted (the CLI's hidden `--now` for tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_millis: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock that reads `at` now and runs on from there.
    pub fn starting_at(at: Timestamp) -> Self {
        Clock {
            offset_millis: at.unix_millis() - system_millis(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(system_millis() + self.offset_millis)
    }
}

fn system_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How the shell behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// How the authorization URL reaches the user.
    pub browser: BrowserMode,
    /// Request timeouts.
    pub timeouts: Timeouts,
    /// The clock.
    pub clock: Clock,
    /// The key the record was stored under last time, when the configuration alone cannot
    /// tell (a client configured by resource learns its issuer by discovery).
    pub known_key: Option<ClientKey>,
    /// Where to record the exchanges as a provider trace (design §7), if anywhere.
    pub recorder: Option<Recorder>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            browser: BrowserMode::Open,
            timeouts: Timeouts::default(),
            clock: Clock::system(),
            known_key: None,
            recorder: None,
        }
    }
}

/// An outcome and the warnings raised while it was worked on.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// Warnings (e.g. a renewal that failed before expiry), to show the user.
    pub warnings: Vec<String>,
}

/// Why the shell itself could not run an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] crate::http::TransportError),
    /// The store could not be read at start.
    #[error("cannot read the store: {0}")]
    Store(String),
    /// The driver task is gone.
    #[error("the Tenure driver stopped")]
    Stopped,
    /// The operating system gave no randomness for the seed.
    #[error("the operating system gave no randomness for PKCE and state ({0}); set `ClientConfig::seed` yourself")]
    Entropy(String),
}

enum Message {
    Op(Operation, oneshot::Sender<Report>),
    Challenge(Vec<String>),
    Status(oneshot::Sender<(Status, Option<Record>)>),
}

/// The seed gives every PKCE verifier, `state` and lease holder id: one left at its zero
/// default is drawn from the operating system, so no two processes share it and nobody can
/// predict it. A fixed seed is for tests and replays only.
fn seed(config: &mut ClientConfig) -> Result<(), ShellError> {
    if config.seed == [0; 32] {
        getrandom::fill(&mut config.seed).map_err(|e| ShellError::Entropy(e.to_string()))?;
    }
    Ok(())
}

/// A handle on a running client. Cheap to clone; the driver stops when every handle is gone.
#[derive(Clone, Debug)]
pub struct Tenure {
    messages: mpsc::UnboundedSender<Message>,
}

impl Tenure {
    /// Starts a client for `config` on `store`: reads the stored record, then runs the driver
    /// task on the current runtime.
    pub async fn start(
        mut config: ClientConfig,
        store: Arc<dyn Store>,
        options: Options,
    ) -> Result<Tenure, ShellError> {
        seed(&mut config)?;
        let key = options
            .known_key
            .clone()
            .or_else(|| config.issuer.as_ref().map(|issuer| config.key_for(issuer)));
        let stored = match &key {
            Some(key) => store
                .get(key)
                .await
                .map_err(|e| ShellError::Store(e.to_string()))?,
            None => None,
        };
        let http = HttpClient::new(options.timeouts)?;
        let (messages, inbox) = mpsc::unbounded_channel();
        let driver = Driver {
            client: Client::new(config),
            store,
            http,
            options,
            waiters: HashMap::new(),
            warnings: Vec::new(),
            next_op: 0,
        };
        tokio::spawn(driver.run(inbox, stored));
        Ok(Tenure { messages })
    }

    /// Runs one operation to its end.
    pub async fn run(&self, op: Operation) -> Result<Report, ShellError> {
        let (reply, answer) = oneshot::channel();
        self.messages
            .send(Message::Op(op, reply))
            .map_err(|_| ShellError::Stopped)?;
        answer.await.map_err(|_| ShellError::Stopped)
    }

    /// A valid access token: registering, refreshing and renewing as needed, never opening
    /// a browser.
    pub async fn token(&self) -> Result<Report, ShellError> {
        self.run(Operation::Token).await
    }

    /// Logs in through the browser (or fetches a client-credentials token).
    pub async fn login(&self) -> Result<Report, ShellError> {
        self.run(Operation::Login).await
    }

    /// Renews the client secret now.
    pub async fn renew(&self) -> Result<Report, ShellError> {
        self.run(Operation::Renew).await
    }

    /// Drops the tokens and keeps the registration.
    pub async fn logout(&self) -> Result<Report, ShellError> {
        self.run(Operation::Logout).await
    }

    /// Deletes the registration at the server and the local record.
    pub async fn forget(&self) -> Result<Report, ShellError> {
        self.run(Operation::Forget).await
    }

    /// Tells Tenure that the protected resource refused a request, with every
    /// `WWW-Authenticate` value of its answer (a 401 or a 403).
    ///
    /// What follows is decided by the core: a `resource_metadata` link makes discovery run
    /// again (PRM-9); a `scope` is asked for at the next authorization (MCP-10, MCP-11);
    /// `error="insufficient_scope"` prepares a step-up that the next [`Tenure::login`]
    /// performs, or refuses with [`Error::StepUpRefused`] when it cannot help (MCP-18,
    /// MCP26-8); any other challenge marks the token that was sent as refused, so the next
    /// [`Tenure::token`] refreshes it or reports that a login is required.
    pub async fn challenge(&self, headers: Vec<String>) -> Result<(), ShellError> {
        self.messages
            .send(Message::Challenge(headers))
            .map_err(|_| ShellError::Stopped)
    }

    /// Where the credentials stand, and the record (secrets inside: use
    /// [`Record::redacted`] to show it).
    pub async fn status(&self) -> Result<(Status, Option<Record>), ShellError> {
        let (reply, answer) = oneshot::channel();
        self.messages
            .send(Message::Status(reply))
            .map_err(|_| ShellError::Stopped)?;
        answer.await.map_err(|_| ShellError::Stopped)
    }
}

struct Driver {
    client: Client,
    store: Arc<dyn Store>,
    http: HttpClient,
    options: Options,
    waiters: HashMap<OpId, oneshot::Sender<Report>>,
    warnings: Vec<String>,
    next_op: u64,
}

impl Driver {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Message>, stored: Option<Record>) {
        let mut in_flight: JoinSet<Input> = JoinSet::new();
        let (redirects, mut redirected) = mpsc::unbounded_channel::<Input>();
        let mut listener: Option<tokio::task::JoinHandle<()>> = None;
        let mut callers_gone = false;
        if let Some(recorder) = &self.options.recorder {
            recorder.start(self.options.clock.now());
        }
        self.client
            .handle(self.options.clock.now(), Input::Start { stored });
        loop {
            while let Some(command) = self.client.poll_command() {
                self.carry_out(command, &mut in_flight, &redirects, &mut listener)
                    .await;
            }
            if self.client.is_idle() {
                if let Some(task) = listener.take() {
                    task.abort();
                }
                if callers_gone && in_flight.is_empty() {
                    return;
                }
            }
            let wake = self.client.poll_timeout().map(|at| {
                let wait = at.since(self.options.clock.now());
                tokio::time::Instant::now()
                    + std::time::Duration::from_millis(wait.as_millis() as u64)
            });
            let input = tokio::select! {
                message = inbox.recv(), if !callers_gone => match message {
                    Some(message) => self.receive(message),
                    None => {
                        callers_gone = true;
                        None
                    }
                },
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => joined.ok(),
                Some(input) = redirected.recv() => {
                    if let (Some(recorder), Input::Callback { query }) = (&self.options.recorder, &input) {
                        recorder.callback(query);
                    }
                    Some(input)
                }
                _ = sleep_until(wake), if wake.is_some() => Some(Input::Tick),
            };
            if let Some(input) = input {
                self.client.handle(self.options.clock.now(), input);
            }
        }
    }

    fn receive(&mut self, message: Message) -> Option<Input> {
        match message {
            Message::Op(op, reply) => {
                self.next_op += 1;
                let id = OpId(self.next_op);
                self.waiters.insert(id, reply);
                tracing::debug!(?op, "operation asked for");
                if let Some(recorder) = &self.options.recorder {
                    recorder.op(op.as_str(), self.options.clock.now());
                }
                Some(Input::Operation { id, op })
            }
            Message::Challenge(headers) => Some(Input::ResourceChallenge { headers }),
            Message::Status(reply) => {
                let now = self.options.clock.now();
                let _ = reply.send((self.client.status(now), self.client.record().cloned()));
                None
            }
        }
    }

    async fn carry_out(
        &mut self,
        command: Command,
        in_flight: &mut JoinSet<Input>,
        redirects: &mpsc::UnboundedSender<Input>,
        listener: &mut Option<tokio::task::JoinHandle<()>>,
    ) {
        match command {
            Command::Http { id, kind, request } => {
                let http = self.http.clone();
                let recorder = self.options.recorder.clone();
                let (method, url) = (request.method().to_string(), request.uri().to_string());
                tracing::info!(?kind, %method, url = %sanitize(&url), "request");
                in_flight.spawn(async move {
                    match http.send(request, kind.body_limit()).await {
                        Ok(response) => {
                            tracing::info!(?kind, status = response.status().as_u16(), "answer");
                            if let Some(recorder) = recorder {
                                recorder.response(&method, &url, &response);
                            }
                            Input::HttpResponse { id, response }
                        }
                        Err(error) => {
                            tracing::warn!(?kind, %error, "request failed");
                            Input::HttpFailed {
                                id,
                                error: error.to_string(),
                            }
                        }
                    }
                });
            }
            Command::Store { id, op } => {
                let store = self.store.clone();
                in_flight.spawn(async move {
                    let result = tenure_store::execute(store.as_ref(), &op).await;
                    Input::Store { id, result }
                });
            }
            Command::OpenBrowser { url } if self.options.browser == BrowserMode::Headless => {
                let redirect_uri = self.client.config().redirect_uri.clone();
                let http = self.http.clone();
                let redirects = redirects.clone();
                *listener = Some(tokio::spawn(async move {
                    let input = match headless_redirect(&http, &url, &redirect_uri).await {
                        Ok(query) => Input::Callback { query },
                        Err(reason) => Input::CallbackUnavailable { reason },
                    };
                    let _ = redirects.send(input);
                }));
            }
            Command::OpenBrowser { url }
                if listener.as_ref().is_some_and(|task| !task.is_finished()) =>
            {
                // The listener of this login is still serving (the core sends the browser
                // again after a refused CIMD client id): it receives this redirect too.
                show(&url, self.options.browser);
            }
            Command::OpenBrowser { url } => {
                let redirect_uri = self.client.config().redirect_uri.clone();
                match CallbackListener::bind(&redirect_uri).await {
                    Ok(bound) => {
                        let redirects = redirects.clone();
                        *listener = Some(tokio::spawn(async move {
                            let sink = redirects.clone();
                            let error = bound
                                .serve(move |query| {
                                    let _ = sink.send(Input::Callback { query });
                                })
                                .await;
                            let _ = redirects.send(Input::CallbackUnavailable {
                                reason: error.to_string(),
                            });
                        }));
                        show(&url, self.options.browser);
                    }
                    Err(error) => {
                        let _ = redirects.send(Input::CallbackUnavailable {
                            reason: error.to_string(),
                        });
                    }
                }
            }
            Command::Emit(event) => self.observe(event),
            _ => {}
        }
    }

    fn observe(&mut self, event: Event) {
        let (op, outcome) = match event {
            Event::StateChanged(state) => {
                tracing::info!(state = state.as_str(), "lifecycle");
                return;
            }
            Event::Warning(message) => {
                tracing::warn!("{message}");
                self.warnings.push(message);
                return;
            }
            ending => match ending.ending() {
                Some(ended) => ended,
                None => return,
            },
        };
        if let Some(error) = outcome.error() {
            tracing::warn!(%error, "operation failed");
        }
        if let Some(reply) = self.waiters.remove(&op) {
            let warnings = if self.waiters.is_empty() {
                std::mem::take(&mut self.warnings)
            } else {
                self.warnings.clone()
            };
            let _ = reply.send(Report { outcome, warnings });
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_seed_is_drawn_from_the_system_and_a_chosen_one_kept() {
        let mut one = ClientConfig::for_issuer("a", "https://as.example.com");
        let mut two = one.clone();
        seed(&mut one).unwrap();
        seed(&mut two).unwrap();
        assert_ne!(one.seed, [0; 32]);
        assert_ne!(one.seed, two.seed, "no two processes share a seed");
        let mut fixed = ClientConfig::for_issuer("a", "https://as.example.com");
        fixed.seed = [7; 32];
        seed(&mut fixed).unwrap();
        assert_eq!(fixed.seed, [7; 32], "tests and replays keep theirs");
    }
}
