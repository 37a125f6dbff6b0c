//! The JOSE pieces that client assertions ([`crate::assertion`]) and DPoP proofs
//! ([`crate::dpop`]) share: the compact JWS serialization (RFC 7515 §7.1), ES256 signatures
//! (RFC 7518 §3.4) and the JWK form of a P-256 public key (RFC 7518 §6.2.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use serde_json::{json, Value};

use crate::secret::Secret;

/// `header.payload.signature`, each part base64url without padding; `sign` signs the first
/// two parts joined by a dot. The result is a credential, so it is returned as a [`Secret`].
pub(crate) fn sign_compact(
    header: &Value,
    payload: &Value,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Secret {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = sign(signing_input.as_bytes());
    Secret::new(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// An ES256 signature of `input`: the fixed-width `r || s` that JWS uses, not DER.
/// Deterministic (RFC 6979), so no randomness is drawn.
pub(crate) fn es256(key: &p256::ecdsa::SigningKey, input: &[u8]) -> Vec<u8> {
    let signature: p256::ecdsa::Signature = key.sign(input);
    signature.to_bytes().to_vec()
}

/// The public half of `key` as a JWK: `kty`, `crv`, `x` and `y`, nothing private.
pub(crate) fn ec_public_jwk(key: &p256::ecdsa::SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let coordinate = |c: Option<&p256::FieldBytes>| {
        URL_SAFE_NO_PAD.encode(c.map(|c| c.as_slice()).unwrap_or_default())
    };
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": coordinate(point.x()),
        "y": coordinate(point.y()),
    })
}
