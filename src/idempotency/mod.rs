//! Idempotency-Key on PMS writes (CONTRACT §6). The first request with a key runs inside a
//! transaction that also stores its answer, so the write and the stored response commit together
//! (a crash leaves neither). A retry with the same request replays the answer byte for byte; a
//! different request, or one while the first is still running, is a 409.
//!
//! The key is held by a transaction-scoped advisory lock, so an in-flight request is recognised in
//! every process sharing the database, and a crashed process releases it with its connection.
//! Expired records are deleted by `crate::maintenance`.

mod tx;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::http::auth::CompanyAuth;
use crate::http::{AppState, Error, Result};
pub use tx::{TxSlot, WriteTx, Writes};

const KEY_HEADER: &str = "idempotency-key";
const REPLAYED_HEADER: &str = "idempotent-replayed";
pub(crate) const HANDLER_SAVEPOINT: &str = "idempotent_handler";

/// Middleware for the PMS writes; runs after authentication and the rate limit.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(raw_key) = request.headers().get(KEY_HEADER) else {
        return next.run(request).await;
    };
    let result = match (
        parse_key(raw_key),
        request.extensions().get::<CompanyAuth>(),
    ) {
        (Err(err), _) => Err(err),
        (Ok(key), Some(auth)) => {
            let company_id = auth.company_id;
            run_once(&state, company_id, &key, request, next).await
        }
        (Ok(_), None) => Err(Error::Internal(anyhow::anyhow!(
            "the idempotency layer runs only after API-token authentication"
        ))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// 1–255 visible ASCII characters.
fn parse_key(value: &HeaderValue) -> Result<String> {
    let bytes = value.as_bytes();
    let valid = (1..=255).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    match value.to_str() {
        Ok(key) if valid => Ok(key.to_owned()),
        _ => Err(Error::BadRequest(
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters.".into(),
        )),
    }
}

/// Method, path and body; a JSON body is compared by value (key order and white space ignored).
fn fingerprint(method: &Method, path: &str, body: &Bytes) -> Vec<u8> {
    let canonical_body = match serde_json::from_slice::<serde_json::Value>(body) {
        // serde_json's maps are ordered by key, so this prints one canonical form.
        Ok(value) => value.to_string().into_bytes(),
        Err(_) => body.to_vec(),
    };
    let mut hasher = Sha256::new();
    for part in [method.as_str().as_bytes(), path.as_bytes(), &canonical_body] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

async fn run_once(
    state: &AppState,
    company_id: Uuid,
    key: &str,
    request: Request,
    next: Next,
) -> Result<Response> {
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, state.config.body_limit_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), &body);
    let now = state.clock.now();

    let mut tx = state.db.begin().await?;
    let claim = sqlx::query!(
        r#"SELECT locked AS "locked!", request_fingerprint, response_status,
                  response_content_type, response_body
           FROM idempotency_claim($1, $2, $3)"#,
        company_id,
        key,
        now,
    )
    .fetch_one(&mut *tx)
    .await?;
    // Answers decided here end the transaction before they are sent: a rollback merely queued by a
    // drop would leave the key locked for a moment, and a quick retry would see it "in flight".
    let early = if !claim.locked {
        metrics::counter!("idempotency_conflicts_total", "reason" => "in_flight").increment(1);
        Some(Err(Error::Conflict(
            "A request with this Idempotency-Key is still being processed.",
        )))
    } else if let Some(stored_fingerprint) = claim.request_fingerprint {
        if stored_fingerprint != fingerprint {
            metrics::counter!("idempotency_conflicts_total", "reason" => "different_request")
                .increment(1);
            Some(Err(Error::Conflict(
                "The Idempotency-Key has already been used with a different request.",
            )))
        } else {
            metrics::counter!("idempotent_replays_total").increment(1);
            Some(Ok(replay(
                claim.response_status,
                claim.response_content_type,
                claim.response_body,
            )))
        }
    } else {
        None
    };
    if let Some(answer) = early {
        tx.rollback().await?;
        return answer;
    }

    let slot = TxSlot::new(tx);
    parts.extensions.insert(slot.clone());
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let mut tx = slot.take().ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "the handler kept the idempotency transaction"
        ))
    })?;

    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // Not stored, and nothing the handler did is kept: a retry runs again.
        tx.rollback().await?;
        return Ok(response);
    }
    if !status.is_success() && slot.has_savepoint() {
        // A refusal stores its answer but none of the handler's partial work.
        sqlx::query(&format!("ROLLBACK TO SAVEPOINT {HANDLER_SAVEPOINT}"))
            .execute(&mut *tx)
            .await?;
    }
    let (response_parts, response_body) = response.into_parts();
    let response_body = axum::body::to_bytes(response_body, usize::MAX)
        .await
        .map_err(|err| Error::Internal(anyhow::anyhow!("unreadable response body: {err}")))?;
    let content_type = response_parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
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
        key,
        fingerprint,
        i16::try_from(status.as_u16()).unwrap_or(i16::MAX),
        content_type,
        response_body.as_ref(),
        now,
        now + state.config.idempotency_ttl,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Response::from_parts(
        response_parts,
        Body::from(response_body),
    ))
}

fn replay(status: Option<i16>, content_type: Option<String>, body: Option<Vec<u8>>) -> Response {
    let status = status
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, body.unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if let Some(value) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        let ok = |s: &str| parse_key(&HeaderValue::from_str(s).unwrap()).is_ok();
        assert!(ok("0b9c2a4e-7f1d-4c55-9a0e-3f6b2d8c1e77"));
        assert!(ok(&"k".repeat(255)));
        assert!(!ok(&"k".repeat(256)));
        assert!(!ok("has space"));
        assert!(parse_key(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()).is_err());
    }

    #[test]
    fn fingerprints_compare_json_bodies_by_value() {
        let a = fingerprint(
            &Method::PATCH,
            "/api/v2/units/A",
            &Bytes::from(r#"{"a":1,"b":[1,2]}"#),
        );
        let b = fingerprint(
            &Method::PATCH,
            "/api/v2/units/A",
            &Bytes::from("{ \"b\": [1, 2],\n \"a\": 1 }"),
        );
        let other_body = fingerprint(
            &Method::PATCH,
            "/api/v2/units/A",
            &Bytes::from(r#"{"a":2,"b":[1,2]}"#),
        );
        let other_path = fingerprint(
            &Method::PATCH,
            "/api/v2/units/B",
            &Bytes::from(r#"{"a":1,"b":[1,2]}"#),
        );
        let other_method = fingerprint(
            &Method::PUT,
            "/api/v2/units/A",
            &Bytes::from(r#"{"a":1,"b":[1,2]}"#),
        );
        assert_eq!(a, b);
        assert_ne!(a, other_body);
        assert_ne!(a, other_path);
        assert_ne!(a, other_method);
    }
}
