//! Company API tokens for PMS servers: created (the secret shown once), listed, revoked, and
//! checked on every PMS request.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::companies;
use crate::crypto::{self, SecretHasher, random_secret, split_token};
use crate::http::auth::{AdminAuth, CompanyAuth, last_use_is_stale};
use crate::http::error::ValidationErrors;
use crate::http::extract::{FromJsonBody, JsonObject, parse};
use crate::http::openapi::{ErrorBody, ValidationErrorBody};
use crate::http::{AppState, Data, Error, Result, data};
use crate::validation::Fields;

/// API tokens read `kat_<token id>.<secret>`.
const TOKEN_PREFIX: &str = "kat_";

const TOKEN_NOT_FOUND: &str = "API token not found.";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/companies/{company_id}/api-tokens",
            get(list_tokens).post(create_token),
        )
        .route(
            "/companies/{company_id}/api-tokens/{token_id}",
            delete(revoke_token),
        )
}

/// The body of token creation (HTTP and command line).
pub struct NewApiToken {
    pub name: String,
}

impl FromJsonBody for NewApiToken {
    fn from_json(body: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<Self> {
        let name = Fields::new(body, errors).required_text("name", 100)?;
        Some(NewApiToken { name })
    }
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiToken {
    pub id: Uuid,
    pub name: String,
    pub token: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiTokenSummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub async fn create(
    db: &PgPool,
    hasher: &SecretHasher,
    company_id: Uuid,
    new: NewApiToken,
    now: DateTime<Utc>,
) -> Result<CreatedApiToken> {
    let id = Uuid::new_v4();
    let secret = random_secret();
    sqlx::query!(
        "INSERT INTO api_tokens (id, company_id, name, secret_hash, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        id,
        company_id,
        new.name,
        secret_hash(hasher, id, &secret),
        now,
    )
    .execute(db)
    .await?;
    Ok(CreatedApiToken {
        id,
        name: new.name,
        token: format!("{TOKEN_PREFIX}{}.{secret}", id.simple()),
        created_at: now,
    })
}

fn secret_hash(hasher: &SecretHasher, id: Uuid, secret: &str) -> Vec<u8> {
    hasher.hash(&[b"api-token", id.as_bytes(), secret.as_bytes()])
}

/// The company behind an API token, if the token is well-formed, not revoked and matches.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<CompanyAuth>> {
    let Some((id, secret)) = split_token(token, TOKEN_PREFIX) else {
        return Ok(None);
    };
    let Ok(token_id) = Uuid::try_parse(id) else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "SELECT company_id, secret_hash, last_used_at FROM api_tokens
         WHERE id = $1 AND revoked_at IS NULL",
        token_id,
    )
    .fetch_optional(&state.db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if !crypto::constant_time_eq(
        &secret_hash(&state.hasher, token_id, secret),
        &row.secret_hash,
    ) {
        return Ok(None);
    }
    let now = state.clock.now();
    if last_use_is_stale(row.last_used_at, now) {
        sqlx::query!(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
            token_id,
            now
        )
        .execute(&state.db)
        .await?;
    }
    Ok(Some(CompanyAuth {
        company_id: row.company_id,
        token_id,
    }))
}

/// `POST /companies/{company_id}/api-tokens`
#[utoipa::path(
    post, path = "/api/v2/companies/{company_id}/api-tokens", tag = "administration",
    security(("admin_token" = [])), request_body = crate::http::openapi::NameBody,
    params(("company_id" = String, Path, description = "Company id")),
    responses((status = 201, description = "Created; the only time `token` is shown", body = Data<CreatedApiToken>),
              (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 403, description = "Not this admin's company, or not a super admin", body = ErrorBody), (status = 404, description = "Company not found.", body = ErrorBody), (status = 422, description = "Validation error", body = ValidationErrorBody), (status = 400, description = "Malformed JSON or header", body = ErrorBody), (status = 415, description = "Body not sent as JSON", body = ErrorBody))
)]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(company_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Data<CreatedApiToken>>)> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let token = create(
        &state.db,
        &state.hasher,
        company_id,
        parse(&body)?,
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, data(token)))
}

/// `GET /companies/{company_id}/api-tokens`: the active tokens, oldest first, never their secrets.
#[utoipa::path(
    get, path = "/api/v2/companies/{company_id}/api-tokens", tag = "administration",
    security(("admin_token" = [])),
    params(("company_id" = String, Path, description = "Company id")),
    responses((status = 200, description = "Active tokens, never their secrets", body = Data<Vec<ApiTokenSummary>>),
              (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 403, description = "Not this admin's company, or not a super admin", body = ErrorBody), (status = 404, description = "Company not found.", body = ErrorBody))
)]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(company_id): Path<String>,
) -> Result<Json<Data<Vec<ApiTokenSummary>>>> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let tokens = sqlx::query_as!(
        ApiTokenSummary,
        "SELECT id, name, created_at, last_used_at FROM api_tokens
         WHERE company_id = $1 AND revoked_at IS NULL
         ORDER BY created_at, id",
        company_id,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(data(tokens))
}

/// `DELETE /companies/{company_id}/api-tokens/{token_id}`: refused from the next request on.
/// A token that is already revoked is no longer listed, so it is a 404 like any unknown id.
#[utoipa::path(
    delete, path = "/api/v2/companies/{company_id}/api-tokens/{token_id}", tag = "administration",
    security(("admin_token" = [])),
    params(("company_id" = String, Path, description = "Company id"), ("token_id" = String, Path, description = "API token id")),
    responses((status = 204, description = "Revoked from the next request on"), (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 403, description = "Not this admin's company, or not a super admin", body = ErrorBody), (status = 404, description = "Company not found. / API token not found.", body = ErrorBody))
)]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((company_id, token_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let token_id = Uuid::try_parse(&token_id).map_err(|_| Error::NotFound(TOKEN_NOT_FOUND))?;
    let revoked = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = $3
         WHERE id = $1 AND company_id = $2 AND revoked_at IS NULL",
        token_id,
        company_id,
        state.clock.now(),
    )
    .execute(&state.db)
    .await?;
    if revoked.rows_affected() == 0 {
        return Err(Error::NotFound(TOKEN_NOT_FOUND));
    }
    Ok(StatusCode::NO_CONTENT)
}
