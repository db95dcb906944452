//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! real input and output types, served at `/api/v2/openapi.json`, with Swagger UI (assets compiled
//! into the binary, so it works offline) at `/docs`. Limits that come from the configuration are
//! written in when the document is built.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::features::{
    admin, api_tokens, companies, events, otp_login, tenancy, tenant_access, units,
};
use crate::http::AppState;
use crate::http::docs::{error_response, with_retry_after};
use crate::infra::config::Config;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kiss-auth",
        description = "Authentication for self-storage operators: PMS push with company API tokens, tenant login by phone and SMS code, administration. Every error body has `message`; validation errors (422) add `errors` by field path. Rate-limited routes answer 429 with `Retry-After` and advertise `RateLimit-Policy` / `RateLimit`."
    ),
    paths(
        admin::sessions::sign_in,
        admin::sessions::sign_out,
        admin::accounts::me,
        admin::accounts::list_admins,
        admin::accounts::create_admin,
        admin::accounts::disable_admin,
        admin::accounts::change_password,
        companies::create_company,
        companies::list_companies,
        api_tokens::create_token,
        api_tokens::list_tokens,
        api_tokens::revoke_token,
        events::company_events,
        events::all_events,
        events::create_webhook,
        events::list_webhooks,
        events::delete_webhook,
        events::list_deliveries,
        units::sync_units,
        units::patch_unit,
        units::show_unit,
        units::list_units,
        tenancy::put_tenancy,
        tenancy::delete_tenancy,
        otp_login::request_code,
        otp_login::verify_code,
        otp_login::logout,
        tenant_access::access,
        tenant_access::unit,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics_text,
    ),
    components(schemas(crate::http::error::ErrorBody)),
    modifiers(&BearerSchemes, &ServerErrors),
    tags(
        (name = "administration", description = "Admin sign-in, admins, companies and API tokens (admin token)"),
        (name = "audit", description = "Audit events and signed webhooks (admin token)"),
        (name = "pms", description = "Units and tenancies pushed by a PMS (API token, rate limited per company, Idempotency-Key accepted)"),
        (name = "tenant login", description = "Phone + SMS code login for white-label apps"),
        (name = "tenant", description = "What a logged-in tenant sees (tenant token)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

/// The document for this configuration.
pub fn document(config: &Config) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    set_bulk_maximum(&mut doc, config.bulk_max_units);
    doc
}

/// `BulkUnitsBody.units` holds at most `KISS_BULK_MAX_UNITS` items.
fn set_bulk_maximum(doc: &mut utoipa::openapi::OpenApi, max_units: usize) {
    let units = doc
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("BulkUnitsBody"))
        .and_then(|schema| match schema {
            RefOr::T(Schema::Object(object)) => object.properties.get_mut("units"),
            _ => None,
        });
    if let Some(RefOr::T(Schema::Array(array))) = units {
        array.max_items = Some(max_units);
    }
}

/// The three kinds of bearer token; a token of one kind is refused where another is required.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, format, description) in [
            (
                "api_token",
                "kat_<id>.<secret>",
                "Company API token for PMS servers",
            ),
            (
                "admin_token",
                "kadm_<id>.<secret>",
                "Administrator token from /admin/sign-in (12 h)",
            ),
            (
                "tenant_token",
                "<id>|<secret>",
                "Tenant token from /auth/verify-otp (30 days, no refresh)",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format(format)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// Any operation can fail on our side: `500 {"message": "Server error."}`, never with details, or
/// `503` with `Retry-After` while the database (or a lock, or the request's time) runs out.
struct ServerErrors;

impl Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let response = error_response("Server error; the body never carries details");
        let unavailable = with_retry_after(error_response(
            "Try again after `Retry-After`: the database is unavailable, a lock wait passed \
             `KISS_LOCK_TIMEOUT_MS`, the request was not answered within \
             `KISS_REQUEST_TIMEOUT_SECS`, or the shared rate limiter cannot be reached",
        ));
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses
                    .entry("500".to_owned())
                    .or_insert_with(|| response.clone().into());
                responses
                    .entry("503".to_owned())
                    .or_insert_with(|| unavailable.clone().into());
            }
        }
    }
}

/// `/api/v2/openapi.json` and the docs page at `/docs`.
pub fn router(config: &Config) -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/api/v2/openapi.json", document(config)))
}
