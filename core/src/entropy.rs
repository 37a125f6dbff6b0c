//! Deterministic randomness from a seed.
//!
//! The core has no RNG of its own: the shell puts 32 bytes of operating-system entropy in
//! the configuration, and this generator stretches them (SHA-256 of seed and counter). The
//! same seed always yields the same verifiers and `state` values, which is what makes runs
//! reproducible in simulation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A hash-based generator over a 32-byte seed.
#[derive(Clone)]
pub struct Entropy {
    seed: [u8; 32],
    counter: u64,
}

impl Entropy {
    /// A generator over `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Entropy { seed, counter: 0 }
    }

    /// The next 32 bytes.
    pub fn next_block(&mut self) -> [u8; 32] {
        self.counter += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update(self.counter.to_be_bytes());
        hasher.finalize().into()
    }

    /// 32 fresh bytes as base64url without padding: 43 characters from the PKCE alphabet,
    /// 256 bits of entropy (PKCE-1, PKCE-2).
    pub fn token(&mut self) -> String {
        URL_SAFE_NO_PAD.encode(self.next_block())
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_chars_of_the_pkce_alphabet_pkce_1() {
        let mut entropy = Entropy::new([7; 32]);
        let a = entropy.token();
        let b = entropy.token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)));
        assert_eq!(Entropy::new([7; 32]).token(), a, "same seed, same output");
    }
}
