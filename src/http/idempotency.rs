//! The Idempotency-Key middleware of the PMS writes (docs/api.md, "Idempotency-Key"). The first request with a key
//! runs inside a transaction that also stores its answer, so the write and the stored answer
//! commit together (a crash leaves neither). A retry with the same request replays the answer byte
//! for byte; a different request, or one while the first is still running, is a 409.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::TokenConfirmed;
use super::extract::read_limited;
use super::writes::{HANDLER_SAVEPOINT, TxSlot};
use crate::domain::{Error, Result};
use crate::infra::db;
use crate::services::auth::CompanyAuth;
use crate::services::idempotency::{self, Answer, Claim, IdempotencyKey};

const KEY_HEADER: &str = "idempotency-key";
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Middleware for the PMS writes; runs after authentication and the rate limit.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(raw_key) = request.headers().get(KEY_HEADER) else {
        return next.run(request).await;
    };
    let key = match IdempotencyKey::parse(raw_key.as_bytes()) {
        Ok(key) => key,
        Err(err) => return err.into_response(),
    };
    let (Some(auth), Some(confirmed)) = (
        request.extensions().get::<CompanyAuth>().copied(),
        request.extensions().get::<TokenConfirmed>().cloned(),
    ) else {
        return Error::Internal(anyhow::anyhow!(
            "an Idempotency-Key outside the write stack"
        ))
        .into_response();
    };
    run_once(&state, auth, &confirmed, &key, request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run_once(
    state: &AppState,
    auth: CompanyAuth,
    confirmed: &TokenConfirmed,
    key: &IdempotencyKey,
    request: Request,
    next: Next,
) -> Result<Response> {
    let company_id = auth.company_id;
    let (mut parts, body) = request.into_parts();
    let body = read_limited(&parts.headers, body, state.config.body_limit_bytes).await?;
    let fingerprint = idempotency::fingerprint(parts.method.as_str(), parts.uri.path(), &body);
    let now = state.clock.now();

    let mut tx = db::begin(&state.db).await?;
    // Answers decided here end the transaction before they are sent: a rollback merely queued by a
    // drop would leave the key locked for a moment, and a quick retry would see it "in flight".
    let claim = idempotency::claim(&mut tx, company_id, auth.token_id, key, now).await?;
    if !matches!(claim, Claim::TokenNotLive) {
        confirmed.confirm();
    }
    let early = match claim {
        Claim::TokenNotLive => Some(Err(Error::Unauthorized { token_sent: true })),
        Claim::InFlight => {
            metrics::counter!("idempotency_conflicts_total", "reason" => "in_flight").increment(1);
            Some(Err(Error::Conflict(
                "A request with this Idempotency-Key is still being processed.",
            )))
        }
        Claim::Stored(stored) if stored.fingerprint != fingerprint => {
            metrics::counter!("idempotency_conflicts_total", "reason" => "different_request")
                .increment(1);
            Some(Err(Error::Conflict(
                "The Idempotency-Key has already been used with a different request.",
            )))
        }
        Claim::Stored(stored) => {
            metrics::counter!("idempotent_replays_total").increment(1);
            Some(Ok(replay(stored.status, stored.content_type, stored.body)))
        }
        Claim::Fresh => None,
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
        .and_then(|value| value.to_str().ok());
    let answer = Answer {
        status: status.as_u16(),
        content_type,
        body: &response_body,
    };
    idempotency::save(
        &mut tx,
        company_id,
        key,
        &fingerprint,
        answer,
        now,
        state.config.idempotency_ttl,
    )
    .await?;
    db::commit(tx).await?;
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
