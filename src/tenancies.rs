//! Tenancies: who rents a unit. `PUT` replaces a unit's tenancy (creating the person and the tenant
//! account as needed), `DELETE` vacates the unit.

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::http::error::ValidationErrors;
use crate::http::extract::FromJsonBody;
use crate::http::{Error, Result};
use crate::phone::PhoneE164;
use crate::units::store::{UnitKey, lock_unit};
use crate::validation::{Fields, is_email};

pub const ACCESS_STATUSES: &[&str] = &["active", "suspended"];

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

/// The body of `PUT /units/{crm_unit_id}/tenancy`.
pub struct TenancyInput {
    crm_tenant_id: String,
    name: String,
    phone: PhoneE164,
    email: Option<String>,
    access_code: Option<String>,
    access_status: String,
}

impl FromJsonBody for TenancyInput {
    fn from_json(body: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(body, errors);
        let crm_tenant_id = fields.required_text("crm_tenant_id", 191);
        let name = fields.required_text("name", 191);
        let phone = fields.required_str("phone").and_then(|raw| {
            let phone = PhoneE164::parse(raw);
            if phone.is_none() {
                fields.error(
                    "phone",
                    "The phone field must be a phone number in E.164 form, such as +15551234567.",
                );
            }
            phone
        });
        let email = match fields.optional_str("email").flatten().map(str::trim) {
            Some(email) if !is_email(email) => {
                fields.error("email", "The email field must be a valid email address.");
                None
            }
            email => email.map(str::to_owned),
        };
        let access_code = match fields.optional_str("access_code").flatten() {
            Some(code) if !is_access_code(code) => {
                fields.error(
                    "access_code",
                    "The access code field must be 4 to 12 digits.",
                );
                None
            }
            code => code.map(str::to_owned),
        };
        let access_status = match fields.optional_str("access_status").flatten() {
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

/// Vacates the unit (nothing to do when it is already vacant); `false` when the unit is unknown.
pub async fn vacate(conn: &mut PgConnection, company_id: Uuid, crm_unit_id: &str) -> Result<bool> {
    let unit_exists = sqlx::query_scalar!(
        r#"WITH unit AS (
               SELECT id FROM units WHERE company_id = $1 AND crm_unit_id = $2
           ), vacated AS (
               DELETE FROM tenancies WHERE unit_id IN (SELECT id FROM unit)
           )
           SELECT EXISTS (SELECT 1 FROM unit) AS "exists!""#,
        company_id,
        crm_unit_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(unit_exists)
}

pub const UNIT_NOT_FOUND: &str = "Unit not found.";
