//! Shared services the features build on: who is calling (`auth`), rate limits,
//! Idempotency-Key records and latency profiles. They know the domain and the leaves, never HTTP or a feature.

pub mod auth;
pub mod idempotency;
pub mod latency;
pub mod rate_limit;
