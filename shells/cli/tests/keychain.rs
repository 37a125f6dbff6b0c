//! The `tenure` binary with its secrets in the OS keychain, chosen by the setting
//! `TENURE_STORE=keychain:DIR` rather than `--store` on every command: against a real
//! authorization server (oidc-provider) and a real Secret Service (GNOME Keyring on a
//! private D-Bus session bus), the tokens and the client secret land in the keychain and
//! in no file, and an unreachable keychain is a clear error with nothing written. A
//! `private_key_jwt` client's key imported with `--private-key-keychain` is read from the
//! keychain alone, shows nowhere else, and goes with `tenure forget`.

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

/// The keychain entry `name` of Tenure's service, read directly.
fn entry(name: &str) -> keyring::Entry {
    keyring::Entry::new(tenure_keychain::SERVICE, name).expect("a keychain entry")
}

fn gone(name: &str) -> bool {
    matches!(entry(name).get_password(), Err(keyring::Error::NoEntry))
}

/// Writes a P-256 PKCS#8 PEM key made from `seed` to `path`; returns the PEM and its base64
/// body, the part that must never show anywhere else.
fn write_key(path: &std::path::Path, seed: u8) -> (String, String) {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    std::fs::write(path, &pem).unwrap();
    let body = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    (pem, body)
}

/// The keychain entry the profile `svc` of the sled store `dir` names for its key.
fn key_entry_of(dir: &std::path::Path) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let profile = runtime
        .block_on(
            tenure_sled::SledStore::open(dir)
                .unwrap()
                .load_profile("svc"),
        )
        .unwrap()
        .expect("the profile is stored");
    assert!(
        profile.get("private_key_file").is_none_or(|v| v.is_null())
            && profile.get("private_key_env").is_none_or(|v| v.is_null()),
        "the profile names the keychain entry alone: {profile}"
    );
    profile["private_key_keychain"]
        .as_str()
        .expect("the profile names a keychain entry")
        .to_string()
}

/// The arguments that add a `private_key_jwt` machine client `svc` whose key is imported from
/// `key_file` into the keychain.
fn add_key_client_args<'a>(issuer: &'a str, key_file: &'a std::path::Path) -> Vec<&'a str> {
    let mut add = support::add_machine_client_args(issuer);
    add.extend([
        "--auth-method",
        "private_key_jwt",
        "--private-key-file",
        key_file.to_str().unwrap(),
        "--private-key-keychain",
    ]);
    add
}

/// A dynamically registered `private_key_jwt` client whose key was imported into the keychain
/// gets tokens from oidc-provider; once the key file is deleted, a refused token is replaced
/// by a new one signed with the key from the keychain. The key shows in no output and in no
/// file of the store (INV-12), and `tenure forget` removes its entry.
#[test]
fn a_private_key_in_the_keychain_signs_after_its_file_is_gone() {
    let service = keychain::secret_service();
    let provider = Provider::start(&[]);
    // A plain sled store: the key alone goes to the keychain.
    let dir = keychain::scratch("key-import");
    let store = dir.display().to_string();
    let run = |args: &[&str]| tenure(&store, &service.address, args);
    let key_file = dir.with_extension("key.pem");
    let (pem, body) = write_key(&key_file, 42);

    let added = ok(
        run(&add_key_client_args(&provider.issuer, &key_file)),
        "add",
    );
    let first = ok(run(&["token", "svc"]), "token");
    assert!(!first.stdout.trim().is_empty(), "no token printed");
    assert_eq!(provider.count("registrations"), 1);
    assert_eq!(provider.count("token_client_credentials"), 1);

    std::fs::remove_file(&key_file).unwrap();
    let second = ok(
        run(&["token", "svc", "--refused"]),
        "token without the file",
    );
    assert!(!second.stdout.trim().is_empty(), "no token printed");
    assert_ne!(second.stdout, first.stdout, "a new token");
    assert_eq!(
        provider.count("token_client_credentials"),
        2,
        "a new assertion was signed"
    );
    assert_eq!(
        provider.count("updates"),
        0,
        "the registered key is the same"
    );
    let status = ok(run(&["--json", "status", "svc"]), "status");

    let name = key_entry_of(&dir);
    assert!(name.starts_with("private-key:svc/"), "{name}");
    assert_eq!(entry(&name).get_password().unwrap(), pem);
    for file in keychain::files(&dir) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !text.contains(&body) && !text.contains("PRIVATE KEY"),
            "the key is in {}",
            file.display()
        );
    }

    let forgotten = ok(run(&["forget", "svc"]), "forget");
    assert!(gone(&name), "forget removes the key's entry");
    for output in [&added, &first, &second, &status, &forgotten] {
        for text in [&output.stdout, &output.stderr] {
            assert!(
                !text.contains(&body) && !text.contains("PRIVATE KEY"),
                "{output:?}"
            );
        }
    }
}

/// A key entry that was removed or overwritten by hand is named in the error with the exact
/// commands that import the key again, never read from anywhere else; `tenure forget --local`
/// still works, and removes an entry that is there.
#[test]
fn a_missing_or_damaged_key_entry_says_how_to_import_it_again() {
    let service = keychain::secret_service();
    let dir = keychain::scratch("key-entry");
    let store = dir.display().to_string();
    let run = |args: &[&str]| tenure(&store, &service.address, args);
    let key_file = dir.with_extension("key.pem");
    write_key(&key_file, 7);
    let mut add = add_key_client_args("https://as.example.com", &key_file);
    add.extend(["--client-id", "machine"]);

    ok(run(&add), "add");
    let name = key_entry_of(&dir);
    let reimport = "`tenure forget svc --local`, then `tenure add svc --issuer \
                    https://as.example.com --scope read --client-id machine --auth-method \
                    private_key_jwt --grant client_credentials --private-key-file KEY.pem \
                    --private-key-keychain`";

    // With the keychain gone, the key is not read from anywhere else.
    let nowhere = format!("unix:path={}", dir.with_extension("no-bus").display());
    std::fs::remove_file(&key_file).unwrap();
    let unreachable = tenure(&store, &nowhere, &["token", "svc"]);
    assert_eq!(unreachable.code, 1, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains(
            "cannot read the private key of `svc` from the OS keychain: no keychain is reachable"
        ),
        "{unreachable:?}"
    );

    entry(&name).set_password("not a key: s3cr3t").unwrap();
    let damaged = run(&["token", "svc"]);
    assert_eq!(damaged.code, 1, "{damaged:?}");
    assert!(
        damaged.stderr.contains("holds no usable private key")
            && damaged.stderr.contains(reimport)
            && !damaged.stderr.contains("s3cr3t"),
        "{damaged:?}"
    );

    entry(&name).delete_credential().unwrap();
    let missing = run(&["token", "svc"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing.stderr.contains("no longer in the OS keychain")
            && missing.stderr.contains(&name)
            && missing.stderr.contains(reimport),
        "{missing:?}"
    );
    ok(
        run(&["forget", "svc", "--local"]),
        "forget without the entry",
    );

    // Imported again under a new entry, which `forget --local` removes.
    write_key(&key_file, 7);
    ok(run(&add), "add again");
    let again = key_entry_of(&dir);
    assert_ne!(again, name, "a new entry");
    assert!(!gone(&again));
    ok(run(&["forget", "svc", "--local"]), "forget --local");
    assert!(gone(&again), "forget --local removes the key's entry");
}

/// With no keychain to take the key, `tenure add --private-key-keychain` fails, says what to
/// do, and writes nothing: not the store, and not the key anywhere.
#[test]
fn importing_a_key_with_no_keychain_is_a_clear_error_and_writes_nothing() {
    let dir = keychain::scratch("key-unreachable");
    let key_file = dir.with_extension("key.pem");
    let (_, body) = write_key(&key_file, 9);
    let nowhere = format!("unix:path={}", dir.with_extension("no-bus").display());
    let mut add = add_key_client_args("https://as.example.com", &key_file);
    add.extend(["--client-id", "machine"]);
    let run = tenure(&dir.display().to_string(), &nowhere, &add);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("no keychain is reachable")
            && run.stderr.contains("DBUS_SESSION_BUS_ADDRESS")
            && run.stderr.contains("leave out --private-key-keychain"),
        "{run:?}"
    );
    assert!(!run.stderr.contains(&body) && !run.stdout.contains(&body));
    assert!(!dir.exists(), "nothing may be written without a keychain");
}
