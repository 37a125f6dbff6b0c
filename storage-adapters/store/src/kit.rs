//! The conformance kit: the behaviour every [`Store`] adapter must show, written once.
//!
//! Each check takes a fresh, empty store and panics with a message naming the rule it found
//! broken. An adapter's test file stamps them all out with [`conformance_tests!`](crate::conformance_tests), giving it
//! a way to make a fresh store:
//!
//! ```text
//! async fn fresh() -> std::sync::Arc<dyn tenure_store::Store> { /* a new, empty store */ }
//! tenure_store::conformance_tests!(fresh);
//! ```
//!
//! [`model_check`] runs random operation sequences against the store and against a
//! `BTreeMap` model side by side, and fails on the first answer where they disagree.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tenure_core::record::{AuthServer, CimdIdentity, Registration, SecretExpiry, Tokens};
use tenure_core::{AuthMethod, ClientKey, Duration, Record, Secret, Timestamp};

use crate::{CasOutcome, Store};

/// A key for tests: issuer, upstream and redirect URI as given, no scopes.
pub fn test_key(issuer: &str, upstream: &str, redirect_uri: &str) -> ClientKey {
    ClientKey::new(issuer, upstream, redirect_uri, &[])
}

/// The key most checks use.
pub fn plain_key() -> ClientKey {
    test_key(
        "https://as.example.com",
        "https://mcp.example.com/",
        "http://127.0.0.1:8976/callback",
    )
}

fn server(issuer: &str) -> AuthServer {
    AuthServer {
        issuer: issuer.into(),
        authorization_endpoint: Some(format!("{issuer}/authorize")),
        token_endpoint: format!("{issuer}/token"),
        registration_endpoint: Some(format!("{issuer}/register")),
        device_authorization_endpoint: None,
        cimd_supported: true,
        iss_parameter_supported: true,
        pkce_s256: true,
        token_endpoint_auth_methods: Some(vec!["client_secret_basic".into(), "none".into()]),
        resource_scopes: Some(vec!["read".into(), "write".into()]),
        resource: Some(format!("{issuer}/mcp")),
        dpop_es256: false,
    }
}

/// A record for `key` at `generation` with every field filled in, including unknown
/// registration metadata, so a round trip proves nothing is dropped.
pub fn full_record(key: &ClientKey, generation: u64) -> Record {
    let mut metadata = Map::new();
    metadata.insert("client_id".into(), json!("dcr-client-1"));
    metadata.insert("client_name".into(), json!("Tenure test"));
    metadata.insert("client_name#fr".into(), json!("Test de Tenure"));
    metadata.insert("x_vendor_extension".into(), json!({"nested": [1, 2, 3]}));
    let mut record = Record::new(key.clone(), server(&key.issuer));
    record.generation = generation;
    record.pre_registered_client_id = Some("pre-registered-1".into());
    record.cimd = Some(CimdIdentity {
        client_id: "https://client.example.com/metadata.json".into(),
        rejected: true,
    });
    record.dcr = Some(Registration {
        client_id: "dcr-client-1".into(),
        client_secret: Some(Secret::new("kit-client-secret")),
        secret_expires: SecretExpiry::At(Timestamp::from_unix_seconds(4_102_444_800)),
        registration_access_token: Some(Secret::new("kit-registration-access-token")),
        registration_client_uri: Some(format!("{}/register/dcr-client-1?x=1", key.issuer)),
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        redirect_uri: Some(key.redirect_uri.clone()),
        registration_endpoint: format!("{}/register", key.issuer),
        obtained_at: Some(Timestamp::from_unix_seconds(4_102_000_000)),
        unproven: true,
        metadata,
    });
    record.tokens = Some(Tokens {
        access_token: Secret::new("kit-access-token"),
        token_type: "Bearer".into(),
        expires_at: Some(Timestamp::from_unix_millis(1_767_225_600_123)),
        refresh_token: Some(Secret::new("kit-refresh-token")),
        scope: Some("read write".into()),
        issued_at: Some(Timestamp::from_unix_millis(1_767_222_000_123)),
    });
    record.registration_backoff = Some(tenure_core::record::Backoff {
        failures: 2,
        until: Timestamp::from_unix_millis(1_767_225_660_456),
        reason: "the server refused the last registration".into(),
        request: Some("0f1e2d3c".into()),
    });
    record
}

/// A record for `key` at `generation` with only what is required.
pub fn bare_record(key: &ClientKey, generation: u64) -> Record {
    let mut record = Record::new(key.clone(), server(&key.issuer));
    record.generation = generation;
    record
}

async fn write(store: &dyn Store, key: &ClientKey, expected: Option<u64>, record: &Record) {
    let outcome = store
        .compare_and_swap(key, expected, record)
        .await
        .unwrap_or_else(|e| panic!("a valid write was refused: {e}"));
    assert_eq!(outcome, CasOutcome::Applied, "a valid write did not apply");
}

/// Every field of a record, secrets and unknown metadata included, comes back as written;
/// so do records with the optional parts absent, and secret expiries of every kind.
pub async fn round_trip_keeps_every_field(store: Arc<dyn Store>) {
    let key = plain_key();
    let full = full_record(&key, 1);
    write(store.as_ref(), &key, None, &full).await;
    assert_eq!(store.get(&key).await.unwrap(), Some(full.clone()));

    for (generation, expiry) in [
        (2, SecretExpiry::Never),
        (3, SecretExpiry::Unknown),
        (4, SecretExpiry::At(Timestamp::from_unix_seconds(1))),
    ] {
        let mut next = full.clone();
        next.generation = generation;
        if let Some(dcr) = next.dcr.as_mut() {
            dcr.secret_expires = expiry;
        }
        write(store.as_ref(), &key, Some(generation - 1), &next).await;
        assert_eq!(store.get(&key).await.unwrap(), Some(next));
    }

    let other = test_key("https://as.example.com", "bare", "http://127.0.0.1:1/cb");
    let bare = bare_record(&other, 1);
    write(store.as_ref(), &other, None, &bare).await;
    assert_eq!(store.get(&other).await.unwrap(), Some(bare));
}

/// Keys that differ anywhere, even only in where a boundary between parts falls, name
/// different records; scope sets that differ only in order or duplicates name the same one.
pub async fn distinct_keys_never_collide(store: Arc<dyn Store>) {
    let scopes = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let keys = [
        test_key("ab", "c", "r"),
        test_key("a", "bc", "r"),
        test_key("i", "u", "https://x.example.com:443/cb"),
        test_key("i", "u", "https://x.example.com/cb:443"),
        test_key("https://as.example.com", "https://one.example.com/", "r"),
        test_key("https://as.example.com", "https://two.example.com/", "r"),
        ClientKey::new("i", "u", "r", &scopes(&["read"])),
        ClientKey::new("i", "u", "r", &scopes(&["read", "write"])),
        test_key("i", "u:", "r"),
        test_key("i", "u", ":r"),
    ];
    for (n, key) in keys.iter().enumerate() {
        let mut record = bare_record(key, 1);
        record.pre_registered_client_id = Some(format!("client-{n}"));
        write(store.as_ref(), key, None, &record).await;
    }
    for (n, key) in keys.iter().enumerate() {
        let stored = store
            .get(key)
            .await
            .unwrap()
            .expect("a written key is missing");
        assert_eq!(
            stored.pre_registered_client_id.as_deref(),
            Some(format!("client-{n}").as_str()),
            "key {n} reads another key's record"
        );
    }

    let one = ClientKey::new("i", "u", "r", &scopes(&["write", "read", "read"]));
    let two = ClientKey::new("i", "u", "r", &scopes(&["read", "write"]));
    assert_eq!(
        one, two,
        "scope order and duplicates must not change the key"
    );
    let stored = store
        .get(&one)
        .await
        .unwrap()
        .expect("same scope set, same record");
    assert_eq!(stored.pre_registered_client_id.as_deref(), Some("client-7"));
}

/// A compare-and-swap on the current generation overwrites; one on a stale generation, or an
/// insert over an existing record, changes nothing and hands back what is stored.
pub async fn stale_compare_and_swap_changes_nothing(store: Arc<dyn Store>) {
    let key = plain_key();
    let first = bare_record(&key, 1);
    write(store.as_ref(), &key, None, &first).await;
    let second = full_record(&key, 2);
    write(store.as_ref(), &key, Some(1), &second).await;

    let stale = bare_record(&key, 2);
    let outcome = store.compare_and_swap(&key, Some(1), &stale).await.unwrap();
    assert_eq!(outcome, CasOutcome::Conflict(Some(second.clone())));
    let outcome = store.compare_and_swap(&key, None, &first).await.unwrap();
    assert_eq!(outcome, CasOutcome::Conflict(Some(second.clone())));
    assert_eq!(store.get(&key).await.unwrap(), Some(second.clone()));

    let missing = test_key("https://as.example.com", "never-written", "r");
    let outcome = store
        .compare_and_swap(&missing, Some(4), &bare_record(&missing, 5))
        .await
        .unwrap();
    assert_eq!(outcome, CasOutcome::Conflict(None));
    assert_eq!(store.get(&missing).await.unwrap(), None);

    // Deletes are conditional on the generation too.
    let outcome = store.delete(&key, 1).await.unwrap();
    assert_eq!(outcome, CasOutcome::Conflict(Some(second)));
    assert_eq!(store.delete(&key, 2).await.unwrap(), CasOutcome::Applied);
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert_eq!(store.delete(&key, 2).await.unwrap(), CasOutcome::Applied);
}

/// A key never written is a miss, not an error.
pub async fn missing_key_is_a_miss(store: Arc<dyn Store>) {
    assert_eq!(store.get(&plain_key()).await.unwrap(), None);
    assert_eq!(store.load_profile("nobody").await.unwrap(), None);
    assert!(store.list_profiles().await.unwrap().is_empty());
}

/// Empty issuers, redirect URIs and client ids, generations that do not follow, and records
/// under another key are refused, and nothing is written.
pub async fn invalid_input_writes_nothing(store: Arc<dyn Store>) {
    let good = plain_key();
    let no_issuer = test_key("", "u", "http://127.0.0.1:1/cb");
    let no_redirect = test_key("https://as.example.com", "u", " ");
    for bad in [&no_issuer, &no_redirect] {
        let error = store
            .compare_and_swap(bad, None, &bare_record(bad, 1))
            .await
            .unwrap_err();
        assert!(error.is_invalid(), "expected a refusal, got {error}");
        assert!(store.get(bad).await.unwrap_err().is_invalid());
    }

    let mut empty_dcr = full_record(&good, 1);
    if let Some(dcr) = empty_dcr.dcr.as_mut() {
        dcr.client_id = String::new();
    }
    let mut empty_pre = bare_record(&good, 1);
    empty_pre.pre_registered_client_id = Some("".into());
    let mut empty_cimd = bare_record(&good, 1);
    empty_cimd.cimd = Some(CimdIdentity {
        client_id: " ".into(),
        rejected: false,
    });
    let skipped_generation = bare_record(&good, 3);
    let other_key = bare_record(&test_key("https://other.example.com", "u", "r"), 1);
    for (what, record) in [
        ("an empty DCR client id", &empty_dcr),
        ("an empty pre-registered client id", &empty_pre),
        ("an empty CIMD client id", &empty_cimd),
        ("a generation that skips", &skipped_generation),
        ("a record of another key", &other_key),
    ] {
        let error = store
            .compare_and_swap(&good, None, record)
            .await
            .expect_err(what);
        assert!(
            error.is_invalid(),
            "{what}: expected a refusal, got {error}"
        );
        assert_eq!(store.get(&good).await.unwrap(), None, "{what} was written");
    }

    for name in ["", "  ", "bad\nname"] {
        assert!(store
            .save_profile(name, json!({}))
            .await
            .unwrap_err()
            .is_invalid());
    }
    assert!(store.list_profiles().await.unwrap().is_empty());
    let error = store
        .take_lease(&good, "", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(error.is_invalid());
}

/// Many writers racing on one key, each reading and retrying on conflict, lose no update: the
/// final generation counts every write, and each writer's mark is in the history.
pub async fn concurrent_writers_lose_no_update(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const WRITES_EACH: usize = 5;
    let key = plain_key();
    write(store.as_ref(), &key, None, &bare_record(&key, 1)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        let key = key.clone();
        tasks.spawn(async move {
            let mut conflicts = 0usize;
            for n in 0..WRITES_EACH {
                // Bounded: with 8 writers a write can lose at most a few hundred races.
                for _attempt in 0..10_000 {
                    let current = store.get(&key).await.unwrap().expect("record vanished");
                    let mut next = current.clone();
                    next.generation = current.generation + 1;
                    let mut seen = next.pre_registered_client_id.take().unwrap_or_default();
                    seen.push_str(&format!("[{writer}.{n}]"));
                    next.pre_registered_client_id = Some(seen);
                    match store
                        .compare_and_swap(&key, Some(current.generation), &next)
                        .await
                        .unwrap()
                    {
                        CasOutcome::Applied => break,
                        CasOutcome::Conflict(_) => {
                            conflicts += 1;
                            tokio::task::yield_now().await;
                        }
                    }
                }
            }
            conflicts
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a writer panicked");
    }
    let last = store.get(&key).await.unwrap().expect("record vanished");
    assert_eq!(last.generation, 1 + (WRITERS * WRITES_EACH) as u64);
    let marks = last.pre_registered_client_id.unwrap_or_default();
    for writer in 0..WRITERS {
        for n in 0..WRITES_EACH {
            assert!(
                marks.contains(&format!("[{writer}.{n}]")),
                "the update {writer}.{n} was lost: {marks}"
            );
        }
    }
}

/// A lease is held by one holder at a time, only the holder renews or releases it, and an
/// expired lease can be taken by another holder.
pub async fn lease_is_exclusive_and_expires(store: Arc<dyn Store>) {
    let key = plain_key();
    let other = test_key("https://as.example.com", "other", "r");
    let long = Duration::from_secs(30);
    assert!(store.take_lease(&key, "a", long).await.unwrap());
    assert!(!store.take_lease(&key, "b", long).await.unwrap());
    assert!(
        store.take_lease(&key, "a", long).await.unwrap(),
        "re-taking extends"
    );
    assert!(
        store.take_lease(&other, "b", long).await.unwrap(),
        "leases are per key"
    );
    assert!(!store.renew_lease(&key, "b", long).await.unwrap());
    assert!(!store.release_lease(&key, "b").await.unwrap());
    assert!(store.renew_lease(&key, "a", long).await.unwrap());
    assert!(store.release_lease(&key, "a").await.unwrap());
    assert!(!store.release_lease(&key, "a").await.unwrap());
    assert!(store.take_lease(&key, "b", long).await.unwrap());

    let short = Duration::from_millis(200);
    let third = test_key("https://as.example.com", "third", "r");
    assert!(store.take_lease(&third, "a", short).await.unwrap());
    assert!(!store.take_lease(&third, "b", long).await.unwrap());
    // Bounded wait for the lease to lapse: at most 5 s in 50 ms steps.
    let mut taken = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if store.take_lease(&third, "b", long).await.unwrap() {
            taken = true;
            break;
        }
    }
    assert!(taken, "an expired lease could not be taken over");
    assert!(!store.renew_lease(&third, "a", long).await.unwrap());

    // A holder whose lease lapsed may not renew it either, even when nobody took it over:
    // another replica may be about to, and it would then hold a lease the store calls free.
    let fourth = test_key("https://as.example.com", "fourth", "r");
    assert!(store.take_lease(&fourth, "a", short).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(
        !store.renew_lease(&fourth, "a", long).await.unwrap(),
        "a lapsed lease was renewed"
    );
}

/// Profiles round-trip, list sorted, and delete.
pub async fn profiles_round_trip(store: Arc<dyn Store>) {
    let one = json!({"name": "one", "issuer": "https://as.example.com", "scope": ["a", "b"]});
    store.save_profile("one", one.clone()).await.unwrap();
    store
        .save_profile("a-two", json!({"name": "a-two"}))
        .await
        .unwrap();
    assert_eq!(store.load_profile("one").await.unwrap(), Some(one));
    assert_eq!(store.list_profiles().await.unwrap(), vec!["a-two", "one"]);
    store.save_profile("one", json!({"v": 2})).await.unwrap();
    assert_eq!(
        store.load_profile("one").await.unwrap(),
        Some(json!({"v": 2}))
    );
    assert!(store.delete_profile("one").await.unwrap());
    assert!(!store.delete_profile("one").await.unwrap());
    assert_eq!(store.list_profiles().await.unwrap(), vec!["a-two"]);
}

/// One step of a random operation sequence for [`model_check`].
#[derive(Clone, Debug)]
pub enum ModelOp {
    /// Read key `k`.
    Get(usize),
    /// CAS key `k` expecting `expected`, writing a record whose marker is `mark`.
    Cas(usize, Option<u64>, u32),
    /// Delete key `k` at generation `expected`.
    Delete(usize, u64),
    /// Save profile `p` with value `v`.
    SaveProfile(usize, u32),
    /// Delete profile `p`.
    DeleteProfile(usize),
}

const MODEL_KEYS: usize = 3;
const MODEL_PROFILES: usize = 2;

fn model_key(n: usize) -> ClientKey {
    test_key(
        "https://as.example.com",
        &format!("up{n}"),
        "http://127.0.0.1:1/cb",
    )
}

/// The strategy for model operation sequences.
pub fn model_ops() -> impl Strategy<Value = Vec<ModelOp>> {
    let op = prop_oneof![
        (0..MODEL_KEYS).prop_map(ModelOp::Get),
        (0..MODEL_KEYS, prop::option::of(0u64..4), any::<u32>())
            .prop_map(|(k, e, m)| ModelOp::Cas(k, e, m)),
        (0..MODEL_KEYS, 0u64..4).prop_map(|(k, e)| ModelOp::Delete(k, e)),
        (0..MODEL_PROFILES, any::<u32>()).prop_map(|(p, v)| ModelOp::SaveProfile(p, v)),
        (0..MODEL_PROFILES).prop_map(ModelOp::DeleteProfile),
    ];
    prop::collection::vec(op, 1..40)
}

/// Runs `ops` against `store` (fresh and empty) and a `BTreeMap` model, failing on the first
/// answer or final state where they differ.
pub async fn model_run(store: &dyn Store, ops: &[ModelOp]) -> Result<(), TestCaseError> {
    let mut records: BTreeMap<usize, Record> = BTreeMap::new();
    let mut profiles: BTreeMap<String, Value> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            ModelOp::Get(k) => {
                let got = store.get(&model_key(k)).await.unwrap();
                prop_assert_eq!(got.as_ref(), records.get(&k), "step {}: get", step);
            }
            ModelOp::Cas(k, expected, mark) => {
                let key = model_key(k);
                let mut record = bare_record(&key, expected.map_or(1, |g| g + 1));
                record.pre_registered_client_id = Some(format!("mark-{mark}"));
                let got = store
                    .compare_and_swap(&key, expected, &record)
                    .await
                    .unwrap();
                let current = records.get(&k).cloned();
                let want = if current.as_ref().map(|r| r.generation) == expected {
                    records.insert(k, record);
                    CasOutcome::Applied
                } else {
                    CasOutcome::Conflict(current)
                };
                prop_assert_eq!(got, want, "step {}: cas", step);
            }
            ModelOp::Delete(k, expected) => {
                let got = store.delete(&model_key(k), expected).await.unwrap();
                let want = match records.get(&k) {
                    Some(current) if current.generation != expected => {
                        CasOutcome::Conflict(Some(current.clone()))
                    }
                    _ => {
                        records.remove(&k);
                        CasOutcome::Applied
                    }
                };
                prop_assert_eq!(got, want, "step {}: delete", step);
            }
            ModelOp::SaveProfile(p, v) => {
                let name = format!("profile-{p}");
                store.save_profile(&name, json!({ "v": v })).await.unwrap();
                profiles.insert(name, json!({ "v": v }));
            }
            ModelOp::DeleteProfile(p) => {
                let name = format!("profile-{p}");
                let got = store.delete_profile(&name).await.unwrap();
                prop_assert_eq!(got, profiles.remove(&name).is_some(), "step {}", step);
            }
        }
    }
    for k in 0..MODEL_KEYS {
        let got = store.get(&model_key(k)).await.unwrap();
        prop_assert_eq!(got.as_ref(), records.get(&k), "final state of key {}", k);
    }
    let names: Vec<String> = profiles.keys().cloned().collect();
    prop_assert_eq!(store.list_profiles().await.unwrap(), names);
    for (name, value) in &profiles {
        let loaded = store.load_profile(name).await.unwrap();
        prop_assert_eq!(loaded.as_ref(), Some(value));
    }
    Ok(())
}

/// Compares a store with the model over `cases` random sequences; each case gets a fresh store
/// from `fresh`. Runs its own single-threaded runtime, so call it from a plain `#[test]`.
pub fn model_check<F, Fut>(cases: u32, fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime");
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&model_ops(), |ops| {
        runtime.block_on(async {
            let store = fresh().await;
            model_run(store.as_ref(), &ops).await
        })
    });
    if let Err(error) = result {
        panic!("the store disagrees with the model: {error}");
    }
}

/// Stamps out every check of the kit as a `#[tokio::test]`, plus the model comparison as a
/// `#[test]`, each on a fresh store from the async function `$fresh`.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!($fresh, 64);
    };
    ($fresh:path, $model_cases:expr) => {
        $crate::conformance_tests!(@each $fresh;
            round_trip_keeps_every_field,
            distinct_keys_never_collide,
            stale_compare_and_swap_changes_nothing,
            missing_key_is_a_miss,
            invalid_input_writes_nothing,
            concurrent_writers_lose_no_update,
            lease_is_exclusive_and_expires,
            profiles_round_trip,
        );

        #[test]
        fn agrees_with_a_btreemap_model() {
            $crate::kit::model_check($model_cases, $fresh);
        }
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::kit::$check($fresh().await).await;
            }
        )*
    };
}
