//! Tenant tokens, `<id>|<secret>`: issued by an OTP login and revoked by logout. They are checked
//! by `services::auth`, which also refuses them once expired, when the tenant has no
//! tenancy left, or when the PMS has given the tenant account another phone. No refresh: the app logs in again.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Result;
use crate::infra::crypto::SecretHasher;
use crate::services::auth;

/// Issues a token for the tenant account, held by the person (phone) who logged in, and returns
/// it with its expiry. The token works only while the account keeps that person's phone.
pub async fn issue(
    tx: &mut PgConnection,
    hasher: &SecretHasher,
    ttl: TimeDelta,
    tenant_id: &str,
    person_id: &str,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>)> {
    let (secret, secret_hash) = auth::new_tenant_secret(hasher);
    let expires_at = now + ttl;
    let id = sqlx::query_scalar!(
        "INSERT INTO tenant_tokens (tenant_id, person_id, secret_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        tenant_id,
        person_id,
        secret_hash,
        now,
        expires_at,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((auth::tenant_token(id, &secret), expires_at))
}

/// Revokes the token; the company of its tenant account when it was still active.
pub async fn revoke(
    tx: &mut PgConnection,
    token_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    let company_id = sqlx::query_scalar!(
        "UPDATE tenant_tokens tt SET revoked_at = $2
         FROM tenants t
         WHERE tt.id = $1 AND tt.revoked_at IS NULL AND t.id = tt.tenant_id
         RETURNING t.company_id",
        token_id,
        now,
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(company_id)
}
