//! Tenant login by phone and SMS code (docs/api.md, "Tenant login"; the KISS "Tenant OTP Flow"): request a code,
//! verify it, choose among several accounts, log out. Both public routes are limited per client
//! IP and per phone before they do anything (`input` says how their keys are read); the abuse
//! controls of §11 (countries, the SMS budget, the daily cap of wrong codes, test codes, the
//! anti-enumeration mode) are applied here.

mod challenges;
pub mod input;
mod message;
mod tokens;

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::phone::PhoneE164;
use crate::domain::{Error, Result};
use crate::http::AppState;
use crate::http::docs::{BodyErrors, Limited, Unauthenticated};
use crate::http::error::ErrorBody;
use crate::http::extract::Input;
use crate::http::rate_limit::Admission;
use crate::infra::crypto::constant_time_eq;
use crate::infra::db;
use crate::services::audit::{self, Actor, EventType, NewEvent, Origin};
use crate::services::auth::TenantAuth;
use crate::services::rate_limit::{Reservation, Scope, Ticket};
use challenges::Issued;
use input::{PhoneBody, PhoneLogin, VerifyOtp, VerifyOtpBody};

const NO_SUCH_TENANT: &str = "A tenant with the submitted phone number does not exist.";
const INVALID_OTP: &str = "The OTP code is invalid or has expired.";
const COUNTRY_NOT_ENABLED: &str = "SMS to this country is not enabled.";
const OTP_SENT: &str = "OTP sent successfully.";
/// The one key of the service-wide SMS budget.
const BUDGET_KEY: &str = "service";

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
    responses((status = 200, description = "OTP sent (with `KISS_OTP_HIDE_UNKNOWN_PHONES`, also for a phone without accounts, to which nothing is sent)", body = Message),
              (status = 502, description = "The SMS provider failed", body = ErrorBody),
              (status = 503, description = "The daily SMS budget (`KISS_SMS_DAILY_BUDGET`) is spent; `Retry-After` says when a slot frees", body = ErrorBody,
               headers(("Retry-After" = u64, description = "Seconds until the budget allows another SMS"))),
              BodyErrors, Limited)
)]
pub async fn request_code(
    State(state): State<AppState>,
    origin: Origin,
    Input(PhoneLogin { phone }): Input<PhoneLogin>,
) -> Result<Json<Message>> {
    let started = Instant::now();
    let config = &state.config;
    let allowed = &config.sms_allowed_countries;
    if !allowed.is_empty()
        && !phone
            .region()
            .is_some_and(|region| allowed.contains(&region))
    {
        metrics::counter!("sms_refused_total", "reason" => "country").increment(1);
        return Err(Error::field("phone_number", COUNTRY_NOT_ENABLED));
    }
    let accounts = accounts_of(&mut *state.db.acquire().await?, &phone).await?;
    let known = !accounts.is_empty();
    if !known && !config.otp_hide_unknown_phones {
        return Err(Error::Unprocessable(NO_SUCH_TENANT));
    }

    // A phone without accounts (in the anti-enumeration mode) gets a challenge too, for a code
    // nobody knows: its cooldown and its verify answers are then those of a known phone.
    let now = state.clock.now();
    let test_code = config
        .test_otps
        .code_for(phone.as_str(), now)
        .filter(|_| known);
    let code = test_code.map_or_else(challenges::generate_code, str::to_owned);
    let mut expires_at = now + config.otp_ttl;
    if let (Some(_), Some(until)) = (test_code, config.test_otps.until) {
        expires_at = expires_at.min(until);
    }
    let code_hash = challenges::code_hash(&state.hasher, &phone, &code);
    let issued = challenges::issue(
        &state.db,
        &phone,
        &code_hash,
        now,
        expires_at,
        config.otp_resend_cooldown,
    )
    .await?;
    if let Issued::CoolingDown { retry_after_secs } = issued {
        metrics::counter!("sms_refused_total", "reason" => "limit").increment(1);
        return Err(Error::TooManyRequests { retry_after_secs });
    }
    if test_code.is_some() {
        metrics::counter!("otp_test_codes_issued_total").increment(1);
        record_otp_events(&state, EventType::OtpSent, &phone, &accounts, &origin).await?;
        return Ok(sent());
    }

    let budget = match take_from_budget(&state).await {
        Ok(budget) => budget,
        Err(err) => {
            challenges::withdraw(&state.db, &phone, &code_hash).await?;
            return Err(err);
        }
    };
    if !known {
        give_back_to_budget(&state, budget).await;
        state.sms_latency.imitate(started).await;
        return Ok(sent());
    }

    let body = message::sms_text(
        config.sms_app_name.as_deref(),
        config.sms_autofill_domain.as_deref(),
        &code,
        config.otp_ttl,
    );
    if let Err(err) = state.sms.send(&phone, &body, now).await {
        metrics::counter!("sms_provider_errors_total").increment(1);
        tracing::error!(error = %err, "SMS provider failed to send a one-time code");
        give_back_to_budget(&state, budget).await;
        challenges::withdraw(&state.db, &phone, &code_hash).await?;
        return Err(Error::BadGateway(
            "The OTP could not be sent. Please try again.",
        ));
    }
    // After the send: the event must not claim a code went out that did not.
    record_otp_events(&state, EventType::OtpSent, &phone, &accounts, &origin).await?;
    state.sms_latency.record(started.elapsed());
    let country = phone.region().unwrap_or_else(|| "unknown".to_owned());
    metrics::counter!("sms_sent_total", "provider" => state.sms.provider_name(), "country" => country)
        .increment(1);
    metrics::counter!("otp_sent_total").increment(1);
    Ok(sent())
}

/// Events about a phone's codes, one per company the phone has accounts in (each company sees
/// its own tenants' logins), or one without a company for a phone without accounts. The phone
/// appears only as its last four digits.
fn otp_events(kind: EventType, phone: &PhoneE164, accounts: &[Account]) -> Vec<NewEvent> {
    let mut companies: Vec<(Uuid, Vec<&str>)> = Vec::new();
    for account in accounts {
        match companies
            .iter_mut()
            .find(|(id, _)| *id == account.company_id)
        {
            Some((_, tenants)) => tenants.push(&account.tenant_id),
            None => companies.push((account.company_id, vec![&account.tenant_id])),
        }
    }
    if companies.is_empty() {
        let subject = json!({"phone_last4": phone.last_four()});
        return vec![NewEvent::new(kind, None, Actor::anonymous(), subject)];
    }
    companies
        .into_iter()
        .map(|(company_id, tenant_ids)| {
            let subject = json!({"phone_last4": phone.last_four(), "tenant_ids": tenant_ids});
            NewEvent::new(kind, Some(company_id), Actor::anonymous(), subject)
        })
        .collect()
}

async fn record_otp_events(
    state: &AppState,
    kind: EventType,
    phone: &PhoneE164,
    accounts: &[Account],
    origin: &Origin,
) -> Result<()> {
    let mut tx = db::begin(&state.db).await?;
    let events = otp_events(kind, phone, accounts);
    audit::record_all(&mut tx, events, origin, state.clock.now()).await?;
    tx.commit().await?;
    Ok(())
}

fn sent() -> Json<Message> {
    Json(Message { message: OTP_SENT })
}

/// Takes one SMS from the service's daily budget, if there is one; a spent budget is a 503 with
/// the seconds until a slot frees.
async fn take_from_budget(state: &AppState) -> Result<Option<Ticket>> {
    let Some(budget) = state.config.rate_limits.sms_daily_budget else {
        return Ok(None);
    };
    let decision = state
        .limiter
        .acquire(&[(Scope::SmsBudget, BUDGET_KEY.to_owned())])
        .await?;
    if !decision.allowed {
        metrics::counter!("sms_refused_total", "reason" => "budget").increment(1);
        tracing::error!(
            budget = %budget,
            retry_after_secs = decision.retry_after_secs,
            "the daily SMS budget (KISS_SMS_DAILY_BUDGET) is spent: no code is sent until it frees"
        );
        return Err(Error::QuotaExhausted {
            retry_after_secs: decision.retry_after_secs,
        });
    }
    Ok(Some(decision.ticket))
}

/// Returns an SMS that was not sent after all.
async fn give_back_to_budget(state: &AppState, taken: Option<Ticket>) {
    if let Some(ticket) = taken {
        state
            .limiter
            .release(Scope::SmsBudget, BUDGET_KEY, &ticket)
            .await;
    }
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
    #[serde(skip)]
    company_id: Uuid,
}

/// The accounts of the person behind the phone that still have a tenancy.
async fn accounts_of(conn: &mut PgConnection, phone: &PhoneE164) -> Result<Vec<Account>> {
    let accounts = sqlx::query_as!(
        Account,
        r#"SELECT t.id AS tenant_id, t.name, COALESCE(l.name, l.crm_location_id) AS "location!",
                  c.name AS company, t.email, p.id AS person_id, c.id AS company_id
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

/// How a verification ended, as far as the daily cap of wrong codes cares.
enum Failure {
    /// A wrong code for a usable challenge: it counts against the day.
    WrongCode,
    Other(Error),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Other(err)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Failure::Other(err.into())
    }
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
    origin: Origin,
    admission: Option<Extension<Admission>>,
    Input(request): Input<VerifyOtp>,
) -> Result<Json<VerifyAnswer>> {
    // The request reserved one of the phone's wrong codes of the day; only a wrong code keeps it.
    let reserved = admission.map(|Extension(Admission(ticket))| {
        Reservation::new(
            state.limiter.clone(),
            Scope::OtpFailedDaily,
            request.phone.to_string(),
            ticket,
        )
    });
    let answer = verify(&state, &request, &origin).await;
    if let Some(reserved) = reserved {
        if matches!(answer, Err(Failure::WrongCode)) {
            reserved.keep();
        } else {
            reserved.release().await;
        }
    }
    answer.map_err(|failure| match failure {
        Failure::WrongCode => Error::Unprocessable(INVALID_OTP),
        Failure::Other(err) => err,
    })
}

async fn verify(
    state: &AppState,
    request: &VerifyOtp,
    origin: &Origin,
) -> std::result::Result<Json<VerifyAnswer>, Failure> {
    let now = state.clock.now();
    let phone = &request.phone;
    let mut tx = db::begin(&state.db).await?;
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
        let accounts = accounts_of(&mut tx, phone).await?;
        let mut events = otp_events(EventType::OtpFailed, phone, &accounts);
        if challenge.failed_attempts + 1 >= challenges::MAX_FAILED_ATTEMPTS {
            events.extend(otp_events(EventType::OtpLocked, phone, &accounts));
        }
        audit::record_all(&mut tx, events, origin, now).await?;
        tx.commit().await?;
        return Err(Failure::WrongCode);
    }

    let mut accounts = accounts_of(&mut tx, phone).await?;
    let no_accounts = if state.config.otp_hide_unknown_phones {
        INVALID_OTP
    } else {
        NO_SUCH_TENANT
    };
    // Answers that consume nothing end the transaction (and its lock on the challenge) first.
    let chosen = match (&request.tenant_id, accounts.len()) {
        (_, 0) => Err(Error::Unprocessable(no_accounts)),
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
            return Err(err.into());
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
    let event = NewEvent::new(
        EventType::TenantLoggedIn,
        Some(account.company_id),
        Actor::tenant(&account.tenant_id),
        json!({"tenant_id": account.tenant_id}),
    );
    audit::record(&mut tx, event, origin, now).await?;
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
pub async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    auth: TenantAuth,
) -> Result<StatusCode> {
    let now = state.clock.now();
    let mut tx = db::begin(&state.db).await?;
    if let Some(company_id) = tokens::revoke(&mut tx, auth.token_id, now).await? {
        let event = NewEvent::new(
            EventType::TenantLoggedOut,
            Some(company_id),
            Actor::tenant(&auth.tenant_id),
            json!({"tenant_id": auth.tenant_id}),
        );
        audit::record(&mut tx, event, &origin, now).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
