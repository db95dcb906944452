//! The PMS push routes and their write stack, in one place.
//!
//! Every write runs behind the same layers, outermost first: **authenticate** the API token (a
//! bad token is a 401 before the body is read) → **rate limit** per company (bulk and single-unit
//! writes have their own scopes) → **Idempotency-Key** (the body is read once into bytes here when
//! a key is sent, fingerprinted, and handed on) → the **handler**, which parses the body once into
//! its typed input. Reads are authenticated by their extractor and not limited.

use axum::Router;
use axum::handler::Handler;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, put};
use tower::ServiceBuilder;

use crate::features::{tenancy, units};
use crate::http::{AppState, auth, idempotency, rate_limit};
use crate::services::rate_limit::Scope;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/units",
            get(units::list_units).patch(write(units::sync_units, state, Scope::PmsBulk)),
        )
        .route(
            "/units/{crm_unit_id}",
            get(units::show_unit).patch(write(units::patch_unit, state, Scope::PmsUnit)),
        )
        .route(
            "/units/{crm_unit_id}/tenancy",
            put(write(tenancy::put_tenancy, state, Scope::PmsUnit)).delete(write(
                tenancy::delete_tenancy,
                state,
                Scope::PmsUnit,
            )),
        )
}

/// `handler` behind the write stack, limited under `scope`.
fn write<H, T>(handler: H, state: &AppState, scope: Scope) -> impl Handler<T, AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    handler.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(state.clone(), auth::require_api_token))
            .layer(from_fn_with_state(
                (state.clone(), scope),
                rate_limit::per_company,
            ))
            .layer(from_fn_with_state(state.clone(), idempotency::layer)),
    )
}
