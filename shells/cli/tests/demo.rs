//! `tenure demo` as a user runs it: the binary, its exit code and what it prints.

use std::process::Command;

fn demo(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("demo")
        .args(args)
        .output()
        .expect("the tenure binary runs");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    (output.status.code().unwrap_or(-1), stdout)
}

#[test]
fn demo_walks_registration_expiring_renewed_expired_and_exits_0() {
    let (code, stdout) = demo(&[]);
    assert_eq!(code, 0, "{stdout}");
    let position = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing from:\n{stdout}"))
    };
    let order = [
        "state      registering",
        "POST   https://as.sim.test/register -> 201",
        "state      expiring",
        "PUT    https://as.sim.test/register/",
        "state      renewed",
        "token is served from the stored record",
        "state      expired",
        "client secret expired at",
    ];
    let positions: Vec<usize> = order.iter().map(|needle| position(needle)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order:\n{stdout}"
    );
    // No secret is printed: the demo's timeline shows URLs without queries.
    assert!(!stdout.contains("client_secret="));
    assert!(!stdout.contains("code="));
}

#[test]
fn demo_json_is_one_object_per_line() {
    let (code, stdout) = demo(&["--json"]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert!(lines.len() > 20);
    let last = lines.last().unwrap();
    assert_eq!(last["summary"]["registrations"], 1);
    assert_eq!(last["summary"]["renewals"], 2);
}

#[test]
fn unknown_commands_are_usage_errors_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("no-such-command")
        .output()
        .expect("the tenure binary runs");
    assert_eq!(output.status.code(), Some(2));
}

/// A reader that went away before the output (`tenure demo | true`) ends the command quietly:
/// exit 0 and no panic on stderr. The pipe's read end is closed before the program writes
/// its first line (it simulates a whole lifecycle first).
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the tenure binary runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
