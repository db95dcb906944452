//! Companies: the tenants of kiss-auth itself. Super admins create them; every other record
//! belongs to one.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::http::auth::AdminAuth;
use crate::http::error::ValidationErrors;
use crate::http::extract::{FromJsonBody, JsonObject, parse};
use crate::http::openapi::{ErrorBody, ValidationErrorBody};
use crate::http::{AppState, Data, Error, Result, data};
use crate::validation::Fields;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/companies", get(list_companies).post(create_company))
}

/// The body of `POST /companies` (and of `company create` on the command line).
pub struct NewCompany {
    pub name: String,
}

impl FromJsonBody for NewCompany {
    fn from_json(body: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<Self> {
        let name = Fields::new(body, errors).required_text("name", 191)?;
        Some(NewCompany { name })
    }
}

pub async fn create(db: &PgPool, new: NewCompany, now: DateTime<Utc>) -> Result<Company> {
    let company = sqlx::query_as!(
        Company,
        "INSERT INTO companies (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
        new.name,
        now,
    )
    .fetch_one(db)
    .await?;
    Ok(company)
}

pub async fn find(db: &PgPool, id: Uuid) -> Result<Option<Company>> {
    let company = sqlx::query_as!(
        Company,
        "SELECT id, name, created_at FROM companies WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(company)
}

/// The company named in a path, if this admin may manage it: a company admin gets 403 for any
/// company but its own (existing or not, so nothing leaks); a super admin gets 404 for none.
pub async fn authorize(db: &PgPool, auth: &AdminAuth, raw_id: &str) -> Result<Uuid> {
    let id = Uuid::try_parse(raw_id).ok();
    match auth.admin.company_id {
        Some(own) if Some(own) == id => Ok(own),
        Some(_) => Err(Error::Forbidden),
        None => {
            let id = id.ok_or(Error::NotFound("Company not found."))?;
            find(db, id)
                .await?
                .ok_or(Error::NotFound("Company not found."))?;
            Ok(id)
        }
    }
}

/// `POST /companies` (super admins only).
#[utoipa::path(
    post, path = "/api/v2/companies", tag = "administration",
    security(("admin_token" = [])), request_body = crate::http::openapi::NameBody,
    responses((status = 201, description = "Created", body = Data<Company>), (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 403, description = "Not this admin's company, or not a super admin", body = ErrorBody), (status = 422, description = "Validation error", body = ValidationErrorBody), (status = 400, description = "Malformed JSON or header", body = ErrorBody), (status = 415, description = "Body not sent as JSON", body = ErrorBody))
)]
pub(crate) async fn create_company(
    State(state): State<AppState>,
    auth: AdminAuth,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Data<Company>>)> {
    auth.require_super_admin()?;
    let company = create(&state.db, parse(&body)?, state.clock.now()).await?;
    Ok((StatusCode::CREATED, data(company)))
}

/// `GET /companies`: all of them for a super admin, its own for a company admin.
#[utoipa::path(
    get, path = "/api/v2/companies", tag = "administration",
    security(("admin_token" = [])),
    responses((status = 200, description = "All companies (a company admin: its own)", body = Data<Vec<Company>>), (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody))
)]
pub(crate) async fn list_companies(
    State(state): State<AppState>,
    auth: AdminAuth,
) -> Result<Json<Data<Vec<Company>>>> {
    let companies = sqlx::query_as!(
        Company,
        "SELECT id, name, created_at FROM companies
         WHERE $1::uuid IS NULL OR id = $1
         ORDER BY created_at, id",
        auth.admin.company_id,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(data(companies))
}
