//! A minimal MCP client over Streamable HTTP: JSON-RPC messages POSTed to one endpoint, the
//! answer read as JSON or as a server-sent event stream.
//!
//! Authorization is Tenure's, through its reqwest middleware ([`BearerAuth`]): every request
//! carries the bearer token Tenure handed out (MCP-16), and a 401 or 403 challenge goes to
//! Tenure, which decides what happens: discovery, registration, login, refresh, step-up, or
//! an error that says why not. The middleware sends one request back for authorization at
//! most [`tenure_reqwest::DEFAULT_BUDGET`] times (MCP-18). Nothing here reads a challenge.

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{json, Value};
use tenure_reqwest::BearerAuth;
use tenure_tokio::{Tenure, TokenError};

/// The protocol revision this client speaks first.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

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
}

/// One MCP session with one server endpoint.
pub struct Session {
    http: ClientWithMiddleware,
    endpoint: String,
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

    /// POSTs one message; the middleware authorizes it and sends it again as the server's
    /// challenges call for.
    async fn send(
        &mut self,
        method: &str,
        message: &Value,
    ) -> Result<(HeaderMap, Vec<u8>), McpError> {
        let response = self.post(method, message).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| McpError::Transport(e.to_string()))?
            .to_vec();
        match status.as_u16() {
            200..=299 => Ok((headers, body)),
            401 | 403 => Err(McpError::StillRefused {
                method: method.into(),
                status: status.as_u16(),
            }),
            other => Err(McpError::Status {
                method: method.into(),
                status: other,
                body: excerpt(&body),
            }),
        }
    }

    async fn post(&self, method: &str, message: &Value) -> Result<reqwest::Response, McpError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(message.to_string());
        if let Some(session) = &self.session_id {
            request = request.header("Mcp-Session-Id", session);
        }
        if let Some(version) = &self.protocol_version {
            request = request.header("MCP-Protocol-Version", version);
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
