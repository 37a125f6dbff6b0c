//! Named client configurations (`tenure add NAME …`), kept in the store next to the records.
//!
//! A profile holds what the user typed, never a secret: a client secret or an initial access
//! token is named by the environment variable that holds it, and a private key by its file
//! or variable, and read when it is needed, so the store does not collect one more copy of it.
//! A private key imported into the OS keychain (`--private-key-keychain`) is named by its
//! keychain entry, read from the keychain each time, never from a file.
//! A jwt-bearer client's assertion (a workload token, an ID token) is named by its file,
//! variable or command as well, and read afresh by the client at every grant request.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tenure_core::config::{loopback_redirect_uri, DEFAULT_REDIRECT_PORT};
use tenure_core::{
    AssertionAudience, AssertionSource, AuthMethod, BearerAssertion, ClientConfig, ClientKey,
    Duration, Grant, IdentityProvider, Secret,
};

/// One `tenure add`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The name the user chose.
    pub name: String,
    /// `--issuer`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `--resource`.
    #[serde(default)]
    pub resource: Option<String>,
    /// `--scope`, repeatable.
    #[serde(default)]
    pub scope: Vec<String>,
    /// `--client-id`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `--client-secret-env`: the variable holding the pre-registered secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// `--private-key-file`: the PKCS#8 PEM file of the key for `private_key_jwt`, as an
    /// absolute path.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// `--private-key-env`: the variable holding that key's PEM text instead.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// `--private-key-keychain`: the name of the keychain entry (service
    /// [`tenure_keychain::SERVICE`]) holding that key's PEM text instead, imported from the
    /// file or variable by `tenure add`: see [`keychain_entry_name`].
    #[serde(default)]
    pub private_key_keychain: Option<String>,
    /// `--private-key-id`: the `kid` of the assertions' JWS header.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// `--jwks-uri`: where the key of a dynamically registered client is published.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// `--assertion-audience`: what the assertions' `aud` names.
    #[serde(default)]
    pub assertion_audience: Option<AssertionAudience>,
    /// `--cimd-url`.
    #[serde(default)]
    pub cimd_url: Option<String>,
    /// `--auth-method`.
    #[serde(default)]
    pub auth_method: Option<AuthMethod>,
    /// `--grant`.
    #[serde(default = "default_grant")]
    pub grant: Grant,
    /// `--redirect-port`.
    #[serde(default = "default_port")]
    pub redirect_port: u16,
    /// `--renew-within`, in seconds.
    #[serde(default)]
    pub renew_within_secs: Option<i64>,
    /// `--initial-access-token-env`: the variable holding the initial access token.
    #[serde(default)]
    pub initial_access_token_env: Option<String>,
    /// `--assertion-file`, `--assertion-env` or `--assertion-command`: where the workload
    /// identity token of `--grant jwt-bearer` is read (SEP-1933).
    #[serde(default)]
    pub assertion: Option<AssertionSource>,
    /// `--idp-token-endpoint`: the enterprise identity provider that exchanges the ID token
    /// for an ID-JAG (SEP-990).
    #[serde(default)]
    pub idp_token_endpoint: Option<String>,
    /// `--idp-issuer`: that identity provider's issuer instead, whose metadata names its
    /// token endpoint.
    #[serde(default)]
    pub idp_issuer: Option<String>,
    /// `--idp-client-id`: the client id at that identity provider.
    #[serde(default)]
    pub idp_client_id: Option<String>,
    /// `--idp-client-secret-env`: the variable holding the secret there.
    #[serde(default)]
    pub idp_client_secret_env: Option<String>,
    /// `--id-token-file`, `--id-token-env` or `--id-token-command`: where the user's ID
    /// token is read.
    #[serde(default)]
    pub id_token: Option<AssertionSource>,
    /// The key the record was last stored under, so a client configured by resource finds
    /// its record again without discovering first.
    #[serde(default)]
    pub key: Option<ClientKey>,
}

/// The name of a new keychain entry for the private key of the profile `name`:
/// `private-key:NAME/` and a suffix no entry had before (this process and the time), so that
/// profiles of one name in two stores never share (or overwrite) one entry.
pub fn keychain_entry_name(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("private-key:{name}/{:x}-{nanos:x}", std::process::id())
}

/// `word` as one shell word: as it is when it holds only characters no shell treats
/// specially, else in single quotes.
fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn default_grant() -> Grant {
    Grant::AuthorizationCode
}

fn default_port() -> u16 {
    DEFAULT_REDIRECT_PORT
}

/// A profile that cannot be turned into a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A named environment variable is not set.
    #[error("the environment variable {variable} (the {what} of `{name}`) is not set; export it and run again")]
    MissingVariable {
        /// The variable.
        variable: String,
        /// What it holds.
        what: &'static str,
        /// The profile.
        name: String,
    },
    /// The private key file cannot be read.
    #[error("cannot read the private key file {path} of `{name}` ({reason}); it must hold a PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`): fix --private-key-file with `tenure add {name} …`")]
    KeyFile {
        /// The file.
        path: String,
        /// Why, from the operating system; never the file's content.
        reason: String,
        /// The profile.
        name: String,
    },
    /// The private key's keychain entry cannot be read.
    #[error("cannot read the private key of `{name}` from the OS keychain: {reason}; or keep the key in a file readable only by you (`tenure forget {name} --local`, then `tenure add` it with --private-key-file alone): Tenure never reads it from a file on its own")]
    KeychainUnreachable {
        /// Why, without the entry's value.
        reason: tenure_keychain::EntryError,
        /// The profile.
        name: String,
    },
    /// The private key's keychain entry is gone (removed by hand, or another keychain).
    #[error("the private key of `{name}` is no longer in the OS keychain (entry `{entry}` of service `{service}`); import it again: `tenure forget {name} --local`, then `{add}`")]
    KeychainKeyMissing {
        /// The profile.
        name: String,
        /// The entry.
        entry: String,
        /// The keychain service.
        service: String,
        /// The `tenure add` command that imports the key again.
        add: String,
    },
    /// The private key's keychain entry holds no usable key.
    #[error("the keychain entry `{entry}` of `{name}` holds no usable private key: {reason}; import a PKCS#8 PEM key again: `tenure forget {name} --local`, then `{add}`")]
    KeychainKeyUnusable {
        /// The profile.
        name: String,
        /// The entry.
        entry: String,
        /// Why, without the entry's value.
        reason: String,
        /// The `tenure add` command that imports the key again.
        add: String,
    },
    /// The stored profile does not parse.
    #[error("the stored configuration of `{name}` is unreadable ({reason}); run `tenure add {name} …` again")]
    Corrupt {
        /// The profile.
        name: String,
        /// Why.
        reason: String,
    },
}

impl Profile {
    /// Reads a stored profile.
    pub fn from_json(name: &str, value: serde_json::Value) -> Result<Self, ProfileError> {
        serde_json::from_value(value).map_err(|e| ProfileError::Corrupt {
            name: name.to_string(),
            reason: e.to_string(),
        })
    }

    /// The profile as stored.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The core's configuration, with secrets read from their variables (the seed for PKCE
    /// and `state` is drawn when the client is built).
    pub fn config(&self) -> Result<ClientConfig, ProfileError> {
        let mut config = ClientConfig::for_issuer(&self.name, "");
        config.issuer = self.issuer.clone();
        config.resource = self.resource.clone();
        config.scopes = self.scope.clone();
        config.client_id = self.client_id.clone();
        config.client_secret = self.secret_from(&self.client_secret_env, "client secret")?;
        // A file or variable comes first: `tenure add` reads one of them to import the key
        // into the keychain; the profile it stores keeps the entry alone.
        config.private_key = match (
            &self.private_key_file,
            &self.private_key_env,
            &self.private_key_keychain,
        ) {
            (Some(path), _, _) => Some(self.key_from_file(path)?),
            (None, variable @ Some(_), _) => self.secret_from(variable, "private key")?,
            (None, None, Some(entry)) => Some(self.key_from_keychain(entry)?),
            (None, None, None) => None,
        };
        config.private_key_id = self.private_key_id.clone();
        config.jwks_uri = self.jwks_uri.clone();
        if let Some(audience) = self.assertion_audience {
            config.assertion_audience = audience;
        }
        config.cimd_url = self.cimd_url.clone();
        config.auth_method = self.auth_method;
        config.grant = self.grant;
        config.redirect_uri = loopback_redirect_uri(self.redirect_port);
        if let Some(seconds) = self.renew_within_secs {
            config.renew_within = Duration::from_secs(seconds);
        }
        config.initial_access_token =
            self.secret_from(&self.initial_access_token_env, "initial access token")?;
        config.software_id = Some("tenure-cli".into());
        config.software_version = Some(env!("CARGO_PKG_VERSION").into());
        config.bearer_assertion = self.bearer_assertion()?;
        Ok(config)
    }

    /// The jwt-bearer grant's assertion: an ID token exchanged at the identity provider when
    /// one is named, else the workload token. Only the identity provider's secret is read
    /// here; the tokens themselves are read by the client when it needs them.
    fn bearer_assertion(&self) -> Result<Option<BearerAssertion>, ProfileError> {
        if self.idp_token_endpoint.is_some() || self.idp_issuer.is_some() {
            let secret = self.secret_from(
                &self.idp_client_secret_env,
                "client secret at the identity provider",
            )?;
            // A missing ID token source or client id is the core's to report, in its words.
            let id_token = self
                .id_token
                .clone()
                .unwrap_or(AssertionSource::File(String::new()));
            let client_id = self.idp_client_id.clone().unwrap_or_default();
            // Known by its token endpoint, its issuer, or both (the endpoint is then used).
            let mut idp = IdentityProvider::discovered(String::new(), client_id, secret, id_token);
            idp.issuer = self.idp_issuer.clone();
            idp.token_endpoint = self.idp_token_endpoint.clone();
            return Ok(Some(BearerAssertion::Enterprise(idp)));
        }
        Ok(self.assertion.clone().map(BearerAssertion::Workload))
    }

    /// The `client` object of a trace's `config` line (design §7): the options of `tenure add`
    /// with dashes as underscores. Secrets are not written; placeholders stand in for them.
    pub fn trace_config(&self) -> serde_json::Value {
        let grant = match self.grant {
            // The option's value, not the grant type's URN.
            Grant::JwtBearer => "jwt_bearer",
            other => other.as_str(),
        };
        let mut client = serde_json::json!({
            "name": self.name,
            "scope": self.scope,
            "grant": grant,
            "redirect_port": self.redirect_port,
        });
        let mut set = |name: &str, value: Option<serde_json::Value>| {
            if let Some(value) = value {
                client[name] = value;
            }
        };
        set("issuer", self.issuer.clone().map(Into::into));
        set("resource", self.resource.clone().map(Into::into));
        set("client_id", self.client_id.clone().map(Into::into));
        set("cimd_url", self.cimd_url.clone().map(Into::into));
        set("auth_method", self.auth_method.map(|m| m.as_str().into()));
        set("renew_within", self.renew_within_secs.map(Into::into));
        set(
            "client_secret",
            self.client_secret_env
                .as_ref()
                .map(|_| "recorded-client_secret-0".into()),
        );
        set(
            "private_key_id",
            self.private_key_id.clone().map(Into::into),
        );
        set("jwks_uri", self.jwks_uri.clone().map(Into::into));
        set(
            "assertion_audience",
            self.assertion_audience.map(|audience| {
                match audience {
                    AssertionAudience::Issuer => "issuer",
                    _ => "token_endpoint",
                }
                .into()
            }),
        );
        set(
            "private_key",
            self.has_private_key()
                .then(|| "recorded-private_key-0".into()),
        );
        set(
            "initial_access_token",
            self.initial_access_token_env
                .as_ref()
                .map(|_| "recorded-initial_access_token-0".into()),
        );
        // Where the jwt-bearer tokens are read names no secret; the tokens are not written.
        let source = |prefix: &str, source: &Option<AssertionSource>| match source {
            Some(AssertionSource::File(path)) => Some((format!("{prefix}_file"), json!(path))),
            Some(AssertionSource::Env(name)) => Some((format!("{prefix}_env"), json!(name))),
            Some(AssertionSource::Command(argv)) => {
                Some((format!("{prefix}_command"), json!(argv.join(" "))))
            }
            _ => None,
        };
        for (name, value) in [
            source("assertion", &self.assertion),
            source("id_token", &self.id_token),
        ]
        .into_iter()
        .flatten()
        {
            set(&name, Some(value));
        }
        set(
            "idp_token_endpoint",
            self.idp_token_endpoint.clone().map(Into::into),
        );
        set("idp_issuer", self.idp_issuer.clone().map(Into::into));
        set("idp_client_id", self.idp_client_id.clone().map(Into::into));
        set(
            "idp_client_secret",
            self.idp_client_secret_env
                .as_ref()
                .map(|_| "recorded-idp_client_secret-0".into()),
        );
        client
    }

    /// Whether the profile names a private key, in a file, a variable or the keychain.
    pub fn has_private_key(&self) -> bool {
        self.private_key_file.is_some()
            || self.private_key_env.is_some()
            || self.private_key_keychain.is_some()
    }

    /// The PEM text of the keychain entry `entry`, checked to be a key Tenure can sign with,
    /// so that a damaged entry is named as the keychain's, not as a bad setting.
    fn key_from_keychain(&self, entry: &str) -> Result<Secret, ProfileError> {
        let keychain = tenure_keychain::SecretEntry::new(tenure_keychain::SERVICE, entry);
        let unusable = |reason: String| ProfileError::KeychainKeyUnusable {
            name: self.name.clone(),
            entry: entry.to_string(),
            reason,
            add: self.add_command(),
        };
        let pem = match keychain.read() {
            Ok(Some(pem)) => pem,
            Ok(None) => {
                return Err(ProfileError::KeychainKeyMissing {
                    name: self.name.clone(),
                    entry: entry.to_string(),
                    service: keychain.service().to_string(),
                    add: self.add_command(),
                })
            }
            Err(reason @ tenure_keychain::EntryError::Foreign { .. }) => {
                return Err(unusable(reason.to_string()))
            }
            Err(reason) => {
                return Err(ProfileError::KeychainUnreachable {
                    reason,
                    name: self.name.clone(),
                })
            }
        };
        tenure_core::AssertionKey::from_pkcs8_pem(&pem, None)
            .map_err(|e| unusable(e.to_string()))?;
        Ok(pem)
    }

    /// The `tenure add` command that makes this profile again, its private key imported into
    /// the keychain from `KEY.pem` (the key's file, which the user supplies): the advice of
    /// an error about the keychain entry.
    pub fn add_command(&self) -> String {
        let mut words = vec!["tenure".to_string(), "add".into(), quoted(&self.name)];
        let mut option = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                words.push(format!("--{flag}"));
                words.push(quoted(&value));
            }
        };
        option("issuer", self.issuer.clone());
        option("resource", self.resource.clone());
        for scope in &self.scope {
            option("scope", Some(scope.clone()));
        }
        option("client-id", self.client_id.clone());
        option("client-secret-env", self.client_secret_env.clone());
        option("private-key-id", self.private_key_id.clone());
        option("jwks-uri", self.jwks_uri.clone());
        option(
            "assertion-audience",
            self.assertion_audience.map(|audience| {
                match audience {
                    AssertionAudience::Issuer => "issuer",
                    _ => "token_endpoint",
                }
                .to_string()
            }),
        );
        option("cimd-url", self.cimd_url.clone());
        option("auth-method", self.auth_method.map(|m| m.as_str().into()));
        option(
            "grant",
            Some(
                match self.grant {
                    Grant::JwtBearer => "jwt_bearer",
                    other => other.as_str(),
                }
                .into(),
            ),
        );
        option(
            "redirect-port",
            (self.redirect_port != DEFAULT_REDIRECT_PORT).then(|| self.redirect_port.to_string()),
        );
        option(
            "renew-within",
            self.renew_within_secs.map(|s| format!("{s}s")),
        );
        option(
            "initial-access-token-env",
            self.initial_access_token_env.clone(),
        );
        for (prefix, source) in [("assertion", &self.assertion), ("id-token", &self.id_token)] {
            match source {
                Some(AssertionSource::File(path)) => {
                    option(&format!("{prefix}-file"), Some(path.clone()))
                }
                Some(AssertionSource::Env(name)) => {
                    option(&format!("{prefix}-env"), Some(name.clone()))
                }
                Some(AssertionSource::Command(argv)) => {
                    option(&format!("{prefix}-command"), Some(argv.join(" ")))
                }
                _ => {}
            }
        }
        option("idp-token-endpoint", self.idp_token_endpoint.clone());
        option("idp-issuer", self.idp_issuer.clone());
        option("idp-client-id", self.idp_client_id.clone());
        option("idp-client-secret-env", self.idp_client_secret_env.clone());
        words.extend(["--private-key-file".into(), "KEY.pem".into()]);
        words.push("--private-key-keychain".into());
        words.join(" ")
    }

    /// The PEM text of the private key file. Only the operating system's reason goes into an
    /// error, never a byte of the file.
    fn key_from_file(&self, path: &std::path::Path) -> Result<Secret, ProfileError> {
        let error = |reason: String| ProfileError::KeyFile {
            path: path.display().to_string(),
            reason,
            name: self.name.clone(),
        };
        let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| error("it is not text; a DER key must be converted to PEM".into()))
    }

    fn secret_from(
        &self,
        variable: &Option<String>,
        what: &'static str,
    ) -> Result<Option<Secret>, ProfileError> {
        let Some(variable) = variable else {
            return Ok(None);
        };
        match std::env::var(variable) {
            Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
            _ => Err(ProfileError::MissingVariable {
                variable: variable.clone(),
                what,
                name: self.name.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            name: "reg".into(),
            issuer: Some("https://as.example.com".into()),
            resource: None,
            scope: vec!["read".into()],
            client_id: None,
            client_secret_env: None,
            private_key_file: None,
            private_key_env: None,
            private_key_keychain: None,
            private_key_id: None,
            jwks_uri: None,
            assertion_audience: None,
            cimd_url: None,
            auth_method: Some(AuthMethod::ClientSecretPost),
            grant: Grant::ClientCredentials,
            redirect_port: 9123,
            renew_within_secs: Some(3600),
            initial_access_token_env: None,
            assertion: None,
            idp_token_endpoint: None,
            idp_issuer: None,
            idp_client_id: None,
            idp_client_secret_env: None,
            id_token: None,
            key: None,
        }
    }

    #[test]
    fn round_trips_through_json_and_becomes_a_configuration() {
        let profile = profile();
        let back = Profile::from_json("reg", profile.to_json()).unwrap();
        assert_eq!(back, profile);
        let config = back.config().unwrap();
        assert_eq!(config.redirect_uri, "http://127.0.0.1:9123/callback");
        assert_eq!(config.renew_within, Duration::from_secs(3600));
        assert_eq!(config.grant, Grant::ClientCredentials);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_missing_secret_variable_says_which() {
        let mut profile = profile();
        profile.client_id = Some("id".into());
        profile.client_secret_env = Some("TENURE_TEST_SURELY_UNSET_VARIABLE".into());
        let error = profile.config().unwrap_err().to_string();
        assert!(
            error.contains("TENURE_TEST_SURELY_UNSET_VARIABLE"),
            "{error}"
        );
    }

    #[test]
    fn a_private_key_file_is_read_when_needed_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("tenure-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.pem");
        // A fixed P-256 key: the scalar 1 is a valid (if useless) private key.
        let mut scalar = [0u8; 32];
        scalar[31] = 1;
        let pem = {
            use p256::pkcs8::{EncodePrivateKey, LineEnding};
            p256::ecdsa::SigningKey::from_slice(&scalar)
                .unwrap()
                .to_pkcs8_pem(LineEnding::LF)
                .unwrap()
                .to_string()
        };
        std::fs::write(&path, &pem).unwrap();

        let mut profile = profile();
        profile.client_id = Some("machine".into());
        profile.auth_method = Some(AuthMethod::PrivateKeyJwt);
        profile.private_key_file = Some(path.clone());
        profile.private_key_id = Some("k1".into());
        let stored = profile.to_json().to_string();
        assert!(
            !stored.contains("PRIVATE KEY"),
            "the profile keeps the path only"
        );
        let config = profile.config().unwrap();
        assert!(config.validate().is_ok());
        assert_eq!(config.private_key.as_ref().unwrap().expose(), pem);
        assert!(!format!("{config:?}").contains("PRIVATE KEY"));

        std::fs::write(&path, "not a key: s3cr3t").unwrap();
        let error = profile
            .config()
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("BEGIN PRIVATE KEY") && !error.contains("s3cr3t"),
            "{error}"
        );

        std::fs::remove_file(&path).unwrap();
        let error = profile.config().unwrap_err().to_string();
        assert!(
            error.contains("client.pem") && error.contains("PKCS#8"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_jwt_bearer_profile_names_its_sources_and_holds_no_token() {
        let mut profile = profile();
        profile.client_id = Some("workload".into());
        profile.auth_method = Some(AuthMethod::None);
        profile.grant = Grant::JwtBearer;
        profile.assertion = Some(AssertionSource::File("/var/run/token".into()));
        let back = Profile::from_json("reg", profile.to_json()).unwrap();
        assert_eq!(back, profile);
        let config = back.config().unwrap();
        assert!(config.validate().is_ok());
        assert_eq!(
            config.bearer_assertion,
            Some(BearerAssertion::Workload(AssertionSource::File(
                "/var/run/token".into()
            )))
        );

        profile.assertion = None;
        profile.idp_token_endpoint = Some("https://idp.example.com/token".into());
        profile.idp_client_id = Some("idp-client".into());
        profile.idp_client_secret_env = Some("TENURE_TEST_IDP_SECRET_SURELY_UNSET".into());
        profile.id_token = Some(AssertionSource::Command(vec!["get-id-token".into()]));
        let error = profile.config().unwrap_err().to_string();
        assert!(
            error.contains("TENURE_TEST_IDP_SECRET_SURELY_UNSET"),
            "{error}"
        );
        profile.idp_client_secret_env = None;
        let config = profile.config().unwrap();
        assert!(config.validate().is_ok());
        let Some(BearerAssertion::Enterprise(idp)) = config.bearer_assertion else {
            panic!("no identity provider");
        };
        assert_eq!(idp.client_id, "idp-client");
        assert_eq!(
            idp.id_token,
            AssertionSource::Command(vec!["get-id-token".into()])
        );

        // Known by its issuer instead, the identity provider's endpoint is discovered.
        profile.idp_token_endpoint = None;
        profile.idp_issuer = Some("https://idp.example.com".into());
        let Some(BearerAssertion::Enterprise(idp)) = profile.config().unwrap().bearer_assertion
        else {
            panic!("no identity provider");
        };
        assert_eq!(idp.token_endpoint, None);
        assert_eq!(idp.issuer.as_deref(), Some("https://idp.example.com"));

        // An identity provider without an ID token source is refused by the core's check.
        profile.id_token = None;
        assert!(profile.config().unwrap().validate().is_err());
    }

    #[test]
    fn a_keychain_key_is_a_placeholder_in_traces_and_named_in_the_add_command() {
        let mut profile = profile();
        profile.name = "my reg".into();
        profile.client_id = Some("machine".into());
        profile.auth_method = Some(AuthMethod::PrivateKeyJwt);
        profile.private_key_keychain = Some(keychain_entry_name("my reg"));
        profile.assertion = Some(AssertionSource::Command(vec!["print".into(), "it".into()]));
        let client = profile.trace_config();
        assert_eq!(client["private_key"], "recorded-private_key-0");
        assert!(!client.to_string().contains("private-key:"), "{client}");
        assert_eq!(
            profile.add_command(),
            "tenure add 'my reg' --issuer https://as.example.com --scope read --client-id \
             machine --auth-method private_key_jwt --grant client_credentials --redirect-port \
             9123 --renew-within 3600s --assertion-command 'print it' --private-key-file KEY.pem \
             --private-key-keychain"
        );
        assert_eq!(quoted("it's"), "'it'\\''s'");
        assert!(keychain_entry_name("reg").starts_with("private-key:reg/"));
    }

    #[test]
    fn unreadable_profiles_name_the_fix() {
        let error = Profile::from_json("x", serde_json::json!({"grant": 5})).unwrap_err();
        assert!(error.to_string().contains("tenure add x"));
    }
}
