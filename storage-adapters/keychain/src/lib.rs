//! `tenure-keychain`: a store that keeps every secret in the operating system's keychain and
//! the rest of the record in sled.
//!
//! ```text
//!   Record ──strip──▶ sled (STORE_DIR/records)       keychain (service "tenure")
//!     dcr.client_secret             "keychain:<entry>" ──▶ <key id>/client_secret/<gen>/<nonce>
//!     dcr.registration_access_token "keychain:<entry>" ──▶ <key id>/registration_access_token/…
//!     tokens.access_token           "keychain:<entry>" ──▶ <key id>/access_token/…
//!     tokens.refresh_token          "keychain:<entry>" ──▶ <key id>/refresh_token/…
//!     everything else, generation,  as it is
//!     leases and profiles
//! ```
//!
//! `<key id>` is the first 128 bits of the SHA-256 of [`ClientKey::encode`], in hex. The
//! keychain is the Secret Service on Linux (GNOME Keyring, KWallet, KeePassXC), the Keychain
//! on macOS and the Credential Manager on Windows, all through the `keyring` crate.
//!
//! Where a secret sat, the record in sled holds a reference to its keychain entry, so the
//! sled files hold nothing that opens a door. Compare-and-swap stays sled's: the generation
//! lives there, and the keychain only ever gains entries under names never used before.
//!
//! A write puts the new secrets into fresh keychain entries first and swaps the record in sled
//! second, so a stored record never refers to an entry that was not yet written. Only once the
//! swap has applied are the replaced record's entries deleted. A reader that read the old
//! record just before may then find one of its entries gone; it reads the record again, and
//! since a record's references change with every write, a changed record means it lost that
//! race and it takes the new one (bounded). Only an unchanged record with a missing entry is
//! reported, as a damaged record.
//!
//! Access tokens go to the keychain too: a bearer token is as good as a password for its
//! lifetime, and a store chosen so that no credential lies in a file must not keep the one
//! used most. The price is a keychain read on each warm start (a D-Bus round trip on Linux).
//!
//! When no keychain can be reached, [`KeychainStore::open`] fails and says so: it never falls
//! back to keeping secrets in files.
//!
//! [`SecretEntry`] keeps one secret outside any record, in an entry its caller names and
//! remembers (the CLI keeps a `private_key_jwt` client's private key there), with the same
//! advice when no keychain answers.

mod entry;

pub use entry::{EntryError, SecretEntry};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tenure_core::Secret;
use tenure_sled::SledStore;
use tenure_store::check::{check_key, check_write};
use tenure_store::{describe_key, CasOutcome, Store, StoreError};

pub use tenure_core::{ClientKey, Duration, Record};

const BACKEND: &str = "keychain";

/// The keychain service every entry is filed under.
pub const SERVICE: &str = "tenure";

/// What a record in sled holds in place of a secret: this prefix, then the entry's name.
const REFERENCE: &str = "keychain:";

/// The file that marks a directory as a keychain store's.
const MARKER: &str = "TENURE-KEYCHAIN-STORE";
const MARKER_TEXT: &str = "This directory is a Tenure keychain store: the records are in \
`records/` (sled), their secrets in the operating system's keychain under the service \
\"tenure\". Do not edit these files.\n";

/// How often a reader reads the record again when another writer replaced it (and deleted its
/// keychain entries) while it was reading the secrets.
const READ_ATTEMPTS: usize = 32;

/// How to make the keychain reachable: a macro, so that the hints below can be joined at
/// compile time.
macro_rules! start_keychain {
    () => {
        "start and unlock the keychain (on Linux a Secret Service such as GNOME Keyring, \
         KWallet or KeePassXC in this session, with DBUS_SESSION_BUS_ADDRESS set)"
    };
}

/// What to do when a keychain entry cannot be reached; part of every such error.
const START_KEYCHAIN_HINT: &str = start_keychain!();

/// What to do when the store's keychain cannot be reached; part of every such error.
const UNREACHABLE_HINT: &str = concat!(
    start_keychain!(),
    ", or use the default store (--store PATH) if secrets in files readable only by you will \
     do; Tenure never falls back to files on its own"
);

/// A store whose secrets live in the OS keychain and whose records, leases and profiles live
/// in a sled database (see the crate documentation). Cheap to clone.
#[derive(Clone, Debug)]
pub struct KeychainStore {
    records: SledStore,
    keychain: Keychain,
}

impl KeychainStore {
    /// Opens (or creates) the store in the directory `path`, whose secrets go to the keychain
    /// under [`SERVICE`]. Fails, naming what to do, when no keychain can be reached, before
    /// anything is created on disk.
    pub fn open(path: impl AsRef<Path>) -> Result<KeychainStore, StoreError> {
        KeychainStore::open_with_service(path, SERVICE)
    }

    /// [`KeychainStore::open`] with the keychain entries filed under `service` instead of
    /// [`SERVICE`], for stores that must stay apart within one keychain.
    pub fn open_with_service(
        path: impl AsRef<Path>,
        service: &str,
    ) -> Result<KeychainStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |detail: String, hint: &str| StoreError::Open {
            backend: BACKEND,
            location: path.display().to_string(),
            detail,
            hint: hint.into(),
        };
        let keychain = Keychain {
            service: service.into(),
        };
        // Reachable first: an unreachable keychain leaves nothing behind on disk.
        keychain
            .probe()
            .map_err(|detail| open_error(detail, UNREACHABLE_HINT))?;
        if !is_ours_or_empty(&path) {
            return Err(open_error(
                "the directory is not empty and is not a Tenure keychain store".into(),
                "give keychain: a new or empty directory; a store opened with --store PATH \
                 keeps its secrets in its own files and is opened without keychain:",
            ));
        }
        tenure_sled::create_private_dir(&path).map_err(|e| {
            open_error(
                e.to_string(),
                "check that the parent directory exists and is writable, or pass another path",
            )
        })?;
        write_private(&path.join(MARKER), MARKER_TEXT).map_err(|e| {
            open_error(
                format!("cannot mark the directory as a keychain store: {e}"),
                "check that the directory is writable",
            )
        })?;
        let records = SledStore::open(records_dir(&path))?;
        Ok(KeychainStore { records, keychain })
    }

    /// The keychain service this store files its entries under.
    pub fn service(&self) -> &str {
        &self.keychain.service
    }

    /// `stripped` with its secrets read back from the keychain; `Ok(Err(field))` when the
    /// entry of `field` is missing (another writer may have replaced the record and deleted
    /// it: the caller reads the record again).
    async fn fill(&self, stripped: Record) -> Result<Result<Record, &'static str>, StoreError> {
        let key = stripped.key.clone();
        let keychain = self.keychain.clone();
        blocking(move || {
            let mut record = stripped;
            for (field, slot) in slots(&mut record) {
                let name = reference(&key, field, slot)?;
                match keychain.get(&key, field, &name)? {
                    Some(value) => *slot = Secret::new(value),
                    None => return Ok(Err(field)),
                }
            }
            Ok(Ok(record))
        })
        .await
    }

    /// The whole record behind `stripped` (as read from sled), reading sled again while
    /// writers replace it under the reader's feet (see the crate documentation).
    async fn whole(
        &self,
        key: &ClientKey,
        mut stripped: Option<Record>,
    ) -> Result<Option<Record>, StoreError> {
        for _ in 0..READ_ATTEMPTS {
            let Some(record) = stripped else {
                return Ok(None);
            };
            let field = match self.fill(record.clone()).await? {
                Ok(whole) => return Ok(Some(whole)),
                Err(field) => field,
            };
            let again = self.records.get(key).await?;
            if again.as_ref() == Some(&record) {
                return Err(StoreError::corrupt(
                    key,
                    format!(
                        "its {field} is kept in the keychain (service `{}`), but the entry is \
                         missing; log in again to replace the credential",
                        self.keychain.service
                    ),
                ));
            }
            stripped = again;
        }
        Err(StoreError::backend(
            BACKEND,
            format!("reading the {}", describe_key(key)),
            "the record was replaced on every attempt while its secrets were read",
        ))
    }

    /// Deletes the entries named `names`, written for a write that did not happen.
    async fn forget_names(&self, key: &ClientKey, names: Vec<String>) {
        let keychain = self.keychain.clone();
        let key = key.clone();
        let _ = blocking(move || {
            for name in &names {
                let _ = keychain.delete(&key, name);
            }
            Ok(())
        })
        .await;
    }

    /// Deletes the keychain entries a stored record refers to, as far as it can: an entry
    /// left behind is an unused secret in the keychain, the place meant for secrets, whereas
    /// failing a write that already applied would make the caller retry it.
    async fn forget_entries(&self, stripped: Record) {
        let keychain = self.keychain.clone();
        let _ = blocking(move || {
            let mut record = stripped;
            let key = record.key.clone();
            for (field, slot) in slots(&mut record) {
                if let Ok(name) = reference(&key, field, slot) {
                    let _ = keychain.delete(&key, &name);
                }
            }
            Ok(())
        })
        .await;
    }
}

/// The keychain, one service in it.
#[derive(Clone, Debug)]
struct Keychain {
    service: Arc<str>,
}

impl Keychain {
    fn entry(&self, key: &ClientKey, name: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(&self.service, name).map_err(|e| {
            self.failure(
                format!("opening a keychain entry of the {}", describe_key(key)),
                e,
            )
        })
    }

    /// Reads an entry that must not exist, which needs the keychain to answer: a missing
    /// entry (or, against the odds, a present one) means it is reachable.
    fn probe(&self) -> Result<(), String> {
        let entry = keyring::Entry::new(&self.service, "tenure-probe")
            .map_err(|e| format!("no keychain is usable: {}", describe(&e)))?;
        match entry.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(format!("no keychain is reachable: {}", describe(&e))),
        }
    }

    fn get(&self, key: &ClientKey, field: &str, name: &str) -> Result<Option<String>, StoreError> {
        match self.entry(key, name)?.get_password() {
            Ok(value) => Ok(Some(value)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(keyring::Error::BadEncoding(_)) | Err(keyring::Error::Ambiguous(_)) => {
                Err(StoreError::corrupt(
                    key,
                    format!(
                        "the keychain entry of its {field} is not one Tenure wrote (not text, or \
                         several entries of one name)"
                    ),
                ))
            }
            Err(e) => Err(self.failure(
                format!("reading the {field} of the {}", describe_key(key)),
                e,
            )),
        }
    }

    fn set(
        &self,
        key: &ClientKey,
        field: &str,
        name: &str,
        value: &Secret,
    ) -> Result<(), StoreError> {
        self.entry(key, name)?
            .set_password(value.expose())
            .map_err(|e| {
                self.failure(
                    format!("writing the {field} of the {}", describe_key(key)),
                    e,
                )
            })
    }

    fn delete(&self, key: &ClientKey, name: &str) -> Result<(), StoreError> {
        match self.entry(key, name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(self.failure(
                format!("deleting a keychain entry of the {}", describe_key(key)),
                e,
            )),
        }
    }

    fn failure(&self, action: String, error: keyring::Error) -> StoreError {
        StoreError::Backend {
            backend: BACKEND,
            action,
            detail: format!(
                "{} (service `{}`); if it is locked, unlock it",
                describe(&error),
                self.service
            ),
        }
    }
}

/// A keyring error in words that never quote a stored value: `BadEncoding` carries the bytes
/// it could not decode, and `Ambiguous` the credentials it found.
fn describe(error: &keyring::Error) -> String {
    match error {
        keyring::Error::BadEncoding(_) => "an entry holds something other than text".into(),
        keyring::Error::Ambiguous(found) => format!("{} entries answer to one name", found.len()),
        other => other.to_string(),
    }
}

/// Runs blocking keychain calls off the async worker threads: a Secret Service call is a
/// D-Bus round trip, and unlocking may wait for the user.
async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::backend(BACKEND, "calling the keychain", e))?
}

/// The secret slots of `record` that hold a value, with the name of their field.
fn slots(record: &mut Record) -> Vec<(&'static str, &mut Secret)> {
    let mut found: Vec<(&'static str, &mut Secret)> = Vec::new();
    if let Some(dcr) = record.dcr.as_mut() {
        if let Some(secret) = dcr.client_secret.as_mut() {
            found.push(("client_secret", secret));
        }
        if let Some(secret) = dcr.registration_access_token.as_mut() {
            found.push(("registration_access_token", secret));
        }
    }
    if let Some(tokens) = record.tokens.as_mut() {
        found.push(("access_token", &mut tokens.access_token));
        if let Some(secret) = tokens.refresh_token.as_mut() {
            found.push(("refresh_token", secret));
        }
    }
    found
}

/// The keychain name of one key: 128 bits of the SHA-256 of its encoding, in hex. Keys hold
/// no secret; hashing keeps entry names short and of one shape.
fn key_id(key: &ClientKey) -> String {
    Sha256::digest(key.encode().as_bytes())[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A name no entry had before: the generation, this process and a counter within it, and the
/// time. Two writers racing for the same generation never share an entry, so the loser can
/// delete its own entries without touching the winner's.
fn entry_name(key_id: &str, field: &str, generation: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{key_id}/{field}/{generation}/{:x}-{count:x}-{nanos:x}",
        std::process::id()
    )
}

/// The entry name a stripped record's `slot` refers to. A slot holding anything but a
/// reference to an entry of this key and field is a damaged record (or one written by
/// another store): it is reported without quoting it, since it may be a secret.
fn reference(key: &ClientKey, field: &str, slot: &Secret) -> Result<String, StoreError> {
    let prefix = format!("{REFERENCE}{}/{field}/", key_id(key));
    match slot.expose().strip_prefix(REFERENCE) {
        Some(name) if slot.expose().starts_with(&prefix) => Ok(name.to_string()),
        _ => Err(StoreError::corrupt(
            key,
            format!("its {field} should be a reference to a keychain entry and is not"),
        )),
    }
}

/// `record` with every secret replaced by a reference to a new keychain entry, and the
/// entries to write: (field, entry name, secret).
fn strip(record: &Record) -> (Record, Vec<(&'static str, String, Secret)>) {
    let mut stripped = record.clone();
    let id = key_id(&record.key);
    let generation = record.generation;
    let mut entries = Vec::new();
    for (field, slot) in slots(&mut stripped) {
        let name = entry_name(&id, field, generation);
        let secret = std::mem::replace(slot, Secret::new(format!("{REFERENCE}{name}")));
        entries.push((field, name, secret));
    }
    (stripped, entries)
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Whether `path` is missing, empty, or already a keychain store's directory.
fn is_ours_or_empty(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none() || path.join(MARKER).is_file(),
        Err(_) => !path.exists(),
    }
}

/// Where the sled store of a keychain store at `path` keeps its files.
pub fn records_dir(path: &Path) -> PathBuf {
    path.join("records")
}

#[async_trait]
impl Store for KeychainStore {
    async fn get(&self, key: &ClientKey) -> Result<Option<Record>, StoreError> {
        check_key(key)?;
        let stripped = self.records.get(key).await?;
        self.whole(key, stripped).await
    }

    async fn compare_and_swap(
        &self,
        key: &ClientKey,
        expected: Option<u64>,
        record: &Record,
    ) -> Result<CasOutcome, StoreError> {
        // Refused input touches neither the keychain nor sled.
        check_write(key, expected, record)?;
        // A write that would lose anyway writes nothing to the keychain.
        let current = self.records.get(key).await?;
        if current.as_ref().map(|r| r.generation) != expected {
            return Ok(CasOutcome::Conflict(self.whole(key, current).await?));
        }
        let (stripped, entries) = strip(record);
        let keychain = self.keychain.clone();
        let written_key = key.clone();
        let names: Vec<String> = entries.iter().map(|(_, name, _)| name.clone()).collect();
        // The secrets first, so the record in sled never refers to an entry not yet there.
        let wrote = blocking(move || {
            for (field, name, secret) in &entries {
                keychain.set(&written_key, field, name, secret)?;
            }
            Ok(())
        })
        .await;
        if let Err(error) = wrote {
            self.forget_names(key, names).await;
            return Err(error);
        }
        match self
            .records
            .compare_and_swap(key, expected, &stripped)
            .await
        {
            Ok(CasOutcome::Applied) => {
                // The record replaced had the expected generation, as the one read above did:
                // its entries are no longer referred to by anything.
                if let Some(old) = current {
                    self.forget_entries(old).await;
                }
                Ok(CasOutcome::Applied)
            }
            Ok(CasOutcome::Conflict(now)) => {
                self.forget_names(key, names).await;
                Ok(CasOutcome::Conflict(self.whole(key, now).await?))
            }
            // The swap may have applied before a later step (the flush) failed, so the new
            // entries stay: an unused entry is harmless, a record without its secrets is not.
            Err(error) => Err(error),
        }
    }

    async fn delete(&self, key: &ClientKey, expected: u64) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        let current = self.records.get(key).await?;
        match self.records.delete(key, expected).await? {
            CasOutcome::Applied => {
                // The secrets go after the record, so no stored record is left without them.
                if let Some(old) = current.filter(|r| r.generation == expected) {
                    self.forget_entries(old).await;
                }
                Ok(CasOutcome::Applied)
            }
            CasOutcome::Conflict(now) => Ok(CasOutcome::Conflict(self.whole(key, now).await?)),
        }
    }

    async fn take_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.records.take_lease(key, holder, ttl).await
    }

    async fn renew_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.records.renew_lease(key, holder, ttl).await
    }

    async fn release_lease(&self, key: &ClientKey, holder: &str) -> Result<bool, StoreError> {
        self.records.release_lease(key, holder).await
    }

    // Profiles hold what the user typed and never a secret (a secret is named by the
    // environment variable that holds it), so they stay in sled.
    async fn save_profile(&self, name: &str, profile: Value) -> Result<(), StoreError> {
        self.records.save_profile(name, profile).await
    }

    async fn load_profile(&self, name: &str) -> Result<Option<Value>, StoreError> {
        self.records.load_profile(name).await
    }

    async fn list_profiles(&self) -> Result<Vec<String>, StoreError> {
        self.records.list_profiles().await
    }

    async fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        self.records.delete_profile(name).await
    }
}
