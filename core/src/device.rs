//! The device authorization grant (RFC 8628): a login for machines without a browser.
//!
//! The client asks the device authorization endpoint for a pair of codes (§3.1, §3.2), shows
//! the user where to go and which code to enter (§3.3), and polls the token endpoint with the
//! device code until the user approved or refused, or the codes expired (§3.4, §3.5). This
//! module builds the request and reads the answer; the machine does the waiting.

use crate::endpoint::secure_endpoint;
use crate::secret::Secret;
use crate::time::{Duration, Timestamp};
use crate::tokens::{authenticated_form, ClientAuth, TokenFailure};
use crate::wire::{integer, json_object, server_error, server_text, string, Integer};

/// The `grant_type` of a device access token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long to wait between two polls when the server names no `interval` (RFC 8628 §3.2).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How much longer every later poll waits after a `slow_down` answer (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The shortest wait between two polls, whatever the server says: an `interval` of zero
/// would make the client hammer the token endpoint.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The longest wait between two polls: a connection that keeps failing doubles the wait
/// (RFC 8628 §3.5), but a user who approved must not wait minutes for the client to notice.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// The longest lifetime believed for a pair of device codes: a login nobody approves ends
/// within the hour, whatever the server says.
pub const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_hours(1);

/// A device authorization answer (RFC 8628 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The device verification code: a credential, sent only to the token endpoint.
    pub device_code: Secret,
    /// The code the user enters at the verification URI; made fit for a terminal.
    pub user_code: String,
    /// Where the user enters the code (https, or http on a loopback host).
    pub verification_uri: String,
    /// The verification URI with the user code in it, when the server offers one.
    pub verification_uri_complete: Option<String>,
    /// When the codes expire; the client gives up polling then.
    pub expires_at: Timestamp,
    /// How long to wait between two polls.
    pub interval: Duration,
}

/// The device authorization request (RFC 8628 §3.1): `client_id` (or the client's
/// authentication as at the token endpoint), the scopes, and the RFC 8707 `resource` like on
/// every token request (MCP-14).
pub fn device_authorization_request(
    endpoint: &str,
    auth: ClientAuth<'_>,
    scopes: &[String],
    resource: Option<&str>,
) -> Result<http::Request<Vec<u8>>, String> {
    let joined = scopes.join(" ");
    let mut fields: Vec<(&str, &str)> = Vec::new();
    if !scopes.is_empty() {
        fields.push(("scope", &joined));
    }
    if let Some(resource) = resource {
        fields.push(("resource", resource));
    }
    authenticated_form(endpoint, auth, fields)
        .map_err(|e| format!("cannot build the device authorization request: {e}"))
}

/// Reads a device authorization answer received at `now` (RFC 8628 §3.2). A refusal is
/// `TokenFailure::Refused` (the errors are those of the token endpoint, §3.2).
pub fn parse_device_authorization(
    status: u16,
    body: &[u8],
    now: Timestamp,
) -> Result<DeviceAuthorization, TokenFailure> {
    if !(200..300).contains(&status) {
        return Err(TokenFailure::Refused(server_error(status, body)));
    }
    let bad = |reason: &str| TokenFailure::BadAnswer(format!("device authorization: {reason}"));
    let answer = json_object(body).map_err(|e| bad(&e))?;
    let device_code = string(&answer, "device_code")
        .filter(|c| !c.is_empty())
        .map(Secret::new)
        .ok_or_else(|| bad("the answer has no device_code"))?;
    let user_code = string(&answer, "user_code")
        .map(|c| server_text(&c))
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("the answer has no user_code"))?;
    // `verification_url` is the name of an early draft that some servers still send.
    let verification_uri = string(&answer, "verification_uri")
        .or_else(|| string(&answer, "verification_url"))
        .ok_or_else(|| bad("the answer has no verification_uri"))?;
    // The user is sent there to type a code that grants access: never over plain HTTP to
    // another machine.
    let verification_uri = secure_endpoint(&verification_uri)
        .map_err(|e| bad(&format!("verification_uri: {e}")))?
        .to_string();
    let verification_uri_complete = match string(&answer, "verification_uri_complete") {
        Some(uri) => Some(
            secure_endpoint(&uri)
                .map_err(|e| bad(&format!("verification_uri_complete: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let lifetime = match integer(&answer, "expires_in") {
        Integer::Value(seconds) if seconds > 0 => {
            Duration::from_secs(seconds.min(MAX_DEVICE_CODE_LIFETIME.as_millis() / 1000))
        }
        _ => return Err(bad("the answer has no usable expires_in")),
    };
    let interval = match integer(&answer, "interval") {
        Integer::Value(seconds) => {
            Duration::from_secs(seconds.min(MAX_POLL_INTERVAL.as_millis() / 1000))
                .max(MIN_POLL_INTERVAL)
        }
        Integer::Absent | Integer::Invalid => DEFAULT_POLL_INTERVAL,
    };
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at: now + lifetime,
        interval,
    })
}

/// The wait after a `slow_down` answer: five seconds more, for this and every later poll
/// (RFC 8628 §3.5).
pub fn slowed_down(interval: Duration) -> Duration {
    Duration::from_millis(interval.as_millis() + SLOW_DOWN_STEP.as_millis())
}

/// The wait after a poll that got no answer: twice as long, up to [`MAX_POLL_INTERVAL`]
/// (RFC 8628 §3.5 asks for an exponential back-off on connection timeouts).
pub fn backed_off(interval: Duration) -> Duration {
    Duration::from_millis(interval.as_millis().saturating_mul(2)).min(MAX_POLL_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Timestamp = Timestamp::from_unix_seconds(1_700_000_000);

    fn parse(body: serde_json::Value) -> Result<DeviceAuthorization, TokenFailure> {
        parse_device_authorization(200, body.to_string().as_bytes(), NOW)
    }

    #[test]
    fn the_request_names_client_scope_and_resource_rfc8628_3_1() {
        let request = device_authorization_request(
            "https://as.example.com/device",
            ClientAuth::None {
                client_id: "the-client",
            },
            &["openid".into(), "offline_access".into()],
            Some("https://mcp.example.com/mcp"),
        )
        .unwrap();
        assert_eq!(request.method(), http::Method::POST);
        let fields = crate::wire::form_fields(&request);
        assert!(fields.contains(&("client_id".into(), "the-client".into())));
        assert!(fields.contains(&("scope".into(), "openid offline_access".into())));
        assert!(fields.contains(&("resource".into(), "https://mcp.example.com/mcp".into())));
    }

    #[test]
    fn a_confidential_client_authenticates_as_at_the_token_endpoint_rfc8628_3_1() {
        let secret = Secret::new("planted-client-secret");
        let request = device_authorization_request(
            "https://as.example.com/device",
            ClientAuth::Basic {
                client_id: "the-client",
                secret: &secret,
            },
            &[],
            None,
        )
        .unwrap();
        assert!(request.headers().get(http::header::AUTHORIZATION).is_some());
        assert!(!crate::wire::form_fields(&request)
            .iter()
            .any(|(name, _)| name == "scope"));
    }

    #[test]
    fn the_answer_is_read_with_defaults_rfc8628_3_2() {
        let answer = parse(json!({
            "device_code": "planted-device-code",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://as.example.com/device",
            "expires_in": 1800,
        }))
        .unwrap();
        assert_eq!(answer.user_code, "WDJB-MJHT");
        assert_eq!(answer.verification_uri, "https://as.example.com/device");
        assert_eq!(answer.verification_uri_complete, None);
        assert_eq!(answer.expires_at, NOW + Duration::from_secs(1800));
        assert_eq!(answer.interval, DEFAULT_POLL_INTERVAL);
        assert!(!format!("{answer:?}").contains("planted-device-code"));
    }

    #[test]
    fn interval_and_complete_uri_are_taken_rfc8628_3_2_3_3_1() {
        let answer = parse(json!({
            "device_code": "d",
            "user_code": "U\u{1b}[31mC",
            "verification_uri": "https://as.example.com/device",
            "verification_uri_complete": "https://as.example.com/device?user_code=UC",
            "expires_in": 600,
            "interval": 0,
        }))
        .unwrap();
        assert_eq!(answer.interval, MIN_POLL_INTERVAL);
        // No escape sequence reaches the terminal.
        assert!(!answer.user_code.contains('\u{1b}'));
        assert_eq!(
            answer.verification_uri_complete.as_deref(),
            Some("https://as.example.com/device?user_code=UC")
        );
    }

    #[test]
    fn an_unusable_answer_is_refused() {
        for body in [
            json!({"user_code": "U", "verification_uri": "https://a.example/d", "expires_in": 9}),
            json!({"device_code": "d", "verification_uri": "https://a.example/d", "expires_in": 9}),
            json!({"device_code": "d", "user_code": "U", "expires_in": 9}),
            json!({"device_code": "d", "user_code": "U", "verification_uri": "http://a.example/d", "expires_in": 9}),
            json!({"device_code": "d", "user_code": "U", "verification_uri": "https://a.example/d"}),
        ] {
            assert!(
                matches!(parse(body.clone()), Err(TokenFailure::BadAnswer(_))),
                "{body}"
            );
        }
        let refused = parse_device_authorization(400, br#"{"error":"unauthorized_client"}"#, NOW);
        assert!(matches!(refused, Err(TokenFailure::Refused(e)) if e.is("unauthorized_client")));
    }

    #[test]
    fn slow_down_adds_five_seconds_and_failures_back_off_rfc8628_3_5() {
        assert_eq!(slowed_down(DEFAULT_POLL_INTERVAL), Duration::from_secs(10));
        assert_eq!(backed_off(Duration::from_secs(5)), Duration::from_secs(10));
        assert_eq!(backed_off(Duration::from_secs(50)), MAX_POLL_INTERVAL);
    }
}
