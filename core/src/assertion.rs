//! Client assertions for `private_key_jwt` (RFC 7523 §2.2 and §3, RFC 7521 §4.2, MCP
//! SEP-1046): a short-lived JWT the client signs with its private key instead of sending a
//! secret.
//!
//! Signing stays pure, as the rest of the core: ECDSA P-256 signatures are deterministic
//! (RFC 6979, the nonce is derived from the key and the message) and RSASSA-PKCS1-v1_5 needs
//! no randomness at all, so the same key, claims and time always give the same assertion,
//! and nothing reads the operating system's randomness. The `jti` comes from the client's
//! seeded entropy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::pkcs8::der::pem::PemLabel;
use p256::pkcs8::der::SecretDocument;
use p256::pkcs8::{DecodePrivateKey, ObjectIdentifier, PrivateKeyInfo};
use serde_json::json;

use crate::secret::Secret;
use crate::time::{Duration, Timestamp};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The JWS `typ` of a client assertion (draft-ietf-oauth-rfc7523bis §3.2).
pub const CLIENT_ASSERTION_TYP: &str = "client-authentication+jwt";

/// How long an assertion is valid: short, since it is made afresh for every request and a
/// captured one should be useless soon (RFC 7523 §3 item 4 lets the server bound `exp`).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The PKCS#8 algorithm identifier of an elliptic-curve key (RFC 5480 `id-ecPublicKey`).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The PKCS#8 algorithm identifier of an RSA key (RFC 8017 `rsaEncryption`).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// What the `aud` claim names (RFC 7523 §3 item 3: a value that identifies the authorization
/// server).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The authorization server's issuer identifier as the sole audience: what the update of
    /// RFC 7523 (draft-ietf-oauth-rfc7523bis) requires, since an endpoint URL taken from
    /// metadata can be made to point at another server. oidc-provider, Authlib and the MCP
    /// conformance suite accept it.
    #[default]
    Issuer,
    /// The token endpoint URL, as RFC 7523 §3 allowed: for servers older than that update
    /// that accept nothing else.
    TokenEndpoint,
}

/// Why a private key cannot sign assertions. The messages never contain key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a PEM `PRIVATE KEY` block holding a PKCS#8 structure.
    #[error("the private key is not PKCS#8 PEM text: expected a block that starts with `-----BEGIN PRIVATE KEY-----` ({0}); convert other formats with `openssl pkcs8 -topk8 -nocrypt`")]
    NotPkcs8Pem(&'static str),
    /// A PKCS#8 key of an algorithm Tenure cannot sign with.
    #[error("the private key is {0}; private_key_jwt needs a P-256 EC key (ES256) or an RSA key of 2048 to 4096 bits (RS256)")]
    UnsupportedAlgorithm(&'static str),
    /// The PKCS#8 structure is well formed but its key is not usable.
    #[error("the private key is not a usable {0} key; check that the file holds an unencrypted P-256 EC key (ES256) or an RSA key of 2048 to 4096 bits (RS256)")]
    BadKey(&'static str),
}

/// A private key that signs client assertions, with its JWS algorithm. Its `Debug` output
/// shows the algorithm and key id only.
#[derive(Clone)]
pub struct AssertionKey {
    key: Algorithm,
    kid: Option<String>,
}

#[derive(Clone)]
enum Algorithm {
    Es256(p256::ecdsa::SigningKey),
    Rs256(rsa::RsaKey),
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .field("key", &crate::secret::REDACTED)
            .finish()
    }
}

impl AssertionKey {
    /// Reads an unencrypted PKCS#8 private key from PEM text (`-----BEGIN PRIVATE KEY-----`),
    /// with the key id to put in the JWS header (`kid`), when the server needs one to pick
    /// the key among several it knows.
    pub fn from_pkcs8_pem(pem: &Secret, kid: Option<&str>) -> Result<Self, KeyError> {
        let text = pem.expose().trim();
        // The label first, so a key in another format is named even when its body is not
        // what this reader expects.
        let label = p256::pkcs8::der::pem::decode_label(text.as_bytes())
            .map_err(|_| KeyError::NotPkcs8Pem("no readable PEM block"))?;
        if label != PrivateKeyInfo::PEM_LABEL {
            return Err(KeyError::NotPkcs8Pem(match label {
                "EC PRIVATE KEY" => "found an SEC1 `EC PRIVATE KEY` block",
                "RSA PRIVATE KEY" => "found a PKCS#1 `RSA PRIVATE KEY` block",
                "ENCRYPTED PRIVATE KEY" => "found an encrypted key; decrypt it first",
                _ => "found a PEM block of another kind",
            }));
        }
        let (_, document) = SecretDocument::from_pem(text)
            .map_err(|_| KeyError::NotPkcs8Pem("the block is not a PKCS#8 structure"))?;
        let info = PrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|_| KeyError::NotPkcs8Pem("the block is not a PKCS#8 structure"))?;
        let key = match info.algorithm.oid {
            EC_PUBLIC_KEY => Algorithm::Es256(
                p256::ecdsa::SigningKey::from_pkcs8_der(document.as_bytes())
                    .map_err(|_| KeyError::BadKey("P-256 EC"))?,
            ),
            RSA_ENCRYPTION => Algorithm::Rs256(rsa::RsaKey::from_pkcs1_der(info.private_key)?),
            _ => return Err(KeyError::UnsupportedAlgorithm("a key of another algorithm")),
        };
        Ok(AssertionKey {
            key,
            kid: kid.map(str::to_owned),
        })
    }

    /// The JWS `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.key {
            Algorithm::Es256(_) => "ES256",
            Algorithm::Rs256(_) => "RS256",
        }
    }

    /// The public half as a JWK (RFC 7517, RFC 7518 §6.2 and §6.3) with `alg`, `use` and the
    /// key id: what a dynamic registration sends as `jwks` so the server can check this key's
    /// assertions (RFC 7591 §2). Holds no private member.
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk = match &self.key {
            Algorithm::Es256(key) => crate::jws::ec_public_jwk(key),
            Algorithm::Rs256(key) => json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(&key.modulus),
                "e": URL_SAFE_NO_PAD.encode(&key.public_exponent),
            }),
        };
        jwk["alg"] = json!(self.alg());
        jwk["use"] = json!("sig");
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    /// Whether `jwk` is this key's public half: the same key type and public numbers,
    /// whatever else the JWK carries. Used to see whether the key a server registered is
    /// still the configured one.
    pub fn matches_jwk(&self, jwk: &serde_json::Value) -> bool {
        let own = self.public_jwk();
        let members: &[&str] = match self.key {
            Algorithm::Es256(_) => &["kty", "crv", "x", "y"],
            Algorithm::Rs256(_) => &["kty", "n", "e"],
        };
        members.iter().all(|name| jwk.get(*name) == own.get(*name))
    }

    /// A signed client assertion (RFC 7523 §3): `iss` and `sub` are the client id, `aud` the
    /// authorization server, `jti` unique per assertion, `iat` now and `exp` one
    /// [`ASSERTION_LIFETIME`] later.
    pub fn sign(&self, claims: &AssertionClaims<'_>) -> Secret {
        // Explicitly typed, as the update of RFC 7523 asks of clients (draft-ietf-oauth-
        // rfc7523bis §3.2); servers are told not to reject an untyped one, and none of those
        // tested checks the type.
        let mut header = json!({ "alg": self.alg(), "typ": CLIENT_ASSERTION_TYP });
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        let payload = json!({
            "iss": claims.client_id,
            "sub": claims.client_id,
            "aud": claims.audience,
            "jti": claims.jti,
            "iat": claims.now.unix_seconds(),
            "exp": claims.now.unix_seconds() + ASSERTION_LIFETIME.as_secs(),
        });
        crate::jws::sign_compact(&header, &payload, |input| match &self.key {
            Algorithm::Es256(key) => crate::jws::es256(key, input),
            Algorithm::Rs256(key) => key.sign(input),
        })
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.1, JWS RS256 in RFC 7518 §3.3), with
/// constant-time Montgomery exponentiation. The signature is `EM^d mod n` without the Chinese
/// remainder theorem: slower, but a fault in one half of a CRT computation cannot reveal a
/// factor of `n`, and no randomness is needed for blinding.
mod rsa {
    use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
    use crypto_bigint::{Limb, Uint, U2048, U3072, U4096};
    use sha2::{Digest, Sha256};
    use zeroize::Zeroizing;

    use super::KeyError;

    /// The DER prefix of a SHA-256 `DigestInfo` (RFC 8017 §9.2, note 1).
    const SHA256_DIGEST_INFO: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    /// RFC 7518 §3.3: RS256 keys are 2048 bits or larger; 4096 is the largest this signs with.
    const MIN_BYTES: usize = 2048 / 8;
    const MAX_BYTES: usize = 4096 / 8;

    /// An RSA private key: the modulus and private exponent, big-endian, no leading zeros.
    #[derive(Clone)]
    pub(super) struct RsaKey {
        pub(super) modulus: Vec<u8>,
        pub(super) public_exponent: Vec<u8>,
        private_exponent: Zeroizing<Vec<u8>>,
    }

    impl RsaKey {
        /// Reads the PKCS#1 `RSAPrivateKey` that a PKCS#8 key wraps.
        pub(super) fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
            let key = pkcs1::RsaPrivateKey::try_from(der).map_err(|_| KeyError::BadKey("RSA"))?;
            let modulus = strip(key.modulus.as_bytes());
            let public_exponent = strip(key.public_exponent.as_bytes());
            let private_exponent = strip(key.private_exponent.as_bytes());
            let odd = modulus.last().is_some_and(|byte| byte & 1 == 1);
            if !(MIN_BYTES..=MAX_BYTES).contains(&modulus.len())
                || !odd
                || public_exponent.is_empty()
                || private_exponent.is_empty()
                || private_exponent.len() > modulus.len()
            {
                return Err(KeyError::BadKey("RSA"));
            }
            Ok(RsaKey {
                modulus: modulus.to_vec(),
                public_exponent: public_exponent.to_vec(),
                private_exponent: Zeroizing::new(private_exponent.to_vec()),
            })
        }

        /// The signature of `message`: as many bytes as the modulus.
        pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
            let k = self.modulus.len();
            // EM = 0x00 0x01 PS 0x00 T, PS all 0xff (RFC 8017 §9.2); k ≥ 256 leaves room.
            let digest = Sha256::digest(message);
            let t_len = SHA256_DIGEST_INFO.len() + digest.len();
            let mut em = vec![0xff; k];
            em[0] = 0x00;
            em[1] = 0x01;
            em[k - t_len - 1] = 0x00;
            em[k - t_len..k - digest.len()].copy_from_slice(&SHA256_DIGEST_INFO);
            em[k - digest.len()..].copy_from_slice(&digest);
            // The smallest width that holds the modulus; the arithmetic is modulo n anyway.
            if k <= U2048::BYTES {
                mod_pow::<{ U2048::LIMBS }>(&em, &self.private_exponent, &self.modulus)
            } else if k <= U3072::BYTES {
                mod_pow::<{ U3072::LIMBS }>(&em, &self.private_exponent, &self.modulus)
            } else {
                mod_pow::<{ U4096::LIMBS }>(&em, &self.private_exponent, &self.modulus)
            }
        }
    }

    /// The bytes without leading zeros (DER integers carry one before a high bit).
    fn strip(bytes: &[u8]) -> &[u8] {
        let zeros = bytes.iter().take_while(|&&byte| byte == 0).count();
        &bytes[zeros..]
    }

    /// `base^exponent mod modulus`, big-endian, as many bytes as the modulus. Every bit of the
    /// exponent's width is processed, so the time does not depend on the private exponent.
    fn mod_pow<const LIMBS: usize>(base: &[u8], exponent: &[u8], modulus: &[u8]) -> Vec<u8> {
        let width = LIMBS * Limb::BYTES;
        let uint = |bytes: &[u8]| {
            let mut padded = vec![0u8; width];
            padded[width - bytes.len()..].copy_from_slice(bytes);
            Uint::<LIMBS>::from_be_slice(&padded)
        };
        let params = DynResidueParams::new(&uint(modulus));
        let result = DynResidue::new(&uint(base), params)
            .pow(&uint(exponent))
            .retrieve();
        let mut out = Vec::with_capacity(width);
        for word in result.as_words().iter().rev() {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.split_off(width - modulus.len())
    }
}

/// The claims of one assertion.
#[derive(Clone, Copy, Debug)]
pub struct AssertionClaims<'a> {
    /// The client id: both `iss` and `sub` (RFC 7523 §3 items 1 and 2).
    pub client_id: &'a str,
    /// The `aud` claim: the token endpoint URL or the issuer.
    pub audience: &'a str,
    /// The `jti` claim: unique, so the server can refuse a replay (RFC 7523 §3 item 7).
    pub jti: &'a str,
    /// The time the assertion is made (`iat`); `exp` follows from it.
    pub now: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    fn key_pem() -> (Secret, p256::ecdsa::VerifyingKey) {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        (Secret::new(pem.as_str()), *key.verifying_key())
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn claims(now: i64) -> AssertionClaims<'static> {
        AssertionClaims {
            client_id: "client-1",
            audience: "https://as.example.com/token",
            jti: "unique-1",
            now: Timestamp::from_unix_seconds(now),
        }
    }

    #[test]
    fn an_es256_assertion_verifies_and_carries_the_rfc_7523_claims() {
        let (pem, public) = key_pem();
        let key = AssertionKey::from_pkcs8_pem(&pem, Some("key-1")).unwrap();
        let jwt = key.sign(&claims(1_700_000_000));
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "key-1");
        let payload = decode(parts[1]);
        assert_eq!(payload["iss"], "client-1");
        assert_eq!(payload["sub"], "client-1");
        assert_eq!(payload["aud"], "https://as.example.com/token");
        assert_eq!(payload["jti"], "unique-1");
        assert_eq!(payload["iat"], 1_700_000_000);
        assert_eq!(payload["exp"], 1_700_000_060);
        let signature_bytes = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(signature_bytes.len(), 64, "JWS ES256 is r || s");
        let signature = p256::ecdsa::Signature::from_slice(&signature_bytes).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        public.verify(input.as_bytes(), &signature).unwrap();
        assert!(public.verify(b"something else", &signature).is_err());
    }

    /// Test-only RSA keys and OpenSSL's signatures with them (`core/tests/keys/README.md`).
    const RSA_VECTORS: [(usize, &str, &str); 3] = [
        (
            256,
            include_str!("../tests/keys/rsa2048.pem"),
            include_str!("../tests/keys/rsa2048.sig"),
        ),
        (
            384,
            include_str!("../tests/keys/rsa3072.pem"),
            include_str!("../tests/keys/rsa3072.sig"),
        ),
        (
            512,
            include_str!("../tests/keys/rsa4096.pem"),
            include_str!("../tests/keys/rsa4096.sig"),
        ),
    ];

    #[test]
    fn rs256_signatures_equal_openssls_byte_for_byte() {
        for (bytes, pem, expected) in RSA_VECTORS {
            let key = AssertionKey::from_pkcs8_pem(&Secret::new(pem), None).unwrap();
            assert_eq!(key.alg(), "RS256");
            let Algorithm::Rs256(rsa) = &key.key else {
                panic!("an RSA key")
            };
            let signature = rsa.sign(b"tenure RS256 test vector");
            assert_eq!(signature.len(), bytes);
            assert_eq!(
                URL_SAFE_NO_PAD.encode(&signature),
                expected.trim(),
                "{bytes}"
            );
        }
    }

    #[test]
    fn an_rs256_assertion_carries_the_claims_and_a_full_width_signature() {
        let (_, pem, _) = RSA_VECTORS[0];
        let key = AssertionKey::from_pkcs8_pem(&Secret::new(pem), Some("rsa-1")).unwrap();
        let jwt = key.sign(&claims(1_700_000_000));
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "rsa-1");
        assert_eq!(decode(parts[1])["iss"], "client-1");
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 256);
        let Algorithm::Rs256(rsa) = &key.key else {
            panic!("an RSA key")
        };
        let input = format!("{}.{}", parts[0], parts[1]);
        assert_eq!(
            URL_SAFE_NO_PAD.encode(rsa.sign(input.as_bytes())),
            parts[2],
            "the signature covers header and payload"
        );
        assert_eq!(key.sign(&claims(1_700_000_000)), jwt, "deterministic");
    }

    #[test]
    fn the_public_jwk_has_the_public_numbers_only() {
        let (_, pem, _) = RSA_VECTORS[0];
        let rsa = AssertionKey::from_pkcs8_pem(&Secret::new(pem), Some("rsa-1")).unwrap();
        let jwk = rsa.public_jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB", "65537");
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_eq!(
            (jwk["alg"].as_str(), jwk["kid"].as_str()),
            (Some("RS256"), Some("rsa-1"))
        );
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none());
        assert!(rsa.matches_jwk(&jwk));

        let (pem, public) = key_pem();
        let ec = AssertionKey::from_pkcs8_pem(&pem, None).unwrap();
        let jwk = ec.public_jwk();
        let point = public.to_encoded_point(false);
        assert_eq!(jwk["x"], URL_SAFE_NO_PAD.encode(point.x().unwrap()));
        assert_eq!(jwk["y"], URL_SAFE_NO_PAD.encode(point.y().unwrap()));
        assert!(jwk.get("d").is_none());
        assert!(ec.matches_jwk(&jwk));
        assert!(!rsa.matches_jwk(&jwk), "another key");
        assert!(!ec.matches_jwk(&rsa.public_jwk()));
    }

    #[test]
    fn signing_is_deterministic_and_needs_no_randomness() {
        let (pem, _) = key_pem();
        let key = AssertionKey::from_pkcs8_pem(&pem, None).unwrap();
        assert_eq!(key.sign(&claims(5)), key.sign(&claims(5)));
        assert_ne!(key.sign(&claims(5)), key.sign(&claims(6)));
        let header = decode(key.sign(&claims(5)).expose().split('.').next().unwrap());
        assert!(header.get("kid").is_none(), "no kid unless one is given");
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them_inv_12() {
        let garbage = Secret::new("not a key at all: s3cr3t");
        let error = AssertionKey::from_pkcs8_pem(&garbage, None).unwrap_err();
        assert!(matches!(error, KeyError::NotPkcs8Pem(_)));
        assert!(!error.to_string().contains("s3cr3t"));
        assert!(error.to_string().contains("BEGIN PRIVATE KEY"));

        let sec1 =
            Secret::new("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
        let error = AssertionKey::from_pkcs8_pem(&sec1, None).unwrap_err();
        assert_eq!(
            error,
            KeyError::NotPkcs8Pem("found an SEC1 `EC PRIVATE KEY` block")
        );
        assert!(!error.to_string().contains("AAAA"));
    }

    #[test]
    fn the_key_never_shows_in_debug_output_inv_12() {
        let (pem, _) = key_pem();
        let key = AssertionKey::from_pkcs8_pem(&pem, Some("k")).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("ES256") && shown.contains("[redacted]"));
        let jwt = key.sign(&claims(1));
        assert_eq!(format!("{jwt:?}"), crate::secret::REDACTED);
    }
}
