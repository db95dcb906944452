//! Background clean-up of rows that can never be used again: expired Idempotency-Key records,
//! expired or revoked admin sessions and tenant tokens, and OTP challenges past both their
//! lifetime and their resend cooldown. Deletes run in bounded batches so no statement holds many
//! locks for long, and requests run in between. Each statement skips rows a request holds and
//! re-checks its condition on the row it deletes: a row refreshed meanwhile (a new code for the
//! phone, a reused Idempotency-Key) is not deleted. Audit events older than
//! `KISS_AUDIT_RETENTION_DAYS` go too, with their webhook deliveries and attempts.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};

use crate::domain::Result;
use crate::http::AppState;

/// Rows deleted per statement.
const BATCH: i64 = 1000;

/// Deletes everything that has expired at `now`, `batch` rows per statement; returns how many rows.
/// OTP challenges also wait out `otp_resend_cooldown`, which they carry.
pub async fn purge_expired(
    db: &PgPool,
    otp_resend_cooldown: TimeDelta,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<u64> {
    let cooldown_passed = now - otp_resend_cooldown;
    let idempotency = in_batches(db, batch, || {
        sqlx::query!(
            "DELETE FROM idempotency_keys WHERE (company_id, idempotency_key) IN (
                 SELECT company_id, idempotency_key FROM idempotency_keys
                 WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
               AND expires_at <= $1",
            now,
            batch,
        )
    })
    .await?;
    let sessions = in_batches(db, batch, || {
        sqlx::query!(
            "DELETE FROM admin_sessions WHERE id IN (
                 SELECT id FROM admin_sessions
                 WHERE expires_at <= $1 OR revoked_at IS NOT NULL LIMIT $2 FOR UPDATE SKIP LOCKED)
               AND (expires_at <= $1 OR revoked_at IS NOT NULL)",
            now,
            batch,
        )
    })
    .await?;
    let tenant_tokens = in_batches(db, batch, || {
        sqlx::query!(
            "DELETE FROM tenant_tokens WHERE id IN (
                 SELECT id FROM tenant_tokens
                 WHERE expires_at <= $1 OR revoked_at IS NOT NULL LIMIT $2 FOR UPDATE SKIP LOCKED)
               AND (expires_at <= $1 OR revoked_at IS NOT NULL)",
            now,
            batch,
        )
    })
    .await?;
    // A challenge also carries the resend cooldown, so it stays until that has passed too.
    let challenges = in_batches(db, batch, || {
        sqlx::query!(
            "DELETE FROM otp_challenges WHERE phone_e164 IN (
                 SELECT phone_e164 FROM otp_challenges
                 WHERE expires_at <= $1 AND sent_at <= $2 LIMIT $3 FOR UPDATE SKIP LOCKED)
               AND expires_at <= $1 AND sent_at <= $2",
            now,
            cooldown_passed,
            batch,
        )
    })
    .await?;
    Ok(idempotency + sessions + tenant_tokens + challenges)
}

/// Deletes the events that occurred before `now - retention` (their deliveries and attempts
/// follow by cascade), `batch` per statement; returns how many events.
pub async fn purge_old_events(
    db: &PgPool,
    retention: TimeDelta,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<u64> {
    let cutoff = now - retention;
    in_batches(db, batch, || {
        sqlx::query!(
            "DELETE FROM events WHERE id IN (
                 SELECT id FROM events WHERE occurred_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            batch,
        )
    })
    .await
}

/// Runs the `DELETE … LIMIT batch` statement until it deletes fewer than `batch` rows; returns the
/// total.
async fn in_batches<'q>(
    db: &PgPool,
    batch: i64,
    statement: impl Fn() -> Query<'q, Postgres, PgArguments>,
) -> Result<u64> {
    let mut total = 0;
    loop {
        let deleted = statement().execute(db).await?.rows_affected();
        total += deleted;
        if deleted < batch as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Purges every `every`, for as long as the server runs.
pub fn spawn(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let now = state.clock.now();
            match purge_expired(&state.db, state.config.otp_resend_cooldown, now, BATCH).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "purged expired rows"),
                Err(err) => tracing::warn!(error = ?err, "purging expired rows failed"),
            }
            let retention = state.config.audit_retention;
            match purge_old_events(&state.db, retention, now, BATCH).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "purged audit events past their retention"),
                Err(err) => tracing::warn!(error = ?err, "purging old audit events failed"),
            }
        }
    })
}
