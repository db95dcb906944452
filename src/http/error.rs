//! The one error type of the HTTP surface. Every failure renders the contract's `{"message"}` (and
//! `errors` for validation) with its status; 5xx causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request (JSON syntax, a bad header); the text tells the client what is wrong.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Missing, unknown, revoked or expired bearer token.
    #[error("unauthorized")]
    Unauthorized { token_sent: bool },
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("forbidden")]
    Forbidden,
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Validation(ValidationErrors),
    /// A 422 that is about the request as a whole rather than one field.
    #[error("unprocessable: {0}")]
    Unprocessable(&'static str),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("bad gateway: {0}")]
    BadGateway(&'static str),
    /// A dependency (the shared rate limiter) is unreachable and the request may not go on without it.
    #[error("service unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Internal(err.into())
    }
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Validation(errors)
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
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
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `message` of the response body.
    pub fn message(&self) -> String {
        match self {
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
            Error::UnsupportedMediaType => {
                "The request body must be sent as application/json.".into()
            }
            Error::Validation(errors) => errors.summary(),
            Error::TooManyRequests { retry_after_secs } => {
                format!("Too many attempts. Please try again in {retry_after_secs} seconds.")
            }
            Error::Unavailable | Error::Internal(_) => "Server error.".into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a ValidationErrors>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(ref cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let body = ErrorBody {
            message: self.message(),
            errors: match &self {
                Error::Validation(errors) => Some(errors),
                _ => None,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Error::Unauthorized { token_sent } => {
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
            Error::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// Field errors keyed by the field's path (`name`, `units.3.crm_unit_id`), in the order found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: Vec<(String, Vec<String>)>,
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let message = message.into();
        match self.fields.iter_mut().find(|(p, _)| *p == path) {
            Some((_, messages)) => messages.push(message),
            None => self.fields.push((path, vec![message])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn has(&self, path: &str) -> bool {
        self.fields.iter().any(|(p, _)| p == path)
    }

    /// `Ok(value)` when no error was recorded, the 422 otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(Error::Validation(self))
        }
    }

    /// The first message, and how many more there are (as Laravel words it).
    fn summary(&self) -> String {
        let mut messages = self.fields.iter().flat_map(|(_, m)| m.iter());
        let Some(first) = messages.next() else {
            return "The given data was invalid.".into();
        };
        match messages.count() {
            0 => first.clone(),
            1 => format!("{first} (and 1 more error)"),
            more => format!("{first} (and {more} more errors)"),
        }
    }
}

impl Serialize for ValidationErrors {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (path, messages) in &self.fields {
            map.serialize_entry(path, messages)?;
        }
        map.end()
    }
}
