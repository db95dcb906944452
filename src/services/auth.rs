//! Who is calling: the three kinds of bearer token and the identities they stand for.
//!
//! Every token is `<id><separator><secret>`: the id finds one row by primary key, the secret (256
//! bits from a CSPRNG) is stored only as a keyed hash and compared in constant time. One check
//! ([`check`]) serves all three kinds; only the lookup differs. A token of one kind never parses as
//! another, so it is refused wherever another kind is required.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Error, Result};
use crate::infra::crypto::{SecretHasher, random_secret, split_token};

/// `last_used_at` is written at most this often per token, so a busy token costs no write per request.
const LAST_USED_GRANULARITY: TimeDelta = TimeDelta::seconds(60);

/// An administrator as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Admin {
    pub id: Uuid,
    pub email: String,
    /// `null` for a super admin.
    pub company_id: Option<Uuid>,
}

/// A signed-in administrator (admin token).
#[derive(Debug, Clone)]
pub struct AdminAuth {
    pub session_id: Uuid,
    pub admin: Admin,
}

impl AdminAuth {
    /// Only super admins may act across companies.
    pub fn require_super_admin(&self) -> Result<()> {
        match self.admin.company_id {
            None => Ok(()),
            Some(_) => Err(Error::Forbidden),
        }
    }
}

/// A PMS server acting for one company (API token).
#[derive(Debug, Clone, Copy)]
pub struct CompanyAuth {
    pub company_id: Uuid,
    pub token_id: Uuid,
}

/// A tenant logged in by OTP (tenant token).
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub token_id: i64,
    pub tenant_id: String,
}

/// The three kinds of token, each with its own form and hash domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `kadm_<session id>.<secret>`
    Admin,
    /// `kat_<token id>.<secret>`
    Api,
    /// `<id>|<secret>`, as in the reference docs.
    Tenant,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Admin => "kadm_",
            Kind::Api => "kat_",
            Kind::Tenant => "",
        }
    }

    /// What is hashed for a secret. Admin and API hashes bind the id too; tenant hashes predate
    /// that and stay as they were so issued tokens keep working.
    fn hashed_parts<'a>(self, id: &'a [u8], secret: &'a str) -> Vec<&'a [u8]> {
        match self {
            Kind::Admin => vec![b"admin-token", id, secret.as_bytes()],
            Kind::Api => vec![b"api-token", id, secret.as_bytes()],
            Kind::Tenant => vec![b"tenant-token", secret.as_bytes()],
        }
    }

    fn hash(self, hasher: &SecretHasher, id: &[u8], secret: &str) -> Vec<u8> {
        hasher.hash(&self.hashed_parts(id, secret))
    }
}

/// What a lookup found for a token id.
struct Stored {
    secret_hash: Vec<u8>,
    expires_at: Option<DateTime<Utc>>,
    /// `Some` for kinds that record their last use.
    last_used_at: Option<Option<DateTime<Utc>>>,
}

/// The verdict on a presented secret.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Refused,
    /// Accepted; `record_use` when `last_used_at` is old enough to be written again.
    Accepted {
        record_use: bool,
    },
}

/// The one token check: the secret's keyed hash compared in constant time, then expiry and
/// whether the last use is worth recording.
fn check(
    kind: Kind,
    hasher: &SecretHasher,
    id: &[u8],
    secret: &str,
    stored: &Stored,
    now: DateTime<Utc>,
) -> Verdict {
    if !hasher.verify(&kind.hashed_parts(id, secret), &stored.secret_hash) {
        return Verdict::Refused;
    }
    if stored
        .expires_at
        .is_some_and(|expires_at| expires_at <= now)
    {
        return Verdict::Refused;
    }
    let record_use = stored
        .last_used_at
        .is_some_and(|last| last.is_none_or(|used| now - used >= LAST_USED_GRANULARITY));
    Verdict::Accepted { record_use }
}

/// A new token: what the client is shown once, and what is stored.
pub struct NewToken {
    pub id: Uuid,
    pub token: String,
    pub secret_hash: Vec<u8>,
}

fn new_token(kind: Kind, hasher: &SecretHasher) -> NewToken {
    let id = Uuid::new_v4();
    let secret = random_secret();
    NewToken {
        id,
        token: format!("{}{}.{secret}", kind.prefix(), id.simple()),
        secret_hash: kind.hash(hasher, id.as_bytes(), &secret),
    }
}

pub fn new_api_token(hasher: &SecretHasher) -> NewToken {
    new_token(Kind::Api, hasher)
}

pub fn new_admin_token(hasher: &SecretHasher) -> NewToken {
    new_token(Kind::Admin, hasher)
}

/// A tenant token's secret and its hash; the id is the row's, so the token is formed after the
/// insert with [`tenant_token`].
pub fn new_tenant_secret(hasher: &SecretHasher) -> (String, Vec<u8>) {
    let secret = random_secret();
    let hash = Kind::Tenant.hash(hasher, &[], &secret);
    (secret, hash)
}

pub fn tenant_token(id: i64, secret: &str) -> String {
    format!("{id}|{secret}")
}

/// The `<prefix><uuid>.<secret>` parts of an admin or API token.
fn split_uuid_token(kind: Kind, token: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = split_token(token, kind.prefix())?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// The admin behind an admin token, if the token is well-formed, current and matches.
pub async fn authenticate_admin(
    db: &PgPool,
    hasher: &SecretHasher,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<AdminAuth>> {
    let Some((session_id, secret)) = split_uuid_token(Kind::Admin, token) else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "SELECT s.secret_hash, s.expires_at, a.id AS admin_id, a.email, a.company_id
         FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
         WHERE s.id = $1 AND s.revoked_at IS NULL AND a.disabled_at IS NULL",
        session_id,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored = Stored {
        secret_hash: row.secret_hash,
        expires_at: Some(row.expires_at),
        last_used_at: None,
    };
    let verdict = check(
        Kind::Admin,
        hasher,
        session_id.as_bytes(),
        secret,
        &stored,
        now,
    );
    if verdict == Verdict::Refused {
        return Ok(None);
    }
    Ok(Some(AdminAuth {
        session_id,
        admin: Admin {
            id: row.admin_id,
            email: row.email,
            company_id: row.company_id,
        },
    }))
}

/// The company behind an API token, if the token is well-formed, not revoked and matches.
pub async fn authenticate_api(
    db: &PgPool,
    hasher: &SecretHasher,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<CompanyAuth>> {
    let Some((token_id, secret)) = split_uuid_token(Kind::Api, token) else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "SELECT company_id, secret_hash, last_used_at FROM api_tokens
         WHERE id = $1 AND revoked_at IS NULL",
        token_id,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored = Stored {
        secret_hash: row.secret_hash,
        expires_at: None,
        last_used_at: Some(row.last_used_at),
    };
    let Verdict::Accepted { record_use } =
        check(Kind::Api, hasher, token_id.as_bytes(), secret, &stored, now)
    else {
        return Ok(None);
    };
    if record_use {
        sqlx::query!(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
            token_id,
            now
        )
        .execute(db)
        .await?;
    }
    Ok(Some(CompanyAuth {
        company_id: row.company_id,
        token_id,
    }))
}

/// The tenant behind a tenant token, if it is well-formed, current, matches, and its tenant
/// still has a tenancy.
pub async fn authenticate_tenant(
    db: &PgPool,
    hasher: &SecretHasher,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<TenantAuth>> {
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
           AND EXISTS (SELECT 1 FROM tenants t JOIN tenancies ty ON ty.tenant_id = t.id
                       WHERE t.id = tt.tenant_id AND t.person_id = tt.person_id)",
        token_id,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored = Stored {
        secret_hash: row.secret_hash,
        expires_at: Some(row.expires_at),
        last_used_at: Some(row.last_used_at),
    };
    let Verdict::Accepted { record_use } = check(Kind::Tenant, hasher, &[], secret, &stored, now)
    else {
        return Ok(None);
    };
    if record_use {
        sqlx::query!(
            "UPDATE tenant_tokens SET last_used_at = $2 WHERE id = $1",
            token_id,
            now
        )
        .execute(db)
        .await?;
    }
    Ok(Some(TenantAuth {
        token_id,
        tenant_id: row.tenant_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::config::AppKey;

    fn stored(hasher: &SecretHasher, kind: Kind, id: &[u8], secret: &str) -> Stored {
        Stored {
            secret_hash: kind.hash(hasher, id, secret),
            expires_at: None,
            last_used_at: Some(None),
        }
    }

    #[test]
    fn a_secret_is_accepted_only_for_its_own_kind_and_id() {
        let hasher = SecretHasher::new(AppKey::generate());
        let now = Utc::now();
        let api = stored(&hasher, Kind::Api, b"id-1", "s3cret");
        assert_ne!(
            check(Kind::Api, &hasher, b"id-1", "s3cret", &api, now),
            Verdict::Refused
        );
        assert_eq!(
            check(Kind::Api, &hasher, b"id-2", "s3cret", &api, now),
            Verdict::Refused
        );
        assert_eq!(
            check(Kind::Admin, &hasher, b"id-1", "s3cret", &api, now),
            Verdict::Refused
        );
        assert_eq!(
            check(Kind::Api, &hasher, b"id-1", "s3creT", &api, now),
            Verdict::Refused
        );
    }

    #[test]
    fn expiry_and_last_use_are_judged_against_now() {
        let hasher = SecretHasher::new(AppKey::generate());
        let now = Utc::now();
        let mut token = stored(&hasher, Kind::Tenant, &[], "s");
        assert_eq!(
            check(Kind::Tenant, &hasher, &[], "s", &token, now),
            Verdict::Accepted { record_use: true }
        );
        token.last_used_at = Some(Some(now - TimeDelta::seconds(59)));
        assert_eq!(
            check(Kind::Tenant, &hasher, &[], "s", &token, now),
            Verdict::Accepted { record_use: false }
        );
        token.expires_at = Some(now);
        assert_eq!(
            check(Kind::Tenant, &hasher, &[], "s", &token, now),
            Verdict::Refused
        );
    }

    #[test]
    fn tokens_of_one_kind_do_not_parse_as_another() {
        let hasher = SecretHasher::new(AppKey::generate());
        let api = new_api_token(&hasher);
        assert!(split_uuid_token(Kind::Api, &api.token).is_some());
        assert!(split_uuid_token(Kind::Admin, &api.token).is_none());
        let admin = new_admin_token(&hasher);
        assert!(split_uuid_token(Kind::Api, &admin.token).is_none());
    }
}
