//! `registry-login` end to end: a real authorization server (oidc-provider), a tiny registry
//! that checks tokens by introspecting them at that server, and the binary driven as a user
//! drives it.

use std::path::PathBuf;
use std::process::{Command, Output};

use tenure_test_harness::{
    complete_login, free_port, spawn_login, start_resource_server, Provider,
};

struct Cli {
    config: PathBuf,
    data: PathBuf,
}

impl Cli {
    fn new() -> Cli {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("registry-login-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Cli {
            config: dir.join("config/config.json"),
            data: dir.join("data"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_registry-login"));
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--data")
            .arg(&self.data)
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().unwrap();
        (
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }
}

#[test]
fn login_fetch_refresh_forbidden_logout_and_non_interactive_errors() {
    // Access tokens of 2 s: Tenure hands one out for 1.8 s, and a use after that refreshes
    // it transparently.
    let provider = Provider::start(&["--access-token-ttl", "2"]);
    // The registry: `/private/...` is forbidden to everyone, the rest needs a valid token.
    let registry = start_resource_server(&[("/", &provider)], Some("/private"));
    let cli = Cli::new();

    let (code, _, stderr) = cli.run(&["token", &registry]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("registry-login login {registry} --issuer")),
        "{stderr}"
    );

    let port = free_port().to_string();
    let (mut login, url) = spawn_login(&mut cli.command(&[
        "login",
        &registry,
        "--issuer",
        &provider.issuer,
        "--scope",
        "read",
        "--scope",
        "offline_access",
        "--redirect-port",
        &port,
        "--no-browser",
    ]));
    complete_login(&url, &format!("http://127.0.0.1:{port}/callback"));
    assert!(login.wait().unwrap().success());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cli.config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the configuration file is private");
    }

    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let (code, body, stderr) = cli.run(&["get", &registry, "/pkg/left-pad"]);
    assert_eq!((code, body.as_str()), (0, "ok /pkg/left-pad"), "{stderr}");
    let refreshes = provider.count("token_refresh_token");
    assert!(
        refreshes >= 1,
        "the near-expiry token was refreshed transparently"
    );
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let (code, body, _) = cli.run(&["get", &registry, "/pkg/left-pad"]);
    assert_eq!((code, body.as_str()), (0, "ok /pkg/left-pad"));
    assert!(
        provider.count("token_refresh_token") > refreshes,
        "refreshed again"
    );

    let (code, _, stderr) = cli.run(&["get", &registry, "/private/secret-pkg"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("403") && stderr.contains("lacks permission"),
        "{stderr}"
    );

    let (code, _, stderr) = cli.run(&["logout", &registry]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = cli.run(&["token", &registry]);
    assert_eq!(
        code, 4,
        "non-interactive use after logout must not open a browser: {stderr}"
    );
    assert!(
        stderr.contains(&format!("run `registry-login login {registry}`")),
        "{stderr}"
    );
    let config = std::fs::read_to_string(&cli.config).unwrap();
    assert!(config.contains(&registry), "logout keeps the configuration");
    assert_eq!(
        provider.count("registrations"),
        2,
        "one for the registry, one for us"
    );
}

#[test]
fn plain_http_off_loopback_is_refused_before_anything_is_sent() {
    let cli = Cli::new();
    let (code, _, stderr) = cli.run(&[
        "login",
        "http://registry.example.com",
        "--issuer",
        "https://auth.example.com",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not https"), "{stderr}");
    assert!(
        !cli.config.exists(),
        "nothing is written for a refused login"
    );
}
