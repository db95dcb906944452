//! The top of the crate: every feature's routes in one table, the middleware stack, the OpenAPI
//! document, operability endpoints, background clean-up, and the server itself.

mod dashboard;
pub mod deliveries;
pub mod health;
pub mod maintenance;
pub mod openapi;
mod pms;
mod server;

pub use server::serve;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::domain::Error;
use crate::features::admin::accounts;
use crate::features::admin::sessions::{self, SignIn};
use crate::features::otp_login::input::{PhoneLogin, VerifyOtp};
use crate::features::{api_tokens, companies, events, otp_login, tenant_access};
use crate::http::rate_limit::by_body;
use crate::http::{AppState, RequestId, deadline, request_id};

/// The whole application router, state applied. Outermost layer first: request id → NUL guard →
/// trace → metrics → request deadline → body limit → the route (with its own stack: see `pms` and the limited routes).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        // Administration (admin token); sign-in is limited per e-mail and client IP.
        .route(
            "/admin/sign-in",
            post(sessions::sign_in.layer(from_fn_with_state(state.clone(), by_body::<SignIn>))),
        )
        .route("/admin/sign-out", post(sessions::sign_out))
        .route("/admin/me", get(accounts::me))
        .route("/admin/password", post(accounts::change_password))
        .route(
            "/admins",
            get(accounts::list_admins).post(accounts::create_admin),
        )
        .route("/admins/{admin_id}/disable", post(accounts::disable_admin))
        .route(
            "/companies",
            get(companies::list_companies).post(companies::create_company),
        )
        .route(
            "/companies/{company_id}/api-tokens",
            get(api_tokens::list_tokens).post(api_tokens::create_token),
        )
        .route(
            "/companies/{company_id}/api-tokens/{token_id}",
            delete(api_tokens::revoke_token),
        )
        // Audit events and webhooks (admin token).
        .route("/events", get(events::all_events))
        .route(
            "/companies/{company_id}/events",
            get(events::company_events),
        )
        .route(
            "/companies/{company_id}/webhooks",
            get(events::list_webhooks).post(events::create_webhook),
        )
        .route(
            "/companies/{company_id}/webhooks/{webhook_id}",
            delete(events::delete_webhook),
        )
        .route(
            "/companies/{company_id}/webhooks/{webhook_id}/deliveries",
            get(events::list_deliveries),
        )
        // Tenant login (no token); both public routes are limited per phone.
        .route(
            "/auth/phone",
            post(
                otp_login::request_code
                    .layer(from_fn_with_state(state.clone(), by_body::<PhoneLogin>)),
            ),
        )
        .route(
            "/auth/verify-otp",
            post(
                otp_login::verify_code
                    .layer(from_fn_with_state(state.clone(), by_body::<VerifyOtp>)),
            ),
        )
        .route("/auth/logout", post(otp_login::logout))
        // What a tenant sees (tenant token).
        .route("/tenant/access", get(tenant_access::access))
        .route("/tenant/units/{unit_id}", get(tenant_access::unit))
        // PMS push (API token).
        .merge(pms::router(&state))
        // No API answer may be cached: they carry tokens, gate codes and personal data.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));

    Router::new()
        .nest("/api/v2", api)
        .merge(health::router())
        .merge(dashboard::router())
        .merge(openapi::router(&state.config))
        .fallback(|| async { Error::NotFound("Not found.") })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(from_fn_with_state(
            state.config.request_timeout,
            deadline::enforce,
        ))
        .layer(from_fn(health::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .layer(from_fn(refuse_nul))
        .layer(from_fn(request_id::assign))
        .with_state(state)
}

/// A NUL in the path cannot name anything stored (Postgres text cannot hold U+0000): answer 404
/// before any handler turns it into a database error. (Query values are checked by their route.)
async fn refuse_nul(request: Request, next: Next) -> Response {
    let has_nul = |part: &str| part.to_ascii_lowercase().contains("%00");
    if has_nul(request.uri().path()) {
        return Error::NotFound("Not found.").into_response();
    }
    next.run(request).await
}

/// One span per request with its id and route template; never headers (they carry tokens).
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |id| id.as_str());
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
    )
}

fn log_response(response: &Response, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request finished"
    );
}
