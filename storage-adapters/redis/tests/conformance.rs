//! The Redis store passes the conformance kit against a real `redis-server`, lays its keys
//! out so distinct client keys never share one, gives records the time to live of their
//! secret, and reports foreign values by key without overwriting them.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use redis::AsyncCommands;
use tenure_core::record::SecretExpiry;
use tenure_core::Timestamp;
use tenure_redis::{Options, RedisStore};
use tenure_store::kit::{bare_record, full_record, plain_key, test_key};
use tenure_store::Store;

fn prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn store_with(prefix: String) -> RedisStore {
    let options = Options {
        prefix,
        ..Options::default()
    };
    RedisStore::open(&support::shared().url(), options)
        .await
        .expect("the store connects to the test Redis")
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(store_with(prefix()).await)
}

tenure_store::conformance_tests!(fresh, 48);

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(support::shared().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_are_the_prefix_and_length_prefixed_segments() {
    let store = store_with("app:".into()).await;
    let one = test_key("ab", "c", "r");
    let two = test_key("a", "bc", "r");
    assert_ne!(store.record_key(&one), store.record_key(&two));
    assert!(store.record_key(&one).starts_with("app:r:2:ab1:c1:r64:"));
}

/// A record outlives its secret while the core may still need it (issue: a server that would
/// renew an expired secret through RFC 7592 must get the chance).
#[tokio::test]
async fn a_record_outlives_its_secret_while_it_is_still_needed() {
    let prefix = prefix();
    let store = store_with(prefix.clone()).await;
    let mut connection = raw().await;
    let now = Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let grace = tenure_redis::RECORD_GRACE.as_millis();
    let hour = 3_600_000;
    let past = Timestamp::from_unix_seconds(1_000);
    let future = now + tenure_core::Duration::from_secs(3600);
    // (name, expiry, manageable, refresh token, accepted PTTL)
    let cases = [
        ("never", SecretExpiry::Never, false, false, -1..=-1),
        (
            "manageable, past",
            SecretExpiry::At(past),
            true,
            false,
            -1..=-1,
        ),
        (
            "refresh token, past",
            SecretExpiry::At(past),
            false,
            true,
            -1..=-1,
        ),
        (
            "unmanaged, future",
            SecretExpiry::At(future),
            false,
            false,
            hour + grace - 10_000..=hour + grace,
        ),
        (
            "unmanaged, long past",
            SecretExpiry::At(past),
            false,
            false,
            1..=1_000,
        ),
    ];
    for (name, expiry, manageable, refresh, range) in cases {
        let key = test_key("https://as.example.com", name, "http://127.0.0.1:1/cb");
        let mut record = full_record(&key, 1);
        let dcr = record.dcr.as_mut().unwrap();
        dcr.secret_expires = expiry;
        if !manageable {
            dcr.registration_access_token = None;
            dcr.registration_client_uri = None;
        }
        if !refresh {
            record.tokens.as_mut().unwrap().refresh_token = None;
        }
        store.compare_and_swap(&key, None, &record).await.unwrap();
        let ttl: i64 = connection.pttl(store.record_key(&key)).await.unwrap();
        assert!(range.contains(&ttl), "{name}: PTTL {ttl} not in {range:?}");
        // Written either way, so the expiry is visible to a reader.
        assert_eq!(store.get(&key).await.unwrap(), Some(record));
    }
    let key = test_key("https://as.example.com", "no-dcr", "r");
    store
        .compare_and_swap(&key, None, &bare_record(&key, 1))
        .await
        .unwrap();
    let ttl: i64 = connection.pttl(store.record_key(&key)).await.unwrap();
    assert_eq!(ttl, -1, "a record without a DCR secret has no time to live");
}

#[tokio::test]
async fn a_foreign_value_is_reported_by_key_and_left_alone() {
    let store = store_with(prefix()).await;
    let key = plain_key();
    let mut connection = raw().await;
    let _: () = connection
        .set(store.record_key(&key), "not tenure's hunter2")
        .await
        .unwrap();
    let error = store.get(&key).await.unwrap_err();
    assert!(error.is_corrupt(), "{error}");
    assert!(
        error.to_string().contains("https://as.example.com"),
        "{error}"
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let error = store
        .compare_and_swap(&key, None, &full_record(&key, 1))
        .await
        .unwrap_err();
    assert!(error.is_corrupt(), "{error}");
    assert!(store.delete(&key, 1).await.unwrap_err().is_corrupt());
    let left: String = connection.get(store.record_key(&key)).await.unwrap();
    assert_eq!(left, "not tenure's hunter2");
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let port = support::free_port();
    let options = Options {
        retry_for: std::time::Duration::from_millis(200),
        ..Options::default()
    };
    let error = RedisStore::open(&format!("redis://127.0.0.1:{port}/0"), options)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("check that Redis runs there"), "{error}");
}
