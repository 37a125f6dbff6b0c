//! `tenure`: the command line of Tenure.
//!
//! `tenure demo` runs the whole lifecycle against the built-in simulated authorization
//! server. The other commands work against real servers through `tenure-tokio`, keeping
//! named client configurations and their credentials in a store: a sled directory by default,
//! Redis with `--store redis://HOST:PORT/DB`, or the OS keychain for the secrets (the rest in a
//! sled directory) with `--store keychain:PATH`.

/// `println!` for the command's output on stdout: a reader that went away
/// (`tenure status | head -1`) ends the command quietly instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout_line(format_args!($($arg)*))
    };
}

mod commands;
mod demo;
mod handout;
mod output;
mod profile;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tenure_core::{
    AssertionAudience, AuthMethod, Duration, Grant, LoginFlow, Operation, Timestamp,
};
use tenure_store::Store;
use tenure_tokio::{BrowserMode, Clock};

use commands::{Context, Failure, Printed};
use profile::Profile;

/// Exit codes of design §6.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// A usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// A replay diverged from its trace.
    pub const DIVERGED: u8 = 3;
    /// A login is required and the command may not open a browser.
    pub const LOGIN_REQUIRED: u8 = 4;
    /// Registration or renewal failed.
    pub const REGISTRATION_FAILED: u8 = 5;
}

/// What git asks of a credential helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum GitAction {
    /// Credentials for a request.
    Get,
    /// Credentials that worked (nothing to do: Tenure keeps its own).
    Store,
    /// Credentials the server refused.
    Erase,
}

/// Keeps an OAuth client's registration and credentials alive.
#[derive(Debug, Parser)]
#[command(name = "tenure", version, about)]
struct Cli {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Where credentials live: a directory (sled, the default is under the user's data
    /// directory) or redis://HOST:PORT/DB (rediss:// for TLS), or
    /// redis-sentinel://HOST:PORT/MASTER/DB. A Redis password is best given in
    /// TENURE_REDIS_PASSWORD (and TENURE_REDIS_USERNAME, TENURE_REDIS_SENTINEL_PASSWORD).
    /// keychain:PATH keeps secrets and tokens in the OS keychain (Secret Service, macOS
    /// Keychain, Windows Credential Manager) and the rest in the directory PATH (keychain:
    /// alone: a directory under the user's data directory); with no keychain reachable it
    /// fails, never falling back to files. The setting TENURE_STORE gives the same choice
    /// for every command, e.g. `export TENURE_STORE=keychain:` in a shell profile.
    #[arg(
        long,
        global = true,
        env = "TENURE_STORE",
        value_name = "PATH|URL|keychain:PATH"
    )]
    store: Option<String>,
    /// Append every exchange with the server to FILE as a provider trace (secrets replaced),
    /// for `tenure replay`.
    #[arg(long, global = true, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Give up on a request to the server after this many seconds (the whole exchange,
    /// body included); connecting may take at most a third of it.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    http_timeout: u64,
    /// Pretend the clock says this (RFC 3339); for tests.
    #[arg(long, global = true, hide = true, value_name = "RFC3339")]
    now: Option<String>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the whole lifecycle against the built-in simulated authorization server, in
    /// virtual time: discovery, registration, login, refresh, renewal, a warm restart, and
    /// expiry with a failing renewal. No network, no setup.
    Demo,
    /// Add a named client configuration.
    // Boxed: its many options would make every other command as large.
    Add(Box<AddArgs>),
    /// Log in with authorization code + PKCE through the loopback callback (or fetch a
    /// client-credentials token).
    Login {
        /// The client's name.
        name: String,
        /// Print the authorization URL (`open: URL` on stderr) instead of opening a browser.
        #[arg(long, conflicts_with = "device")]
        no_browser: bool,
        /// Log in with the device authorization grant (RFC 8628): print a URL and a code
        /// (`visit: URL`, `code: CODE` on stderr) to enter on any device, and wait for the
        /// approval. Chosen by itself when there is no display (an SSH session, or no
        /// DISPLAY/WAYLAND_DISPLAY) and the server offers it.
        #[arg(long)]
        device: bool,
    },
    /// Print a valid access token, registering, refreshing and renewing as needed.
    Token {
        /// The client's name.
        name: String,
        /// The resource refused the token printed last (HTTP 401): get another one (a
        /// refresh, a new client-credentials token, or a login when nothing else can).
        #[arg(long)]
        refused: bool,
        /// How to print it: the token alone, an `Authorization` header line, JSON, a JSON
        /// map of headers, or a Kubernetes ExecCredential.
        #[arg(long, value_enum, default_value_t)]
        format: output::TokenFormat,
    },
    /// A git credential helper (`git config credential.https://HOST.helper "!tenure
    /// git-credential NAME"`): `get` prints the token as the password, `erase` (git's word
    /// for "the server refused it") makes the next `get` fetch another, `store` does nothing.
    GitCredential {
        /// The client's name.
        name: String,
        /// What git asks: get, store or erase.
        #[arg(value_enum)]
        action: GitAction,
        /// The user name to pair with the token (hosts ignore it or want a fixed one).
        #[arg(long, default_value = "oauth2")]
        username: String,
    },
    /// Show identity, client id, secret expiry, renewal and tokens of one or every client.
    Status {
        /// The client's name; every client when absent.
        name: Option<String>,
    },
    /// Renew the client secret now (RFC 7592).
    Renew {
        /// The client's name.
        name: String,
    },
    /// Drop the tokens and keep the registration.
    Logout {
        /// The client's name.
        name: String,
    },
    /// Delete the registration at the server (RFC 7592), then the local record.
    Forget {
        /// The client's name.
        name: String,
        /// Remove only the local record and send nothing: for a server that cannot be
        /// reached or will not delete the registration.
        #[arg(long)]
        local: bool,
    },
    /// Play recorded provider traces back to the core and print what the client did; exits 3
    /// when the client sent a request a trace has no answer for.
    Replay {
        /// Trace files (JSON Lines).
        #[arg(required = true, value_name = "TRACE.jsonl")]
        traces: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
// Both may be given: a client that sends a secret or an assertion names its authorization
// server with --issuer next to the --resource it is for.
#[command(group(clap::ArgGroup::new("server").required(true).multiple(true).args(["issuer", "resource"])))]
#[command(group(clap::ArgGroup::new("private_key").args(["private_key_file", "private_key_env"])))]
#[command(group(clap::ArgGroup::new("workload_token")
    .args(["assertion_file", "assertion_env", "assertion_command"])
    .requires("client_id")
    .conflicts_with("idp")))]
#[command(group(clap::ArgGroup::new("idp")
    .args(["idp_token_endpoint", "idp_issuer"])
    .requires_all(["client_id", "idp_client_id", "id_token"])))]
#[command(group(clap::ArgGroup::new("id_token")
    .args(["id_token_file", "id_token_env", "id_token_command"])
    .requires("idp")))]
struct AddArgs {
    /// The client's name.
    name: String,
    /// The authorization server's issuer.
    #[arg(long)]
    issuer: Option<String>,
    /// The protected resource (e.g. an MCP server URL); its metadata names the server.
    #[arg(long)]
    resource: Option<String>,
    /// A scope to request; repeat for several.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A pre-registered client id.
    #[arg(long)]
    client_id: Option<String>,
    /// The environment variable holding the pre-registered client secret.
    #[arg(long, requires = "client_id", value_name = "VAR")]
    client_secret_env: Option<String>,
    /// The client's private key for `--auth-method private_key_jwt`: a file holding an
    /// unencrypted PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`), P-256 EC for ES256 or RSA
    /// of 2048 to 4096 bits for RS256. The profile keeps the path and reads the file when it
    /// is needed. With `--client-id` the client is pre-registered; without, its public key is
    /// registered dynamically, and a replaced file is registered again on the next run.
    #[arg(long, conflicts_with = "private_key_env", value_name = "PATH")]
    private_key_file: Option<PathBuf>,
    /// The environment variable holding that private key's PEM text, instead of a file
    /// (e.g. TENURE_PRIVATE_KEY).
    #[arg(long, value_name = "VAR")]
    private_key_env: Option<String>,
    /// Keep that private key in the OS keychain (Secret Service, macOS Keychain, Windows
    /// Credential Manager; service `tenure`, an entry named `private-key:NAME/…`): `tenure
    /// add` reads the file (or variable) once and imports the key, the profile keeps only the
    /// entry's name, and the key is read from the keychain whenever it is needed, so the file
    /// can be deleted. With no keychain reachable it fails and stores nothing; it never falls
    /// back to a file. `tenure forget NAME` (or `--local`) removes the entry too. To replace
    /// the key: `tenure forget NAME` (or `--local`), then add the client again with the new
    /// file.
    #[arg(long, requires = "private_key")]
    private_key_keychain: bool,
    /// Registering a `private_key_jwt` client dynamically: the https URL where you publish
    /// its JWK Set, registered as `jwks_uri` instead of the key itself.
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// The key id (`kid`) to name in the signed assertions, when the server needs one.
    #[arg(long, value_name = "KID")]
    private_key_id: Option<String>,
    /// What the signed assertions' `aud` claim names: the server's issuer (the default) or,
    /// for an older server that accepts nothing else, its token endpoint.
    #[arg(long, value_parser = parse_audience, value_name = "token_endpoint|issuer")]
    assertion_audience: Option<AssertionAudience>,
    /// A Client ID Metadata Document URL to use as the client id.
    #[arg(long, value_name = "URL")]
    cimd_url: Option<String>,
    /// How the client authenticates at the token endpoint.
    #[arg(long, value_parser = parse_auth_method, value_name = "none|client_secret_basic|client_secret_post|private_key_jwt")]
    auth_method: Option<AuthMethod>,
    /// How tokens are obtained.
    #[arg(long, value_parser = parse_grant, default_value = "authorization_code", value_name = "authorization_code|client_credentials|jwt_bearer")]
    grant: Grant,
    /// The loopback callback port (1 to 65535).
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
    redirect_port: Option<u16>,
    /// Renew the client secret once it expires within this (e.g. 24h, 90m, 3600s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    renew_within: Option<Duration>,
    /// The environment variable holding an RFC 7591 initial access token.
    #[arg(long, value_name = "VAR")]
    initial_access_token_env: Option<String>,
    /// For `--grant jwt-bearer` with workload identity: the file holding the platform's JWT
    /// (e.g. a Kubernetes projected service account token), read afresh for every token
    /// request.
    #[arg(long, value_name = "PATH")]
    assertion_file: Option<PathBuf>,
    /// The environment variable holding the workload's JWT, instead of a file.
    #[arg(long, value_name = "VAR")]
    assertion_env: Option<String>,
    /// A command that prints the workload's JWT, instead of a file: a program and its
    /// arguments separated by spaces, run without a shell, within 15 s.
    #[arg(long, value_name = "CMD")]
    assertion_command: Option<String>,
    /// For `--grant jwt-bearer` with enterprise-managed authorization: the token endpoint of
    /// the enterprise identity provider, which exchanges the user's ID token for an ID-JAG
    /// (RFC 8693).
    #[arg(long, value_name = "URL")]
    idp_token_endpoint: Option<String>,
    /// The enterprise identity provider's issuer, instead of its token endpoint: its
    /// metadata names the endpoint.
    #[arg(long, value_name = "URL")]
    idp_issuer: Option<String>,
    /// The client id this client has at the identity provider.
    #[arg(long, requires = "idp", value_name = "ID")]
    idp_client_id: Option<String>,
    /// The environment variable holding the client secret at the identity provider.
    #[arg(long, requires = "idp", value_name = "VAR")]
    idp_client_secret_env: Option<String>,
    /// The file holding the user's ID token from the identity provider.
    #[arg(long, value_name = "PATH")]
    id_token_file: Option<PathBuf>,
    /// The environment variable holding the user's ID token, instead of a file.
    #[arg(long, value_name = "VAR")]
    id_token_env: Option<String>,
    /// A command that prints the user's ID token, instead of a file (as
    /// `--assertion-command`).
    #[arg(long, value_name = "CMD")]
    id_token_command: Option<String>,
}

/// An assertion source from `--…-file`, `--…-env` or `--…-command`, whichever was given; a
/// file is kept as an absolute path, since later commands may run from another directory.
fn assertion_source(
    file: Option<PathBuf>,
    env: Option<String>,
    command: Option<String>,
) -> Option<tenure_core::AssertionSource> {
    use tenure_core::AssertionSource;
    file.map(|path| AssertionSource::File(absolute(path).display().to_string()))
        .or(env.map(AssertionSource::Env))
        .or(command.map(|line| {
            AssertionSource::Command(line.split_whitespace().map(str::to_owned).collect())
        }))
}

/// `path` made absolute against the current directory, or as it is when that fails.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn parse_auth_method(text: &str) -> Result<AuthMethod, String> {
    AuthMethod::parse(text).ok_or_else(|| {
        format!(
            "`{text}` is not one of none, client_secret_basic, client_secret_post, private_key_jwt"
        )
    })
}

fn parse_audience(text: &str) -> Result<AssertionAudience, String> {
    match text {
        "token_endpoint" => Ok(AssertionAudience::TokenEndpoint),
        "issuer" => Ok(AssertionAudience::Issuer),
        _ => Err(format!("`{text}` is not one of token_endpoint, issuer")),
    }
}

fn parse_grant(text: &str) -> Result<Grant, String> {
    match text {
        "authorization_code" => Ok(Grant::AuthorizationCode),
        "client_credentials" => Ok(Grant::ClientCredentials),
        "jwt_bearer" | "jwt-bearer" => Ok(Grant::JwtBearer),
        _ => Err(format!(
            "`{text}` is not one of authorization_code, client_credentials, jwt_bearer"
        )),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    Duration::parse(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write it like 24h, 90m or 3600s"))
}

impl AddArgs {
    fn into_profile(self) -> Profile {
        let private_key_keychain = self
            .private_key_keychain
            .then(|| profile::keychain_entry_name(&self.name));
        Profile {
            name: self.name,
            issuer: self.issuer,
            resource: self.resource,
            scope: self.scopes,
            client_id: self.client_id,
            client_secret_env: self.client_secret_env,
            // Kept absolute: later commands may run from another directory.
            private_key_file: self.private_key_file.map(absolute),
            private_key_env: self.private_key_env,
            private_key_keychain,
            private_key_id: self.private_key_id,
            jwks_uri: self.jwks_uri,
            assertion_audience: self.assertion_audience,
            cimd_url: self.cimd_url,
            auth_method: self.auth_method,
            grant: self.grant,
            redirect_port: self
                .redirect_port
                .unwrap_or(tenure_core::config::DEFAULT_REDIRECT_PORT),
            renew_within_secs: self.renew_within.map(Duration::as_secs),
            initial_access_token_env: self.initial_access_token_env,
            assertion: assertion_source(
                self.assertion_file,
                self.assertion_env,
                self.assertion_command,
            ),
            idp_token_endpoint: self.idp_token_endpoint,
            idp_issuer: self.idp_issuer,
            idp_client_id: self.idp_client_id,
            idp_client_secret_env: self.idp_client_secret_env,
            id_token: assertion_source(
                self.id_token_file,
                self.id_token_env,
                self.id_token_command,
            ),
            key: None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Commands::Demo => return ExitCode::from(demo::run(cli.json)),
        Commands::Replay { traces } => {
            return finish(commands::replay(traces, cli.json));
        }
        _ => {}
    }
    if let Some(code) = warm_token(&cli) {
        return code;
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    finish(runtime.block_on(run(cli)))
}

/// `tenure token NAME` served from the handout file the last command left beside the sled
/// store (see `handout.rs`), before the runtime or the store is opened; `None` when the full
/// path must run (another store, `--refused`, `--record`, or no valid handout).
fn warm_token(cli: &Cli) -> Option<ExitCode> {
    let (name, printed) = match &cli.command {
        Commands::Token {
            name,
            refused: false,
            format,
        } => (name, Printed::Token(*format)),
        Commands::GitCredential {
            name,
            action: GitAction::Get,
            username,
        } => (name, Printed::Git(username.clone())),
        _ => return None,
    };
    if cli.record.is_some() {
        return None;
    }
    let now = match &cli.now {
        Some(text) => Timestamp::parse_rfc3339(text)?,
        None => Clock::system().now(),
    };
    let handouts = handout::Handouts::in_store(&sled_dir(cli.store.as_deref())?);
    let (token, expires_at) = handouts.read(name, now)?;
    if let Printed::Git(_) = printed {
        if let Err(failure) = commands::read_git_request() {
            return Some(finish(Err(failure)));
        }
    }
    let expires_at = expires_at.as_deref().and_then(Timestamp::parse_rfc3339);
    let text = printed.render(cli.json, name, &token, expires_at);
    stdout_text(&text);
    Some(ExitCode::from(exit::OK))
}

/// Writes `text` to stdout. When the reader is gone (a closed pipe) there is nobody left to
/// tell, so the process ends with success, as Unix tools do; any other write error is a
/// failure, said on stderr.
pub fn stdout_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(i32::from(exit::OK))
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: cannot write the output: {error}");
            std::process::exit(i32::from(exit::FAILURE))
        }
    }
}

/// [`stdout_text`] of one formatted line (the `out!` macro).
pub fn stdout_line(args: std::fmt::Arguments<'_>) {
    stdout_text(&format!("{args}\n"));
}

/// The sled store's directory, for a `--store` that names one (or none: the default).
fn sled_dir(location: Option<&str>) -> Option<PathBuf> {
    match location {
        Some(url) if url.starts_with("redis") => None,
        // The handout files keep an access token in a file, which a keychain store is chosen
        // to avoid: every `tenure token` reads the keychain instead.
        Some(spec) if spec.starts_with(KEYCHAIN_PREFIX) => None,
        Some(path) => Some(PathBuf::from(path)),
        None => default_store_dir(),
    }
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Logs go to stderr, warnings by default; `RUST_LOG=tenure_tokio=info` shows every request.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let clock = match &cli.now {
        Some(text) => Clock::starting_at(Timestamp::parse_rfc3339(text).ok_or_else(|| {
            Failure::usage(format!(
                "--now `{text}` is not an RFC 3339 time such as 2026-01-01T00:00:00Z"
            ))
        })?),
        None => Clock::system(),
    };
    if let Commands::Add(args) = &cli.command {
        if args.private_key_keychain {
            // Before the store is opened (a sled store creates its directory): with no
            // keychain to take the key, nothing at all is written.
            commands::check_keychain_reachable(&args.name)?;
        }
    }
    let store = open_store(cli.store.as_deref()).await?;
    let printed = match &cli.command {
        Commands::Token { format, .. } => Printed::Token(*format),
        Commands::GitCredential {
            action: GitAction::Get,
            username,
            ..
        } => Printed::Git(username.clone()),
        Commands::GitCredential { .. } => Printed::Nothing,
        _ => Printed::Token(output::TokenFormat::Bearer),
    };
    let context = Context {
        printed,
        store,
        handouts: sled_dir(cli.store.as_deref()).map(|dir| handout::Handouts::in_store(&dir)),
        json: cli.json,
        clock,
        record: cli.record,
        timeouts: tenure_tokio::Timeouts {
            connect: std::time::Duration::from_secs(cli.http_timeout.div_ceil(3)),
            total: std::time::Duration::from_secs(cli.http_timeout),
        },
    };
    match cli.command {
        Commands::Demo | Commands::Replay { .. } => {
            unreachable!("handled before the runtime starts")
        }
        Commands::Add(args) => commands::add(&context, args.into_profile()).await,
        Commands::Login {
            name,
            no_browser,
            device,
        } => {
            let browser = if no_browser {
                BrowserMode::Print
            } else {
                BrowserMode::Open
            };
            let flow = if device {
                LoginFlow::Device
            } else if no_browser {
                // Asked for the browser login by name: printed, never switched.
                LoginFlow::Browser
            } else {
                commands::automatic_login_flow()
            };
            commands::login(&context, &name, browser, flow).await
        }
        Commands::GitCredential { name, action, .. } => {
            let challenges = match action {
                GitAction::Store => return Ok(()),
                GitAction::Get => {
                    commands::read_git_request()?;
                    Vec::new()
                }
                GitAction::Erase => vec![commands::REFUSED.to_string()],
            };
            let print = BrowserMode::Print;
            commands::operate_after(&context, &name, Operation::Token, print, challenges).await
        }
        Commands::Token { name, refused, .. } => {
            let challenges = if refused {
                vec![commands::REFUSED.to_string()]
            } else {
                Vec::new()
            };
            let print = BrowserMode::Print;
            commands::operate_after(&context, &name, Operation::Token, print, challenges).await
        }
        Commands::Status { name } => commands::status(&context, name.as_deref()).await,
        Commands::Renew { name } => {
            commands::operate(&context, &name, Operation::Renew, BrowserMode::Print).await
        }
        Commands::Logout { name } => {
            commands::operate(&context, &name, Operation::Logout, BrowserMode::Print).await
        }
        Commands::Forget { name, local } => {
            let op = if local {
                Operation::ForgetLocal
            } else {
                Operation::Forget
            };
            commands::operate(&context, &name, op, BrowserMode::Print).await
        }
    }
}

/// The Redis ACL user, when `--store` names none.
const REDIS_USERNAME_VAR: &str = "TENURE_REDIS_USERNAME";
/// The Redis password, when `--store` gives none.
const REDIS_PASSWORD_VAR: &str = "TENURE_REDIS_PASSWORD";
/// The Sentinels' own password, when it differs from the master's.
const REDIS_SENTINEL_PASSWORD_VAR: &str = "TENURE_REDIS_SENTINEL_PASSWORD";

async fn open_store(location: Option<&str>) -> Result<Arc<dyn Store>, Failure> {
    match location {
        Some(url) if url.starts_with("redis") => {
            // Credentials from the environment keep the password out of the command line,
            // which every user of the machine can read.
            let secret = |name: &str| std::env::var(name).ok().map(tenure_core::Secret::new);
            let options = tenure_redis::Options {
                username: std::env::var(REDIS_USERNAME_VAR).ok(),
                password: secret(REDIS_PASSWORD_VAR),
                sentinel_password: secret(REDIS_SENTINEL_PASSWORD_VAR),
                ..tenure_redis::Options::default()
            };
            let store = tenure_redis::RedisStore::open(url, options)
                .await
                .map_err(Failure::other)?;
            Ok(Arc::new(store))
        }
        Some(spec) if spec.starts_with(KEYCHAIN_PREFIX) => {
            let path = match &spec[KEYCHAIN_PREFIX.len()..] {
                "" => default_keychain_dir().ok_or_else(|| {
                    Failure::usage(
                        "cannot tell where the user's data directory is (HOME is not set); \
                         pass --store keychain:PATH",
                    )
                })?,
                path => PathBuf::from(path),
            };
            let store = tenure_keychain::KeychainStore::open(path).map_err(Failure::other)?;
            Ok(Arc::new(store))
        }
        Some(path) => open_sled(PathBuf::from(path)),
        None => open_sled(sled_dir(None).ok_or_else(|| {
            Failure::usage(
                "cannot tell where the user's data directory is (HOME is not set); \
                 pass --store PATH",
            )
        })?),
    }
}

fn open_sled(path: PathBuf) -> Result<Arc<dyn Store>, Failure> {
    let store = tenure_sled::SledStore::open(path).map_err(Failure::other)?;
    Ok(Arc::new(store))
}

/// What starts a `--store` that keeps secrets in the OS keychain.
const KEYCHAIN_PREFIX: &str = "keychain:";

/// The keychain store's directory for `--store keychain:`: beside the default store, not in
/// it, since each directory belongs to one kind of store.
fn default_keychain_dir() -> Option<PathBuf> {
    let plain = default_store_dir()?;
    Some(plain.with_file_name("tenure-keychain"))
}

/// `$XDG_DATA_HOME/tenure`, else `~/.local/share/tenure`.
fn default_store_dir() -> Option<PathBuf> {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(data).join("tenure"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(".local/share/tenure"))
}
