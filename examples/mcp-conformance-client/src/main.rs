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
//!   In the jwt-bearer scenarios the client presents a JWT it was given: with `valid_jwt`
//!   (workload identity federation, SEP-1933) that JWT, as a public client; with
//!   `idp_id_token`, `idp_token_endpoint` and `idp_client_id` (enterprise-managed
//!   authorization, SEP-990) the ID token, exchanged at that identity provider for an
//!   ID-JAG, with `client_secret_basic` at the authorization server. The JWT reaches Tenure
//!   the way a platform's would: in a file (owner-only, in a fresh temporary folder removed
//!   at the end) that Tenure reads when it needs the assertion.
//! - `MCP_CONFORMANCE_SCENARIO`: the scenario's name; only printed.
//!
//! Exit status: 0 when every call succeeded, 1 otherwise (the reason on stderr), 2 for a
//! usage error.

mod mcp;

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{json, Value};
use tenure_core::{
    AssertionKey, AssertionSource, AuthMethod, BearerAssertion, Grant, IdentityProvider, Secret,
};
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
    /// The JWT of a jwt-bearer scenario and what to do with it.
    bearer: Option<BearerContext>,
}

/// What a jwt-bearer scenario's context holds.
#[derive(Debug)]
enum BearerContext {
    /// Workload identity federation: the JWT is the assertion.
    Workload {
        /// The workload's JWT (the context's `valid_jwt`).
        jwt: Secret,
    },
    /// Enterprise-managed authorization: the ID token is exchanged at the identity provider.
    Enterprise {
        /// The user's ID token (`idp_id_token`).
        id_token: Secret,
        /// The identity provider's token endpoint (`idp_token_endpoint`).
        token_endpoint: String,
        /// The client id at the identity provider (`idp_client_id`).
        client_id: String,
    },
}

impl BearerContext {
    /// The JWT the client reads from its assertion file.
    fn jwt(&self) -> &Secret {
        match self {
            BearerContext::Workload { jwt } => jwt,
            BearerContext::Enterprise { id_token, .. } => id_token,
        }
    }
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
    let bearer = bearer_context(&context)?;
    Ok(Invocation {
        server_url,
        cimd_url,
        client_id: text("client_id"),
        client_secret: text("client_secret"),
        machine,
        private_key_pem,
        bearer,
    })
}

/// The jwt-bearer part of the scenario context, if it has one: an enterprise identity
/// provider when it names one, else a workload JWT when it has `valid_jwt` (the context's
/// `wrong_audience_jwt` and `expired_jwt` are for clients that test their own refusals).
fn bearer_context(context: &Value) -> Result<Option<BearerContext>, String> {
    let text = |name: &str| context.get(name).and_then(Value::as_str).map(str::to_owned);
    if let Some(token_endpoint) = text("idp_token_endpoint") {
        let missing = |name: &str| {
            format!("MCP_CONFORMANCE_CONTEXT names an identity provider but has no `{name}`")
        };
        return Ok(Some(BearerContext::Enterprise {
            id_token: Secret::new(text("idp_id_token").ok_or_else(|| missing("idp_id_token"))?),
            client_id: text("idp_client_id").ok_or_else(|| missing("idp_client_id"))?,
            token_endpoint,
        }));
    }
    Ok(text("valid_jwt").map(|jwt| BearerContext::Workload {
        jwt: Secret::new(jwt),
    }))
}

/// Writes the scenario's JWT where Tenure will read it: a file readable by its owner only,
/// in a new folder of the system's temporary directory. Returns the folder, to be removed
/// once the run ends, and the file.
fn write_assertion(jwt: &Secret) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = std::env::temp_dir().join(format!("mcp-conformance-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join("assertion.jwt");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(jwt.expose().as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((dir, file))
}

/// The Tenure configuration: discovery from the MCP server as a protected resource, the
/// suite's CIMD URL (used only when the authorization server supports CIMD), pre-registered
/// credentials when the context has them, and the 2025-03-26 fallback for servers that
/// publish no protected resource metadata. A machine client uses the client credentials
/// grant with `client_secret_basic`, or `private_key_jwt` with assertions addressed to the
/// issuer (the suite's server accepts only that audience); it has no CIMD, which is for
/// public clients.
///
/// A jwt-bearer client is pre-registered and has no CIMD either: it reads its JWT from
/// `assertion_file`. The workload client is public (`none`, as the scenario's server
/// lists); the enterprise client authenticates at the authorization server with
/// `client_secret_basic`, and at the identity provider, which the scenario gives no secret
/// for, with its client id alone.
fn config(
    invocation: &Invocation,
    assertion_file: Option<&std::path::Path>,
) -> Result<ClientConfig, String> {
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
    if let (Some(bearer), Some(file)) = (&invocation.bearer, assertion_file) {
        let source = AssertionSource::File(file.display().to_string());
        let client_id = invocation
            .client_id
            .clone()
            .ok_or("MCP_CONFORMANCE_CONTEXT has a JWT but no `client_id`")?;
        let (assertion, method) = match bearer {
            BearerContext::Workload { .. } => (BearerAssertion::Workload(source), AuthMethod::None),
            BearerContext::Enterprise {
                token_endpoint,
                client_id,
                ..
            } => (
                BearerAssertion::Enterprise(IdentityProvider::new(
                    token_endpoint.as_str(),
                    client_id.as_str(),
                    None,
                    source,
                )),
                AuthMethod::ClientSecretBasic,
            ),
        };
        config = config
            .with_jwt_bearer(client_id, assertion)
            .with_auth_method(method);
        config.cimd_url = None;
    }
    if let Some(pem) = &invocation.private_key_pem {
        config.private_key = Some(Secret::new(pem.as_str()));
        config.auth_method = Some(AuthMethod::PrivateKeyJwt);
    }
    config
        .validate()
        .map_err(|e| format!("the client configuration is unusable: {e}"))?;
    Ok(config)
}

async fn run(invocation: Invocation) -> Result<(), String> {
    let written = match &invocation.bearer {
        Some(bearer) => Some(write_assertion(bearer.jwt())?),
        None => None,
    };
    let outcome = run_with(
        &invocation,
        written.as_ref().map(|(_, file)| file.as_path()),
    )
    .await;
    if let Some((dir, _)) = written {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome
}

async fn run_with(
    invocation: &Invocation,
    assertion_file: Option<&std::path::Path>,
) -> Result<(), String> {
    let config = config(invocation, assertion_file)?;
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
        let config = config(&found, None).unwrap();
        assert_eq!(config.grant, Grant::ClientCredentials);
        assert_eq!(config.auth_method, Some(AuthMethod::ClientSecretBasic));
        assert_eq!(config.cimd_url, None);
    }

    fn invocation_with(context: Value) -> Invocation {
        let mut found = invocation(vec!["http://localhost:1/mcp".into()]).unwrap();
        found.client_id = context["client_id"].as_str().map(str::to_owned);
        found.client_secret = context["client_secret"].as_str().map(str::to_owned);
        found.bearer = bearer_context(&context).unwrap();
        found
    }

    #[test]
    fn a_workload_identity_context_makes_a_public_jwt_bearer_client() {
        let found = invocation_with(json!({
            "client_id": "conformance-wif-workload",
            "valid_jwt": "the-valid-jwt",
            "wrong_audience_jwt": "the-wrong-jwt",
            "expired_jwt": "the-expired-jwt",
        }));
        let Some(BearerContext::Workload { jwt }) = &found.bearer else {
            panic!("no workload JWT: {:?}", found.bearer);
        };
        assert_eq!(jwt.expose(), "the-valid-jwt");
        let file = std::path::Path::new("/tmp/x/assertion.jwt");
        let config = config(&found, Some(file)).unwrap();
        assert_eq!(config.grant, Grant::JwtBearer);
        assert_eq!(
            config.client_id.as_deref(),
            Some("conformance-wif-workload")
        );
        assert_eq!(config.auth_method, Some(AuthMethod::None));
        assert_eq!(config.cimd_url, None);
        assert_eq!(
            config.bearer_assertion,
            Some(BearerAssertion::Workload(AssertionSource::File(
                "/tmp/x/assertion.jwt".into()
            )))
        );
    }

    #[test]
    fn an_enterprise_context_exchanges_at_its_identity_provider() {
        let found = invocation_with(json!({
            "client_id": "xaa-client",
            "client_secret": "xaa-secret",
            "idp_client_id": "idp-client",
            "idp_id_token": "the-id-token",
            "idp_issuer": "http://localhost:2",
            "idp_token_endpoint": "http://localhost:2/token",
        }));
        let Some(BearerContext::Enterprise { id_token, .. }) = &found.bearer else {
            panic!("no identity provider: {:?}", found.bearer);
        };
        assert_eq!(id_token.expose(), "the-id-token");
        let config = config(&found, Some(std::path::Path::new("/tmp/x/a.jwt"))).unwrap();
        assert_eq!(config.grant, Grant::JwtBearer);
        assert_eq!(config.auth_method, Some(AuthMethod::ClientSecretBasic));
        assert_eq!(config.client_secret, Some(Secret::new("xaa-secret")));
        let Some(BearerAssertion::Enterprise(idp)) = &config.bearer_assertion else {
            panic!("no identity provider in {config:?}");
        };
        assert_eq!(
            idp.token_endpoint.as_deref(),
            Some("http://localhost:2/token")
        );
        assert_eq!(idp.client_id, "idp-client");
        assert_eq!(idp.client_secret, None);
        // A context that names an identity provider without its ID token is refused.
        assert!(
            bearer_context(&json!({"idp_token_endpoint": "http://localhost:2/token"})).is_err()
        );
    }
}
