//! A server that answers from a script: a few fixed documents instead of a whole provider.
//!
//! Tests of one protocol detail (which scope a challenge leads to, what a mismatched
//! resource document does) need the answers spelled out, not an authorization server with
//! its own opinions. [`Scripted`] answers each `METHOD URL` with what the test set, and 404
//! to anything else; a test that needs an endpoint to compute its answer wraps it in its own
//! [`Server`] and hands the rest down.
//!
//! ```text
//!   Simulation ──request──▶ Scripted: "GET https://as.example.com/.well-known/…" ─▶ (200, {...})
//!                                     anything not in the script              ─▶ (404, not_found)
//! ```

use std::collections::HashMap;
use std::fmt;

use serde_json::{json, Value};
use tenure_core::Timestamp;

use crate::provider::{Reply, Server};

/// Fixed JSON answers by method and URL (without the query); 404 to everything else.
#[derive(Default)]
pub struct Scripted {
    answers: HashMap<String, (u16, Value)>,
}

impl Scripted {
    /// A server with nothing to say: every request gets 404.
    pub fn new() -> Self {
        Scripted::default()
    }

    /// From now on answers `method url` with `status` and `body`, replacing what it answered
    /// before. A query in `url` is ignored, as it is in the requests.
    pub fn answer(&mut self, method: &str, url: &str, status: u16, body: Value) {
        self.answers.insert(route(method, url), (status, body));
    }
}

/// `METHOD URL` without the query: state, PKCE challenges and the like vary from run to run,
/// the endpoint does not.
fn route(method: &str, url: &str) -> String {
    let bare = url.split('?').next().unwrap_or_default();
    format!("{method} {bare}")
}

impl Server for Scripted {
    fn handle(&mut self, _now: Timestamp, request: &http::Request<Vec<u8>>) -> Reply {
        let key = route(request.method().as_str(), &request.uri().to_string());
        match self.answers.get(&key) {
            Some((status, body)) => Reply::json(*status, body),
            None => Reply::json(404, &json!({"error": "not_found"})),
        }
    }
}

impl fmt::Debug for Scripted {
    /// The routes only: a script may hold credentials a test planted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routes: Vec<&String> = self.answers.keys().collect();
        routes.sort();
        f.debug_struct("Scripted").field("routes", &routes).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(server: &mut Scripted, url: &str) -> (u16, Value) {
        let request = http::Request::get(url).body(Vec::new()).unwrap();
        let reply = server.handle(Timestamp::EPOCH, &request);
        let response = reply.into_response().unwrap();
        let body = serde_json::from_slice(response.body()).unwrap();
        (response.status().as_u16(), body)
    }

    #[test]
    fn answers_by_method_and_url_whatever_the_query() {
        let mut server = Scripted::new();
        server.answer("GET", "https://as.example.com/doc", 200, json!({"a": 1}));
        assert_eq!(
            get(&mut server, "https://as.example.com/doc?x=1"),
            (200, json!({"a": 1}))
        );
        server.answer("GET", "https://as.example.com/doc", 503, json!({}));
        assert_eq!(get(&mut server, "https://as.example.com/doc").0, 503);
        assert_eq!(
            get(&mut server, "https://as.example.com/other"),
            (404, json!({"error": "not_found"}))
        );
    }
}
