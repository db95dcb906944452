//! PMS push of units (docs/api.md, "PMS push"): upserted in bulk or one at a time, read back with their
//! tenancy. Everything is scoped to the API token's company: another company's units do not exist
//! for it. The write stack in front of these handlers (authenticate, rate limit, Idempotency-Key)
//! is assembled above, in `app::pms`.

pub mod input;
pub mod store;

use std::slice;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::tenancy::{self, UNIT_NOT_FOUND};
use crate::domain::{Error, Result};
use crate::http::docs::{
    BodyErrors, IdempotencyKeyErrors, IdempotencyKeyHeader, Limited, Unauthenticated,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{Body, QueryParams};
use crate::http::writes::Writes;
use crate::http::{AppState, Data, data};
use crate::services::auth::CompanyAuth;
use input::{BulkUnitsBody, UnitFieldsBody};
use store::{SyncCounts, Unit};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Synced {
    #[schema(example = "Units synced.")]
    message: &'static str,
    data: SyncCounts,
}

/// `PATCH /units`: all-or-nothing upsert of up to `KISS_BULK_MAX_UNITS` units.
#[utoipa::path(
    patch, path = "/api/v2/units", tag = "pms",
    security(("api_token" = [])), request_body = BulkUnitsBody,
    params(IdempotencyKeyHeader),
    responses((status = 200, description = "All units upserted", body = Synced),
              Unauthenticated, BodyErrors, IdempotencyKeyErrors, Limited)
)]
pub async fn sync_units(
    State(state): State<AppState>,
    auth: CompanyAuth,
    writes: Writes,
    Body(body): Body<BulkUnitsBody>,
) -> Result<Json<Synced>> {
    let max_units = state.config.bulk_max_units;
    let units = match input::validate_bulk(&body, max_units, None) {
        Ok(units) => units,
        Err(first) => {
            // Name the new units without a location in the same 422 as the other item errors.
            let ids = input::ids_without_location(&body);
            if ids.is_empty() {
                return Err(first);
            }
            let existing = store::existing_ids(&state.db, auth.company_id, &ids).await?;
            return Err(input::validate_bulk(&body, max_units, Some(&existing))
                .err()
                .unwrap_or(first));
        }
    };
    drop(body);
    let mut tx = writes.transaction().await?;
    let counts = store::sync(&mut tx, auth.company_id, &units, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Json(Synced {
        message: "Units synced.",
        data: counts,
    }))
}

/// `PATCH /units/{crm_unit_id}`: changes the fields sent; never creates a unit.
#[utoipa::path(
    patch, path = "/api/v2/units/{crm_unit_id}", tag = "pms",
    security(("api_token" = [])), request_body = UnitFieldsBody,
    params(("crm_unit_id" = String, Path, description = "The PMS's unit id"), IdempotencyKeyHeader),
    responses((status = 200, description = "The unit after the change", body = Data<Unit>),
              (status = 404, description = "Unit not found.", body = ErrorBody),
              Unauthenticated, BodyErrors, IdempotencyKeyErrors, Limited)
)]
pub async fn patch_unit(
    State(state): State<AppState>,
    auth: CompanyAuth,
    Path(crm_unit_id): Path<String>,
    writes: Writes,
    Body(body): Body<UnitFieldsBody>,
) -> Result<Json<Data<Unit>>> {
    let patch = input::validate_single(&body, &crm_unit_id)?;
    let now = state.clock.now();
    let unit = if patch.touches_location() {
        let mut tx = writes.transaction().await?;
        // The bulk-sync lock before the row lock: the order a bulk sync takes them in.
        store::lock_company_units(&mut tx, auth.company_id).await?;
        if tenancy::lock_unit(&mut tx, auth.company_id, &crm_unit_id)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(UNIT_NOT_FOUND));
        }
        store::sync(&mut tx, auth.company_id, slice::from_ref(&patch), now).await?;
        let unit = store::find(&mut *tx, auth.company_id, &crm_unit_id).await?;
        tx.commit().await?;
        unit
    } else {
        let mut conn = writes.single_statement().await?;
        let unit =
            store::patch_in_place(&mut conn, auth.company_id, auth.token_id, &patch, now).await?;
        if unit.is_some() {
            conn.token_confirmed();
        }
        conn.commit().await?;
        unit
    };
    unit.map(data).ok_or(Error::NotFound(UNIT_NOT_FOUND))
}

/// `GET /units/{crm_unit_id}`
#[utoipa::path(
    get, path = "/api/v2/units/{crm_unit_id}", tag = "pms",
    security(("api_token" = [])),
    params(("crm_unit_id" = String, Path, description = "The PMS's unit id")),
    responses((status = 200, description = "The unit with its tenancy", body = Data<Unit>),
              (status = 404, description = "Unit not found.", body = ErrorBody), Unauthenticated)
)]
pub async fn show_unit(
    State(state): State<AppState>,
    auth: CompanyAuth,
    Path(crm_unit_id): Path<String>,
) -> Result<Json<Data<Unit>>> {
    store::find(&state.db, auth.company_id, &crm_unit_id)
        .await?
        .map(data)
        .ok_or(Error::NotFound(UNIT_NOT_FOUND))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnitPage {
    data: Vec<Unit>,
    next_cursor: Option<String>,
}

/// `GET /units?crm_location_id=&limit=&cursor=`: keyset pages in `crm_unit_id` order.
#[utoipa::path(
    get, path = "/api/v2/units", tag = "pms",
    security(("api_token" = [])),
    params(("crm_location_id" = Option<String>, Query, description = "Only units of this location", pattern = r"^[^\u0000]*$"),
           ("limit" = Option<u32>, Query, description = "1–1000, default 100", minimum = 1, maximum = 1000),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page of units in crm_unit_id order", body = UnitPage),
              (status = 400, description = "Malformed query string", body = ErrorBody),
              (status = 422, description = "Invalid limit, cursor or crm_location_id", body = ErrorBody),
              Unauthenticated)
)]
pub async fn list_units(
    State(state): State<AppState>,
    auth: CompanyAuth,
    QueryParams(params): QueryParams,
) -> Result<Json<UnitPage>> {
    let query = input::parse_list_query(&params)?;
    let mut units = store::list(
        &state.db,
        auth.company_id,
        query.crm_location_id.as_deref(),
        query.after.as_deref(),
        query.limit + 1,
    )
    .await?;
    let next_cursor = if units.len() as i64 > query.limit {
        units.truncate(query.limit as usize);
        units
            .last()
            .map(|unit| input::encode_cursor(&unit.crm_unit_id))
    } else {
        None
    };
    Ok(Json(UnitPage {
        data: units,
        next_cursor,
    }))
}
