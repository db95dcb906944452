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
    /// The client did not send its whole body within the request timeout.
    #[error("request timeout")]
    RequestTimeout,
    /// A dependency (the database, the shared rate limiter) is unreachable or busy past its
    /// timeout, or the request ran out of time: the client may retry. The text says which, for
    /// the log and metrics only.
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// A service-wide quota (the daily SMS budget) is spent until a slot frees in this many
    /// seconds: the service, not the client, is out of allowance.
    #[error("quota exhausted")]
    QuotaExhausted { retry_after_secs: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    /// A database that cannot be reached, is restarting, has no connection free within the
    /// pool's acquire timeout or kept a lock past `lock_timeout` is a 503 the client can retry;
    /// anything else is a bug (500).
    fn from(err: sqlx::Error) -> Self {
        if database_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Error::Unavailable("database")
        } else {
            Error::Internal(err.into())
        }
    }
}

fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exceptions; 57P01-03: shutting down or starting up; 53300: too many
            // connections; 55P03: lock_timeout; 3D000: the database is gone; 40P01/40001:
            // deadlock or serialization failure (safe to retry, rolled back).
            code.starts_with("08")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "53300" | "55P03" | "3D000" | "40P01" | "40001"
                )
        }),
        _ => false,
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

/// Field errors keyed by the field's path (`name`, `units.3.crm_unit_id`), in the order found. At
/// most [`MAX_LISTED_FIELDS`] fields are kept, so a huge bad body gets a small answer; the
/// summary still counts every message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: Vec<(String, Vec<String>)>,
    messages: usize,
}

/// How many fields a 422's `errors` lists at most.
pub const MAX_LISTED_FIELDS: usize = 100;

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a message under `path`. Errors arrive field by field, so a second message for a
    /// path is almost always for the last one recorded: only that one is compared (the check stays
    /// linear in the number of errors).
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.messages += 1;
        let path = path.into();
        let listed = self.fields.len();
        match self.fields.last_mut() {
            Some((last, messages)) if *last == path => messages.push(message.into()),
            _ if listed >= MAX_LISTED_FIELDS => {}
            _ => self.fields.push((path, vec![message.into()])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// `Ok(value)` when no error was recorded, the 422 otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(Error::Validation(self))
        }
    }

    /// The first message, and how many more there are (as Laravel words it), counting those
    /// past the listed fields too.
    pub fn summary(&self) -> String {
        let Some(first) = self.fields.first().and_then(|(_, m)| m.first()) else {
            return "The given data was invalid.".into();
        };
        match self.messages - 1 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_list_at_most_a_hundred_fields_but_count_every_message() {
        let mut errors = ValidationErrors::new();
        for index in 0..1000 {
            errors.add(format!("units.{index}.name"), "The name field is required.");
            errors.add(format!("units.{index}.name"), "Another problem.");
        }
        let json = serde_json::to_value(&errors).unwrap();
        assert_eq!(json.as_object().unwrap().len(), MAX_LISTED_FIELDS);
        assert_eq!(json["units.0.name"].as_array().unwrap().len(), 2);
        assert_eq!(
            errors.summary(),
            "The name field is required. (and 1999 more errors)"
        );
    }

    #[test]
    fn a_message_for_the_last_field_joins_it() {
        let mut errors = ValidationErrors::new();
        errors.add("name", "one");
        errors.add("name", "two");
        errors.add("size", "three");
        assert_eq!(
            serde_json::to_value(&errors).unwrap(),
            serde_json::json!({"name": ["one", "two"], "size": ["three"]})
        );
        assert_eq!(errors.summary(), "one (and 2 more errors)");
    }
}
