//! A minimal MCP client over Streamable HTTP: JSON-RPC messages POSTed to one endpoint, the
//! answer read as JSON or as a server-sent event stream.
//!
//! Authorization is Tenure's. Every request carries the bearer token Tenure handed out
//! (MCP-16). When the server refuses one with 401 or 403, its `WWW-Authenticate` values go to
//! [`Tenure::challenge`], and Tenure decides what happens: discovery, registration, login,
//! refresh, step-up, or an error that says why not. This module only counts how often one
//! request was sent back for authorization, so that no request loops (MCP-18).

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tenure_core::challenge::resource_challenge;
use tenure_core::{Error, Secret};
use tenure_tokio::driver::{Outcome, Report, ShellError, Tenure};

/// The protocol revision this client speaks first.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// How many times one request may be sent back for authorization (a login, a refresh or a
/// step-up) before the client gives up on it (MCP-18: retry a limited number of times, per
/// resource and operation).
pub const MAX_AUTHORIZATIONS_PER_REQUEST: u32 = 3;

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
        /// What Tenure reported.
        error: Box<Error>,
    },
    /// Tenure needs a login this client cannot perform.
    #[error("authorization for {method} needs a login: {reason}")]
    LoginRequired {
        /// The JSON-RPC method.
        method: String,
        /// Tenure's reason.
        reason: String,
    },
    /// The server kept refusing the request after every authorization.
    #[error("the MCP server still refuses {method} after {MAX_AUTHORIZATIONS_PER_REQUEST} authorizations (HTTP {status}); giving up (MCP-18)")]
    StillRefused {
        /// The JSON-RPC method.
        method: String,
        /// The last status.
        status: u16,
    },
    /// The Tenure driver stopped.
    #[error(transparent)]
    Shell(#[from] ShellError),
}

/// One MCP session with one server endpoint.
pub struct Session {
    http: reqwest::Client,
    endpoint: String,
    tenure: Tenure,
    token: Option<Secret>,
    session_id: Option<String>,
    protocol_version: Option<String>,
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
        Ok(Session {
            http,
            endpoint,
            tenure,
            token: None,
            session_id: None,
            protocol_version: None,
            next_id: 0,
        })
    }

    /// `initialize`, then `notifications/initialized`. Returns the server's `serverInfo`.
    pub async fn initialize(&mut self) -> Result<Value, McpError> {
        let result = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {
                        "name": "tenure-mcp-conformance-client",
                        "version": env!("CARGO_PKG_VERSION"),
                    },
                }),
            )
            .await?;
        self.protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.notify("notifications/initialized", json!({})).await?;
        Ok(result.get("serverInfo").cloned().unwrap_or(Value::Null))
    }

    /// Sends a request and returns its `result`.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (headers, body) = self.send(method, &message).await?;
        if let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            self.session_id = Some(session.to_string());
        }
        let answer = find_response(&headers, &body, id).map_err(|detail| McpError::Malformed {
            method: method.into(),
            detail,
        })?;
        if let Some(error) = answer.get("error") {
            return Err(McpError::Rpc {
                method: method.into(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .into(),
            });
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| McpError::Malformed {
                method: method.into(),
                detail: "it has neither result nor error".into(),
            })
    }

    /// Sends a notification; the server answers 202 with no body.
    pub async fn notify(&mut self, method: &str, params: Value) -> Result<(), McpError> {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send(method, &message).await.map(|_| ())
    }

    /// POSTs one message, and authorizes and sends it again as often as the server's
    /// challenges call for, up to [`MAX_AUTHORIZATIONS_PER_REQUEST`] times.
    async fn send(
        &mut self,
        method: &str,
        message: &Value,
    ) -> Result<(HeaderMap, Vec<u8>), McpError> {
        let mut authorizations = 0;
        loop {
            let response = self.post(message).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| McpError::Transport(e.to_string()))?
                .to_vec();
            let challenges: Vec<String> = headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect();
            let refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
            let insufficient_scope = status == StatusCode::FORBIDDEN
                && resource_challenge(&refs).error.as_deref() == Some("insufficient_scope");
            let needs_authorization = status == StatusCode::UNAUTHORIZED || insufficient_scope;
            if !needs_authorization {
                if status.is_success() {
                    return Ok((headers, body));
                }
                return Err(McpError::Status {
                    method: method.into(),
                    status: status.as_u16(),
                    body: excerpt(&body),
                });
            }
            if authorizations == MAX_AUTHORIZATIONS_PER_REQUEST {
                return Err(McpError::StillRefused {
                    method: method.into(),
                    status: status.as_u16(),
                });
            }
            authorizations += 1;
            eprintln!(
                "{method}: HTTP {}; asking Tenure to authorize (attempt {authorizations})",
                status.as_u16()
            );
            self.tenure.challenge(challenges).await?;
            let report = if insufficient_scope {
                // A step-up needs the user again (MCP-18); Tenure refuses it when it cannot help.
                self.tenure.login().await?
            } else {
                match self.tenure.token().await? {
                    Report {
                        outcome: Outcome::LoginRequired(_),
                        warnings,
                    } => {
                        show(&warnings);
                        self.tenure.login().await?
                    }
                    report => report,
                }
            };
            show(&report.warnings);
            match report.outcome {
                Outcome::Token { access_token, .. } => self.token = Some(access_token),
                Outcome::Failed(error) => {
                    return Err(McpError::Authorization {
                        method: method.into(),
                        error: Box::new(error),
                    })
                }
                Outcome::LoginRequired(reason) => {
                    return Err(McpError::LoginRequired {
                        method: method.into(),
                        reason,
                    })
                }
                other => {
                    return Err(McpError::LoginRequired {
                        method: method.into(),
                        reason: format!("Tenure handed out no token ({other:?})"),
                    })
                }
            }
        }
    }

    async fn post(&self, message: &Value) -> Result<reqwest::Response, McpError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(message.to_string());
        if let Some(token) = &self.token {
            // MCP-16: the token on every request, in the header, never in the URL.
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        if let Some(session) = &self.session_id {
            request = request.header("Mcp-Session-Id", session);
        }
        if let Some(version) = &self.protocol_version {
            request = request.header("MCP-Protocol-Version", version);
        }
        request
            .send()
            .await
            .map_err(|e| McpError::Transport(describe(&e)))
    }
}

fn show(warnings: &[String]) {
    for warning in warnings {
        eprintln!("tenure: warning: {warning}");
    }
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
}
