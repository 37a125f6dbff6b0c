//! Input checks every adapter runs before it touches its backend, so a bad write is refused
//! the same way everywhere and nothing of it is stored.

use tenure_core::{ClientKey, Duration, Record};

use crate::error::{describe_key, StoreError};

/// The longest profile name accepted: long enough for any sensible name, short enough to stay
/// a key in every backend.
pub const MAX_PROFILE_NAME: usize = 200;

/// A key needs an issuer and a redirect URI: without them it cannot name one credential
/// lifecycle (design §1), and two unrelated clients could end up sharing a record.
pub fn check_key(key: &ClientKey) -> Result<(), StoreError> {
    let refuse = |why: &str| StoreError::Invalid {
        what: format!("anything under the {}", describe_key(key)),
        why: why.into(),
    };
    if key.issuer.trim().is_empty() {
        return Err(refuse("the issuer is empty"));
    }
    if key.redirect_uri.trim().is_empty() {
        return Err(refuse("the redirect URI is empty"));
    }
    Ok(())
}

/// A compare-and-swap must carry a record for the key it is written under, one generation past
/// the one it expects (INV-9), with no identity whose client id is empty.
pub fn check_write(
    key: &ClientKey,
    expected: Option<u64>,
    record: &Record,
) -> Result<(), StoreError> {
    check_key(key)?;
    let refuse = |why: String| StoreError::Invalid {
        what: format!("the record for the {}", describe_key(key)),
        why,
    };
    if record.key != *key {
        return Err(refuse(format!(
            "it belongs to another key ({})",
            describe_key(&record.key)
        )));
    }
    let next = match expected {
        None => Some(1),
        Some(generation) => generation.checked_add(1),
    };
    if Some(record.generation) != next {
        return Err(refuse(format!(
            "its generation is {} but a write that read {} must carry the next one",
            record.generation,
            expected.map_or_else(|| "nothing".to_string(), |g| format!("generation {g}"))
        )));
    }
    if record.server.issuer.trim().is_empty() {
        return Err(refuse(
            "its authorization server has an empty issuer".into(),
        ));
    }
    let empty = |id: &str| id.trim().is_empty();
    if record
        .pre_registered_client_id
        .as_deref()
        .is_some_and(empty)
    {
        return Err(refuse("its pre-registered client id is empty".into()));
    }
    if record.cimd.as_ref().is_some_and(|c| empty(&c.client_id)) {
        return Err(refuse("its CIMD client id is empty".into()));
    }
    if record.dcr.as_ref().is_some_and(|d| empty(&d.client_id)) {
        return Err(refuse("its registered (DCR) client id is empty".into()));
    }
    Ok(())
}

/// A lease needs a holder to check on release, and a lifetime, or it could never be taken
/// over from a crashed holder (INV-8).
pub fn check_lease(key: &ClientKey, holder: &str, ttl: Duration) -> Result<(), StoreError> {
    check_key(key)?;
    let refuse = |why: &str| StoreError::Invalid {
        what: format!("a lease on the {}", describe_key(key)),
        why: why.into(),
    };
    if holder.is_empty() {
        return Err(refuse("the holder id is empty"));
    }
    if ttl.as_millis() <= 0 {
        return Err(refuse("its time to live is zero"));
    }
    Ok(())
}

/// A profile name is what the user types after `tenure login`: not empty, no control
/// characters, and bounded.
pub fn check_profile_name(name: &str) -> Result<(), StoreError> {
    let refuse = |why: &str| StoreError::Invalid {
        what: format!("a profile named `{}`", name.escape_debug()),
        why: why.into(),
    };
    if name.trim().is_empty() {
        return Err(refuse("the name is empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(refuse("the name contains control characters"));
    }
    if name.len() > MAX_PROFILE_NAME {
        return Err(refuse("the name is longer than 200 bytes"));
    }
    Ok(())
}
