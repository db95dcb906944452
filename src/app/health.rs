//! Operability endpoints outside `/api/v2`: liveness, readiness and Prometheus metrics.
//!
//! `/metrics` is served on the main listener without authentication: it holds counts and latencies
//! by route template, status and scope, never ids, phones or tokens. Keep it off the public
//! internet at the proxy (as one does with `/readyz`).

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::http::AppState;
use crate::infra::telemetry;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when Postgres (and Redis, with the `redis` rate-limit backend) answer within 2 s each.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Postgres (and Redis when used) answer"),
              (status = 503, description = "A dependency does not answer; `checks` says which")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let timeout = Duration::from_secs(2);
    let database = tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&state.db))
        .await
        .is_ok_and(|result| result.is_ok());
    let redis = match state.limiter.uses_redis() {
        false => None,
        true => Some(
            tokio::time::timeout(timeout, state.limiter.ping())
                .await
                .is_ok_and(|ok| ok),
        ),
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut checks = json!({"database": word(database)});
    if let Some(redis) = redis {
        checks["redis"] = json!(word(redis));
    }
    if database && redis.unwrap_or(true) {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": checks})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"message": "Server error.", "checks": checks})),
        )
            .into_response()
    }
}

/// Prometheus text format, with the pool gauges taken at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    let idle = state.db.num_idle() as f64;
    let size = f64::from(state.db.size());
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set((size - idle).max(0.0));
    let handle = telemetry::metrics();
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Counts every request by method, route template and status, with its latency. Every label
/// comes from a fixed set, whatever the client sends: a method outside the usual seven is
/// `OTHER`, a path outside the route table `unmatched`.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
