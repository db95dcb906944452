//! Shared services the features build on: who is calling (`auth`), rate limits and
//! Idempotency-Key records. They know the domain and the leaves, never HTTP or a feature.

pub mod auth;
pub mod idempotency;
pub mod rate_limit;
