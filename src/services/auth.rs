//! Who is calling: the three kinds of bearer token and the identities they stand for.
//!
//! Every token is `<id><separator><secret>`: the id finds one row by primary key, the secret (256
//! bits from a CSPRNG) is stored only as a keyed hash and compared in constant time. One check
//! ([`check`]) serves all three kinds; only the lookup differs. A token of one kind never parses as
//! another, so it is refused wherever another kind is required.
//!
//! The hot routes (PMS writes, `GET /tenant/access`) authenticate through a [`TokenCache`] of
//! what never changes about a token (its secret's hash, its company or tenant, its expiry), so a
//! busy token costs no lookup of its own. Whether it is still *live* (not revoked; for a tenant,
//! still renting as the person who logged in) is never cached: the statement that does the
//! request's work checks it, or the caller asks [`api_token_live`] before answering.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Error, Result};
use crate::infra::crypto::{SecretHasher, random_secret, split_token};

/// `last_used_at` is written at most this often per token, so a busy token costs no write per request.
const LAST_USED_GRANULARITY: TimeDelta = TimeDelta::seconds(60);

/// How many accepted tokens of one kind a process remembers; past it the cache starts over (only
/// tokens whose secret matched are kept, so only holders of valid tokens can fill it).
const TOKEN_CACHE_CAPACITY: usize = 10_000;

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

/// What a process remembers of an accepted token: only facts that cannot change.
struct Cached<F> {
    /// The secret's hash and the expiry; its `last_used_at` is left out (see `use_recorded_at`).
    stored: Stored,
    facts: F,
    /// When this process last wrote the token's `last_used_at` (Unix milliseconds).
    use_recorded_at: AtomicI64,
}

impl<F> Cached<F> {
    /// What to remember of a token just looked up; `recorded` when this request wrote its use.
    fn new(mut stored: Stored, facts: F, recorded: bool, now: DateTime<Utc>) -> Self {
        let use_recorded_at = match stored.last_used_at.take().flatten() {
            Some(used) if !recorded => used,
            _ => now,
        };
        Cached {
            stored,
            facts,
            use_recorded_at: AtomicI64::new(use_recorded_at.timestamp_millis()),
        }
    }

    /// Whether this request should write `last_used_at` (at most once a minute per process);
    /// claims the write, so concurrent requests do not all make it.
    fn claim_use_record(&self, now: DateTime<Utc>) -> bool {
        let last = self.use_recorded_at.load(Ordering::Relaxed);
        now.timestamp_millis() - last >= LAST_USED_GRANULARITY.num_milliseconds()
            && self
                .use_recorded_at
                .compare_exchange(
                    last,
                    now.timestamp_millis(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Accepted tokens of one kind, by id. See the module documentation for what may be cached.
pub struct TokenCache<K, F> {
    entries: Mutex<HashMap<K, Arc<Cached<F>>>>,
}

impl<K: Hash + Eq + Copy, F> Default for TokenCache<K, F> {
    fn default() -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Copy, F> TokenCache<K, F> {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<Cached<F>>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: K) -> Option<Arc<Cached<F>>> {
        self.entries().get(&id).cloned()
    }

    fn remember(&self, id: K, cached: Cached<F>) {
        let mut entries = self.entries();
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(id, Arc::new(cached));
    }

    /// Drops a token found dead, so its next request is looked up (and refused) before anything
    /// else runs.
    pub fn forget(&self, id: K) {
        self.entries().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verdict on a presented secret from what is remembered: `None` when nothing is.
    fn check(
        &self,
        kind: Kind,
        hasher: &SecretHasher,
        id: K,
        id_bytes: &[u8],
        secret: &str,
        now: DateTime<Utc>,
    ) -> Option<CachedVerdict<F>>
    where
        F: Clone,
    {
        let cached = self.get(id)?;
        Some(
            match check(kind, hasher, id_bytes, secret, &cached.stored, now) {
                Verdict::Refused => CachedVerdict::Refused,
                Verdict::Accepted { .. } => CachedVerdict::Accepted {
                    facts: cached.facts.clone(),
                    record_use: cached.claim_use_record(now),
                },
            },
        )
    }
}

enum CachedVerdict<F> {
    Refused,
    /// The secret matches and the token has not expired; its liveness is not known.
    Accepted {
        facts: F,
        record_use: bool,
    },
}

/// Accepted API tokens: token id → company.
pub type ApiTokenCache = TokenCache<Uuid, Uuid>;
/// Accepted tenant tokens: token id → tenant.
pub type TenantTokenCache = TokenCache<i64, String>;

/// An accepted token, and whether the database confirmed during this request that it is live.
/// When it did not (the token came from the cache), the caller must check liveness before it
/// answers: inside the statement that does the work, or with [`api_token_live`].
#[derive(Debug, Clone)]
pub struct Accepted<A> {
    pub auth: A,
    pub confirmed_live: bool,
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

/// A token id that can record its token's use.
trait TokenId: Hash + Eq + Copy {
    async fn record_use(self, db: &PgPool, now: DateTime<Utc>) -> Result<()>;
}

impl TokenId for Uuid {
    async fn record_use(self, db: &PgPool, now: DateTime<Utc>) -> Result<()> {
        sqlx::query!(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
            self,
            now
        )
        .execute(db)
        .await?;
        Ok(())
    }
}

impl TokenId for i64 {
    async fn record_use(self, db: &PgPool, now: DateTime<Utc>) -> Result<()> {
        sqlx::query!(
            "UPDATE tenant_tokens SET last_used_at = $2 WHERE id = $1",
            self,
            now
        )
        .execute(db)
        .await?;
        Ok(())
    }
}

/// A presented token of `kind`: judged from the cache when it was accepted before (then its
/// liveness is unknown: `confirmed_live` is false), else by `lookup` of the live token (and then
/// remembered). Records the token's use when due. `None` when refused.
#[allow(clippy::too_many_arguments)]
async fn authenticate<K: TokenId, F: Clone>(
    db: &PgPool,
    hasher: &SecretHasher,
    cache: &TokenCache<K, F>,
    kind: Kind,
    (id, id_bytes): (K, &[u8]),
    secret: &str,
    now: DateTime<Utc>,
    lookup: impl AsyncFnOnce() -> Result<Option<(Stored, F)>>,
) -> Result<Option<Accepted<F>>> {
    if let Some(verdict) = cache.check(kind, hasher, id, id_bytes, secret, now) {
        let CachedVerdict::Accepted { facts, record_use } = verdict else {
            return Ok(None);
        };
        if record_use {
            id.record_use(db, now).await?;
        }
        return Ok(Some(Accepted {
            auth: facts,
            confirmed_live: false,
        }));
    }
    let Some((stored, facts)) = lookup().await? else {
        return Ok(None);
    };
    let Verdict::Accepted { record_use } = check(kind, hasher, id_bytes, secret, &stored, now)
    else {
        return Ok(None);
    };
    if record_use {
        id.record_use(db, now).await?;
    }
    cache.remember(id, Cached::new(stored, facts.clone(), record_use, now));
    Ok(Some(Accepted {
        auth: facts,
        confirmed_live: true,
    }))
}

/// The company behind an API token, if the token is well-formed and matches: from the cache when
/// the token was accepted before (then its liveness is for the caller to check), else looked up
/// (live, and remembered).
pub async fn authenticate_api(
    db: &PgPool,
    hasher: &SecretHasher,
    cache: &ApiTokenCache,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Accepted<CompanyAuth>>> {
    let Some((token_id, secret)) = split_uuid_token(Kind::Api, token) else {
        return Ok(None);
    };
    let lookup = async || {
        let row = sqlx::query!(
            r#"SELECT company_id AS "company_id!", secret_hash AS "secret_hash!", last_used_at
               FROM live_api_tokens WHERE id = $1"#,
            token_id,
        )
        .fetch_optional(db)
        .await?;
        Ok(row.map(|row| {
            let stored = Stored {
                secret_hash: row.secret_hash,
                expires_at: None,
                last_used_at: Some(row.last_used_at),
            };
            (stored, row.company_id)
        }))
    };
    let id = (token_id, token_id.as_bytes().as_slice());
    let accepted = authenticate(db, hasher, cache, Kind::Api, id, secret, now, lookup).await?;
    Ok(accepted.map(|accepted| Accepted {
        auth: CompanyAuth {
            company_id: accepted.auth,
            token_id,
        },
        confirmed_live: accepted.confirmed_live,
    }))
}

/// Whether an API token is still live (not revoked), read in `conn`'s transaction when it has one.
pub async fn api_token_live(conn: &mut PgConnection, token_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM live_api_tokens WHERE id = $1) AS "live!""#,
        token_id
    )
    .fetch_one(conn)
    .await?)
}

/// The tenant behind a tenant token, if it is well-formed, current and matches: from the cache
/// when the token was accepted before (then its liveness is for the caller to check), else looked
/// up (live: not revoked, and its tenant still rents as the person who logged in; and remembered).
pub async fn authenticate_tenant(
    db: &PgPool,
    hasher: &SecretHasher,
    cache: &TenantTokenCache,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Accepted<TenantAuth>>> {
    let Some((id, secret)) = token.split_once('|') else {
        return Ok(None);
    };
    let (Ok(token_id), false) = (id.parse::<i64>(), secret.is_empty()) else {
        return Ok(None);
    };
    let lookup = async || {
        let row = sqlx::query!(
            r#"SELECT tenant_id AS "tenant_id!", secret_hash AS "secret_hash!",
                      expires_at AS "expires_at!", last_used_at
               FROM live_tenant_tokens WHERE id = $1"#,
            token_id,
        )
        .fetch_optional(db)
        .await?;
        Ok(row.map(|row| {
            let stored = Stored {
                secret_hash: row.secret_hash,
                expires_at: Some(row.expires_at),
                last_used_at: Some(row.last_used_at),
            };
            (stored, row.tenant_id)
        }))
    };
    let id = (token_id, &[][..]);
    let accepted = authenticate(db, hasher, cache, Kind::Tenant, id, secret, now, lookup).await?;
    Ok(accepted.map(|accepted| Accepted {
        auth: TenantAuth {
            token_id,
            tenant_id: accepted.auth,
        },
        confirmed_live: accepted.confirmed_live,
    }))
}

/// Whether a tenant token is still live (see `live_tenant_tokens`).
pub async fn tenant_token_live(db: &PgPool, token_id: i64) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM live_tenant_tokens WHERE id = $1) AS "live!""#,
        token_id
    )
    .fetch_one(db)
    .await?)
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
    fn a_remembered_token_is_judged_without_a_lookup() {
        let hasher = SecretHasher::new(AppKey::generate());
        let now = Utc::now();
        let cache = ApiTokenCache::default();
        let (id, company) = (Uuid::new_v4(), Uuid::new_v4());
        let stored = stored(&hasher, Kind::Api, id.as_bytes(), "s3cret");
        assert!(
            cache
                .check(Kind::Api, &hasher, id, id.as_bytes(), "s3cret", now)
                .is_none()
        );
        let stored = Stored {
            last_used_at: Some(Some(now)),
            ..stored
        };
        cache.remember(id, Cached::new(stored, company, false, now));

        let judge = |secret: &str, at: DateTime<Utc>| match cache.check(
            Kind::Api,
            &hasher,
            id,
            id.as_bytes(),
            secret,
            at,
        ) {
            Some(CachedVerdict::Accepted { facts, record_use }) => Some((facts, record_use)),
            Some(CachedVerdict::Refused) => None,
            None => panic!("the token is remembered"),
        };
        assert_eq!(
            judge("s3cret", now + TimeDelta::seconds(59)),
            Some((company, false))
        );
        assert_eq!(judge("wrong", now + TimeDelta::seconds(60)), None);
        // The first request a minute on records the use; the next one in that minute does not.
        assert_eq!(
            judge("s3cret", now + TimeDelta::seconds(60)),
            Some((company, true))
        );
        assert_eq!(
            judge("s3cret", now + TimeDelta::seconds(61)),
            Some((company, false))
        );

        cache.forget(id);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let hasher = SecretHasher::new(AppKey::generate());
        let now = Utc::now();
        let cache = TenantTokenCache::default();
        for id in 0..TOKEN_CACHE_CAPACITY as i64 + 1 {
            let stored = stored(&hasher, Kind::Tenant, &[], "s");
            cache.remember(id, Cached::new(stored, String::new(), true, now));
        }
        assert_eq!(cache.len(), 1);
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
