//! `WWW-Authenticate` challenges (RFC 6750, RFC 9728 `resource_metadata`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::parsers::{parse, resource_challenge};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = parse(header);
        let _ = resource_challenge(&[header, header]);
    }
});
