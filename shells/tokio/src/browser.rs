//! Sending the user to the authorization URL: the system browser (never an embedded web
//! view, NAT-8), or the URL printed for the user to open.

use std::process::{Command, Stdio};

/// How the authorization URL reaches the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowserMode {
    /// Open the system browser, and print the URL too in case it does not open.
    Open,
    /// Only print the URL (`--no-browser`).
    Print,
}

/// Shows `url` to the user. The URL is printed on stderr on its own line, prefixed `open: `,
/// so scripts and tests can pick it up.
pub fn show(url: &str, mode: BrowserMode) {
    eprintln!("open: {url}");
    if mode == BrowserMode::Open && !launch(url) {
        eprintln!("(could not start a browser; open the URL above yourself)");
    }
}

fn launch(url: &str) -> bool {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}
