//! Playing a recorded provider trace (design §7) back to the core, with no network.
//!
//! ```text
//!   trace.jsonl ──parse──▶ Trace { config, lines }
//!                              │
//!        response lines ──────▶ RecordedServer: answers per (method, URL), consumed in order
//!        start / op / advance ─▶ Simulation<RecordedServer> in virtual time
//!        callback lines ───────▶ the simulated browser's script ({state} filled in)
//!                              │
//!                              ▼
//!                         Summary { outcome, requests, registrations, renewals, refreshes,
//!                                   diverged, record }
//! ```
//!
//! A request the trace has no answer for is a *divergence*: the client did something the
//! recorded provider never saw. The replay stops after the operation in progress and says
//! which request it was.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Value};
use tenure_core::config::loopback_redirect_uri;
use tenure_core::Timestamp;
use tenure_core::{
    AssertionAudience, AssertionSource, AuthMethod, BearerAssertion, ClientConfig, DpopMode,
    Duration, Grant, IdentityProvider, Operation, RequestKind, Secret,
};

use crate::driver::{Browser, Outcome, Simulation};
use crate::provider::{Reply, Server};

/// The seed replays use for PKCE and `state`: any fixed value makes a replay reproducible.
pub const REPLAY_SEED: [u8; 32] = [7; 32];

/// A trace that cannot be read; names the line.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct TraceError {
    /// 1-based line number (0: the trace as a whole).
    pub line: usize,
    /// What is wrong, and what a valid line looks like.
    pub reason: String,
}

/// One line of a trace after the `config` line.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Line {
    /// A process (re)start; the store carries over.
    Start {
        /// When.
        at: Timestamp,
    },
    /// A user operation.
    Op {
        /// Which.
        op: Operation,
        /// When.
        at: Timestamp,
    },
    /// The provider's next answer to `method url`.
    Response {
        /// The request method.
        method: String,
        /// The request URL, as the client sends it.
        url: String,
        /// Headers the request must carry for this answer (`request_headers`, optional; an
        /// extension for hand-written traces, e.g. which registration access token a PUT
        /// must present). A request without them diverges.
        expect: Vec<(String, String)>,
        /// The answer.
        response: http::Response<Vec<u8>>,
    },
    /// The browser's redirect to the loopback callback (`{state}` stands for the state).
    Callback {
        /// The query.
        query: String,
    },
    /// The clock moves.
    Advance {
        /// To when.
        to: Timestamp,
    },
}

/// A parsed trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The `client` object of the `config` line.
    pub client: Value,
    /// Every other line, in order.
    pub lines: Vec<Line>,
}

/// Reads a trace from its text.
pub fn parse(text: &str) -> Result<Trace, TraceError> {
    let mut client = None;
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fail = |reason: String| TraceError {
            line: number,
            reason,
        };
        let value: Value = serde_json::from_str(raw)
            .map_err(|_| fail("not a JSON object; every line is one JSON object".into()))?;
        let kind = value["type"].as_str().unwrap_or_default();
        let time = |field: &str| {
            value[field]
                .as_str()
                .and_then(Timestamp::parse_rfc3339)
                .ok_or_else(|| fail(format!("`{field}` must be an RFC 3339 time")))
        };
        let line = match kind {
            "config" if client.is_none() && lines.is_empty() => {
                let object = value["client"].clone();
                if !object.is_object() {
                    return Err(fail("`client` must be an object".into()));
                }
                client = Some(object);
                continue;
            }
            "config" => return Err(fail("`config` must be the first line, once".into())),
            _ if client.is_none() => {
                return Err(fail("the first line must be the `config` line".into()))
            }
            "start" => Line::Start { at: time("at")? },
            "advance" => Line::Advance { to: time("to")? },
            "op" => {
                let name = value["op"].as_str().unwrap_or_default();
                let op = Operation::parse(name).ok_or_else(|| {
                    fail(format!(
                        "unknown op `{name}`; use token, login, renew, forget or logout"
                    ))
                })?;
                Line::Op {
                    op,
                    at: time("at")?,
                }
            }
            "callback" => Line::Callback {
                query: value["query"]
                    .as_str()
                    .ok_or_else(|| fail("`query` must be a string".into()))?
                    .to_string(),
            },
            "response" => {
                let (Some(method), Some(url)) = (value["method"].as_str(), value["url"].as_str())
                else {
                    return Err(fail("a response needs `method` and `url`".into()));
                };
                let expect = match value["request_headers"].as_object() {
                    Some(headers) => headers
                        .iter()
                        .map(|(name, v)| {
                            v.as_str()
                                .map(|v| (name.to_ascii_lowercase(), v.to_string()))
                                .ok_or_else(|| fail("request header values must be strings".into()))
                        })
                        .collect::<Result<_, _>>()?,
                    None => Vec::new(),
                };
                Line::Response {
                    method: method.to_ascii_uppercase(),
                    url: url.to_string(),
                    expect,
                    response: response_of(&value).map_err(fail)?,
                }
            }
            other => {
                return Err(fail(format!(
                    "unknown type `{other}`; use config, start, op, response, callback or advance"
                )))
            }
        };
        lines.push(line);
    }
    let client = client.ok_or(TraceError {
        line: 0,
        reason: "the trace is empty; it starts with a `config` line".into(),
    })?;
    Ok(Trace { client, lines })
}

fn response_of(value: &Value) -> Result<http::Response<Vec<u8>>, String> {
    let status = value["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .ok_or("`status` must be an HTTP status number")?;
    let body = match &value["body"] {
        Value::Null => Vec::new(),
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    let mut builder = http::Response::builder().status(status);
    if let Some(headers) = value["headers"].as_object() {
        for (name, header) in headers {
            let header = header.as_str().ok_or("header values must be strings")?;
            builder = builder.header(name.as_str(), header);
        }
    }
    builder
        .body(body)
        .map_err(|_| "a header name or value is not valid HTTP".to_string())
}

/// The client configuration of a trace's `config` line (the option names of `tenure add`,
/// dashes as underscores).
pub fn config_of(client: &Value) -> Result<ClientConfig, TraceError> {
    let fail = |reason: String| TraceError { line: 1, reason };
    let text = |name: &str| client[name].as_str().map(str::to_string);
    let name = text("name").unwrap_or_else(|| "replay".into());
    let mut config = match (text("issuer"), text("resource")) {
        (Some(issuer), resource) => {
            let mut config = ClientConfig::for_issuer(&name, issuer);
            config.resource = resource;
            config
        }
        (None, Some(resource)) => ClientConfig::for_resource(&name, resource),
        (None, None) => return Err(fail("the client needs an `issuer` or a `resource`".into())),
    };
    config.scopes = match &client["scope"] {
        Value::Array(items) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Value::String(one) => one.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    config.client_id = text("client_id");
    config.client_secret = text("client_secret").map(Secret::new);
    config.cimd_url = text("cimd_url");
    if let Some(method) = text("auth_method") {
        config.auth_method = Some(
            AuthMethod::parse(&method)
                .ok_or_else(|| fail(format!("unknown auth_method `{method}`")))?,
        );
    }
    config.grant = match text("grant").as_deref() {
        None | Some("authorization_code") => Grant::AuthorizationCode,
        Some("client_credentials") => Grant::ClientCredentials,
        Some("jwt_bearer") => Grant::JwtBearer,
        Some(other) => return Err(fail(format!("unknown grant `{other}`"))),
    };
    if config.grant == Grant::JwtBearer {
        config.bearer_assertion = Some(bearer_assertion_of(client));
    }
    if let Some(port) = client["redirect_port"].as_u64() {
        let port = u16::try_from(port).map_err(|_| fail("redirect_port is not a port".into()))?;
        config.redirect_uri = loopback_redirect_uri(port);
    }
    if let Some(seconds) = client["renew_within"].as_i64() {
        config.renew_within = Duration::from_secs(seconds);
    }
    config.initial_access_token = text("initial_access_token").map(Secret::new);
    config.private_key = text("private_key").map(Secret::new);
    config.private_key_id = text("private_key_id");
    config.jwks_uri = text("jwks_uri");
    match text("assertion_audience").as_deref() {
        None => {}
        Some("token_endpoint") => config.assertion_audience = AssertionAudience::TokenEndpoint,
        Some("issuer") => config.assertion_audience = AssertionAudience::Issuer,
        Some(other) => return Err(fail(format!("unknown assertion_audience `{other}`"))),
    }
    // A trace never holds the client's private key, only a placeholder. A replayed server
    // checks no signature, so any key stands in for it; the requests are the same.
    let placeholder = config
        .private_key
        .as_ref()
        .is_some_and(|key| !key.expose().contains("-----BEGIN"));
    if placeholder
        || (config.auth_method == Some(AuthMethod::PrivateKeyJwt) && config.private_key.is_none())
    {
        config.private_key = Some(stand_in_key());
    }
    config.dpop = match text("dpop").as_deref() {
        None | Some("never") => DpopMode::Never,
        Some("if_offered") => DpopMode::IfOffered,
        Some("always") => DpopMode::Always,
        Some(other) => return Err(fail(format!("unknown dpop `{other}`"))),
    };
    config.seed = REPLAY_SEED;
    config
        .validate()
        .map_err(|e| fail(format!("the client configuration is not valid: {e}")))?;
    Ok(config)
}

/// The jwt-bearer assertion of a trace's client: an identity provider when the trace names
/// one (`idp_token_endpoint` or `idp_issuer`, `idp_client_id`, `idp_client_secret`), else a
/// workload token. Where the token was read does not matter to a replay, which hands the
/// client [`REPLAYED_ASSERTION`] from whatever source it names.
fn bearer_assertion_of(client: &Value) -> BearerAssertion {
    let text = |name: &str| client[name].as_str().map(str::to_string);
    let source = |prefix: &str| {
        let named = |kind: &str| text(&format!("{prefix}_{kind}"));
        named("file")
            .map(AssertionSource::File)
            .or_else(|| named("env").map(AssertionSource::Env))
            .or_else(|| {
                named("command").map(|line| {
                    AssertionSource::Command(line.split_whitespace().map(str::to_owned).collect())
                })
            })
            .unwrap_or_else(|| AssertionSource::Env(prefix.to_uppercase()))
    };
    if text("idp_token_endpoint").is_none() && text("idp_issuer").is_none() {
        return BearerAssertion::Workload(source("assertion"));
    }
    let mut idp = IdentityProvider::discovered(
        String::new(),
        text("idp_client_id").unwrap_or_default(),
        text("idp_client_secret").map(Secret::new),
        source("id_token"),
    );
    idp.issuer = text("idp_issuer");
    idp.token_endpoint = text("idp_token_endpoint");
    BearerAssertion::Enterprise(idp)
}

/// What a replayed jwt-bearer client reads as its assertion (or ID token): a trace never
/// holds one, and a replayed server checks none.
pub const REPLAYED_ASSERTION: &str = "recorded-assertion";

/// A fixed P-256 key (PKCS#8 PEM) for replaying a `private_key_jwt` client.
fn stand_in_key() -> Secret {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let mut scalar = [0u8; 32];
    scalar[31] = 1;
    let pem = p256::ecdsa::SigningKey::from_slice(&scalar)
        .and_then(|key| {
            key.to_pkcs8_pem(LineEnding::LF)
                .map_err(|_| p256::ecdsa::Error::new())
        })
        .map(|pem| pem.to_string())
        .unwrap_or_default();
    Secret::new(pem)
}

/// An answer and the request headers it requires.
type Answer = (Vec<(String, String)>, http::Response<Vec<u8>>);

/// The provider as recorded: each `(method, URL)` has a queue of answers, consumed in order.
#[derive(Debug, Default)]
pub struct RecordedServer {
    answers: HashMap<(String, String), VecDeque<Answer>>,
    /// The first request the trace had no answer for.
    pub diverged: Option<String>,
}

impl RecordedServer {
    /// A server holding every `response` line of `trace`.
    pub fn from_trace(trace: &Trace) -> Self {
        let mut server = RecordedServer::default();
        for line in &trace.lines {
            if let Line::Response {
                method,
                url,
                expect,
                response,
            } = line
            {
                server
                    .answers
                    .entry((method.clone(), url.clone()))
                    .or_default()
                    .push_back((expect.clone(), response.clone()));
            }
        }
        server
    }
}

impl Server for RecordedServer {
    fn handle(&mut self, _now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let key = (request.method().to_string(), request.uri().to_string());
        let next = self.answers.get_mut(&key).and_then(VecDeque::pop_front);
        if let Some((expect, _)) = &next {
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
            };
            if let Some((name, _)) = expect.iter().find(|(name, value)| header(name) != value) {
                self.diverged.get_or_insert_with(|| {
                    format!(
                        "the client sent {} {} whose `{name}` header differs from the one the \
                         trace expects",
                        key.0, key.1
                    )
                });
                return Reply::Lost;
            }
        }
        match next {
            Some((_, response)) => Reply::Response(response),
            None => {
                self.diverged.get_or_insert_with(|| {
                    format!(
                        "the client sent {} {}, which the trace has no (more) answers for",
                        key.0, key.1
                    )
                });
                // As if the connection broke: the client handles it like any transport error.
                Reply::Lost
            }
        }
    }
}

/// What a replay did (design §7).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// `ok` or `error`: how the last operation ended.
    pub outcome: &'static str,
    /// The last operation's error, if it failed.
    pub error: Option<String>,
    /// `"METHOD URL"` of every request, in the order sent.
    pub requests: Vec<String>,
    /// RFC 7591 registrations sent.
    pub registrations: usize,
    /// RFC 7592 renewal PUTs sent.
    pub renewals: usize,
    /// Refresh-token grants sent.
    pub refreshes: usize,
    /// Why the replay diverged, if it did.
    pub diverged: Option<String>,
    /// The persisted record with secrets redacted.
    pub record: Option<Value>,
}

impl Summary {
    /// The summary as the JSON object `tenure replay --json` prints.
    pub fn to_json(&self) -> Value {
        json!({
            "outcome": self.outcome,
            "error": self.error,
            "requests": self.requests,
            "registrations": self.registrations,
            "renewals": self.renewals,
            "refreshes": self.refreshes,
            "diverged": self.diverged,
            "record": self.record,
        })
    }
}

/// Plays `trace` back to the core and summarizes what the client did.
pub fn replay(trace: &Trace) -> Result<Summary, TraceError> {
    let config = config_of(&trace.client)?;
    let first_time = trace.lines.iter().find_map(|line| match line {
        Line::Start { at } | Line::Op { at, .. } => Some(*at),
        Line::Advance { to } => Some(*to),
        _ => None,
    });
    let Some(start) = first_time else {
        return Err(TraceError {
            line: 0,
            reason: "the trace has no `start` or `op` line, so there is nothing to replay".into(),
        });
    };
    let source = match &config.bearer_assertion {
        Some(BearerAssertion::Workload(source)) => Some(source.clone()),
        Some(BearerAssertion::Enterprise(idp)) => Some(idp.id_token.clone()),
        _ => None,
    };
    let mut simulation = Simulation::new(config, RecordedServer::from_trace(trace), start);
    if let Some(source) = source {
        simulation
            .assertions
            .insert(source, REPLAYED_ASSERTION.into());
    }
    let mut last: Option<Outcome> = None;
    let mut started = false;
    for (index, line) in trace.lines.iter().enumerate() {
        match line {
            Line::Start { at } => {
                simulation.set_now(*at);
                // The simulation started at the first time already; later starts restart.
                if started {
                    simulation.restart();
                }
                started = true;
            }
            Line::Advance { to } => simulation.set_now(*to),
            Line::Op { op, at } => {
                started = true;
                simulation.set_now(*at);
                // The callbacks recorded for this operation follow it, before the next one.
                let queries = trace.lines[index + 1..]
                    .iter()
                    .take_while(|l| !matches!(l, Line::Op { .. } | Line::Start { .. }))
                    .filter_map(|l| match l {
                        Line::Callback { query } => Some(query.clone()),
                        _ => None,
                    })
                    .collect();
                simulation.browser = Browser::Script(queries);
                last = Some(simulation.run(*op).unwrap_or_else(|e| {
                    Outcome::Failed(tenure_core::Error::Protocol(format!(
                        "the replay stopped: {e}"
                    )))
                }));
            }
            Line::Response { .. } | Line::Callback { .. } => {}
        }
        if simulation.provider.diverged.is_some() {
            break;
        }
    }
    let error = last.as_ref().and_then(|o| o.error()).map(|e| e.to_string());
    Ok(Summary {
        outcome: if error.is_some() { "error" } else { "ok" },
        error,
        requests: simulation
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect(),
        registrations: simulation.count(RequestKind::Registration),
        renewals: simulation.count(RequestKind::RegistrationUpdate),
        refreshes: simulation.count(RequestKind::Refresh),
        diverged: simulation.provider.diverged.clone(),
        record: simulation.stored().map(|r| r.redacted()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named_by_number() {
        let error = parse("{\"type\":\"start\",\"at\":\"2026-01-01T00:00:00Z\"}").unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.reason.contains("config"), "{error}");
        let text = "{\"type\":\"config\",\"client\":{\"issuer\":\"https://as.example.com\"}}\n\
                    {\"type\":\"op\",\"op\":\"fly\",\"at\":\"2026-01-01T00:00:00Z\"}";
        let error = parse(text).unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.reason.contains("token, login"), "{error}");
        assert!(parse("").unwrap_err().reason.contains("empty"));
        assert!(parse("not json").unwrap_err().reason.contains("JSON"));
    }

    #[test]
    fn a_private_key_jwt_client_replays_with_a_stand_in_key() {
        let client = json!({"issuer": "https://as.example.com", "grant": "client_credentials",
            "client_id": "machine", "auth_method": "private_key_jwt",
            "private_key": "recorded-private_key-0", "private_key_id": "k1",
            "assertion_audience": "issuer"});
        let config = config_of(&client).unwrap();
        assert_eq!(config.auth_method, Some(AuthMethod::PrivateKeyJwt));
        assert_eq!(config.assertion_audience, AssertionAudience::Issuer);
        assert!(config
            .private_key
            .unwrap()
            .expose()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn a_request_without_an_answer_diverges() {
        let text = "{\"type\":\"config\",\"client\":{\"issuer\":\"https://as.example.com\",\
                    \"grant\":\"client_credentials\"}}\n\
                    {\"type\":\"start\",\"at\":\"2026-01-01T00:00:00Z\"}\n\
                    {\"type\":\"op\",\"op\":\"token\",\"at\":\"2026-01-01T00:00:00Z\"}";
        let summary = replay(&parse(text).unwrap()).unwrap();
        let diverged = summary.diverged.expect("no answers at all must diverge");
        assert!(
            diverged.contains("GET https://as.example.com/.well-known/oauth-authorization-server"),
            "{diverged}"
        );
        assert_eq!(summary.outcome, "error");
    }
}
