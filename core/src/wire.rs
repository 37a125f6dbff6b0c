//! Reading what servers send: JSON bodies, OAuth error bodies, lenient numbers.
//!
//! Real servers send HTML error pages, empty bodies, JSON with the wrong content type and
//! numbers as strings (EDGE-4, EDGE-31, EDGE-32, EDGE-37). Nothing here panics on any input.

use http::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Map, Value};

use crate::error::ServerError;

/// The body cap for metadata and registration answers (design §4). Shells enforce it while
/// reading; the core checks again so an uncapped shell cannot make it parse more.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// The body cap for error answers.
pub const ERROR_BODY_LIMIT: usize = 8 * 1024;

/// `application/json`.
pub const JSON: &str = "application/json";
/// `application/x-www-form-urlencoded`.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// The body as a JSON object, whatever the content type said.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.len() > BODY_LIMIT {
        return Err(format!(
            "the body is {} bytes, over the {BODY_LIMIT}-byte limit",
            body.len()
        ));
    }
    // A UTF-8 byte-order mark is not JSON, but some servers send one; it says nothing.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the body is JSON but not an object".into()),
        Err(error) => Err(format!("the body is not JSON ({})", shape(body, &error))),
    }
}

/// What is wrong with a body that is not JSON, told without quoting a byte of it: the body
/// may be a token or registration answer in another format, full of credentials, and this
/// text reaches terminals, logs and traces (INV-12).
fn shape(body: &[u8], error: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let looks = if body.is_empty() {
        "it is empty"
    } else if trimmed.starts_with('<') {
        "it looks like HTML"
    } else if error.is_syntax() && error.to_string().contains("trailing characters") {
        "JSON followed by more bytes"
    } else if !trimmed.starts_with(['{', '[']) && trimmed.contains('=') {
        "it looks form-encoded"
    } else if error.is_eof() {
        "it is cut short"
    } else {
        "it is malformed"
    };
    format!("{} bytes; {looks}", body.len())
}

/// The OAuth error in a non-success answer: status, and `error`/`error_description` when the
/// body is a JSON object with a string `error` (parsed whatever the content type).
pub fn server_error(status: u16, body: &[u8]) -> ServerError {
    let body = &body[..body.len().min(ERROR_BODY_LIMIT)];
    let object = serde_json::from_slice::<Value>(body).ok();
    let field = |name: &str| {
        object
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(server_text)
    };
    let code = field("error");
    let description = if code.is_some() {
        field("error_description")
    } else {
        None
    };
    ServerError {
        status,
        code,
        description,
    }
}

/// The longest piece of server text shown to a user, in characters.
pub const SERVER_TEXT_LIMIT: usize = 200;

/// Server text made fit for a terminal and a log line: control characters (escape sequences,
/// bells, line breaks) become spaces, runs of white space one space, and the result is cut to
/// [`SERVER_TEXT_LIMIT`] characters. Servers send multi-line validation dumps in
/// `error_description` (the MCP TypeScript SDK does); a user needs the first line of sense,
/// not the dump.
pub fn server_text(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in text
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        if count > 0 {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= SERVER_TEXT_LIMIT {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// A string member, if present and a string.
pub fn string(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A list of strings, if present and an array (non-strings inside are skipped).
pub fn strings(map: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    map.get(name).and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// What a lenient integer read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integer {
    /// The member is absent or null.
    Absent,
    /// An integral value (a JSON integer, an integral float, or a numeric string).
    Value(i64),
    /// Present but unusable: negative, fractional, out of range, or not a number.
    Invalid,
}

/// Reads an integer leniently (EDGE-4, EDGE-37): integers, integral floats such as `1.7e9`,
/// and numeric strings are accepted; negatives and anything else are [`Integer::Invalid`].
pub fn integer(map: &Map<String, Value>, name: &str) -> Integer {
    let value = match map.get(name) {
        None | Some(Value::Null) => return Integer::Absent,
        Some(value) => value,
    };
    let number = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(integral)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().and_then(integral)),
        _ => None,
    };
    match number {
        Some(n) if n >= 0 => Integer::Value(n),
        _ => Integer::Invalid,
    }
}

fn integral(f: f64) -> Option<i64> {
    // 2^63 is the first float outside i64.
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 {
        Some(f as i64)
    } else {
        None
    }
}

/// A GET request that asks for JSON.
pub fn get_json(url: &str) -> Result<http::Request<Vec<u8>>, String> {
    http::Request::get(url)
        .header(ACCEPT, JSON)
        .body(Vec::new())
        .map_err(|e| {
            format!(
                "cannot build a request for {}: {e}",
                crate::endpoint::sanitize(url)
            )
        })
}

/// A request with a JSON body and, when given, a bearer token (DCR-1, MGMT-2).
pub fn json_request(
    method: http::Method,
    url: &str,
    body: &Value,
    bearer: Option<&crate::secret::Secret>,
) -> Result<http::Request<Vec<u8>>, String> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(url)
        .header(ACCEPT, JSON)
        .header(CONTENT_TYPE, JSON);
    if let Some(token) = bearer {
        builder = builder.header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        );
    }
    let bytes = serde_json::to_vec(body).map_err(|e| format!("cannot encode JSON: {e}"))?;
    builder.body(bytes).map_err(|e| {
        format!(
            "cannot build a request for {}: {e}",
            crate::endpoint::sanitize(url)
        )
    })
}

/// The fields of a form-encoded request body, in order: what the unit tests of the request
/// builders read back.
#[cfg(test)]
pub(crate) fn form_fields(request: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request.body())
        .into_owned()
        .collect()
}

/// Encodes form fields as `application/x-www-form-urlencoded`.
pub fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        serializer.append_pair(name, value);
    }
    serializer.finish().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn server_text_is_one_bounded_line_without_control_characters() {
        // The MCP TypeScript SDK's validation dump, and a hostile escape sequence.
        let dump =
            "[\n  {\n    \"code\": \"invalid_string\",\n    \"path\": [\"redirect_uris\"]\n  }\n]";
        assert_eq!(
            server_text(dump),
            "[ { \"code\": \"invalid_string\", \"path\": [\"redirect_uris\"] } ]"
        );
        assert_eq!(server_text("bad\u{1b}[31mred\u{7}"), "bad [31mred");
        let long = server_text(&"x".repeat(5000));
        assert_eq!(long.chars().count(), SERVER_TEXT_LIMIT + 1);
        assert!(long.ends_with('…'));
        let error = server_error(
            400,
            br#"{"error":"invalid_client_metadata","error_description":"line one\nline two"}"#,
        );
        assert_eq!(error.description.as_deref(), Some("line one line two"));
    }

    #[test]
    fn lenient_integers_edge_4() {
        let m = map(
            json!({"a": 5, "b": "3600", "c": 1.7e9, "d": -1, "e": "soon",
                           "f": 1.5, "g": null, "h": 1e300, "i": " 12 "}),
        );
        assert_eq!(integer(&m, "a"), Integer::Value(5));
        assert_eq!(integer(&m, "b"), Integer::Value(3600));
        assert_eq!(integer(&m, "c"), Integer::Value(1_700_000_000));
        assert_eq!(integer(&m, "d"), Integer::Invalid);
        assert_eq!(integer(&m, "e"), Integer::Invalid);
        assert_eq!(integer(&m, "f"), Integer::Invalid);
        assert_eq!(integer(&m, "g"), Integer::Absent);
        assert_eq!(integer(&m, "h"), Integer::Invalid);
        assert_eq!(integer(&m, "i"), Integer::Value(12));
        assert_eq!(integer(&m, "missing"), Integer::Absent);
    }

    #[test]
    fn error_bodies_edge_31_32() {
        let e = server_error(
            400,
            br#"{"error":"invalid_client","error_description":"expired"}"#,
        );
        assert!(e.is("invalid_client"));
        assert_eq!(e.description.as_deref(), Some("expired"));
        let html = server_error(502, b"<html><body>Bad gateway</body></html>");
        assert_eq!((html.status, html.code), (502, None));
        let odd = server_error(400, br#"{"error":42,"error_description":"x"}"#);
        assert_eq!((odd.code, odd.description), (None, None));
        assert_eq!(server_error(500, b"").code, None);
    }

    #[test]
    fn json_object_refuses_non_objects_edge_25() {
        assert!(json_object(b"<!doctype html>").is_err());
        // Answers that carry credentials in another format are described, never quoted.
        for (body, shape) in [
            (
                &b"access_token=planted-token-1&token_type=bearer"[..],
                "form-encoded",
            ),
            (
                br#"{"access_token":"planted-token-2"} trailing"#,
                "followed by more bytes",
            ),
            (br#"{"client_secret":"planted-secret-3""#, "cut short"),
        ] {
            let error = json_object(body).unwrap_err();
            assert!(error.contains(shape), "{error}");
            assert!(!error.contains("planted"), "{error}");
        }
        // A byte-order mark before JSON is forgiven.
        assert!(json_object(b"\xEF\xBB\xBF{\"a\":1}").is_ok());
        assert!(json_object(b"[1,2]").is_err());
        assert!(json_object(br#"{"a":1}"#).is_ok());
        assert!(json_object(&vec![b' '; BODY_LIMIT + 1]).is_err());
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(form(&[("a", "b c&d"), ("e", "é")]), b"a=b+c%26d&e=%C3%A9");
    }
}
