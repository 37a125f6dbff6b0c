//! The warm `tenure token` path: the token the last command left valid, in a small file
//! beside the sled store, so that printing it opens neither the store (whose open costs
//! milliseconds) nor the async runtime.
//!
//! ```text
//!   tenure token NAME ──▶ STORE/handouts/<sha256(NAME)>  valid until `until`? ──yes──▶ print
//!                                │ no, missing, unreadable
//!                                ▼
//!                         the full path: profile, store, core ── afterwards the file is
//!                         written again from what the core would hand out, or removed
//! ```
//!
//! The file is derived data: the record in the store stays the only truth. Every command
//! that may change what `token` should print removes the file before it starts, and the
//! commands that leave a valid token write it back while they still hold the store (sled
//! admits one process at a time), so a reader never sees a token the store has moved past.
//! Only tokens with a known deadline are written (the core's [`tenure_tokio::Tenure::cached`]
//! `until`, which ends before the token's refresh margin and before a secret's renewal
//! window). The directory is private (0700) and each file 0600, like the store's own files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tenure_core::Timestamp;

/// What one file holds.
#[derive(Serialize, Deserialize)]
struct Handout {
    name: String,
    access_token: String,
    expires_at: Option<String>,
    until_unix_millis: i64,
}

/// The handout files of one sled store.
#[derive(Clone, Debug)]
pub struct Handouts {
    dir: PathBuf,
}

impl Handouts {
    /// The handout files kept inside the sled store at `store_dir`.
    pub fn in_store(store_dir: &Path) -> Handouts {
        Handouts {
            dir: store_dir.join("handouts"),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir
            .join(tenure_core::key::scope_hash(&[name.to_string()]))
    }

    /// The token for `name` and its expiry, when the file says it may be handed out at
    /// `now`. Anything unreadable is a miss, never an error: the full path follows.
    pub fn read(&self, name: &str, now: Timestamp) -> Option<(String, Option<String>)> {
        let text = fs::read(self.file(name)).ok()?;
        let handout: Handout = serde_json::from_slice(&text).ok()?;
        let valid = handout.name == name && now.unix_millis() < handout.until_unix_millis;
        valid.then_some((handout.access_token, handout.expires_at))
    }

    /// Writes the file for `name` (a new file renamed into place, so a reader sees the old
    /// file or the new one, never half of one).
    pub fn write(
        &self,
        name: &str,
        access_token: &str,
        expires_at: Option<Timestamp>,
        until: Timestamp,
    ) -> std::io::Result<()> {
        private_dir(&self.dir)?;
        let handout = Handout {
            name: name.to_string(),
            access_token: access_token.to_string(),
            expires_at: expires_at.map(|t| t.to_rfc3339()),
            until_unix_millis: until.unix_millis(),
        };
        let target = self.file(name);
        let fresh = target.with_extension(format!("new-{}", std::process::id()));
        let _ = fs::remove_file(&fresh);
        let mut file = private_file(&fresh)?;
        file.write_all(&serde_json::to_vec(&handout).map_err(std::io::Error::other)?)?;
        drop(file);
        fs::rename(&fresh, &target)
    }

    /// Removes the file for `name`; a missing file is fine.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match fs::remove_file(self.file(name)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tenure-handout-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_handout_is_read_until_its_deadline_and_removed_on_demand() {
        let handouts = Handouts::in_store(&scratch("deadline"));
        let until = Timestamp::from_unix_millis(10_000);
        handouts
            .write("registry", "planted-handout-token", None, until)
            .unwrap();
        let before = Timestamp::from_unix_millis(9_999);
        assert_eq!(
            handouts.read("registry", before).map(|(t, _)| t).as_deref(),
            Some("planted-handout-token")
        );
        assert!(
            handouts.read("registry", until).is_none(),
            "not at the deadline"
        );
        assert!(handouts.read("other", before).is_none());
        handouts.remove("registry").unwrap();
        handouts.remove("registry").unwrap();
        assert!(handouts.read("registry", before).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn handouts_are_private_and_garbage_is_a_miss() {
        use std::os::unix::fs::PermissionsExt;
        let handouts = Handouts::in_store(&scratch("private"));
        handouts
            .write(
                "n",
                "planted-handout-token",
                None,
                Timestamp::from_unix_millis(5),
            )
            .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&handouts.dir), 0o700);
        assert_eq!(mode(&handouts.file("n")), 0o600);
        fs::write(handouts.file("n"), b"{not json").unwrap();
        assert!(handouts.read("n", Timestamp::EPOCH).is_none());
    }
}
