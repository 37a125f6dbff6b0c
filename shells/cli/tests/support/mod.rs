//! What the black-box tests of the `tenure` binary share: the test harness (a real
//! authorization server, a tiny HTTP client, a headless browser, child guards) and a runner
//! for the binary with its own store.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

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
        let mut login = self
            .command(&["login", name, "--no-browser"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tenure binary runs");
        let stderr = login.stderr.take().unwrap();
        let url = BufReader::new(stderr)
            .lines()
            .take(20)
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("open: ").map(str::to_string))
            .expect("tenure login prints the authorization URL as `open: URL`");
        (login, url)
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
