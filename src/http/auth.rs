//! Bearer authentication as extractors, one per token kind; the checks themselves live in
//! `services::auth`. A PMS write's stack authenticates first and leaves the identity in
//! the request's extensions, where the extractor finds it again.
//!
//! API and tenant tokens may come from the process's cache of accepted tokens, which never knows
//! whether a token was revoked since. So every route confirms liveness in the database before it
//! answers: the plain extractors ask right away (one primary-key read, as a lookup would); the
//! hot routes check it inside the statement that does their work and save that round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::domain::{Error, Result};
use crate::services::auth::{self, Accepted, AdminAuth, CompanyAuth, TenantAuth};
use uuid::Uuid;

/// The bearer token of the request, or the 401 for a request without one.
pub fn bearer_token(parts: &Parts) -> Result<&str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(Error::Unauthorized { token_sent: false })?;
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized { token_sent: true })?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(Error::Unauthorized { token_sent: true })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthorized { token_sent: true });
    }
    Ok(token.trim())
}

fn refused<T>(found: Option<T>) -> Result<T> {
    found.ok_or(Error::Unauthorized { token_sent: true })
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "admin_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(parts)?;
        refused(auth::authenticate_admin(&state.db, &state.hasher, token, state.clock.now()).await?)
    }
}

/// Set once the database has confirmed, during this request, that its API token is live: by the
/// token's lookup, by the Idempotency-Key claim, or by the write's own statement. A PMS write's
/// answer is not sent before it is set.
#[derive(Clone, Default)]
pub struct TokenConfirmed(Arc<AtomicBool>);

impl TokenConfirmed {
    pub fn confirm(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_confirmed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Asks the database whether a remembered API token is still live; a dead one is forgotten.
async fn api_token_still_live(state: &AppState, token_id: Uuid) -> Result<bool> {
    let mut conn = state.db.acquire().await?;
    let live = auth::api_token_live(&mut conn, token_id).await?;
    if !live {
        state.api_tokens.forget(token_id);
    }
    Ok(live)
}

/// A token presented for a route that has no statement of its own to check liveness in.
impl FromRequestParts<AppState> for CompanyAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "api_token_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if let Some(auth) = parts.extensions.get::<CompanyAuth>() {
            return Ok(*auth);
        }
        let accepted = accept_api_token(parts, state).await?;
        if !accepted.confirmed_live && !api_token_still_live(state, accepted.auth.token_id).await? {
            return refused(None);
        }
        Ok(accepted.auth)
    }
}

/// A tenant token for a route that has no statement of its own to check liveness in.
impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "tenant_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let accepted = Accepted::<TenantAuth>::from_request_parts(parts, state).await?;
        let token_id = accepted.auth.token_id;
        if !accepted.confirmed_live && !auth::tenant_token_live(&state.db, token_id).await? {
            state.tenant_tokens.forget(token_id);
            return refused(None);
        }
        Ok(accepted.auth)
    }
}

/// A tenant token whose secret matched, for a handler whose statement checks that it is still
/// live (`live_tenant_tokens`) and refuses it otherwise (see [`refuse_dead_tenant_token`]).
impl FromRequestParts<AppState> for Accepted<TenantAuth> {
    type Rejection = Error;

    #[tracing::instrument(name = "tenant_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(parts)?;
        refused(
            auth::authenticate_tenant(
                &state.db,
                &state.hasher,
                &state.tenant_tokens,
                token,
                state.clock.now(),
            )
            .await?,
        )
    }
}

/// The 401 for a tenant token its handler's statement found dead; it is forgotten, so its next
/// request is looked up and refused up front.
pub fn refuse_dead_tenant_token(state: &AppState, auth: &TenantAuth) -> Error {
    state.tenant_tokens.forget(auth.token_id);
    Error::Unauthorized { token_sent: true }
}

/// Middleware for the PMS writes: the API token is checked before anything else (and before the
/// body is read), and the identity is left in the request for the layers and the handler. A
/// remembered token is not looked up again: the write checks it is live in its own transaction
/// ([`TokenConfirmed`]); an answer that did not is held back until the database has been asked.
pub async fn require_api_token(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (mut parts, body) = request.into_parts();
    let accepted = match accept_api_token(&parts, &state).await {
        Ok(accepted) => accepted,
        Err(err) => return err.into_response(),
    };
    let confirmed = TokenConfirmed::default();
    if accepted.confirmed_live {
        confirmed.confirm();
    }
    parts.extensions.insert(accepted.auth);
    parts.extensions.insert(confirmed.clone());
    let response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    // A 5xx said nothing about the company's data; the database is likely unreachable anyway.
    if confirmed.is_confirmed() || response.status().is_server_error() {
        return response;
    }
    match api_token_still_live(&state, accepted.auth.token_id).await {
        Ok(true) => response,
        Ok(false) => Error::Unauthorized { token_sent: true }.into_response(),
        Err(err) => err.into_response(),
    }
}

/// The request's API token if its secret matches (liveness unconfirmed when it was remembered).
async fn accept_api_token(parts: &Parts, state: &AppState) -> Result<Accepted<CompanyAuth>> {
    let token = bearer_token(parts)?;
    refused(
        auth::authenticate_api(
            &state.db,
            &state.hasher,
            &state.api_tokens,
            token,
            state.clock.now(),
        )
        .await?,
    )
}
