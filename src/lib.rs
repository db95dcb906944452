//! kiss-auth: authentication for self-storage operators. PMS servers push units and tenancies with
//! company API tokens; white-label apps log tenants in by phone and SMS code; administrators
//! manage companies and tokens.

pub mod admin;
pub mod api_tokens;
pub mod cli;
pub mod clock;
pub mod companies;
pub mod config;
pub mod crypto;
pub mod db;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod maintenance;
pub mod otp_login;
pub mod phone;
pub mod rate_limit;
pub mod sms;
pub mod telemetry;
pub mod tenancies;
pub mod tenant_access;
pub mod units;
pub mod validation;
