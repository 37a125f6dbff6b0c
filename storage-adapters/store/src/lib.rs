//! `tenure-store`: the store trait every adapter implements, the in-memory store, and the
//! conformance kit each adapter must pass.
//!
//! ```text
//!   tenure-core ── Command::Store(StoreOp) ──▶ shell (tenure-tokio, tenure-cli)
//!        ▲                                        │ execute(&dyn Store, &op)
//!        └──────── Input::Store(StoreResult) ◀────┤
//!                                                 ▼
//!                               ┌───────── trait Store (this crate) ─────────┐
//!                               │ get · compare_and_swap · delete            │
//!                               │ take / renew / release lease · profiles    │
//!                               └──────┬──────────────┬──────────────┬───────┘
//!                                MemoryStore     tenure-sled     tenure-redis
//!                               (tests, sims)   (CLI default)  (replica fleets)
//! ```
//!
//! The contract is the one the core's [`StoreOp`] commands spell out. The simulated store in
//! `tenure-sim` keeps it too, synchronously and in virtual time, and its tests run the same
//! `kit` against it as every adapter's do:
//!
//! - a miss is `Ok(None)`, never an error;
//! - every write is a compare-and-swap on the record's generation (INV-9): `expected: None`
//!   inserts only if absent, the new record carries `expected + 1`, and a stale write changes
//!   nothing and hands back what is stored now;
//! - a delete is conditional on the generation too, and deleting nothing succeeds;
//! - a lease is exclusive per key, expires after its time to live, and only its holder can
//!   renew or release it, so one replica registers or renews while the others wait (INV-8);
//! - invalid input (an empty issuer or redirect URI, a record with an empty client id, a
//!   generation that does not follow) is refused and nothing is written;
//! - a value that is damaged or not Tenure's is reported naming its key, never overwritten.
//!
//! Next to the records, the command line keeps named client configurations ("profiles") as
//! JSON values.
//!
//! With the `kit` feature, `kit` holds the conformance tests every adapter runs, and
//! `conformance_tests!` stamps them out as `#[tokio::test]`s.

use async_trait::async_trait;
use serde_json::Value;

pub use tenure_core::{ClientKey, Duration, Record, StoreOp, StoreResult};

pub mod check;
pub mod codec;
mod error;
#[cfg(feature = "kit")]
pub mod kit;
mod memory;

pub use error::{describe_key, StoreError};
pub use memory::MemoryStore;

/// The outcome of a conditional write ([`Store::compare_and_swap`], [`Store::delete`]).
// A write's outcome is returned once and consumed at once, never kept in bulk, so the size of
// the conflict variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum CasOutcome {
    /// The write was applied.
    Applied,
    /// The stored generation was not the expected one; nothing changed. Carries what is
    /// stored now (`None`: nothing), so the caller can merge and retry.
    Conflict(Option<Record>),
}

/// A durable home for records, leases and profiles; see the crate documentation for the
/// contract. Object safe, so a program can pick its store at run time (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync {
    /// The record under `key`; `Ok(None)` when there is none.
    async fn get(&self, key: &ClientKey) -> Result<Option<Record>, StoreError>;

    /// Writes `record` under `key` if the stored generation is `expected` (`None`: only if
    /// nothing is stored). `record.generation` must be `expected + 1` (INV-9).
    async fn compare_and_swap(
        &self,
        key: &ClientKey,
        expected: Option<u64>,
        record: &Record,
    ) -> Result<CasOutcome, StoreError>;

    /// Removes the record under `key` if its generation is `expected`. Removing a record that
    /// is not there is [`CasOutcome::Applied`]: the caller wanted it gone, and it is.
    async fn delete(&self, key: &ClientKey, expected: u64) -> Result<CasOutcome, StoreError>;

    /// Takes the lease on `key` for `ttl` unless another holder has it and it has not expired.
    /// Taking a lease one already holds extends it. `true` when `holder` now holds it.
    async fn take_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends the lease to `ttl` from now if `holder` holds it; `false` (and no change) when
    /// it expired or another holder has it.
    async fn renew_lease(
        &self,
        key: &ClientKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases the lease if `holder` holds it; `false` (and no change) otherwise.
    async fn release_lease(&self, key: &ClientKey, holder: &str) -> Result<bool, StoreError>;

    /// Stores the profile `name`, replacing any profile of that name.
    async fn save_profile(&self, name: &str, profile: Value) -> Result<(), StoreError>;

    /// The profile `name`; `Ok(None)` when there is none.
    async fn load_profile(&self, name: &str) -> Result<Option<Value>, StoreError>;

    /// Every profile name, sorted.
    async fn list_profiles(&self) -> Result<Vec<String>, StoreError>;

    /// Removes the profile `name`; `true` when there was one.
    async fn delete_profile(&self, name: &str) -> Result<bool, StoreError>;
}

/// Carries out one of the core's store commands on `store`. A store error becomes
/// [`StoreResult::Failed`] with a message that names the key and says what to do.
pub async fn execute(store: &dyn Store, op: &StoreOp) -> StoreResult {
    match op {
        StoreOp::Load { key } => match store.get(key).await {
            Ok(record) => StoreResult::Loaded(record),
            Err(error) => failure(op, &error),
        },
        StoreOp::CompareAndSwap {
            key,
            expected,
            record,
        } => match store.compare_and_swap(key, *expected, record).await {
            Ok(CasOutcome::Applied) => StoreResult::Written,
            Ok(CasOutcome::Conflict(current)) => StoreResult::Conflict(current),
            Err(error) => failure(op, &error),
        },
        StoreOp::Delete { key, expected } => match store.delete(key, *expected).await {
            Ok(CasOutcome::Applied) => StoreResult::Deleted,
            Ok(CasOutcome::Conflict(current)) => StoreResult::Conflict(current),
            Err(error) => failure(op, &error),
        },
        StoreOp::TakeLease { key, holder, ttl } => {
            match store.take_lease(key, holder, *ttl).await {
                Ok(true) => StoreResult::LeaseTaken,
                Ok(false) => StoreResult::LeaseHeld,
                Err(error) => failure(op, &error),
            }
        }
        StoreOp::ReleaseLease { key, holder } => match store.release_lease(key, holder).await {
            // Not holding it any more (it expired, or was never taken) is the state the caller
            // asked for, so it is not a failure.
            Ok(_) => StoreResult::LeaseReleased,
            Err(error) => failure(op, &error),
        },
        _ => unknown_operation(),
    }
}

/// The core's answer to `op` when the store refused or failed it: what was being done, to
/// which key, and the error's own advice. [`execute`] answers with it; a shell that carries
/// out store commands without the async trait (the simulator's synchronous store) calls it so
/// that its failures read the same.
pub fn failure(op: &StoreOp, error: &StoreError) -> StoreResult {
    let (action, key) = match op {
        StoreOp::Load { key } => ("loading", key),
        StoreOp::CompareAndSwap { key, .. } => ("writing", key),
        StoreOp::Delete { key, .. } => ("deleting", key),
        StoreOp::TakeLease { key, .. } => ("taking the lease on", key),
        StoreOp::ReleaseLease { key, .. } => ("releasing the lease on", key),
        _ => return unknown_operation(),
    };
    StoreResult::Failed(format!(
        "{action} the record of the {} failed: {error}",
        describe_key(key)
    ))
}

// `StoreOp` may grow; an operation this version does not know is reported, not guessed.
fn unknown_operation() -> StoreResult {
    StoreResult::Failed(
        "the store was asked for an operation this version of tenure-store does not know; \
         update tenure-store to the version of tenure-core in use"
            .into(),
    )
}
