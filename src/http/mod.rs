//! HTTP plumbing shared by every feature: the state handlers reach, the rendering of domain errors
//! as the contract's answers, body and token extractors, request ids, and the rate-limit and
//! Idempotency-Key middleware. It knows services, the domain and the leaves, never a feature;
//! The `app` module above assembles the routers and the stack.

pub mod auth;
pub mod deadline;
pub mod docs;
pub mod error;
pub mod extract;
pub mod idempotency;
mod origin;
pub mod rate_limit;
pub mod request_id;
pub mod writes;

use std::sync::Arc;

use sqlx::PgPool;

use crate::infra::clock::SharedClock;
use crate::infra::config::Config;
use crate::infra::crypto::SecretHasher;
use crate::infra::sms::SmsSender;
use crate::services::auth::{ApiTokenCache, TenantTokenCache};
use crate::services::latency::LatencyProfile;
use crate::services::rate_limit::RateLimiter;

/// What an SMS send is assumed to take until one has been timed (a provider's API call).
const ASSUMED_SMS_LATENCY: std::time::Duration = std::time::Duration::from_millis(200);

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

/// What every handler can reach. One `Arc`, so the clone each layer and extractor makes per request
/// is one counter increment (it was one per field: measurable in the PATCH profile).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub hasher: Arc<SecretHasher>,
    pub sms: SmsSender,
    pub limiter: Arc<RateLimiter>,
    /// How long issuing and sending a code took lately (the anti-enumeration mode imitates it).
    pub sms_latency: Arc<LatencyProfile>,
    /// API and tenant tokens this process has accepted (what never changes about them).
    pub api_tokens: Arc<ApiTokenCache>,
    pub tenant_tokens: Arc<TenantTokenCache>,
}

impl AppState {
    /// Fails only on a `REDIS_URL` that cannot be parsed (Redis itself is reached lazily).
    pub fn new(db: PgPool, config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        // Metrics recorded from here on reach the Prometheus recorder.
        crate::infra::telemetry::metrics();
        let hasher = Arc::new(SecretHasher::new(config.app_key.clone()));
        let sms = SmsSender::new(config.sms_provider.clone());
        let limiter = Arc::new(RateLimiter::new(&config, clock.clone())?);
        Ok(AppState(Arc::new(Shared {
            db,
            config: Arc::new(config),
            clock,
            hasher,
            sms,
            limiter,
            sms_latency: Arc::new(LatencyProfile::new(ASSUMED_SMS_LATENCY)),
            api_tokens: Arc::default(),
            tenant_tokens: Arc::default(),
        })))
    }
}
