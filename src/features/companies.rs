//! Companies: the tenants of kiss-auth itself. Super admins create them; every other record
//! belongs to one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::validation::{Fields, Sent, Validate};
use crate::domain::{Error, Result, ValidationErrors};
use crate::http::docs::{BodyErrors, Forbidden, Unauthenticated};
use crate::http::extract::Body;
use crate::http::{AppState, Data, data};
use crate::infra::db;
use crate::services::audit::{self, Actor, EventType, NewEvent, Origin};
use crate::services::auth::AdminAuth;

pub const MAX_NAME_CHARS: usize = 191;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /companies`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewCompanyBody {
    #[schema(value_type = String, required = true, example = "ABC Storage Co.", min_length = 1, max_length = 191, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    pub name: Sent<String>,
}

/// A company to create (from HTTP or the command line).
pub struct NewCompany {
    pub name: String,
}

impl Validate for NewCompany {
    type Raw = NewCompanyBody;

    fn validate(raw: &NewCompanyBody, errors: &mut ValidationErrors) -> Option<Self> {
        let name = Fields::new(errors).required_text("name", &raw.name, MAX_NAME_CHARS)?;
        Some(NewCompany { name })
    }
}

impl NewCompany {
    /// The command line's `--name`, checked by the same rules as the HTTP body.
    pub fn named(name: String) -> Result<Self> {
        Self::from_raw(&NewCompanyBody {
            name: Sent::Value(name),
        })
    }
}

/// Creates a company, recording `company.created` with it.
pub async fn create(
    db: &PgPool,
    new: NewCompany,
    actor: Actor,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<Company> {
    let mut tx = db::begin(db).await?;
    let company = sqlx::query_as!(
        Company,
        "INSERT INTO companies (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
        new.name,
        now,
    )
    .fetch_one(&mut *tx)
    .await?;
    let event = NewEvent::new(
        EventType::CompanyCreated,
        Some(company.id),
        actor,
        json!({"company_id": company.id}),
    );
    audit::record(&mut tx, event, origin, now).await?;
    tx.commit().await?;
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
    security(("admin_token" = [])), request_body = NewCompanyBody,
    responses((status = 201, description = "Created", body = Data<Company>), Unauthenticated, Forbidden, BodyErrors)
)]
pub async fn create_company(
    State(state): State<AppState>,
    origin: Origin,
    auth: AdminAuth,
    Body(body): Body<NewCompanyBody>,
) -> Result<(StatusCode, Json<Data<Company>>)> {
    auth.require_super_admin()?;
    let new = NewCompany::from_raw(&body)?;
    let actor = Actor::admin(auth.admin.id);
    let company = create(&state.db, new, actor, &origin, state.clock.now()).await?;
    Ok((StatusCode::CREATED, data(company)))
}

/// `GET /companies`: all of them for a super admin, its own for a company admin.
#[utoipa::path(
    get, path = "/api/v2/companies", tag = "administration",
    security(("admin_token" = [])),
    responses((status = 200, description = "All companies (a company admin: its own)", body = Data<Vec<Company>>), Unauthenticated)
)]
pub async fn list_companies(
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
