//! The driver: one task that owns the core and carries out its commands.
//!
//! Callers talk to the task through a [`crate::Tenure`] handle. Every operation goes into
//! the core, which merges concurrent callers of the same operation into one job (single
//! flight: one registration, one login, one refresh). The task waits on four things at once:
//! callers, the answer in flight, the browser's redirect, and the core's next deadline.
//! After every input it publishes the core's [`Client::handout`] for the handles to read.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tenure_core::endpoint::sanitize;
use tenure_core::{
    ChallengeVerdict, Client, ClientConfig, ClientKey, Command, Event, Input, OpId, Operation,
    Outcome, Record, Secret, Status, StoreOp,
};
use tenure_store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::browser::{headless_redirect, launch, BrowserMode};
use crate::callback::CallbackListener;
use crate::clock::Clock;
use crate::error::TokenError;
use crate::handle::{Cached, Shared};
use crate::http::HttpClient;
use crate::recorder::Recorder;
use crate::token::{AccessToken, Notice, Verdict};

type OpReply = oneshot::Sender<Result<Option<AccessToken>, TokenError>>;
type ChallengeReply = oneshot::Sender<Result<Verdict, TokenError>>;

/// What a handle asks of the driver.
pub(crate) enum Message {
    Op(Operation, OpReply),
    Challenge(Vec<String>, Option<Secret>, ChallengeReply),
    Status(oneshot::Sender<(Status, Option<Record>)>),
    Proof(ProofRequest, oneshot::Sender<Result<Secret, TokenError>>),
}

/// What a DPoP proof for a resource request is made for ([`crate::Tenure::dpop_proof`]).
pub(crate) struct ProofRequest {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) access_token: Secret,
    pub(crate) nonce: Option<String>,
}

/// Who waits for an operation's end.
pub(crate) enum Waiter {
    /// A caller of that operation.
    Caller(OpReply),
    /// A caller of [`crate::Tenure::challenge`], whose verdict is the token operation's end.
    Challenge(ChallengeReply),
}

/// A callback of the embedder's, shared with the driver task.
pub(crate) type Hook<T> = Arc<dyn Fn(&T) + Send + Sync>;

/// The embedder's callbacks.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) login_url: Option<Hook<str>>,
    pub(crate) notice: Option<Hook<Notice>>,
}

/// How the names of Tenure's own notes in the store's profile space start.
const NOTE_PREFIX: &str = ".tenure/";

/// The store profile under which the key of a client configured by resource is noted, so
/// that the next process finds its record without discovery.
fn key_note(config: &ClientConfig) -> String {
    // A digest keeps the name short whatever the URL; the client name's length goes first,
    // so that no two (name, upstream) pairs share a note.
    let pair = format!("{}:{}{}", config.name.len(), config.name, config.upstream());
    format!("{NOTE_PREFIX}key/{}", tenure_core::key::scope_hash(&[pair]))
}

/// Whether a store profile name is one of Tenure's own notes rather than an embedder's
/// (their names start with `.tenure/`; embedders keep their own names off that prefix).
pub fn is_internal_profile(name: &str) -> bool {
    name.starts_with(NOTE_PREFIX)
}

/// The key noted for a client configured by resource, if any.
pub(crate) async fn noted_key(
    store: &dyn Store,
    config: &ClientConfig,
) -> Result<Option<ClientKey>, String> {
    let noted = store
        .load_profile(&key_note(config))
        .await
        .map_err(|e| e.to_string())?;
    // A note that no longer parses is only a lost shortcut: discovery finds the record.
    Ok(noted.and_then(|value| serde_json::from_value::<ClientKey>(value).ok()))
}

pub(crate) struct Driver {
    pub(crate) client: Client,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) http: HttpClient,
    pub(crate) browser: BrowserMode,
    pub(crate) clock: Clock,
    pub(crate) recorder: Option<Recorder>,
    pub(crate) hooks: Hooks,
    pub(crate) shared: Arc<Shared>,
    /// The key the record is known under (noted in the store for a resource client).
    pub(crate) noted_key: Option<ClientKey>,
    pub(crate) waiters: HashMap<OpId, Waiter>,
    /// Challenge callers waiting for the core's verdict, oldest first.
    pub(crate) challenges: VecDeque<ChallengeReply>,
    pub(crate) next_op: u64,
    /// The last warning the core raised (it names why a callback was turned away).
    pub(crate) last_warning: Option<String>,
}

impl Driver {
    /// Hands the stored record to the core and publishes what it may hand out, before the
    /// task runs: a handle's first `token()` is then served without waiting for the task.
    pub(crate) fn start(&mut self, stored: Option<Record>) {
        if let Some(recorder) = &self.recorder {
            recorder.start(self.clock.now());
        }
        self.client
            .handle(self.clock.now(), Input::Start { stored });
        self.publish();
    }

    pub(crate) async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Message>) {
        let mut in_flight: JoinSet<Input> = JoinSet::new();
        let (redirects, mut redirected) = mpsc::unbounded_channel::<Input>();
        let mut listener: Option<tokio::task::JoinHandle<()>> = None;
        let mut callers_gone = false;
        loop {
            while let Some(command) = self.client.poll_command() {
                self.carry_out(command, &mut in_flight, &redirects, &mut listener)
                    .await;
            }
            self.publish();
            if self.client.is_idle() {
                if let Some(task) = listener.take() {
                    task.abort();
                }
                if callers_gone && in_flight.is_empty() {
                    return;
                }
            }
            let wake = self.client.poll_timeout().map(|at| {
                let wait = at.since(self.clock.now());
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
                    if let (Some(recorder), Input::Callback { query }) = (&self.recorder, &input) {
                        recorder.callback(query);
                    }
                    Some(input)
                }
                _ = sleep_until(wake), if wake.is_some() => Some(Input::Tick),
            };
            if let Some(input) = input {
                let callback = matches!(input, Input::Callback { .. });
                self.client.handle(self.clock.now(), input);
                if callback
                    && self.browser == BrowserMode::Headless
                    && self.client.awaits_callback()
                {
                    // A headless login gets exactly one redirect: once the core turned it
                    // away (a wrong `state` or `iss`), waiting for another only runs out the
                    // callback timeout.
                    let reason = format!(
                        "the authorization server's redirect was not accepted{}; a headless login gets no second one, so log in with a browser or fix the server",
                        self.last_warning
                            .as_deref()
                            .map(|w| format!(" ({w})"))
                            .unwrap_or_default()
                    );
                    self.client
                        .handle(self.clock.now(), Input::CallbackUnavailable { reason });
                }
            }
        }
    }

    fn receive(&mut self, message: Message) -> Option<Input> {
        match message {
            Message::Op(op, reply) => Some(self.begin(op, Waiter::Caller(reply))),
            Message::Challenge(headers, token, reply) => {
                self.challenges.push_back(reply);
                Some(Input::ResourceChallenge { headers, token })
            }
            Message::Status(reply) => {
                let now = self.clock.now();
                let _ = reply.send((self.client.status(now), self.client.record().cloned()));
                None
            }
            Message::Proof(asked, reply) => {
                let proof = self.client.resource_proof(
                    &asked.method,
                    &asked.url,
                    &asked.access_token,
                    asked.nonce.as_deref(),
                    self.clock.now(),
                );
                let _ = reply.send(proof.map_err(TokenError::from));
                None
            }
        }
    }

    /// The input that starts `op` for `waiter`.
    fn begin(&mut self, op: Operation, waiter: Waiter) -> Input {
        self.next_op += 1;
        let id = OpId(self.next_op);
        self.waiters.insert(id, waiter);
        tracing::debug!(?op, "operation asked for");
        if let Some(recorder) = &self.recorder {
            recorder.op(op.as_str(), self.clock.now());
        }
        Input::Operation { id, op }
    }

    /// Publishes what a token call may read without the driver: exactly what the core
    /// would hand out now, and until when.
    fn publish(&self) {
        let handout = self.client.handout(self.clock.now());
        let current = self.shared.cache.load();
        let unchanged = match (&handout, current.as_ref()) {
            (Some(h), Some(c)) => c.until == h.until && c.token.is(h.access_token.expose()),
            (None, None) => true,
            _ => false,
        };
        if !unchanged {
            self.shared.cache.store(handout.map(|h| {
                Arc::new(Cached {
                    token: AccessToken::new(&h.access_token, h.expires_at, h.scheme),
                    until: h.until,
                })
            }));
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
                let recorder = self.recorder.clone();
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
                if matches!(op, StoreOp::TakeLease { .. }) {
                    // Requests follow under the lease: have the HTTP clients built by then,
                    // while the lease is taken, not while it is held.
                    self.http.warm_up();
                }
                let store = self.store.clone();
                in_flight.spawn(async move {
                    let result = tenure_store::execute(store.as_ref(), &op).await;
                    Input::Store { id, result }
                });
            }
            Command::OpenBrowser { url } if self.browser == BrowserMode::Headless => {
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
                self.show(&url, redirects);
            }
            Command::OpenBrowser { url } => {
                let redirect_uri = self.client.config().redirect_uri.clone();
                match CallbackListener::bind(&redirect_uri).await {
                    Ok(bound) => {
                        let sink = redirects.clone();
                        let ended = redirects.clone();
                        *listener = Some(tokio::spawn(async move {
                            let error = bound
                                .serve(move |query| {
                                    let _ = sink.send(Input::Callback { query });
                                })
                                .await;
                            let _ = ended.send(Input::CallbackUnavailable {
                                reason: error.to_string(),
                            });
                        }));
                        self.show(&url, redirects);
                    }
                    Err(error) => {
                        let _ = redirects.send(Input::CallbackUnavailable {
                            reason: error.to_string(),
                        });
                    }
                }
            }
            Command::ReadAssertion { id, source } => {
                tracing::info!(source = %source.describe(), "reading the assertion");
                in_flight.spawn(async move {
                    let result = crate::assertion::read_assertion(&source).await;
                    Input::Assertion { id, result }
                });
            }
            Command::Emit(event) => self.observe(event).await,
            _ => {}
        }
    }

    async fn observe(&mut self, event: Event) {
        let (op, outcome) = match event {
            Event::StateChanged(state) => {
                tracing::info!(state = state.as_str(), "lifecycle");
                self.notify(Notice::Lifecycle(state));
                return;
            }
            Event::Warning(message) => {
                tracing::warn!("{message}");
                self.last_warning = Some(message.clone());
                let during = self.client.operation();
                self.notify(Notice::Warning { message, during });
                return;
            }
            Event::DeviceAuthorization {
                verification_uri,
                user_code,
                verification_uri_complete,
                expires_at,
                ..
            } => {
                tracing::info!(uri = %sanitize(&verification_uri), "device login waits for the user");
                self.notify(Notice::DeviceCode {
                    verification_uri,
                    user_code,
                    verification_uri_complete,
                    expires_at,
                });
                return;
            }
            Event::Challenged(verdict) => {
                let Some(reply) = self.challenges.pop_front() else {
                    return;
                };
                let verdict = match verdict {
                    ChallengeVerdict::StepUp { scopes } => Verdict::StepUp { scopes },
                    ChallengeVerdict::GiveUp(reason) => Verdict::GiveUp { reason },
                    _ => {
                        // The verdict is the end of asking for a token again.
                        let input = self.begin(Operation::Token, Waiter::Challenge(reply));
                        self.client.handle(self.clock.now(), input);
                        return;
                    }
                };
                let _ = reply.send(Ok(verdict));
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
        self.note_key().await;
        let token = match outcome {
            Outcome::Token {
                access_token,
                expires_at,
                scheme,
            } => Ok(Some(AccessToken::new(&access_token, expires_at, scheme))),
            Outcome::LoginRequired(reason) => Err(TokenError::LoginRequired { reason }),
            Outcome::Failed(error) => Err(TokenError::from(error)),
            _ => Ok(None),
        };
        match self.waiters.remove(&op) {
            Some(Waiter::Caller(reply)) => {
                let _ = reply.send(token);
            }
            Some(Waiter::Challenge(reply)) => {
                let verdict = match token {
                    Ok(Some(token)) => Ok(Verdict::Retry(token)),
                    Err(TokenError::LoginRequired { reason }) => {
                        Ok(Verdict::LoginRequired { reason })
                    }
                    Err(error) => Err(error),
                    Ok(None) => Err(TokenError::from(tenure_core::Error::Protocol(
                        "asking for a token again ended without one".into(),
                    ))),
                };
                let _ = reply.send(verdict);
            }
            None => {}
        }
    }

    fn notify(&self, notice: Notice) {
        if let Some(hook) = &self.hooks.notice {
            hook(&notice);
        }
    }

    /// Notes the key of a client configured by resource once it is known, so that the next
    /// process reads its record at start instead of discovering first. A note that cannot be
    /// written only costs that discovery, so it is logged and not reported.
    async fn note_key(&mut self) {
        if self.client.config().issuer.is_some() {
            return;
        }
        let key = self.client.record().map(|record| record.key.clone());
        if key.is_none() || key == self.noted_key {
            return;
        }
        let name = key_note(self.client.config());
        let value = serde_json::to_value(&key).unwrap_or_default();
        match self.store.save_profile(&name, value).await {
            Ok(()) => self.noted_key = key,
            Err(error) => tracing::warn!(%error, "cannot note where the record is stored"),
        }
    }

    /// Sends the user to `url`: the system browser for [`BrowserMode::Open`], then the
    /// embedder's hook. With neither, the login cannot reach anyone and ends with a reason.
    fn show(&self, url: &str, redirects: &mpsc::UnboundedSender<Input>) {
        let launched = self.browser == BrowserMode::Open && launch(url);
        if let Some(hook) = &self.hooks.login_url {
            hook(url);
        } else if !launched {
            let _ = redirects.send(Input::CallbackUnavailable {
                reason: "no browser could be started and no login URL hook is set (Builder::on_login_url); set one that shows the URL to the user".into(),
            });
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
