//! Company API tokens for PMS servers: created (the secret shown once), listed and revoked. They
//! are checked on every PMS request by `services::auth`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::companies;
use crate::domain::validation::{Fields, Sent, Validate};
use crate::domain::{Error, Result, ValidationErrors};
use crate::http::docs::{BodyErrors, Forbidden, Unauthenticated};
use crate::http::error::ErrorBody;
use crate::http::extract::Body;
use crate::http::{AppState, Data, data};
use crate::infra::crypto::SecretHasher;
use crate::infra::db;
use crate::services::audit::{self, Actor, EventType, NewEvent, Origin};
use crate::services::auth::{self, AdminAuth};

const TOKEN_NOT_FOUND: &str = "API token not found.";
pub const MAX_NAME_CHARS: usize = 100;

/// The body of token creation.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewApiTokenBody {
    #[schema(value_type = String, required = true, example = "production-sync", min_length = 1, max_length = 100, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    pub name: Sent<String>,
}

/// A token to create (from HTTP or the command line).
pub struct NewApiToken {
    pub name: String,
}

impl Validate for NewApiToken {
    type Raw = NewApiTokenBody;

    fn validate(raw: &NewApiTokenBody, errors: &mut ValidationErrors) -> Option<Self> {
        let name = Fields::new(errors).required_text("name", &raw.name, MAX_NAME_CHARS)?;
        Some(NewApiToken { name })
    }
}

impl NewApiToken {
    /// The command line's `--name`, checked by the same rules as the HTTP body.
    pub fn named(name: String) -> Result<Self> {
        Self::from_raw(&NewApiTokenBody {
            name: Sent::Value(name),
        })
    }
}

/// A token just created: the only time its secret is shown (hence no `Debug`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedApiToken {
    pub id: Uuid,
    pub name: String,
    #[schema(example = "kat_0a1b2c3d4e5f67890a1b2c3d4e5f6789.…")]
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

/// Creates a token for the company, recording `api_token.created` with it.
pub async fn create(
    db: &PgPool,
    hasher: &SecretHasher,
    company_id: Uuid,
    new: NewApiToken,
    actor: Actor,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<CreatedApiToken> {
    let token = auth::new_api_token(hasher);
    let mut tx = db::begin(db).await?;
    sqlx::query!(
        "INSERT INTO api_tokens (id, company_id, name, secret_hash, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        token.id,
        company_id,
        new.name,
        token.secret_hash,
        now,
    )
    .execute(&mut *tx)
    .await?;
    let event = NewEvent::new(
        EventType::ApiTokenCreated,
        Some(company_id),
        actor,
        json!({"api_token_id": token.id}),
    );
    audit::record(&mut tx, event, origin, now).await?;
    tx.commit().await?;
    Ok(CreatedApiToken {
        id: token.id,
        name: new.name,
        token: token.token,
        created_at: now,
    })
}

/// `POST /companies/{company_id}/api-tokens`
#[utoipa::path(
    post, path = "/api/v2/companies/{company_id}/api-tokens", tag = "administration",
    security(("admin_token" = [])), request_body = NewApiTokenBody,
    params(("company_id" = String, Path, description = "Company id")),
    responses((status = 201, description = "Created; the only time `token` is shown", body = Data<CreatedApiToken>),
              (status = 404, description = "Company not found.", body = ErrorBody),
              Unauthenticated, Forbidden, BodyErrors)
)]
pub async fn create_token(
    State(state): State<AppState>,
    origin: Origin,
    auth: AdminAuth,
    Path(company_id): Path<String>,
    Body(body): Body<NewApiTokenBody>,
) -> Result<(StatusCode, Json<Data<CreatedApiToken>>)> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let new = NewApiToken::from_raw(&body)?;
    let actor = Actor::admin(auth.admin.id);
    let now = state.clock.now();
    let token = create(
        &state.db,
        &state.hasher,
        company_id,
        new,
        actor,
        &origin,
        now,
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
              (status = 404, description = "Company not found.", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn list_tokens(
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
    responses((status = 204, description = "Revoked from the next request on"),
              (status = 404, description = "Company not found. / API token not found.", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    origin: Origin,
    auth: AdminAuth,
    Path((company_id, token_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let token_id = Uuid::try_parse(&token_id).map_err(|_| Error::NotFound(TOKEN_NOT_FOUND))?;
    let now = state.clock.now();
    let mut tx = db::begin(&state.db).await?;
    let revoked = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = $3
         WHERE id = $1 AND company_id = $2 AND revoked_at IS NULL",
        token_id,
        company_id,
        now,
    )
    .execute(&mut *tx)
    .await?;
    if revoked.rows_affected() == 0 {
        return Err(Error::NotFound(TOKEN_NOT_FOUND));
    }
    let event = NewEvent::new(
        EventType::ApiTokenRevoked,
        Some(company_id),
        Actor::admin(auth.admin.id),
        json!({"api_token_id": token_id}),
    );
    audit::record(&mut tx, event, &origin, now).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
