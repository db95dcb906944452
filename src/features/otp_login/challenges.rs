//! One-time codes: one live challenge per phone, stored as a keyed hash of (phone, code).

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::Result;
use crate::domain::phone::PhoneE164;
use crate::infra::crypto::SecretHasher;

/// After this many wrong codes a challenge is dead, even if the right code follows.
pub const MAX_FAILED_ATTEMPTS: i32 = 5;

/// A fresh 6-digit code from the thread-local CSPRNG.
pub fn generate_code() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

pub fn code_hash(hasher: &SecretHasher, phone: &PhoneE164, code: &str) -> Vec<u8> {
    hasher.hash(&[b"otp", phone.as_str().as_bytes(), code.as_bytes()])
}

pub enum Issued {
    Issued,
    /// A code was sent too recently: wait this many seconds (at least 1).
    CoolingDown {
        retry_after_secs: u64,
    },
}

/// Stores a new challenge for the phone, valid until `expires_at`, replacing the previous one,
/// unless the previous one was sent within the cooldown. Check and replace are one statement, so
/// two concurrent requests for the same phone cannot both send a code.
pub async fn issue(
    db: &PgPool,
    phone: &PhoneE164,
    code_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    cooldown: TimeDelta,
) -> Result<Issued> {
    let stored = sqlx::query_scalar!(
        "INSERT INTO otp_challenges (phone_e164, code_hash, sent_at, expires_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (phone_e164) DO UPDATE SET
             code_hash = EXCLUDED.code_hash, sent_at = EXCLUDED.sent_at,
             expires_at = EXCLUDED.expires_at, failed_attempts = 0, consumed_at = NULL
         WHERE otp_challenges.sent_at <= $5
         RETURNING phone_e164",
        phone.as_str(),
        code_hash,
        now,
        expires_at,
        now - cooldown,
    )
    .fetch_optional(db)
    .await?;
    if stored.is_some() {
        return Ok(Issued::Issued);
    }
    let sent_at = sqlx::query_scalar!(
        "SELECT sent_at FROM otp_challenges WHERE phone_e164 = $1",
        phone.as_str()
    )
    .fetch_optional(db)
    .await?
    .unwrap_or(now);
    let wait = (sent_at + cooldown - now).num_milliseconds().max(0) as u64;
    Ok(Issued::CoolingDown {
        retry_after_secs: wait.div_ceil(1000).max(1),
    })
}

/// Removes a challenge whose SMS could not be sent, so no cooldown starts.
pub async fn withdraw(db: &PgPool, phone: &PhoneE164, code_hash: &[u8]) -> Result<()> {
    sqlx::query!(
        "DELETE FROM otp_challenges WHERE phone_e164 = $1 AND code_hash = $2",
        phone.as_str(),
        code_hash,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The phone's challenge, locked until the transaction ends so verifications of one phone run
/// one at a time.
pub struct Challenge {
    pub code_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub failed_attempts: i32,
    pub consumed: bool,
}

impl Challenge {
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        !self.consumed && self.expires_at > now && self.failed_attempts < MAX_FAILED_ATTEMPTS
    }
}

pub async fn lock(tx: &mut PgConnection, phone: &PhoneE164) -> Result<Option<Challenge>> {
    let challenge = sqlx::query_as!(
        Challenge,
        r#"SELECT code_hash, expires_at, failed_attempts, consumed_at IS NOT NULL AS "consumed!"
           FROM otp_challenges WHERE phone_e164 = $1 FOR UPDATE"#,
        phone.as_str(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(challenge)
}

pub async fn record_failure(tx: &mut PgConnection, phone: &PhoneE164) -> Result<()> {
    sqlx::query!(
        "UPDATE otp_challenges SET failed_attempts = failed_attempts + 1 WHERE phone_e164 = $1",
        phone.as_str(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn consume(tx: &mut PgConnection, phone: &PhoneE164, now: DateTime<Utc>) -> Result<()> {
    sqlx::query!(
        "UPDATE otp_challenges SET consumed_at = $2 WHERE phone_e164 = $1",
        phone.as_str(),
        now,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
