//! `tenure-sled`: the embedded durable store, the default of the `tenure` command line.
//!
//! ```text
//!   STORE_DIR/ (0700)            one sled database, owned by one process at a time
//!     ├─ tree "records"    ClientKey::encode()  → codec envelope (JSON, generation first)
//!     ├─ tree "leases"     ClientKey::encode()  → {"holder":…, "until_ms":…}
//!     └─ tree "profiles"   profile name         → the profile's JSON
//! ```
//!
//! Every write is a sled compare-and-swap on the exact bytes that were read, so the
//! generation check of INV-9 and the write are one atomic step, and every write is flushed to
//! disk before it is acknowledged: the core persists a credential before it uses it (INV-4),
//! and a SIGKILL right after the acknowledgement must not lose it. sled's log is
//! crash-consistent, so a kill in the middle of a write leaves the previous value.
//!
//! The directory is created 0700 and the files in it 0600: it holds client secrets and tokens.
//! sled locks its directory, so a second process opening the same store gets a clear error;
//! replicas that share credentials use `tenure-redis` instead.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenure_store::check::{check_key, check_lease, check_profile_name, check_write};
use tenure_store::codec::{decode_profile, decode_record, encode_profile, encode_record};
use tenure_store::{describe_key, CasOutcome, Store, StoreError};

pub use tenure_core::{ClientKey, Duration, Record};

const BACKEND: &str = "sled";

/// A sled database holding records, leases and profiles. Cheap to clone (sled handles are
/// shared).
#[derive(Clone, Debug)]
pub struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    leases: sled::Tree,
    profiles: sled::Tree,
}

#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    until_ms: i64,
}

impl SledStore {
    /// Opens (or creates) the store in the directory `path`, readable by its owner only.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |detail: String, hint: &str| StoreError::Open {
            backend: BACKEND,
            location: path.display().to_string(),
            detail,
            hint: hint.into(),
        };
        // A directory that holds anything else is the user's, not ours: its modes are never
        // touched and no database is put among its files.
        if !is_store_or_empty(&path) {
            return Err(open_error(
                "the directory is not empty and is not a Tenure store".into(),
                "give --store a new or empty directory (Tenure makes it private), or the directory of an existing Tenure store",
            ));
        }
        create_private_dir(&path).map_err(|e| {
            open_error(
                e.to_string(),
                "check that the parent directory exists and is writable, or pass another --store",
            )
        })?;
        // One process at a time holds the directory (sled's lock), until a moment after its
        // last handle is gone. Processes sharing a store queue here: wait, bounded (10 s,
        // enough for a queue of short `tenure` runs), before reporting it held.
        let mut opened = sled::Config::new().path(&path).open();
        for _ in 0..200 {
            match &opened {
                Err(e) if e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    opened = sled::Config::new().path(&path).open();
                }
                _ => break,
            }
        }
        let db = opened.map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("lock") {
                "another process has this store open; wait for it to finish, or share \
                 credentials between processes with a Redis store (--store redis://…)"
            } else {
                "the directory may be damaged or not a Tenure store; move it aside and run again"
            };
            open_error(text, hint)
        })?;
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| open_error(e.to_string(), "move the directory aside and run again"))
        };
        let store = SledStore {
            records: tree("records")?,
            leases: tree("leases")?,
            profiles: tree("profiles")?,
            db,
        };
        let _ = std::fs::write(path.join(MARKER), MARKER_TEXT);
        restrict_files(&path).map_err(|e| {
            open_error(
                format!("cannot make its files private: {e}"),
                "check the ownership of the directory",
            )
        })?;
        Ok(store)
    }

    /// Every record in the store (for `tenure status` and benchmarks). A damaged value is an
    /// error naming its key.
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for entry in self.records.iter() {
            let (_, bytes) = entry.map_err(|e| backend("listing records", e))?;
            let record: Record = decode_any(&bytes)?;
            out.push(record);
        }
        Ok(out)
    }

    /// Flushes sled's log to disk. The blocking `flush` is used on purpose: sled's
    /// `flush_async` was seen to stall when many writers flushed at once, and one fsync is
    /// short enough to do on the calling task.
    async fn flush(&self, action: &str) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(|e| backend(action, e))
    }

    fn read(&self, key: &ClientKey, action: &str) -> Result<Option<sled::IVec>, StoreError> {
        self.records
            .get(key.encode())
            .map_err(|e| backend(format!("{action} the {}", describe_key(key)), e))
    }

    /// Replaces the record under `key` with `new` (`None`: removes it) unless `refuse`, shown
    /// what is stored now, answers instead; then flushes. A damaged value is an error, so it
    /// is never overwritten or deleted behind the user's back.
    async fn swap_record<F>(
        &self,
        key: &ClientKey,
        verb: &str,
        new: Option<Vec<u8>>,
        refuse: F,
    ) -> Result<CasOutcome, StoreError>
    where
        F: Fn(Option<&Record>) -> Option<CasOutcome>,
    {
        let action = || format!("{verb} the {}", describe_key(key));
        // Bounded: each retry means another writer of this key won a race in this process.
        for _ in 0..1_000 {
            let old = self.read(key, "reading")?;
            let current = match &old {
                Some(bytes) => Some(decode_record(key, bytes)?),
                None => None,
            };
            if let Some(outcome) = refuse(current.as_ref()) {
                return Ok(outcome);
            }
            // The swap compares the very bytes decoded above, so a writer that got in between
            // makes it fail and the generation is checked again.
            match self
                .records
                .compare_and_swap(key.encode(), old, new.clone())
                .map_err(|e| backend(action(), e))?
            {
                Ok(()) => {
                    self.flush(&action()).await?;
                    return Ok(CasOutcome::Applied);
                }
                Err(_) => continue,
            }
        }
        Err(backend(action(), "too many concurrent writers"))
    }

    /// Replaces the lease under `key` with `update(current)` atomically, retrying when
    /// another writer got in between; `update` returning `None` leaves the value alone.
    fn update_lease<F>(&self, key: &ClientKey, update: F) -> Result<bool, StoreError>
    where
        F: Fn(Option<Lease>) -> Option<Option<Lease>>,
    {
        let id = key.encode();
        let action = || format!("changing the lease on the {}", describe_key(key));
        // Bounded: each retry means another writer won, and there are few in one process.
        for _ in 0..1_000 {
            let current = self.leases.get(&id).map_err(|e| backend(action(), e))?;
            let lease = match &current {
                Some(bytes) => Some(serde_json::from_slice::<Lease>(bytes).map_err(|_| {
                    StoreError::corrupt(key, "its lease entry is not valid JSON of a lease")
                })?),
                None => None,
            };
            let Some(next) = update(lease) else {
                return Ok(false);
            };
            let next = match next {
                Some(lease) => Some(serde_json::to_vec(&lease).map_err(|e| backend(action(), e))?),
                None => None,
            };
            match self
                .leases
                .compare_and_swap(&id, current, next)
                .map_err(|e| backend(action(), e))?
            {
                Ok(()) => return Ok(true),
                Err(_) => continue,
            }
        }
        Err(backend(action(), "too many concurrent lease changes"))
    }
}

fn backend(action: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::backend(BACKEND, action, detail)
}

/// Decodes a record found while listing, where the key is only known from the value.
fn decode_any(bytes: &[u8]) -> Result<Record, StoreError> {
    #[derive(Deserialize)]
    struct KeyOnly {
        record: KeyInner,
    }
    #[derive(Deserialize)]
    struct KeyInner {
        key: ClientKey,
    }
    let key = serde_json::from_slice::<KeyOnly>(bytes)
        .map(|k| k.record.key)
        .map_err(|_| StoreError::Corrupt {
            key: "a record entry whose key cannot be read".into(),
            detail: "it is not a Tenure record".into(),
        })?;
    decode_record(&key, bytes)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Creates `path` (and its parents) with access for its owner only (0700 on Unix), and
/// tightens an existing directory to that: a store's directory holds credentials. Other stores
/// that keep files (the keychain store's records) use it too.
#[cfg(unix)]
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    // An existing directory keeps its old mode through `create`; tighten it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Creates `path` and its parents; the platform's default access applies.
#[cfg(not(unix))]
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

/// The file that marks a directory as a Tenure store.
const MARKER: &str = "TENURE-STORE";
const MARKER_TEXT: &str =
    "This directory is a Tenure credential store (sled). Its files are private; do not edit them.\n";

/// Whether `path` is missing, empty, marked as a Tenure store, or a sled database written
/// before the marker existed (its `conf` and `db` files).
fn is_store_or_empty(path: &Path) -> bool {
    let Ok(mut entries) = std::fs::read_dir(path) else {
        return !path.exists();
    };
    let Some(first) = entries.next() else {
        return true;
    };
    if first.is_err() {
        return false;
    }
    path.join(MARKER).is_file() || (path.join("conf").is_file() && path.join("db").is_file())
}

/// Makes every file under `dir` 0600 and every directory 0700.
#[cfg(unix)]
fn restrict_files(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700))?;
            restrict_files(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_files(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[async_trait]
impl Store for SledStore {
    async fn get(&self, key: &ClientKey) -> Result<Option<Record>, StoreError> {
        check_key(key)?;
        match self.read(key, "reading")? {
            Some(bytes) => decode_record(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn compare_and_swap(
        &self,
        key: &ClientKey,
        expected: Option<u64>,
        record: &Record,
    ) -> Result<CasOutcome, StoreError> {
        check_write(key, expected, record)?;
        let new = encode_record(record)?;
        self.swap_record(key, "writing", Some(new), |current| {
            (current.map(|r| r.generation) != expected)
                .then(|| CasOutcome::Conflict(current.cloned()))
        })
        .await
    }

    async fn delete(&self, key: &ClientKey, expected: u64) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        self.swap_record(key, "deleting", None, |current| match current {
            None => Some(CasOutcome::Applied),
            Some(current) if current.generation != expected => {
                Some(CasOutcome::Conflict(Some(current.clone())))
            }
            Some(_) => None,
        })
        .await
    }

    async fn take_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        let now = now_ms();
        self.update_lease(key, |current| match current {
            Some(lease) if lease.holder != holder && lease.until_ms > now => None,
            _ => Some(Some(Lease {
                holder: holder.into(),
                until_ms: now.saturating_add(ttl.as_millis()),
            })),
        })
    }

    async fn renew_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        let now = now_ms();
        self.update_lease(key, |current| match current {
            Some(lease) if lease.holder == holder && lease.until_ms > now => Some(Some(Lease {
                holder: holder.into(),
                until_ms: now.saturating_add(ttl.as_millis()),
            })),
            _ => None,
        })
    }

    async fn release_lease(&self, key: &ClientKey, holder: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let now = now_ms();
        self.update_lease(key, |current| match current {
            Some(lease) if lease.holder == holder && lease.until_ms > now => Some(None),
            _ => None,
        })
    }

    async fn save_profile(&self, name: &str, profile: Value) -> Result<(), StoreError> {
        check_profile_name(name)?;
        let bytes = encode_profile(name, &profile)?;
        let action = format!("saving the profile `{name}`");
        self.profiles
            .insert(name.as_bytes(), bytes)
            .map_err(|e| backend(action.clone(), e))?;
        self.flush(&action).await
    }

    async fn load_profile(&self, name: &str) -> Result<Option<Value>, StoreError> {
        check_profile_name(name)?;
        match self
            .profiles
            .get(name.as_bytes())
            .map_err(|e| backend(format!("reading the profile `{name}`"), e))?
        {
            Some(bytes) => decode_profile(name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn list_profiles(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for entry in self.profiles.iter() {
            let (name, _) = entry.map_err(|e| backend("listing profiles", e))?;
            names.push(String::from_utf8_lossy(&name).into_owned());
        }
        // sled iterates in byte order, which for UTF-8 is code point order: already sorted.
        Ok(names)
    }

    async fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        check_profile_name(name)?;
        let action = format!("deleting the profile `{name}`");
        let removed = self
            .profiles
            .remove(name.as_bytes())
            .map_err(|e| backend(action.clone(), e))?;
        self.flush(&action).await?;
        Ok(removed.is_some())
    }
}
