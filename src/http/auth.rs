//! Bearer authentication as extractors, one per token kind; the checks themselves live in
//! `services::auth`. A PMS write's stack authenticates first and leaves the identity in
//! the request's extensions, where the extractor finds it again.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::domain::{Error, Result};
use crate::services::auth::{self, AdminAuth, CompanyAuth, TenantAuth};

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

impl FromRequestParts<AppState> for CompanyAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "api_token_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if let Some(auth) = parts.extensions.get::<CompanyAuth>() {
            return Ok(*auth);
        }
        let token = bearer_token(parts)?;
        let auth = refused(
            auth::authenticate_api(&state.db, &state.hasher, token, state.clock.now()).await?,
        )?;
        parts.extensions.insert(auth);
        Ok(auth)
    }
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "tenant_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(parts)?;
        refused(
            auth::authenticate_tenant(&state.db, &state.hasher, token, state.clock.now()).await?,
        )
    }
}

/// Middleware for the PMS writes: the API token is checked before anything else (and before the
/// body is read), and the identity is left in the request for the layers and the handler.
pub async fn require_api_token(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (mut parts, body) = request.into_parts();
    if let Err(err) = CompanyAuth::from_request_parts(&mut parts, &state).await {
        return err.into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}
