//! Request bodies: read once under the body limit, parsed once into the input's raw form, then
//! validated. A malformed body is a 400, one of the wrong type a 415, one too large a 413, and a
//! body that parses but breaks a rule a 422 naming every bad field.

use axum::body::Bytes;
use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::domain::Error;
use crate::domain::validation::Validate;

/// A validated body: `Input(sign_in): Input<SignIn>`.
pub struct Input<T>(pub T);

/// A body parsed but not yet validated, for handlers that authorise before they validate:
/// `Body(raw): Body<NewCompanyBody>`, then `NewCompany::from_raw(&raw)?`.
pub struct Body<R>(pub R);

impl<S: Send + Sync, R: DeserializeOwned> FromRequest<S> for Body<R> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        read_json(req, state).await.map(Body)
    }
}

/// The query string's parameters by name; a query string that cannot be decoded is a 400.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Query(params) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::BadRequest("The query string is malformed.".into()))?;
        Ok(QueryParams(params))
    }
}

/// A body a layer already parsed (a rate limit keyed by a body field), left in the request's
/// extensions for the handler's [`Input`] so the body is parsed once.
#[derive(Clone)]
pub struct ParsedBody<R>(pub R);

impl<S: Send + Sync, T: Validate> FromRequest<S> for Input<T>
where
    T::Raw: Clone + Sync,
{
    type Rejection = Error;

    async fn from_request(mut req: Request, state: &S) -> Result<Self, Error> {
        let raw = match req.extensions_mut().remove::<ParsedBody<T::Raw>>() {
            Some(ParsedBody(raw)) => raw,
            None => read_json(req, state).await?,
        };
        T::from_raw(&raw).map(Input)
    }
}

/// Reads the body (under the route's limit) and parses it into `R`.
async fn read_json<R: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<R, Error> {
    let headers = req.headers().clone();
    let bytes =
        Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
                _ => Error::BadRequest("The request body could not be read.".into()),
            })?;
    parse_json_body(&headers, &bytes)
}

/// Reads a body of at most `limit` bytes. One declared larger (`Content-Length`) is refused before
/// any of it is read; one that turns out larger is refused as soon as the limit is passed.
pub async fn read_limited(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Error::PayloadTooLarge);
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>());
        if too_large {
            Error::PayloadTooLarge
        } else {
            Error::BadRequest("The request body could not be read.".into())
        }
    })
}

/// Parses a body into `R`, which must come from a JSON object sent as JSON. An empty body reads
/// as `{}`, so a missing field is a 422 naming it.
pub fn parse_json_body<R: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<R, Error> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_json_media_type);
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let Some(&first) = first else {
        return parse(b"{}");
    };
    if !is_json {
        return Err(Error::UnsupportedMediaType);
    }
    if first != b'{' {
        // Arrays and scalars are refused even where a struct could be read from an array.
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => Error::BadRequest("The request body must be a JSON object.".into()),
            Err(err) => not_json(&err),
        });
    }
    parse(bytes)
}

fn parse<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, Error> {
    serde_json::from_slice(bytes).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => {
            Error::BadRequest(format!("The request body could not be read: {err}."))
        }
        _ => not_json(&err),
    })
}

fn not_json(err: &serde_json::Error) -> Error {
    Error::BadRequest(format!("The request body is not valid JSON: {err}."))
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
