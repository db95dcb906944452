//! Administrators: super admins (all companies) and company admins (one company), their argon2id
//! passwords, their sign-in sessions, and their management (docs/api.md, "The dashboard").

pub mod accounts;
pub mod sessions;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::validation::is_email;
use crate::domain::{Error, Result};
use crate::infra::crypto;
use crate::infra::db;
use crate::services::audit::{self, Actor, EventType, NewEvent, Origin};
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

/// The message of a password outside `MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS`.
fn password_length_error() -> String {
    format!("The password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long.")
}

fn is_acceptable_password(password: &str) -> bool {
    (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password.chars().count())
}

/// Creates an admin (`POST /admins`, the command line's `admin create`), recording
/// `admin.created` with it.
pub async fn create(
    db: &PgPool,
    new: NewAdmin,
    actor: Actor,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<Admin> {
    let email = new.email.trim().to_owned();
    if !is_email(&email) {
        return Err(Error::field(
            "email",
            format!("{email:?} is not a valid e-mail address."),
        ));
    }
    if !is_acceptable_password(&new.password) {
        return Err(Error::field("password", password_length_error()));
    }
    let password = new.password;
    let password_hash = crypto::password_work(move || crypto::hash_password(&password)).await??;
    let mut tx = db::begin(db).await?;
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO admins (email, password_hash, company_id, created_at)
           SELECT $1, $2, $3, $4
           WHERE $3::uuid IS NULL OR EXISTS (SELECT 1 FROM companies WHERE id = $3)
           ON CONFLICT (lower(email)) DO NOTHING
           RETURNING id"#,
        email,
        password_hash,
        new.company_id,
        now,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = inserted else {
        let company_missing =
            match new.company_id {
                Some(company_id) => sqlx::query_scalar!(
                    r#"SELECT NOT EXISTS (SELECT 1 FROM companies WHERE id = $1) AS "missing!""#,
                    company_id
                )
                .fetch_one(&mut *tx)
                .await?,
                None => false,
            };
        return Err(if company_missing {
            Error::field("company_id", "The selected company id is invalid.")
        } else {
            Error::field("email", "An admin with this e-mail already exists.")
        });
    };
    let event = NewEvent::new(
        EventType::AdminCreated,
        new.company_id,
        actor,
        json!({"admin_id": id}),
    );
    audit::record(&mut tx, event, origin, now).await?;
    tx.commit().await?;
    Ok(Admin {
        id,
        email,
        company_id: new.company_id,
    })
}
