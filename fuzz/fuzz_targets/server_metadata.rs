//! RFC 8414 / OpenID authorization server metadata, as any server may send it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::parsers::parse_server_metadata;
use tenure_core::parsers::json_object;

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = json_object(data) {
        let _ = parse_server_metadata(&document, "https://as.example.com");
        let _ = parse_server_metadata(&document, "https://as.example.com/tenant1/");
    }
});
