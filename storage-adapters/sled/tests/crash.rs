//! SIGKILL during and between writes: the store always opens and holds at least the last
//! acknowledged record.
//!
//! The test binary plays two parts. Run by cargo, it is the parent: it starts itself again as
//! a writer child, lets it write for a seeded random moment, kills it with SIGKILL, reopens
//! the store and checks it, over many cycles. With `TENURE_SLED_CRASH_DIR` set it is the
//! child, which writes generation after generation and prints `acked N` after each write the
//! store acknowledged.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration as StdDuration;

use tenure_sled::SledStore;
use tenure_store::kit::{full_record, plain_key};
use tenure_store::{CasOutcome, Store};

const CHILD_ENV: &str = "TENURE_SLED_CRASH_DIR";
const CYCLES: u64 = 12;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match std::env::var(CHILD_ENV) {
        Ok(dir) => runtime.block_on(child(&dir)),
        Err(_) => runtime.block_on(parent()),
    }
}

async fn child(dir: &str) {
    let store = SledStore::open(dir).expect("the child opens the store");
    let key = plain_key();
    let mut stdout = std::io::stdout();
    // Bounded: the parent kills the child long before this ends.
    for _ in 0..100_000 {
        let current = store.get(&key).await.expect("the child reads its record");
        let expected = current.as_ref().map(|r| r.generation);
        let next = full_record(&key, expected.unwrap_or(0) + 1);
        match store.compare_and_swap(&key, expected, &next).await {
            Ok(CasOutcome::Applied) => {
                writeln!(stdout, "acked {}", next.generation).unwrap();
                stdout.flush().unwrap();
            }
            other => panic!("the only writer lost a write: {other:?}"),
        }
    }
}

async fn parent() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sled-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = 0x5eed_u64;
    let mut last_acked = 0u64;
    let mut in_flight_landed = 0u64;
    for cycle in 0..CYCLES {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the writer child starts");
        let stdout = child.stdout.take().unwrap();
        let (lines, acks) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("acked ") {
                    let _ = lines.send(n.parse::<u64>().unwrap());
                }
            }
        });
        // Wait for the first acknowledgement of this cycle (bounded), so every cycle kills a
        // child that is really writing, then a seeded random moment more.
        let first = acks
            .recv_timeout(StdDuration::from_secs(30))
            .unwrap_or_else(|_| panic!("cycle {cycle}: the child acknowledged nothing in 30 s"));
        assert!(first > last_acked, "cycle {cycle}: generation went back");
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(StdDuration::from_millis(5 + (rng >> 33) % 120));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        reader.join().unwrap();
        last_acked = acks.try_iter().fold(first, u64::max);

        let store = SledStore::open(&dir).expect("the store opens after a SIGKILL");
        let record = store
            .get(&plain_key())
            .await
            .expect("the record reads after a SIGKILL")
            .expect("the record survived");
        assert!(
            record.generation >= last_acked,
            "cycle {cycle}: acknowledged generation {last_acked} lost, store holds {}",
            record.generation
        );
        assert!(
            record.generation <= last_acked + 1,
            "cycle {cycle}: the store holds {} but only {last_acked} was acknowledged",
            record.generation
        );
        if record.generation > last_acked {
            in_flight_landed += 1;
        }
        assert_eq!(record, full_record(&plain_key(), record.generation));
        last_acked = record.generation;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "sled crash test: {CYCLES} SIGKILLs, last generation {last_acked}, \
         {in_flight_landed} writes in flight at the kill landed, none acknowledged was lost"
    );
}
