//! Get and compare-and-swap latency of the Redis store against a real `redis-server` started
//! here on 127.0.0.1, and the floor: `redis-benchmark` GET over one connection, one request at
//! a time, against the same server. Prints the store's get latency as a ratio to that floor.

use std::process::Command;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use tenure_redis::{Options, RedisStore};
use tenure_store::kit::{full_record, plain_key};
use tenure_store::Store;

/// Requests per second of `redis-benchmark` GET, one client, no pipelining.
fn raw_get_per_second(port: u16, requests: u32) -> f64 {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "get",
            "-c",
            "1",
        ])
        .args(["-n", &requests.to_string(), "-q"])
        .output()
        .expect("redis-benchmark must be installed (Debian: apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&output.stdout);
    // "GET: 41322.31 requests per second, p50=0.023 msec"; the last \r-separated part is it.
    let line = text.rsplit('\r').next().unwrap_or_default();
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read redis-benchmark's answer: {text}"))
}

fn bench(c: &mut Criterion) {
    let server = tenure_test_harness::Redis::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = server.url();
    let store = runtime
        .block_on(RedisStore::open(&url, Options::default()))
        .unwrap();
    let key = plain_key();
    runtime
        .block_on(store.compare_and_swap(&key, None, &full_record(&key, 1)))
        .unwrap();

    c.bench_function("redis/get", |b| {
        b.iter(|| runtime.block_on(store.get(&key)).unwrap())
    });
    let mut generation = 1;
    c.bench_function("redis/cas", |b| {
        b.iter(|| {
            let next = full_record(&key, generation + 1);
            runtime
                .block_on(store.compare_and_swap(&key, Some(generation), &next))
                .unwrap();
            generation += 1;
        })
    });

    const N: u32 = 20_000;
    let started = Instant::now();
    for _ in 0..N {
        runtime.block_on(store.get(&key)).unwrap();
    }
    let store_per_second = f64::from(N) / started.elapsed().as_secs_f64();
    let raw = raw_get_per_second(server.port, N);
    println!(
        "redis/get-vs-raw: store get {store_per_second:.0}/s, redis-benchmark GET {raw:.0}/s \
         (1 client), ratio {:.2}x the raw latency",
        raw / store_per_second
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
