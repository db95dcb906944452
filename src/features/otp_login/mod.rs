//! Tenant login by phone and SMS code (CONTRACT §5, the KISS "Tenant OTP Flow"): request a code,
//! verify it, choose among several accounts, log out. Both public routes are limited per phone
//! before they do anything (`input` says how their keys are read).

mod challenges;
pub mod input;
mod tokens;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::domain::phone::PhoneE164;
use crate::domain::{Error, Result};
use crate::http::AppState;
use crate::http::docs::{BodyErrors, Limited, Unauthenticated};
use crate::http::error::ErrorBody;
use crate::http::extract::Input;
use crate::infra::crypto::constant_time_eq;
use crate::services::auth::TenantAuth;
use challenges::Issued;
use input::{PhoneBody, PhoneLogin, VerifyOtp, VerifyOtpBody};

const NO_SUCH_TENANT: &str = "A tenant with the submitted phone number does not exist.";
const INVALID_OTP: &str = "The OTP code is invalid or has expired.";

/// `{"message"}` of a successful answer without data.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Message {
    #[schema(example = "OTP sent successfully.")]
    message: &'static str,
}

/// The answer to a verification: `Login successful.` with a token, or `Multiple accounts found.`
/// with `token: null` and the accounts to choose from (the code stays valid).
#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyAnswer {
    #[schema(example = "Login successful.")]
    message: &'static str,
    data: Verified,
}

/// `POST /auth/phone`: sends a new code to a phone that has at least one tenancy.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post, path = "/api/v2/auth/phone", tag = "tenant login",
    request_body = PhoneBody,
    responses((status = 200, description = "OTP sent", body = Message),
              (status = 502, description = "The SMS provider failed", body = ErrorBody),
              BodyErrors, Limited)
)]
pub async fn request_code(
    State(state): State<AppState>,
    Input(PhoneLogin { phone }): Input<PhoneLogin>,
) -> Result<Json<Message>> {
    if accounts_of(&mut *state.db.acquire().await?, &phone)
        .await?
        .is_empty()
    {
        return Err(Error::Unprocessable(NO_SUCH_TENANT));
    }
    let now = state.clock.now();
    let code = challenges::generate_code();
    let code_hash = challenges::code_hash(&state.hasher, &phone, &code);
    let config = &state.config;
    let issued = challenges::issue(
        &state.db,
        &phone,
        &code_hash,
        now,
        config.otp_ttl,
        config.otp_resend_cooldown,
    )
    .await?;
    if let Issued::CoolingDown { retry_after_secs } = issued {
        return Err(Error::TooManyRequests { retry_after_secs });
    }

    let minutes = config.otp_ttl.num_minutes().max(1);
    let body = format!("Your verification code is {code}. It expires in {minutes} minutes.");
    if let Err(err) = state.sms.send(&phone, &body).await {
        metrics::counter!("sms_provider_errors_total").increment(1);
        tracing::error!(error = %err, "SMS provider failed to send a one-time code");
        challenges::withdraw(&state.db, &phone, &code_hash).await?;
        return Err(Error::BadGateway(
            "The OTP could not be sent. Please try again.",
        ));
    }
    metrics::counter!("otp_sent_total").increment(1);
    Ok(Json(Message {
        message: "OTP sent successfully.",
    }))
}

/// One tenant account behind a phone, as the multi-account answer lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Account {
    tenant_id: String,
    name: String,
    location: String,
    company: String,
    #[serde(skip)]
    email: Option<String>,
    #[serde(skip)]
    person_id: String,
}

/// The accounts of the person behind the phone that still have a tenancy.
async fn accounts_of(conn: &mut PgConnection, phone: &PhoneE164) -> Result<Vec<Account>> {
    let accounts = sqlx::query_as!(
        Account,
        r#"SELECT t.id AS tenant_id, t.name, COALESCE(l.name, l.crm_location_id) AS "location!",
                  c.name AS company, t.email, p.id AS person_id
           FROM people p
           JOIN tenants t ON t.person_id = p.id
           JOIN locations l ON l.id = t.location_id
           JOIN companies c ON c.id = t.company_id
           WHERE p.phone_e164 = $1
             AND EXISTS (SELECT 1 FROM tenancies ty WHERE ty.tenant_id = t.id)
           ORDER BY c.name, 3, t.id"#,
        phone.as_str(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(accounts)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Verified {
    LoggedIn {
        #[schema(example = "1|abc123def456")]
        token: String,
        expires_at: DateTime<Utc>,
        tenant_id: String,
        user: User,
    },
    Choose {
        /// Always `null`.
        token: Option<String>,
        accounts: Vec<Account>,
    },
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct User {
    id: String,
    name: String,
    email: Option<String>,
    phone: String,
}

/// `POST /auth/verify-otp`: a token for the one account (or the chosen one), or the list of
/// accounts to choose from, in which case the code stays valid.
#[tracing::instrument(skip_all)]
#[utoipa::path(
    post, path = "/api/v2/auth/verify-otp", tag = "tenant login",
    request_body = VerifyOtpBody,
    responses((status = 200, description = "Logged in, or the accounts to choose from", body = VerifyAnswer),
              BodyErrors, Limited)
)]
pub async fn verify_code(
    State(state): State<AppState>,
    Input(request): Input<VerifyOtp>,
) -> Result<Json<VerifyAnswer>> {
    let now = state.clock.now();
    let phone = &request.phone;
    let mut tx = state.db.begin().await?;
    let challenge = challenges::lock(&mut tx, phone)
        .await?
        .filter(|challenge| challenge.is_usable(now))
        .ok_or_else(|| {
            metrics::counter!("otp_verifications_total", "result" => "no_usable_code").increment(1);
            Error::Unprocessable(INVALID_OTP)
        })?;

    let expected = challenges::code_hash(&state.hasher, phone, &request.otp);
    if !constant_time_eq(&expected, &challenge.code_hash) {
        metrics::counter!("otp_verifications_total", "result" => "wrong_code").increment(1);
        challenges::record_failure(&mut tx, phone).await?;
        tx.commit().await?;
        return Err(Error::Unprocessable(INVALID_OTP));
    }

    let mut accounts = accounts_of(&mut tx, phone).await?;
    // Answers that consume nothing end the transaction (and its lock on the challenge) first.
    let chosen = match (&request.tenant_id, accounts.len()) {
        (_, 0) => Err(Error::Unprocessable(NO_SUCH_TENANT)),
        (None, 1) => Ok(accounts.remove(0)),
        (None, _) => {
            metrics::counter!("otp_verifications_total", "result" => "multiple_accounts")
                .increment(1);
            tx.rollback().await?;
            return Ok(Json(VerifyAnswer {
                message: "Multiple accounts found.",
                data: Verified::Choose {
                    token: None,
                    accounts,
                },
            }));
        }
        (Some(chosen), _) => match accounts.iter().position(|a| &a.tenant_id == chosen) {
            Some(index) => Ok(accounts.swap_remove(index)),
            None => Err(Error::field(
                "tenant_id",
                "The selected tenant id is invalid.",
            )),
        },
    };
    let account = match chosen {
        Ok(account) => account,
        Err(err) => {
            tx.rollback().await?;
            return Err(err);
        }
    };

    challenges::consume(&mut tx, phone, now).await?;
    metrics::counter!("otp_verifications_total", "result" => "success").increment(1);
    let (token, expires_at) = tokens::issue(
        &mut tx,
        &state.hasher,
        state.config.tenant_token_ttl,
        &account.tenant_id,
        &account.person_id,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(VerifyAnswer {
        message: "Login successful.",
        data: Verified::LoggedIn {
            token,
            expires_at,
            tenant_id: account.tenant_id,
            user: User {
                id: account.person_id,
                name: account.name,
                email: account.email,
                phone: phone.to_string(),
            },
        },
    }))
}

/// `POST /auth/logout`: this tenant token stops working.
#[utoipa::path(
    post, path = "/api/v2/auth/logout", tag = "tenant login",
    security(("tenant_token" = [])),
    responses((status = 204, description = "The token stops working"), Unauthenticated)
)]
pub async fn logout(State(state): State<AppState>, auth: TenantAuth) -> Result<StatusCode> {
    tokens::revoke(&state.db, auth.token_id, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
