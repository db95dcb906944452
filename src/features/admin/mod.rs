//! Administrators: super admins (all companies) and company admins (one company), their argon2id
//! passwords and their sign-in sessions.

pub mod sessions;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::validation::is_email;
use crate::domain::{Error, Result};
use crate::infra::crypto;
pub use crate::services::auth::Admin;

/// Passwords shorter than this are refused when an admin is created.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer passwords are refused so that hashing one cannot be made arbitrarily expensive.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// An admin to create. `company_id: None` makes a super admin.
pub struct NewAdmin {
    pub email: String,
    pub password: String,
    pub company_id: Option<Uuid>,
}

/// Creates an admin (the command line's `admin create`).
pub async fn create(db: &PgPool, new: NewAdmin, now: DateTime<Utc>) -> Result<Admin> {
    let email = new.email.trim().to_owned();
    if !is_email(&email) {
        return Err(Error::field(
            "email",
            format!("{email:?} is not a valid e-mail address."),
        ));
    }
    let length = new.password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(Error::field(
            "password",
            format!(
                "The password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long."
            ),
        ));
    }
    let password = new.password;
    let password_hash = crypto::password_work(move || crypto::hash_password(&password)).await??;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO admins (email, password_hash, company_id, created_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (lower(email)) DO NOTHING
           RETURNING id"#,
        email,
        password_hash,
        new.company_id,
        now,
    )
    .fetch_optional(db)
    .await?;
    let id = inserted.ok_or(Error::Conflict("An admin with this e-mail already exists."))?;
    Ok(Admin {
        id,
        email,
        company_id: new.company_id,
    })
}
