//! A client configured by resource learns its issuer by discovery once; the next handle on
//! the same store finds the record by itself (through the note Tenure keeps beside it) and
//! serves the token without a single request. Against the MCP TypeScript SDK's server.

use std::sync::Arc;

use tenure_store::{MemoryStore, Store};
use tenure_test_harness::{browser_thread, free_port, Provider, ServerKind};
use tenure_tokio::{BrowserMode, ClientConfig, Tenure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_client_finds_its_record_without_discovery() {
    let provider = Provider::start_kind(ServerKind::McpTsSdk, &[]);
    let resource = format!("{}/mcp", provider.origin);
    let port = free_port();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let config = || ClientConfig::for_resource("notes", &resource).with_redirect_port(port);

    let (show_url, browser) = browser_thread(format!("http://127.0.0.1:{port}/callback"));
    let first = Tenure::builder(config(), store.clone())
        .browser(BrowserMode::Print)
        .on_login_url(show_url)
        .build()
        .await
        .expect("built");
    let token = first.login().await.expect("logged in");
    browser.join().expect("the login completed");
    drop(first);

    provider.reset_counts();
    let second = Tenure::builder(config(), store)
        .build()
        .await
        .expect("built");
    let (cached, _) = second.cached().expect("the record was found at build");
    assert_eq!(cached, token);
    assert_eq!(second.token().await.expect("warm"), token);
    let requests = provider.counts()["requests"].clone();
    assert_eq!(requests, serde_json::json!([]), "no request at all");
}
