//! Admin sign-in and sign-out.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Admin, MAX_PASSWORD_CHARS};
use crate::domain::validation::{Fields, MAX_EMAIL_CHARS, Sent, Validate};
use crate::domain::{Error, Result, ValidationErrors};
use crate::http::docs::{BodyErrors, Limited, Unauthenticated};
use crate::http::error::ErrorBody;
use crate::http::extract::Input;
use crate::http::rate_limit::LimitedBody;
use crate::http::{AppState, Data, data};
use crate::infra::crypto;
use crate::infra::db;
use crate::services::audit::{self, Actor, EventType, NewEvent, Origin};
use crate::services::auth::{self, AdminAuth};
use crate::services::rate_limit::Scope;

/// The body of `POST /admin/sign-in`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct SignInBody {
    #[schema(value_type = String, required = true, example = "admin@example.com", min_length = 1, max_length = 254, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    email: Sent<String>,
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    password: Sent<String>,
}

pub struct SignIn {
    email: String,
    password: String,
}

impl Validate for SignIn {
    type Raw = SignInBody;

    fn validate(raw: &SignInBody, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(errors);
        let email = fields.required_text("email", &raw.email, MAX_EMAIL_CHARS);
        let password = fields.required_str("password", &raw.password);
        if let Some(password) = password {
            fields.check_length("password", password, 1, MAX_PASSWORD_CHARS);
        }
        Some(SignIn {
            email: email?,
            password: password?.to_owned(),
        })
    }
}

/// Sign-in is limited per e-mail (case-insensitive) and per client IP, together.
impl LimitedBody for SignIn {
    fn rate_limit_keys(raw: &SignInBody, client_ip: Option<IpAddr>) -> Vec<(Scope, String)> {
        let email = raw
            .email
            .value()
            .map(|email| email.trim().to_lowercase())
            // An over-long e-mail is refused by validation; it never becomes a key.
            .filter(|email| !email.is_empty() && email.chars().count() <= MAX_EMAIL_CHARS);
        [
            email.map(|email| (Scope::AdminSignInEmail, email)),
            client_ip.map(|ip| (Scope::AdminSignInIp, ip.to_string())),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    token: String,
    expires_at: DateTime<Utc>,
    admin: Admin,
}

/// `POST /admin/sign-in`: the same 401, after the same argon2 work, for an unknown e-mail, a wrong
/// password and a disabled admin.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post, path = "/api/v2/admin/sign-in", tag = "administration",
    request_body = SignInBody,
    responses((status = 200, description = "Signed in", body = Data<SignedIn>),
              (status = 401, description = "Invalid credentials", body = ErrorBody),
              BodyErrors, Limited)
)]
pub async fn sign_in(
    State(state): State<AppState>,
    origin: Origin,
    Input(body): Input<SignIn>,
) -> Result<Json<Data<SignedIn>>> {
    let row = sqlx::query!(
        r#"SELECT id, email, company_id, password_hash, disabled_at IS NOT NULL AS "disabled!"
           FROM admins WHERE lower(email) = lower($1)"#,
        body.email,
    )
    .fetch_optional(&state.db)
    .await?;

    let stored_hash = row.as_ref().map_or_else(
        || crypto::dummy_password_hash().to_owned(),
        |r| r.password_hash.clone(),
    );
    let password = body.password;
    let password_ok =
        crypto::password_work(move || crypto::verify_password(&password, &stored_hash)).await?;

    let now = state.clock.now();
    let admin = match row {
        Some(row) if password_ok && !row.disabled => Admin {
            id: row.id,
            email: row.email,
            company_id: row.company_id,
        },
        other => {
            // Named only when the e-mail is an admin's; an unknown e-mail leaves no trace of itself.
            let (subject, company_id) = match other {
                Some(row) => (json!({"admin_id": row.id}), row.company_id),
                None => (json!({}), None),
            };
            let failed = NewEvent::new(
                EventType::AdminSignInFailed,
                company_id,
                Actor::anonymous(),
                subject,
            );
            audit::record(&mut *state.db.acquire().await?, failed, &origin, now).await?;
            return Err(Error::InvalidCredentials);
        }
    };

    let new = auth::new_admin_token(&state.hasher);
    let expires_at = now + state.config.admin_token_ttl;
    let mut tx = db::begin(&state.db).await?;
    sqlx::query!(
        "INSERT INTO admin_sessions (id, admin_id, secret_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        new.id,
        admin.id,
        new.secret_hash,
        now,
        expires_at,
    )
    .execute(&mut *tx)
    .await?;
    let event = NewEvent::new(
        EventType::AdminSignedIn,
        admin.company_id,
        Actor::admin(admin.id),
        json!({"admin_id": admin.id}),
    );
    audit::record(&mut tx, event, &origin, now).await?;
    tx.commit().await?;

    Ok(data(SignedIn {
        token: new.token,
        expires_at,
        admin,
    }))
}

/// `POST /admin/sign-out`: the token is refused from the next request on.
#[utoipa::path(
    post, path = "/api/v2/admin/sign-out", tag = "administration",
    security(("admin_token" = [])),
    responses((status = 204, description = "Signed out; the token stops working"), Unauthenticated)
)]
pub async fn sign_out(
    State(state): State<AppState>,
    origin: Origin,
    auth: AdminAuth,
) -> Result<StatusCode> {
    let now = state.clock.now();
    let mut tx = db::begin(&state.db).await?;
    let ended = sqlx::query!(
        "UPDATE admin_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        auth.session_id,
        now,
    )
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() > 0 {
        let admin = &auth.admin;
        let event = NewEvent::new(
            EventType::AdminSignedOut,
            admin.company_id,
            Actor::admin(admin.id),
            json!({"admin_id": admin.id}),
        );
        audit::record(&mut tx, event, &origin, now).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
