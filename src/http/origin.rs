//! Where a request came from, as audit events record it: the client IP (`rate_limit::client_ip`,
//! trusted proxies applied) and the request id.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::rate_limit::client_ip;
use super::{AppState, RequestId};
use crate::services::audit::Origin;

impl FromRequestParts<AppState> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Origin {
            ip: client_ip(
                &parts.headers,
                &parts.extensions,
                &state.config.trusted_proxies,
            ),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|id| id.as_str().to_owned()),
        })
    }
}
