//! Rate limits applied to routes (CONTRACT §7): a refused request is the contract's 429 and does
//! nothing else; every answer of a limited route carries the `RateLimit-Policy` / `RateLimit`
//! headers. The counting itself is `services::rate_limit`.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{Extensions, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::extract::{ParsedBody, parse_json_body};
use crate::domain::Error;
use crate::domain::validation::Validate;
use crate::services::auth::CompanyAuth;
use crate::services::rate_limit::Scope;

/// Runs the request if the limiter admits it under `keys`; a refusal is the 429 and nothing else
/// happens. Either way the answer carries the `RateLimit` headers.
pub async fn enforce(
    state: &AppState,
    keys: &[(Scope, String)],
    request: Request,
    next: Next,
) -> Response {
    let decision = match state.limiter.acquire(keys).await {
        Ok(decision) => decision,
        Err(err) => return err.into_response(),
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        for scope in decision.scopes() {
            metrics::counter!("rate_limited_total", "scope" => scope.name()).increment(1);
        }
        Error::TooManyRequests {
            retry_after_secs: decision.retry_after_secs,
        }
        .into_response()
    };
    if let Some((policy, state)) = decision.header_values() {
        let headers = response.headers_mut();
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// The client's address: the TCP peer.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// A body whose fields key its route's rate limits (the phone of an OTP request, the e-mail of a
/// sign-in).
pub trait LimitedBody: Validate<Raw: Clone + Sync> {
    /// The keys to count the request against; none when the body names no usable key (the
    /// route's validation then refuses it).
    fn rate_limit_keys(raw: &Self::Raw, client_ip: Option<IpAddr>) -> Vec<(Scope, String)>;
}

/// Middleware for routes limited by a key in their body: reads and parses the body once, counts
/// the request, and leaves the parsed body for the handler's `Input<T>`.
pub async fn by_body<T: LimitedBody>(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let ip = client_ip(request.extensions());
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return Error::PayloadTooLarge.into_response(),
    };
    let raw: T::Raw = match parse_json_body(&parts.headers, &bytes) {
        Ok(raw) => raw,
        Err(err) => return err.into_response(),
    };
    let keys = T::rate_limit_keys(&raw, ip);
    let mut request = Request::from_parts(parts, Body::empty());
    request.extensions_mut().insert(ParsedBody(raw));
    if keys.is_empty() {
        return next.run(request).await;
    }
    enforce(&state, &keys, request, next).await
}

/// Middleware for the PMS writes: limits per company (the API token is authenticated first).
pub async fn per_company(
    State((state, scope)): State<(AppState, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let auth = match CompanyAuth::from_request_parts(&mut parts, &state).await {
        Ok(auth) => auth,
        Err(err) => return err.into_response(),
    };
    let request = Request::from_parts(parts, body);
    enforce(
        &state,
        &[(scope, auth.company_id.to_string())],
        request,
        next,
    )
    .await
}
