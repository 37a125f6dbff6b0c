//! Values found in a store: the codec's envelope around a record, whatever bytes they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::ClientKey;
use tenure_store::codec::{decode_profile, decode_record};

fuzz_target!(|data: &[u8]| {
    let key = ClientKey::new("https://as.example.com", "up", "http://127.0.0.1:1/cb", &[]);
    let _ = decode_record(&key, data);
    let _ = decode_profile("fuzz", data);
});
