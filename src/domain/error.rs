//! The one error type of the features and stores. It names what went wrong in the contract's
//! terms; `http::error` maps each variant to its status, message and headers in one place.

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
    /// An upstream provider (the SMS gateway) failed.
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
    /// A 422 with one field error.
    pub fn field(path: &str, message: impl Into<String>) -> Self {
        let mut errors = ValidationErrors::new();
        errors.add(path, message);
        Error::Validation(errors)
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

    /// Records a message under `path`. Errors arrive field by field, so a second message for a
    /// path is almost always for the last one recorded: only that one is compared (the check stays
    /// linear in the number of errors).
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let message = message.into();
        match self.fields.last_mut() {
            Some((last, messages)) if *last == path => messages.push(message),
            _ => self.fields.push((path, vec![message])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
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
    pub fn summary(&self) -> String {
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
