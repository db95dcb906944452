//! Tenancies: who rents a unit. `PUT` replaces a unit's tenancy (creating the person and the tenant
//! account as needed), `DELETE` vacates the unit. Units show their tenancy, so `units` builds on
//! this module, never the other way round.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::phone::PhoneE164;
use crate::domain::validation::{
    Fields, MAX_EMAIL_CHARS, MAX_TEXT_CHARS, Sent, Validate, is_email,
};
use crate::domain::{Error, Result, ValidationErrors};
use crate::http::docs::IdempotencyKeyHeader;
use crate::http::docs::{BodyErrors, IdempotencyKeyErrors, Limited, Unauthenticated};
use crate::http::error::ErrorBody;
use crate::http::extract::Input;
use crate::http::writes::Writes;
use crate::http::{AppState, Data, data};
use crate::services::audit::{self, Actor, EventType, NewEvent, Origin};
use crate::services::auth::CompanyAuth;

pub const ACCESS_STATUSES: &[&str] = &["active", "suspended"];
pub const UNIT_NOT_FOUND: &str = "Unit not found.";

/// A tenancy as responses show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Tenancy {
    pub crm_unit_id: String,
    pub tenant: TenantSummary,
    pub access_code: Option<String>,
    pub access_status: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TenantSummary {
    pub tenant_id: String,
    pub crm_tenant_id: String,
    pub name: String,
    pub phone: String,
    pub email: Option<String>,
}

/// The tenancy's access to the gate.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AccessStatus {
    Active,
    Suspended,
}

/// The body of `PUT /units/{crm_unit_id}/tenancy`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct TenancyBody {
    #[schema(value_type = String, required = true, example = "T-100", min_length = 1, max_length = 191, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    crm_tenant_id: Sent<String>,
    #[schema(value_type = String, required = true, example = "Jane Smith", min_length = 1, max_length = 191, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    #[serde(default)]
    name: Sent<String>,
    /// International form; spaces, dashes, dots and parentheses are allowed.
    #[schema(value_type = String, required = true, example = "+15551234567", pattern = r"^\+[1-9][0-9 ().-]{6,29}$")]
    #[serde(default)]
    phone: Sent<String>,
    #[schema(value_type = Option<String>, example = "jane@example.com", format = Email, max_length = 254)]
    #[serde(default)]
    email: Sent<String>,
    /// 4–12 digits, as a string (the gate code).
    #[schema(value_type = Option<String>, example = "4829", pattern = r"^[0-9]{4,12}$")]
    #[serde(default)]
    access_code: Sent<String>,
    /// Defaults to `active`.
    #[schema(value_type = Option<AccessStatus>)]
    #[serde(default)]
    access_status: Sent<String>,
}

/// A validated tenancy body.
pub struct TenancyInput {
    crm_tenant_id: String,
    name: String,
    phone: PhoneE164,
    email: Option<String>,
    access_code: Option<String>,
    access_status: String,
}

impl Validate for TenancyInput {
    type Raw = TenancyBody;

    fn validate(raw: &TenancyBody, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(errors);
        let crm_tenant_id =
            fields.required_text("crm_tenant_id", &raw.crm_tenant_id, MAX_TEXT_CHARS);
        let name = fields.required_text("name", &raw.name, MAX_TEXT_CHARS);
        let phone = fields.required_str("phone", &raw.phone).and_then(|raw| {
            let phone = PhoneE164::parse(raw);
            if phone.is_none() {
                fields.error(
                    "phone",
                    "The phone field must be a phone number in E.164 form, such as +15551234567.",
                );
            }
            phone
        });
        let email = match fields
            .optional_str("email", &raw.email)
            .flatten()
            .map(str::trim)
        {
            Some(email) if !is_email(email) || email.chars().count() > MAX_EMAIL_CHARS => {
                fields.error("email", "The email field must be a valid email address.");
                None
            }
            email => email.map(str::to_owned),
        };
        let access_code = match fields
            .optional_str("access_code", &raw.access_code)
            .flatten()
        {
            Some(code) if !is_access_code(code) => {
                fields.error(
                    "access_code",
                    "The access code field must be 4 to 12 digits.",
                );
                None
            }
            code => code.map(str::to_owned),
        };
        let access_status = match fields
            .optional_str("access_status", &raw.access_status)
            .flatten()
        {
            None => Some("active".to_owned()),
            Some(status) => fields
                .check_one_of("access_status", status, ACCESS_STATUSES)
                .then(|| status.to_owned()),
        };
        Some(TenancyInput {
            crm_tenant_id: crm_tenant_id?,
            name: name?,
            phone: phone?,
            email,
            access_code,
            access_status: access_status?,
        })
    }
}

fn is_access_code(code: &str) -> bool {
    (4..=12).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Replaces the unit's tenancy in one statement: the person (by phone), the tenant account (by
/// company, location and `crm_tenant_id`) and the tenancy are upserted together.
pub async fn replace(
    tx: &mut PgConnection,
    company_id: Uuid,
    crm_unit_id: &str,
    input: TenancyInput,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Tenancy> {
    let UnitKey {
        id: unit_id,
        location_id,
    } = lock_unit(tx, company_id, crm_unit_id)
        .await?
        .ok_or(Error::NotFound(UNIT_NOT_FOUND))?;
    let new_person_id = format!("usr_{}", ulid::Ulid::generate());
    let new_tenant_id = ulid::Ulid::generate().to_string();
    let tenant_id = sqlx::query_scalar!(
        "WITH person AS (
             INSERT INTO people (id, phone_e164, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (phone_e164) DO UPDATE SET phone_e164 = EXCLUDED.phone_e164
             RETURNING id
         ), tenant AS (
             INSERT INTO tenants (id, company_id, location_id, crm_tenant_id, person_id, name, email, created_at, updated_at)
             SELECT $4, $5, $6, $7, person.id, $8, $9, $3, $3 FROM person
             ON CONFLICT (company_id, location_id, crm_tenant_id) DO UPDATE SET
                 person_id = EXCLUDED.person_id, name = EXCLUDED.name, email = EXCLUDED.email,
                 updated_at = EXCLUDED.updated_at
             RETURNING id
         )
         INSERT INTO tenancies (unit_id, tenant_id, access_code, access_status, created_at, updated_at)
         SELECT $10, tenant.id, $11, $12, $3, $3 FROM tenant
         ON CONFLICT (unit_id) DO UPDATE SET
             tenant_id = EXCLUDED.tenant_id, access_code = EXCLUDED.access_code,
             access_status = EXCLUDED.access_status, updated_at = EXCLUDED.updated_at
         RETURNING tenant_id",
        new_person_id,
        input.phone.as_str(),
        now,
        new_tenant_id,
        company_id,
        location_id,
        input.crm_tenant_id,
        input.name,
        input.email,
        unit_id,
        input.access_code,
        input.access_status,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(Tenancy {
        crm_unit_id: crm_unit_id.to_owned(),
        tenant: TenantSummary {
            tenant_id,
            crm_tenant_id: input.crm_tenant_id,
            name: input.name,
            phone: input.phone.to_string(),
            email: input.email,
        },
        access_code: input.access_code,
        access_status: input.access_status,
    })
}

/// What vacating a unit found.
pub enum Vacated {
    NoSuchUnit,
    AlreadyVacant,
    /// The tenancy of this tenant account ended.
    Ended {
        tenant_id: String,
    },
}

/// Vacates the unit (nothing to do when it is already vacant).
pub async fn vacate(
    conn: &mut PgConnection,
    company_id: Uuid,
    crm_unit_id: &str,
) -> Result<Vacated> {
    let found = sqlx::query!(
        r#"WITH unit AS (
               SELECT id FROM units WHERE company_id = $1 AND crm_unit_id = $2
           ), vacated AS (
               DELETE FROM tenancies WHERE unit_id IN (SELECT id FROM unit) RETURNING tenant_id
           )
           SELECT EXISTS (SELECT 1 FROM unit) AS "unit_exists!",
                  (SELECT tenant_id FROM vacated) AS tenant_id"#,
        company_id,
        crm_unit_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(match (found.unit_exists, found.tenant_id) {
        (false, _) => Vacated::NoSuchUnit,
        (true, None) => Vacated::AlreadyVacant,
        (true, Some(tenant_id)) => Vacated::Ended { tenant_id },
    })
}

/// `tenancy.replaced` / `tenancy.vacated`: the unit by the PMS's id and the tenant account.
fn tenancy_event(
    kind: EventType,
    auth: &CompanyAuth,
    crm_unit_id: &str,
    tenant_id: &str,
) -> NewEvent {
    NewEvent::new(
        kind,
        Some(auth.company_id),
        Actor::api_token(auth.token_id),
        json!({"crm_unit_id": crm_unit_id, "tenant_id": tenant_id}),
    )
}

/// The row and location of a unit, locked until the transaction ends.
#[derive(Debug, Clone, Copy)]
pub struct UnitKey {
    pub id: Uuid,
    pub location_id: Uuid,
}

/// Locks the unit's row (the one every write to it or its tenancy takes first).
pub async fn lock_unit(
    conn: &mut PgConnection,
    company_id: Uuid,
    crm_unit_id: &str,
) -> Result<Option<UnitKey>> {
    let key = sqlx::query_as!(
        UnitKey,
        "SELECT id, location_id FROM units WHERE company_id = $1 AND crm_unit_id = $2 FOR UPDATE",
        company_id,
        crm_unit_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(key)
}

/// `PUT /units/{crm_unit_id}/tenancy`: replaces any current tenancy of the unit.
#[utoipa::path(
    put, path = "/api/v2/units/{crm_unit_id}/tenancy", tag = "pms",
    security(("api_token" = [])), request_body = TenancyBody,
    params(("crm_unit_id" = String, Path, description = "The PMS's unit id"), IdempotencyKeyHeader),
    responses((status = 200, description = "The unit's new tenancy", body = Data<Tenancy>),
              (status = 404, description = "Unit not found.", body = ErrorBody),
              Unauthenticated, BodyErrors, IdempotencyKeyErrors, Limited)
)]
pub async fn put_tenancy(
    State(state): State<AppState>,
    origin: Origin,
    auth: CompanyAuth,
    Path(crm_unit_id): Path<String>,
    writes: Writes,
    Input(input): Input<TenancyInput>,
) -> Result<Json<Data<Tenancy>>> {
    let now = state.clock.now();
    let mut tx = writes.transaction().await?;
    let tenancy = replace(&mut tx, auth.company_id, &crm_unit_id, input, now).await?;
    let event = tenancy_event(
        EventType::TenancyReplaced,
        &auth,
        &crm_unit_id,
        &tenancy.tenant.tenant_id,
    );
    audit::record(&mut tx, event, &origin, now).await?;
    tx.commit().await?;
    Ok(data(tenancy))
}

/// `DELETE /units/{crm_unit_id}/tenancy`: 204 also when the unit is already vacant.
#[utoipa::path(
    delete, path = "/api/v2/units/{crm_unit_id}/tenancy", tag = "pms",
    security(("api_token" = [])),
    params(("crm_unit_id" = String, Path, description = "The PMS's unit id"), IdempotencyKeyHeader),
    responses((status = 204, description = "Vacated (also when already vacant)"),
              (status = 404, description = "Unit not found.", body = ErrorBody),
              Unauthenticated, IdempotencyKeyErrors, Limited)
)]
pub async fn delete_tenancy(
    State(state): State<AppState>,
    origin: Origin,
    auth: CompanyAuth,
    Path(crm_unit_id): Path<String>,
    writes: Writes,
) -> Result<StatusCode> {
    let now = state.clock.now();
    let mut tx = writes.transaction().await?;
    match vacate(&mut tx, auth.company_id, &crm_unit_id).await? {
        Vacated::NoSuchUnit => return Err(Error::NotFound(UNIT_NOT_FOUND)),
        Vacated::AlreadyVacant => {}
        Vacated::Ended { tenant_id } => {
            let event = tenancy_event(EventType::TenancyVacated, &auth, &crm_unit_id, &tenant_id);
            audit::record(&mut tx, event, &origin, now).await?;
        }
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
