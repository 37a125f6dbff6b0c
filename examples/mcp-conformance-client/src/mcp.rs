//! A minimal MCP client over Streamable HTTP: JSON-RPC messages POSTed to one endpoint, the
//! answer read as JSON or as a server-sent event stream.
//!
//! It is dual-era. It speaks MCP 2026-07-28 first: no handshake, every request carries the
//! protocol version, the client's identity and its capabilities in `_meta`, and the
//! `MCP-Protocol-Version`, `Mcp-Method` and (for named operations) `Mcp-Name` headers. The
//! first request is `server/discover`. A server that answers it with a result or with a
//! 2026-07-28 error (such as an unsupported version, which names the versions to retry with)
//! speaks that revision; any other refusal marks a server of an earlier revision, with which
//! the client falls back to the `initialize` handshake, a session id and the negotiated
//! version in `MCP-Protocol-Version` (2025-11-25 and before).
//!
//! Authorization is Tenure's, through its reqwest middleware ([`BearerAuth`]): every request
//! carries the bearer token Tenure handed out (MCP-16), and a 401 or 403 challenge goes to
//! Tenure, which decides what happens: discovery, registration, login, refresh, step-up, or
//! an error that says why not. The middleware sends one request back for authorization at
//! most [`tenure_reqwest::DEFAULT_BUDGET`] times (MCP-18). Nothing here reads a challenge.

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{json, Value};
use tenure_reqwest::BearerAuth;
use tenure_tokio::{Tenure, TokenError};

/// The revisions without a handshake (per-request `_meta`) this client speaks, newest first.
/// The first is the one it tries first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// The revisions with an `initialize` handshake this client speaks, newest first. The first
/// is the one it asks for in `initialize`.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

/// How many times `server/discover` is sent with a version the server lists as supported
/// before the client gives up on it.
pub const MAX_VERSION_ATTEMPTS: u32 = 2;

/// `HeaderMismatch` (2026-07-28): the headers do not match the body, or one is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// `MissingRequiredClientCapability` (2026-07-28).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// `UnsupportedProtocolVersion` (2026-07-28): its `data.supported` lists what to retry with.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The `_meta` keys of the per-request protocol fields (2026-07-28).
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// This client's identity, in `initialize` and in every 2026-07-28 request.
fn client_info() -> Value {
    json!({
        "name": "tenure-mcp-conformance-client",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The capabilities this client declares: none (no sampling, elicitation or roots).
fn client_capabilities() -> Value {
    json!({})
}

/// Why an MCP exchange failed. Each message says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The HTTP exchange itself failed.
    #[error("cannot reach the MCP server: {0}")]
    Transport(String),
    /// The server answered with an unexpected HTTP status.
    #[error("the MCP server answered {method} with HTTP {status}: {body}")]
    Status {
        /// The JSON-RPC method.
        method: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer was not the JSON-RPC response expected.
    #[error("the MCP server's answer to {method} is not a JSON-RPC response: {detail}")]
    Malformed {
        /// The JSON-RPC method.
        method: String,
        /// What was wrong.
        detail: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("the MCP server refused {method}: JSON-RPC error {code}: {message}")]
    Rpc {
        /// The JSON-RPC method.
        method: String,
        /// The error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// Tenure could not authorize the request.
    #[error("authorization for {method} failed: {error}")]
    Authorization {
        /// The JSON-RPC method.
        method: String,
        /// What Tenure reported, with its causes.
        error: String,
    },
    /// The server kept refusing the request after every authorization.
    #[error("the MCP server still refuses {method} (HTTP {status}) after Tenure authorized it as far as it could; giving up (MCP-18)")]
    StillRefused {
        /// The JSON-RPC method.
        method: String,
        /// The last status.
        status: u16,
    },
    /// The server and this client have no protocol revision in common.
    #[error("the MCP server speaks none of this client's protocol revisions (it offers {offered}; this client speaks {spoken})")]
    NoCommonVersion {
        /// What the server listed.
        offered: String,
        /// What this client speaks.
        spoken: String,
    },
    /// The server needs input from the client (sampling, elicitation, roots) that this client
    /// does not offer.
    #[error("the MCP server asks for input on {method} (resultType `{result_type}`), which this client cannot give")]
    InputRequired {
        /// The JSON-RPC method.
        method: String,
        /// The result type the server sent.
        result_type: String,
    },
}

/// Which revision a session speaks, once known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Era {
    /// Not known yet: before `server/discover` or `initialize` was answered.
    Unknown,
    /// 2026-07-28 and later: no handshake, the version in every request.
    Modern(String),
    /// An `initialize` handshake; the version the server chose, sent in the header of every
    /// later request.
    Legacy(String),
}

/// What the server answered to one request, when it answered with a JSON-RPC message or a
/// plain HTTP refusal rather than a failure of the exchange or of authorization.
#[derive(Debug)]
enum Answer {
    /// A JSON-RPC result.
    Result(Value),
    /// A JSON-RPC error, with the HTTP status it came with.
    Error {
        status: u16,
        code: i64,
        message: String,
        data: Value,
    },
    /// Any other answer: an HTTP error whose body is no JSON-RPC error for this request.
    Refused { status: u16, body: String },
}

/// One MCP session with one server endpoint.
pub struct Session {
    http: ClientWithMiddleware,
    endpoint: String,
    session_id: Option<String>,
    era: Era,
    next_id: u64,
}

impl Session {
    /// A session with the MCP server at `endpoint`, authorized by `tenure`.
    pub fn new(endpoint: String, tenure: Tenure) -> Result<Self, McpError> {
        let http = reqwest::Client::builder()
            // A request that carries a bearer token never follows a redirect (design §4).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| McpError::Transport(e.to_string()))?;
        // The first request goes without a token: the server's challenge names the metadata
        // and the scope (MCP's discovery); the suite's authorization server approves at once,
        // so a login needs no user.
        let auth = BearerAuth::new(tenure)
            .challenge_first(true)
            .interactive(true);
        Ok(Session {
            http: reqwest_middleware::ClientBuilder::new(http)
                .with(auth)
                .build(),
            endpoint,
            session_id: None,
            era: Era::Unknown,
            next_id: 0,
        })
    }

    /// The revision this session speaks.
    pub fn era(&self) -> &Era {
        &self.era
    }

    /// Opens the session: `server/discover` in 2026-07-28 or, with a server of an earlier
    /// revision, `initialize` then `notifications/initialized`. Returns the server's identity
    /// (`serverInfo`).
    pub async fn initialize(&mut self) -> Result<Value, McpError> {
        let mut version = MODERN_VERSIONS[0].to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.era = Era::Modern(version.clone());
            let answer = self.call("server/discover", json!({})).await?;
            match after_discover(answer, &version, attempts) {
                Next::Modern(server_info) => return Ok(server_info),
                Next::Retry(next) => {
                    eprintln!("server/discover: {version} refused; retrying with {next}");
                    version = next;
                }
                Next::Legacy(legacy, why) => {
                    eprintln!("server/discover: {why}; falling back to initialize");
                    return self.initialize_legacy(legacy).await;
                }
                Next::Fail(error) => return Err(error),
            }
        }
    }

    /// The handshake of the revisions before 2026-07-28, asking for `version`.
    async fn initialize_legacy(&mut self, version: &str) -> Result<Value, McpError> {
        self.era = Era::Unknown;
        let result = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": version,
                    "capabilities": client_capabilities(),
                    "clientInfo": client_info(),
                }),
            )
            .await?;
        let chosen = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !LEGACY_VERSIONS.contains(&chosen) {
            return Err(McpError::NoCommonVersion {
                offered: format!("`{chosen}` in its initialize answer"),
                spoken: spoken_versions(),
            });
        }
        self.era = Era::Legacy(chosen.to_string());
        self.notify("notifications/initialized", json!({})).await?;
        Ok(result.get("serverInfo").cloned().unwrap_or(Value::Null))
    }

    /// Sends a request and returns its `result`.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        match self.call(method, params).await? {
            Answer::Result(result) => Ok(result),
            Answer::Error { code, message, .. } => Err(McpError::Rpc {
                method: method.into(),
                code,
                message,
            }),
            Answer::Refused { status, body } => Err(McpError::Status {
                method: method.into(),
                status,
                body,
            }),
        }
    }

    /// Sends a request and returns the server's answer, a result or an error.
    async fn call(&mut self, method: &str, params: Value) -> Result<Answer, McpError> {
        self.next_id += 1;
        let id = self.next_id;
        let params = match &self.era {
            Era::Modern(version) => with_request_meta(params, version),
            _ => params,
        };
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, headers, body) = self.send(method, &message).await?;
        if let Era::Legacy(_) | Era::Unknown = self.era {
            if let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                self.session_id = Some(session.to_string());
            }
        }
        let answer = match find_response(&headers, &body, id) {
            Ok(answer) => answer,
            // An error answer may carry a JSON-RPC error without this request's id (JSON-RPC
            // gives `id: null` when the server could not read it).
            Err(_) if !status.is_success() => match error_message(&body) {
                Some(answer) => answer,
                None => {
                    return Ok(Answer::Refused {
                        status: status.as_u16(),
                        body: excerpt(&body),
                    })
                }
            },
            Err(detail) => {
                return Err(McpError::Malformed {
                    method: method.into(),
                    detail,
                })
            }
        };
        if let Some(error) = answer.get("error") {
            return Ok(Answer::Error {
                status: status.as_u16(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .into(),
                data: error.get("data").cloned().unwrap_or(Value::Null),
            });
        }
        if !status.is_success() {
            return Ok(Answer::Refused {
                status: status.as_u16(),
                body: excerpt(&body),
            });
        }
        let result = answer
            .get("result")
            .cloned()
            .ok_or_else(|| McpError::Malformed {
                method: method.into(),
                detail: "it has neither result nor error".into(),
            })?;
        if let Era::Modern(_) = self.era {
            // 2026-07-28: every result says whether it is complete; this client declares no
            // capability a server could ask for input through.
            match result.get("resultType").and_then(Value::as_str) {
                None | Some("complete") => {}
                Some(other) => {
                    return Err(McpError::InputRequired {
                        method: method.into(),
                        result_type: other.into(),
                    })
                }
            }
        }
        Ok(Answer::Result(result))
    }

    /// Sends a notification; the server answers 202 with no body. (2026-07-28 defines no
    /// notification from the client over HTTP; only the earlier revisions send one.)
    pub async fn notify(&mut self, method: &str, params: Value) -> Result<(), McpError> {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let (status, _, body) = self.send(method, &message).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(McpError::Status {
                method: method.into(),
                status: status.as_u16(),
                body: excerpt(&body),
            })
        }
    }

    /// POSTs one message; the middleware authorizes it and sends it again as the server's
    /// challenges call for. Returns the first answer that asks for no authorization,
    /// whatever its status.
    async fn send(
        &mut self,
        method: &str,
        message: &Value,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), McpError> {
        let response = self.post(method, message).await?;
        let status = response.status();
        if tenure_reqwest::is_refusal(&response) {
            return Err(McpError::StillRefused {
                method: method.into(),
                status: status.as_u16(),
            });
        }
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| McpError::Transport(e.to_string()))?
            .to_vec();
        Ok((status, headers, body))
    }

    async fn post(&self, method: &str, message: &Value) -> Result<reqwest::Response, McpError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(message.to_string());
        match &self.era {
            Era::Modern(version) => {
                // 2026-07-28: the version (equal to the one in `_meta`), the method and the
                // name of the operation, on every request; no session.
                request = request.header("MCP-Protocol-Version", version);
                for (name, value) in standard_headers(message) {
                    request = request.header(name, value);
                }
            }
            Era::Legacy(version) => {
                if let Some(session) = &self.session_id {
                    request = request.header("Mcp-Session-Id", session);
                }
                request = request.header("MCP-Protocol-Version", version);
            }
            Era::Unknown => {}
        }
        request.send().await.map_err(|error| match error {
            reqwest_middleware::Error::Middleware(cause) => McpError::Authorization {
                method: method.into(),
                error: match cause.downcast_ref::<TokenError>() {
                    Some(TokenError::LoginRequired { reason }) => {
                        format!("a login is required ({reason})")
                    }
                    _ => format!("{cause:#}"),
                },
            },
            reqwest_middleware::Error::Reqwest(e) => McpError::Transport(describe(&e)),
        })
    }
}

/// What to do after an answer to `server/discover`.
#[derive(Debug)]
enum Next {
    /// The server speaks the version asked for: this is its `serverInfo`.
    Modern(Value),
    /// The server refused the version and offers this one of 2026-07-28 or later.
    Retry(String),
    /// The server speaks an earlier revision: `initialize` with this version, for this reason.
    Legacy(&'static str, String),
    /// Neither: give up.
    Fail(McpError),
}

/// The era decision (2026-07-28, Streamable HTTP backward compatibility): a result, or a
/// 2026-07-28 error, marks a server of that revision or later; an unsupported version is
/// retried with one the server lists (even the same one, at most [`MAX_VERSION_ATTEMPTS`]
/// times in all); any other 4xx answer, or a JSON-RPC error that 2026-07-28 does not define,
/// marks a server of an earlier revision.
fn after_discover(answer: Answer, version: &str, attempts: u32) -> Next {
    let method = "server/discover";
    match answer {
        Answer::Result(result) => Next::Modern(
            result
                .get("_meta")
                .and_then(|meta| meta.get(META_SERVER_INFO))
                .cloned()
                .unwrap_or(Value::Null),
        ),
        Answer::Error {
            code,
            message,
            data,
            ..
        } if code == UNSUPPORTED_PROTOCOL_VERSION => {
            let offered: Vec<&str> = data
                .get("supported")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(modern) = MODERN_VERSIONS.iter().find(|v| offered.contains(v)) {
                if attempts < MAX_VERSION_ATTEMPTS {
                    return Next::Retry(modern.to_string());
                }
                return Next::Fail(McpError::Rpc {
                    method: format!(
                        "{method} (version {version} refused {attempts} times although offered)"
                    ),
                    code,
                    message,
                });
            }
            if let Some(legacy) = LEGACY_VERSIONS.iter().find(|v| offered.contains(v)) {
                return Next::Legacy(legacy, format!("the server offers {legacy}"));
            }
            Next::Fail(McpError::NoCommonVersion {
                offered: offered.join(", "),
                spoken: spoken_versions(),
            })
        }
        Answer::Error {
            status,
            code,
            message,
            ..
        } if is_modern_error(code) || status >= 500 => {
            // A 2026-07-28 server refused the request itself (a fault of this client, not a
            // sign of an earlier revision), or the server failed.
            Next::Fail(McpError::Rpc {
                method: format!("{method} (HTTP {status})"),
                code,
                message,
            })
        }
        Answer::Error {
            status,
            code,
            message,
            ..
        } => Next::Legacy(
            LEGACY_VERSIONS[0],
            format!("HTTP {status} with JSON-RPC error {code} ({message}), not one of 2026-07-28"),
        ),
        Answer::Refused { status, .. } if (400..500).contains(&status) => Next::Legacy(
            LEGACY_VERSIONS[0],
            format!("HTTP {status} without a JSON-RPC error"),
        ),
        Answer::Refused { status, body } => Next::Fail(McpError::Status {
            method: method.into(),
            status,
            body,
        }),
    }
}

/// Every revision this client speaks, for messages.
fn spoken_versions() -> String {
    let all: Vec<&str> = MODERN_VERSIONS
        .iter()
        .chain(LEGACY_VERSIONS)
        .copied()
        .collect();
    all.join(", ")
}

/// Whether `code` is one of the errors that 2026-07-28 defines, so that only a server of
/// that revision or later sends it.
pub fn is_modern_error(code: i64) -> bool {
    matches!(
        code,
        HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION
    )
}

/// `params` with the per-request protocol fields of 2026-07-28 in its `_meta` (other `_meta`
/// keys are kept).
pub fn with_request_meta(params: Value, version: &str) -> Value {
    let mut params = match params {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert(META_PROTOCOL_VERSION.into(), Value::from(version));
        meta.insert(META_CLIENT_INFO.into(), client_info());
        meta.insert(META_CLIENT_CAPABILITIES.into(), client_capabilities());
    }
    Value::Object(params)
}

/// The standard request headers of 2026-07-28 for a message: `Mcp-Method` always, and
/// `Mcp-Name` for the operations on a named tool, prompt or resource.
pub fn standard_headers(message: &Value) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return headers;
    };
    headers.push(("Mcp-Method", header_value(method)));
    let name_field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(name) = name_field
        .and_then(|field| message.get("params")?.get(field))
        .and_then(Value::as_str)
    {
        headers.push(("Mcp-Name", header_value(name)));
    }
    headers
}

/// A value as an HTTP header value: as it is when it is plain visible ASCII (spaces inside
/// allowed), otherwise Base64 of its UTF-8 between `=?base64?` and `?=` (2026-07-28, value
/// encoding); a plain value that looks like that form is encoded too.
pub fn header_value(value: &str) -> String {
    let safe_bytes = value
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b));
    let padded = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = safe_bytes && !padded && !looks_encoded;
    if plain {
        value.to_string()
    } else {
        format!("=?base64?{}?=", base64(value.as_bytes()))
    }
}

/// Standard Base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A JSON-RPC error message in a body, whatever its id (an error answer may carry `id: null`).
fn error_message(body: &[u8]) -> Option<Value> {
    let message: Value = serde_json::from_slice(body).ok()?;
    message.get("error")?.is_object().then_some(message)
}

/// The JSON-RPC response with `id` in an answer that is either JSON (one message or a batch)
/// or a server-sent event stream whose events carry messages in their `data` lines.
pub fn find_response(headers: &HeaderMap, body: &[u8], id: u64) -> Result<Value, String> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = String::from_utf8_lossy(body);
    let messages: Vec<Value> = if content_type.starts_with("text/event-stream") {
        events(&text)
            .iter()
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(batch)) => batch,
            Ok(message) => vec![message],
            Err(e) => return Err(format!("the body is not JSON ({e}): {}", excerpt(body))),
        }
    };
    messages
        .into_iter()
        .find(|m| m.get("id").and_then(Value::as_u64) == Some(id))
        .ok_or_else(|| format!("no response with id {id} in {}", excerpt(body)))
}

/// The `data` of each event in a server-sent event stream (lines joined by `\n`).
fn events(stream: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in stream.lines() {
        if line.is_empty() {
            if !data.is_empty() {
                out.push(data.join("\n"));
                data.clear();
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if !data.is_empty() {
        out.push(data.join("\n"));
    }
    out
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.replace(['\r', '\n'], " ")
}

/// A transport error in words, without the URL.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        "the exchange failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, content_type.parse().unwrap());
        map
    }

    #[test]
    fn responses_are_found_in_event_streams_and_json() {
        let stream =
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"ok\":true}}\n\n";
        let found = find_response(&headers("text/event-stream"), stream.as_bytes(), 7).unwrap();
        assert_eq!(found["result"]["ok"], true);
        let batch = r#"[{"jsonrpc":"2.0","id":1,"result":1},{"jsonrpc":"2.0","id":2,"result":2}]"#;
        let found = find_response(&headers("application/json"), batch.as_bytes(), 2).unwrap();
        assert_eq!(found["result"], 2);
        assert!(find_response(&headers("application/json"), b"{}", 3).is_err());
    }

    #[test]
    fn multi_line_event_data_is_joined() {
        assert_eq!(events("data: {\"a\":\ndata: 1}\n\n"), vec!["{\"a\":\n1}"]);
    }

    #[test]
    fn modern_requests_carry_the_protocol_fields_in_meta() {
        let params = with_request_meta(
            json!({"name": "t", "_meta": {"progressToken": 4}}),
            "2026-07-28",
        );
        let meta = &params["_meta"];
        assert_eq!(meta[META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(
            meta[META_CLIENT_INFO]["name"],
            "tenure-mcp-conformance-client"
        );
        assert_eq!(meta[META_CLIENT_CAPABILITIES], json!({}));
        assert_eq!(meta["progressToken"], 4, "other _meta keys stay");
        assert_eq!(params["name"], "t");
        let empty = with_request_meta(json!({}), "2026-07-28");
        assert_eq!(empty["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
    }

    #[test]
    fn standard_headers_name_the_method_and_the_operation() {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "test-tool", "arguments": {}}});
        assert_eq!(
            standard_headers(&call),
            vec![
                ("Mcp-Method", "tools/call".to_string()),
                ("Mcp-Name", "test-tool".to_string())
            ]
        );
        let read = json!({"method": "resources/read", "params": {"uri": "file:///a b"}});
        assert_eq!(
            standard_headers(&read)[1],
            ("Mcp-Name", "file:///a b".into())
        );
        let list = json!({"method": "tools/list", "params": {}});
        assert_eq!(
            standard_headers(&list),
            vec![("Mcp-Method", "tools/list".into())]
        );
    }

    #[test]
    fn unsafe_header_values_are_base64_encoded() {
        assert_eq!(header_value("us-west1"), "us-west1");
        assert_eq!(header_value("a b"), "a b");
        assert_eq!(
            header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(header_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    fn error(status: u16, code: i64, data: Value) -> Answer {
        Answer::Error {
            status,
            code,
            message: "m".into(),
            data,
        }
    }

    #[test]
    fn a_discover_result_or_a_modern_error_marks_a_modern_server() {
        let result = json!({"supportedVersions": ["2026-07-28"], "resultType": "complete",
            "_meta": {(META_SERVER_INFO): {"name": "s", "version": "1"}}});
        match after_discover(Answer::Result(result), "2026-07-28", 1) {
            Next::Modern(info) => assert_eq!(info["name"], "s"),
            other => panic!("{other:?}"),
        }
        let mismatch = error(400, HEADER_MISMATCH, Value::Null);
        assert!(matches!(
            after_discover(mismatch, "2026-07-28", 1),
            Next::Fail(McpError::Rpc {
                code: HEADER_MISMATCH,
                ..
            })
        ));
    }

    #[test]
    fn an_unsupported_version_is_retried_with_one_the_server_offers() {
        let offered = |list: Value| {
            error(
                400,
                UNSUPPORTED_PROTOCOL_VERSION,
                json!({"supported": list, "requested": "2026-07-28"}),
            )
        };
        // Offered although refused: retried once, then given up.
        assert!(matches!(
            after_discover(offered(json!(["2026-07-28"])), "2026-07-28", 1),
            Next::Retry(v) if v == "2026-07-28"
        ));
        assert!(matches!(
            after_discover(
                offered(json!(["2026-07-28"])),
                "2026-07-28",
                MAX_VERSION_ATTEMPTS
            ),
            Next::Fail(McpError::Rpc { .. })
        ));
        // A dual-era server that offers only an earlier revision: its handshake.
        assert!(matches!(
            after_discover(
                offered(json!(["2099-01-01", "2025-06-18"])),
                "2026-07-28",
                1
            ),
            Next::Legacy("2025-06-18", _)
        ));
        assert!(matches!(
            after_discover(offered(json!(["2099-01-01"])), "2026-07-28", 1),
            Next::Fail(McpError::NoCommonVersion { .. })
        ));
    }

    #[test]
    fn any_other_refusal_marks_an_earlier_revision() {
        // The MCP SDKs before 2026-07-28 answer an unknown version header with 400 -32000.
        assert!(matches!(
            after_discover(error(400, -32000, Value::Null), "2026-07-28", 1),
            Next::Legacy("2025-11-25", _)
        ));
        // A server that took the request but has no server/discover.
        assert!(matches!(
            after_discover(error(200, -32601, Value::Null), "2026-07-28", 1),
            Next::Legacy("2025-11-25", _)
        ));
        for status in [400, 404, 405] {
            let refused = Answer::Refused {
                status,
                body: String::new(),
            };
            assert!(matches!(
                after_discover(refused, "2026-07-28", 1),
                Next::Legacy("2025-11-25", _)
            ));
        }
        let failed = Answer::Refused {
            status: 502,
            body: String::new(),
        };
        assert!(matches!(
            after_discover(failed, "2026-07-28", 1),
            Next::Fail(McpError::Status { status: 502, .. })
        ));
    }

    #[test]
    fn an_error_without_the_request_id_is_still_read() {
        let body =
            br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request"},"id":null}"#;
        assert_eq!(error_message(body).unwrap()["error"]["code"], -32000);
        assert!(error_message(b"<html>").is_none());
        assert!(error_message(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_none());
    }
}
