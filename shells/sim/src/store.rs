//! A synchronous in-memory store that carries out the core's store commands.
//!
//! It keeps the store contract the real adapters keep: compare-and-swap on the generation,
//! insert only if absent, leases that are exclusive and expire. Simulations share one
//! `SimStore` between several clients to play replicas.

use std::collections::BTreeMap;

use tenure_core::{ClientKey, Record, StoreOp, StoreResult, Timestamp};

/// Records and leases in memory, with counters for tests.
#[derive(Debug, Default, Clone)]
pub struct SimStore {
    records: BTreeMap<ClientKey, Record>,
    leases: BTreeMap<ClientKey, (String, Timestamp)>,
    /// Compare-and-swaps applied.
    pub writes: u32,
    /// Compare-and-swaps refused because another writer came first.
    pub conflicts: u32,
}

impl SimStore {
    /// An empty store.
    pub fn new() -> Self {
        SimStore::default()
    }

    /// The record under `key`.
    pub fn get(&self, key: &ClientKey) -> Option<&Record> {
        self.records.get(key)
    }

    /// Every stored record.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Replaces a record behind the clients' backs (for tests that corrupt or age state).
    pub fn put(&mut self, record: Record) {
        self.records.insert(record.key.clone(), record);
    }

    /// Carries out one store command at `now`.
    pub fn apply(&mut self, now: Timestamp, op: &StoreOp) -> StoreResult {
        match op {
            StoreOp::Load { key } => StoreResult::Loaded(self.records.get(key).cloned()),
            StoreOp::CompareAndSwap {
                key,
                expected,
                record,
            } => {
                let current = self.records.get(key).map(|r| r.generation);
                if current != *expected {
                    self.conflicts += 1;
                    return StoreResult::Conflict(self.records.get(key).cloned());
                }
                if record.key != *key || record.generation != expected.unwrap_or(0) + 1 {
                    return StoreResult::Failed(format!(
                        "refused a record for {} whose key or generation does not match the write",
                        key.encode()
                    ));
                }
                self.writes += 1;
                self.records.insert(key.clone(), (**record).clone());
                StoreResult::Written
            }
            StoreOp::Delete { key, expected } => {
                match self.records.get(key).map(|r| r.generation) {
                    Some(generation) if generation != *expected => {
                        self.conflicts += 1;
                        StoreResult::Conflict(self.records.get(key).cloned())
                    }
                    _ => {
                        self.records.remove(key);
                        StoreResult::Deleted
                    }
                }
            }
            StoreOp::TakeLease { key, holder, ttl } => match self.leases.get(key) {
                Some((other, until)) if other != holder && *until > now => StoreResult::LeaseHeld,
                _ => {
                    self.leases
                        .insert(key.clone(), (holder.clone(), now + *ttl));
                    StoreResult::LeaseTaken
                }
            },
            StoreOp::ReleaseLease { key, holder } => {
                if self.leases.get(key).is_some_and(|(h, _)| h == holder) {
                    self.leases.remove(key);
                }
                StoreResult::LeaseReleased
            }
            _ => StoreResult::Failed("the simulated store does not know this operation".into()),
        }
    }
}
