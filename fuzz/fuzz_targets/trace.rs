//! Recorded provider traces (design §7): parsed, and replayed when they parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_sim::replay::{parse, replay};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(trace) = parse(text) {
            let _ = replay(&trace);
        }
    }
});
