//! Administrators: super admins (all companies) and company admins (one company), their
//! argon2id passwords and their sign-in sessions.

pub mod sessions;

use axum::Router;
use axum::handler::Handler;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto;
use crate::http::{AppState, Error, Result};
use crate::validation::is_email;

/// An administrator as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Admin {
    pub id: Uuid,
    pub email: String,
    /// `null` for a super admin.
    pub company_id: Option<Uuid>,
}

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = from_fn_with_state(state.clone(), crate::rate_limit::admin_sign_in);
    Router::new()
        .route("/admin/sign-in", post(sessions::sign_in.layer(limited)))
        .route("/admin/sign-out", post(sessions::sign_out))
}

/// Passwords shorter than this are refused when an admin is created.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer passwords are refused so that hashing one cannot be made arbitrarily expensive.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Creates an admin (the command line's `admin create`). `company_id: None` makes a super admin.
pub async fn create(
    db: &PgPool,
    email: &str,
    password: String,
    company_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Admin> {
    let email = email.trim();
    if !is_email(email) {
        return Err(Error::BadRequest(format!(
            "{email:?} is not a valid e-mail address."
        )));
    }
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(Error::BadRequest(format!(
            "The password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long."
        )));
    }
    let password_hash = tokio::task::spawn_blocking(move || crypto::hash_password(&password))
        .await
        .map_err(anyhow::Error::from)??;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO admins (email, password_hash, company_id, created_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (lower(email)) DO NOTHING
           RETURNING id"#,
        email,
        password_hash,
        company_id,
        now,
    )
    .fetch_optional(db)
    .await?;
    let id = inserted.ok_or(Error::Conflict("An admin with this e-mail already exists."))?;
    Ok(Admin {
        id,
        email: email.to_owned(),
        company_id,
    })
}
