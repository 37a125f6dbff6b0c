//! One secret a user hands to Tenure to keep, such as a `private_key_jwt` client's private
//! key, in a keychain entry of its own whose name the caller chooses and remembers.
//!
//! The store's entries (see the crate documentation) come and go with the records; an entry
//! here lives as long as the caller's configuration that names it, and the caller deletes it
//! with that configuration. As with the store, no keychain means an error, never a file.

use tenure_core::Secret;

use crate::{describe, START_KEYCHAIN_HINT};

/// A keychain entry holding one secret: `service` and the entry's name (the account, or user
/// name, of the keychain item).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEntry {
    service: String,
    name: String,
}

/// Why a [`SecretEntry`] cannot be read, written or deleted. The messages never quote the
/// entry's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// No keychain answered (on Linux: no Secret Service on the session bus, or a locked
    /// one that stayed locked).
    #[error("no keychain is reachable ({detail}); {START_KEYCHAIN_HINT}")]
    Unreachable {
        /// The keychain's own words.
        detail: String,
    },
    /// The entry holds something other than text, or several items answer to its name: it
    /// was not written by Tenure.
    #[error(
        "the keychain entry `{name}` (service `{service}`) was not written by Tenure: {detail}"
    )]
    Foreign {
        /// The service.
        service: String,
        /// The entry's name.
        name: String,
        /// What is wrong with it, without its value.
        detail: String,
    },
}

impl SecretEntry {
    /// The entry `name` of `service` (such as [`crate::SERVICE`]); nothing is read yet.
    pub fn new(service: &str, name: &str) -> SecretEntry {
        SecretEntry {
            service: service.into(),
            name: name.into(),
        }
    }

    /// The service the entry is filed under.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The entry's name within its service.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The secret, or `None` when the keychain answers that there is no such entry.
    pub fn read(&self) -> Result<Option<Secret>, EntryError> {
        match self.open()?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(self.failure(&error)),
        }
    }

    /// Writes `value`, replacing what the entry held.
    pub fn write(&self, value: &Secret) -> Result<(), EntryError> {
        self.open()?
            .set_password(value.expose())
            .map_err(|error| self.failure(&error))
    }

    /// Deletes the entry; `false` when there was none.
    pub fn delete(&self) -> Result<bool, EntryError> {
        match self.open()?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(error) => Err(self.failure(&error)),
        }
    }

    fn open(&self) -> Result<keyring::Entry, EntryError> {
        keyring::Entry::new(&self.service, &self.name).map_err(|error| self.failure(&error))
    }

    /// Every failure but a foreign entry means the keychain did not do what was asked, which
    /// the user fixes the same way: start or unlock it.
    fn failure(&self, error: &keyring::Error) -> EntryError {
        match error {
            keyring::Error::BadEncoding(_) | keyring::Error::Ambiguous(_) => EntryError::Foreign {
                service: self.service.clone(),
                name: self.name.clone(),
                detail: describe(error),
            },
            other => EntryError::Unreachable {
                detail: describe(other),
            },
        }
    }
}
