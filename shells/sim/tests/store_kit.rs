//! The sim store passes the conformance kit every real store adapter runs, so simulations
//! test the core against the contract the real stores keep, not a friendlier one.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use tenure_core::{ClientKey, Duration, Record, Timestamp};
use tenure_sim::SimStore;
use tenure_store::{CasOutcome, MemoryStore, Store, StoreError};

/// A [`SimStore`] behind the async store trait.
struct KitStore {
    sim: Mutex<SimStore>,
    // The sim store's leases expire at the virtual time each call passes in. The kit waits
    // for a lease to lapse with a real sleep, so here virtual time is real time since the
    // store was made.
    started: Instant,
    // The sim store keeps no profiles: no store command touches them. The trait needs them,
    // so they live in a memory store, and the kit's profile checks test that, not the sim.
    profiles: MemoryStore,
}

impl KitStore {
    fn sim(&self) -> MutexGuard<'_, SimStore> {
        self.sim
            .lock()
            .expect("another kit task panicked while holding the sim store")
    }

    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        Timestamp::EPOCH + Duration::from_millis(elapsed)
    }
}

#[async_trait]
impl Store for KitStore {
    async fn get(&self, key: &ClientKey) -> Result<Option<Record>, StoreError> {
        self.sim().load(key)
    }

    async fn compare_and_swap(
        &self,
        key: &ClientKey,
        expected: Option<u64>,
        record: &Record,
    ) -> Result<CasOutcome, StoreError> {
        self.sim().compare_and_swap(key, expected, record)
    }

    async fn delete(&self, key: &ClientKey, expected: u64) -> Result<CasOutcome, StoreError> {
        self.sim().delete(key, expected)
    }

    async fn take_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        self.sim().take_lease(now, key, holder, ttl)
    }

    async fn renew_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        self.sim().renew_lease(now, key, holder, ttl)
    }

    async fn release_lease(&self, key: &ClientKey, holder: &str) -> Result<bool, StoreError> {
        let now = self.now();
        self.sim().release_lease(now, key, holder)
    }

    async fn save_profile(&self, name: &str, profile: Value) -> Result<(), StoreError> {
        self.profiles.save_profile(name, profile).await
    }

    async fn load_profile(&self, name: &str) -> Result<Option<Value>, StoreError> {
        self.profiles.load_profile(name).await
    }

    async fn list_profiles(&self) -> Result<Vec<String>, StoreError> {
        self.profiles.list_profiles().await
    }

    async fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        self.profiles.delete_profile(name).await
    }
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(KitStore {
        sim: Mutex::new(SimStore::new()),
        started: Instant::now(),
        profiles: MemoryStore::new(),
    })
}

tenure_store::conformance_tests!(fresh, 256);

/// The simulations reach the store through [`SimStore::apply`], not the methods the kit
/// calls: a refused write must come back as the same failure a real store's would, and leave
/// nothing behind, not even a conflict in the counters.
#[test]
fn apply_reports_a_refused_write_as_a_real_store_does() {
    use tenure_core::{StoreOp, StoreResult};
    use tenure_store::kit::{bare_record, plain_key};

    let key = plain_key();
    let mut skipped = bare_record(&key, 3);
    skipped.pre_registered_client_id = Some("client".into());
    let op = StoreOp::CompareAndSwap {
        key: key.clone(),
        expected: None,
        record: Box::new(skipped.clone()),
    };
    let mut store = SimStore::new();
    let answer = store.apply(Timestamp::EPOCH, &op);
    let error = store
        .compare_and_swap(&key, None, &skipped)
        .expect_err("a generation that skips is refused");
    assert_eq!(answer, tenure_store::failure(&op, &error));
    assert!(
        matches!(&answer, StoreResult::Failed(message) if message.contains("nothing was written")),
        "{answer:?}"
    );
    assert_eq!(store.records().count(), 0);
    assert_eq!((store.writes, store.conflicts), (0, 0));
}
