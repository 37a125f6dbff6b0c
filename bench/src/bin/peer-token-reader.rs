//! The yardstick of the warm `tenure token` process: what a peer command-line client does
//! when it keeps its token in one JSON file. It reads the file, checks the expiry and prints
//! the token.
//!
//! ```text
//! peer-token-reader FILE
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: peer-token-reader FILE");
        return ExitCode::from(2);
    };
    let Ok(text) = std::fs::read(&path) else {
        return ExitCode::FAILURE;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return ExitCode::FAILURE;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match (value["access_token"].as_str(), value["expires_at"].as_u64()) {
        (Some(token), Some(expires)) if expires > now => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        _ => ExitCode::FAILURE,
    }
}
