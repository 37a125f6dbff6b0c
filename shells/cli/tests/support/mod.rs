//! What the black-box tests of the `tenure` binary share: the test harness (a real
//! authorization server, a tiny HTTP client, a headless browser, child guards) and a runner
//! for the binary with its own store.

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
pub use tenure_test_harness::*;

/// The `tenure` binary with a store of its own.
pub struct Tenure {
    pub store: PathBuf,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Tenure {
    /// A new, empty sled store under cargo's scratch space.
    pub fn new(name: &str) -> Tenure {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let store = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "cli-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&store);
        Tenure { store }
    }

    /// The command, with `--store` set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
        command.arg("--store").arg(&self.store).args(args);
        command.env_remove("RUST_LOG");
        command
    }

    /// Runs it to its end (bounded by the binary's own timeouts).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// Runs it with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("the tenure binary runs");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Runs it and insists on exit 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "tenure {args:?} failed: {run:?}");
        run
    }

    /// Starts `tenure login NAME --no-browser` and reads the authorization URL it prints
    /// (`open: URL` on stderr); the login then waits for its callback.
    pub fn start_login(&self, name: &str) -> (Child, String) {
        spawn_login(&mut self.command(&["login", name, "--no-browser"]))
    }

    /// `tenure add svc --issuer ISSUER --grant client_credentials --scope read EXTRA…`: the
    /// machine client most tests use, with their own options appended.
    pub fn add_machine_client(&self, issuer: &str, extra: &[&str]) {
        let mut args = add_machine_client_args(issuer);
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// `tenure add NAME --issuer ISSUER --scope read --redirect-port P EXTRA…`: a user client
    /// on a free loopback port, which is returned.
    pub fn add_user_client(&self, name: &str, issuer: &str, extra: &[&str]) -> String {
        let port = free_port().to_string();
        let mut args = vec![
            "add",
            name,
            "--issuer",
            issuer,
            "--scope",
            "read",
            "--redirect-port",
            &port,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
        port
    }

    /// Logs NAME in headlessly through its loopback callback on `port`, and insists on
    /// success.
    pub fn log_in(&self, name: &str, port: &str) {
        let (mut login, url) = self.start_login(name);
        complete_login(&url, &format!("http://127.0.0.1:{port}/callback"));
        assert!(
            login.wait().unwrap().success(),
            "tenure login {name} failed"
        );
    }

    /// `tenure status NAME --json`, parsed.
    pub fn status(&self, name: &str) -> Value {
        let run = self.ok(&["--json", "status", name]);
        serde_json::from_str(run.stdout.trim()).unwrap()
    }

    /// The stored record of the store's only client, secrets included (for checking them
    /// against the server). The binary must not be running.
    pub fn record(&self) -> tenure_core::Record {
        let store = tenure_sled::SledStore::open(&self.store).unwrap();
        let mut records = store.records().unwrap();
        assert_eq!(records.len(), 1, "expected one record");
        records.remove(0)
    }
}

impl Tenure {
    /// A runner on a store given by location: a sled directory, or a `redis://` URL that
    /// several runners (processes of one fleet) share.
    pub fn on(store: impl Into<PathBuf>) -> Tenure {
        Tenure {
            store: store.into(),
        }
    }

    /// Starts the binary in the background with extra environment variables; it is killed
    /// (SIGKILL) if still running when the handle is dropped.
    pub fn spawn_with(&self, args: &[&str], env: &[(&str, &str)]) -> Background {
        let mut command = self.command(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = spawn_piped(command);
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        Background {
            guard: Guard(child),
            stdout,
            stderr,
        }
    }

    /// The stored record of the store's only client, if there is one (sled only; the binary
    /// must not be running).
    pub fn stored(&self) -> Option<tenure_core::Record> {
        let store = tenure_sled::SledStore::open(&self.store).unwrap();
        let mut records = store.records().unwrap();
        assert!(records.len() <= 1, "expected at most one record");
        records.pop()
    }
}

/// A `tenure` process running in the background, killed when dropped.
pub struct Background {
    guard: Guard,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Background {
    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.guard.0.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL, then reaps it. Returns whether it was still running.
    pub fn kill(&mut self) -> bool {
        let running = !self.exited();
        let _ = self.guard.0.kill();
        let _ = self.guard.0.wait();
        running
    }

    /// Waits for its end, at most `within` (then it is killed and the test fails).
    pub fn finish(mut self, within: Duration) -> Run {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = self.guard.0.try_wait() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "tenure did not finish within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.join().unwrap_or_default(),
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}

/// Makes every RFC 7592 PUT wait `ms` milliseconds at the server before it is carried out
/// (0: no delay). See the server's README.
pub fn delay_updates(provider: &Provider, ms: u64) {
    let url = provider.admin(&format!("delay-updates?ms={ms}"));
    assert_eq!(request("POST", &url, &[], "").0, 200);
}

/// How many `method` requests the server is still answering (listed without a status).
pub fn in_flight(provider: &Provider, method: &str) -> usize {
    provider.counts()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == method && r.get("status").is_none())
        .count()
}

/// Makes, in `dir`, a private CA (`ca.pem`, `ca.key`) and a certificate it issued for
/// 127.0.0.1 (`cert.pem`, `key.pem`), with the openssl command line.
pub fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let made = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl must be installed to make certificates");
        assert!(made.success(), "openssl {args:?} failed");
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Tenure test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "cert.pem",
    ]);
}

/// Starts `command` with no stdin and both output pipes open, for tests that read them.
pub fn spawn_piped(mut command: std::process::Command) -> std::process::Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tenure binary runs")
}

/// The arguments of [`Tenure::add_machine_client`], for tests that run the binary another way.
pub fn add_machine_client_args(issuer: &str) -> Vec<&str> {
    vec![
        "add",
        "svc",
        "--issuer",
        issuer,
        "--grant",
        "client_credentials",
        "--scope",
        "read",
    ]
}
