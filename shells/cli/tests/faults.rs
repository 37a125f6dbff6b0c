//! Faults at the authorization server: 5xx with an HTML page, a server that never answers,
//! a body that trickles a byte a second, a truncated body, a dropped connection, a 10 MB
//! answer, and a TLS endpoint with a certificate nobody trusts. Each must end in a clear
//! error within the request timeout — never a hang, never a panic — and leave the stored
//! record as it was, so the next run after the fault works.
//!
//! The server here is a small fake on 127.0.0.1 whose token endpoint can be told to
//! misbehave; the registration and metadata it serves are those of a well-behaved server.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::Tenure;

/// How the fake server answers the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    HtmlServerError,
    NeverAnswers,
    Trickle,
    Truncated,
    Dropped,
    TenMegabytes,
}

struct FakeServer {
    port: u16,
    fault: Arc<Mutex<Fault>>,
}

impl FakeServer {
    fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let shared = fault.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let fault = *shared.lock().unwrap();
                std::thread::spawn(move || answer(stream, port, fault));
            }
        });
        FakeServer { port, fault }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

fn read_request(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    // Headers, then as much body as Content-Length says (bounded reads).
    for _ in 0..64 {
        let Ok(n) = stream.read(&mut buffer) else {
            break;
        };
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

fn answer(mut stream: TcpStream, port: u16, fault: Fault) {
    let request = read_request(&mut stream);
    let line = request.lines().next().unwrap_or_default().to_string();
    let issuer = format!("http://127.0.0.1:{port}");
    let json = |status: &str, body: String| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = if line.starts_with("GET /.well-known/oauth-authorization-server") {
        json(
            "200 OK",
            serde_json::json!({
                "issuer": issuer,
                "token_endpoint": format!("{issuer}/token"),
                "registration_endpoint": format!("{issuer}/register"),
                "code_challenge_methods_supported": ["S256"],
                "response_types_supported": ["code"],
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            })
            .to_string(),
        )
    } else if line.starts_with("POST /register") {
        json(
            "201 Created",
            serde_json::json!({
                "client_id": "fault-client",
                "client_secret": "fault-secret-value",
                "client_secret_expires_at": 0,
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "response_types": [],
            })
            .to_string(),
        )
    } else if line.starts_with("POST /token") {
        let token = serde_json::json!({
            "access_token": "fault-access-token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })
        .to_string();
        match fault {
            Fault::None => json("200 OK", token),
            Fault::HtmlServerError => {
                let page = "<html><body><h1>502 Bad Gateway</h1><p>upstream down</p></body></html>";
                format!(
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                )
            }
            Fault::NeverAnswers => {
                std::thread::sleep(Duration::from_secs(20));
                return;
            }
            Fault::Trickle => {
                let full = json("200 OK", token);
                for byte in full.bytes().take(20) {
                    if stream.write_all(&[byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                return;
            }
            Fault::Truncated => {
                let full = json("200 OK", token);
                let cut = full.len() - 20;
                let _ = stream.write_all(&full.as_bytes()[..cut]);
                return;
            }
            Fault::Dropped => return,
            Fault::TenMegabytes => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{}",
                10 * 1024 * 1024,
                "{\"access_token\":\"".to_string() + &"x".repeat(64 * 1024)
            ),
        }
    } else {
        json("404 Not Found", "{}".into())
    };
    let _ = stream.write_all(reply.as_bytes());
}

/// Runs the binary and waits for it, at most `limit`; a run past that is a hang.
fn run_bounded(tenure: &Tenure, args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = tenure
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tenure {args:?} hung past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_fault_is_a_clear_error_within_the_timeout_and_the_record_survives() {
    let server = FakeServer::start();
    let tenure = Tenure::new("faults");
    tenure.add_machine_client(&server.issuer(), &[]);
    tenure.ok(&["token", "svc"]);
    let before = tenure.status("svc");
    // Two hours on, the access token has expired: every run must ask the token endpoint.
    let later = "2099-01-01T00:00:00Z";
    let cases = [
        (Fault::HtmlServerError, "502"),
        (Fault::NeverAnswers, "timed out"),
        (Fault::Trickle, "timed out"),
        (Fault::Truncated, "broke off"),
        (Fault::Dropped, "closed the connection"),
        (Fault::TenMegabytes, "limit"),
    ];
    for (fault, expected) in cases {
        server.set(fault);
        let args = ["--http-timeout", "3", "--now", later, "token", "svc"];
        // The request timeout is 3 s; allow generous slack for a loaded machine, but not
        // the 20 s the silent server would hold the connection.
        let (code, stderr) = run_bounded(&tenure, &args, Duration::from_secs(15));
        assert_ne!(code, 0, "{fault:?} must fail: {stderr}");
        assert!(!stderr.contains("panicked"), "{fault:?} panicked: {stderr}");
        assert!(
            stderr.contains(expected),
            "{fault:?}: expected `{expected}` in: {stderr}"
        );
        assert!(
            !stderr.contains("<html>"),
            "{fault:?}: an HTML page is not an error message"
        );
        assert!(!stderr.contains("fault-secret-value"), "INV-12: {stderr}");
        let after = tenure.status("svc");
        assert_eq!(
            after["client_id"], before["client_id"],
            "{fault:?} changed the identity"
        );
        assert_eq!(after["identity"], "dcr");
    }
    server.set(Fault::None);
    let recovered = tenure.run(&["--now", later, "token", "svc"]);
    assert_eq!(
        recovered.code, 0,
        "the stored record works after the faults: {recovered:?}"
    );
}

#[test]
fn a_tls_endpoint_with_an_untrusted_certificate_is_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bad-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    support::make_certificates(&dir);
    let port = support::free_port();
    let _server = support::Guard(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &port.to_string(),
                "-cert",
                "cert.pem",
                "-key",
                "key.pem",
            ])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts"),
    );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let tenure = Tenure::new("bad-tls");
    let issuer = format!("https://127.0.0.1:{port}");
    tenure.add_machine_client(&issuer, &[]);
    let (code, stderr) = run_bounded(
        &tenure,
        &["--http-timeout", "5", "token", "svc"],
        Duration::from_secs(20),
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("certificate"),
        "the error names the certificate: {stderr}"
    );
    // The same server with its CA named in SSL_CERT_FILE, as a company CA would be: the TLS
    // handshake succeeds, and what fails is only that the server is no authorization server.
    let ca = dir.join("ca.pem").display().to_string();
    let trusted = tenure.run_with(
        &["--http-timeout", "5", "token", "svc"],
        &[("SSL_CERT_FILE", ca.as_str())],
    );
    assert_ne!(trusted.code, 0, "{trusted:?}");
    assert!(
        !trusted.stderr.contains("certificate") && trusted.stderr.contains("not JSON"),
        "trusted through SSL_CERT_FILE: {trusted:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
