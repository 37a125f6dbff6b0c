//! DPoP, demonstrating proof of possession (RFC 9449, MCP SEP-1932): access tokens bound to
//! a key that never leaves the client, so that a token that leaks is useless without it.
//!
//! ```text
//!   token request ──▶ DPoP: proof(POST, token endpoint[, nonce])        ──▶ AS
//!                 ◀── token_type DPoP, bound to the key's thumbprint (cnf.jkt)
//!   resource call ──▶ Authorization: DPoP <token>
//!                     DPoP: proof(method, URL[, nonce], ath = hash of the token) ──▶ resource
//! ```
//!
//! One ES256 key per client key, kept in the record beside the tokens bound to it, so that a
//! restart or a second replica reading the same record presents the same key. Everything here
//! is pure, as the rest of the core: the private scalar comes from the client's seeded
//! entropy, each proof's `jti` from the same, the time from the caller, and ECDSA P-256
//! signatures are deterministic (RFC 6979).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::entropy::Entropy;
use crate::secret::Secret;
use crate::time::Timestamp;

/// The only proof algorithm Tenure signs with (RFC 9449 §5.1
/// `dpop_signing_alg_values_supported` must list it for [`DpopMode::IfOffered`]).
pub const DPOP_ALG: &str = "ES256";

/// The error code of an authorization server or resource that wants a nonce in the proof
/// (RFC 9449 §8, §9).
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// The header a server sends its nonce in (RFC 9449 §8.1).
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// The header a proof travels in (RFC 9449 §4.1).
pub const DPOP_HEADER: &str = "dpop";

/// When Tenure asks for DPoP-bound tokens.
///
/// The default is [`DpopMode::Never`]: a DPoP-bound token is useless to whoever takes its text
/// alone. The command line's `tenure token`, and every embedder that puts `Bearer <token>` on
/// its requests itself, would break the day their authorization server starts to advertise
/// DPoP, so binding is something an embedder opts into once its requests go through
/// `tenure-reqwest` or carry a proof from `Tenure::dpop_proof`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DpopMode {
    /// Bearer tokens only; no proof is sent. A token already bound to the stored key is
    /// still refreshed with a proof, since its refresh token may be bound too.
    #[default]
    Never,
    /// A proof with every token request when the authorization server lists ES256 in
    /// `dpop_signing_alg_values_supported`; Bearer otherwise.
    IfOffered,
    /// A proof with every token request whatever the metadata says: a server that does not
    /// know DPoP ignores the header and answers with a Bearer token (RFC 9449 §5).
    Always,
}

impl DpopMode {
    /// Whether token requests to a server whose metadata lists ES256 (or not) carry a proof.
    pub fn applies(self, server_offers_es256: bool) -> bool {
        match self {
            DpopMode::Never => false,
            DpopMode::IfOffered => server_offers_es256,
            DpopMode::Always => true,
        }
    }
}

/// How an access token is presented to a resource (RFC 6750 §2.1, RFC 9449 §7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenScheme {
    /// `Authorization: Bearer <token>`.
    #[default]
    Bearer,
    /// `Authorization: DPoP <token>` with a fresh proof in the `DPoP` header of each request.
    Dpop,
}

impl TokenScheme {
    /// The scheme of a token answer's `token_type` (compared case-insensitively, OAUTH-12):
    /// DPoP for `DPoP`, Bearer for anything else the client accepted.
    pub fn of(token_type: &str) -> Self {
        if token_type.eq_ignore_ascii_case("dpop") {
            TokenScheme::Dpop
        } else {
            TokenScheme::Bearer
        }
    }

    /// The scheme's name in an `Authorization` header.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScheme::Bearer => "Bearer",
            TokenScheme::Dpop => "DPoP",
        }
    }
}

/// Why no proof could be made. The messages never carry key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The stored key does not decode to a P-256 private key.
    #[error(
        "the stored DPoP key is not a usable P-256 key; log out and log in again to make a new one"
    )]
    BadKey,
    /// The URL the proof is for cannot be read.
    #[error("cannot make a DPoP proof for an unreadable URL: {0}")]
    BadUrl(String),
}

/// A client's DPoP key pair: an ES256 (P-256) private key, stored in the record as the
/// base64url private scalar. `Debug` shows nothing of it; [`DpopKey::thumbprint`] names the
/// key where that is wanted (deriving it costs a scalar multiplication, too much for every
/// `Debug` of a record).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DpopKey(Secret);

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DpopKey")
            .field(&crate::secret::REDACTED)
            .finish()
    }
}

impl DpopKey {
    /// A fresh key from the client's entropy. A 32-byte block is a valid P-256 scalar unless
    /// it is zero or not below the group order, which happens with probability about 2^-32;
    /// the next block is taken then.
    pub(crate) fn generate(entropy: &mut Entropy) -> Self {
        loop {
            let block = entropy.next_block();
            if p256::ecdsa::SigningKey::from_slice(&block).is_ok() {
                return DpopKey(Secret::new(URL_SAFE_NO_PAD.encode(block)));
            }
        }
    }

    /// The key stored as `secret` (the base64url private scalar), for tests and tools that
    /// hold one already.
    pub fn from_secret(secret: Secret) -> Result<Self, ProofError> {
        let key = DpopKey(secret);
        key.signing_key()?;
        Ok(key)
    }

    /// The stored form, for checks that it never leaks (INV-12).
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    fn signing_key(&self) -> Result<p256::ecdsa::SigningKey, ProofError> {
        let bytes = zeroize::Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(self.0.expose())
                .map_err(|_| ProofError::BadKey)?,
        );
        p256::ecdsa::SigningKey::from_slice(&bytes).map_err(|_| ProofError::BadKey)
    }

    /// The public key as a JWK (RFC 7518 §6.2.1): `kty`, `crv`, `x` and `y`, nothing private.
    pub fn public_jwk(&self) -> Result<Value, ProofError> {
        Ok(crate::jws::ec_public_jwk(&self.signing_key()?))
    }

    /// The JWK SHA-256 thumbprint (RFC 7638 §3): the required members in lexical order, no
    /// whitespace, hashed; what a server binds a token to (`cnf.jkt`, RFC 9449 §6.1).
    pub fn thumbprint(&self) -> Result<String, ProofError> {
        let jwk = self.public_jwk()?;
        let member = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("kty"),
            member("x"),
            member("y")
        );
        Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
    }

    /// A signed proof (RFC 9449 §4.2) for one request.
    pub fn proof(&self, claims: &ProofClaims<'_>) -> Result<Secret, ProofError> {
        let key = self.signing_key()?;
        let header = json!({
            "typ": "dpop+jwt",
            "alg": DPOP_ALG,
            "jwk": self.public_jwk()?,
        });
        let mut payload = json!({
            "jti": claims.jti,
            "htm": claims.method,
            "htu": target_uri(claims.url)?,
            "iat": claims.now.unix_seconds(),
        });
        if let Some(nonce) = claims.nonce {
            payload["nonce"] = json!(nonce);
        }
        if let Some(token) = claims.access_token {
            payload["ath"] = json!(access_token_hash(token));
        }
        Ok(crate::jws::sign_compact(&header, &payload, |input| {
            crate::jws::es256(&key, input)
        }))
    }
}

/// What one proof says.
#[derive(Clone, Copy, Debug)]
pub struct ProofClaims<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URL; `htu` is it without query and fragment.
    pub url: &'a str,
    /// Unique per proof (`jti`), so a server can refuse a replay (RFC 9449 §11.1).
    pub jti: &'a str,
    /// When the proof is made (`iat`).
    pub now: Timestamp,
    /// The server's latest nonce, when it asked for one (RFC 9449 §8, §9).
    pub nonce: Option<&'a str>,
    /// The access token the request carries, for a request to a resource: its hash becomes
    /// `ath` (RFC 9449 §4.2).
    pub access_token: Option<&'a Secret>,
}

/// The `htu` of a request to `url`: the URL without query and fragment (RFC 9449 §4.2).
pub fn target_uri(url: &str) -> Result<String, ProofError> {
    let mut parsed =
        url::Url::parse(url).map_err(|_| ProofError::BadUrl(crate::endpoint::sanitize(url)))?;
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(parsed.to_string())
}

/// The `ath` of a proof: base64url of the SHA-256 of the access token's ASCII text
/// (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.expose().as_bytes()))
}

/// The `DPoP-Nonce` an answer brings, if any (RFC 9449 §8, §9): a server may send a new one
/// with any answer.
pub fn nonce_in(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(DPOP_NONCE_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|nonce| !nonce.is_empty())
}

/// Whether a resource's `WWW-Authenticate` values ask for a proof with a nonce: a `DPoP`
/// challenge with `error="use_dpop_nonce"` (RFC 9449 §9). The request is then sent again with
/// the nonce from the answer's `DPoP-Nonce` header; the token itself was not refused.
pub fn asks_for_nonce(www_authenticate: &[&str]) -> bool {
    www_authenticate
        .iter()
        .flat_map(|header| crate::challenge::parse(header))
        .any(|c| c.scheme.eq_ignore_ascii_case("dpop") && c.param("error") == Some(USE_DPOP_NONCE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn key() -> DpopKey {
        DpopKey::generate(&mut Entropy::new([3; 32]))
    }

    #[test]
    fn a_proof_carries_the_rfc_9449_header_and_claims_and_verifies() {
        let key = key();
        let token = Secret::new("the-access-token");
        let proof = key
            .proof(&ProofClaims {
                method: "POST",
                url: "https://mcp.example.com/mcp?session=1#part",
                jti: "jti-1",
                now: Timestamp::from_unix_seconds(1_700_000_000),
                nonce: Some("n-1"),
                access_token: Some(&token),
            })
            .unwrap();
        let parts: Vec<&str> = proof.expose().split('.').collect();
        let header = decode(parts[0]);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        let jwk = header["jwk"].as_object().unwrap();
        let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["crv", "kty", "x", "y"], "the public key only");
        let payload = decode(parts[1]);
        assert_eq!(payload["htm"], "POST");
        assert_eq!(payload["htu"], "https://mcp.example.com/mcp");
        assert_eq!(payload["jti"], "jti-1");
        assert_eq!(payload["iat"], 1_700_000_000);
        assert_eq!(payload["nonce"], "n-1");
        // echo -n the-access-token | sha256sum, base64url: computed independently below.
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(b"the-access-token"));
        assert_eq!(payload["ath"], expected);

        let signature =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let verifying = *key.signing_key().unwrap().verifying_key();
        let input = format!("{}.{}", parts[0], parts[1]);
        verifying.verify(input.as_bytes(), &signature).unwrap();
    }

    #[test]
    fn a_token_request_proof_has_no_ath_and_no_nonce_unless_asked() {
        let proof = key()
            .proof(&ProofClaims {
                method: "POST",
                url: "https://as.example.com/token",
                jti: "j",
                now: Timestamp::from_unix_seconds(5),
                nonce: None,
                access_token: None,
            })
            .unwrap();
        let payload = decode(proof.expose().split('.').nth(1).unwrap());
        assert!(payload.get("ath").is_none() && payload.get("nonce").is_none());
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 7638 §3.1 hashes the members in lexical order without whitespace; serde_json's
        // map is ordered the same way, so both spellings must give the same digest.
        let key = key();
        let jwk = key.public_jwk().unwrap();
        let by_serde = URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.to_string().as_bytes()));
        assert_eq!(key.thumbprint().unwrap(), by_serde);
        assert_eq!(key.thumbprint().unwrap().len(), 43);
        assert_ne!(
            key.thumbprint().unwrap(),
            DpopKey::generate(&mut Entropy::new([4; 32]))
                .thumbprint()
                .unwrap()
        );
    }

    #[test]
    fn the_key_is_drawn_from_the_seed_and_survives_serialization() {
        assert_eq!(key(), key(), "same seed, same key");
        let stored = serde_json::to_string(&key()).unwrap();
        let back: DpopKey = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.thumbprint(), key().thumbprint());
        assert!(DpopKey::from_secret(Secret::new("not a key")).is_err());
    }

    #[test]
    fn the_private_key_never_shows_in_debug_inv_12() {
        let key = key();
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.secret().expose()), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn a_dpop_nonce_challenge_is_recognised_among_others() {
        assert!(asks_for_nonce(&[
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
        ]));
        assert!(asks_for_nonce(&[
            r#"Bearer realm="x", DPoP error="use_dpop_nonce""#
        ]));
        assert!(!asks_for_nonce(&[r#"DPoP error="invalid_token""#]));
        assert!(!asks_for_nonce(&[r#"Bearer error="use_dpop_nonce""#]));
        assert!(!asks_for_nonce(&[]));
    }

    #[test]
    fn schemes_are_read_case_insensitively_oauth_12() {
        assert_eq!(TokenScheme::of("dpop"), TokenScheme::Dpop);
        assert_eq!(TokenScheme::of("DPoP"), TokenScheme::Dpop);
        assert_eq!(TokenScheme::of("bearer"), TokenScheme::Bearer);
        assert_eq!(TokenScheme::Dpop.as_str(), "DPoP");
    }
}
