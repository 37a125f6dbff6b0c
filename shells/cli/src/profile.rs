//! Named client configurations (`tenure add NAME …`), kept in the store next to the records.
//!
//! A profile holds what the user typed, never a secret: a client secret or an initial access
//! token is named by the environment variable that holds it, and a private key by its file
//! or variable, and read when it is needed, so the store does not collect one more copy of it.
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
        config.private_key = match (&self.private_key_file, &self.private_key_env) {
            (Some(path), _) => Some(self.key_from_file(path)?),
            (None, variable @ Some(_)) => self.secret_from(variable, "private key")?,
            (None, None) => None,
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
            (self.private_key_file.is_some() || self.private_key_env.is_some())
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
    fn unreadable_profiles_name_the_fix() {
        let error = Profile::from_json("x", serde_json::json!({"grant": 5})).unwrap_err();
        assert!(error.to_string().contains("tenure add x"));
    }
}
