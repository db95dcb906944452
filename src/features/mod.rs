//! The features: each owns its handlers, its domain rules and its queries. They build on
//! `http`, `services`, `domain` and `infra`; `app`, above them, routes them.
//!
//! Among themselves they point one way, in this order (a feature may use the ones above it):
//! `admin`, `companies`, `events`, `api_tokens`, `tenancy`, `units`, `otp_login`, `tenant_access`.

pub mod admin;
pub mod api_tokens;
pub mod companies;
pub mod events;
pub mod otp_login;
pub mod tenancy;
pub mod tenant_access;
pub mod units;
