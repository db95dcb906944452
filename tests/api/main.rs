//! Black-box tests: the real router served over HTTP on a loopback port, each test with a fresh
//! Postgres database (`#[sqlx::test]`), and the real binary for the command line.

mod architecture;
mod browser;
mod fake_twilio;
mod hardening;
mod helpers;
mod idempotency;
mod openapi;
mod operability;
mod receiver;

mod admin_sessions;
mod admins;
mod api_tokens;
mod cli;
mod companies;
mod conventions;
mod dashboard;
mod events;
mod otp_login;
mod rate_limits;
mod revocation;
mod sms_abuse;
mod tenancies;
mod units;
