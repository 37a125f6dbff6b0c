//! What Tenure's end-to-end tests share, whichever crate they live in: the real test
//! authorization server (`testing/oidc-provider`, started on 127.0.0.1 and stopped when
//! dropped), a tiny HTTP/1.1 client for loopback URLs that never follows redirects, a
//! "browser" that follows a login's redirects to the loopback callback, and child processes
//! that are killed when the test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real authorization servers the tests run, each in its own folder under `testing/`
/// with a README that documents its flags and its `/__admin/` endpoints. They share one
/// convention: started on 127.0.0.1 with a free port, they print `ready ISSUER` as their only
/// line on stdout, count what they serve at `/__admin/counts`, and stop when their stdin
/// closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// `testing/oidc-provider`: oidc-provider, with RFC 7592 and registration access token
    /// rotation.
    OidcProvider,
    /// `testing/mcp-ts-sdk`: the MCP TypeScript SDK's `mcpAuthRouter`, with an MCP server
    /// at `/mcp`; secrets expire, no RFC 7592, the issuer ends with `/`.
    McpTsSdk,
    /// `testing/mcp-python-sdk`: the MCP Python SDK's `create_auth_routes`, with an MCP
    /// server at `/mcp`; secrets expire, no RFC 7592.
    McpPythonSdk,
    /// `testing/authlib`: Authlib's RFC 7591 and RFC 7592 endpoints on Flask.
    Authlib,
}

impl ServerKind {
    /// Every kind, in the order the matrix prints them.
    pub const ALL: [ServerKind; 4] = [
        ServerKind::OidcProvider,
        ServerKind::McpTsSdk,
        ServerKind::McpPythonSdk,
        ServerKind::Authlib,
    ];

    /// Its name in test output.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::OidcProvider => "oidc-provider",
            ServerKind::McpTsSdk => "mcp-ts-sdk",
            ServerKind::McpPythonSdk => "mcp-python-sdk",
            ServerKind::Authlib => "authlib",
        }
    }

    fn dir(self) -> PathBuf {
        root().join("testing").join(self.name())
    }

    /// The program, its first arguments, and a file whose presence says it is installed.
    fn launch(self) -> (PathBuf, &'static str, &'static str) {
        let dir = self.dir();
        match self {
            ServerKind::OidcProvider => ("node".into(), "server.mjs", "node_modules/oidc-provider"),
            ServerKind::McpTsSdk => (
                "node".into(),
                "server.mjs",
                "node_modules/@modelcontextprotocol/sdk",
            ),
            ServerKind::McpPythonSdk | ServerKind::Authlib => (
                dir.join(".venv/bin/python"),
                "server.py",
                ".venv/bin/python",
            ),
        }
    }

    /// Whether the server offers RFC 7592 registration management.
    pub fn manages_registrations(self) -> bool {
        matches!(self, ServerKind::OidcProvider | ServerKind::Authlib)
    }
}

/// A running test authorization server, stopped when dropped (its stdin closing stops it
/// too, so it never outlives a test process that dies).
pub struct Provider {
    /// The issuer exactly as the server publishes it.
    pub issuer: String,
    /// `http://127.0.0.1:PORT`, for the admin endpoints and the MCP server.
    pub origin: String,
    /// Which server this is.
    pub kind: ServerKind,
    child: Child,
    _stdin: ChildStdin,
}

impl Provider {
    /// Starts oidc-provider with `flags` (see its README).
    pub fn start(flags: &[&str]) -> Provider {
        Provider::start_kind(ServerKind::OidcProvider, flags)
    }

    /// Starts the server `kind` with `flags` (see its README) and waits, bounded, for its
    /// `ready` line. A server that cannot start fails the test, loudly.
    pub fn start_kind(kind: ServerKind, flags: &[&str]) -> Provider {
        let dir = kind.dir();
        let (program, script, installed) = kind.launch();
        assert!(
            dir.join(installed).exists(),
            "the test server {} is not installed: run {}/install.sh (scripts/test does it)",
            kind.name(),
            dir.display()
        );
        let mut child = Command::new(&program)
            .arg(script)
            .args(flags)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{} did not say `ready` within 60 s", kind.name()));
        let issuer = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("{} said `{line}` instead of `ready URL`", kind.name()))
            .to_string();
        let origin = issuer.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        Provider {
            issuer,
            origin,
            kind,
            child,
            _stdin: stdin,
        }
    }

    /// The admin endpoint `path` (under `/__admin/`).
    pub fn admin(&self, path: &str) -> String {
        format!("{}/__admin/{path}", self.origin)
    }

    /// What the server counted (`/__admin/counts`).
    pub fn counts(&self) -> Value {
        let (status, _, body) = request("GET", &self.admin("counts"), &[], "");
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    }

    /// One counter.
    pub fn count(&self, name: &str) -> u64 {
        self.counts()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    /// Sets every counter back to zero.
    pub fn reset_counts(&self) {
        assert_eq!(request("POST", &self.admin("reset-counts"), &[], "").0, 200);
    }

    /// Forgets every client and token, as a restart of the in-memory server would (not
    /// offered by oidc-provider's harness, which is restarted instead).
    pub fn forget_clients(&self) {
        assert_eq!(
            request("POST", &self.admin("forget-clients"), &[], "").0,
            200
        );
    }

    /// Makes RFC 7592 updates fail (500) or succeed again.
    pub fn fail_updates(&self, on: bool) {
        let url = self.admin(&format!("fail-updates?on={}", u8::from(on)));
        assert_eq!(request("POST", &url, &[], "").0, 200);
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 request to a loopback URL; never follows redirects. Returns the status,
/// the headers (names lowercase) and the body.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let rest = url
        .strip_prefix("http://")
        .expect("loopback http URLs only");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let body = if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Follows the authorization URL's redirects as a browser would, until one points at the
/// loopback callback `callback_prefix`; then calls it (Tenure's listener answers) and returns
/// its query. Bounded to 10 hops.
pub fn complete_login(authorization_url: &str, callback_prefix: &str) -> String {
    let mut url = authorization_url.to_string();
    for _ in 0..10 {
        let (status, headers, body) = request("GET", &url, &[], "");
        if url.starts_with(callback_prefix) {
            assert_eq!(
                status, 200,
                "the loopback callback answered {status}: {body}"
            );
            return url
                .split_once('?')
                .map(|(_, q)| q.to_string())
                .unwrap_or_default();
        }
        let location = headers
            .iter()
            .find(|(n, _)| n == "location")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{url} answered {status} without a redirect: {body}"));
        url = if location.starts_with("http") {
            location
        } else {
            let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
            format!("{origin}{location}")
        };
    }
    panic!("the login did not reach the callback within 10 redirects");
}

/// A browser for a login in this process: the embedder's login URL hook, and the thread
/// that, once the hook got a URL (within 30 s), completes that login at the loopback
/// callback `callback_prefix`.
pub fn browser_thread(
    callback_prefix: String,
) -> (
    impl Fn(&str) + Send + Sync + 'static,
    std::thread::JoinHandle<()>,
) {
    let (urls, url) = mpsc::channel::<String>();
    let hook = move |login_url: &str| {
        let _ = urls.send(login_url.to_string());
    };
    let browser = std::thread::spawn(move || {
        let url = url
            .recv_timeout(Duration::from_secs(30))
            .expect("a login URL");
        complete_login(&url, &callback_prefix);
    });
    (hook, browser)
}

/// Starts `command` (a login run with `--no-browser`) and reads the authorization URL it
/// prints on stderr as `open: URL`, within its first 20 lines; the login then waits for its
/// callback. Stdout is discarded.
pub fn spawn_login(command: &mut Command) -> (Child, String) {
    let mut login = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the login command runs");
    let stderr = login.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let url = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("open: ").map(str::to_string))
        .expect("the login prints the authorization URL as `open: URL`");
    // Keep reading what follows (warnings, the outcome), so the login never writes into a
    // closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (login, url)
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client-credentials token request made directly at the server with `id` and `secret`
/// (basic auth); returns the status and the `error` member.
pub fn client_credentials(provider: &Provider, id: &str, secret: &str) -> (u16, String) {
    let credentials = base64(&format!("{id}:{secret}"));
    let authorization = format!("Basic {credentials}");
    let (status, _, body) = request(
        "POST",
        &format!("{}/token", provider.origin),
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "grant_type=client_credentials&scope=read",
    );
    let error = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, error)
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A child process killed when dropped, so a failing test leaves no server behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A protected API on 127.0.0.1 that checks bearer tokens by introspecting them at the
/// authorization server that issued them: each path prefix belongs to one server. Paths under
/// a forbidden prefix answer 403 to every valid token; an inactive or missing token gets 401;
/// anything else 200 with the body `ok PATH`. Returns the API's base URL.
pub fn start_resource_server(routes: &[(&str, &Provider)], forbidden: Option<&str>) -> String {
    let mut checks = Vec::new();
    for (prefix, provider) in routes {
        let (status, _, body) = request(
            "POST",
            &format!("{}/reg", provider.issuer),
            &[("Content-Type", "application/json")],
            r#"{"grant_types":["client_credentials"],"response_types":[],"redirect_uris":[],"token_endpoint_auth_method":"client_secret_post"}"#,
        );
        assert_eq!(
            status, 201,
            "registering the API's introspection client: {body}"
        );
        let client: Value = serde_json::from_str(&body).unwrap();
        checks.push((
            prefix.to_string(),
            format!("{}/token/introspection", provider.issuer),
            client["client_id"].as_str().unwrap().to_string(),
            client["client_secret"].as_str().unwrap().to_string(),
        ));
    }
    let forbidden = forbidden.map(str::to_string);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let checks = checks.clone();
            let forbidden = forbidden.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                let n = stream.read(&mut buffer).unwrap_or(0);
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let token = text
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().strip_prefix("Bearer ").map(str::to_string))?
                    })
                    .unwrap_or_default();
                let active = checks
                    .iter()
                    .find(|(prefix, ..)| path.starts_with(prefix.as_str()))
                    .is_some_and(|(_, endpoint, id, secret)| {
                        let form = format!("token={token}&client_id={id}&client_secret={secret}");
                        let (_, _, answer) = request(
                            "POST",
                            endpoint,
                            &[("Content-Type", "application/x-www-form-urlencoded")],
                            &form,
                        );
                        serde_json::from_str::<Value>(&answer)
                            .map(|v| v["active"] == true)
                            .unwrap_or(false)
                    });
                let denied = forbidden.as_deref().is_some_and(|f| path.starts_with(f));
                let (status, body) = match (active, denied) {
                    (false, _) => ("401 Unauthorized", "no valid token".to_string()),
                    (true, true) => ("403 Forbidden", "not for you".to_string()),
                    (true, false) => ("200 OK", format!("ok {path}")),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

/// A real `redis-server` on 127.0.0.1 and a free port, killed when dropped.
pub struct Redis {
    /// Its port.
    pub port: u16,
    _process: Guard,
}

impl Redis {
    /// Starts it and waits (bounded) until it accepts connections.
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// Starts it with extra `redis-server` arguments (e.g. `--requirepass`).
    pub fn start_with(extra: &[&str]) -> Redis {
        let port = free_port();
        let process = Guard(
            Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no"])
                .args(extra)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (Debian: apt-get install redis-server)"),
        );
        let started = std::time::Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not start within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis {
            port,
            _process: process,
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// One scripted answer of a [`FakeServer`].
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body, sent as it is.
    pub body: Vec<u8>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Any bytes, with a content type.
    pub fn raw(status: u16, content_type: &str, body: &[u8]) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.to_vec(),
        }
    }
}

/// A hostile or quirky server on 127.0.0.1 that answers `METHOD /path` (query ignored) with
/// scripted answers and records every request line; a path it has no answer for gets 404.
/// It serves until the test process ends.
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    hits: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeServer {
    /// Starts it; `answers` gets the origin and returns the scripted answers by
    /// `"METHOD /path"`.
    pub fn start(answers: impl FnOnce(&str) -> Vec<(String, Answer)>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let answers: std::collections::HashMap<String, Answer> =
            answers(&origin).into_iter().collect();
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let answers = answers.clone();
                let seen = seen.clone();
                std::thread::spawn(move || serve_one(stream, &answers, &seen));
            }
        });
        FakeServer { origin, hits }
    }

    /// Every request so far, as `METHOD /path`.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

fn serve_one(
    mut stream: TcpStream,
    answers: &std::collections::HashMap<String, Answer>,
    seen: &std::sync::Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let key = format!("{method} {path}");
    seen.lock().unwrap().push(key.clone());
    let answer = answers.get(&key).cloned().unwrap_or(Answer {
        status: 404,
        headers: Vec::new(),
        body: b"not here".to_vec(),
    });
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&answer.body);
}
