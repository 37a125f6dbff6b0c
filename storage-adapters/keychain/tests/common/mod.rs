//! A real Secret Service for the tests: a private D-Bus session bus and GNOME Keyring's
//! daemon on it, unlocked with a test password, started once per test binary.
//!
//! Both run only on this machine, in a directory of their own under cargo's scratch space
//! (the keyring files included), and a watchdog stops both by process id once the test
//! process is gone (or after an hour at most). When they cannot start, the tests fail and
//! say which Debian package to install: a keychain test never skips.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The password the test keyring is created and unlocked with.
const KEYRING_PASSWORD: &str = "tenure-test-keyring";

/// The private session bus the keyring daemon serves, started on first use.
pub struct SecretService {
    /// The bus address, also set as `DBUS_SESSION_BUS_ADDRESS` in this process.
    pub address: String,
    /// The directory holding the bus socket, the keyring files and the daemon's log.
    pub dir: PathBuf,
}

/// Starts the Secret Service on first call; every store test calls it before opening one.
pub fn secret_service() -> &'static SecretService {
    static STARTED: OnceLock<SecretService> = OnceLock::new();
    STARTED.get_or_init(start)
}

fn start() -> SecretService {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("keychain-bus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["data", "run"] {
        std::fs::create_dir_all(dir.join(sub)).expect("the test bus directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(dir.join("run"), private).expect("a private runtime directory");
    }
    let socket = dir.join("bus");
    let started = Command::new("dbus-daemon")
        .args(["--session", "--fork", "--print-pid=1", "--nopidfile"])
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| {
            panic!("dbus-daemon could not start ({e}): install Debian's `dbus` package")
        });
    assert!(
        started.status.success(),
        "dbus-daemon failed to start a session bus ({})",
        started.status
    );
    let bus_pid: u32 = String::from_utf8_lossy(&started.stdout)
        .trim()
        .parse()
        .expect("dbus-daemon printed its process id");
    let address = format!("unix:path={}", socket.display());

    let log = std::fs::File::create(dir.join("gnome-keyring.log")).expect("a log file");
    let mut keyring = Command::new("gnome-keyring-daemon")
        .args(["--unlock", "--components=secrets", "--foreground"])
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            stop(&[bus_pid]);
            panic!("gnome-keyring-daemon could not start ({e}): install Debian's `gnome-keyring` package")
        });
    // The password on stdin, then end of input: the daemon creates the login keyring with it
    // and unlocks it.
    {
        let mut stdin = keyring.stdin.take().expect("the daemon's stdin");
        stdin
            .write_all(KEYRING_PASSWORD.as_bytes())
            .expect("the keyring password was written");
    }
    let keyring_pid = keyring.id();

    // The watchdog outlives this process by design: it stops both daemons by process id once
    // the test process has exited, and gives up after an hour whatever happens. Nobody waits
    // for it here; init reaps it once this process is gone.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(
            "i=0; while kill -0 \"$1\" 2>/dev/null && [ \"$i\" -lt 3600 ]; do \
             sleep 1; i=$((i+1)); done; kill \"$2\" \"$3\" 2>/dev/null; exit 0",
        )
        .args([
            "watchdog",
            &std::process::id().to_string(),
            &bus_pid.to_string(),
            &keyring_pid.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the watchdog that stops the test daemons");

    // Bounded wait (10 s) until the daemon owns the Secret Service's name on the bus.
    let mut ready = false;
    for _ in 0..100 {
        let answer = Command::new("dbus-send")
            .args([
                "--session",
                "--dest=org.freedesktop.DBus",
                "--print-reply",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stderr(Stdio::null())
            .output();
        if let Ok(answer) = answer {
            if String::from_utf8_lossy(&answer.stdout).contains("boolean true") {
                ready = true;
                break;
            }
        }
        if let Ok(Some(status)) = keyring.try_wait() {
            stop(&[bus_pid]);
            panic!(
                "gnome-keyring-daemon exited ({status}); see {}",
                dir.join("gnome-keyring.log").display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !ready {
        stop(&[bus_pid, keyring_pid]);
        panic!("the Secret Service did not appear on the test bus within 10 s");
    }
    // Every store opened from now on talks to this bus. Set once, before the first store
    // is opened; the tests that need it all wait on the `OnceLock` above.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &address);
    SecretService { address, dir }
}

fn stop(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
}

/// A new, empty directory under cargo's scratch space.
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("keychain-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every file under `dir`, recursively.
pub fn files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
