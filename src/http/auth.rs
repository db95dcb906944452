//! Bearer authentication, one extractor per token kind. Each checks its token with one indexed
//! lookup by id and a constant-time comparison of the secret's keyed hash; a token of another kind
//! never parses, so it is a 401 wherever it is sent.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::{AppState, Error, Result};
use crate::admin::{self, Admin};
use crate::{api_tokens, otp_login};

/// `last_used_at` is written at most this often per token, so a busy token costs no write per request.
const LAST_USED_GRANULARITY: TimeDelta = TimeDelta::seconds(60);

/// Whether a token's `last_used_at` is old enough to be worth writing again.
pub fn last_use_is_stale(last_used_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_used_at.is_none_or(|used| now - used >= LAST_USED_GRANULARITY)
}

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

/// A signed-in administrator (admin token).
#[derive(Debug, Clone)]
pub struct AdminAuth {
    pub session_id: Uuid,
    pub admin: Admin,
}

impl AdminAuth {
    /// Only super admins may act across companies.
    pub fn require_super_admin(&self) -> Result<()> {
        match self.admin.company_id {
            None => Ok(()),
            Some(_) => Err(Error::Forbidden),
        }
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "admin_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(parts)?;
        admin::sessions::authenticate(state, token)
            .await?
            .ok_or(Error::Unauthorized { token_sent: true })
    }
}

/// A PMS server acting for one company (API token).
#[derive(Debug, Clone, Copy)]
pub struct CompanyAuth {
    pub company_id: Uuid,
    pub token_id: Uuid,
}

impl FromRequestParts<AppState> for CompanyAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "api_token_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        // The per-company rate limit runs first and has already authenticated the token.
        if let Some(auth) = parts.extensions.get::<CompanyAuth>() {
            return Ok(*auth);
        }
        let token = bearer_token(parts)?;
        api_tokens::authenticate(state, token)
            .await?
            .ok_or(Error::Unauthorized { token_sent: true })
    }
}

/// A tenant logged in by OTP (tenant token).
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub token_id: i64,
    pub tenant_id: String,
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = Error;

    #[tracing::instrument(name = "tenant_auth", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(parts)?;
        otp_login::tokens::authenticate(state, token)
            .await?
            .ok_or(Error::Unauthorized { token_sent: true })
    }
}
