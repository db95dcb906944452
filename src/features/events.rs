//! Reading audit events and managing webhooks (docs/api.md, "Audit events and webhooks"). Events are recorded by the features
//! through `services::audit` and delivered by `services::webhooks`; this is their HTTP face.
//! Company admins see their own company's; super admins every company's, and (through
//! `GET /events`) also the events of no company.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::companies;
use crate::domain::validation::{Fields, Sent, Validate, page_limit};
use crate::domain::{Error, Result, ValidationErrors};
use crate::http::docs::{BodyErrors, Forbidden, Unauthenticated};
use crate::http::error::ErrorBody;
use crate::http::extract::{Body, QueryParams};
use crate::http::{AppState, Data, data};
use crate::infra::config::Environment;
use crate::infra::outbound;
use crate::services::audit::{Event, EventActor, EventType};
use crate::services::auth::AdminAuth;
use crate::services::webhooks;

const WEBHOOK_NOT_FOUND: &str = "Webhook not found.";
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;
/// Most webhooks one company may register (each event is delivered to every one of them).
pub const MAX_WEBHOOKS_PER_COMPANY: i64 = 20;

/// A page of events, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    data: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// `type`, `limit`, `cursor` (and `company_id` across companies), checked.
struct EventQuery {
    kind: Option<EventType>,
    limit: i64,
    before: Option<String>,
    company_id: Option<Uuid>,
}

fn parse_event_query(
    params: &HashMap<String, String>,
    across_companies: bool,
) -> Result<EventQuery> {
    let mut errors = ValidationErrors::new();
    let given = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let kind = given("type").and_then(|raw| {
        let kind = EventType::parse(raw);
        if kind.is_none() {
            errors.add("type", "The selected type is not an event type.");
        }
        kind
    });
    let limit = page_limit(given("limit"), DEFAULT_PAGE, MAX_PAGE, &mut errors);
    let before = given("cursor").and_then(|raw| match ulid::Ulid::from_string(raw) {
        Ok(id) => Some(id.to_string()),
        Err(_) => {
            errors.add("cursor", "The cursor is invalid.");
            None
        }
    });
    let company_id = if across_companies {
        given("company_id").and_then(|raw| match Uuid::try_parse(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.add("company_id", "The selected company id is invalid.");
                None
            }
        })
    } else {
        None
    };
    errors.into_result(EventQuery {
        kind,
        limit,
        before,
        company_id,
    })
}

/// One page of events (of one company, or of all when `company_id` is `None` and `all` is set).
async fn page(state: &AppState, query: EventQuery, company_id: Option<Uuid>) -> Result<EventPage> {
    let rows = sqlx::query!(
        "SELECT id, type, occurred_at, company_id, actor_kind, actor_id, subject, ip, request_id
         FROM events
         WHERE ($1::uuid IS NULL OR company_id = $1)
           AND ($2::text IS NULL OR type = $2)
           AND ($3::text IS NULL OR id < $3)
         ORDER BY id DESC
         LIMIT $4",
        company_id,
        query.kind.map(EventType::as_str),
        query.before,
        query.limit + 1,
    )
    .fetch_all(&state.db)
    .await?;
    let mut events: Vec<Event> = rows
        .into_iter()
        .map(|row| Event {
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
        })
        .collect();
    let next_cursor = if events.len() as i64 > query.limit {
        events.truncate(query.limit as usize);
        events.last().map(|event| event.id.clone())
    } else {
        None
    };
    Ok(EventPage {
        data: events,
        next_cursor,
    })
}

/// `GET /companies/{company_id}/events?type=&limit=&cursor=`
#[utoipa::path(
    get, path = "/api/v2/companies/{company_id}/events", tag = "audit",
    security(("admin_token" = [])),
    params(("company_id" = String, Path, description = "Company id"),
           ("type" = Option<String>, Query, description = "Only events of this type, e.g. `api_token.created`"),
           ("limit" = Option<u32>, Query, description = "1–100, default 50", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "The company's events, newest first", body = EventPage),
              (status = 400, description = "Malformed query string", body = ErrorBody),
              (status = 404, description = "Company not found.", body = ErrorBody),
              (status = 422, description = "Invalid type, limit or cursor", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn company_events(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(company_id): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Json<EventPage>> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let query = parse_event_query(&params, false)?;
    Ok(Json(page(&state, query, Some(company_id)).await?))
}

/// `GET /events?type=&company_id=&limit=&cursor=` (super admins): every company's events and the
/// events of none (failed sign-ins of unknown e-mails, codes for phones without accounts).
#[utoipa::path(
    get, path = "/api/v2/events", tag = "audit",
    security(("admin_token" = [])),
    params(("type" = Option<String>, Query, description = "Only events of this type"),
           ("company_id" = Option<String>, Query, description = "Only this company's events"),
           ("limit" = Option<u32>, Query, description = "1–100, default 50", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "Events, newest first", body = EventPage),
              (status = 400, description = "Malformed query string", body = ErrorBody),
              (status = 422, description = "Invalid type, company_id, limit or cursor", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn all_events(
    State(state): State<AppState>,
    auth: AdminAuth,
    QueryParams(params): QueryParams,
) -> Result<Json<EventPage>> {
    auth.require_super_admin()?;
    let query = parse_event_query(&params, true)?;
    let company_id = query.company_id;
    Ok(Json(page(&state, query, company_id).await?))
}

/// The body of `POST /companies/{company_id}/webhooks`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewWebhookBody {
    /// `https://` (in development also `http://`); in production not a loopback, private,
    /// link-local or metadata address.
    #[schema(value_type = String, required = true, example = "https://pms.example.com/kiss-events", max_length = 2048)]
    #[serde(default)]
    url: Sent<String>,
    /// The event types to receive (at least one).
    #[schema(value_type = Vec<String>, required = true, example = json!(["api_token.created", "tenant.logged_in"]))]
    #[serde(default)]
    events: Sent<Vec<Sent<String>>>,
}

struct NewWebhook {
    url: String,
    events: Vec<EventType>,
}

impl Validate for NewWebhook {
    type Raw = NewWebhookBody;

    fn validate(raw: &NewWebhookBody, errors: &mut ValidationErrors) -> Option<Self> {
        let mut fields = Fields::new(errors);
        let url = fields.required_text("url", &raw.url, 2048);
        let events = match &raw.events {
            Sent::Value(list) if !list.is_empty() => {
                let mut kinds = Vec::new();
                for (index, item) in list.iter().enumerate() {
                    let key = format!("events.{index}");
                    match item.value().and_then(|name| EventType::parse(name.trim())) {
                        Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                        Some(_) => {}
                        None => fields.error(&key, "The selected event type is invalid."),
                    }
                }
                Some(kinds)
            }
            Sent::Value(_) | Sent::Missing | Sent::Null => {
                fields.error(
                    "events",
                    "The events field must list at least one event type.",
                );
                None
            }
            Sent::WrongType => {
                fields.error("events", "The events field must be a list of event types.");
                None
            }
        };
        Some(NewWebhook {
            url: url?,
            events: events?,
        })
    }
}

/// A webhook just created: the only time its secret is shown (hence no `Debug`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    id: Uuid,
    url: String,
    events: Vec<String>,
    /// Signs every delivery (`X-Kiss-Signature`); shown only now.
    #[schema(example = "whsec_…")]
    secret: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    id: Uuid,
    url: String,
    events: Vec<String>,
    created_at: DateTime<Utc>,
}

/// `POST /companies/{company_id}/webhooks`
#[utoipa::path(
    post, path = "/api/v2/companies/{company_id}/webhooks", tag = "audit",
    security(("admin_token" = [])), request_body = NewWebhookBody,
    params(("company_id" = String, Path, description = "Company id")),
    responses((status = 201, description = "Created; the only time `secret` is shown", body = Data<CreatedWebhook>),
              (status = 404, description = "Company not found.", body = ErrorBody),
              Unauthenticated, Forbidden, BodyErrors)
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(company_id): Path<String>,
    Body(body): Body<NewWebhookBody>,
) -> Result<(StatusCode, Json<Data<CreatedWebhook>>)> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let new = NewWebhook::from_raw(&body)?;
    let production = state.config.env == Environment::Production;
    let url = outbound::check_url(&new.url, production)
        .await
        .map_err(|refused| Error::field("url", refused.to_string()))?;
    let id = Uuid::new_v4();
    let mut salt = [0u8; 32];
    rand::fill(&mut salt);
    let events: Vec<String> = new.events.iter().map(|e| e.as_str().to_owned()).collect();
    let now = state.clock.now();
    let created = sqlx::query_scalar!(
        r#"INSERT INTO webhooks (id, company_id, url, events, secret_salt, created_at)
           SELECT $1, $2, $3, $4, $5, $6
           WHERE (SELECT count(*) FROM webhooks WHERE company_id = $2) < $7
           RETURNING id"#,
        id,
        company_id,
        url.as_str(),
        &events,
        &salt[..],
        now,
        MAX_WEBHOOKS_PER_COMPANY,
    )
    .fetch_optional(&state.db)
    .await?;
    if created.is_none() {
        return Err(Error::field(
            "url",
            format!("A company may have at most {MAX_WEBHOOKS_PER_COMPANY} webhooks."),
        ));
    }
    Ok((
        StatusCode::CREATED,
        data(CreatedWebhook {
            id,
            url: url.to_string(),
            events,
            secret: webhooks::secret(&state.hasher, id, &salt),
            created_at: now,
        }),
    ))
}

/// `GET /companies/{company_id}/webhooks`: never their secrets.
#[utoipa::path(
    get, path = "/api/v2/companies/{company_id}/webhooks", tag = "audit",
    security(("admin_token" = [])),
    params(("company_id" = String, Path, description = "Company id")),
    responses((status = 200, description = "The company's webhooks, oldest first", body = Data<Vec<Webhook>>),
              (status = 404, description = "Company not found.", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(company_id): Path<String>,
) -> Result<Json<Data<Vec<Webhook>>>> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let hooks = sqlx::query_as!(
        Webhook,
        "SELECT id, url, events, created_at FROM webhooks WHERE company_id = $1
         ORDER BY created_at, id",
        company_id,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(data(hooks))
}

/// The webhook named in a path, if it is this company's.
async fn find_webhook(state: &AppState, company_id: Uuid, raw_id: &str) -> Result<Uuid> {
    let id = Uuid::try_parse(raw_id).map_err(|_| Error::NotFound(WEBHOOK_NOT_FOUND))?;
    sqlx::query_scalar!(
        "SELECT id FROM webhooks WHERE id = $1 AND company_id = $2",
        id,
        company_id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(Error::NotFound(WEBHOOK_NOT_FOUND))
}

/// `DELETE /companies/{company_id}/webhooks/{webhook_id}`: its pending deliveries stop too.
#[utoipa::path(
    delete, path = "/api/v2/companies/{company_id}/webhooks/{webhook_id}", tag = "audit",
    security(("admin_token" = [])),
    params(("company_id" = String, Path, description = "Company id"), ("webhook_id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted, with its deliveries"),
              (status = 404, description = "Company not found. / Webhook not found.", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((company_id, webhook_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let id = find_webhook(&state, company_id, &webhook_id).await?;
    sqlx::query!("DELETE FROM webhooks WHERE id = $1", id)
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One attempt to deliver an event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    event_id: String,
    /// 1 for the first attempt of an event, 2 for its first retry, …
    attempt: i32,
    /// The receiver's HTTP status; `null` when none came (refused, timed out).
    status: Option<i32>,
    error: Option<String>,
    at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    data: Vec<DeliveryAttempt>,
    next_cursor: Option<String>,
}

/// `GET /companies/{company_id}/webhooks/{webhook_id}/deliveries?limit=&cursor=`: attempts,
/// newest first.
#[utoipa::path(
    get, path = "/api/v2/companies/{company_id}/webhooks/{webhook_id}/deliveries", tag = "audit",
    security(("admin_token" = [])),
    params(("company_id" = String, Path, description = "Company id"), ("webhook_id" = String, Path, description = "Webhook id"),
           ("limit" = Option<u32>, Query, description = "1–100, default 50", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "Delivery attempts, newest first", body = DeliveryPage),
              (status = 400, description = "Malformed query string", body = ErrorBody),
              (status = 404, description = "Company not found. / Webhook not found.", body = ErrorBody),
              (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
              Unauthenticated, Forbidden)
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((company_id, webhook_id)): Path<(String, String)>,
    QueryParams(params): QueryParams,
) -> Result<Json<DeliveryPage>> {
    let company_id = companies::authorize(&state.db, &auth, &company_id).await?;
    let id = find_webhook(&state, company_id, &webhook_id).await?;
    let mut errors = ValidationErrors::new();
    let given = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let limit = page_limit(given("limit"), DEFAULT_PAGE, MAX_PAGE, &mut errors);
    let before = match given("cursor") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(seq) if seq > 0 => Some(seq),
            _ => {
                errors.add("cursor", "The cursor is invalid.");
                None
            }
        },
    };
    errors.into_result(())?;
    let rows = sqlx::query!(
        "SELECT seq, event_id, attempt, status, error, at FROM webhook_attempts
         WHERE webhook_id = $1 AND ($2::bigint IS NULL OR seq < $2)
         ORDER BY seq DESC
         LIMIT $3",
        id,
        before,
        limit + 1,
    )
    .fetch_all(&state.db)
    .await?;
    let more = rows.len() as i64 > limit;
    let next_cursor = more
        .then(|| rows.get(limit as usize - 1).map(|row| row.seq.to_string()))
        .flatten();
    let attempts = rows
        .into_iter()
        .take(limit as usize)
        .map(|row| DeliveryAttempt {
            event_id: row.event_id,
            attempt: row.attempt,
            status: row.status,
            error: row.error,
            at: row.at,
        })
        .collect();
    Ok(Json(DeliveryPage {
        data: attempts,
        next_cursor,
    }))
}
