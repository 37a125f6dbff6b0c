//! HTTP plumbing for the simulated provider: reading requests and building answers.
//!
//! Everything here is total. Malformed input (bad base64, non-UTF-8 bytes, broken JSON,
//! repeated parameters, odd header values) becomes `None`, an error value or a 400 answer,
//! never a panic: the provider is also used to check that the client survives hostile servers,
//! and it must survive hostile clients itself.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION,
    PRAGMA, WWW_AUTHENTICATE,
};
use http::StatusCode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use url::{Host, Url};

/// An answer as the provider builds it.
pub(super) type Response = http::Response<Vec<u8>>;

const JSON: &str = "application/json; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// `application/x-www-form-urlencoded`, the token endpoint's body type (OAUTH-6).
pub(super) const FORM: &str = "application/x-www-form-urlencoded";

/// Standard base64 for HTTP Basic, lenient about padding as real servers are.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// The one place an answer is built: status, `Content-Type` (always set) and body. A status
/// outside 100..=999 becomes 500 instead of a panic.
pub(super) fn respond(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = http::Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON answer.
pub(super) fn json(status: u16, body: &Value) -> Response {
    respond(status, JSON, serde_json::to_vec(body).unwrap_or_default())
}

/// An answer with no body, such as DELETE's 204 (MGMT-13).
pub(super) fn empty(status: u16) -> Response {
    respond(status, TEXT, Vec::new())
}

/// A small HTML page: what a browser sees for an error that must not be redirected
/// (OAUTH-2), a 404, or a proxy's 503 (EDGE-31).
pub(super) fn page(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = format!(
        "{} {}",
        code.as_u16(),
        code.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<!doctype html>\n<html><head><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{}</p></body></html>\n",
        escape_html(message)
    );
    respond(code.as_u16(), HTML, body.into_bytes())
}

/// A `302 Found` to `location`; an unusable location becomes a 400 page.
pub(super) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = page(302, "Redirecting to the client.");
            response.headers_mut().insert(LOCATION, value);
            response
        }
        Err(_) => page(400, "The redirect location is not a valid header value."),
    }
}

/// Marks an answer that carries credentials as uncacheable (RFC 6749 §5.1, RFC 7591 §3.2.1).
pub(super) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn with_header(mut response: Response, name: HeaderName, value: &'static str) -> Response {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    response
}

fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

/// Why a request was refused, in the shape the protocol prescribes for that place. Handlers
/// return `Result<Response, Refusal>` so that every refusal path is one `?` and every refusal
/// is rendered by the same code.
#[derive(Debug)]
pub(super) enum Refusal {
    /// An OAuth JSON error `{error, error_description}` (RFC 6749 §5.2, RFC 7591 §3.2.2), with
    /// an optional `WWW-Authenticate` challenge (RFC 6750 §3, RFC 6749 §5.2 for Basic).
    OAuth {
        status: u16,
        error: &'static str,
        description: String,
        challenge: Option<&'static str>,
    },
    /// `405 Method Not Allowed` with the methods that are.
    MethodNotAllowed(&'static str),
    /// An HTML page for the user, for authorization errors that must not be redirected.
    Page { status: u16, message: String },
    /// The authorization error goes back to the client's redirect URI (RFC 6749 §4.1.2.1);
    /// the location already carries `error`, `state` and `iss`.
    Redirect(String),
}

impl Refusal {
    /// An OAuth error with any status.
    pub(super) fn oauth(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Refusal::OAuth {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    /// A 400 OAuth error, the usual case.
    pub(super) fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Refusal::oauth(400, error, description)
    }

    /// A 400 `invalid_request`.
    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Refusal::bad("invalid_request", description)
    }

    /// The RFC 6750 answer to a missing, wrong or dead bearer token: 401 with
    /// `WWW-Authenticate: Bearer error="invalid_token"` (DCR-20, MGMT-15, MGMT-16).
    pub(super) fn invalid_token() -> Self {
        Refusal::OAuth {
            status: 401,
            error: "invalid_token",
            description: "the bearer token is missing, invalid or no longer valid".into(),
            challenge: Some(r#"Bearer error="invalid_token""#),
        }
    }

    /// An HTML page for the user.
    pub(super) fn page(status: u16, message: impl Into<String>) -> Self {
        Refusal::Page {
            status,
            message: message.into(),
        }
    }

    /// Adds a `WWW-Authenticate` challenge to an OAuth error.
    pub(super) fn with_challenge(self, value: &'static str) -> Self {
        match self {
            Refusal::OAuth {
                status,
                error,
                description,
                ..
            } => Refusal::OAuth {
                status,
                error,
                description,
                challenge: Some(value),
            },
            other => other,
        }
    }

    /// A one-line account of the refusal, for callers outside HTTP.
    pub(super) fn message(&self) -> String {
        match self {
            Refusal::OAuth {
                error, description, ..
            } => format!("{error}: {description}"),
            Refusal::MethodNotAllowed(allow) => format!("method not allowed (allowed: {allow})"),
            Refusal::Page { message, .. } => message.clone(),
            Refusal::Redirect(location) => format!("redirected to {location}"),
        }
    }
}

impl From<Refusal> for Response {
    fn from(refusal: Refusal) -> Response {
        match refusal {
            Refusal::OAuth {
                status,
                error,
                description,
                challenge,
            } => {
                let response = json(
                    status,
                    &json!({"error": error, "error_description": description}),
                );
                match challenge {
                    Some(value) => with_header(response, WWW_AUTHENTICATE, value),
                    None => response,
                }
            }
            Refusal::MethodNotAllowed(allow) => with_header(
                json(
                    405,
                    &json!({"error": "invalid_request",
                            "error_description": format!("method not allowed; use {allow}")}),
                ),
                ALLOW,
                allow,
            ),
            Refusal::Page { status, message } => page(status, &message),
            Refusal::Redirect(location) => redirect(&location),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading requests
// ---------------------------------------------------------------------------------------------

/// The absolute URL a request was sent to. An origin-form URI (`/token`) is completed from
/// the `Host` header with `https`, as a server behind TLS would see it. Scheme and host are
/// normalized to lower case by the URL parser, so matching is by meaning, not by spelling.
pub(super) fn request_url(request: &http::Request<Vec<u8>>) -> Option<Url> {
    let uri = request.uri();
    let text = if uri.scheme().is_some() {
        uri.to_string()
    } else {
        let host = request.headers().get(HOST)?.to_str().ok()?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        format!("https://{host}{path}")
    };
    Url::parse(&text).ok()
}

/// Whether the request's `Content-Type` has the media type `expected` (parameters such as
/// `charset` ignored, case-insensitive). For JSON, `+json` subtypes count too.
pub(super) fn has_content_type(request: &http::Request<Vec<u8>>, expected: &str) -> bool {
    let Some(essence) = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    else {
        return false;
    };
    essence == expected || (expected == "application/json" && essence.ends_with("+json"))
}

/// The body as one JSON object (DCR-1): a wrong content type is `invalid_request`, as in
/// oidc-provider; a body that is not a JSON object is `invalid_client_metadata` (DCR-19).
pub(super) fn json_object_body(
    request: &http::Request<Vec<u8>>,
) -> Result<Map<String, Value>, Refusal> {
    if !has_content_type(request, "application/json") {
        return Err(Refusal::invalid_request(
            "only application/json bodies are accepted here (DCR-1)",
        ));
    }
    match serde_json::from_slice::<Value>(request.body()) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::bad(
            "invalid_client_metadata",
            "the body must be one JSON object",
        )),
    }
}

/// Query or form parameters in the order they came.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    /// The query parameters of a URL.
    pub(super) fn from_query(url: &Url) -> Self {
        Params(url.query_pairs().into_owned().collect())
    }

    /// A form-urlencoded body; a body that is not UTF-8 is refused.
    pub(super) fn from_form(body: &[u8]) -> Result<Self, String> {
        if std::str::from_utf8(body).is_err() {
            return Err("the form body is not UTF-8".into());
        }
        Ok(Params(
            url::form_urlencoded::parse(body).into_owned().collect(),
        ))
    }

    /// The value of a parameter that may appear at most once. A repeated parameter is an
    /// error, as RFC 6749 §3.1 and §3.2 require of the server.
    pub(super) fn one(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self.0.iter().filter(|(n, _)| n == name);
        match (values.next(), values.next()) {
            (Some((_, value)), None) => Ok(Some(value)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(format!("the parameter `{name}` is repeated")),
        }
    }

    /// Every value of a parameter that may repeat, such as `resource` (RES-3).
    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What a request's `Authorization` header holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Credentials {
    /// No `Authorization` header.
    Absent,
    /// `Bearer <token>` (RFC 6750 §2.1).
    Bearer(String),
    /// `Basic` with the form-decoded client id and secret (RFC 6749 §2.3.1, OAUTH-8).
    Basic { id: String, secret: String },
    /// Repeated, non-ASCII, an unknown scheme, bad base64, no `:`, or bad percent-encoding.
    Malformed,
}

/// Reads the `Authorization` header.
pub(super) fn credentials(request: &http::Request<Vec<u8>>) -> Credentials {
    let mut values = request.headers().get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credentials::Absent;
    };
    if values.next().is_some() {
        return Credentials::Malformed;
    }
    let Ok(text) = value.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Credentials::Bearer(rest.to_owned())
    } else if scheme.eq_ignore_ascii_case("basic") {
        decode_basic(rest).map_or(Credentials::Malformed, |(id, secret)| Credentials::Basic {
            id,
            secret,
        })
    } else {
        Credentials::Malformed
    }
}

/// `base64(urlencode(id) ":" urlencode(secret))`, undone (OAUTH-8, EDGE-40).
fn decode_basic(token: &str) -> Option<(String, String)> {
    let bytes = BASIC.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Decodes one form-urlencoded component: `+` is a space, `%XX` a byte; the result must be
/// UTF-8. A broken escape gives `None` rather than a guess.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            b'%' => {
                let hex = text.get(at + 1..at + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                at += 3;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Everything a request shows on the wire as one text: URI, header values, the decoded
/// Basic credentials and the body. The provider searches it for credentials sent to the
/// wrong place (MGMT-22).
pub(super) fn haystack(request: &http::Request<Vec<u8>>) -> String {
    let mut text = request.uri().to_string();
    for value in request.headers().values() {
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(value.as_bytes()));
    }
    if let Credentials::Basic { id, secret } = credentials(request) {
        text.push('\n');
        text.push_str(&id);
        text.push('\n');
        text.push_str(&secret);
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(request.body()));
    text
}

/// The maximal runs of `A-Z a-z 0-9 - _` in `text`: the alphabet of every value the
/// provider issues, so an issued value is always one whole word.
pub(super) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|word| !word.is_empty())
}

/// Whether `c` belongs to the alphabet of issued values.
pub(super) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

// ---------------------------------------------------------------------------------------------
// URL and PKCE rules
// ---------------------------------------------------------------------------------------------

/// Whether the URL's host is the local machine: `localhost`, 127.0.0.0/8 or `::1`.
pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A redirect URI the server accepts: `https`, or `http` on a loopback host, and no
/// fragment (DCR-4, BCP-7).
pub(super) fn redirect_uri_allowed(text: &str) -> bool {
    Url::parse(text).is_ok_and(|url| {
        url.fragment().is_none()
            && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url)))
    })
}

/// RFC 8252 §7.3 matching for native clients: two `http` loopback IP-literal URIs that differ
/// only in the port are the same redirect (NAT-2). oidc-provider applies it only to
/// `application_type: native` (EDGE-33).
pub(super) fn same_loopback_ignoring_port(registered: &str, presented: &str) -> bool {
    let strip = |text: &str| {
        let mut url = Url::parse(text).ok()?;
        let ip_literal = matches!(url.host(), Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)));
        if url.scheme() != "http" || !ip_literal || !is_loopback(&url) {
            return None;
        }
        url.set_port(None).ok()?;
        Some(url)
    };
    matches!((strip(registered), strip(presented)), (Some(a), Some(b)) if a == b)
}

/// Whether `url` is a usable resource indicator: absolute, no fragment (RES-1).
pub(super) fn resource_syntax_ok(text: &str) -> bool {
    Url::parse(text).is_ok_and(|url| url.fragment().is_none() && !url.cannot_be_a_base())
}

/// `BASE64URL-NOPAD(SHA256(verifier))`, the S256 code challenge (PKCE-3).
pub(super) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 43 to 128 characters from `A-Z a-z 0-9 - . _ ~`: the syntax of a PKCE verifier and of an
/// S256 challenge (PKCE-1, RFC 7636 §4.2).
pub(super) fn pkce_syntax_ok(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with_auth(value: &str) -> http::Request<Vec<u8>> {
        http::Request::post("https://as.sim.test/token")
            .header(AUTHORIZATION, value)
            .body(Vec::new())
            .unwrap()
    }

    #[test]
    fn pkce_test_vector_pkce_9() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(pkce_syntax_ok(verifier));
        assert!(!pkce_syntax_ok("short"));
        assert!(!pkce_syntax_ok(&"a".repeat(129)));
        assert!(!pkce_syntax_ok(&format!("{}!", "a".repeat(43))));
    }

    #[test]
    fn basic_credentials_are_form_decoded_oauth_8() {
        // id "a:b", secret "p%q é" form-encoded, then base64.
        let encoded = BASIC.encode("a%3Ab:p%25q+%C3%A9");
        assert_eq!(
            credentials(&request_with_auth(&format!("Basic {encoded}"))),
            Credentials::Basic {
                id: "a:b".into(),
                secret: "p%q é".into()
            }
        );
        // "%+1:x" must not decode: `from_str_radix` alone would accept the sign.
        let signed = format!("Basic {}", BASIC.encode("%+1:x"));
        assert_eq!(
            credentials(&request_with_auth(&signed)),
            Credentials::Malformed
        );
        for bad in [
            "Basic !!!",
            "Basic",
            "Digest x",
            "Basic Zm9v",
            "Basic JTJ6Ong=",
        ] {
            assert_eq!(
                credentials(&request_with_auth(bad)),
                Credentials::Malformed,
                "{bad}"
            );
        }
        assert_eq!(
            credentials(&request_with_auth("bearer tok")),
            Credentials::Bearer("tok".into())
        );
    }

    #[test]
    fn repeated_parameters_are_errors() {
        let params = Params::from_form(b"a=1&b=2&a=3&r=x&r=y").unwrap();
        assert!(params.one("a").is_err());
        assert_eq!(params.one("b"), Ok(Some("2")));
        assert_eq!(params.one("c"), Ok(None));
        assert_eq!(params.all("r"), vec!["x", "y"]);
        assert!(Params::from_form(&[0xff, b'=', b'1']).is_err());
    }

    #[test]
    fn redirect_uri_rules_dcr_4() {
        assert!(redirect_uri_allowed("https://app.example/cb"));
        assert!(redirect_uri_allowed("http://127.0.0.1:8976/callback"));
        assert!(redirect_uri_allowed("http://[::1]/cb"));
        assert!(redirect_uri_allowed("http://localhost:1/cb"));
        assert!(!redirect_uri_allowed("http://app.example/cb"));
        assert!(!redirect_uri_allowed("https://app.example/cb#frag"));
        assert!(!redirect_uri_allowed("not a url"));
        assert!(same_loopback_ignoring_port(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:5555/callback"
        ));
        assert!(!same_loopback_ignoring_port(
            "http://localhost/callback",
            "http://localhost:5555/callback"
        ));
        assert!(!same_loopback_ignoring_port(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:5555/other"
        ));
    }

    #[test]
    fn origin_form_uris_use_the_host_header() {
        let request = http::Request::get("/token?x=1")
            .header(HOST, "AS.Sim.Test")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            request_url(&request).unwrap().as_str(),
            "https://as.sim.test/token?x=1"
        );
        let no_host = http::Request::get("/token").body(Vec::new()).unwrap();
        assert_eq!(request_url(&no_host), None);
    }

    #[test]
    fn odd_statuses_do_not_panic() {
        assert_eq!(respond(42, TEXT, Vec::new()).status(), 500);
        assert_eq!(page(1000, "<x>").status(), 500);
        assert!(String::from_utf8(page(404, "<x>").into_body())
            .unwrap()
            .contains("&lt;x&gt;"));
    }
}
