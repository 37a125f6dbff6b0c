//! The browser's redirect to the loopback callback (state, code, iss, error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::parsers::{check_callback, CallbackExpectation};

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        for iss_required in [false, true] {
            let expectation = CallbackExpectation {
                state: "s",
                issuer: "https://as.example.com",
                iss_required,
            };
            let _ = check_callback(query, &expectation);
        }
    }
});
