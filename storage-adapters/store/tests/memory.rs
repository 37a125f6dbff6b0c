//! The in-memory store passes the conformance kit every adapter runs.

use std::sync::Arc;

use tenure_store::{MemoryStore, Store};

async fn fresh() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

tenure_store::conformance_tests!(fresh, 256);
