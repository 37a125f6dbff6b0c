//! Get and compare-and-swap latency of the sled store. Every CAS is flushed to disk before it
//! returns, so the CAS number is dominated by the disk's fsync.

use criterion::{criterion_group, criterion_main, Criterion};
use tenure_sled::SledStore;
use tenure_store::kit::{full_record, plain_key};
use tenure_store::Store;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tenure-sled-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SledStore::open(&dir).unwrap();
    let key = plain_key();
    runtime
        .block_on(store.compare_and_swap(&key, None, &full_record(&key, 1)))
        .unwrap();

    c.bench_function("sled/get", |b| {
        b.iter(|| runtime.block_on(store.get(&key)).unwrap())
    });
    let mut generation = 1;
    c.bench_function("sled/cas", |b| {
        b.iter(|| {
            let next = full_record(&key, generation + 1);
            runtime
                .block_on(store.compare_and_swap(&key, Some(generation), &next))
                .unwrap();
            generation += 1;
        })
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
