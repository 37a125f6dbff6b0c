//! The commands that work against real servers: `add`, `login`, `token`, `status`, `renew`,
//! `logout`, `forget`.
//!
//! Each command loads the named profile, starts a [`Tenure`] client on the store, runs one
//! operation and turns its outcome into output and an exit code (design §6). Nothing here
//! decides anything about the lifecycle; that is the core's job.

use std::sync::Arc;

use serde_json::json;
use tenure_core::{Duration, Error, LoginFlow, Operation, Status, Timestamp};
use tenure_store::Store;
use tenure_tokio::{
    AccessToken, BrowserMode, Clock, Notice, Recorder, Tenure, TokenError, Verdict,
};

use crate::exit;
use crate::handout::Handouts;
use crate::output::{self, TokenFormat};
use crate::profile::Profile;

/// The library names its settings (`` the setting `client_id` ``); on the command line they
/// are options. Every message the CLI shows goes through here, so its advice names the
/// option to pass.
pub fn in_cli_words(text: &str) -> String {
    const OPTIONS: [(&str, &str); 10] = [
        ("issuer", "--issuer"),
        ("resource", "--resource"),
        ("cimd_url", "--cimd-url"),
        ("client_id", "--client-id"),
        ("client_secret", "--client-secret-env"),
        ("auth_method", "--auth-method"),
        ("private_key", "--private-key-file"),
        ("jwks_uri", "--jwks-uri"),
        ("grant", "--grant"),
        ("initial_access_token", "--initial-access-token-env"),
    ];
    let mut out = text.to_string();
    for (setting, option) in OPTIONS {
        out = out.replace(&format!("the setting `{setting}`"), &format!("`{option}`"));
        out = out.replace(&format!("setting `{setting}`"), &format!("`{option}`"));
    }
    out
}

/// How a command that obtains a token prints it.
#[derive(Clone, Debug)]
pub enum Printed {
    /// `tenure token --format`.
    Token(TokenFormat),
    /// `tenure git-credential NAME get`, with this user name.
    Git(String),
    /// Nothing (`git-credential erase`).
    Nothing,
}

impl Printed {
    /// The text to print for `token` of `name` (with a final newline where there is one).
    pub fn render(
        &self,
        legacy_json: bool,
        name: &str,
        token: &str,
        expires_at: Option<Timestamp>,
    ) -> String {
        match self {
            Printed::Token(format) => {
                format!(
                    "{}\n",
                    output::render(*format, legacy_json, name, token, expires_at)
                )
            }
            Printed::Git(username) => output::git_credential(username, token, expires_at),
            Printed::Nothing => String::new(),
        }
    }
}

/// Reads what git sends a credential helper and checks where the token would go: the
/// profile named on the command line decides the token, but a token is never handed to
/// plain http off loopback (design §4), whatever the helper's configuration says.
pub fn read_git_request() -> Result<(), Failure> {
    use std::io::Read;
    let mut input = String::new();
    let _ = std::io::stdin().take(64 * 1024).read_to_string(&mut input);
    let request = output::git_request(&input);
    let field = |key: &str| {
        request
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let host = field("host").unwrap_or_default();
    let loopback = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|h| host == *h || host.starts_with(&format!("{h}:")));
    if field("protocol") == Some("http") && !loopback {
        return Err(Failure::usage(format!(
            "git asked for credentials for http://{host}, which would send the token in clear; use https for that remote"
        )));
    }
    Ok(())
}

/// What every command needs.
pub struct Context {
    /// How a token is printed.
    pub printed: Printed,
    /// The store holding profiles and records.
    pub store: Arc<dyn Store>,
    /// The handout files of a sled store, for the warm `tenure token` path.
    pub handouts: Option<Handouts>,
    /// `--json`.
    pub json: bool,
    /// The clock (`--now` shifts it).
    pub clock: Clock,
    /// `--record FILE`: where to append the exchanges as a provider trace.
    pub record: Option<std::path::PathBuf>,
    /// `--http-timeout`: connect and total timeouts of every request.
    pub timeouts: tenure_tokio::Timeouts,
}

/// A failure that ends a command: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What to tell the user.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            message: in_cli_words(&message.into()),
            code,
        }
    }

    /// Any other failure (exit 1).
    pub fn other(message: impl std::fmt::Display) -> Self {
        Failure::new(exit::FAILURE, message.to_string())
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(exit::USAGE, message)
    }
}

/// `tenure add`: checks and stores a profile.
pub async fn add(context: &Context, profile: Profile) -> Result<(), Failure> {
    if tenure_tokio::is_internal_profile(&profile.name) {
        return Err(Failure::usage(format!(
            "`{}` starts with `.tenure/`, which Tenure keeps for its own notes in the store; choose another name",
            profile.name
        )));
    }
    if context
        .store
        .load_profile(&profile.name)
        .await
        .map_err(Failure::other)?
        .is_some()
    {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "a client named `{0}` exists already; run `tenure forget {0}` (or `tenure forget {0} --local` when its server cannot be reached) first, or choose another name",
                profile.name
            ),
        ));
    }
    // A secret goes only to the server it belongs to: a resource's metadata (or a challenge
    // naming other metadata) must not be able to choose where it is sent.
    if profile.issuer.is_none() {
        let secret = match (
            &profile.client_secret_env,
            &profile.initial_access_token_env,
        ) {
            (Some(_), _) => Some("a client secret (--client-secret-env)"),
            (None, Some(_)) => Some("an initial access token (--initial-access-token-env)"),
            (None, None) if profile.has_private_key() => {
                Some("a client assertion signed with the private key (--private-key-file or --private-key-env)")
            }
            (None, None)
                if profile.assertion.is_some()
                    || profile.idp_token_endpoint.is_some()
                    || profile.idp_issuer.is_some() =>
            {
                Some("a jwt-bearer assertion (a workload token, or an ID-JAG for the server)")
            }
            (None, None) => None,
        };
        if let Some(secret) = secret {
            return Err(Failure::usage(format!(
                "{secret} is sent only to the authorization server the client belongs to: name that server with --issuer URL, next to --resource"
            )));
        }
    }
    // Check everything that can be checked before the first request; secrets held in
    // environment variables are read only when they are used.
    let mut checked = profile.clone();
    checked.client_secret_env = None;
    checked.initial_access_token_env = None;
    checked.idp_client_secret_env = None;
    // A key file is read now, so a wrong path or format shows at once; a key in a variable
    // is read when it is used, like a secret, unless it is imported into the keychain now.
    let importing = profile.private_key_keychain.is_some();
    let key_in_variable = !importing && checked.private_key_env.take().is_some();
    let config = checked
        .config()
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    match config.validate() {
        Err(tenure_core::ConfigError::PrivateKeyMissing) if key_in_variable => {}
        Err(e) => return Err(Failure::new(exit::USAGE, in_cli_words(&e.to_string()))),
        Ok(()) => {}
    }
    forget_handout(context, &profile.name)?;
    match (&profile.private_key_keychain, &config.private_key) {
        (Some(entry), Some(pem)) => {
            let entry = key_entry(entry);
            entry
                .write(pem)
                .map_err(|e| keychain_failure(&profile.name, e))?;
            // The profile names the entry alone, never the file or variable it came from.
            let mut stored = profile.clone();
            stored.private_key_file = None;
            stored.private_key_env = None;
            if let Err(failure) = save(context, &stored).await {
                let _ = entry.delete();
                return Err(failure);
            }
        }
        _ => save(context, &profile).await?,
    }
    if context.json {
        out!("{}", json!({"name": profile.name, "added": true}));
    } else {
        out!(
            "added `{0}`; run `tenure login {0}` (or `tenure token {0}` for a machine client)",
            profile.name
        );
    }
    Ok(())
}

/// The keychain entry `name` that holds a client's private key.
fn key_entry(name: &str) -> tenure_keychain::SecretEntry {
    tenure_keychain::SecretEntry::new(tenure_keychain::SERVICE, name)
}

/// A failure to put the private key of `name` into the keychain, with what to do instead.
fn keychain_failure(name: &str, error: tenure_keychain::EntryError) -> Failure {
    Failure::other(format!(
        "cannot keep the private key of `{name}` in the OS keychain: {error}; or leave out \
         --private-key-keychain to keep the key in its file, readable only by you; nothing was \
         stored"
    ))
}

/// For `tenure add … --private-key-keychain`, before anything is written: whether a keychain
/// answers (a read of an entry that is never written).
pub fn check_keychain_reachable(name: &str) -> Result<(), Failure> {
    key_entry("tenure-probe")
        .read()
        .map(drop)
        .map_err(|e| keychain_failure(name, e))
}

/// `tenure login`, `token`, `renew`, `logout`, `forget`: one operation on one client.
pub async fn operate(
    context: &Context,
    name: &str,
    op: Operation,
    browser: BrowserMode,
) -> Result<(), Failure> {
    operate_with(context, name, op, browser, LoginFlow::Browser, Vec::new()).await
}

/// `tenure login`: a browser login, or a device login (RFC 8628) as `flow` says.
pub async fn login(
    context: &Context,
    name: &str,
    browser: BrowserMode,
    flow: LoginFlow,
) -> Result<(), Failure> {
    operate_with(context, name, Operation::Login, browser, flow, Vec::new()).await
}

/// The login flow of a `tenure login` given neither `--device` nor `--no-browser`: the
/// device login where no browser can open on this machine (see [`headless`]) and the server
/// offers it (the core checks that), else the browser.
pub fn automatic_login_flow() -> LoginFlow {
    if headless(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty())) {
        LoginFlow::DeviceIfOffered
    } else {
        LoginFlow::Browser
    }
}

/// Whether no browser can be opened on this machine for the user, from which environment
/// variables are `set`: an SSH session (the browser would open far from the user, if at
/// all), or, on Linux and the BSDs, no X11 or Wayland display.
pub fn headless(set: impl Fn(&str) -> bool) -> bool {
    if set("SSH_CONNECTION") || set("SSH_TTY") {
        return true;
    }
    let desktop_by_variable = cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ));
    desktop_by_variable && !set("DISPLAY") && !set("WAYLAND_DISPLAY")
}

/// The `WWW-Authenticate` value that says a resource refused the access token it was given.
pub const REFUSED: &str = "Bearer error=\"invalid_token\"";

/// [`operate`], after telling the client what the resource answered: `challenges` are
/// `WWW-Authenticate` values of a 401 or 403 (`tenure token --refused` sends [`REFUSED`], so
/// the token printed last is never printed again).
pub async fn operate_after(
    context: &Context,
    name: &str,
    op: Operation,
    browser: BrowserMode,
    challenges: Vec<String>,
) -> Result<(), Failure> {
    operate_with(context, name, op, browser, LoginFlow::Browser, challenges).await
}

async fn operate_with(
    context: &Context,
    name: &str,
    op: Operation,
    browser: BrowserMode,
    flow: LoginFlow,
    challenges: Vec<String>,
) -> Result<(), Failure> {
    // Whatever this command changes, no later `tenure token` may print what it replaces.
    forget_handout(context, name)?;
    let mut profile = load(context, name).await?;
    let key_entry_name = profile.private_key_keychain.clone();
    if op == Operation::ForgetLocal {
        // Nothing is sent, so no secret is needed: a missing variable must not stand in the
        // way of removing the record.
        profile.client_secret_env = None;
        profile.initial_access_token_env = None;
        profile.idp_client_secret_env = None;
        if profile.private_key_file.take().is_some()
            | profile.private_key_env.take().is_some()
            | profile.private_key_keychain.take().is_some()
        {
            profile.auth_method = None;
        }
    }
    let tenure = start(context, &profile, browser, flow).await?;
    // A device login says what it waits for once the server has answered (see `start`).
    let browser_login = op == Operation::Login && flow == LoginFlow::Browser;
    let waiting = (browser_login && !context.json).then(|| {
        eprintln!(
            "waiting for the browser to come back to the loopback callback (Ctrl-C gives up)…"
        );
        spinner()
    });
    let result = if challenges.is_empty() {
        let result = tenure.run(op).await;
        if let Some(spinner) = waiting.flatten() {
            spinner.abort();
            eprint!("\r\x1b[2K");
        }
        result
    } else {
        match tenure.challenge(None, challenges).await {
            Ok(Verdict::Retry(token)) => Ok(Some(token)),
            Ok(Verdict::StepUp { scopes }) => Err(TokenError::LoginRequired {
                reason: format!("the resource wants the scopes {}", scopes.join(" ")),
            }),
            Ok(Verdict::LoginRequired { reason }) => Err(TokenError::LoginRequired { reason }),
            Ok(verdict) => Err(TokenError::from(Error::StepUpRefused(format!(
                "{verdict:?}"
            )))),
            Err(error) => Err(error),
        }
    };
    let forgetting = matches!(op, Operation::Forget | Operation::ForgetLocal);
    if !forgetting {
        remember_key(context, &tenure, &mut profile).await?;
        keep_handout(context, name, &tenure);
    }
    let token = match (result, op) {
        (Err(error), Operation::Forget) if matches!(error.core(), Some(Error::Management(_))) => {
            let mut failure = failure_of(name, &error);
            failure.message.push_str(&format!(
                "; `tenure forget {name} --local` removes the local record without asking the server"
            ));
            return Err(failure);
        }
        (Err(error), _) => return Err(failure_of(name, &error)),
        (Ok(token), _) => token,
    };
    match (token, op) {
        (Some(token), Operation::Token) => {
            let text =
                context
                    .printed
                    .render(context.json, name, token.secret(), token.expires_at());
            crate::stdout_text(&text);
            Ok(())
        }
        (_, Operation::Forget | Operation::ForgetLocal) => {
            context
                .store
                .delete_profile(name)
                .await
                .map_err(Failure::other)?;
            // The key's entry goes with the profile that named it (after it: a profile never
            // names an entry that is gone because of a forget that failed half-way).
            if let Some(entry) = key_entry_name {
                key_entry(&entry).delete().map_err(|e| {
                    Failure::other(format!(
                        "`{name}` is forgotten, but its private key is still in the OS keychain \
                         (entry `{entry}` of service `{}`): {e}; then remove the entry with the \
                         keychain's own tool (on Linux `secret-tool clear service {} username \
                         {entry}`)",
                        tenure_keychain::SERVICE,
                        tenure_keychain::SERVICE,
                    ))
                })?;
            }
            let text = if op == Operation::Forget {
                "forgotten: deleted at the server where possible, and locally"
            } else {
                "forgotten locally; nothing was sent to the server"
            };
            say(context, name, text);
            Ok(())
        }
        (token, op) => {
            let text = match (op, token.as_ref().map(AccessToken::expires_at)) {
                (Operation::Login, Some(Some(at))) => {
                    format!("logged in; the access token is valid until {at}")
                }
                (Operation::Login, _) => "logged in".into(),
                (Operation::Renew, _) => "client secret renewed".into(),
                (Operation::Logout, _) => "logged out; the registration is kept".into(),
                _ => "done".into(),
            };
            say(context, name, &text);
            Ok(())
        }
    }
}

/// `tenure replay TRACE…`: plays each recorded trace back to the core and prints a summary;
/// any divergence makes the exit code 3.
pub fn replay(files: &[std::path::PathBuf], json: bool) -> Result<(), Failure> {
    let mut diverged = false;
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::other(format!("cannot read {}: {e}", file.display())))?;
        let summary = tenure_sim::replay::parse(&text)
            .and_then(|trace| tenure_sim::replay::replay(&trace))
            .map_err(|e| Failure::usage(format!("{} is not a valid trace: {e}", file.display())))?;
        diverged |= summary.diverged.is_some();
        if json {
            let mut value = summary.to_json();
            value["file"] = json!(file.display().to_string());
            out!("{value}");
        } else {
            out!(
                "{}: {}, {} requests ({} registrations, {} renewals, {} refreshes)",
                file.display(),
                summary.outcome,
                summary.requests.len(),
                summary.registrations,
                summary.renewals,
                summary.refreshes
            );
            if let Some(error) = &summary.error {
                out!("  error: {error}");
            }
            if let Some(why) = &summary.diverged {
                out!("  diverged: {why}");
            }
        }
    }
    if diverged {
        return Err(Failure::new(exit::DIVERGED, ""));
    }
    Ok(())
}

/// `tenure status [NAME]`.
pub async fn status(context: &Context, name: Option<&str>) -> Result<(), Failure> {
    let name_given = name.is_some();
    let names = match name {
        Some(name) => vec![name.to_string()],
        None => context
            .store
            .list_profiles()
            .await
            .map_err(Failure::other)?
            .into_iter()
            .filter(|name| !tenure_tokio::is_internal_profile(name))
            .collect(),
    };
    let now = context.clock.now();
    let mut rows = Vec::new();
    // Listing every client, one that cannot be read (a secret's variable unset, a key's
    // keychain entry gone) is reported in its place; the others are still shown.
    let mut unusable = Vec::new();
    for name in &names {
        match status_of(context, name).await {
            Ok(status) => rows.push((name.clone(), status)),
            Err(failure) if name_given => return Err(failure),
            Err(failure) => unusable.push((name.clone(), failure)),
        }
    }
    if context.json {
        for (name, status) in &rows {
            out!("{}", status_json(name, status));
        }
        for (name, failure) in &unusable {
            out!("{}", json!({"name": name, "error": failure.message}));
        }
    } else if rows.is_empty() && unusable.is_empty() {
        out!("no clients yet; add one with `tenure add NAME --issuer URL`");
    } else if !rows.is_empty() {
        print_table(&rows, now);
    }
    // Each one is named on stderr, the last as the command's error.
    let Some(((last_name, last), others)) = unusable.split_last() else {
        return Ok(());
    };
    for (name, failure) in others {
        eprintln!("error: `{name}`: {}", failure.message);
    }
    Err(Failure::new(
        last.code,
        format!("`{last_name}`: {}", last.message),
    ))
}

/// The status of the client `name`.
async fn status_of(context: &Context, name: &str) -> Result<Status, Failure> {
    let profile = load(context, name).await?;
    let tenure = start(context, &profile, BrowserMode::Print, LoginFlow::Browser).await?;
    let (status, _) = tenure.status().await.map_err(Failure::other)?;
    Ok(status)
}

fn status_json(name: &str, status: &Status) -> serde_json::Value {
    let time = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
    json!({
        "name": name,
        "identity": status.identity.as_str(),
        "client_id": status.client_id,
        "secret_expires_at": time(status.secret_expires_at),
        "renewal_due": status.renewal_due,
        "access_token_expires_at": time(status.access_token_expires_at),
        "refresh_token": status.has_refresh_token,
        "state": status.lifecycle.as_str(),
    })
}

fn print_table(rows: &[(String, Status)], now: Timestamp) {
    out!(
        "{:<16} {:<15} {:<13} {:<26} {:<22}",
        "NAME",
        "IDENTITY",
        "STATE",
        "SECRET EXPIRES",
        "ACCESS TOKEN"
    );
    for (name, status) in rows {
        let secret = match status.secret_expires_at {
            Some(at) if status.renewal_due => format!("{at} (renew)"),
            Some(at) => at.to_string(),
            None => "never".into(),
        };
        let token = match status.access_token_expires_at {
            Some(at) if at > now => {
                format!("valid until {}", at.to_rfc3339().get(11..16).unwrap_or(""))
            }
            Some(_) if status.has_refresh_token => "expired (refreshable)".into(),
            Some(_) => "expired".into(),
            None if status.has_refresh_token => "refreshable".into(),
            None => "none".into(),
        };
        out!(
            "{:<16} {:<15} {:<13} {:<26} {:<22}",
            name,
            status.identity.as_str(),
            status.lifecycle.as_str(),
            secret,
            token
        );
    }
}

fn say(context: &Context, name: &str, text: &str) {
    if context.json {
        out!("{}", json!({"name": name, "result": text}));
    } else {
        out!("{name}: {text}");
    }
}

fn failure_of(name: &str, error: &TokenError) -> Failure {
    let Some(core) = error.core() else {
        return match error {
            TokenError::LoginRequired { reason } => Failure::new(
                exit::LOGIN_REQUIRED,
                format!("login required for `{name}`: {reason}; run `tenure login {name}`"),
            ),
            other => Failure::other(other),
        };
    };
    let code = if core.is_registration_failure() {
        exit::REGISTRATION_FAILED
    } else {
        exit::FAILURE
    };
    Failure::new(code, format!("`{name}`: {core}"))
}

async fn load(context: &Context, name: &str) -> Result<Profile, Failure> {
    match context
        .store
        .load_profile(name)
        .await
        .map_err(Failure::other)?
    {
        Some(value) => Profile::from_json(name, value).map_err(Failure::other),
        None => Err(Failure::new(
            exit::USAGE,
            format!("no client named `{name}`; add it with `tenure add {name} --issuer URL` (see `tenure status` for the known ones)"),
        )),
    }
}

async fn save(context: &Context, profile: &Profile) -> Result<(), Failure> {
    context
        .store
        .save_profile(&profile.name, profile.to_json())
        .await
        .map_err(Failure::other)
}

async fn start(
    context: &Context,
    profile: &Profile,
    browser: BrowserMode,
    flow: LoginFlow,
) -> Result<Tenure, Failure> {
    let mut config = profile.config().map_err(Failure::other)?;
    config.login_flow = flow;
    if let Some(ttl) = lease_ttl_override()? {
        config.lease_ttl = ttl;
    }
    let mut builder = Tenure::builder(config, context.store.clone())
        .browser(browser)
        .clock(context.clock)
        .timeouts(context.timeouts)
        .on_login_url(|url| eprintln!("open: {url}"))
        .on_notice(|notice| match notice {
            Notice::Warning {
                message: warning, ..
            } => eprintln!("warning: {}", in_cli_words(warning)),
            Notice::DeviceCode {
                verification_uri,
                user_code,
                verification_uri_complete,
                expires_at,
            } => {
                // RFC 8628 §3.3: the URI and the code, each on a line of its own so that
                // they can be copied (and read by scripts); the complete URI as a shortcut.
                eprintln!("to log in, open this address on any device and enter the code:");
                eprintln!("visit: {verification_uri}");
                eprintln!("code: {user_code}");
                if let Some(complete) = verification_uri_complete {
                    eprintln!("or visit (code included): {complete}");
                }
                eprintln!(
                    "waiting for the login to be approved, until {} (Ctrl-C gives up)…",
                    expires_at.to_rfc3339()
                );
            }
            _ => {}
        });
    if let Some(key) = &profile.key {
        builder = builder.stored_under(key.clone());
    }
    if let Some(recorder) = recorder(context, profile)? {
        builder = builder.recorder(recorder);
    }
    builder.build().await.map_err(Failure::other)
}

/// The variable that shortens the store lease taken around registration and renewal (the
/// core's `lease_ttl`, 30 s by default), so that tests can see a killed lease holder's lease
/// lapse. Hidden: for tests only, like `--now`. A duration such as `3s`.
pub const LEASE_TTL_VAR: &str = "TENURE_LEASE_TTL";

fn lease_ttl_override() -> Result<Option<Duration>, Failure> {
    std::env::var_os(LEASE_TTL_VAR)
        .map(|text| parse_lease_ttl(&text.to_string_lossy()))
        .transpose()
}

fn parse_lease_ttl(text: &str) -> Result<Duration, Failure> {
    match Duration::parse(text) {
        Some(ttl) if ttl.as_millis() > 0 => Ok(ttl),
        _ => Err(Failure::usage(format!(
            "{LEASE_TTL_VAR}=`{text}` is not a positive duration such as 3s"
        ))),
    }
}

/// The recorder for `--record FILE`; a new file starts with the `config` line.
fn recorder(context: &Context, profile: &Profile) -> Result<Option<Recorder>, Failure> {
    let Some(path) = &context.record else {
        return Ok(None);
    };
    let fresh = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    let recorder = Recorder::open(path)
        .map_err(|e| Failure::other(format!("cannot write the trace {}: {e}", path.display())))?;
    if fresh {
        recorder.config(profile.trace_config());
    }
    Ok(Some(recorder))
}

/// A spinner on stderr while a login waits, when stderr is a terminal (never in a pipe or a
/// log); the caller aborts it and clears the line.
fn spinner() -> Option<tokio::task::JoinHandle<()>> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async {
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        for frame in FRAMES.iter().cycle() {
            eprint!("\r{frame} waiting…");
            tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        }
    }))
}

/// Removes the handout file of `name`: a file that cannot be removed could print a token the
/// store has moved past, so that stops the command.
fn forget_handout(context: &Context, name: &str) -> Result<(), Failure> {
    match &context.handouts {
        Some(handouts) => handouts.remove(name).map_err(|e| {
            Failure::other(format!(
                "cannot remove the handout file of `{name}` in the store's handouts directory ({e}); remove that directory by hand and run the command again"
            ))
        }),
        None => Ok(()),
    }
}

/// Writes the handout file of `name` when the client holds a token with a deadline; after
/// [`remember_key`], whose round trip lets the driver publish its last state. A file that
/// cannot be written only costs the next `tenure token` the full path.
fn keep_handout(context: &Context, name: &str, tenure: &Tenure) {
    if let (Some(handouts), Some((token, Some(until)))) = (&context.handouts, tenure.cached()) {
        let _ = handouts.write(name, token.secret(), token.expires_at(), until);
    }
}

/// Keeps the record's key in the profile, so a resource-configured client finds it again.
async fn remember_key(
    context: &Context,
    tenure: &Tenure,
    profile: &mut Profile,
) -> Result<(), Failure> {
    let (_, record) = tenure.status().await.map_err(Failure::other)?;
    let key = record.map(|r| r.key);
    if key.is_some() && key != profile.key {
        profile.key = key;
        save(context, profile).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ssh_session_or_a_missing_display_is_headless() {
        let with = |names: &'static [&'static str]| move |name: &str| names.contains(&name);
        assert!(headless(with(&["SSH_CONNECTION", "DISPLAY"])));
        assert!(headless(with(&["SSH_TTY"])));
        assert!(!headless(with(&["DISPLAY"])));
        assert!(!headless(with(&["WAYLAND_DISPLAY"])));
        // Elsewhere (macOS, Windows) a desktop needs no variable.
        assert_eq!(headless(with(&[])), cfg!(target_os = "linux"));
    }

    #[test]
    fn a_lease_ttl_override_is_a_positive_duration() {
        assert_eq!(parse_lease_ttl("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_lease_ttl("2m").unwrap(), Duration::from_secs(120));
        for wrong in ["0s", "soon", ""] {
            let failure = parse_lease_ttl(wrong).unwrap_err();
            assert_eq!(failure.code, exit::USAGE);
            assert!(
                failure.message.contains(LEASE_TTL_VAR),
                "{}",
                failure.message
            );
        }
    }

    #[test]
    fn settings_become_the_options_that_set_them() {
        let message = Error::NoRegistrationMethod {
            issuer: "https://as.example".into(),
        }
        .to_string();
        let shown = in_cli_words(&message);
        assert!(
            shown.contains("`--client-id`") && shown.contains("`--cimd-url`"),
            "{shown}"
        );
        assert!(!shown.contains("setting"), "{shown}");
        let issuer = in_cli_words("bad setting `issuer`: not a URL");
        assert_eq!(issuer, "bad `--issuer`: not a URL");
    }

    #[test]
    fn exit_codes_follow_the_error_kind() {
        let expired = Error::SecretExpired {
            at: Timestamp::EPOCH,
            reason: "x".into(),
        };
        let failure = |error: Error| failure_of("n", &TokenError::from(error)).code;
        assert_eq!(failure(expired), exit::REGISTRATION_FAILED);
        assert_eq!(failure(Error::Protocol("x".into())), exit::FAILURE);
        assert_eq!(
            failure(Error::LoginRequired("x".into())),
            exit::LOGIN_REQUIRED
        );
    }

    #[test]
    fn status_json_has_the_documented_fields() {
        let status = Status {
            identity: tenure_core::IdentityKind::Dcr,
            client_id: Some("c".into()),
            secret_expires_at: Some(Timestamp::from_unix_seconds(0)),
            renewal_due: true,
            access_token_expires_at: None,
            has_refresh_token: false,
            lifecycle: tenure_core::Lifecycle::Expiring,
        };
        let value = status_json("n", &status);
        for field in [
            "name",
            "identity",
            "client_id",
            "secret_expires_at",
            "renewal_due",
            "access_token_expires_at",
        ] {
            assert!(value.get(field).is_some(), "{field}");
        }
        assert_eq!(value["identity"], "dcr");
        assert_eq!(value["secret_expires_at"], "1970-01-01T00:00:00Z");
        assert_eq!(value["access_token_expires_at"], serde_json::Value::Null);
    }
}
