//! What a logged-in tenant sees (docs/api.md, "Tenant login"): its account, company, location and the units it
//! rents, with gate codes only while access is granted.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Error, Result};
use crate::http::auth::refuse_dead_tenant_token;
use crate::http::docs::Unauthenticated;
use crate::http::error::ErrorBody;
use crate::http::{AppState, Data, data};
use crate::services::auth::{Accepted, TenantAuth};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Access {
    tenant_id: String,
    name: String,
    company: Named,
    location: Named,
    units: Vec<UnitAccess>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Named {
    id: Uuid,
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnitAccess {
    unit_id: Uuid,
    crm_unit_id: String,
    name: String,
    size: Option<String>,
    /// `null` while access is denied.
    access_code: Option<String>,
    /// `granted`, or `denied` when the tenancy is suspended or the unit overlocked.
    access: String,
}

/// `GET /tenant/access`
#[utoipa::path(
    get, path = "/api/v2/tenant/access", tag = "tenant",
    security(("tenant_token" = [])),
    responses((status = 200, description = "The tenant's account and units", body = Data<Access>), Unauthenticated)
)]
pub async fn access(
    State(state): State<AppState>,
    Accepted { auth, .. }: Accepted<TenantAuth>,
) -> Result<Json<Data<Access>>> {
    // One statement: the account with one row per unit (or one row without a unit), and none at
    // all unless the token is still live.
    let rows = sqlx::query!(
        r#"SELECT t.name, c.id AS company_id, c.name AS company_name,
                  l.id AS location_id, COALESCE(l.name, l.crm_location_id) AS "location_name!",
                  a.unit_id AS "unit_id?", a.crm_unit_id AS "crm_unit_id?", a.name AS "unit_name?",
                  a.size, a.access_code, a.access AS "access?"
           FROM live_tenant_tokens tt
           JOIN tenants t ON t.id = tt.tenant_id
           JOIN companies c ON c.id = t.company_id
           JOIN locations l ON l.id = t.location_id
           LEFT JOIN tenant_unit_access a ON a.tenant_id = t.id
           WHERE tt.id = $1 AND tt.expires_at > $2
           ORDER BY a.crm_unit_id"#,
        auth.token_id,
        state.clock.now(),
    )
    .fetch_all(&state.db)
    .await?;
    let Some(first) = rows.first() else {
        return Err(refuse_dead_tenant_token(&state, &auth));
    };
    let (name, company, location) = (
        first.name.clone(),
        Named {
            id: first.company_id,
            name: first.company_name.clone(),
        },
        Named {
            id: first.location_id,
            name: first.location_name.clone(),
        },
    );
    let units = rows
        .into_iter()
        .filter_map(|row| {
            Some(UnitAccess {
                unit_id: row.unit_id?,
                crm_unit_id: row.crm_unit_id?,
                name: row.unit_name?,
                size: row.size,
                access_code: row.access_code,
                access: row.access?,
            })
        })
        .collect();
    Ok(data(Access {
        tenant_id: auth.tenant_id,
        name,
        company,
        location,
        units,
    }))
}

/// `GET /tenant/units/{unit_id}`: 403 for a unit that exists but is not this tenant's.
#[utoipa::path(
    get, path = "/api/v2/tenant/units/{unit_id}", tag = "tenant",
    security(("tenant_token" = [])),
    params(("unit_id" = String, Path, description = "`unit_id` from /tenant/access")),
    responses((status = 200, description = "One of the tenant's units", body = Data<UnitAccess>), Unauthenticated,
              (status = 403, description = "A unit that is not this tenant's", body = ErrorBody), (status = 404, description = "Unit not found.", body = ErrorBody))
)]
pub async fn unit(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(unit_id): Path<String>,
) -> Result<Json<Data<UnitAccess>>> {
    let not_found = || Error::NotFound("Unit not found.");
    let unit_id = Uuid::try_parse(&unit_id).map_err(|_| not_found())?;
    let unit = sqlx::query_as!(
        UnitAccess,
        r#"SELECT unit_id AS "unit_id!", crm_unit_id AS "crm_unit_id!", name AS "name!", size,
                  access_code, access AS "access!"
           FROM tenant_unit_access WHERE tenant_id = $1 AND unit_id = $2"#,
        auth.tenant_id,
        unit_id,
    )
    .fetch_optional(&state.db)
    .await?;
    if let Some(unit) = unit {
        return Ok(data(unit));
    }
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM units WHERE id = $1) AS "exists!""#,
        unit_id
    )
    .fetch_one(&state.db)
    .await?;
    Err(if exists {
        Error::Forbidden
    } else {
        not_found()
    })
}
