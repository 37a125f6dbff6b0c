//! A tiny deterministic random number generator for the simulated provider.
//!
//! The simulation must give the same answers for the same inputs, so nothing here touches the
//! operating system's randomness. SplitMix64 is a few lines, passes the usual statistical test
//! batteries, and every seed (zero included) gives a full-period stream. It is not
//! cryptographic, which is fine: the "secrets" it makes only have to be unguessable by the code
//! under test, not by an attacker.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A SplitMix64 stream (Steele, Lea and Flood, 2014).
#[derive(Clone, Debug)]
pub(super) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream that starts from `seed`.
    pub(super) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)` with 53 random bits, the precision of an `f64`.
    pub(super) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `prefix` followed by 192 random bits in base64url (32 characters).
    ///
    /// The prefix (`cs_`, `rat_`, `rt_` …) says what a value is when it shows up in a failing
    /// test. The alphabet is letters, digits, `-` and `_` only, so a value survives form and
    /// URL encoding unchanged and can be found again in a request by a plain word search.
    pub(super) fn token(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 24];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.token("x_"), b.token("x_"));
        assert_ne!(a.next_u64(), SplitMix64::new(8).next_u64());
    }

    #[test]
    fn reference_values() {
        // First outputs for seed 0 from the reference implementation.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn unit_interval_and_token_shape() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..1000 {
            let x = rng.next_unit();
            assert!((0.0..1.0).contains(&x));
        }
        let token = rng.token("cs_");
        assert_eq!(token.len(), 3 + 32);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
