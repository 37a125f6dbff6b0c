//! The scenario measurements of the benchmark report, printed as markdown on stdout.
//!
//! ```text
//! scenarios [--issuer URL] [--tenure PATH --peer PATH]
//! ```
//!
//! `--issuer` names a running test authorization server (`testing/oidc-provider`, started by
//! `scripts/bench`) for the single-flight measurement; its counters are read at
//! `/__admin/counts`, so the registrations are counted by the server, not by Tenure. With
//! `--tenure` (a release `tenure` binary) and `--peer` (`peer-token-reader`), the warm
//! `tenure token` process is timed against that server, next to the peer.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tenure_bench::{client, epoch, provider};
use tenure_core::{ClientConfig, Grant, Operation, Secret};
use tenure_sim::provider::{ProviderConfig, SimulatedProvider};
use tenure_sim::Simulation;
use tenure_store::{MemoryStore, Store};
use tenure_tokio::{Clock, Tenure};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let issuer = option("--issuer");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    cold_start();
    runtime.block_on(warm_start());
    runtime.block_on(hot_path());
    match &issuer {
        Some(issuer) => runtime.block_on(single_flight(issuer)),
        None => println!("\n### Single flight\n\nNot measured: no `--issuer` was given.\n"),
    }
    match (&issuer, option("--tenure"), option("--peer")) {
        (Some(issuer), Some(tenure), Some(peer)) => token_process(issuer, &tenure, &peer),
        _ => println!("### The `tenure token` process\n\nNot measured: give `--issuer`, `--tenure` and `--peer`.\n"),
    }
    runtime.block_on(memory());
}

/// Requests a cold start sends with each registration method, next to the minimum the
/// protocol needs: one metadata document, the registration (DCR only), one code exchange.
fn cold_start() {
    println!("### Cold start: requests per registration method\n");
    println!("| method | requests sent | minimum | requests |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, sim: &Simulation, minimum: usize| {
        let kinds: Vec<String> = sim
            .requests()
            .iter()
            .map(|r| format!("{:?}", r.kind))
            .collect();
        println!(
            "| {name} | {} | {minimum} | {} |",
            sim.requests().len(),
            kinds.join(", ")
        );
    };

    let provider_dcr = provider();
    let config = client(&provider_dcr);
    let mut sim = Simulation::new(config, provider_dcr, epoch());
    assert!(sim.run(Operation::Login).expect("login").is_token());
    row("DCR", &sim, 3);

    let provider_cimd = SimulatedProvider::new(ProviderConfig {
        cimd_supported: true,
        ..ProviderConfig::default()
    });
    let mut config = ClientConfig::for_issuer("bench", provider_cimd.config().issuer.clone());
    config.cimd_url = Some("https://app.example.com/tenure/client.json".into());
    let mut sim = Simulation::new(config, provider_cimd, epoch());
    assert!(sim.run(Operation::Login).expect("login").is_token());
    row("CIMD", &sim, 2);

    let mut provider_pre = provider();
    let mut metadata = Map::new();
    metadata.insert(
        "token_endpoint_auth_method".into(),
        "client_secret_post".into(),
    );
    metadata.insert(
        "grant_types".into(),
        serde_json::json!(["client_credentials"]),
    );
    metadata.insert("response_types".into(), serde_json::json!([]));
    metadata.insert("scope".into(), "read".into());
    let info = provider_pre
        .preregister(epoch(), metadata)
        .expect("pre-registration");
    let mut config = client(&provider_pre);
    config.grant = Grant::ClientCredentials;
    config.client_id = info["client_id"].as_str().map(str::to_string);
    config.client_secret = info["client_secret"].as_str().map(Secret::new);
    let mut sim = Simulation::new(config, provider_pre, epoch());
    assert!(sim.run(Operation::Token).expect("token").is_token());
    row("pre-registered (client credentials)", &sim, 2);
    println!();
}

/// Logs a client in against the simulated provider and puts its record in `store`; returns
/// its configuration and a clock at the moment of the login, when the token is fresh.
async fn logged_in(store: &dyn Store) -> (ClientConfig, Clock) {
    let provider = provider();
    let config = client(&provider);
    let mut sim = Simulation::new(config.clone(), provider, epoch());
    assert!(sim.run(Operation::Login).expect("login").is_token());
    let mut record = sim.stored().expect("a stored record").clone();
    record.generation = 1;
    store
        .compare_and_swap(&record.key, None, &record)
        .await
        .expect("seed the store");
    (config, Clock::starting_at(sim.now()))
}

/// Time to a token from a sled store that holds valid credentials, in-process: start a
/// client and ask for a token. The issuer is a host that does not resolve, so any request
/// would fail the measurement: a token proves none was sent.
async fn warm_start() {
    let dir = std::env::temp_dir().join(format!("tenure-warm-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn Store> = Arc::new(tenure_sled::SledStore::open(&dir).expect("sled"));
    let (config, clock) = logged_in(store.as_ref()).await;
    const RUNS: u32 = 500;
    let started = Instant::now();
    for _ in 0..RUNS {
        let tenure = Tenure::builder(config.clone(), store.clone())
            .clock(clock)
            .build()
            .await
            .expect("start");
        tenure
            .token()
            .await
            .expect("a warm start must serve the stored token");
    }
    let per_start = started.elapsed() / RUNS;
    println!("### Warm start (sled store, in-process)\n");
    println!("| measure | value |\n| --- | --- |");
    println!("| time from start to a token | {per_start:?} (mean of {RUNS}) |");
    println!("| requests sent | 0 (the issuer does not resolve; any request would fail) |\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Warm `token()` calls per second on one started handle, from 1, 8 and 64 tasks on the
/// two-worker runtime: the token is valid, so every call is the hot path (a read of the
/// published token, no message to the driver). The issuer does not resolve, so a call that
/// reached the network would fail the measurement.
async fn hot_path() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (config, clock) = logged_in(store.as_ref()).await;
    let tenure = Tenure::builder(config, store)
        .clock(clock)
        .build()
        .await
        .expect("start");
    // The first call goes through the driver, which then publishes the token.
    tenure.token().await.expect("a token");
    println!("### Hot path: warm `token()` calls on a started handle (2 worker threads)\n");
    println!("| tasks | calls | calls per second |\n| --- | --- | --- |");
    const CALLS: u64 = 4_000_000;
    for tasks in [1u64, 8, 64] {
        let per_task = CALLS / tasks;
        let started = Instant::now();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let tenure = tenure.clone();
            callers.spawn(async move {
                for _ in 0..per_task {
                    let token = tenure.token().await.expect("a warm token");
                    std::hint::black_box(token);
                }
            });
        }
        while let Some(joined) = callers.join_next().await {
            joined.expect("a caller");
        }
        let rate = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
        println!("| {tasks} | {} | {:.1} M/s |", per_task * tasks, rate / 1e6);
    }
    println!();
}

/// One hundred concurrent `token()` callers of one key, on one client handle, against a real
/// authorization server: registrations counted at the server.
async fn single_flight(issuer: &str) {
    let before = counts(issuer);
    let mut config = ClientConfig::for_issuer("single-flight", issuer);
    config.grant = Grant::ClientCredentials;
    config.scopes = vec!["read".into()];
    config.seed = [3; 32];
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let tenure = Tenure::builder(config, store).build().await.expect("start");
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let tenure = tenure.clone();
        callers.spawn(async move { tenure.token().await });
    }
    let mut tokens = 0;
    while let Some(joined) = callers.join_next().await {
        if let Ok(Ok(_token)) = joined {
            tokens += 1;
        }
    }
    let elapsed = started.elapsed();
    let after = counts(issuer);
    let delta = |name: &str| after[name].as_u64().unwrap_or(0) - before[name].as_u64().unwrap_or(0);
    println!("### Single flight: 100 concurrent callers of one key\n");
    println!("| measure | value |\n| --- | --- |");
    println!("| callers served a token | {tokens} of 100 |");
    println!(
        "| registrations at the server | {} |",
        delta("registrations")
    );
    println!(
        "| token requests at the server | {} |",
        delta("token_client_credentials")
    );
    println!("| time until every caller had its token | {elapsed:?} |\n");
}

/// The test server's counters (a plain HTTP GET on loopback).
fn counts(issuer: &str) -> Value {
    let authority = issuer.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).expect("the test server answers");
    write!(
        stream,
        "GET /__admin/counts HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("{}");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Resident memory with 10,000 clients in the in-memory store, each a full record (a DCR
/// registration with unknown metadata, tokens, a CIMD id).
async fn memory() {
    const CLIENTS: usize = 10_000;
    let before = resident_kib();
    let store = MemoryStore::new();
    for n in 0..CLIENTS {
        let key = tenure_store::kit::test_key(
            "https://as.example.com",
            &format!("upstream-{n}"),
            "http://127.0.0.1:8976/callback",
        );
        let record = tenure_store::kit::full_record(&key, 1);
        store
            .compare_and_swap(&key, None, &record)
            .await
            .expect("insert");
    }
    let after = resident_kib();
    let peak = peak_kib();
    let per_client = (after.saturating_sub(before) * 1024) / CLIENTS as u64;
    println!("### Memory: {CLIENTS} stored clients (in-memory store)\n");
    println!("| measure | value |\n| --- | --- |");
    println!("| resident before | {before} KiB |");
    println!("| resident after | {after} KiB |");
    println!("| peak resident (whole run) | {peak} KiB |");
    println!("| bytes per client | {per_client} |\n");
    drop(store);
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn resident_kib() -> u64 {
    status_field("VmRSS:")
}

fn peak_kib() -> u64 {
    status_field("VmHWM:")
}

/// Wall time of a warm `tenure token` process on the default store (sled), next to a peer
/// process that reads its token from one JSON file: the warm path (the handout file) and
/// the full path (the handout removed before each run, so the store is opened and the core
/// serves the stored token without a request).
fn token_process(issuer: &str, tenure: &str, peer: &str) {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("tenure-process-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let store = dir.join("store");
    let run = |args: &[&str]| {
        let status = Command::new(tenure)
            .arg("--store")
            .arg(&store)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("tenure runs");
        assert!(status.success(), "tenure {args:?} failed");
    };
    run(&[
        "add",
        "svc",
        "--issuer",
        issuer,
        "--grant",
        "client_credentials",
        "--scope",
        "read",
    ]);
    run(&["token", "svc"]);
    let peer_file = dir.join("peer-token.json");
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    std::fs::write(
        &peer_file,
        format!(r#"{{"access_token":"a-peer-token","expires_at":{later}}}"#),
    )
    .expect("the peer's file");
    const RUNS: u32 = 200;
    let time = |mut each: Box<dyn FnMut()>| {
        let started = Instant::now();
        for _ in 0..RUNS {
            each();
        }
        started.elapsed() / RUNS
    };
    let peer_time = time(Box::new(|| {
        let status = Command::new(peer)
            .arg(&peer_file)
            .stdout(Stdio::null())
            .status()
            .expect("the peer runs");
        assert!(status.success());
    }));
    let warm = time(Box::new(|| run(&["token", "svc"])));
    let handouts = store.join("handouts");
    let full = time(Box::new(|| {
        let _ = std::fs::remove_dir_all(&handouts);
        run(&["token", "svc"]);
    }));
    let ratio = |t: std::time::Duration| t.as_secs_f64() / peer_time.as_secs_f64();
    println!("### The `tenure token` process (sled store, valid token, mean of {RUNS})\n");
    println!("| process | wall time | against the peer |\n| --- | --- | --- |");
    println!("| peer: reads one JSON file | {peer_time:?} | 1.0× |");
    println!(
        "| `tenure token`, warm (handout file) | {warm:?} | {:.2}× |",
        ratio(warm)
    );
    println!(
        "| `tenure token`, full path (opens the store; 0 requests) | {full:?} | {:.2}× |",
        ratio(full)
    );
    println!();
    let _ = std::fs::remove_dir_all(&dir);
}
