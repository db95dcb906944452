//! Audit events (docs/api.md, "Audit events and webhooks"): who did what, written in the transaction of the change they
//! describe, each with a delivery queued for every webhook of its company that wants it (an
//! outbox: no event without its change, no change without its event, no event without its
//! deliveries). Events never carry a token, secret, password or code, and a phone only as its
//! last four digits.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Result;

/// The channel a committed event with deliveries wakes the delivery workers on (every process).
pub const DELIVERIES_CHANNEL: &str = "kiss_webhook_deliveries";

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// Every kind of event, by its name in the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType { $($variant,)* }

        impl EventType {
            pub const ALL: &[EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(EventType::$variant),)* _ => None }
            }
        }
    };
}

event_types! {
    AdminSignedIn => "admin.signed_in",
    AdminSignInFailed => "admin.sign_in_failed",
    AdminSignedOut => "admin.signed_out",
    AdminCreated => "admin.created",
    AdminDisabled => "admin.disabled",
    AdminPasswordChanged => "admin.password_changed",
    CompanyCreated => "company.created",
    ApiTokenCreated => "api_token.created",
    ApiTokenRevoked => "api_token.revoked",
    TenancyReplaced => "tenancy.replaced",
    TenancyVacated => "tenancy.vacated",
    TenantLoggedIn => "tenant.logged_in",
    TenantLoggedOut => "tenant.logged_out",
    OtpSent => "otp.sent",
    OtpFailed => "otp.failed",
    OtpLocked => "otp.locked",
}

/// Who acted: an admin, a PMS (by its API token), a tenant, someone unauthenticated, or kiss-auth
/// itself (the command line, the background jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    kind: &'static str,
    id: Option<String>,
}

impl Actor {
    pub fn admin(id: Uuid) -> Self {
        Actor {
            kind: "admin",
            id: Some(id.to_string()),
        }
    }

    pub fn api_token(id: Uuid) -> Self {
        Actor {
            kind: "api_token",
            id: Some(id.to_string()),
        }
    }

    pub fn tenant(id: &str) -> Self {
        Actor {
            kind: "tenant",
            id: Some(id.to_owned()),
        }
    }

    pub fn anonymous() -> Self {
        Actor {
            kind: "anonymous",
            id: None,
        }
    }

    pub fn system() -> Self {
        Actor {
            kind: "system",
            id: None,
        }
    }
}

/// Where a request came from: the client IP (docs/api.md, "Hardening") and the request id. Empty for the
/// command line.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

/// An event to record. `subject` names what changed by its ids.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventType,
    pub company_id: Option<Uuid>,
    pub actor: Actor,
    pub subject: Value,
}

impl NewEvent {
    pub fn new(kind: EventType, company_id: Option<Uuid>, actor: Actor, subject: Value) -> Self {
        NewEvent {
            kind,
            company_id,
            actor,
            subject,
        }
    }
}

/// A recorded event, as the API lists it and webhooks receive it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// A ULID; ids sort by time.
    #[schema(example = "01JD3F6Q0S8W1Y2Z3A4B5C6D7E")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "api_token.created")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub company_id: Option<Uuid>,
    pub actor: EventActor,
    /// The ids of what changed, e.g. `{"api_token_id"}`, `{"crm_unit_id", "tenant_id"}`.
    #[schema(value_type = Object)]
    pub subject: Value,
    /// The client IP (trusted proxies applied); `null` for the command line.
    pub ip: Option<String>,
    /// The request's `X-Request-Id`; `null` for the command line.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventActor {
    /// `admin`, `api_token`, `tenant`, `anonymous` or `system`.
    pub kind: String,
    /// The admin's, API token's or tenant's id; `null` for anonymous and system.
    pub id: Option<String>,
}

/// A ULID dated by the injected clock, so ids sort as the events happened. Within one
/// millisecond a process's ids increase (the previous one plus one), so its events of the same
/// instant keep their order too.
pub fn event_id(now: DateTime<Utc>) -> String {
    static LAST: Mutex<Option<ulid::Ulid>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let same_instant = last
        .and_then(|previous| previous.increment().ok())
        .filter(|next| next.timestamp_ms() == now.timestamp_millis() as u64);
    let id = same_instant.unwrap_or_else(|| ulid::Ulid::from_datetime(SystemTime::from(now)));
    *last = Some(id);
    id.to_string()
}

/// Records `event` on `conn` (the transaction of its change) with a delivery for each webhook
/// of its company that wants its type, in one statement; workers are woken at commit.
pub async fn record(
    conn: &mut PgConnection,
    event: NewEvent,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<()> {
    let queued = sqlx::query!(
        "WITH event AS (
             INSERT INTO events (id, type, occurred_at, company_id, actor_kind, actor_id, subject, ip, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING id, type, company_id)
         INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)
         SELECT w.id, event.id, $3, $3
         FROM event JOIN webhooks w ON w.company_id = event.company_id AND event.type = ANY (w.events)",
        event_id(now),
        event.kind.as_str(),
        now,
        event.company_id,
        event.actor.kind,
        event.actor.id,
        event.subject,
        origin.ip.map(|ip| ip.to_string()),
        origin.request_id,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if queued > 0 {
        sqlx::query!("SELECT pg_notify($1, '')", DELIVERIES_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Records several events in one transaction (e.g. one per company a phone belongs to).
pub async fn record_all(
    conn: &mut PgConnection,
    events: impl IntoIterator<Item = NewEvent>,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<()> {
    for event in events {
        record(conn, event, origin, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_name() {
        assert_eq!(EventType::ALL.len(), 16);
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(EventType::parse("admin.deleted"), None);
    }

    #[test]
    fn event_ids_sort_by_time() {
        let earlier = event_id(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let later = event_id(DateTime::from_timestamp(1_700_000_000, 1_000_000).unwrap());
        assert_eq!(earlier.len(), 26);
        assert!(earlier < later);
        let instant = DateTime::from_timestamp(1_700_000_001, 0).unwrap();
        let ids: Vec<String> = (0..100).map(|_| event_id(instant)).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    }
}
