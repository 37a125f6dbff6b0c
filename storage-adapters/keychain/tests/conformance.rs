//! The keychain store passes the conformance kit against a real Secret Service (GNOME
//! Keyring on a private D-Bus session), and its files on disk, its `Debug` output and its
//! errors hold none of the secrets it keeps.

mod common;

use std::sync::Arc;

use common::{files, scratch, secret_service};
use tenure_core::Secret;
use tenure_keychain::{records_dir, KeychainStore, SERVICE};
use tenure_sled::SledStore;
use tenure_store::kit::{full_record, plain_key};
use tenure_store::{CasOutcome, Record, Store};

async fn fresh() -> Arc<dyn Store> {
    secret_service();
    Arc::new(KeychainStore::open(scratch("kit")).expect("a fresh keychain store opens"))
}

tenure_store::conformance_tests!(fresh, 32);

/// `record` with every secret replaced by a recognisable planted value, marked `round`.
fn planted(mut record: Record, round: u32) -> (Record, Vec<String>) {
    let mut values = Vec::new();
    let mut plant = |name: &str| {
        let value = format!("planted-{name}-{round}");
        values.push(value.clone());
        Secret::new(value)
    };
    if let Some(dcr) = record.dcr.as_mut() {
        dcr.client_secret = Some(plant("client-secret"));
        dcr.registration_access_token = Some(plant("registration-access-token"));
    }
    if let Some(tokens) = record.tokens.as_mut() {
        tokens.access_token = plant("access-token");
        tokens.refresh_token = Some(plant("refresh-token"));
    }
    (record, values)
}

/// The keychain entry names a record in sled refers to, read with sled itself.
fn references(dir: &std::path::Path) -> Vec<String> {
    let sled = SledStore::open(records_dir(dir)).expect("the records open");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let stripped = runtime
        .block_on(sled.get(&plain_key()))
        .expect("the stripped record reads")
        .expect("the stripped record is there");
    stripped
        .secrets()
        .iter()
        .map(|slot| {
            slot.expose()
                .strip_prefix("keychain:")
                .unwrap_or_else(|| panic!("a secret slot in sled is not a reference"))
                .to_string()
        })
        .collect()
}

fn entry(name: &str) -> keyring::Entry {
    keyring::Entry::new(SERVICE, name).expect("a keychain entry")
}

fn assert_nothing_on_disk(dir: &std::path::Path, planted: &[String]) {
    let files = files(dir);
    assert!(!files.is_empty(), "the store wrote no files");
    for file in files {
        let bytes = std::fs::read(&file).expect("a readable store file");
        for value in planted {
            assert!(
                !bytes
                    .windows(value.len())
                    .any(|window| window == value.as_bytes()),
                "{value} was found in {}",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_live_in_the_keychain_and_nowhere_on_disk() {
    secret_service();
    let dir = scratch("planted");
    let key = plain_key();
    let (first, mut all) = planted(full_record(&key, 1), 1);
    let (second, more) = planted(full_record(&key, 2), 2);
    all.extend(more);

    let store = KeychainStore::open(&dir).expect("the store opens");
    store.compare_and_swap(&key, None, &first).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(first.clone()));
    drop(store);
    let first_entries = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || references(&dir)
    })
    .await
    .unwrap();
    assert_eq!(first_entries.len(), 4, "four secrets, four entries");
    let held: Vec<String> = tokio::task::spawn_blocking({
        let names = first_entries.clone();
        move || {
            names
                .iter()
                .map(|n| entry(n).get_password().unwrap())
                .collect()
        }
    })
    .await
    .unwrap();
    let mut expected: Vec<String> = first.secrets().iter().map(|s| s.expose().into()).collect();
    let mut sorted = held.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "the keychain holds the planted secrets");

    // A second write replaces the entries; the first ones are deleted once it applied.
    let store = KeychainStore::open(&dir).expect("the store opens again");
    assert_eq!(
        store
            .compare_and_swap(&key, Some(1), &second)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert_eq!(store.get(&key).await.unwrap(), Some(second.clone()));
    let gone = tokio::task::spawn_blocking({
        let names = first_entries.clone();
        move || {
            names
                .iter()
                .all(|n| matches!(entry(n).get_password(), Err(keyring::Error::NoEntry)))
        }
    })
    .await
    .unwrap();
    assert!(gone, "the replaced record's entries are deleted");

    let shown = format!("{store:?} {:?}", store.get(&key).await.unwrap());
    for value in &all {
        assert!(!shown.contains(value.as_str()), "Debug shows {value}");
    }
    drop(store);
    assert_nothing_on_disk(&dir, &all);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "the store directory must be 0700");
        for file in files(&dir) {
            assert_eq!(mode(&file), 0o600, "{} must be 0600", file.display());
        }
    }

    // A delete removes the record and then its entries.
    let second_entries = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || references(&dir)
    })
    .await
    .unwrap();
    let store = KeychainStore::open(&dir).expect("the store opens again");
    assert_eq!(store.delete(&key, 2).await.unwrap(), CasOutcome::Applied);
    assert_eq!(store.get(&key).await.unwrap(), None);
    drop(store);
    let gone = tokio::task::spawn_blocking(move || {
        second_entries
            .iter()
            .all(|n| matches!(entry(n).get_password(), Err(keyring::Error::NoEntry)))
    })
    .await
    .unwrap();
    assert!(gone, "a deleted record's entries are deleted");
    assert_nothing_on_disk(&dir, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_entry_or_a_plain_secret_is_reported_without_a_secret() {
    secret_service();
    let key = plain_key();

    // An entry removed behind the store's back: the record is reported damaged, by key and
    // field, quoting nothing.
    let dir = scratch("missing");
    let (record, values) = planted(full_record(&key, 1), 3);
    let store = KeychainStore::open(&dir).unwrap();
    store.compare_and_swap(&key, None, &record).await.unwrap();
    drop(store);
    let names = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || references(&dir)
    })
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || entry(&names[0]).delete_credential().unwrap())
        .await
        .unwrap();
    let store = KeychainStore::open(&dir).unwrap();
    let error = store.get(&key).await.unwrap_err();
    assert!(error.is_corrupt(), "{error}");
    let text = format!("{error} {error:?}");
    assert!(text.contains("missing"), "{text}");
    assert!(text.contains("https://as.example.com"), "{text}");
    for value in &values {
        assert!(!text.contains(value.as_str()), "the error shows {value}");
    }
    drop(store);

    // A record whose secret sits in sled in plain form (not a reference) is refused and the
    // value is not quoted.
    let dir = scratch("plain");
    let (record, values) = planted(full_record(&key, 1), 4);
    drop(KeychainStore::open(&dir).unwrap());
    {
        let sled = SledStore::open(records_dir(&dir)).unwrap();
        sled.compare_and_swap(&key, None, &record).await.unwrap();
    }
    let store = KeychainStore::open(&dir).unwrap();
    let error = store.get(&key).await.unwrap_err();
    assert!(error.is_corrupt(), "{error}");
    let text = format!("{error} {error:?}");
    for value in &values {
        assert!(!text.contains(value.as_str()), "the error shows {value}");
    }
}

#[tokio::test]
async fn a_directory_of_another_kind_is_refused() {
    secret_service();
    let dir = scratch("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let error = KeychainStore::open(&dir).unwrap_err();
    assert!(error.to_string().contains("keychain:"), "{error}");
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");

    // A plain sled store's directory is not taken over either.
    let plain = scratch("plain-sled");
    drop(SledStore::open(&plain).unwrap());
    assert!(KeychainStore::open(&plain).is_err());
}
