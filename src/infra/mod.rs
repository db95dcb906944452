//! Leaves of the crate: configuration, the clock, secrets and hashing, the database pool, the SMS
//! providers and telemetry. They may use `domain`, and nothing above it.

pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod outbound;
pub mod sms;
pub mod telemetry;
