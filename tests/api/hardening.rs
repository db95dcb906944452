//! Hardening (docs/api.md, "Hardening"): what a hostile or broken client can cost the server. Socket-level rules run
//! against the real binary over raw TCP; database rules against the real Postgres.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgPool};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{
    TestApp, database_url, http_client, metrics_text, read, spawn_app, spawn_app_with, start_server,
};

/// `host:port` of a server whose API base is `http://host:port/api/v2`.
fn socket_address(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches("/api/v2")
        .to_owned()
}

/// Everything the server sends until it closes the connection, or `None` if it is still open
/// after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    outcome
        .ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(socket_address(base)).await.unwrap()
}

#[sqlx::test]
async fn connections_without_complete_headers_are_closed_after_the_header_timeout(db: PgPool) {
    let (_server, base) = start_server(&db, &[("KISS_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut half_headers = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(&base).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: kiss\r\nX-Slow: ")
            .await
            .unwrap();
        half_headers.push(stream);
        silent.push(connect(&base).await);
    }
    let started = Instant::now();
    for mut stream in half_headers.into_iter().chain(silent) {
        let closed = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a slow connection is still open");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server itself is fine.
    let health = http_client()
        .get(format!("{}/healthz", base.trim_end_matches("/api/v2")))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[sqlx::test]
async fn a_body_not_received_within_the_request_timeout_is_a_408(db: PgPool) {
    let (_server, base) = start_server(&db, &[("KISS_REQUEST_TIMEOUT_SECS", "1")]).await;
    let mut stream = connect(&base).await;
    stream
        .write_all(
            b"POST /api/v2/auth/phone HTTP/1.1\r\nHost: kiss\r\nContent-Type: application/json\r\n\
              Content-Length: 60\r\n\r\n{\"country_code\": ",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.ends_with(r#"{"message":"Request timeout."}"#),
        "{answer}"
    );
}

#[sqlx::test]
async fn public_bodies_over_the_limit_are_refused_without_being_read(db: PgPool) {
    let (_server, base) = start_server(&db, &[]).await;
    // A declared 100 MB body: the answer comes at once, before any of it is sent.
    let mut stream = connect(&base).await;
    stream
        .write_all(
            b"POST /api/v2/auth/verify-otp HTTP/1.1\r\nHost: kiss\r\nContent-Type: application/json\r\n\
              Content-Length: 100000000\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A chunked body with no length: refused once the 16 KiB limit is passed.
    let mut stream = connect(&base).await;
    stream
        .write_all(
            b"POST /api/v2/auth/phone HTTP/1.1\r\nHost: kiss\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let chunk = format!("4000\r\n{}\r\n", "0".repeat(0x4000));
    for _ in 0..2 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[sqlx::test]
async fn a_token_route_answers_401_before_reading_the_body(db: PgPool) {
    let (_server, base) = start_server(&db, &[]).await;
    for token_header in ["", "Authorization: Bearer kat_forged.secret\r\n"] {
        let mut stream = connect(&base).await;
        let head = format!(
            "PATCH /api/v2/units HTTP/1.1\r\nHost: kiss\r\nContent-Type: application/json\r\n\
             {token_header}Content-Length: 16000000\r\n\r\n{{\"units\": ["
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Nothing more is sent: the answer cannot wait for the body.
        let mut buffer = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buffer))
            .await
            .expect("answered without the body")
            .unwrap();
        assert_eq!(&buffer, b"HTTP/1.1 401");
    }
}

#[sqlx::test]
async fn connections_past_the_cap_wait_until_one_closes(db: PgPool) {
    let (_server, base) = start_server(
        &db,
        &[
            ("KISS_MAX_CONNECTIONS", "2"),
            ("KISS_HEADER_TIMEOUT_SECS", "30"),
        ],
    )
    .await;
    let health = format!("{}/healthz", base.trim_end_matches("/api/v2"));
    let first = connect(&base).await;
    let _second = connect(&base).await;
    let waiting = http_client()
        .get(&health)
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(
        waiting.is_err(),
        "a third connection was served: {waiting:?}"
    );
    drop(first);
    let served = http_client()
        .get(&health)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(served.status(), StatusCode::OK);
}

#[sqlx::test]
async fn shutdown_stops_waiting_for_a_stalled_request_after_the_grace_period(db: PgPool) {
    let (mut server, base) = start_server(&db, &[("KISS_SHUTDOWN_GRACE_SECS", "1")]).await;
    let mut stalled = connect(&base).await;
    stalled
        .write_all(
            b"POST /api/v2/auth/phone HTTP/1.1\r\nHost: kiss\r\nContent-Type: application/json\r\n\
              Content-Length: 60\r\n\r\n{",
        )
        .await
        .unwrap();
    // Let the server start on the request before it is told to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = server.id().unwrap().to_string();
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the server stops despite the stalled request")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
}

/// A company with unit `A` and an API token that the binary (same app key) accepts.
async fn company_with_unit_a(app: &TestApp) -> String {
    let (_, token) = app.company_with_token("Acme").await;
    let synced = app
        .patch(
            "/units",
            &token,
            json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt", "name": "Before"}]}),
        )
        .await;
    assert_eq!(synced.status, StatusCode::OK);
    token
}

/// Sends `body` to `path` with `PATCH` while another transaction holds unit A's row lock.
async fn patch_while_unit_a_is_locked(
    db: &PgPool,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> (crate::helpers::TestResponse, Duration) {
    let mut holder = sqlx::PgConnection::connect(&database_url(db))
        .await
        .unwrap();
    let mut lock = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM units WHERE crm_unit_id = 'A' FOR UPDATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let started = Instant::now();
    let response = read(
        http_client()
            .patch(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let waited = started.elapsed();
    lock.rollback().await.unwrap();
    (response, waited)
}

async fn unit_a_name(db: &PgPool) -> String {
    sqlx::query_scalar("SELECT name FROM units WHERE crm_unit_id = 'A'")
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_lock_wait_past_the_lock_timeout_is_a_503_and_writes_nothing(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let token = company_with_unit_a(&app).await;
    let (_server, base) = start_server(&db, &[("KISS_LOCK_TIMEOUT_MS", "300")]).await;
    for (path, body) in [
        ("/units/A", json!({"name": "After"})),
        (
            "/units",
            json!({"units": [{"crm_unit_id": "A", "name": "After"}]}),
        ),
        ("/units/A", json!({"crm_location_id": "up"})),
    ] {
        let (response, waited) = patch_while_unit_a_is_locked(&db, &base, &token, path, body).await;
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(response.body, json!({"message": "Server error."}));
        assert_eq!(response.header("retry-after"), Some("1"));
        assert!(waited < Duration::from_secs(3), "{path} waited {waited:?}");
    }
    assert_eq!(unit_a_name(&db).await, "Before");
}

#[sqlx::test]
async fn a_request_not_answered_within_the_request_timeout_is_a_503(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let token = company_with_unit_a(&app).await;
    let (_server, base) = start_server(
        &db,
        &[
            ("KISS_REQUEST_TIMEOUT_SECS", "1"),
            ("KISS_LOCK_TIMEOUT_MS", "20000"),
        ],
    )
    .await;
    let (response, waited) =
        patch_while_unit_a_is_locked(&db, &base, &token, "/units/A", json!({"name": "After"}))
            .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.header("retry-after"), Some("1"));
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(unit_a_name(&db).await, "Before");
}

#[sqlx::test]
async fn a_database_that_goes_away_is_a_503_with_retry_after(db: PgPool) {
    // A database of its own, so dropping it touches no other test.
    let name = format!("kiss_gone_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&db)
        .await
        .unwrap();
    let url = database_url(&db);
    let url = format!("{}/{name}", &url[..url.rfind('/').unwrap()]);
    let (_server, base) = start_server(&db, &[("DATABASE_URL", &url)]).await;
    let root = base.trim_end_matches("/api/v2").to_owned();
    let units = || async {
        read(
            http_client()
                .get(format!("{base}/units"))
                .bearer_auth("kat_00000000-0000-0000-0000-000000000000.secret")
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    assert_eq!(units().await.status, StatusCode::UNAUTHORIZED);

    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&db)
        .await
        .unwrap();
    for _ in 0..3 {
        let gone = units().await;
        assert_eq!(gone.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(gone.body, json!({"message": "Server error."}));
        assert_eq!(gone.header("retry-after"), Some("1"));
    }
    let ready = http_client()
        .get(format!("{root}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test]
async fn metric_labels_come_from_fixed_sets_whatever_the_client_sends(db: PgPool) {
    let app = spawn_app(db).await;
    let long_method = "X".repeat(400);
    for method in ["FOO1", "FOO2", long_method.as_str()] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let path = format!("{}/random-{}", app.address, uuid::Uuid::new_v4());
        let response = app.client.request(method, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let text = metrics_text(&app.address).await;
    assert!(
        text.contains(r#"method="OTHER",route="unmatched",status="404""#),
        "{text}"
    );
    for leaked in ["FOO1", "FOO2", "XXXXXXXXXX", "random-"] {
        assert!(!text.contains(leaked), "{leaked} became a label");
    }
}

#[sqlx::test]
async fn a_huge_invalid_bulk_body_gets_a_bounded_422_naming_the_first_hundred_fields(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    let units: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"crm_unit_id": format!("U-{i}"), "crm_location_id": 5, "name": "",
                   "size": 7, "status": "sold", "location_name": ["x"]})
        })
        .collect();
    let response = app.patch("/units", &token, json!({"units": units})).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = response.body["errors"].as_object().unwrap();
    assert_eq!(errors.len(), 100);
    assert!(errors.contains_key("units.0.crm_location_id"));
    assert!(errors.contains_key("units.19.status"));
    assert!(
        response.message().ends_with("(and 49999 more errors)"),
        "{}",
        response.message()
    );
    assert_eq!(app.count("units").await, 0);
}

#[sqlx::test]
async fn every_item_error_of_a_bulk_body_is_named_in_one_422(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme").await;
    let existing = app
        .patch(
            "/units",
            &token,
            json!({"units": [{"crm_unit_id": "OLD", "crm_location_id": "dt"}]}),
        )
        .await;
    assert_eq!(existing.status, StatusCode::OK);
    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [
                {"crm_unit_id": "OLD", "status": "rented"},
                {"crm_unit_id": "BAD-1", "crm_location_id": "dt", "status": "sold"},
                {"crm_unit_id": "OK", "crm_location_id": "dt"},
                {"crm_unit_id": "BAD-3", "crm_location_id": "dt", "name": ""},
                {"crm_unit_id": "NEW", "status": "available"},
            ]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&String> = response.body["errors"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        fields,
        ["units.1.status", "units.3.name", "units.4.crm_location_id"]
    );
    assert_eq!(
        response.body["errors"]["units.4.crm_location_id"],
        json!(["The crm location id field is required when the unit is created."])
    );
    assert_eq!(app.count("units").await, 1);
}

#[sqlx::test]
async fn single_unit_and_bulk_writes_of_one_company_never_deadlock(db: PgPool) {
    let app = spawn_app_with(
        db,
        &[
            ("KISS_RATE_LIMIT_PMS_BULK", "1000/60s"),
            ("KISS_RATE_LIMIT_PMS_UNIT", "1000/60s"),
        ],
    )
    .await;
    let (_, token) = app.company_with_token("Acme").await;
    let seeded = app
        .patch(
            "/units",
            &token,
            json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"},
                             {"crm_unit_id": "B", "crm_location_id": "dt"}]}),
        )
        .await;
    assert_eq!(seeded.status, StatusCode::OK);
    for round in 0..40 {
        let location = if round % 2 == 0 { "up" } else { "dt" };
        let (single, bulk) = tokio::join!(
            app.patch("/units/A", &token, json!({"crm_location_id": location})),
            app.patch(
                "/units",
                &token,
                json!({"units": [{"crm_unit_id": "A", "crm_location_id": location, "name": "a"},
                                 {"crm_unit_id": "B", "crm_location_id": location, "name": "b"}]}),
            ),
        );
        assert_eq!(
            single.status,
            StatusCode::OK,
            "round {round}: {:?}",
            single.body
        );
        assert_eq!(
            bulk.status,
            StatusCode::OK,
            "round {round}: {:?}",
            bulk.body
        );
    }
}

#[sqlx::test]
async fn per_ip_limits_believe_x_forwarded_for_only_from_trusted_proxies(db: PgPool) {
    let sign_in = |app: &TestApp, n: usize, forwarded: &'static str| {
        let request = app
            .client
            .post(app.url("/admin/sign-in"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": format!("nobody-{n}@example.com"), "password": "x"}));
        async move { read(request.send().await.unwrap()).await.status }
    };
    let limit = ("KISS_RATE_LIMIT_ADMIN_SIGN_IN", "1/60s");

    // Untrusted: the header is ignored, both requests come from the TCP peer.
    let direct = spawn_app_with(db.clone(), &[limit]).await;
    assert_eq!(
        sign_in(&direct, 1, "203.0.113.1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&direct, 2, "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Behind a trusted proxy: each forwarded client has its own count; IPv6 counts per /64.
    let proxied = spawn_app_with(db, &[limit, ("KISS_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    assert_eq!(
        sign_in(&proxied, 1, "203.0.113.1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&proxied, 2, "203.0.113.2").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&proxied, 3, "203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in(&proxied, 4, "2001:db8:1:2::1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&proxied, 5, "2001:db8:1:2:ffff::9").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in(&proxied, 6, "2001:db8:1:3::1").await,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn an_overlong_sign_in_email_is_a_422(db: PgPool) {
    let app = spawn_app(db).await;
    let email = format!("{}@example.com", "a".repeat(243));
    let response = app.sign_in(&email, "password").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.body["errors"]["email"].is_array());
}

#[sqlx::test]
async fn the_purge_skips_a_row_refreshed_while_it_runs(db: PgPool) {
    use chrono::TimeDelta;
    use kiss_auth::app::maintenance::purge_expired;
    let app = spawn_app(db.clone()).await;
    let (_, pms) = app.company_with_token("Acme").await;
    app.unit_rented_by_jane(&pms).await;
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    app.clock.advance(TimeDelta::seconds(600));
    let now = app.clock_now();

    // A request is replacing the expired code (row locked, not committed yet) when the purge runs.
    let mut request = db.begin().await.unwrap();
    sqlx::query("UPDATE otp_challenges SET sent_at = $1, expires_at = $2")
        .bind(now)
        .bind(now + TimeDelta::seconds(300))
        .execute(&mut *request)
        .await
        .unwrap();
    let purge = tokio::spawn({
        let db = db.clone();
        let cooldown = app.state.config.otp_resend_cooldown;
        async move { purge_expired(&db, cooldown, now, 100).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    request.commit().await.unwrap();
    assert_eq!(purge.await.unwrap(), 0);
    assert_eq!(
        app.count("otp_challenges").await,
        1,
        "the fresh code survives"
    );
}

/// Whether a connection of this database sits idle inside a transaction, as `observer` sees it.
async fn idle_in_transaction(observer: &PgPool) -> bool {
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                        WHERE datname = current_database() AND state = 'idle in transaction')",
    )
    .fetch_one(observer)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_request_dropped_during_begin_leaves_no_transaction_open(db: PgPool) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*db.connect_options()).clone())
        .await
        .unwrap();
    let mut stale = 0;
    for i in 0..300u64 {
        // Dropped at some point of its round trip, as a request is when its client goes away.
        let _ = tokio::time::timeout(
            Duration::from_micros(i % 60 * 10),
            kiss_auth::infra::db::begin(&pool),
        )
        .await;
        // Once the connection is back in the pool (idle), it must not be inside a transaction.
        drop(pool.acquire().await.unwrap());
        while pool.num_idle() < 1 {
            tokio::task::yield_now().await;
        }
        if idle_in_transaction(&db).await {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "connections handed out inside a transaction");
}
