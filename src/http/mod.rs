//! The HTTP surface: shared state, the router assembled from each feature's routes, and the
//! middleware stack (request id → trace → body limit) in one place.

pub mod auth;
pub mod error;
pub mod extract;
pub mod openapi;
mod request_id;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::response::Response;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::SecretHasher;
use crate::rate_limit::RateLimiter;
use crate::sms::SmsSender;
use crate::{admin, api_tokens, companies, health, otp_login, tenant_access, units};

pub use error::{Error, Result};
pub use request_id::RequestId;

/// The `{"data": …}` envelope of every successful body, with fields in declaration order.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Data<T> {
    pub data: T,
}

/// `Json(Data { data })`, the usual success body.
pub fn data<T>(data: T) -> axum::Json<Data<T>> {
    axum::Json(Data { data })
}

/// What every handler can reach. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub hasher: Arc<SecretHasher>,
    pub sms: SmsSender,
    pub limiter: Arc<RateLimiter>,
}

impl AppState {
    /// Fails only on a `REDIS_URL` that cannot be parsed (Redis itself is reached lazily).
    pub fn new(db: PgPool, config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        // Metrics recorded from here on reach the Prometheus recorder.
        crate::telemetry::metrics();
        let hasher = Arc::new(SecretHasher::new(config.app_key.clone()));
        let sms = SmsSender::new(config.sms_provider.clone());
        let limiter = Arc::new(RateLimiter::new(&config, clock.clone())?);
        Ok(AppState {
            db,
            config: Arc::new(config),
            clock,
            hasher,
            sms,
            limiter,
        })
    }
}

/// The whole application router, state applied.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(admin::router(&state))
        .merge(companies::router())
        .merge(api_tokens::router())
        .merge(units::router(&state))
        .merge(otp_login::router(&state))
        .merge(tenant_access::router());

    Router::new()
        .nest("/api/v2", api)
        .merge(health::router())
        .merge(openapi::router())
        .fallback(|| async { Error::NotFound("Not found.") })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(axum::middleware::from_fn(health::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// A NUL in the path cannot name anything stored (Postgres text cannot hold U+0000): answer 404
/// before any handler turns it into a database error. (Query values are checked by their route.)
async fn refuse_nul(request: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse as _;
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
        .map_or("(unmatched)", MatchedPath::as_str);
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

/// Serves until `shutdown` completes, then stops accepting and finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
