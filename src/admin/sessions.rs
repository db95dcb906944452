//! Admin sign-in, sign-out and admin-token authentication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Admin, MAX_PASSWORD_CHARS};
use crate::crypto::{self, random_secret, split_token};
use crate::http::auth::AdminAuth;
use crate::http::error::ValidationErrors;
use crate::http::extract::{FromJsonBody, Valid};
use crate::http::openapi::{ErrorBody, ValidationErrorBody};
use crate::http::{AppState, Data, Error, Result, data};
use crate::validation::Fields;

/// Admin tokens read `kadm_<session id>.<secret>`.
const TOKEN_PREFIX: &str = "kadm_";

pub struct SignIn {
    email: String,
    password: String,
}

impl FromJsonBody for SignIn {
    fn from_json(body: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(body, errors);
        let email = fields.required_text("email", 254);
        let password = fields.required_str("password");
        if let Some(password) = password {
            fields.check_length("password", password, 1, MAX_PASSWORD_CHARS);
        }
        Some(SignIn {
            email: email?,
            password: password?.to_owned(),
        })
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
    request_body = crate::http::openapi::SignInBody,
    responses((status = 200, description = "Signed in", body = Data<SignedIn>),
              (status = 401, description = "Invalid credentials", body = ErrorBody), (status = 422, description = "Validation error", body = ValidationErrorBody), (status = 400, description = "Malformed JSON or header", body = ErrorBody), (status = 415, description = "Body not sent as JSON", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))), (status = 503, description = "Shared rate limiter unreachable", body = ErrorBody))
)]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    Valid(body): Valid<SignIn>,
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
        tokio::task::spawn_blocking(move || crypto::verify_password(&password, &stored_hash))
            .await
            .map_err(anyhow::Error::from)?;

    let admin = match row {
        Some(row) if password_ok && !row.disabled => Admin {
            id: row.id,
            email: row.email,
            company_id: row.company_id,
        },
        _ => return Err(Error::InvalidCredentials),
    };

    let now = state.clock.now();
    let session_id = Uuid::new_v4();
    let secret = random_secret();
    let expires_at = now + state.config.admin_token_ttl;
    sqlx::query!(
        "INSERT INTO admin_sessions (id, admin_id, secret_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        session_id,
        admin.id,
        secret_hash(&state, session_id, &secret),
        now,
        expires_at,
    )
    .execute(&state.db)
    .await?;

    let signed_in = SignedIn {
        token: format!("{TOKEN_PREFIX}{}.{secret}", session_id.simple()),
        expires_at,
        admin,
    };
    Ok(data(signed_in))
}

/// `POST /admin/sign-out`: the token is refused from the next request on.
#[utoipa::path(
    post, path = "/api/v2/admin/sign-out", tag = "administration",
    security(("admin_token" = [])),
    responses((status = 204, description = "Signed out; the token stops working"), (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody))
)]
pub(crate) async fn sign_out(State(state): State<AppState>, auth: AdminAuth) -> Result<StatusCode> {
    sqlx::query!(
        "UPDATE admin_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        auth.session_id,
        state.clock.now(),
    )
    .execute(&state.db)
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn secret_hash(state: &AppState, session_id: Uuid, secret: &str) -> Vec<u8> {
    state
        .hasher
        .hash(&[b"admin-token", session_id.as_bytes(), secret.as_bytes()])
}

/// The admin behind an admin token, if the token is well-formed, current and matches.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<AdminAuth>> {
    let Some((id, secret)) = split_token(token, TOKEN_PREFIX) else {
        return Ok(None);
    };
    let Ok(session_id) = Uuid::try_parse(id) else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "SELECT s.secret_hash, s.expires_at, a.id AS admin_id, a.email, a.company_id
         FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
         WHERE s.id = $1 AND s.revoked_at IS NULL AND a.disabled_at IS NULL",
        session_id,
    )
    .fetch_optional(&state.db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let matches =
        crypto::constant_time_eq(&secret_hash(state, session_id, secret), &row.secret_hash);
    if !matches || row.expires_at <= state.clock.now() {
        return Ok(None);
    }
    Ok(Some(AdminAuth {
        session_id,
        admin: Admin {
            id: row.admin_id,
            email: row.email,
            company_id: row.company_id,
        },
    }))
}
