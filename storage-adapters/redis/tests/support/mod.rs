//! Real Redis servers for the tests: `redis-server` from the system's packages, on 127.0.0.1
//! and a free port, stopped when the test ends. A server that cannot start fails the test
//! loudly; nothing is skipped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A running server process, killed when dropped.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
    pub dir: PathBuf,
}

impl Server {
    /// Starts `redis-server` with `extra` arguments and waits (bounded) until it answers.
    pub fn start(name: &str, extra: &[&str]) -> Server {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("redis-{name}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec![
            "--port".to_string(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::spawn("redis-server", &args, port, dir)
    }

    /// Starts a Sentinel watching `master_port` under the name `master`.
    pub fn sentinel(master: &str, master_port: u16) -> Server {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sentinel-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {master} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {master} 500\n\
                 sentinel failover-timeout {master} 2000\n\
                 sentinel parallel-syncs {master} 1\n",
                dir.display()
            ),
        )
        .unwrap();
        Server::spawn(
            "redis-server",
            &[config.display().to_string(), "--sentinel".into()],
            port,
            dir,
        )
    }

    fn spawn(program: &str, args: &[String], port: u16, dir: PathBuf) -> Server {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {program} ({e}): install Redis (Debian: \
                     `apt-get install redis-server redis-sentinel`) and retry"
                )
            });
        let server = Server {
            port,
            child: Some(child),
            dir,
        };
        server.wait_until_answering();
        server
    }

    fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "Redis on port {} did not answer PING within 20 s",
            self.port
        );
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether something on `port` answers a Redis PING.
pub fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream
        .read(&mut answer)
        .map(|n| n > 0 && answer.starts_with(b"+PONG"))
        .unwrap_or(false)
}

/// One server shared by every test of a test binary, started on first use and stopped when
/// the binary exits: a watcher shell kills it as soon as the test process's pipe closes, so
/// no server outlives its tests even though statics are never dropped.
pub fn shared() -> &'static SharedServer {
    static SERVER: std::sync::OnceLock<SharedServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(SharedServer::start)
}

pub struct SharedServer {
    pub port: u16,
    // Held open for the life of the process; its end is the watcher's signal.
    _guard: std::sync::Mutex<Child>,
}

impl SharedServer {
    fn start() -> SharedServer {
        let port = free_port();
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill -9 $pid"
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start sh to run redis-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ping(port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {port} within 20 s: install Redis \
                 (Debian: `apt-get install redis-server`) and retry"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SharedServer {
            port,
            _guard: std::sync::Mutex::new(child),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}
