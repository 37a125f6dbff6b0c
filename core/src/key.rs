//! The client key: which lifecycle a record belongs to.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Identifies one credential lifecycle: the authorization server's issuer, the upstream (or
/// resource) the credentials are used for, the redirect URI, and the hash of the scope set.
///
/// Two upstreams that share an issuer never share a registration (MCP26-3, MCP26-4), and a
/// change of issuer is a new key, so credentials never cross authorization servers (INV-7).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientKey {
    /// The authorization server's issuer identifier, exactly as validated.
    pub issuer: String,
    /// The upstream: the protected resource when there is one, otherwise the client's name.
    pub upstream: String,
    /// The redirect URI the client uses, port included.
    pub redirect_uri: String,
    /// [`scope_hash`] of the requested scopes.
    pub scope_hash: String,
}

impl ClientKey {
    /// Builds a key, hashing the scope set.
    pub fn new(
        issuer: impl Into<String>,
        upstream: impl Into<String>,
        redirect_uri: impl Into<String>,
        scopes: &[String],
    ) -> Self {
        ClientKey {
            issuer: issuer.into(),
            upstream: upstream.into(),
            redirect_uri: redirect_uri.into(),
            scope_hash: scope_hash(scopes),
        }
    }

    /// Length-prefixed segments (`len:value` each), so keys that differ only in where a
    /// boundary falls (`ab`+`c` against `a`+`bc`) never encode alike.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for part in [
            &self.issuer,
            &self.upstream,
            &self.redirect_uri,
            &self.scope_hash,
        ] {
            out.push_str(&part.len().to_string());
            out.push(':');
            out.push_str(part);
        }
        out
    }
}

/// SHA-256 (lowercase hex) of the scope set: sorted, de-duplicated, joined by `\n`.
/// The empty set hashes to the SHA-256 of the empty string.
pub fn scope_hash(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    lower_hex(&Sha256::digest(sorted.join("\n").as_bytes()))
}

/// `bytes` in lowercase hex, as the digests Tenure keeps are written.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_scope_set_hashes_to_sha256_of_empty_string() {
        assert_eq!(
            scope_hash(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn scope_order_and_duplicates_do_not_matter() {
        let a = scope_hash(&strings(&["read", "write"]));
        let b = scope_hash(&strings(&["write", "read", "write"]));
        assert_eq!(a, b);
        assert_ne!(a, scope_hash(&strings(&["read"])));
    }

    #[test]
    fn boundaries_cannot_collide() {
        let one = ClientKey::new("ab", "c", "r", &[]);
        let two = ClientKey::new("a", "bc", "r", &[]);
        assert_ne!(one.encode(), two.encode());
        let three = ClientKey::new("i", "u", "https://x.example.com:443/cb", &[]);
        let four = ClientKey::new("i", "u", "https://x.example.com/cb:443", &[]);
        assert_ne!(three.encode(), four.encode());
    }
}
