//! `registry-login`: how a command-line tool reaches a private package registry with OAuth by
//! embedding Tenure, in the shape users of such tools expect (`tool registry login URL`).
//!
//! ```text
//!   config.json (0600)        registry URL ─▶ issuer, scopes, client id, callback port
//!        │
//!        ▼
//!   RegistryClient ── Tenure (sled store, 0700) ── the authorization server
//!        │  bearer()   registers, logs in, refreshes 30 s before expiry, renews the secret
//!        ▼
//!   reqwest + BearerAuth (tenure-reqwest): the token on every request; a refused one is
//!   replaced and the request sent again; what is still refused becomes a message
//! ```
//!
//! Everything OAuth is Tenure's; this crate keeps the configuration, picks the key the
//! credentials are stored under, and turns outcomes into what a person reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenure_core::config::{loopback_redirect_uri, DEFAULT_REDIRECT_PORT};
use tenure_core::endpoint::{sanitize, secure_endpoint};
use tenure_reqwest::BearerAuth;
use tenure_store::Store;
use tenure_tokio::{AccessToken, BrowserMode, ClientConfig, Tenure, TokenError};

/// What can go wrong, each with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The registry has no login configured.
    #[error("no login is configured for {registry}; run `registry-login login {registry} --issuer ISSUER`")]
    NotConfigured {
        /// The registry URL.
        registry: String,
    },
    /// The registry's tokens are missing or can no longer be refreshed.
    #[error("not logged in to {registry} ({reason}); run `registry-login login {registry}`")]
    LoginRequired {
        /// The registry URL.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A URL breaks the transport rules (https except loopback).
    #[error("{0}")]
    InsecureUrl(String),
    /// The registry refused the token.
    #[error("the registry at {registry} refused the token (401); log in again with `registry-login login {registry}`")]
    Unauthorized {
        /// The registry URL.
        registry: String,
    },
    /// The registry knows the user but denies access.
    #[error("the registry at {registry} denied access to {path} (403): the account lacks permission; ask the registry's administrators, or log in with another account (`registry-login logout {registry}`, then `login`)")]
    Forbidden {
        /// The registry URL.
        registry: String,
        /// What was asked for.
        path: String,
    },
    /// Tenure failed (registration, renewal, the server).
    #[error("{0}")]
    Tenure(String),
    /// The configuration file could not be read or written.
    #[error("the configuration file {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// The registry could not be reached.
    #[error("cannot reach the registry at {registry}: {reason}")]
    Unreachable {
        /// The registry URL.
        registry: String,
        /// Why.
        reason: String,
    },
}

/// How one registry is logged in to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryLogin {
    /// The authorization server's issuer the tokens are bound to.
    pub issuer: String,
    /// Scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A pre-registered client id, if the registry hands one out.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The loopback callback port.
    #[serde(default = "default_port")]
    pub redirect_port: u16,
}

fn default_port() -> u16 {
    DEFAULT_REDIRECT_PORT
}

/// The configuration file: one entry per registry URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// Registry URL → its login.
    pub registries: BTreeMap<String, RegistryLogin>,
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<ConfigFile, LoginError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LoginError::Config {
                path: path.display().to_string(),
                reason: format!("it is not valid ({e}); fix it or delete it and log in again"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(LoginError::Config {
                path: path.display().to_string(),
                reason: format!("cannot read it ({e})"),
            }),
        }
    }

    /// Writes the file readable by its owner only, atomically (a temporary file renamed over
    /// it), in a directory readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), LoginError> {
        let fail = |e: std::io::Error| LoginError::Config {
            path: path.display().to_string(),
            reason: format!("cannot write it ({e}); check the directory's permissions"),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(fail)?;
        }
        let temporary = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| LoginError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_private(&temporary, &bytes).map_err(fail)?;
        std::fs::rename(&temporary, path).map_err(fail)
    }
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The name the registry's credentials are stored under: SHA-256 of the registry URL and the
/// issuer joined by a newline (which no URL contains), so `ab`+`c` and `a`+`bc` never meet,
/// and a change of issuer never finds the old issuer's tokens.
pub fn credential_name(registry: &str, issuer: &str) -> String {
    let digest = Sha256::digest(format!("{registry}\n{issuer}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("registry-{hex}")
}

/// Checks a registry or issuer URL against the transport rules (https except loopback).
pub fn check_url(what: &str, url: &str) -> Result<(), LoginError> {
    secure_endpoint(url)
        .map(drop)
        .map_err(|e| LoginError::InsecureUrl(format!("the {what} {e}")))
}

/// A registry's OAuth client: hands out bearer tokens and fetches from the registry.
pub struct RegistryClient {
    registry: String,
    tenure: Tenure,
    http: ClientWithMiddleware,
}

impl RegistryClient {
    /// Starts Tenure for `registry` as configured in `login`, on `store`.
    pub async fn start(
        registry: &str,
        login: &RegistryLogin,
        store: Arc<dyn Store>,
        browser: BrowserMode,
    ) -> Result<RegistryClient, LoginError> {
        check_url("registry URL", registry)?;
        check_url("issuer", &login.issuer)?;
        let mut config =
            ClientConfig::for_issuer(credential_name(registry, &login.issuer), &login.issuer);
        config.client_name = "registry-login".into();
        config.scopes = login.scopes.clone();
        config.client_id = login.client_id.clone();
        config.redirect_uri = loopback_redirect_uri(login.redirect_port);
        config.software_id = Some("registry-login".into());
        let tenure = Tenure::builder(config, store)
            .browser(browser)
            .on_login_url(|url| eprintln!("open: {url}"))
            .on_notice(|notice| {
                if let tenure_tokio::Notice::Warning {
                    message: warning, ..
                } = notice
                {
                    eprintln!("warning: {warning}");
                }
            })
            .build()
            .await
            .map_err(|e| LoginError::Tenure(e.to_string()))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| LoginError::Tenure(e.to_string()))?;
        Ok(RegistryClient {
            registry: registry.trim_end_matches('/').to_string(),
            http: reqwest_middleware::ClientBuilder::new(http)
                .with(BearerAuth::new(tenure.clone()))
                .build(),
            tenure,
        })
    }

    /// Logs in through the browser.
    pub async fn login(&self) -> Result<(), LoginError> {
        self.tenure
            .login()
            .await
            .map(drop)
            .map_err(|e| self.failure(e))
    }

    /// A valid bearer token, refreshed transparently when it expires within 30 s; never opens
    /// a browser (non-interactive): without a login it says how to log in.
    pub async fn bearer(&self) -> Result<AccessToken, LoginError> {
        self.tenure.token().await.map_err(|e| self.failure(e))
    }

    /// Drops the tokens; the registration and the configuration stay.
    pub async fn logout(&self) -> Result<(), LoginError> {
        self.tenure.logout().await.map_err(|e| self.failure(e))
    }

    /// Fetches `path` from the registry with the bearer token (a token the registry refuses
    /// is replaced and the request sent again); what is still refused becomes an error that
    /// says what to do.
    pub async fn get(&self, path: &str) -> Result<String, LoginError> {
        let url = format!("{}/{}", self.registry, path.trim_start_matches('/'));
        let unreachable = |e: reqwest::Error| LoginError::Unreachable {
            registry: self.registry.clone(),
            reason: if e.is_timeout() {
                "timed out".into()
            } else {
                "the connection failed".into()
            },
        };
        let response = match self.http.get(&url).send().await {
            Ok(response) => response,
            Err(reqwest_middleware::Error::Middleware(cause)) => {
                return Err(match cause.downcast::<TokenError>() {
                    Ok(error) => self.failure(error),
                    Err(other) => LoginError::Tenure(format!("{other:#}")),
                })
            }
            Err(reqwest_middleware::Error::Reqwest(e)) => return Err(unreachable(e)),
        };
        match response.status().as_u16() {
            200..=299 => response.text().await.map_err(unreachable),
            401 => Err(LoginError::Unauthorized {
                registry: self.registry.clone(),
            }),
            403 => Err(LoginError::Forbidden {
                registry: self.registry.clone(),
                path: path.to_string(),
            }),
            status => Err(LoginError::Unreachable {
                registry: self.registry.clone(),
                reason: format!("{} answered HTTP {status}", sanitize(&url)),
            }),
        }
    }

    /// What a person reads when Tenure could not hand out a token.
    fn failure(&self, error: TokenError) -> LoginError {
        match error {
            TokenError::LoginRequired { reason } => LoginError::LoginRequired {
                registry: self.registry.clone(),
                reason,
            },
            other => match other.core() {
                Some(core) => LoginError::Tenure(core.to_string()),
                None => LoginError::Tenure(other.to_string()),
            },
        }
    }
}

/// Where the files live: `$XDG_CONFIG_HOME`/`$XDG_DATA_HOME` (or `~/.config`,
/// `~/.local/share`) under `registry-login`.
pub fn default_dir(xdg: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(xdg).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir).join("registry-login"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(fallback).join("registry-login"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_never_collide_across_the_delimiter() {
        assert_ne!(
            credential_name("https://ab", "c"),
            credential_name("https://a", "bc")
        );
        assert_ne!(
            credential_name("https://r.example.com", "https://one.example.com"),
            credential_name("https://r.example.com", "https://two.example.com"),
            "a change of issuer is a new key (issuer binding)"
        );
        assert_eq!(credential_name("x", "y"), credential_name("x", "y"));
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        assert!(check_url("registry URL", "http://registry.example.com").is_err());
        assert!(check_url("registry URL", "http://127.0.0.1:8080").is_ok());
        assert!(check_url("issuer", "https://auth.example.com").is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn the_configuration_file_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("registry-login-{}", std::process::id()));
        let path = dir.join("config.json");
        let mut config = ConfigFile::default();
        config.registries.insert(
            "https://r.example.com".into(),
            RegistryLogin {
                issuer: "https://auth.example.com".into(),
                scopes: vec!["read".into()],
                client_id: None,
                redirect_port: 9000,
            },
        );
        config.save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
