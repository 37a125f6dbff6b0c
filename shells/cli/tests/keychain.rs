//! The `tenure` binary with its secrets in the OS keychain, chosen by the setting
//! `TENURE_STORE=keychain:DIR` rather than `--store` on every command: against a real
//! authorization server (oidc-provider) and a real Secret Service (GNOME Keyring on a
//! private D-Bus session bus), the tokens and the client secret land in the keychain and
//! in no file, and an unreachable keychain is a clear error with nothing written.

mod support;

#[path = "../../../storage-adapters/keychain/tests/common/mod.rs"]
mod keychain;

use std::process::Command;

use support::{Provider, Run};
use tenure_store::Store;

/// `tenure ARGS` with only the setting naming the store, and the test's session bus.
fn tenure(store: &str, bus: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .env("TENURE_STORE", store)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("the tenure binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn ok(run: Run, what: &str) -> Run {
    assert_eq!(run.code, 0, "tenure {what} failed: {run:?}");
    run
}

#[test]
fn the_store_setting_keeps_every_secret_in_the_keychain() {
    let service = keychain::secret_service();
    let provider = Provider::start(&[]);
    let dir = keychain::scratch("cli");
    let store = format!("keychain:{}", dir.display());
    let run = |args: &[&str]| tenure(&store, &service.address, args);

    let mut add = support::add_machine_client_args(&provider.issuer);
    add.extend(["--auth-method", "client_secret_basic"]);
    ok(run(&add), "add");
    let first = ok(run(&["token", "svc"]), "token");
    let token = first.stdout.trim().to_string();
    assert!(!token.is_empty(), "no token printed");
    assert_eq!(provider.count("registrations"), 1);
    let warm = ok(run(&["token", "svc"]), "token (warm)");
    assert_eq!(warm.stdout.trim(), token, "the stored token is read back");
    assert_eq!(
        provider.count("token_client_credentials"),
        1,
        "the second token came from the store"
    );

    let status = ok(run(&["--json", "status", "svc"]), "status");
    assert!(status.stdout.contains("\"identity\":\"dcr\""), "{status:?}");

    // The client secret the server issued, read back through the keychain store itself: the
    // directory's record only names the keychain entries.
    let stripped = tenure_sled::SledStore::open(tenure_keychain::records_dir(&dir))
        .unwrap()
        .records()
        .unwrap()
        .remove(0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let full = runtime
        .block_on(
            tenure_keychain::KeychainStore::open(&dir)
                .unwrap()
                .get(&stripped.key),
        )
        .unwrap()
        .expect("the record reads back with its secrets");
    let secret = full
        .dcr
        .and_then(|dcr| dcr.client_secret)
        .expect("a confidential client has a secret")
        .expose()
        .to_string();

    let files = keychain::files(&dir);
    assert!(!files.is_empty(), "the record lives in the directory");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for planted in [&token, &secret] {
            assert!(
                !text.contains(planted.as_str()),
                "a secret is in {}",
                file.display()
            );
        }
    }
    for output in [&first, &warm, &status] {
        for planted in [&token, &secret] {
            assert!(!output.stderr.contains(planted.as_str()), "{output:?}");
        }
        assert!(!output.stdout.contains(&secret), "{output:?}");
    }
}

#[test]
fn an_unreachable_keychain_from_the_setting_is_a_clear_error() {
    let dir = keychain::scratch("cli-unreachable");
    let store = format!("keychain:{}", dir.display());
    let nowhere = format!("unix:path={}", dir.with_extension("no-bus").display());
    let run = tenure(&store, &nowhere, &["status", "svc"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("no keychain is reachable"), "{run:?}");
    assert!(
        !dir.exists(),
        "nothing may be written when the keychain is unreachable"
    );
}
