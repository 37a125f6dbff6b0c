//! How a record is laid out as bytes in durable stores (sled and Redis write the same JSON).
//!
//! ```text
//! {"generation":7,"format":1,"secret_expires_at":1767225600,"record":{…the Record…}}
//! ```
//!
//! `generation` comes first so that a Redis script can compare it without parsing the JSON
//! (the compare-and-swap of INV-9 runs inside Redis). `secret_expires_at` is the DCR secret's
//! expiry in epoch seconds, for people and tools reading the store, and the basis of the Redis
//! time to live. `record` is what serde makes of [`Record`] (its timestamps are epoch
//! milliseconds). Decoding checks that the value belongs to the key it was read under, so a
//! foreign or misplaced value is reported, never used.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenure_core::{ClientKey, Record, Timestamp};

use crate::error::StoreError;

/// The layout version written today. A value with another version is refused with a clear
/// error rather than misread.
pub const FORMAT: u32 = 1;

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    generation: u64,
    format: u32,
    secret_expires_at: Option<i64>,
    record: &'a Record,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    generation: u64,
    format: u32,
    record: Value,
}

/// When the record's DCR client secret stops working, if it ever does: the instant a Redis
/// entry expires at. `None` when there is no DCR registration, no secret, or the secret never
/// expires (`client_secret_expires_at: 0`, DCR-14) or its expiry is unknown.
pub fn secret_expiry(record: &Record) -> Option<Timestamp> {
    let dcr = record.dcr.as_ref()?;
    dcr.client_secret.as_ref()?;
    dcr.secret_expires.at()
}

/// The stored bytes of `record`.
pub fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    let envelope = EnvelopeOut {
        generation: record.generation,
        format: FORMAT,
        secret_expires_at: secret_expiry(record).map(Timestamp::unix_seconds),
        record,
    };
    serde_json::to_vec(&envelope).map_err(|e| StoreError::Invalid {
        what: format!(
            "the record for the {}",
            crate::error::describe_key(&record.key)
        ),
        why: format!("it cannot be written as JSON ({})", shape_error(&e)),
    })
}

/// The record stored as `bytes` under `key`, or a [`StoreError::Corrupt`] naming the key when
/// the bytes are damaged, foreign, from another format, or belong to another key.
pub fn decode_record(key: &ClientKey, bytes: &[u8]) -> Result<Record, StoreError> {
    let envelope: EnvelopeIn =
        serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(key, shape_error(&e)))?;
    if envelope.format != FORMAT {
        return Err(StoreError::corrupt(
            key,
            format!(
                "it is in storage format {}, this version of Tenure reads format {FORMAT}; \
                 upgrade Tenure",
                envelope.format
            ),
        ));
    }
    let record: Record = serde_json::from_value(envelope.record).map_err(|e| {
        StoreError::corrupt(
            key,
            format!("its record does not parse: {}", shape_error(&e)),
        )
    })?;
    if record.key != *key {
        return Err(StoreError::corrupt(
            key,
            "it holds the record of another client key",
        ));
    }
    if record.generation != envelope.generation {
        return Err(StoreError::corrupt(
            key,
            format!(
                "its envelope says generation {} but its record says {}",
                envelope.generation, record.generation
            ),
        ));
    }
    Ok(record)
}

/// The stored bytes of a profile.
pub fn encode_profile(name: &str, profile: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(profile).map_err(|e| StoreError::Invalid {
        what: format!("the profile `{name}`"),
        why: format!("it cannot be written as JSON ({})", shape_error(&e)),
    })
}

/// The profile stored as `bytes` under `name`.
pub fn decode_profile(name: &str, bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt_profile(name, shape_error(&e)))
}

/// What is wrong with a JSON value, by position only: serde's own messages can quote the
/// offending value, and a stored value may hold a secret (INV-12).
fn shape_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "it could not be read",
        Category::Syntax => "it is not valid JSON",
        Category::Data => "it is JSON of another shape",
        Category::Eof => "it is cut short",
    };
    if error.line() == 0 {
        what.to_string()
    } else {
        format!("{what}, at line {} column {}", error.line(), error.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_core::record::AuthServer;

    fn record() -> Record {
        let key = ClientKey::new("https://as.example", "up", "http://127.0.0.1:1/cb", &[]);
        let server = AuthServer {
            issuer: "https://as.example".into(),
            authorization_endpoint: None,
            token_endpoint: "https://as.example/token".into(),
            registration_endpoint: None,
            device_authorization_endpoint: None,
            cimd_supported: false,
            iss_parameter_supported: false,
            pkce_s256: true,
            token_endpoint_auth_methods: None,
            resource_scopes: None,
            resource: None,
            dpop_es256: false,
        };
        let mut record = Record::new(key, server);
        record.generation = 3;
        record
    }

    #[test]
    fn generation_leads_the_envelope_so_scripts_can_read_it() {
        let bytes = encode_record(&record()).unwrap();
        assert!(bytes.starts_with(br#"{"generation":3,"format":1,"secret_expires_at":null,"#));
        assert_eq!(decode_record(&record().key, &bytes).unwrap(), record());
    }

    #[test]
    fn values_of_another_key_format_or_shape_are_corrupt_and_not_quoted() {
        let mut other = record();
        other.key.upstream = "other".into();
        let bytes = encode_record(&other).unwrap();
        let error = decode_record(&record().key, &bytes).unwrap_err();
        assert!(error.is_corrupt());
        assert!(error.to_string().contains("another client key"), "{error}");

        let newer = String::from_utf8(encode_record(&record()).unwrap())
            .unwrap()
            .replace("\"format\":1", "\"format\":2");
        let error = decode_record(&record().key, newer.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("upgrade Tenure"), "{error}");

        let foreign = br#"{"generation":3,"format":1,"record":{"key":"hunter2-secret"}}"#;
        let error = decode_record(&record().key, foreign).unwrap_err();
        assert!(error.is_corrupt());
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(error.to_string().contains("https://as.example"), "{error}");
    }
}
