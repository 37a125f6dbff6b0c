//! The core's speed: whole simulated lifecycles per second (and the inputs handled per second
//! inside them), and recorded traces replayed per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tenure_bench::lifecycle;
use tenure_sim::replay::{parse, replay};

fn bench(c: &mut Criterion) {
    let inputs = lifecycle();
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(1));
    group.bench_function("lifecycle", |b| b.iter(lifecycle));
    group.throughput(Throughput::Elements(inputs));
    group.bench_function("inputs", |b| b.iter(lifecycle));

    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testing/traces/oidc-provider-client-credentials-renewal.jsonl"
    ))
    .expect("the recorded trace is in the repository");
    let trace = parse(&text).expect("the trace parses");
    group.throughput(Throughput::Elements(1));
    group.bench_function("replay", |b| {
        b.iter(|| {
            let summary = replay(&trace).expect("the trace replays");
            assert!(summary.diverged.is_none());
            summary
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
