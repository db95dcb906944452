//! Idempotency-Key records (docs/api.md, "Idempotency-Key"): the key, the request's fingerprint, and the two
//! statements that claim a key and store the answer. The HTTP layer (`http::idempotency`) runs a request
//! between them inside one transaction, so the write and its stored answer commit together.
//!
//! The key is held by a transaction-scoped advisory lock (inside `idempotency_claim`), so an
//! in-flight request is recognised in every process sharing the database, and a crashed process
//! releases it with its connection. Expired records are deleted by the background clean-up (`app::maintenance`).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Error, Result};

/// 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self> {
        let valid = (1..=255).contains(&raw.len()) && raw.iter().all(|b| (0x21..=0x7e).contains(b));
        match std::str::from_utf8(raw) {
            Ok(key) if valid => Ok(IdempotencyKey(key.to_owned())),
            _ => Err(Error::BadRequest(
                "The Idempotency-Key header must be 1 to 255 visible ASCII characters.".into(),
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The fingerprint of a request: method, path and body, with a JSON body compared by value (key
/// order and white space do not matter). The body is hashed in one streaming pass: each object's
/// members are hashed and sorted by key, so no tree of the body is ever built.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let body_hash = match CanonicalHash.deserialize(&mut deserializer) {
        Ok(hash) if deserializer.end().is_ok() => hash.to_vec(),
        // Not JSON: the bytes themselves (the handler refuses such a body anyway).
        _ => Sha256::digest(body).to_vec(),
    };
    let mut hasher = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), &body_hash] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// Hashes one JSON value; equal values (as `serde_json::Value` compares them) hash alike.
struct CanonicalHash;

type Hash = [u8; 32];

fn tagged(tag: u8, bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([tag]);
    hasher.update(bytes);
    hasher.finalize().into()
}

impl<'de> DeserializeSeed<'de> for CanonicalHash {
    type Value = Hash;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Hash, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CanonicalHash {
    type Value = Hash;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Hash, E> {
        Ok(tagged(b'n', &[]))
    }
    fn visit_bool<E>(self, value: bool) -> Result<Hash, E> {
        Ok(tagged(b'b', &[u8::from(value)]))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Hash, E> {
        Ok(tagged(b'u', &value.to_be_bytes()))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Hash, E> {
        // serde_json reads non-negative integers as u64; keep them equal whichever way they come.
        Ok(match u64::try_from(value) {
            Ok(value) => tagged(b'u', &value.to_be_bytes()),
            Err(_) => tagged(b'i', &value.to_be_bytes()),
        })
    }
    fn visit_f64<E>(self, value: f64) -> Result<Hash, E> {
        Ok(tagged(b'f', &value.to_bits().to_be_bytes()))
    }
    fn visit_str<E>(self, value: &str) -> Result<Hash, E> {
        Ok(tagged(b's', value.as_bytes()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Hash, A::Error> {
        let mut hasher = Sha256::new();
        hasher.update(b"a");
        while let Some(item) = seq.next_element_seed(CanonicalHash)? {
            hasher.update(item);
        }
        Ok(hasher.finalize().into())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Hash, A::Error> {
        // A repeated key keeps its last value, as a parsed object would.
        let mut members = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(CanonicalHash)?;
            members.insert(key, value);
        }
        let mut hasher = Sha256::new();
        hasher.update(b"o");
        for (key, value) in &members {
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(key.as_bytes());
            hasher.update(value);
        }
        Ok(hasher.finalize().into())
    }
}

/// What claiming a key found.
pub enum Claim {
    /// The API token making the request is no longer live (revoked since it was remembered).
    TokenNotLive,
    /// Another transaction holds the key: the first request is still running.
    InFlight,
    /// A stored answer for this key.
    Stored(StoredAnswer),
    /// The key is ours: run the request, then [`save`] its answer in the same transaction.
    Fresh,
}

pub struct StoredAnswer {
    pub fingerprint: Vec<u8>,
    pub status: Option<i16>,
    pub content_type: Option<String>,
    pub body: Option<Vec<u8>>,
}

/// Locks the key for this transaction and reads its unexpired record, in one round trip; the
/// same statement checks that the API token `token_id` making the request is still live.
pub async fn claim(
    tx: &mut PgConnection,
    company_id: Uuid,
    token_id: Uuid,
    key: &IdempotencyKey,
    now: DateTime<Utc>,
) -> Result<Claim> {
    let claim = sqlx::query!(
        r#"SELECT locked AS "locked!", request_fingerprint, response_status,
                  response_content_type, response_body,
                  EXISTS (SELECT 1 FROM live_api_tokens WHERE id = $4) AS "token_live!"
           FROM idempotency_claim($1, $2, $3)"#,
        company_id,
        key.as_str(),
        now,
        token_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if !claim.token_live {
        return Ok(Claim::TokenNotLive);
    }
    Ok(match (claim.locked, claim.request_fingerprint) {
        (false, _) => Claim::InFlight,
        (true, Some(fingerprint)) => Claim::Stored(StoredAnswer {
            fingerprint,
            status: claim.response_status,
            content_type: claim.response_content_type,
            body: claim.response_body,
        }),
        (true, None) => Claim::Fresh,
    })
}

/// The answer to store with the key.
pub struct Answer<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Stores the answer with the key (replacing an expired record), in the claiming transaction.
pub async fn save(
    tx: &mut PgConnection,
    company_id: Uuid,
    key: &IdempotencyKey,
    fingerprint: &[u8],
    answer: Answer<'_>,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO idempotency_keys
             (company_id, idempotency_key, request_fingerprint, response_status,
              response_content_type, response_body, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (company_id, idempotency_key) DO UPDATE SET
             request_fingerprint = EXCLUDED.request_fingerprint,
             response_status = EXCLUDED.response_status,
             response_content_type = EXCLUDED.response_content_type,
             response_body = EXCLUDED.response_body,
             created_at = EXCLUDED.created_at,
             expires_at = EXCLUDED.expires_at
         WHERE idempotency_keys.expires_at <= EXCLUDED.created_at",
        company_id,
        key.as_str(),
        fingerprint,
        i16::try_from(answer.status).unwrap_or(i16::MAX),
        answer.content_type,
        answer.body,
        now,
        now + ttl,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        let ok = |s: &[u8]| IdempotencyKey::parse(s).is_ok();
        assert!(ok(b"0b9c2a4e-7f1d-4c55-9a0e-3f6b2d8c1e77"));
        assert!(ok("k".repeat(255).as_bytes()));
        assert!(!ok("k".repeat(256).as_bytes()));
        assert!(!ok(b"has space"));
        assert!(!ok(b""));
        assert!(!ok("café".as_bytes()));
    }

    #[test]
    fn fingerprints_compare_json_bodies_by_value() {
        let a = fingerprint(
            "PATCH",
            "/api/v2/units/A",
            br#"{"a":1,"b":[1,2],"c":{"x":null,"y":"s"}}"#,
        );
        let same = fingerprint(
            "PATCH",
            "/api/v2/units/A",
            b"{ \"c\": {\"y\": \"s\", \"x\": null}, \"b\": [1, 2],\n \"a\": 1 }",
        );
        assert_eq!(a, same);
        for (method, path, body) in [
            (
                "PATCH",
                "/api/v2/units/A",
                &br#"{"a":2,"b":[1,2],"c":{"x":null,"y":"s"}}"#[..],
            ),
            (
                "PATCH",
                "/api/v2/units/A",
                br#"{"a":1,"b":[2,1],"c":{"x":null,"y":"s"}}"#,
            ),
            (
                "PATCH",
                "/api/v2/units/A",
                br#"{"a":1,"b":[1,2],"c":{"x":null,"y":"s"},"d":0}"#,
            ),
            (
                "PATCH",
                "/api/v2/units/A",
                br#"{"a":1.0,"b":[1,2],"c":{"x":null,"y":"s"}}"#,
            ),
            (
                "PATCH",
                "/api/v2/units/B",
                br#"{"a":1,"b":[1,2],"c":{"x":null,"y":"s"}}"#,
            ),
            (
                "PUT",
                "/api/v2/units/A",
                br#"{"a":1,"b":[1,2],"c":{"x":null,"y":"s"}}"#,
            ),
        ] {
            assert_ne!(
                a,
                fingerprint(method, path, body),
                "{method} {path} {body:?}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_fingerprinted_by_its_bytes() {
        assert_eq!(
            fingerprint("PUT", "/x", b"{not json"),
            fingerprint("PUT", "/x", b"{not json")
        );
        assert_ne!(
            fingerprint("PUT", "/x", b"{not json"),
            fingerprint("PUT", "/x", b"{not json ")
        );
    }
}
