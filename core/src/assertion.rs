//! Client assertions for `private_key_jwt` (RFC 7523 §2.2 and §3, RFC 7521 §4.2, MCP
//! SEP-1046): a short-lived JWT the client signs with its private key instead of sending a
//! secret.
//!
//! Signing stays pure, as the rest of the core: ECDSA P-256 signatures are deterministic
//! (RFC 6979, the nonce is derived from the key and the message), so the same key, claims and
//! time always give the same assertion, and nothing reads the operating system's randomness.
//! The `jti` comes from the client's seeded entropy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::der::pem::PemLabel;
use p256::pkcs8::der::SecretDocument;
use p256::pkcs8::{DecodePrivateKey, ObjectIdentifier, PrivateKeyInfo};
use serde_json::json;

use crate::secret::Secret;
use crate::time::{Duration, Timestamp};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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
    /// The token endpoint URL, as RFC 7523 §3 suggests; most servers accept it.
    #[default]
    TokenEndpoint,
    /// The authorization server's issuer identifier, for servers that accept only that (the
    /// MCP conformance suite's, and those following the newer guidance that the issuer is the
    /// one unambiguous audience).
    Issuer,
}

/// Why a private key cannot sign assertions. The messages never contain key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a PEM `PRIVATE KEY` block holding a PKCS#8 structure.
    #[error("the private key is not PKCS#8 PEM text: expected a block that starts with `-----BEGIN PRIVATE KEY-----` ({0}); convert other formats with `openssl pkcs8 -topk8 -nocrypt`")]
    NotPkcs8Pem(&'static str),
    /// A PKCS#8 key of an algorithm Tenure cannot sign with.
    #[error("the private key is {0}; private_key_jwt needs a P-256 EC key (ES256)")]
    UnsupportedAlgorithm(&'static str),
    /// The PKCS#8 structure is well formed but its key is not usable.
    #[error("the private key is not a usable P-256 EC key (ES256); check that the file holds an unencrypted P-256 key")]
    BadKey,
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
                    .map_err(|_| KeyError::BadKey)?,
            ),
            RSA_ENCRYPTION => return Err(KeyError::UnsupportedAlgorithm("an RSA key (RS256)")),
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
        }
    }

    /// A signed client assertion (RFC 7523 §3): `iss` and `sub` are the client id, `aud` the
    /// authorization server, `jti` unique per assertion, `iat` now and `exp` one
    /// [`ASSERTION_LIFETIME`] later.
    pub fn sign(&self, claims: &AssertionClaims<'_>) -> Secret {
        let mut header = json!({ "alg": self.alg(), "typ": "JWT" });
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
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signature = match &self.key {
            Algorithm::Es256(key) => {
                // JWS ES256 is the fixed-width r || s (RFC 7518 §3.4), not DER.
                let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
                signature.to_bytes().to_vec()
            }
        };
        Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
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
