//! Tenant tokens, `<id>|<secret>`: issued by an OTP login and revoked by logout. They are checked
//! by `services::auth`, which also refuses them once expired or when the tenant has no
//! tenancy left. No refresh: the app logs in again.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::Result;
use crate::infra::crypto::SecretHasher;
use crate::services::auth;

/// Issues a token for the tenant and returns it with its expiry.
pub async fn issue(
    tx: &mut PgConnection,
    hasher: &SecretHasher,
    ttl: TimeDelta,
    tenant_id: &str,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>)> {
    let (secret, secret_hash) = auth::new_tenant_secret(hasher);
    let expires_at = now + ttl;
    let id = sqlx::query_scalar!(
        "INSERT INTO tenant_tokens (tenant_id, secret_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4) RETURNING id",
        tenant_id,
        secret_hash,
        now,
        expires_at,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((auth::tenant_token(id, &secret), expires_at))
}

pub async fn revoke(db: &PgPool, token_id: i64, now: DateTime<Utc>) -> Result<()> {
    sqlx::query!(
        "UPDATE tenant_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        token_id,
        now,
    )
    .execute(db)
    .await?;
    Ok(())
}
