//! The one error every store reports, whichever backend it runs on.

use tenure_core::ClientKey;

/// What went wrong in a store. Every message says what happened and what to do next, and
/// none carries a secret (INV-12): stored values are never quoted, only named by their key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The caller asked to store something that must never be stored; nothing was written.
    #[error("refused to store {what}: {why}; nothing was written, fix the input and retry")]
    Invalid {
        /// What was refused (a record and its key, a lease, a profile).
        what: String,
        /// Which rule it broke.
        why: String,
    },
    /// The value under a key is not something this version of Tenure wrote: damaged, foreign,
    /// or from a newer format. It is left untouched, never overwritten.
    #[error(
        "the value stored under the {key} is not one Tenure can read ({detail}); it was left \
         as it is: delete that entry by hand or point Tenure at another store or key prefix"
    )]
    Corrupt {
        /// The key the value sits under, described for people.
        key: String,
        /// What is wrong with it, without quoting it.
        detail: String,
    },
    /// The backend failed (I/O, connection, timeout, server error).
    #[error(
        "the {backend} store failed while {action}: {detail}; check that it is running and \
         reachable, then retry"
    )]
    Backend {
        /// `memory`, `sled` or `redis`.
        backend: &'static str,
        /// What the store was doing, naming the key.
        action: String,
        /// The backend's own message.
        detail: String,
    },
    /// The store could not be opened or connected to.
    #[error("cannot open the {backend} store at {location}: {detail}; {hint}")]
    Open {
        /// `sled` or `redis`.
        backend: &'static str,
        /// The path or address (without credentials).
        location: String,
        /// What failed.
        detail: String,
        /// What to do about it.
        hint: String,
    },
    /// A write reached the master but not enough replicas confirmed it in time, so a
    /// failover right now could lose it.
    #[error(
        "the write to {key} reached the master but only {acked} of {required} replicas \
         confirmed it within {timeout_ms} ms; read the record again before retrying, and \
         check the replicas' health"
    )]
    NotReplicated {
        /// The key written, described for people.
        key: String,
        /// Replicas that confirmed.
        acked: i64,
        /// Replicas required.
        required: u32,
        /// How long the store waited.
        timeout_ms: u64,
    },
}

impl StoreError {
    /// A backend failure while doing `action`.
    pub fn backend(
        backend: &'static str,
        action: impl Into<String>,
        detail: impl std::fmt::Display,
    ) -> Self {
        StoreError::Backend {
            backend,
            action: action.into(),
            detail: detail.to_string(),
        }
    }

    /// A damaged or foreign record under `key`.
    pub fn corrupt(key: &ClientKey, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            key: describe_key(key),
            detail: detail.into(),
        }
    }

    /// A damaged or foreign profile under `name`.
    pub fn corrupt_profile(name: &str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            key: format!("profile `{name}`"),
            detail: detail.into(),
        }
    }

    /// Whether the error is a refusal of the caller's input (nothing was written).
    pub fn is_invalid(&self) -> bool {
        matches!(self, StoreError::Invalid { .. })
    }

    /// Whether the error is a damaged or foreign stored value.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

/// A client key as people read it in an error: issuer, upstream, redirect URI and the start of
/// the scope hash. Keys hold no secret, so the whole key can be shown.
pub fn describe_key(key: &ClientKey) -> String {
    let scopes: String = key.scope_hash.chars().take(12).collect();
    format!(
        "client key (issuer `{}`, upstream `{}`, redirect URI `{}`, scope hash {scopes})",
        key.issuer, key.upstream, key.redirect_uri
    )
}
