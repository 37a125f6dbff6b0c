//! The sled store passes the conformance kit, keeps its files private, and reports damaged
//! values by key without overwriting them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tenure_sled::SledStore;
use tenure_store::kit::{full_record, plain_key};
use tenure_store::{Store, StoreError};

/// A new, empty directory under cargo's scratch space for integration tests.
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sled-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(SledStore::open(scratch("kit")).expect("a fresh sled store opens"))
}

tenure_store::conformance_tests!(fresh, 32);

#[cfg(unix)]
#[tokio::test]
async fn directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("modes");
    let store = SledStore::open(&dir).unwrap();
    store
        .compare_and_swap(&plain_key(), None, &full_record(&plain_key(), 1))
        .await
        .unwrap();
    drop(store);
    let store = SledStore::open(&dir).unwrap();
    assert!(store.get(&plain_key()).await.unwrap().is_some());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the store directory must be 0700");
    let mut files = 0;
    for entry in walk(&dir) {
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        if entry.is_dir() {
            assert_eq!(mode, 0o700, "{} must be 0700", entry.display());
        } else {
            files += 1;
            assert_eq!(mode, 0o600, "{} must be 0600", entry.display());
        }
    }
    assert!(files > 0, "sled wrote no files");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[tokio::test]
async fn a_damaged_value_is_reported_by_key_and_left_alone() {
    let dir = scratch("corrupt");
    let key = plain_key();
    {
        let db = sled::open(&dir).unwrap();
        let tree = db.open_tree("records").unwrap();
        tree.insert(key.encode(), &b"{\"not\":\"tenure\"}"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(&dir).unwrap();
    let error = store.get(&key).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("https://as.example.com"),
        "{error}"
    );
    let error = store
        .compare_and_swap(&key, None, &full_record(&key, 1))
        .await
        .unwrap_err();
    assert!(
        error.is_corrupt(),
        "a write over a damaged value must fail: {error}"
    );
    assert!(store.delete(&key, 1).await.unwrap_err().is_corrupt());
    drop(store);
    let db = sled::open(&dir).unwrap();
    let raw = db.open_tree("records").unwrap().get(key.encode()).unwrap();
    assert_eq!(raw.as_deref(), Some(&b"{\"not\":\"tenure\"}"[..]));
}

#[tokio::test]
async fn a_path_that_is_a_file_is_refused_clearly() {
    let file = scratch("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = SledStore::open(&file).unwrap_err();
    assert!(error.to_string().contains("--store"), "{error}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}
