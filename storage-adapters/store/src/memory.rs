//! The in-memory store: the contract with nothing durable behind it, for tests, simulations
//! and programs that keep credentials only as long as they run.
//!
//! Records are kept in the stores' common encoding (`codec.rs`), as the durable stores keep
//! them: one allocation per record instead of dozens of small strings and maps, which halves
//! the memory a process holding thousands of clients needs, for a parse on each read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use tenure_core::{ClientKey, Duration, Record};

use crate::check::{check_key, check_lease, check_profile_name, check_write};
use crate::codec::{decode_record, encode_record};
use crate::{CasOutcome, Store, StoreError};

/// Records, leases and profiles in memory. Clones share the same contents (an `Arc` inside),
/// so one store can be handed to several clients that play replicas.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Contents>>,
}

#[derive(Debug, Default)]
struct Contents {
    /// By [`ClientKey::encode`]: one string per key instead of four.
    records: BTreeMap<String, Stored>,
    // Leases only matter while the process runs, so a monotonic clock is the right one here.
    leases: BTreeMap<ClientKey, (String, Instant)>,
    profiles: BTreeMap<String, Value>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn contents(&self) -> Result<MutexGuard<'_, Contents>, StoreError> {
        // A poisoned lock means a task panicked mid-operation; every operation is a single
        // map update, so the maps are still whole, but say so rather than hide it.
        self.inner.lock().map_err(|_| {
            StoreError::backend(
                "memory",
                "locking the in-memory store",
                "another task panicked while holding it; restart the program",
            )
        })
    }
}

/// One record: its generation, for compare-and-swap without a parse, and its encoding.
#[derive(Debug)]
struct Stored {
    generation: u64,
    bytes: Box<[u8]>,
}

impl Stored {
    fn new(record: &Record) -> Result<Stored, StoreError> {
        Ok(Stored {
            generation: record.generation,
            bytes: encode_record(record)?.into_boxed_slice(),
        })
    }

    fn record(&self, key: &ClientKey) -> Result<Record, StoreError> {
        decode_record(key, &self.bytes)
    }
}

fn deadline(ttl: Duration) -> Instant {
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(0);
    Instant::now() + std::time::Duration::from_millis(millis)
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &ClientKey) -> Result<Option<Record>, StoreError> {
        check_key(key)?;
        self.contents()?
            .records
            .get(&key.encode())
            .map(|stored| stored.record(key))
            .transpose()
    }

    async fn compare_and_swap(
        &self,
        key: &ClientKey,
        expected: Option<u64>,
        record: &Record,
    ) -> Result<CasOutcome, StoreError> {
        check_write(key, expected, record)?;
        let stored = Stored::new(record)?;
        let mut contents = self.contents()?;
        let slot = key.encode();
        let current = contents.records.get(&slot);
        if current.map(|r| r.generation) != expected {
            let current = current.map(|r| r.record(key)).transpose()?;
            return Ok(CasOutcome::Conflict(current));
        }
        contents.records.insert(slot, stored);
        Ok(CasOutcome::Applied)
    }

    async fn delete(&self, key: &ClientKey, expected: u64) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        let mut contents = self.contents()?;
        let slot = key.encode();
        match contents.records.get(&slot) {
            Some(current) if current.generation != expected => {
                Ok(CasOutcome::Conflict(Some(current.record(key)?)))
            }
            _ => {
                contents.records.remove(&slot);
                Ok(CasOutcome::Applied)
            }
        }
    }

    async fn take_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        let mut contents = self.contents()?;
        let now = Instant::now();
        match contents.leases.get(key) {
            Some((other, until)) if other != holder && *until > now => Ok(false),
            _ => {
                contents
                    .leases
                    .insert(key.clone(), (holder.to_string(), deadline(ttl)));
                Ok(true)
            }
        }
    }

    async fn renew_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        let mut contents = self.contents()?;
        let now = Instant::now();
        match contents.leases.get_mut(key) {
            Some((current, until)) if current == holder && *until > now => {
                *until = deadline(ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, key: &ClientKey, holder: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let mut contents = self.contents()?;
        let now = Instant::now();
        match contents.leases.get(key) {
            Some((current, until)) if current == holder && *until > now => {
                contents.leases.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn save_profile(&self, name: &str, profile: Value) -> Result<(), StoreError> {
        check_profile_name(name)?;
        self.contents()?.profiles.insert(name.to_string(), profile);
        Ok(())
    }

    async fn load_profile(&self, name: &str) -> Result<Option<Value>, StoreError> {
        check_profile_name(name)?;
        Ok(self.contents()?.profiles.get(name).cloned())
    }

    async fn list_profiles(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.contents()?.profiles.keys().cloned().collect())
    }

    async fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        check_profile_name(name)?;
        Ok(self.contents()?.profiles.remove(name).is_some())
    }
}
