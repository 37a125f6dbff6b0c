//! The jwt-bearer grant family: a JWT the client holds, but did not sign, is the grant
//! (RFC 7523 §2.1).
//!
//! Two ways to hold one, both configured as [`crate::Grant::JwtBearer`] with a
//! [`BearerAssertion`]:
//!
//! ```text
//!   workload identity (MCP SEP-1933)
//!     shell: read the platform's JWT ──▶ AS token endpoint: grant_type=jwt-bearer,
//!                                                           assertion=<workload JWT>
//!
//!   enterprise-managed authorization (MCP SEP-990)
//!     shell: read the user's ID token ──▶ IdP token endpoint: RFC 8693 token exchange,
//!                                         subject_token=<ID token>, requested id-jag
//!                                     ◀── ID-JAG (issued_token_type id-jag)
//!                                     ──▶ AS token endpoint: grant_type=jwt-bearer,
//!                                                           assertion=<ID-JAG>
//! ```
//!
//! The core never reads the assertion itself: it has no files, environment or processes.
//! When a grant request is due it emits [`crate::Command::ReadAssertion`] naming an
//! [`AssertionSource`], a plain description of where the shell finds the text (as a URL
//! describes a server), and waits for [`crate::Input::Assertion`]. The source is asked
//! afresh for every grant request, because these JWTs live for minutes and the platform
//! rotates them; what the shell answers is held in the operation's in-flight state until it
//! is sent, never in the record.

use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::secret::Secret;
use crate::tokens::{authenticated_form, ClientAuth};
use crate::wire::{json_object, server_error, string};

/// The `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `grant_type` of a token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of an OpenID Connect ID token (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The token type of an Identity Assertion JWT Authorization Grant (ID-JAG, SEP-990).
pub const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// Where a shell finds an assertion the client presents but does not make: a description,
/// never the assertion itself, so a configuration (or a CLI profile) that holds one holds no
/// credential.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AssertionSource {
    /// A file the platform keeps current (a Kubernetes projected service account token, a
    /// token file a cloud agent writes): read whole at every use.
    File(String),
    /// An environment variable of the process.
    Env(String),
    /// A program and its arguments, run without a shell; its standard output is the
    /// assertion. The shell bounds its run time and output size.
    Command(Vec<String>),
}

impl AssertionSource {
    /// The source in words, for errors: the path, the variable's name or the program. Never
    /// the assertion.
    pub fn describe(&self) -> String {
        match self {
            AssertionSource::File(path) => format!("the file {path}"),
            AssertionSource::Env(name) => format!("the environment variable {name}"),
            AssertionSource::Command(argv) => format!(
                "the command `{}`",
                argv.first().map(String::as_str).unwrap_or_default()
            ),
        }
    }
}

/// What the jwt-bearer grant presents, and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerAssertion {
    /// Workload identity federation (SEP-1933): the platform's JWT is the assertion, sent as
    /// it is.
    Workload(AssertionSource),
    /// Enterprise-managed authorization (SEP-990): the user's ID token is exchanged at the
    /// enterprise identity provider for an ID-JAG, which is the assertion.
    Enterprise(IdentityProvider),
}

/// The enterprise identity provider of [`BearerAssertion::Enterprise`]: where the token
/// exchange goes and how the client authenticates there. Its credentials go to the identity
/// provider only, never to the authorization server, as the authorization server's never go
/// to it (INV-7).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityProvider {
    /// The identity provider's token endpoint, when configured.
    pub token_endpoint: Option<String>,
    /// The identity provider's issuer: without a configured token endpoint, its metadata
    /// (RFC 8414 or OpenID discovery, with an exact `issuer` match) names the endpoint, once
    /// per process.
    pub issuer: Option<String>,
    /// The client id this client has at the identity provider.
    pub client_id: String,
    /// Its secret there, sent with HTTP Basic; without one the client id goes in the body.
    pub client_secret: Option<Secret>,
    /// Where the user's ID token is read from.
    pub id_token: AssertionSource,
}

impl IdentityProvider {
    /// An identity provider whose token endpoint is `token_endpoint`, where this client is
    /// `client_id`, whose ID token comes from `id_token`.
    pub fn new(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        id_token: AssertionSource,
    ) -> Self {
        IdentityProvider {
            token_endpoint: Some(token_endpoint.into()),
            issuer: None,
            client_id: client_id.into(),
            client_secret,
            id_token,
        }
    }

    /// An identity provider known by its `issuer`, whose metadata names its token endpoint.
    pub fn discovered(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        id_token: AssertionSource,
    ) -> Self {
        IdentityProvider {
            token_endpoint: None,
            issuer: Some(issuer.into()),
            client_id: client_id.into(),
            client_secret,
            id_token,
        }
    }
}

/// What a token exchange asks the identity provider for.
#[derive(Clone, Copy, Debug)]
pub struct ExchangeParams<'a> {
    /// The user's ID token.
    pub id_token: &'a Secret,
    /// The authorization server's issuer: the ID-JAG's audience.
    pub audience: &'a str,
    /// The protected resource the ID-JAG is for (RFC 8707), when known.
    pub resource: Option<&'a str>,
    /// The scopes the ID-JAG should carry; none sends no `scope`.
    pub scopes: &'a [String],
}

/// The RFC 8693 token exchange at the identity provider's token endpoint `endpoint`: the ID
/// token for an ID-JAG whose audience is the authorization server (SEP-990).
pub fn token_exchange_request(
    endpoint: &str,
    idp: &IdentityProvider,
    params: &ExchangeParams<'_>,
) -> Result<http::Request<Vec<u8>>, String> {
    let joined = params.scopes.join(" ");
    let mut fields = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("requested_token_type", ID_JAG_TYPE),
        ("subject_token", params.id_token.expose()),
        ("subject_token_type", ID_TOKEN_TYPE),
        ("audience", params.audience),
    ];
    if let Some(resource) = params.resource {
        fields.push(("resource", resource));
    }
    if !joined.is_empty() {
        fields.push(("scope", &joined));
    }
    // The identity provider authenticates the client as a token endpoint does: HTTP Basic
    // with its secret, or its client id alone.
    let client_id = idp.client_id.as_str();
    let auth = match &idp.client_secret {
        Some(secret) => ClientAuth::Basic { client_id, secret },
        None => ClientAuth::None { client_id },
    };
    authenticated_form(endpoint, auth, fields)
        .map_err(|e| format!("cannot build the token exchange request: {e}"))
}

/// Why a token exchange answer gave no ID-JAG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeFailure {
    /// The identity provider refused (RFC 8693 §2.2.2).
    Refused(ServerError),
    /// A 2xx that holds no ID-JAG.
    BadAnswer(String),
}

/// Reads a token exchange answer (RFC 8693 §2.2.1): the ID-JAG in `access_token`, only
/// when `issued_token_type` says it is one. A token of another type would be sent to the
/// authorization server as a grant it never agreed to.
pub fn parse_token_exchange(status: u16, body: &[u8]) -> Result<Secret, ExchangeFailure> {
    if !(200..300).contains(&status) {
        return Err(ExchangeFailure::Refused(server_error(status, body)));
    }
    let answer = json_object(body).map_err(ExchangeFailure::BadAnswer)?;
    match string(&answer, "issued_token_type") {
        Some(kind) if kind == ID_JAG_TYPE => {}
        Some(kind) => {
            return Err(ExchangeFailure::BadAnswer(format!(
                "it issued a token of type `{}`, not an ID-JAG ({ID_JAG_TYPE})",
                crate::wire::server_text(&kind)
            )))
        }
        None => {
            return Err(ExchangeFailure::BadAnswer(
                "the answer has no issued_token_type".into(),
            ))
        }
    }
    string(&answer, "access_token")
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| ExchangeFailure::BadAnswer("the answer has no access_token".into()))
}

/// The assertion text a shell read, made ready to send: surrounding white space (the
/// newline a file or a program ends with) removed. Empty text, or text with white space
/// inside, is no JWT and is refused with a reason that names the source, never the text.
pub fn assertion_text(source: &AssertionSource, text: &str) -> Result<Secret, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{} is empty", source.describe()));
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err(format!(
            "{} holds more than one word; it must hold one JWT",
            source.describe()
        ));
    }
    Ok(Secret::new(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exchange_asks_for_an_id_jag_for_the_server_and_resource() {
        let idp = IdentityProvider::new(
            "https://idp.example.com/token",
            "idp-client",
            Some(Secret::new("idp-secret")),
            AssertionSource::Env("ID_TOKEN".into()),
        );
        let id_token = Secret::new("the-id-token");
        let scopes = vec!["read".to_string(), "write".to_string()];
        let request = token_exchange_request(
            "https://idp.example.com/token",
            &idp,
            &ExchangeParams {
                id_token: &id_token,
                audience: "https://as.example.com",
                resource: Some("https://mcp.example.com/mcp"),
                scopes: &scopes,
            },
        )
        .unwrap();
        let got = crate::wire::form_fields(&request);
        let field = |name: &str| got.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(field("grant_type"), Some(TOKEN_EXCHANGE_GRANT));
        assert_eq!(field("requested_token_type"), Some(ID_JAG_TYPE));
        assert_eq!(field("subject_token"), Some("the-id-token"));
        assert_eq!(field("subject_token_type"), Some(ID_TOKEN_TYPE));
        assert_eq!(field("audience"), Some("https://as.example.com"));
        assert_eq!(field("resource"), Some("https://mcp.example.com/mcp"));
        assert_eq!(field("scope"), Some("read write"));
        assert_eq!(field("client_id"), Some("idp-client"));
        assert_eq!(field("client_secret"), None);
        assert!(request.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
    }

    #[test]
    fn only_an_id_jag_is_taken_from_the_exchange() {
        let ok = br#"{"access_token":"jag","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag","token_type":"N_A"}"#;
        assert_eq!(parse_token_exchange(200, ok).unwrap().expose(), "jag");
        let wrong = br#"{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer"}"#;
        let Err(ExchangeFailure::BadAnswer(reason)) = parse_token_exchange(200, wrong) else {
            panic!("an access token was taken for an ID-JAG");
        };
        assert!(reason.contains("access_token"), "{reason}");
        assert!(!reason.contains("\"at\""));
        let missing = br#"{"access_token":"at","token_type":"Bearer"}"#;
        assert!(matches!(
            parse_token_exchange(200, missing),
            Err(ExchangeFailure::BadAnswer(_))
        ));
        let refused = br#"{"error":"invalid_grant","error_description":"bad token"}"#;
        let Err(ExchangeFailure::Refused(cause)) = parse_token_exchange(400, refused) else {
            panic!("a refusal was not recognised");
        };
        assert!(cause.is("invalid_grant"));
    }

    #[test]
    fn assertion_text_is_trimmed_and_must_be_one_word() {
        let source = AssertionSource::File("/var/run/token".into());
        assert_eq!(
            assertion_text(&source, "  a.b.c\n").unwrap().expose(),
            "a.b.c"
        );
        let empty = assertion_text(&source, " \n").unwrap_err();
        assert!(empty.contains("/var/run/token"), "{empty}");
        let two = assertion_text(&source, "secret-one secret-two").unwrap_err();
        assert!(!two.contains("secret-one"), "{two}");
    }
}
