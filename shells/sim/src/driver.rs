//! The driver: runs the core against the simulated provider and store in virtual time.
//!
//! The driver is the simplest possible shell. It pops the core's commands and carries each one
//! out at once: HTTP requests go to the [`Server`] (the [`SimulatedProvider`] unless another is
//! given), store operations to [`SimStore::apply`], the browser step follows the server's
//! redirect back to the callback. When the core waits for time, the virtual clock jumps to its
//! deadline. Every run is bounded by a step limit, so a livelock is an error, never a hang.
//!
//! It is the harness the core's tests, the models and the benches drive one client with, in
//! two gears:
//!
//! ```text
//!   run(op)           begin(op), then poll_request answered by the server, and ticks, until
//!                     op has an outcome
//!   begin(op)         the same steps by hand: the test takes each request from poll_request
//!   poll_request()    and answers or fails it with handle_reply; store operations and the
//!   handle_reply(..)  browser are still carried out here, and outcome(op) says how op ended
//! ```

use std::collections::HashMap;
use std::fmt;

pub use tenure_core::Outcome;
use tenure_core::{
    AssertionSource, Client, ClientConfig, Command, Duration, Event, Input, Lifecycle, OpId,
    Operation, Record, RequestId, RequestKind, Secret, Timestamp,
};

use crate::provider::{Reply, Server, SimulatedProvider};
use crate::store::SimStore;

/// How many commands and clock jumps one operation may take before it counts as a livelock.
pub const DEFAULT_STEP_LIMIT: usize = 10_000;

/// What the simulated user's browser does with an authorization URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Browser {
    /// Follow the provider's redirect to the loopback callback.
    Follow,
    /// Never come back (the user closed the tab).
    Never,
    /// Follow, but deliver this query to the callback instead (an attacker's or a stale one);
    /// `{state}` is replaced by the state the client sent.
    Deliver(String),
    /// Do not ask the server at all: deliver these queries to the callback, one per browser
    /// step, in order (a recorded trace's `callback` lines); `{state}` as above.
    Script(std::collections::VecDeque<String>),
}

/// Why a simulation could not finish an operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The step limit was reached.
    #[error("no outcome after {0} steps: the client livelocked")]
    Livelock(usize),
    /// The client waits for nothing and produced no outcome.
    #[error("the client stalled: no command, no deadline, no outcome")]
    Stalled,
}

/// One request the client sent, as the provider saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentRequest {
    /// When.
    pub at: Timestamp,
    /// What for.
    pub kind: RequestKind,
    /// `GET`, `POST` …
    pub method: String,
    /// The full URL.
    pub url: String,
    /// The status, or the fault that replaced the answer.
    pub answer: String,
}

/// A request the client sent that nobody has answered yet: what [`Simulation::poll_request`]
/// hands out, for [`Simulation::handle_reply`] to answer.
pub struct PendingRequest {
    /// The id the answer goes back with.
    pub id: RequestId,
    /// What for.
    pub kind: RequestKind,
    /// The request as the client built it.
    pub request: http::Request<Vec<u8>>,
}

impl fmt::Debug for PendingRequest {
    /// Method and URL only: headers and body carry credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingRequest")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("method", self.request.method())
            .field(
                "url",
                &tenure_core::endpoint::sanitize(&self.request.uri().to_string()),
            )
            .finish()
    }
}

/// One line of the timeline a person can follow.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Virtual time.
    pub at: Timestamp,
    /// What happened.
    pub what: What,
}

/// What a timeline entry records.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum What {
    /// A process (re)start; whether a stored record was handed in.
    Start {
        /// A record was found in the store.
        stored: bool,
    },
    /// The user asked for something.
    Operation(Operation),
    /// A request and its answer.
    Request(SentRequest),
    /// The record was written (new generation).
    Stored(u64),
    /// The browser was sent to the authorization endpoint.
    Browser,
    /// A device login (RFC 8628) showed the user where to go and the code to enter.
    DeviceCode {
        /// The verification URI.
        verification_uri: String,
        /// The user code.
        user_code: String,
    },
    /// The client read the jwt-bearer grant's assertion from this source.
    Assertion(String),
    /// The lifecycle moved.
    State(Lifecycle),
    /// The client warned.
    Warning(String),
    /// The operation ended.
    Outcome(String),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  ", self.at)?;
        match &self.what {
            What::Start { stored: true } => {
                write!(f, "start      process starts; the store holds a record")
            }
            What::Start { stored: false } => {
                write!(f, "start      process starts; the store is empty")
            }
            What::Operation(op) => write!(f, "op         {}", operation_name(*op)),
            What::Request(r) => write!(
                f,
                "request    {:<6} {} -> {}",
                r.method,
                tenure_core::endpoint::sanitize(&r.url),
                r.answer
            ),
            What::Stored(generation) => {
                write!(f, "store      record written (generation {generation})")
            }
            What::Browser => write!(f, "browser    user sent to the authorization endpoint"),
            What::DeviceCode {
                verification_uri,
                user_code,
            } => write!(
                f,
                "device     user asked to enter {user_code} at {verification_uri}"
            ),
            What::Assertion(source) => write!(f, "assertion  read from {source}"),
            What::State(state) => write!(f, "state      {}", state.as_str()),
            What::Warning(message) => write!(f, "warning    {message}"),
            What::Outcome(text) => write!(f, "outcome    {text}"),
        }
    }
}

/// The CLI's name of an operation.
pub fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Token => "token",
        Operation::Login => "login",
        Operation::Renew => "renew",
        Operation::Forget => "forget",
        Operation::Logout => "logout",
        _ => "other",
    }
}

/// A client, a server and a store, in virtual time. The server is the simulated provider
/// unless another [`Server`] is given (a recorded trace, for replay).
#[derive(Debug)]
pub struct Simulation<S = SimulatedProvider> {
    now: Timestamp,
    config: ClientConfig,
    client: Client,
    /// The authorization server.
    pub provider: S,
    /// The store, which outlives client restarts.
    pub store: SimStore,
    /// What the browser does.
    pub browser: Browser,
    /// How much virtual time a request that times out costs.
    pub request_timeout: Duration,
    /// The most steps one operation may take.
    pub step_limit: usize,
    /// What the platform provides at each assertion source (a workload token, a user's ID
    /// token); a read of a source not in it fails as an unset variable would. A test
    /// replaces a value to model the platform rotating it.
    pub assertions: HashMap<AssertionSource, String>,
    timeline: Vec<Entry>,
    requests: Vec<SentRequest>,
    /// How operations ended, until `run` collects them.
    outcomes: Vec<(OpId, Outcome)>,
    next_op: u64,
    inputs: u64,
}

impl<S: Server> Simulation<S> {
    /// A simulation at `now` with an empty store; the client has started.
    pub fn new(config: ClientConfig, provider: S, now: Timestamp) -> Self {
        let mut simulation = Simulation {
            now,
            client: Client::new(config.clone()),
            config,
            provider,
            store: SimStore::new(),
            browser: Browser::Follow,
            request_timeout: Duration::from_secs(30),
            step_limit: DEFAULT_STEP_LIMIT,
            assertions: HashMap::new(),
            timeline: Vec::new(),
            requests: Vec::new(),
            outcomes: Vec::new(),
            next_op: 0,
            inputs: 0,
        };
        simulation.start();
        simulation
    }

    /// The virtual time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Moves the clock forward (never backward).
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
    }

    /// Sets the clock, backward too (a wall clock can jump).
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// The client under test.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> &[SentRequest] {
        &self.requests
    }

    /// How many inputs the core has handled (the benchmark's unit of work).
    pub fn inputs_handled(&self) -> u64 {
        self.inputs
    }

    /// How operation `op` ended, once it has and until [`Simulation::run`] or
    /// [`Simulation::run_all`] collects it.
    pub fn outcome(&self, op: OpId) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(id, _)| *id == op)
            .map(|(_, outcome)| outcome)
    }

    /// Removes how `op` ended from those kept.
    fn take_outcome(&mut self, op: OpId) -> Option<Outcome> {
        let at = self.outcomes.iter().position(|(id, _)| *id == op)?;
        Some(self.outcomes.remove(at).1)
    }

    /// Hands the client one input at the current virtual time. Nothing is carried out yet:
    /// the commands it causes wait for the next [`Simulation::run`] or
    /// [`Simulation::poll_request`].
    pub fn handle(&mut self, input: Input) {
        self.inputs += 1;
        self.client.handle(self.now, input);
    }

    /// How many requests of `kind` were sent.
    pub fn count(&self, kind: RequestKind) -> usize {
        self.requests.iter().filter(|r| r.kind == kind).count()
    }

    /// The timeline so far.
    pub fn timeline(&self) -> &[Entry] {
        &self.timeline
    }

    /// Takes the timeline entries recorded since the last call.
    pub fn take_timeline(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.timeline)
    }

    /// The stored record of this client, if any.
    pub fn stored(&self) -> Option<&Record> {
        find_record(&self.store, &self.config)
    }

    /// Simulates a crash and a new process: in-flight state is lost, the store is kept, and a
    /// new client starts from what the store holds.
    pub fn restart(&mut self) {
        self.client = Client::new(self.config.clone());
        self.start();
    }

    /// Restarts with a changed configuration (e.g. a new seed for a second replica).
    pub fn restart_with(&mut self, config: ClientConfig) {
        self.config = config;
        self.restart();
    }

    fn start(&mut self) {
        let stored = self.stored().cloned();
        self.note(What::Start {
            stored: stored.is_some(),
        });
        self.handle(Input::Start { stored });
        // A start only reports state; nothing else can be asked of the shell yet.
        self.settle();
    }

    /// Asks for `op` and carries out the client's commands until it ends.
    pub fn run(&mut self, op: Operation) -> Result<Outcome, SimError> {
        let mut outcomes = self.run_all(&[op])?;
        Ok(outcomes.remove(0))
    }

    /// Asks for several operations at once, as concurrent callers would, and carries out the
    /// client's commands until every one has ended. Outcomes come in the order asked.
    pub fn run_all(&mut self, ops: &[Operation]) -> Result<Vec<Outcome>, SimError> {
        let ids: Vec<OpId> = ops.iter().map(|op| self.begin(*op)).collect();
        for _ in 0..self.step_limit {
            self.settle();
            if ids.iter().all(|id| self.outcome(*id).is_some()) {
                return Ok(ids.iter().filter_map(|id| self.take_outcome(*id)).collect());
            }
            match self.client.poll_timeout() {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.handle(Input::Tick);
                }
                None => return Err(SimError::Stalled),
            }
        }
        Err(SimError::Livelock(self.step_limit))
    }

    /// Asks for `op` and returns its id, carrying out nothing yet: the first step of driving
    /// an operation by hand with [`Simulation::poll_request`].
    pub fn begin(&mut self, op: Operation) -> OpId {
        self.next_op += 1;
        let id = OpId(self.next_op);
        self.note(What::Operation(op));
        self.handle(Input::Operation { id, op });
        id
    }

    /// Carries out the client's commands (store operations, the browser, events) until it
    /// sends an HTTP request, which is handed back unanswered; `None` once the client has
    /// nothing more to do without an answer or a tick. The virtual clock does not move.
    pub fn poll_request(&mut self) -> Option<PendingRequest> {
        while let Some(command) = self.client.poll_command() {
            match command {
                Command::Http { id, kind, request } => {
                    return Some(PendingRequest { id, kind, request })
                }
                other => self.carry_out(other),
            }
        }
        None
    }

    /// Hands the client the fate of `request`: an answer, a timeout (which costs
    /// [`Simulation::request_timeout`] of virtual time) or a lost connection. The request
    /// and its answer are recorded like those the server answered.
    pub fn handle_reply(&mut self, request: &PendingRequest, reply: Reply) {
        let id = request.id;
        let (answer, input) = match reply {
            Reply::Response(response) => (
                response.status().as_u16().to_string(),
                Input::HttpResponse { id, response },
            ),
            Reply::Timeout => {
                self.now = self.now + self.request_timeout;
                (
                    "timeout".to_string(),
                    Input::HttpFailed {
                        id,
                        error: "timed out".into(),
                    },
                )
            }
            Reply::Lost => (
                "connection lost".to_string(),
                Input::HttpFailed {
                    id,
                    error: "the connection closed before the answer arrived".into(),
                },
            ),
        };
        let sent = SentRequest {
            at: self.now,
            kind: request.kind,
            method: request.request.method().to_string(),
            url: request.request.uri().to_string(),
            answer,
        };
        self.requests.push(sent.clone());
        self.note(What::Request(sent));
        self.handle(input);
    }

    /// Carries out every command the client has, the server answering its requests.
    fn settle(&mut self) {
        while let Some(request) = self.poll_request() {
            let reply = self.provider.handle(self.now, &request.request);
            self.handle_reply(&request, reply);
        }
    }

    /// Carries out one command other than a request.
    fn carry_out(&mut self, command: Command) {
        match command {
            Command::Store { id, op } => {
                let result = self.store.apply(self.now, &op);
                if let (
                    tenure_core::StoreOp::CompareAndSwap { record, .. },
                    tenure_core::StoreResult::Written,
                ) = (&op, &result)
                {
                    self.note(What::Stored(record.generation));
                }
                self.handle(Input::Store { id, result });
            }
            Command::OpenBrowser { url } => {
                self.note(What::Browser);
                self.browse(&url);
            }
            Command::ReadAssertion { id, source } => {
                self.note(What::Assertion(source.describe()));
                let result = match self.assertions.get(&source) {
                    Some(text) => Ok(Secret::new(text.clone())),
                    None => Err(format!("{} is not set", source.describe())),
                };
                self.handle(Input::Assertion { id, result });
            }
            Command::Emit(event) => self.observe(event),
            _ => {}
        }
    }

    /// Events go where a test looks for them: state changes and warnings to the timeline,
    /// the end of an operation to its outcome (and a line of the timeline). The events
    /// themselves are not kept: a long simulation would hold every one of them.
    fn observe(&mut self, event: Event) {
        match event {
            Event::StateChanged(state) => self.note(What::State(state)),
            Event::Warning(message) => self.note(What::Warning(message)),
            Event::DeviceAuthorization {
                verification_uri,
                user_code,
                ..
            } => self.note(What::DeviceCode {
                verification_uri,
                user_code,
            }),
            ending => {
                if let Some((op, outcome)) = ending.ending() {
                    self.note(What::Outcome(describe(&outcome)));
                    self.outcomes.push((op, outcome));
                }
            }
        }
    }

    /// The user's browser: ask the authorization endpoint, follow its redirect to the
    /// loopback callback.
    fn browse(&mut self, url: &str) {
        let state = || {
            url::Url::parse(url)
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "state")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default()
        };
        match &mut self.browser {
            Browser::Never => return,
            Browser::Script(queries) => {
                if let Some(template) = queries.pop_front() {
                    let query = template.replace("{state}", &state());
                    self.handle(Input::Callback { query });
                }
                return;
            }
            _ => {}
        }
        let Ok(request) = http::Request::get(url).body(Vec::new()) else {
            return;
        };
        let Reply::Response(response) = self.provider.handle(self.now, &request) else {
            return;
        };
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let Some((target, query)) = location.split_once('?') else {
            return;
        };
        if target != self.config.redirect_uri {
            return;
        }
        let query = match &self.browser {
            Browser::Deliver(template) => template.replace("{state}", &state()),
            _ => query.to_string(),
        };
        self.handle(Input::Callback { query });
    }

    fn note(&mut self, what: What) {
        self.timeline.push(Entry { at: self.now, what });
    }
}

/// The record that belongs to `config` in `store`: by key when the issuer is configured,
/// otherwise the one for the same upstream, redirect URI and scopes.
pub fn find_record<'a>(store: &'a SimStore, config: &ClientConfig) -> Option<&'a Record> {
    match &config.issuer {
        Some(issuer) => store.get(&config.key_for(issuer)),
        None => store
            .records()
            .find(|r| r.key == config.key_for(&r.key.issuer)),
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Token { expires_at, .. } => match expires_at {
            Some(at) => format!("access token handed out (valid until {at})"),
            None => "access token handed out".into(),
        },
        Outcome::Done => "done".into(),
        Outcome::LoginRequired(reason) => format!("login required: {reason}"),
        Outcome::Failed(error) => format!("error: {error}"),
        other => format!("{other:?}"),
    }
}
