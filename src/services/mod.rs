//! Shared services the features build on: who is calling (`auth`), audit events, rate limits,
//! Idempotency-Key records, latency profiles and webhook deliveries. They know the domain and the leaves, never HTTP or a feature.

pub mod audit;
pub mod auth;
pub mod idempotency;
pub mod latency;
pub mod rate_limit;
pub mod webhooks;
