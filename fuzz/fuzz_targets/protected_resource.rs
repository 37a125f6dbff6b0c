//! RFC 9728 protected resource metadata.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::parsers::{parse_protected_resource, prm_candidates};
use tenure_core::parsers::json_object;

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = json_object(data) {
        if let Ok(candidates) = prm_candidates("https://mcp.example.com/mcp", None) {
            for candidate in candidates {
                let _ = parse_protected_resource(&document, &candidate);
            }
        }
    }
});
