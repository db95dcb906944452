//! Tenant tokens, `<id>|<secret>`: issued by an OTP login, refused once expired, revoked or when
//! the tenant has no tenancy left. No refresh: the app logs in again.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::crypto::{self, SecretHasher, random_secret};
use crate::http::auth::{TenantAuth, last_use_is_stale};
use crate::http::{AppState, Result};

fn secret_hash(hasher: &SecretHasher, secret: &str) -> Vec<u8> {
    hasher.hash(&[b"tenant-token", secret.as_bytes()])
}

/// Issues a token for the tenant and returns it with its expiry.
pub async fn issue(
    tx: &mut PgConnection,
    state: &AppState,
    tenant_id: &str,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>)> {
    let secret = random_secret();
    let expires_at = now + state.config.tenant_token_ttl;
    let id = sqlx::query_scalar!(
        "INSERT INTO tenant_tokens (tenant_id, secret_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4) RETURNING id",
        tenant_id,
        secret_hash(&state.hasher, &secret),
        now,
        expires_at,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((format!("{id}|{secret}"), expires_at))
}

/// The tenant behind a tenant token, if it is well-formed, current and matches.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<TenantAuth>> {
    let Some((id, secret)) = token.split_once('|') else {
        return Ok(None);
    };
    let (Ok(token_id), false) = (id.parse::<i64>(), secret.is_empty()) else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "SELECT tt.tenant_id, tt.secret_hash, tt.expires_at, tt.last_used_at
         FROM tenant_tokens tt
         WHERE tt.id = $1 AND tt.revoked_at IS NULL
           AND EXISTS (SELECT 1 FROM tenancies ty WHERE ty.tenant_id = tt.tenant_id)",
        token_id,
    )
    .fetch_optional(&state.db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let now = state.clock.now();
    let matches = crypto::constant_time_eq(&secret_hash(&state.hasher, secret), &row.secret_hash);
    if !matches || row.expires_at <= now {
        return Ok(None);
    }
    if last_use_is_stale(row.last_used_at, now) {
        sqlx::query!(
            "UPDATE tenant_tokens SET last_used_at = $2 WHERE id = $1",
            token_id,
            now
        )
        .execute(&state.db)
        .await?;
    }
    Ok(Some(TenantAuth {
        token_id,
        tenant_id: row.tenant_id,
    }))
}

pub async fn revoke(state: &AppState, token_id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE tenant_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        token_id,
        state.clock.now(),
    )
    .execute(&state.db)
    .await?;
    Ok(())
}
