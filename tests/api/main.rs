//! Black-box tests: the real router served over HTTP on a loopback port, each test with a fresh
//! Postgres database (`#[sqlx::test]`), and the real binary for the command line.

mod helpers;

mod admin_sessions;
mod api_tokens;
mod cli;
mod companies;
mod conventions;
mod tenancies;
mod units;
