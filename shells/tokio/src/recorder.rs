//! Recording real exchanges as a provider trace (design §7), so a real server can be
//! recorded once and played back to the core without a network.
//!
//! Secrets never reach the file: every value of a secret-bearing member (`client_secret`,
//! `registration_access_token`, `access_token`, `refresh_token`, `id_token`, `code`) is
//! replaced by a stable placeholder such as `recorded-client_secret-1`; the same value always
//! becomes the same placeholder, so a replay sees the same relations (a rotated token is a
//! new placeholder, a kept one the same). The callback's `state` becomes `{state}`, which the
//! replayer fills with the state the client generates.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tenure_core::Timestamp;

/// Members whose values are secrets.
const SECRET_MEMBERS: [&str; 6] = [
    "client_secret",
    "registration_access_token",
    "access_token",
    "refresh_token",
    "id_token",
    "code",
];

/// A trace file being written. Cheap to clone; writes are serialized.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    placeholders: HashMap<String, String>,
    counters: HashMap<&'static str, u32>,
}

impl Recorder {
    /// Appends to `path`, readable by its owner only (an existing file is made so too). A
    /// symbolic link is refused: the trace would land wherever the link points.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the trace path is a symbolic link; give the path of a plain file",
            ));
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        // Several processes append to one trace (a restart is a `start` line): go on from
        // the placeholders already in the file, so a new secret never reuses an old name.
        let counters = match std::fs::read_to_string(path) {
            Ok(text) => placeholders_in(&text),
            Err(_) => HashMap::new(),
        };
        let file = options.open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(Recorder {
            inner: Arc::new(Mutex::new(Inner {
                file,
                placeholders: HashMap::new(),
                counters,
            })),
        })
    }

    /// The `config` line: the client configuration with the option names of `tenure add`.
    pub fn config(&self, client: Value) {
        self.write(json!({"type": "config", "client": client}));
    }

    /// A `start` line.
    pub fn start(&self, at: Timestamp) {
        self.write(json!({"type": "start", "at": at.to_rfc3339()}));
    }

    /// An `op` line.
    pub fn op(&self, op: &str, at: Timestamp) {
        self.write(json!({"type": "op", "op": op, "at": at.to_rfc3339()}));
    }

    /// A `response` line for the answer to `method url`, secrets replaced.
    pub fn response(&self, method: &str, url: &str, response: &http::Response<Vec<u8>>) {
        let mut headers = serde_json::Map::new();
        // A DPoP nonce is no secret (RFC 9449 §8: the server hands it to anyone who asks),
        // and a replay needs it to repeat a request the way the client did.
        for name in [
            http::header::CONTENT_TYPE,
            http::header::WWW_AUTHENTICATE,
            http::header::LOCATION,
            http::HeaderName::from_static(tenure_core::dpop::DPOP_NONCE_HEADER),
        ] {
            if let Some(value) = response.headers().get(&name).and_then(|v| v.to_str().ok()) {
                headers.insert(name.to_string(), Value::String(value.to_string()));
            }
        }
        let mut guard = self.lock();
        let body = guard.scrubbed_body(response.body());
        let line = json!({"type": "response", "method": method, "url": url,
                          "status": response.status().as_u16(), "headers": headers, "body": body});
        guard.write(&line);
    }

    /// A `callback` line: `state` becomes `{state}`, the code a placeholder.
    pub fn callback(&self, query: &str) {
        let mut guard = self.lock();
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if name == "state" {
                continue;
            }
            let value = if SECRET_MEMBERS.contains(&name.as_ref()) {
                guard.placeholder("code", &value)
            } else {
                value.into_owned()
            };
            out.append_pair(&name, &value);
        }
        let query = match out.finish() {
            rest if rest.is_empty() => "state={state}".to_string(),
            rest => format!("{rest}&state={{state}}"),
        };
        guard.write(&json!({"type": "callback", "query": query}));
    }

    /// An `advance` line.
    pub fn advance(&self, to: Timestamp) {
        self.write(json!({"type": "advance", "to": to.to_rfc3339()}));
    }

    fn write(&self, line: Value) {
        self.lock().write(&line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The highest placeholder number of each kind in `text`.
fn placeholders_in(text: &str) -> HashMap<&'static str, u32> {
    let mut counters = HashMap::new();
    for kind in SECRET_MEMBERS {
        let prefix = format!("recorded-{kind}-");
        let highest = text
            .match_indices(&prefix)
            .filter_map(|(at, _)| {
                let digits: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse::<u32>().ok()
            })
            .max();
        if let Some(highest) = highest {
            counters.insert(kind, highest);
        }
    }
    counters
}

impl Inner {
    fn write(&mut self, line: &Value) {
        // A failed write loses a trace line, never a credential: warn and go on.
        if writeln!(self.file, "{line}").is_err() {
            tracing::warn!("could not write to the trace file");
        }
    }

    /// A body fit for the trace: JSON and form-encoded bodies with every secret member
    /// replaced, anything else withheld (its size kept), since it cannot be scrubbed and may
    /// hold a credential in a shape nobody foresaw.
    fn scrubbed_body(&mut self, body: &[u8]) -> Value {
        let json = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        if let Ok(mut value) = serde_json::from_slice::<Value>(json) {
            self.scrub(&mut value);
            return value;
        }
        let text = std::str::from_utf8(body).unwrap_or_default().trim();
        let form = !text.is_empty()
            && text.contains('=')
            && !text.starts_with(['{', '[', '<'])
            && !text.contains(char::is_whitespace);
        if form {
            let mut out = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in url::form_urlencoded::parse(text.as_bytes()) {
                let value = match SECRET_MEMBERS.iter().find(|s| **s == name.as_ref()) {
                    Some(kind) => self.placeholder(kind, &value),
                    None => value.into_owned(),
                };
                out.append_pair(&name, &value);
            }
            return Value::String(out.finish());
        }
        if body.is_empty() {
            return Value::String(String::new());
        }
        Value::String(format!(
            "[withheld: {} bytes that are neither JSON nor form-encoded]",
            body.len()
        ))
    }

    fn scrub(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (name, member) in map.iter_mut() {
                    match (
                        SECRET_MEMBERS.iter().find(|s| **s == name.as_str()),
                        member.as_str(),
                    ) {
                        (Some(kind), Some(secret)) => {
                            let placeholder = self.placeholder(kind, secret);
                            *member = Value::String(placeholder);
                        }
                        _ => self.scrub(member),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub(item)),
            _ => {}
        }
    }

    fn placeholder(&mut self, kind: &'static str, secret: &str) -> String {
        if let Some(known) = self.placeholders.get(secret) {
            return known.clone();
        }
        let counter = self.counters.entry(kind).or_insert(0);
        *counter += 1;
        let placeholder = format!("recorded-{kind}-{counter}");
        self.placeholders
            .insert(secret.to_string(), placeholder.clone());
        placeholder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn secrets_become_stable_placeholders() {
        let dir = std::env::temp_dir().join(format!("tenure-recorder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.jsonl");
        let _ = std::fs::remove_file(&path);
        let recorder = Recorder::open(&path).unwrap();
        let answer = |body: &str| {
            http::Response::builder()
                .status(201)
                .header("content-type", "application/json")
                .body(body.as_bytes().to_vec())
                .unwrap()
        };
        recorder.response("POST", "https://as.example.com/reg",
            &answer(r#"{"client_id":"c1","client_secret":"TOPSECRET","registration_access_token":"RAT1"}"#));
        recorder.response("PUT", "https://as.example.com/reg/c1",
            &answer(r#"{"client_id":"c1","client_secret":"TOPSECRET","registration_access_token":"RAT2"}"#));
        recorder.callback("code=CODE1&state=abc&iss=https%3A%2F%2Fas.example.com");
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in ["TOPSECRET", "RAT1", "RAT2", "CODE1", "abc"] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
        let lines = read_lines(&path);
        assert_eq!(
            lines[0]["body"]["client_secret"],
            "recorded-client_secret-1"
        );
        assert_eq!(
            lines[1]["body"]["client_secret"], "recorded-client_secret-1",
            "kept secret, same placeholder"
        );
        assert_eq!(
            lines[1]["body"]["registration_access_token"],
            "recorded-registration_access_token-2"
        );
        assert_eq!(lines[0]["body"]["client_id"], "c1");
        assert_eq!(
            lines[2]["query"],
            "code=recorded-code-1&iss=https%3A%2F%2Fas.example.com&state={state}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // A second process appending to the same trace never reuses a placeholder.
        let again = Recorder::open(&path).unwrap();
        again.response(
            "POST",
            "https://as.example.com/reg",
            &answer(
                r#"{"client_id":"c2","client_secret":"OTHER","registration_access_token":"RAT3"}"#,
            ),
        );
        let appended = read_lines(&path);
        assert_eq!(
            appended[3]["body"]["client_secret"],
            "recorded-client_secret-2"
        );
        assert_eq!(
            appended[3]["body"]["registration_access_token"],
            "recorded-registration_access_token-3"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Bodies that are not clean JSON are scrubbed too, or withheld; an existing file is
    /// made private; a symbolic link is refused.
    #[test]
    fn bodies_of_every_shape_are_scrubbed_or_withheld() {
        let dir =
            std::env::temp_dir().join(format!("tenure-recorder-shapes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.jsonl");
        std::fs::write(&path, "").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let recorder = Recorder::open(&path).unwrap();
        let answer = |body: &[u8]| {
            http::Response::builder()
                .status(200)
                .body(body.to_vec())
                .unwrap()
        };
        for body in [
            &b"access_token=PLANTED-FORM&token_type=bearer&scope=read"[..],
            b"\xEF\xBB\xBF{\"access_token\":\"PLANTED-BOM\"}",
            b"{\"access_token\":\"PLANTED-TRAILING\"} and more",
            b"<html>PLANTED-HTML</html>",
        ] {
            recorder.response("POST", "https://as.example.com/token", &answer(body));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("PLANTED"), "{text}");
        let lines = read_lines(&path);
        assert_eq!(
            lines[0]["body"],
            "access_token=recorded-access_token-1&token_type=bearer&scope=read"
        );
        assert_eq!(lines[1]["body"]["access_token"], "recorded-access_token-2");
        assert!(lines[2]["body"].as_str().unwrap().starts_with("[withheld:"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "an existing file is made private");
            let link = dir.join("link.jsonl");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert!(Recorder::open(&link).is_err(), "a symbolic link is refused");
        }
    }
}
