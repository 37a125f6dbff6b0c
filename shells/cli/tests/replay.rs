//! `tenure replay` as a user runs it: the summary, and exit 3 on a divergence.

use std::process::Command;

fn replay(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("replay")
        .args(args)
        .output()
        .expect("the tenure binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn corpus(name: &str) -> String {
    format!(
        "{}/../../testing/traces/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_trace_replays_to_a_json_summary() {
    let (code, stdout, stderr) = replay(&[
        "--json",
        &corpus("keycloak-single-use-registration-access-token"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for field in [
        "outcome",
        "error",
        "requests",
        "registrations",
        "renewals",
        "refreshes",
        "diverged",
        "record",
    ] {
        assert!(summary.get(field).is_some(), "{field} missing");
    }
    assert_eq!(summary["outcome"], "ok");
    assert_eq!(summary["renewals"], 2);
    assert!(
        !stdout.contains("\"s2\""),
        "secrets in the record are redacted"
    );
}

#[test]
fn a_request_the_trace_cannot_answer_is_exit_3() {
    let text = std::fs::read_to_string(corpus("secret-expired-on-receipt")).unwrap();
    // Without the renewal answer, the client's PUT has nowhere to go.
    let cut: String = text
        .lines()
        .filter(|l| !l.contains("\"PUT\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cut-trace.jsonl");
    std::fs::write(&path, cut).unwrap();
    let (code, stdout, _) = replay(&[path.to_str().unwrap()]);
    assert_eq!(code, 3, "{stdout}");
    assert!(
        stdout.contains("diverged: the client sent PUT https://as.example.com/register/c1"),
        "{stdout}"
    );
}

#[test]
fn a_broken_trace_names_its_line() {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("broken-trace.jsonl");
    std::fs::write(
        &path,
        "{\"type\":\"config\",\"client\":{\"issuer\":\"https://as.example.com\"}}\nnot json\n",
    )
    .unwrap();
    let (code, _, stderr) = replay(&[path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}
