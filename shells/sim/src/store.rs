//! A synchronous in-memory store that carries out the core's store commands in virtual time.
//!
//! It keeps the contract of `tenure-store` that every real adapter keeps, and is checked
//! against the same conformance kit (`tests/store_kit.rs`): compare-and-swap on the
//! generation, insert only if absent, conditional deletes where deleting nothing succeeds,
//! leases that are exclusive and expire, and invalid input refused by the adapters' own checks
//! (`tenure_store::check`) before anything is stored. Two things differ: leases expire at the
//! virtual time each call passes in, so a simulation can jump hours ahead at once, and there
//! are no profiles, which no store command touches.
//! Simulations share one `SimStore` between several clients to play replicas.

use std::collections::BTreeMap;

use tenure_core::{ClientKey, Duration, Record, StoreOp, StoreResult, Timestamp};
use tenure_store::check::{check_key, check_lease, check_write};
use tenure_store::{CasOutcome, StoreError};

/// Records and leases in memory, with counters for tests.
#[derive(Debug, Default, Clone)]
pub struct SimStore {
    records: BTreeMap<ClientKey, Record>,
    leases: BTreeMap<ClientKey, Lease>,
    /// Compare-and-swaps applied.
    pub writes: u32,
    /// Compare-and-swaps and deletes refused because another writer came first.
    pub conflicts: u32,
}

#[derive(Clone, Debug)]
struct Lease {
    holder: String,
    until: Timestamp,
}

impl Lease {
    fn held_by(&self, holder: &str, now: Timestamp) -> bool {
        self.holder == holder && self.until > now
    }
}

impl SimStore {
    /// An empty store.
    pub fn new() -> Self {
        SimStore::default()
    }

    /// The record under `key`, borrowed, for tests and reports that look at what the clients
    /// stored. Unlike [`SimStore::load`] it checks nothing.
    pub fn get(&self, key: &ClientKey) -> Option<&Record> {
        self.records.get(key)
    }

    /// Every stored record.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Replaces a record behind the clients' backs (for tests that corrupt or age state). It
    /// bypasses every check, so a test can store what no client could.
    pub fn put(&mut self, record: Record) {
        self.records.insert(record.key.clone(), record);
    }

    /// Carries out one store command at `now`, answering as `tenure_store::execute` answers
    /// for a real store.
    pub fn apply(&mut self, now: Timestamp, op: &StoreOp) -> StoreResult {
        let answer =
            match op {
                StoreOp::Load { key } => self.load(key).map(StoreResult::Loaded),
                StoreOp::CompareAndSwap {
                    key,
                    expected,
                    record,
                } => self
                    .compare_and_swap(key, *expected, record)
                    .map(|outcome| match outcome {
                        CasOutcome::Applied => StoreResult::Written,
                        CasOutcome::Conflict(current) => StoreResult::Conflict(current),
                    }),
                StoreOp::Delete { key, expected } => {
                    self.delete(key, *expected).map(|outcome| match outcome {
                        CasOutcome::Applied => StoreResult::Deleted,
                        CasOutcome::Conflict(current) => StoreResult::Conflict(current),
                    })
                }
                StoreOp::TakeLease { key, holder, ttl } => {
                    self.take_lease(now, key, holder, *ttl).map(|taken| {
                        if taken {
                            StoreResult::LeaseTaken
                        } else {
                            StoreResult::LeaseHeld
                        }
                    })
                }
                // Not holding the lease any more is the state the caller asked for, so the answer
                // is the same whether or not there was one to release.
                StoreOp::ReleaseLease { key, holder } => self
                    .release_lease(now, key, holder)
                    .map(|_| StoreResult::LeaseReleased),
                _ => return StoreResult::Failed(
                    "the simulated store was asked for an operation this version of tenure-sim \
                     does not know; update tenure-sim to the version of tenure-core in use"
                        .into(),
                ),
            };
        answer.unwrap_or_else(|error| tenure_store::failure(op, &error))
    }

    /// The record under `key`; `Ok(None)` when there is none. A key without an issuer or a
    /// redirect URI is refused.
    pub fn load(&self, key: &ClientKey) -> Result<Option<Record>, StoreError> {
        check_key(key)?;
        Ok(self.records.get(key).cloned())
    }

    /// Writes `record` under `key` if the stored generation is `expected` (`None`: only if
    /// nothing is stored); otherwise changes nothing and hands back what is stored. A record
    /// the adapters would refuse (see `tenure_store::check::check_write`) is refused before
    /// the generations are compared, so an invalid write never counts as a conflict.
    pub fn compare_and_swap(
        &mut self,
        key: &ClientKey,
        expected: Option<u64>,
        record: &Record,
    ) -> Result<CasOutcome, StoreError> {
        check_write(key, expected, record)?;
        let current = self.records.get(key);
        if current.map(|r| r.generation) != expected {
            self.conflicts += 1;
            return Ok(CasOutcome::Conflict(current.cloned()));
        }
        self.writes += 1;
        self.records.insert(key.clone(), record.clone());
        Ok(CasOutcome::Applied)
    }

    /// Removes the record under `key` if its generation is `expected`; otherwise changes
    /// nothing and hands back what is stored. Removing a record that is not there is
    /// [`CasOutcome::Applied`]: the caller wanted it gone, and it is.
    pub fn delete(&mut self, key: &ClientKey, expected: u64) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        match self.records.get(key) {
            Some(current) if current.generation != expected => {
                self.conflicts += 1;
                Ok(CasOutcome::Conflict(Some(current.clone())))
            }
            _ => {
                self.records.remove(key);
                Ok(CasOutcome::Applied)
            }
        }
    }

    /// Takes the lease on `key` until `now + ttl` unless another holder has it and it has not
    /// expired at `now`. Taking a lease one already holds extends it. `true` when `holder` now
    /// holds it.
    pub fn take_lease(
        &mut self,
        now: Timestamp,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        if let Some(lease) = self.leases.get(key) {
            if lease.holder != holder && lease.until > now {
                return Ok(false);
            }
        }
        let lease = Lease {
            holder: holder.to_string(),
            until: now + ttl,
        };
        self.leases.insert(key.clone(), lease);
        Ok(true)
    }

    /// Extends the lease to `now + ttl` if `holder` holds it at `now`; `false` (and no change)
    /// when it expired or another holder has it. No store command asks for this, but the
    /// contract has it, and the kit checks it here as in every adapter.
    pub fn renew_lease(
        &mut self,
        now: Timestamp,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_lease(key, holder, ttl)?;
        match self.leases.get_mut(key) {
            Some(lease) if lease.held_by(holder, now) => {
                lease.until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Releases the lease on `key` if `holder` holds it at `now`; `false` (and no change)
    /// otherwise. An expired lease is held by nobody, so its old holder cannot release it.
    pub fn release_lease(
        &mut self,
        now: Timestamp,
        key: &ClientKey,
        holder: &str,
    ) -> Result<bool, StoreError> {
        check_key(key)?;
        if !self.leases.get(key).is_some_and(|l| l.held_by(holder, now)) {
            return Ok(false);
        }
        self.leases.remove(key);
        Ok(true)
    }
}
