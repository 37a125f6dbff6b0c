//! A Sentinel failover under load: the master is killed with SIGKILL, Sentinel promotes a
//! replica, the store follows it and keeps working, and no acknowledged write is lost.
//!
//! Three real `redis-server`s (a master and two replicas) and one Sentinel, all on 127.0.0.1.
//! The store waits for one replica to confirm every write (`min_replicas: 1`), which is what
//! makes an acknowledged write survive the master's death.

mod support;

use std::time::{Duration, Instant};

use support::Server;
use tenure_redis::{Options, RedisStore};
use tenure_store::kit::{full_record, test_key};
use tenure_store::{CasOutcome, Store};

const MASTER: &str = "tenure-master";

fn replication_up(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/0")) else {
        return false;
    };
    let Ok(mut connection) = client.get_connection() else {
        return false;
    };
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut connection)
        .unwrap_or_default();
    info.contains("master_link_status:up")
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn master_port(sentinel: u16) -> Option<u16> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{sentinel}/")).ok()?;
    let mut connection = client.get_connection().ok()?;
    let (_, port): (String, String) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER)
        .query(&mut connection)
        .ok()?;
    port.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_across_a_failover() {
    let mut master = Server::start("master", &[]);
    let replica_of = [
        "--replicaof".to_string(),
        "127.0.0.1".into(),
        master.port.to_string(),
    ];
    let replica_of: Vec<&str> = replica_of.iter().map(String::as_str).collect();
    let replicas = [
        Server::start("replica-a", &replica_of),
        Server::start("replica-b", &replica_of),
    ];
    for replica in &replicas {
        wait_for("replication", Duration::from_secs(20), || {
            replication_up(replica.port)
        });
    }
    let sentinel = Server::sentinel(MASTER, master.port);
    wait_for(
        "Sentinel discovering the replicas",
        Duration::from_secs(20),
        || master_port(sentinel.port) == Some(master.port),
    );

    let options = Options {
        min_replicas: 1,
        retry_for: Duration::from_secs(40),
        ..Options::default()
    };
    let url = format!("redis-sentinel://127.0.0.1:{}/{MASTER}/0", sentinel.port);
    let store = RedisStore::open(&url, options)
        .await
        .expect("connect through Sentinel");

    let mut acknowledged = Vec::new();
    for n in 0..20 {
        if n == 10 {
            master.kill();
        }
        let key = test_key(
            "https://as.example.com",
            &format!("upstream-{n}"),
            "http://127.0.0.1:1/cb",
        );
        let record = full_record(&key, 1);
        match store.compare_and_swap(&key, None, &record).await {
            Ok(CasOutcome::Applied) => acknowledged.push((key, record)),
            other => panic!("write {n} failed across the failover: {other:?}"),
        }
    }
    let promoted = master_port(sentinel.port).expect("Sentinel names a master");
    assert_ne!(promoted, master.port, "Sentinel did not fail over");
    assert!(replicas.iter().any(|r| r.port == promoted));

    for (key, record) in &acknowledged {
        let stored = store.get(key).await.expect("read after the failover");
        assert_eq!(
            stored.as_ref(),
            Some(record),
            "an acknowledged write was lost"
        );
    }
    println!(
        "failover: master on {} killed, replica on {promoted} promoted, {} writes acknowledged, none lost",
        master.port,
        acknowledged.len()
    );
}
