//! PMS push (CONTRACT §4): units upserted in bulk or one at a time, read back with their tenancy,
//! and tenancies replaced or vacated. Everything is scoped to the API token's company: another
//! company's units do not exist for it.

pub mod input;
pub mod store;

use std::collections::HashMap;
use std::slice;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, put};
use serde::Serialize;

use crate::http::auth::CompanyAuth;
use crate::http::extract::{JsonObject, Valid};
use crate::http::openapi::{ErrorBody, ValidationErrorBody};
use crate::http::{AppState, Data, Error, Result, data};
use crate::idempotency::Writes;
use crate::tenancies::{self, Tenancy, TenancyInput, UNIT_NOT_FOUND};
use crate::{idempotency, rate_limit};
use store::{SyncCounts, Unit};

/// Reads are not rate limited; the bulk and the single-unit writes each have their scope (§7).
pub fn router(state: &AppState) -> Router<AppState> {
    // Outermost first: authenticate and rate-limit, then Idempotency-Key, then the handler.
    let bulk = from_fn_with_state(state.clone(), rate_limit::pms_bulk);
    let unit = from_fn_with_state(state.clone(), rate_limit::pms_unit);
    let idempotent = from_fn_with_state(state.clone(), idempotency::layer);
    Router::new()
        .route(
            "/units",
            get(list_units).patch(sync_units.layer(idempotent.clone()).layer(bulk)),
        )
        .route(
            "/units/{crm_unit_id}",
            get(show_unit).merge(
                patch(patch_unit)
                    .layer(idempotent.clone())
                    .layer(unit.clone()),
            ),
        )
        .route(
            "/units/{crm_unit_id}/tenancy",
            put(put_tenancy)
                .delete(delete_tenancy)
                .layer(idempotent)
                .layer(unit),
        )
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Synced {
    message: &'static str,
    data: SyncCounts,
}

/// `PATCH /units`: all-or-nothing upsert of up to `KISS_BULK_MAX_UNITS` units.
#[utoipa::path(
    patch, path = "/api/v2/units", tag = "pms",
    security(("api_token" = [])), request_body = crate::http::openapi::BulkUnitsBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters; retries with the same key replay the first answer")),
    responses((status = 200, description = "All units upserted", body = Synced), (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 422, description = "Validation error", body = ValidationErrorBody), (status = 400, description = "Malformed JSON or header", body = ErrorBody), (status = 409, description = "Idempotency-Key conflict", body = ErrorBody), (status = 413, description = "Body over KISS_BODY_LIMIT_BYTES", body = ErrorBody), (status = 415, description = "Body not sent as JSON", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))))
)]
pub(crate) async fn sync_units(
    State(state): State<AppState>,
    auth: CompanyAuth,
    writes: Writes,
    JsonObject(body): JsonObject,
) -> Result<Json<Synced>> {
    let units = input::parse_bulk(&body, state.config.bulk_max_units)?;
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
    security(("api_token" = [])), request_body = crate::http::openapi::UnitPatchBody,
    params(("crm_unit_id" = String, Path, description = "The PMS's unit id"), ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters; retries with the same key replay the first answer")),
    responses((status = 200, description = "The unit after the change", body = Data<Unit>),
              (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 404, description = "Unit not found.", body = ErrorBody), (status = 422, description = "Validation error", body = ValidationErrorBody), (status = 400, description = "Malformed JSON or header", body = ErrorBody), (status = 409, description = "Idempotency-Key conflict", body = ErrorBody), (status = 415, description = "Body not sent as JSON", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))))
)]
pub(crate) async fn patch_unit(
    State(state): State<AppState>,
    auth: CompanyAuth,
    Path(crm_unit_id): Path<String>,
    writes: Writes,
    JsonObject(body): JsonObject,
) -> Result<Json<Data<Unit>>> {
    let patch = input::parse_single(&body, &crm_unit_id)?;
    let now = state.clock.now();
    let unit = if patch.touches_location() {
        let mut tx = writes.transaction().await?;
        if store::lock_unit(&mut tx, auth.company_id, &crm_unit_id)
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
        let unit = store::patch_in_place(&mut conn, auth.company_id, &patch, now).await?;
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
    responses((status = 200, description = "The unit with its tenancy", body = Data<Unit>), (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 404, description = "Unit not found.", body = ErrorBody))
)]
pub(crate) async fn show_unit(
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
    params(("crm_location_id" = Option<String>, Query, description = "Only units of this location"),
           ("limit" = Option<u32>, Query, description = "1–1000, default 100"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page of units in crm_unit_id order", body = UnitPage),
              (status = 400, description = "Malformed query string", body = ErrorBody),
              (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody),
              (status = 422, description = "Invalid limit, cursor or crm_location_id", body = ValidationErrorBody))
)]
pub(crate) async fn list_units(
    State(state): State<AppState>,
    auth: CompanyAuth,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<UnitPage>> {
    let Query(params) =
        query.map_err(|_| Error::BadRequest("The query string is malformed.".into()))?;
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

/// `PUT /units/{crm_unit_id}/tenancy`: replaces any current tenancy of the unit.
#[utoipa::path(
    put, path = "/api/v2/units/{crm_unit_id}/tenancy", tag = "pms",
    security(("api_token" = [])), request_body = crate::http::openapi::TenancyBody,
    params(("crm_unit_id" = String, Path, description = "The PMS's unit id"), ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters; retries with the same key replay the first answer")),
    responses((status = 200, description = "The unit's new tenancy", body = Data<Tenancy>),
              (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 404, description = "Unit not found.", body = ErrorBody), (status = 422, description = "Validation error", body = ValidationErrorBody), (status = 400, description = "Malformed JSON or header", body = ErrorBody), (status = 409, description = "Idempotency-Key conflict", body = ErrorBody), (status = 415, description = "Body not sent as JSON", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))))
)]
pub(crate) async fn put_tenancy(
    State(state): State<AppState>,
    auth: CompanyAuth,
    Path(crm_unit_id): Path<String>,
    writes: Writes,
    Valid(input): Valid<TenancyInput>,
) -> Result<Json<Data<Tenancy>>> {
    let mut tx = writes.transaction().await?;
    let tenancy = tenancies::replace(
        &mut tx,
        auth.company_id,
        &crm_unit_id,
        input,
        state.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(data(tenancy))
}

/// `DELETE /units/{crm_unit_id}/tenancy`: 204 also when the unit is already vacant.
#[utoipa::path(
    delete, path = "/api/v2/units/{crm_unit_id}/tenancy", tag = "pms",
    security(("api_token" = [])),
    params(("crm_unit_id" = String, Path, description = "The PMS's unit id"), ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters; retries with the same key replay the first answer")),
    responses((status = 204, description = "Vacated (also when already vacant)"), (status = 401, description = "Missing, unknown, revoked or expired token", body = ErrorBody), (status = 404, description = "Unit not found.", body = ErrorBody), (status = 400, description = "Malformed JSON or header", body = ErrorBody), (status = 409, description = "Idempotency-Key conflict", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))))
)]
pub(crate) async fn delete_tenancy(
    auth: CompanyAuth,
    Path(crm_unit_id): Path<String>,
    writes: Writes,
) -> Result<StatusCode> {
    let mut conn = writes.single_statement().await?;
    if !tenancies::vacate(&mut conn, auth.company_id, &crm_unit_id).await? {
        return Err(Error::NotFound(UNIT_NOT_FOUND));
    }
    conn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
