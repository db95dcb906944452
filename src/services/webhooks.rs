//! Delivering events to webhooks (docs/api.md, "Audit events and webhooks"), at least once: due deliveries are taken from
//! Postgres with `FOR UPDATE SKIP LOCKED` and leased (their next attempt moved past the send's
//! timeout), so several processes share the work without sending one twice at once and a crash
//! mid-send only delays a retry. Each attempt is signed (`X-Kiss-Signature`), recorded, and
//! retried with exponential backoff and jitter until 24 h after the event.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Url;
use sqlx::PgPool;
use uuid::Uuid;

use super::audit::{Event, EventActor};
use crate::domain::Result;
use crate::infra::crypto::{SecretHasher, signature_header};
use crate::infra::outbound;

/// How long after its event a delivery is retried.
pub const RETRY_FOR: TimeDelta = TimeDelta::hours(24);
/// The first retry's delay; each later one doubles, up to [`MAX_BACKOFF`], times a jitter of
/// 50–100 % (so receivers that come back are not hit by every retry at once).
const FIRST_BACKOFF: TimeDelta = TimeDelta::seconds(10);
const MAX_BACKOFF: TimeDelta = TimeDelta::hours(1);
/// How long a taken delivery is leased: past the send's timeout, so no other process takes it
/// while this one may still be sending.
const LEASE: TimeDelta = TimeDelta::seconds(30);
/// At most this many deliveries are taken (and sent concurrently) at once.
pub const BATCH: i64 = 64;
/// Longest error text kept for an attempt.
const MAX_ERROR_CHARS: usize = 300;

/// The webhook's signing secret, derived from the app key and the webhook's salt (never stored).
pub fn secret(hasher: &SecretHasher, webhook_id: Uuid, salt: &[u8]) -> String {
    use base64::Engine as _;
    let key = hasher.hash(&[b"webhook-secret", webhook_id.as_bytes(), salt]);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    )
}

/// The delay before attempt `attempts + 1` after `attempts` failed ones, jitter included.
pub fn backoff(attempts: i32) -> TimeDelta {
    let doublings = attempts.clamp(1, 30) - 1;
    let full = FIRST_BACKOFF
        .checked_mul(1 << doublings.min(20))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    let jitter = rand::random_range(0.5..=1.0);
    TimeDelta::milliseconds((full.num_milliseconds() as f64 * jitter) as i64)
}

/// What the delivery worker needs.
pub struct Deliverer {
    pub db: PgPool,
    pub hasher: std::sync::Arc<SecretHasher>,
    pub client: reqwest::Client,
    /// Production: literal IPs in URLs must be public too (names are checked by the client).
    pub public_only: bool,
}

struct Taken {
    webhook_id: Uuid,
    url: String,
    salt: Vec<u8>,
    attempt: i32,
    event: Event,
}

/// A batch of attempts as the columns of one statement.
#[derive(Default)]
struct RecordBatch {
    webhook_ids: Vec<Uuid>,
    event_ids: Vec<String>,
    attempts: Vec<i32>,
    statuses: Vec<Option<i32>>,
    errors: Vec<Option<String>>,
    next_attempts: Vec<Option<DateTime<Utc>>>,
    delivered: Vec<bool>,
    failed: Vec<bool>,
}

/// How one attempt ended.
pub struct Attempt {
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Attempt {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Deliverer {
    /// Takes the deliveries due at `now`, sends them concurrently and records each attempt.
    /// Returns how many were attempted (`BATCH` means there may be more due).
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<usize> {
        let taken = self.take_due(now).await?;
        let count = taken.len();
        let mut sends = tokio::task::JoinSet::new();
        for delivery in taken {
            let client = self.client.clone();
            let secret = secret(&self.hasher, delivery.webhook_id, &delivery.salt);
            let public_only = self.public_only;
            sends.spawn(async move {
                let attempt = send(&client, &delivery, &secret, public_only, now).await;
                (delivery, attempt)
            });
        }
        let mut attempts = Vec::with_capacity(count);
        while let Some(sent) = sends.join_next().await {
            if let Ok(done) = sent {
                attempts.push(done);
            }
        }
        if let Err(err) = self.record(&attempts, now).await {
            tracing::warn!(error = %err, "could not record webhook delivery attempts");
        }
        Ok(count)
    }

    async fn take_due(&self, now: DateTime<Utc>) -> Result<Vec<Taken>> {
        let rows = sqlx::query!(
            r#"WITH due AS (
                   SELECT webhook_id, event_id FROM webhook_deliveries
                   WHERE next_attempt_at <= $1
                   ORDER BY next_attempt_at
                   LIMIT $2
                   FOR UPDATE SKIP LOCKED
               ), taken AS (
                   UPDATE webhook_deliveries d
                   SET next_attempt_at = $3, attempts = d.attempts + 1
                   FROM due WHERE d.webhook_id = due.webhook_id AND d.event_id = due.event_id
                   RETURNING d.webhook_id, d.event_id, d.attempts
               )
               SELECT t.webhook_id, t.attempts, w.url, w.secret_salt,
                      e.id, e.type, e.occurred_at, e.company_id, e.actor_kind, e.actor_id,
                      e.subject, e.ip, e.request_id
               FROM taken t
               JOIN webhooks w ON w.id = t.webhook_id
               JOIN events e ON e.id = t.event_id"#,
            now,
            BATCH,
            now + LEASE,
        )
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Taken {
                webhook_id: row.webhook_id,
                url: row.url,
                salt: row.secret_salt,
                attempt: row.attempts,
                event: Event {
                    id: row.id,
                    kind: row.r#type,
                    occurred_at: row.occurred_at,
                    company_id: row.company_id,
                    actor: EventActor {
                        kind: row.actor_kind,
                        id: row.actor_id,
                    },
                    subject: row.subject,
                    ip: row.ip,
                    request_id: row.request_id,
                },
            })
            .collect())
    }

    /// Records a batch of attempts and schedules what comes next for each, in one statement.
    async fn record(&self, attempts: &[(Taken, Attempt)], now: DateTime<Utc>) -> Result<()> {
        let mut batch = RecordBatch::default();
        for (delivery, attempt) in attempts {
            let delivered = attempt.delivered();
            let retry_at = now + backoff(delivery.attempt);
            let next_attempt_at = (!delivered && retry_at < delivery.event.occurred_at + RETRY_FOR)
                .then_some(retry_at);
            let failed = !delivered && next_attempt_at.is_none();
            let result = if delivered { "delivered" } else { "failed" };
            metrics::counter!("webhook_attempts_total", "result" => result).increment(1);
            if failed {
                metrics::counter!("webhook_deliveries_failed_total").increment(1);
                tracing::warn!(
                    event_id = %delivery.event.id,
                    webhook_id = %delivery.webhook_id,
                    attempts = delivery.attempt,
                    "a webhook delivery is given up after 24 h of retries"
                );
            }
            batch.webhook_ids.push(delivery.webhook_id);
            batch.event_ids.push(delivery.event.id.clone());
            batch.attempts.push(delivery.attempt);
            batch.statuses.push(attempt.status.map(i32::from));
            batch.errors.push(attempt.error.clone());
            batch.next_attempts.push(next_attempt_at);
            batch.delivered.push(delivered);
            batch.failed.push(failed);
        }
        // Deliveries deleted meanwhile (their webhook was) are skipped.
        sqlx::query!(
            r#"WITH batch AS (
                   SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int4[], $4::int4[], $5::text[],
                                        $6::timestamptz[], $7::bool[], $8::bool[])
                       AS b(webhook_id, event_id, attempt, status, error, next_attempt_at, delivered, failed)
                   WHERE EXISTS (SELECT 1 FROM webhook_deliveries d
                                 WHERE d.webhook_id = b.webhook_id AND d.event_id = b.event_id)
               ), recorded AS (
                   INSERT INTO webhook_attempts (webhook_id, event_id, attempt, status, error, at)
                   SELECT webhook_id, event_id, attempt, status, error, $9 FROM batch
               )
               UPDATE webhook_deliveries d
               SET next_attempt_at = b.next_attempt_at,
                   delivered_at = CASE WHEN b.delivered THEN $9::timestamptz END,
                   failed_at = CASE WHEN b.failed THEN $9::timestamptz END
               FROM batch b
               WHERE d.webhook_id = b.webhook_id AND d.event_id = b.event_id"#,
            &batch.webhook_ids,
            &batch.event_ids,
            &batch.attempts,
            &batch.statuses as &[Option<i32>],
            &batch.errors as &[Option<String>],
            &batch.next_attempts as &[Option<DateTime<Utc>>],
            &batch.delivered,
            &batch.failed,
            now,
        )
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Deliveries still to be made (for the metric).
    pub async fn pending(&self) -> Result<i64> {
        let pending = sqlx::query_scalar!(
            r#"SELECT count(*) AS "pending!" FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL"#
        )
        .fetch_one(&self.db)
        .await?;
        Ok(pending)
    }
}

/// One signed POST of the event; never fails, it reports.
async fn send(
    client: &reqwest::Client,
    delivery: &Taken,
    secret: &str,
    public_only: bool,
    now: DateTime<Utc>,
) -> Attempt {
    let refused = |error: &str| Attempt {
        status: None,
        error: Some(error.to_owned()),
    };
    let Ok(url) = Url::parse(&delivery.url) else {
        return refused("the URL is malformed");
    };
    if public_only && outbound::literal_ip(&url).is_some_and(|ip| !outbound::is_public(ip)) {
        return refused("the URL's address is not public");
    }
    let body = match serde_json::to_vec(&delivery.event) {
        Ok(body) => body,
        Err(_) => return refused("the event could not be encoded"),
    };
    let signature = signature_header(secret.as_bytes(), now.timestamp(), &body);
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-kiss-signature", signature)
        .header("x-kiss-event-id", &delivery.event.id)
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let error = (!response.status().is_success())
                .then(|| format!("the receiver answered {status}"));
            Attempt {
                status: Some(status),
                error,
            }
        }
        Err(err) => {
            // Without the URL: it may carry a credential in its query string.
            let err = err.without_url();
            let mut error = err.to_string();
            let mut cause = std::error::Error::source(&err);
            while let Some(inner) = cause {
                error = format!("{error}: {inner}");
                cause = inner.source();
            }
            refused(&error.chars().take(MAX_ERROR_CHARS).collect::<String>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        for (attempts, full_secs) in [
            (1, 10),
            (2, 20),
            (3, 40),
            (9, 2_560),
            (10, 3_600),
            (40, 3_600),
        ] {
            for _ in 0..50 {
                let delay = backoff(attempts).num_milliseconds();
                assert!(
                    (full_secs * 500..=full_secs * 1000).contains(&delay),
                    "attempt {attempts}: {delay} ms"
                );
            }
        }
    }

    #[test]
    fn a_webhook_secret_depends_on_the_key_the_webhook_and_the_salt() {
        let key = crate::infra::config::AppKey::generate();
        let hasher = SecretHasher::new(key);
        let id = Uuid::new_v4();
        let a = secret(&hasher, id, b"salt-1");
        assert!(a.starts_with("whsec_") && a.len() > 40);
        assert_eq!(a, secret(&hasher, id, b"salt-1"));
        assert_ne!(a, secret(&hasher, id, b"salt-2"));
        assert_ne!(a, secret(&hasher, Uuid::new_v4(), b"salt-1"));
    }
}
