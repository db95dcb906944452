//! The one place where domain errors become the contract's answers: status, `{"message"}` (and
//! `errors` for validation), `WWW-Authenticate` on 401 and `Retry-After` on 429 and 503. 5xx causes are
//! logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{Error, ValidationErrors};

/// `Retry-After` of a 503: a restart or a lock wait is usually over within a second or two.
pub const RETRY_UNAVAILABLE_AFTER_SECS: u64 = 1;

pub fn status(error: &Error) -> StatusCode {
    match error {
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized { .. } | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
        Error::Forbidden => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::Validation(_) | Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::BadGateway(_) => StatusCode::BAD_GATEWAY,
        Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        Error::Unavailable(_) | Error::QuotaExhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `message` of the response body.
pub fn message(error: &Error) -> String {
    match error {
        Error::BadRequest(message) => message.clone(),
        Error::Unauthorized { .. } => "Unauthorized.".into(),
        Error::InvalidCredentials => "Invalid credentials.".into(),
        Error::Forbidden => "This action is unauthorized.".into(),
        Error::NotFound(message)
        | Error::Conflict(message)
        | Error::Unprocessable(message)
        | Error::BadGateway(message) => (*message).into(),
        Error::MethodNotAllowed => "Method not allowed.".into(),
        Error::PayloadTooLarge => "Payload too large.".into(),
        Error::UnsupportedMediaType => "The request body must be sent as application/json.".into(),
        Error::Validation(errors) => errors.summary(),
        Error::TooManyRequests { retry_after_secs } => {
            format!("Too many attempts. Please try again in {retry_after_secs} seconds.")
        }
        Error::RequestTimeout => "Request timeout.".into(),
        Error::Unavailable(_) | Error::QuotaExhausted { .. } | Error::Internal(_) => {
            "Server error.".into()
        }
    }
}

/// Every error's body: `message`, and for a validation error (422) `errors`, every problem by
/// field path.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(example = "The phone number field is required.")]
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>,
             example = json!({"phone_number": ["The phone number field is required."]}))]
    errors: Option<ValidationErrors>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(ref cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let status = status(&self);
        let message = message(&self);
        let (errors, headers_from) = match self {
            Error::Validation(errors) => (Some(errors), None),
            other => (None, Some(other)),
        };
        let mut response = (status, Json(ErrorBody { message, errors })).into_response();
        let headers = response.headers_mut();
        match headers_from {
            Some(Error::Unauthorized { token_sent }) => {
                let challenge = if token_sent {
                    "Bearer error=\"invalid_token\""
                } else {
                    "Bearer"
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            Some(
                Error::TooManyRequests { retry_after_secs }
                | Error::QuotaExhausted { retry_after_secs },
            ) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Some(Error::Unavailable(cause)) => {
                metrics::counter!("unavailable_total", "cause" => cause).increment(1);
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_UNAVAILABLE_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}
