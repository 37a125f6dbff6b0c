//! Token endpoint answers (code exchange, refresh, client credentials), with any status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::parsers::parse_token_answer;
use tenure_core::parsers::server_error;
use tenure_core::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let status = [200u16, 400, 401, 403, 500, 503][usize::from(first) % 6];
    for dpop_sent in [false, true] {
        let _ = parse_token_answer(status, body, Timestamp::from_unix_seconds(1), None, dpop_sent);
    }
    let _ = server_error(status, body);
});
