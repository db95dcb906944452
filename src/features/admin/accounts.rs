//! Managing administrators (docs/api.md, "The dashboard"): who am I, list, create and disable admins, change
//! one's password. Company admins act only within their company (`403` otherwise); only a super
//! admin may create a super admin.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Admin, MAX_PASSWORD_CHARS, NewAdmin, is_acceptable_password, password_length_error};
use crate::domain::validation::{Fields, MAX_EMAIL_CHARS, Sent, Validate};
use crate::domain::{Error, Result, ValidationErrors};
use crate::http::docs::{BodyErrors, Forbidden, Limited, Unauthenticated};
use crate::http::error::ErrorBody;
use crate::http::extract::Body;
use crate::http::{AppState, Data, data};
use crate::infra::crypto;
use crate::infra::db;
use crate::services::audit::{self, Actor, EventType, NewEvent, Origin};
use crate::services::auth::AdminAuth;
use crate::services::rate_limit::Scope;

const ADMIN_NOT_FOUND: &str = "Admin not found.";

/// `GET /admin/me`: the admin behind the token.
#[utoipa::path(
    get, path = "/api/v2/admin/me", tag = "administration",
    security(("admin_token" = [])),
    responses((status = 200, description = "The signed-in admin", body = Data<Admin>), Unauthenticated)
)]
pub async fn me(auth: AdminAuth) -> Json<Data<Admin>> {
    data(auth.admin)
}

/// An admin as the list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminSummary {
    pub id: Uuid,
    pub email: String,
    /// `null` for a super admin.
    pub company_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// When the admin was disabled; `null` while active.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// `GET /admins`: every admin for a super admin; a company admin sees its company's.
#[utoipa::path(
    get, path = "/api/v2/admins", tag = "administration",
    security(("admin_token" = [])),
    responses((status = 200, description = "Admins, oldest first", body = Data<Vec<AdminSummary>>), Unauthenticated)
)]
pub async fn list_admins(
    State(state): State<AppState>,
    auth: AdminAuth,
) -> Result<Json<Data<Vec<AdminSummary>>>> {
    let admins = sqlx::query_as!(
        AdminSummary,
        "SELECT id, email, company_id, created_at, disabled_at FROM admins
         WHERE $1::uuid IS NULL OR company_id = $1
         ORDER BY created_at, id",
        auth.admin.company_id,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(data(admins))
}

/// The body of `POST /admins`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewAdminBody {
    #[schema(value_type = String, required = true, example = "ops@example.com", min_length = 3, max_length = 254)]
    #[serde(default)]
    email: Sent<String>,
    #[schema(value_type = String, required = true, min_length = 12, max_length = 1024, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    password: Sent<String>,
    /// The company the admin manages; left out (or `null`) for a super admin, which only a
    /// super admin may create.
    #[schema(value_type = Option<String>, format = Uuid)]
    #[serde(default)]
    company_id: Sent<String>,
}

impl Validate for NewAdmin {
    type Raw = NewAdminBody;

    fn validate(raw: &NewAdminBody, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(errors);
        let email = fields.required_text("email", &raw.email, MAX_EMAIL_CHARS);
        let password = fields
            .required_str("password", &raw.password)
            .and_then(|p| {
                let ok = is_acceptable_password(p);
                if !ok {
                    fields.error("password", password_length_error());
                }
                ok.then(|| p.to_owned())
            });
        let company_id = match fields.optional_str("company_id", &raw.company_id) {
            Some(Some(id)) => match Uuid::try_parse(id.trim()) {
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    fields.error("company_id", "The selected company id is invalid.");
                    None
                }
            },
            _ => Some(None),
        };
        Some(NewAdmin {
            email: email?,
            password: password?,
            company_id: company_id?,
        })
    }
}

/// `POST /admins`: a company admin may add admins to its own company only.
#[utoipa::path(
    post, path = "/api/v2/admins", tag = "administration",
    security(("admin_token" = [])), request_body = NewAdminBody,
    responses((status = 201, description = "Created", body = Data<Admin>),
              Unauthenticated, Forbidden, BodyErrors)
)]
pub async fn create_admin(
    State(state): State<AppState>,
    origin: Origin,
    auth: AdminAuth,
    Body(body): Body<NewAdminBody>,
) -> Result<(StatusCode, Json<Data<Admin>>)> {
    let new = NewAdmin::from_raw(&body)?;
    if let Some(own) = auth.admin.company_id
        && new.company_id != Some(own)
    {
        return Err(Error::Forbidden);
    }
    let actor = Actor::admin(auth.admin.id);
    let admin = super::create(&state.db, new, actor, &origin, state.clock.now()).await?;
    Ok((StatusCode::CREATED, data(admin)))
}

/// `POST /admins/{admin_id}/disable`: its sessions stop working at once. Disabling an admin that
/// is already disabled changes nothing (`204`).
#[utoipa::path(
    post, path = "/api/v2/admins/{admin_id}/disable", tag = "administration",
    security(("admin_token" = [])),
    params(("admin_id" = String, Path, description = "Admin id")),
    responses((status = 204, description = "Disabled; its sessions stop working"),
              (status = 404, description = "Admin not found.", body = ErrorBody),
              (status = 422, description = "An admin cannot disable itself.", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn disable_admin(
    State(state): State<AppState>,
    origin: Origin,
    auth: AdminAuth,
    Path(admin_id): Path<String>,
) -> Result<StatusCode> {
    let admin_id = Uuid::try_parse(&admin_id).map_err(|_| Error::NotFound(ADMIN_NOT_FOUND))?;
    if admin_id == auth.admin.id {
        return Err(Error::Unprocessable("An admin cannot disable itself."));
    }
    let now = state.clock.now();
    let mut tx = db::begin(&state.db).await?;
    let target = sqlx::query!(
        r#"SELECT company_id, disabled_at IS NOT NULL AS "disabled!" FROM admins
           WHERE id = $1 FOR UPDATE"#,
        admin_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(target) = target else {
        return Err(match auth.admin.company_id {
            // A company admin learns nothing about admins outside its company.
            Some(_) => Error::Forbidden,
            None => Error::NotFound(ADMIN_NOT_FOUND),
        });
    };
    if auth.admin.company_id.is_some() && target.company_id != auth.admin.company_id {
        return Err(Error::Forbidden);
    }
    if !target.disabled {
        sqlx::query!(
            "WITH disabled AS (UPDATE admins SET disabled_at = $2 WHERE id = $1)
             UPDATE admin_sessions SET revoked_at = $2 WHERE admin_id = $1 AND revoked_at IS NULL",
            admin_id,
            now,
        )
        .execute(&mut *tx)
        .await?;
        let event = NewEvent::new(
            EventType::AdminDisabled,
            target.company_id,
            Actor::admin(auth.admin.id),
            json!({"admin_id": admin_id}),
        );
        audit::record(&mut tx, event, &origin, now).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /admin/password`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PasswordChangeBody {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    current_password: Sent<String>,
    #[schema(value_type = String, required = true, min_length = 12, max_length = 1024, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    new_password: Sent<String>,
}

pub struct PasswordChange {
    current: String,
    new: String,
}

impl Validate for PasswordChange {
    type Raw = PasswordChangeBody;

    fn validate(raw: &PasswordChangeBody, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(errors);
        let current = fields
            .required_str("current_password", &raw.current_password)
            .filter(|p| fields.check_length("current_password", p, 1, MAX_PASSWORD_CHARS));
        let new = fields
            .required_str("new_password", &raw.new_password)
            .and_then(|p| {
                let ok = is_acceptable_password(p);
                if !ok {
                    fields.error("new_password", password_length_error());
                }
                ok.then(|| p.to_owned())
            });
        Some(PasswordChange {
            current: current?.to_owned(),
            new: new?,
        })
    }
}

/// `POST /admin/password`: every other session of the admin stops working; this one goes on.
/// Checks of the current password count against the admin's sign-in limit (its e-mail), so a
/// stolen session cannot be used to guess it.
#[utoipa::path(
    post, path = "/api/v2/admin/password", tag = "administration",
    security(("admin_token" = [])), request_body = PasswordChangeBody,
    responses((status = 204, description = "Changed; the admin's other sessions stop working"),
              Unauthenticated, BodyErrors, Limited)
)]
pub async fn change_password(
    State(state): State<AppState>,
    origin: Origin,
    auth: AdminAuth,
    Body(body): Body<PasswordChangeBody>,
) -> Result<StatusCode> {
    let change = PasswordChange::from_raw(&body)?;
    let key = auth.admin.email.to_lowercase();
    let decision = state
        .limiter
        .acquire(&[(Scope::AdminSignInEmail, key)])
        .await?;
    if !decision.allowed {
        return Err(Error::TooManyRequests {
            retry_after_secs: decision.retry_after_secs,
        });
    }
    let stored = sqlx::query_scalar!(
        "SELECT password_hash FROM admins WHERE id = $1",
        auth.admin.id
    )
    .fetch_one(&state.db)
    .await?;
    let (current, new) = (change.current, change.new);
    let (matches, new_hash) = crypto::password_work(move || {
        let matches = crypto::verify_password(&current, &stored);
        let new_hash = matches.then(|| crypto::hash_password(&new)).transpose();
        (matches, new_hash)
    })
    .await?;
    if !matches {
        return Err(Error::field(
            "current_password",
            "The current password is incorrect.",
        ));
    }
    let new_hash = new_hash?.ok_or_else(|| anyhow::anyhow!("no hash for a matching password"))?;
    let now = state.clock.now();
    let mut tx = db::begin(&state.db).await?;
    sqlx::query!(
        "WITH changed AS (UPDATE admins SET password_hash = $2 WHERE id = $1)
         UPDATE admin_sessions SET revoked_at = $4
         WHERE admin_id = $1 AND id <> $3 AND revoked_at IS NULL",
        auth.admin.id,
        new_hash,
        auth.session_id,
        now,
    )
    .execute(&mut *tx)
    .await?;
    let event = NewEvent::new(
        EventType::AdminPasswordChanged,
        auth.admin.company_id,
        Actor::admin(auth.admin.id),
        json!({"admin_id": auth.admin.id}),
    );
    audit::record(&mut tx, event, &origin, now).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
