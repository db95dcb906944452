//! Idempotency-Key on PMS writes (docs/api.md, "Idempotency-Key"): replay, conflicts, concurrency, several
//! processes, expiry, and a server killed in the middle of a keyed request.

use std::time::Duration;

use chrono::TimeDelta;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, http_client, spawn_app, spawn_app_with, start_server};

struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(
    client: &reqwest::Client,
    url: String,
    method: Method,
    token: &str,
    key: Option<&str>,
    body: Option<String>,
) -> Raw {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    Raw {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

async fn keyed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    key: &str,
    body: Option<&str>,
) -> Raw {
    send(
        &app.client,
        app.url(path),
        method,
        token,
        Some(key),
        body.map(str::to_owned),
    )
    .await
}

const TWO_UNITS: &str = r#"{"units": [{"crm_unit_id": "A", "crm_location_id": "dt", "status": "rented"},
                                      {"crm_unit_id": "B", "crm_location_id": "dt"}]}"#;

async fn status_of(app: &TestApp, token: &str, unit: &str) -> Value {
    app.get(&format!("/units/{unit}"), token).await.body["data"]["status"].clone()
}

#[sqlx::test]
async fn a_retry_replays_the_first_answer_and_writes_nothing(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;

    let first = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "sync-1",
        Some(TWO_UNITS),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(!first.replayed());
    assert_eq!(first.json()["data"], json!({"created": 2, "updated": 0}));

    // Someone else changes A; the retry must not put it back.
    app.patch("/units/A", &token, json!({"status": "available"}))
        .await;
    app.clock.advance(TimeDelta::hours(23));
    // Same request, keys reordered and spaced differently: still the same request.
    let reordered = r#"{"units":[{"status":"rented","crm_location_id":"dt","crm_unit_id":"A"},{"crm_unit_id":"B","crm_location_id":"dt"}]}"#;
    let retry = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "sync-1",
        Some(reordered),
    )
    .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(retry.replayed());
    assert_eq!(retry.body, first.body, "byte for byte");
    assert_eq!(
        retry.headers.get("content-type"),
        first.headers.get("content-type")
    );
    assert_eq!(status_of(&app, &token, "A").await, "available");
    assert_eq!(app.count("idempotency_keys").await, 1);
}

#[sqlx::test]
async fn every_pms_write_route_replays(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "seed",
        Some(TWO_UNITS),
    )
    .await;
    let tenancy = r#"{"crm_tenant_id": "T", "name": "Jane", "phone": "+15551234567"}"#;
    let writes = [
        (Method::PATCH, "/units/A", Some(r#"{"status": "reserved"}"#)),
        (
            Method::PATCH,
            "/units/B",
            Some(r#"{"crm_location_id": "up"}"#),
        ),
        (Method::PUT, "/units/A/tenancy", Some(tenancy)),
        (Method::DELETE, "/units/A/tenancy", None),
    ];
    for (i, (method, path, body)) in writes.into_iter().enumerate() {
        let key = format!("write-{i}");
        let first = keyed(&app, method.clone(), path, &token, &key, body).await;
        assert!(first.status.is_success(), "{path}: {}", first.status);
        let retry = keyed(&app, method, path, &token, &key, body).await;
        assert!(retry.replayed(), "{path}");
        assert_eq!(
            (retry.status, &retry.body),
            (first.status, &first.body),
            "{path}"
        );
    }
    assert_eq!(app.count("idempotency_keys").await, 5);
}

#[sqlx::test]
async fn the_same_key_with_another_request_is_a_409(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    let first = keyed(&app, Method::PATCH, "/units", &token, "k", Some(TWO_UNITS)).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = keyed(
        &app,
        Method::PATCH,
        "/units/A",
        &token,
        "k2",
        Some(r#"{"status": "reserved"}"#),
    )
    .await;
    assert_eq!(
        second.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&second.body)
    );

    let conflicts = [
        keyed(
            &app,
            Method::PATCH,
            "/units",
            &token,
            "k",
            Some(r#"{"units": [{"crm_unit_id": "C", "crm_location_id": "dt"}]}"#),
        )
        .await,
        keyed(
            &app,
            Method::PATCH,
            "/units/B",
            &token,
            "k2",
            Some(r#"{"status": "reserved"}"#),
        )
        .await,
        keyed(
            &app,
            Method::PUT,
            "/units/A/tenancy",
            &token,
            "k2",
            Some(r#"{"status": "reserved"}"#),
        )
        .await,
    ];
    for conflict in conflicts {
        assert_eq!(
            conflict.status,
            StatusCode::CONFLICT,
            "{}",
            String::from_utf8_lossy(&conflict.body)
        );
        assert_eq!(
            conflict.json(),
            json!({"message": "The Idempotency-Key has already been used with a different request."})
        );
    }
    assert_eq!(app.count("units").await, 2);
    assert_eq!(status_of(&app, &token, "B").await, "available");
}

#[sqlx::test]
async fn keys_belong_to_the_company_of_the_token(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, acme) = app.company_with_token("Acme").await;
    let (_, other) = app.company_with_token("Other").await;
    for token in [&acme, &other] {
        let response = keyed(
            &app,
            Method::PATCH,
            "/units",
            token,
            "shared-key",
            Some(TWO_UNITS),
        )
        .await;
        assert!(!response.replayed());
        assert_eq!(response.json()["data"]["created"], 2);
    }
    assert_eq!(app.count("units").await, 4);
}

#[sqlx::test]
async fn malformed_keys_are_a_400_and_write_nothing(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    for key in [
        "k".repeat(256),
        "has space".to_owned(),
        "tab\tkey".to_owned(),
    ] {
        let response = keyed(&app, Method::PATCH, "/units", &token, &key, Some(TWO_UNITS)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{key:?}");
        assert_eq!(
            response.json(),
            json!({"message": "The Idempotency-Key header must be 1 to 255 visible ASCII characters."})
        );
    }
    let max = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        &"k".repeat(255),
        Some(TWO_UNITS),
    )
    .await;
    assert_eq!(max.status, StatusCode::OK);
    assert_eq!(app.count("units").await, 2);
}

#[sqlx::test]
async fn twenty_concurrent_requests_with_one_key_write_once(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    let units: Vec<Value> = (0..2000)
        .map(|i| json!({"crm_unit_id": format!("U{i}"), "crm_location_id": "dt"}))
        .collect();
    let body = json!({"units": units}).to_string();

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (client, url, token, body) = (
            app.client.clone(),
            app.url("/units"),
            token.clone(),
            body.clone(),
        );
        requests.spawn(async move {
            send(
                &client,
                url,
                Method::PATCH,
                &token,
                Some("one-key"),
                Some(body),
            )
            .await
        });
    }
    let responses = requests.join_all().await;
    let originals: Vec<&Raw> = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK && !r.replayed())
        .collect();
    assert_eq!(originals.len(), 1, "exactly one request did the write");
    for response in &responses {
        match response.status {
            StatusCode::OK => assert_eq!(response.body, originals[0].body),
            StatusCode::CONFLICT => assert_eq!(
                response.json(),
                json!({"message": "A request with this Idempotency-Key is still being processed."})
            ),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        originals[0].json()["data"],
        json!({"created": 2000, "updated": 0})
    );
    assert_eq!(app.count("units").await, 2000);
}

#[sqlx::test]
async fn refusals_are_stored_without_the_handler_s_partial_work(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "seed",
        Some(TWO_UNITS),
    )
    .await;

    // A changes before the new unit C is found to lack a location: the 422 must undo it.
    let bad = r#"{"units": [{"crm_unit_id": "A", "status": "overlocked"}, {"crm_unit_id": "C"}]}"#;
    let first = keyed(&app, Method::PATCH, "/units", &token, "bad", Some(bad)).await;
    assert_eq!(first.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(status_of(&app, &token, "A").await, "rented");
    let retry = keyed(&app, Method::PATCH, "/units", &token, "bad", Some(bad)).await;
    assert!(retry.replayed());
    assert_eq!((retry.status, retry.body), (first.status, first.body));

    // A 404 is an answer too, replayed even once the unit exists.
    let missing = keyed(
        &app,
        Method::PATCH,
        "/units/Z",
        &token,
        "z",
        Some(r#"{"status": "rented"}"#),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.patch(
        "/units",
        &token,
        json!({"units": [{"crm_unit_id": "Z", "crm_location_id": "dt"}]}),
    )
    .await;
    let replay = keyed(
        &app,
        Method::PATCH,
        "/units/Z",
        &token,
        "z",
        Some(r#"{"status": "rented"}"#),
    )
    .await;
    assert!(replay.replayed());
    assert_eq!(replay.status, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&app, &token, "Z").await, "available");
}

#[sqlx::test]
async fn a_429_is_not_stored(db: PgPool) {
    let app = spawn_app_with(db, &[("KISS_RATE_LIMIT_PMS_BULK", "1/60s")]).await;
    let (_, token) = app.company_with_token("Acme").await;
    app.patch(
        "/units",
        &token,
        json!({"units": [{"crm_unit_id": "X", "crm_location_id": "dt"}]}),
    )
    .await;

    let limited = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "later",
        Some(TWO_UNITS),
    )
    .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.count("idempotency_keys").await, 0);

    app.clock.advance(TimeDelta::seconds(60));
    let ran = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "later",
        Some(TWO_UNITS),
    )
    .await;
    assert_eq!(ran.status, StatusCode::OK);
    assert!(!ran.replayed());
    assert_eq!(ran.json()["data"]["created"], 2);
}

#[sqlx::test]
async fn a_5xx_is_not_stored_and_its_writes_are_undone(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    // A database rule the application does not know makes the write fail with a 500.
    sqlx::query("ALTER TABLE units ADD CONSTRAINT no_boom CHECK (name <> 'boom')")
        .execute(&app.db)
        .await
        .unwrap();
    let body = r#"{"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}, {"crm_unit_id": "B", "crm_location_id": "dt", "name": "boom"}]}"#;
    let failed = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "retry-me",
        Some(body),
    )
    .await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.json(), json!({"message": "Server error."}));
    assert_eq!(app.count("idempotency_keys").await, 0);
    assert_eq!(
        app.count("locations").await,
        0,
        "the location insert was rolled back"
    );

    sqlx::query("ALTER TABLE units DROP CONSTRAINT no_boom")
        .execute(&app.db)
        .await
        .unwrap();
    let retried = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "retry-me",
        Some(body),
    )
    .await;
    assert_eq!(retried.status, StatusCode::OK);
    assert!(!retried.replayed());
    assert_eq!(retried.json()["data"]["created"], 2);
}

#[sqlx::test]
async fn keys_expire_after_their_lifetime_and_are_purged(db: PgPool) {
    let app = spawn_app_with(db, &[("KISS_IDEMPOTENCY_TTL_SECS", "60")]).await;
    let (_, token) = app.company_with_token("Acme").await;
    keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "old",
        Some(TWO_UNITS),
    )
    .await;
    keyed(
        &app,
        Method::PATCH,
        "/units/A",
        &token,
        "other",
        Some(r#"{"status": "reserved"}"#),
    )
    .await;

    app.clock.advance(TimeDelta::seconds(59));
    let still = keyed(
        &app,
        Method::PATCH,
        "/units",
        &token,
        "old",
        Some(TWO_UNITS),
    )
    .await;
    assert!(still.replayed());

    app.clock.advance(TimeDelta::seconds(1));
    let new_body = r#"{"units": [{"crm_unit_id": "C", "crm_location_id": "dt"}]}"#;
    let reused = keyed(&app, Method::PATCH, "/units", &token, "old", Some(new_body)).await;
    assert_eq!(
        reused.status,
        StatusCode::OK,
        "an expired key is free again"
    );
    assert!(!reused.replayed());

    // "other" has expired; "old" was just stored again.
    let cooldown = app.state.config.otp_resend_cooldown;
    let purged = kiss_auth::app::maintenance::purge_expired(&app.db, cooldown, app.clock_now(), 1)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(app.count("idempotency_keys").await, 1);
}

#[sqlx::test]
async fn two_processes_racing_on_one_key_write_once(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let (_, token) = app.company_with_token("Acme").await;
    let (_first, first_url) = start_server(&db, &[]).await;
    let (_second, second_url) = start_server(&db, &[]).await;
    let units: Vec<Value> = (0..3000)
        .map(|i| json!({"crm_unit_id": format!("U{i}"), "crm_location_id": "dt"}))
        .collect();
    let body = json!({"units": units}).to_string();

    let client = http_client();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..10 {
        let base = if i % 2 == 0 { &first_url } else { &second_url };
        let (client, url, token, body) = (
            client.clone(),
            format!("{base}/units"),
            token.clone(),
            body.clone(),
        );
        requests.spawn(async move {
            send(
                &client,
                url,
                Method::PATCH,
                &token,
                Some("race"),
                Some(body),
            )
            .await
        });
    }
    let responses = requests.join_all().await;
    let originals = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK && !r.replayed())
        .count();
    assert_eq!(
        originals,
        1,
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        responses
            .iter()
            .all(|r| r.status == StatusCode::OK || r.status == StatusCode::CONFLICT)
    );
    assert_eq!(app.count("units").await, 3000);
}

#[sqlx::test]
async fn a_server_killed_mid_request_leaves_one_application_after_the_retry(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let (_, token) = app.company_with_token("Acme").await;
    let units: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"crm_unit_id": format!("U{i:05}"), "crm_location_id": format!("L{}", i % 10),
                        "location_name": "Site", "status": "rented"})
        })
        .collect();
    let body = json!({"units": units}).to_string();

    let (mut doomed, url) = start_server(&db, &[]).await;
    let client = http_client();
    let in_flight = {
        let (client, url, token, body) = (
            client.clone(),
            format!("{url}/units"),
            token.clone(),
            body.clone(),
        );
        tokio::spawn(async move {
            client
                .patch(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "bulk-1")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    let killed_answer = in_flight.await.unwrap();
    let units_after_kill = app.count("units").await;
    eprintln!("killed mid-request: {}", units_after_kill == 0);
    assert!(
        units_after_kill == 0 || units_after_kill == 10_000,
        "both or neither: {units_after_kill} units"
    );

    let (_fresh, fresh_url) = start_server(&db, &[]).await;
    let retry = send(
        &client,
        format!("{fresh_url}/units"),
        Method::PATCH,
        &token,
        Some("bulk-1"),
        Some(body),
    )
    .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(
        retry.json()["data"],
        json!({"created": 10000, "updated": 0})
    );
    // Whether the kill came before or after the commit, the retry answers as the one run did.
    assert_eq!(retry.replayed(), units_after_kill == 10_000);
    assert!(killed_answer.is_err() || units_after_kill == 10_000);
    assert_eq!(app.count("units").await, 10_000);
    assert_eq!(app.count("idempotency_keys").await, 1);
}
