//! Request body extraction: JSON objects read under the body limit and answered in the contract's
//! shape when malformed (400), of the wrong type (415) or too large (413).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use super::error::{Error, ValidationErrors};

/// A request body parsed from JSON into a typed value, with field-by-field validation.
pub trait FromJsonBody: Sized {
    fn from_json(body: &Map<String, Value>, errors: &mut ValidationErrors) -> Option<Self>;
}

/// Extracts and validates a body: `Valid(body): Valid<SignIn>`.
pub struct Valid<T>(pub T);

impl<S: Send + Sync, T: FromJsonBody> FromRequest<S> for Valid<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let JsonObject(body) = JsonObject::from_request(req, state).await?;
        parse(&body).map(Valid)
    }
}

/// Parses and validates a body already read (for handlers that authorise before validating).
pub fn parse<T: FromJsonBody>(body: &Map<String, Value>) -> Result<T, Error> {
    let mut errors = ValidationErrors::new();
    let value = T::from_json(body, &mut errors);
    match value {
        Some(value) if errors.is_empty() => Ok(value),
        _ if errors.is_empty() => Err(Error::Internal(anyhow::anyhow!(
            "a body parser returned nothing without recording an error"
        ))),
        _ => Err(Error::Validation(errors)),
    }
}

/// The body as a JSON object. An empty body reads as `{}`, so a missing field is a 422 naming it.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json_media_type);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
                _ => Error::BadRequest("The request body could not be read.".into()),
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject(Map::new()));
        }
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(object)) => Ok(JsonObject(object)),
            Ok(_) => Err(Error::BadRequest(
                "The request body must be a JSON object.".into(),
            )),
            Err(err) => Err(Error::BadRequest(format!(
                "The request body is not valid JSON: {err}."
            ))),
        }
    }
}

/// `application/json`, any `+json` type, with or without parameters such as `charset`.
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::is_json_media_type;

    #[test]
    fn json_media_types_are_recognised_with_parameters() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/merge-patch+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
    }
}
