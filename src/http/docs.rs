//! Response sets that many operations share, for the OpenAPI document: each is one `responses(…)`
//! entry in a `#[utoipa::path]`, so the document says the same thing everywhere it applies.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, PartialSchema};

/// An answer whose body is the contract's `ErrorBody`.
pub fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// `Retry-After: <seconds>` (an integer ≥ 1).
pub fn with_retry_after(response: Response) -> Response {
    let mut response = response;
    response.headers.insert(
        "Retry-After".to_owned(),
        HeaderBuilder::new()
            .schema(Some(u64::schema()))
            .description(Some("Seconds to wait (at least 1)"))
            .build()
            .into(),
    );
    response
}

fn set(entries: &[(&str, Response)]) -> BTreeMap<String, RefOr<Response>> {
    entries
        .iter()
        .map(|(status, response)| ((*status).to_owned(), RefOr::T(response.clone())))
        .collect()
}

/// 401 for a missing, unknown, revoked or expired token (with `WWW-Authenticate: Bearer`).
pub struct Unauthenticated;

impl IntoResponses for Unauthenticated {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[(
            "401",
            error_response("Missing, unknown, revoked or expired token"),
        )])
    }
}

/// 403 for an admin outside its company, or a company admin where a super admin is needed.
pub struct Forbidden;

impl IntoResponses for Forbidden {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[(
            "403",
            error_response("Not this admin's company, or not a super admin"),
        )])
    }
}

/// The answers to a body that cannot be used: malformed, not received in time, too large, not
/// JSON, or invalid.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            ("400", error_response("Malformed JSON or header")),
            (
                "408",
                error_response("Body not received within `KISS_REQUEST_TIMEOUT_SECS`"),
            ),
            ("413", error_response("Body over the route's size limit")),
            ("415", error_response("Body not sent as JSON")),
            (
                "422",
                error_response("Validation error: `errors` names every bad field"),
            ),
        ])
    }
}

/// 429 when a rate limit refuses the request (503, listed on every operation, also covers a
/// shared limiter that cannot be reached).
pub struct Limited;

impl IntoResponses for Limited {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[(
            "429",
            with_retry_after(error_response("Rate limited or cooling down")),
        )])
    }
}

/// 400 for a malformed Idempotency-Key; 409 for one used with another request, or in flight.
pub struct IdempotencyKeyErrors;

impl IntoResponses for IdempotencyKeyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            ("400", error_response("Malformed Idempotency-Key header")),
            (
                "409",
                error_response("Idempotency-Key used with a different request, or still in flight"),
            ),
        ])
    }
}

/// The optional `Idempotency-Key` header of the PMS writes.
pub struct IdempotencyKeyHeader;

impl utoipa::IntoParams for IdempotencyKeyHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1–255 visible ASCII characters; a retry with the same key and request replays the first answer",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[!-~]{1,255}$")),
                ))
                .build(),
        ]
    }
}
