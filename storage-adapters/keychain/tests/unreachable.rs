//! With no keychain to reach, opening the store fails and says what to do, and nothing is
//! created on disk: secrets never fall back to files.

use tenure_keychain::KeychainStore;

#[test]
fn no_keychain_is_a_clear_error_and_no_fallback() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("keychain-unreachable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A session bus address where no bus listens; the only test in this binary, so no other
    // thread reads the environment meanwhile.
    std::env::set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", dir.join("no-bus-here").display()),
    );
    let error = KeychainStore::open(&dir).expect_err("no keychain is reachable");
    let text = error.to_string();
    assert!(text.contains("no keychain is reachable"), "{text}");
    assert!(text.contains("Secret Service"), "{text}");
    assert!(text.contains("--store PATH"), "{text}");
    assert!(
        !dir.exists(),
        "nothing may be created when the keychain is unreachable"
    );
}
