//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! response types, served at `/api/v2/openapi.json`, with Swagger UI (assets compiled into the
//! binary, so it works offline) at `/docs`.
//!
//! Request bodies are parsed by hand (so every problem is reported by field path); the types below
//! describe them for the document and are never constructed, hence the `dead_code` allowance.
#![allow(dead_code)]

use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kiss-auth",
        description = "Authentication for self-storage operators: PMS push with company API tokens, tenant login by phone and SMS code, administration. Every error body has `message`; validation errors (422) add `errors` by field path. Rate-limited routes answer 429 with `Retry-After` and advertise `RateLimit-Policy` / `RateLimit`."
    ),
    paths(
        crate::admin::sessions::sign_in,
        crate::admin::sessions::sign_out,
        crate::companies::create_company,
        crate::companies::list_companies,
        crate::api_tokens::create_token,
        crate::api_tokens::list_tokens,
        crate::api_tokens::revoke_token,
        crate::units::sync_units,
        crate::units::patch_unit,
        crate::units::show_unit,
        crate::units::list_units,
        crate::units::put_tenancy,
        crate::units::delete_tenancy,
        crate::otp_login::request_code,
        crate::otp_login::verify_code,
        crate::otp_login::logout,
        crate::tenant_access::access,
        crate::tenant_access::unit,
        crate::health::healthz,
        crate::health::readyz,
        crate::health::metrics_text,
    ),
    modifiers(&BearerSchemes, &ServerErrors),
    tags(
        (name = "administration", description = "Admin sign-in, companies and API tokens (admin token)"),
        (name = "pms", description = "Units and tenancies pushed by a PMS (API token, rate limited per company, Idempotency-Key accepted)"),
        (name = "tenant login", description = "Phone + SMS code login for white-label apps"),
        (name = "tenant", description = "What a logged-in tenant sees (tenant token)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

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

/// Any operation can fail on our side: `500 {"message": "Server error."}`, never with details.
struct ServerErrors;

impl Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let response = ResponseBuilder::new()
            .description("Server error; the body never carries details")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("500".to_owned())
                    .or_insert_with(|| response.clone().into());
            }
        }
    }
}

/// `/api/v2/openapi.json` and the docs page at `/docs`.
pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/api/v2/openapi.json", ApiDoc::openapi()))
}

/// Every error: `{"message"}`.
#[derive(ToSchema)]
pub(crate) struct ErrorBody {
    #[schema(example = "Unauthorized.")]
    pub(crate) message: String,
}

/// A validation error: the first problem as `message`, every problem by field path in `errors`.
#[derive(ToSchema)]
pub(crate) struct ValidationErrorBody {
    #[schema(example = "The phone number field is required.")]
    pub(crate) message: String,
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>,
             example = json!({"phone_number": ["The phone number field is required."]}))]
    pub(crate) errors: Option<serde_json::Value>,
}

#[derive(ToSchema)]
pub(crate) struct SignInBody {
    #[schema(example = "admin@example.com", min_length = 1, max_length = 254)]
    pub(crate) email: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub(crate) password: String,
}

/// A company's or an API token's name (companies: 1–191 characters; tokens: 1–100).
#[derive(ToSchema)]
pub(crate) struct NameBody {
    #[schema(
        example = "production-sync",
        min_length = 1,
        max_length = 191,
        pattern = r"\S"
    )]
    pub(crate) name: String,
}

#[derive(ToSchema)]
pub(crate) enum UnitStatus {
    #[schema(rename = "available")]
    Available,
    #[schema(rename = "rented")]
    Rented,
    #[schema(rename = "reserved")]
    Reserved,
    #[schema(rename = "unavailable")]
    Unavailable,
    #[schema(rename = "overlocked")]
    Overlocked,
}

/// A unit in a bulk PATCH. Fields left out keep their value; `null` clears `size` and `location_name`.
#[derive(ToSchema)]
pub(crate) struct UnitBody {
    /// 1–191 characters, no `/`, unique within the request.
    #[schema(example = "A-101", pattern = r"^[^/\u0000]{1,191}$")]
    pub(crate) crm_unit_id: String,
    /// Required when the unit is created.
    #[schema(example = "downtown", pattern = r"^[^\u0000]{1,191}$")]
    pub(crate) crm_location_id: Option<String>,
    /// Names (or renames) the unit's location.
    #[schema(example = "Downtown Storage", max_length = 191)]
    pub(crate) location_name: Option<String>,
    /// Defaults to `crm_unit_id`.
    #[schema(pattern = r"^\s*[^\s\u0000][^\u0000]{0,190}$")]
    pub(crate) name: Option<String>,
    #[schema(example = "10x10", max_length = 191)]
    pub(crate) size: Option<String>,
    /// Defaults to `available`.
    pub(crate) status: Option<UnitStatus>,
}

#[derive(ToSchema)]
pub(crate) struct BulkUnitsBody {
    /// 1 to `KISS_BULK_MAX_UNITS` (default 10,000) units; all are written or none.
    #[schema(min_items = 1, max_items = 10000)]
    pub(crate) units: Vec<UnitBody>,
}

/// The fields of a single-unit PATCH (a `crm_unit_id` in the body is ignored).
#[derive(ToSchema)]
pub(crate) struct UnitPatchBody {
    pub(crate) crm_location_id: Option<String>,
    pub(crate) location_name: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) size: Option<String>,
    pub(crate) status: Option<UnitStatus>,
}

#[derive(ToSchema)]
pub(crate) enum AccessStatus {
    #[schema(rename = "active")]
    Active,
    #[schema(rename = "suspended")]
    Suspended,
}

#[derive(ToSchema)]
pub(crate) struct TenancyBody {
    #[schema(example = "T-100", min_length = 1, max_length = 191, pattern = r"\S")]
    pub(crate) crm_tenant_id: String,
    #[schema(
        example = "Jane Smith",
        min_length = 1,
        max_length = 191,
        pattern = r"\S"
    )]
    pub(crate) name: String,
    /// International form; spaces, dashes, dots and parentheses are allowed.
    #[schema(example = "+15551234567", pattern = r"^\+[0-9 ().-]{7,30}$")]
    pub(crate) phone: String,
    #[schema(example = "jane@example.com", format = Email)]
    pub(crate) email: Option<String>,
    /// 4–12 digits, as a string (the gate code).
    #[schema(example = "4829", pattern = r"^[0-9]{4,12}$")]
    pub(crate) access_code: Option<String>,
    /// Defaults to `active`.
    pub(crate) access_status: Option<AccessStatus>,
}

#[derive(ToSchema)]
pub(crate) struct PhoneBody {
    /// 1–3 digits, without `+`.
    #[schema(example = "1", pattern = r"^[0-9]{1,3}$")]
    pub(crate) country_code: String,
    /// 7–15 digits without the country code (spaces, dashes, dots and parentheses are stripped).
    #[schema(example = "5551234567", pattern = r"^[0-9 ().-]{7,30}$")]
    pub(crate) phone_number: String,
}

#[derive(ToSchema)]
pub(crate) struct VerifyOtpBody {
    #[schema(example = "1", pattern = r"^[0-9]{1,3}$")]
    pub(crate) country_code: String,
    #[schema(example = "5551234567", pattern = r"^[0-9 ().-]{7,30}$")]
    pub(crate) phone_number: String,
    #[schema(example = "482910", pattern = r"^[0-9]{6}$")]
    pub(crate) otp: String,
    /// Required on the second call when several accounts were offered.
    pub(crate) tenant_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageBody {
    #[schema(example = "OTP sent successfully.")]
    pub(crate) message: String,
}

/// `Login successful.` with a token, or `Multiple accounts found.` with `token: null` and the
/// accounts to choose from (the code stays valid).
#[derive(ToSchema)]
pub(crate) struct VerifyOtpAnswer {
    #[schema(example = "Login successful.")]
    pub(crate) message: String,
    pub(crate) data: VerifyOtpData,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum VerifyOtpData {
    LoggedIn(LoggedInData),
    Choose(ChooseData),
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LoggedInData {
    #[schema(example = "1|abc123def456")]
    pub(crate) token: String,
    pub(crate) expires_at: chrono::DateTime<chrono::Utc>,
    pub(crate) tenant_id: String,
    pub(crate) user: crate::otp_login::User,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChooseData {
    /// Always `null`.
    pub(crate) token: Option<String>,
    pub(crate) accounts: Vec<crate::otp_login::Account>,
}
