//! `mcp-conformance-client`: an MCP client built on Tenure, for the MCP conformance suite
//! (`@modelcontextprotocol/conformance`, see `testing/mcp-conformance/`).
//!
//! ```text
//! mcp-conformance-client [--cimd-url URL] MCP_SERVER_URL
//! ```
//!
//! It speaks MCP over Streamable HTTP, revision 2026-07-28 first (`server/discover`, then
//! requests that carry the protocol version in `_meta` and in headers), and falls back to the
//! `initialize` handshake of 2025-11-25 and before with a server of an earlier revision (see
//! [`mcp`]); then `tools/list`, and `tools/call` of `test-tool` when the server offers it.
//! Everything about
//! authorization is Tenure's: this program hands the server's 401/403 challenges to Tenure,
//! which discovers the authorization server, registers (pre-registered credentials, a Client
//! ID Metadata Document, or dynamic registration), logs in with PKCE, chooses scopes and
//! steps up. The login is headless ([`BrowserMode::Headless`]): the suite's authorization
//! server redirects at once, so no browser is needed.
//!
//! Tokens are DPoP-bound (RFC 9449, SEP-1932) wherever the authorization server offers
//! DPoP with ES256; the middleware sends each request's proof.
//!
//! Environment, as the suite sets it:
//! - `MCP_CONFORMANCE_CONTEXT`: JSON; `client_id` and `client_secret`, when present, are a
//!   pre-registered client (MCP-7 priority 1). In the client-credentials scenarios (the
//!   context's `name` starts with `auth/client-credentials`) the client is a machine: it
//!   uses the client credentials grant, with `client_secret_basic`, or with
//!   `private_key_jwt` when the context carries `private_key_pem` (and `signing_algorithm`,
//!   `ES256` or `RS256`, and must be the key's).
//! - `MCP_CONFORMANCE_SCENARIO`: the scenario's name; only printed.
//!
//! Exit status: 0 when every call succeeded, 1 otherwise (the reason on stderr), 2 for a
//! usage error.

mod mcp;

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{json, Value};
use tenure_core::{AssertionAudience, AssertionKey, AuthMethod, Grant, Secret};
use tenure_store::MemoryStore;
use tenure_tokio::{BrowserMode, ClientConfig, DpopMode, Notice, Tenure, Timeouts};

use crate::mcp::{McpError, Session};

/// The client id the conformance suite expects from a client that uses a Client ID Metadata
/// Document when the authorization server advertises support for them.
pub const CONFORMANCE_CIMD_URL: &str = "https://conformance-test.local/client-metadata.json";

/// The tool the conformance suite's servers offer.
const TEST_TOOL: &str = "test-tool";

const USAGE: &str = "usage: mcp-conformance-client [--cimd-url URL] MCP_SERVER_URL";

/// What the command line and the environment say.
struct Invocation {
    server_url: String,
    cimd_url: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// The client credentials grant rather than a user's login.
    machine: bool,
    /// PKCS#8 PEM text of the key for `private_key_jwt`.
    private_key_pem: Option<String>,
}

/// The prefix of the scenarios whose client is a machine using the client credentials grant
/// (the `io.modelcontextprotocol/oauth-client-credentials` extension, SEP-1046).
const CLIENT_CREDENTIALS_SCENARIOS: &str = "auth/client-credentials";

fn main() -> ExitCode {
    let invocation = match invocation(std::env::args().skip(1).collect()) {
        Ok(invocation) => invocation,
        Err(message) => {
            eprintln!("mcp-conformance-client: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Ok(scenario) = std::env::var("MCP_CONFORMANCE_SCENARIO") {
        eprintln!("scenario: {scenario}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mcp-conformance-client: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(invocation)) {
        Ok(()) => {
            eprintln!("done: every call succeeded");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("mcp-conformance-client: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the arguments (the server URL is the last one, as the suite appends it) and
/// `MCP_CONFORMANCE_CONTEXT`.
fn invocation(args: Vec<String>) -> Result<Invocation, String> {
    let mut cimd_url = CONFORMANCE_CIMD_URL.to_string();
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cimd-url" => {
                cimd_url = args.next().ok_or("--cimd-url needs a URL after it")?;
            }
            "-h" | "--help" => return Err("help requested".into()),
            _ => rest.push(arg),
        }
    }
    let server_url = rest
        .pop()
        .ok_or("the MCP server URL is missing; give it as the last argument")?;
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument `{extra}`"));
    }
    let context: Value = match std::env::var("MCP_CONFORMANCE_CONTEXT") {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!("MCP_CONFORMANCE_CONTEXT is not JSON ({e}); unset it or fix it")
        })?,
        Err(_) => Value::Null,
    };
    let text = |name: &str| context.get(name).and_then(Value::as_str).map(str::to_owned);
    let private_key_pem = text("private_key_pem");
    if let Some(pem) = &private_key_pem {
        // The key decides the algorithm; a context that names another one is refused here
        // rather than answered with an assertion the server will not accept.
        let key = AssertionKey::from_pkcs8_pem(&Secret::new(pem.as_str()), None)
            .map_err(|e| format!("MCP_CONFORMANCE_CONTEXT: private_key_pem: {e}"))?;
        if let Some(asked) = text("signing_algorithm").filter(|alg| alg != key.alg()) {
            return Err(format!(
                "MCP_CONFORMANCE_CONTEXT asks for signing_algorithm {asked}, but its private_key_pem signs {}",
                key.alg()
            ));
        }
    }
    let machine = text("name").is_some_and(|name| name.starts_with(CLIENT_CREDENTIALS_SCENARIOS));
    Ok(Invocation {
        server_url,
        cimd_url,
        client_id: text("client_id"),
        client_secret: text("client_secret"),
        machine,
        private_key_pem,
    })
}

/// The Tenure configuration: discovery from the MCP server as a protected resource, the
/// suite's CIMD URL (used only when the authorization server supports CIMD), pre-registered
/// credentials when the context has them, and the 2025-03-26 fallback for servers that
/// publish no protected resource metadata. A machine client uses the client credentials
/// grant with `client_secret_basic`, or `private_key_jwt` with assertions addressed to the
/// issuer (the suite's server accepts only that audience); it has no CIMD, which is for
/// public clients.
fn config(invocation: &Invocation) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::for_resource("mcp-conformance", &invocation.server_url);
    config.client_name = "Tenure MCP conformance client".into();
    config.software_id = Some("tenure-mcp-conformance-client".into());
    config.software_version = Some(env!("CARGO_PKG_VERSION").into());
    config.cimd_url = Some(invocation.cimd_url.clone());
    config.client_id = invocation.client_id.clone();
    config.client_secret = invocation.client_secret.clone().map(Secret::new);
    config.legacy_discovery = true;
    // Every request goes through tenure-reqwest, which presents DPoP tokens with their
    // proofs: tokens are bound to the client's key wherever the server offers it.
    config.dpop = DpopMode::IfOffered;
    if invocation.machine {
        config.grant = Grant::ClientCredentials;
        config.cimd_url = None;
        config.auth_method = Some(AuthMethod::ClientSecretBasic);
    }
    if let Some(pem) = &invocation.private_key_pem {
        config.private_key = Some(Secret::new(pem.as_str()));
        config.auth_method = Some(AuthMethod::PrivateKeyJwt);
        config.assertion_audience = AssertionAudience::Issuer;
    }
    config
        .validate()
        .map_err(|e| format!("the client configuration is unusable: {e}"))?;
    Ok(config)
}

async fn run(invocation: Invocation) -> Result<(), String> {
    let config = config(&invocation)?;
    let tenure = Tenure::builder(config, Arc::new(MemoryStore::new()))
        .browser(BrowserMode::Headless)
        .timeouts(Timeouts {
            connect: std::time::Duration::from_secs(5),
            total: std::time::Duration::from_secs(10),
        })
        .on_notice(|notice| {
            if let Notice::Warning {
                message: warning, ..
            } = notice
            {
                eprintln!("tenure: warning: {warning}");
            }
        })
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let mut session =
        Session::new(invocation.server_url.clone(), tenure).map_err(|e| e.to_string())?;
    calls(&mut session).await.map_err(|e| e.to_string())
}

/// The MCP calls the suite expects.
async fn calls(session: &mut Session) -> Result<(), McpError> {
    let server = session.initialize().await?;
    eprintln!("initialized: {server} ({:?})", session.era());
    let tools = session.request("tools/list", json!({})).await?;
    let names: Vec<&str> = tools
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    eprintln!("tools: {}", names.join(", "));
    if names.contains(&TEST_TOOL) {
        let result = session
            .request("tools/call", json!({"name": TEST_TOOL, "arguments": {}}))
            .await?;
        eprintln!("{TEST_TOOL}: {result}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_url_is_the_last_argument() {
        let found = invocation(vec!["http://localhost:1/mcp".into()]).unwrap();
        assert_eq!(found.server_url, "http://localhost:1/mcp");
        assert_eq!(found.cimd_url, CONFORMANCE_CIMD_URL);
        let custom = invocation(vec![
            "--cimd-url".into(),
            "https://app.example.com/client.json".into(),
            "http://localhost:1/mcp".into(),
        ])
        .unwrap();
        assert_eq!(custom.cimd_url, "https://app.example.com/client.json");
        assert!(invocation(vec![]).is_err());
        assert!(invocation(vec!["a".into(), "b".into()]).is_err());
    }

    #[test]
    fn a_client_credentials_scenario_makes_a_machine_client() {
        let mut found = invocation(vec!["http://localhost:1/mcp".into()]).unwrap();
        found.client_id = Some("conformance-test-client".into());
        found.client_secret = Some("conformance-test-secret".into());
        found.machine = true;
        let config = config(&found).unwrap();
        assert_eq!(config.grant, Grant::ClientCredentials);
        assert_eq!(config.auth_method, Some(AuthMethod::ClientSecretBasic));
        assert_eq!(config.cimd_url, None);
    }
}
