//! Health, readiness, metrics and logs: what the people who run kiss-auth rely on.

use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::{
    ADMIN_PASSWORD, APP_KEY, http_client, read, spawn_app, spawn_app_with, start_server_logging_to,
};

async fn get_root(app: &crate::helpers::TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

#[sqlx::test]
async fn liveness_and_readiness_answer(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let health = read(get_root(&app, "/healthz").await).await;
    assert_eq!(
        (health.status, health.body),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let ready = read(get_root(&app, "/readyz").await).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.body,
        json!({"status": "ready", "checks": {"database": "ok"}})
    );

    let with_redis = spawn_app_with(
        db.clone(),
        &[
            ("KISS_RATE_LIMIT_BACKEND", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ],
    )
    .await;
    let ready = read(get_root(&with_redis, "/readyz").await).await;
    assert_eq!(
        ready.body["checks"],
        json!({"database": "ok", "redis": "ok"})
    );

    let redis_down = spawn_app_with(
        db,
        &[
            ("KISS_RATE_LIMIT_BACKEND", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ],
    )
    .await;
    let not_ready = read(get_root(&redis_down, "/readyz").await).await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        not_ready.body,
        json!({"message": "Server error.", "checks": {"database": "ok", "redis": "unavailable"}})
    );
}

#[sqlx::test]
async fn metrics_count_requests_by_route_and_status(db: PgPool) {
    let app = spawn_app_with(db, &[("KISS_RATE_LIMIT_PMS_BULK", "1/60s")]).await;
    let (_, token) = app.company_with_token("Acme").await;
    let body = json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}]});
    app.patch("/units", &token, body.clone()).await;
    app.patch("/units", &token, body).await;
    app.get("/units/A", &token).await;

    let response = get_root(&app, "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for expected in [
        r#"http_requests_total{method="GET",route="/api/v2/units/{crm_unit_id}",status="200"}"#,
        r#"http_requests_total{method="PATCH",route="/api/v2/units",status="429"}"#,
        r#"http_request_duration_seconds_bucket{method="PATCH",route="/api/v2/units",le="0.005"}"#,
        r#"rate_limited_total{scope="pms_bulk"}"#,
        r#"db_pool_connections{state="idle"}"#,
        r#"db_pool_connections{state="in_use"}"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
}

/// Runs the admin, API-token and OTP flows against the real binary at `RUST_LOG=debug` with JSON
/// logs, then looks for every secret that crossed the wire in what the server logged.
#[sqlx::test]
async fn logs_are_json_lines_and_never_contain_a_secret(db: PgPool) {
    let twilio = FakeTwilio::start().await;
    let log_path = std::env::temp_dir().join(format!("kiss-log-{}.jsonl", uuid::Uuid::new_v4()));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let (mut server, base) = start_server_logging_to(
        &db,
        &[
            ("KISS_LOG_FORMAT", "json"),
            ("RUST_LOG", "debug"),
            ("KISS_SMS_PROVIDER", "twilio"),
            ("KISS_TWILIO_ACCOUNT_SID", fake_twilio::ACCOUNT_SID),
            ("KISS_TWILIO_AUTH_TOKEN", fake_twilio::AUTH_TOKEN),
            ("KISS_TWILIO_FROM", fake_twilio::FROM),
            ("KISS_TWILIO_API_BASE", &twilio.base_url),
        ],
        Stdio::from(log_file),
    )
    .await;
    let client = http_client();
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = client.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { read(request.send().await.unwrap()).await }
    };
    use reqwest::Method;

    crate::helpers::create_admin(&db, "root@example.com", None, chrono::Utc::now()).await;
    let signed_in = call(
        Method::POST,
        "/admin/sign-in",
        None,
        Some(json!({"email": "root@example.com", "password": ADMIN_PASSWORD})),
    )
    .await;
    let admin_token = signed_in.body["data"]["token"].as_str().unwrap().to_owned();
    let company = call(
        Method::POST,
        "/companies",
        Some(&admin_token),
        Some(json!({"name": "Acme"})),
    )
    .await;
    let company_id = company.body["data"]["id"].as_str().unwrap().to_owned();
    let created = call(
        Method::POST,
        &format!("/companies/{company_id}/api-tokens"),
        Some(&admin_token),
        Some(json!({"name": "pms"})),
    )
    .await;
    let api_token = created.body["data"]["token"].as_str().unwrap().to_owned();
    let synced = call(
        Method::PATCH,
        "/units",
        Some(&api_token),
        Some(json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}]})),
    )
    .await;
    assert_eq!(synced.status, StatusCode::OK);
    call(Method::PUT, "/units/A/tenancy", Some(&api_token), Some(json!({"crm_tenant_id": "T", "name": "Jane", "phone": "+15551234567", "access_code": "98765"}))).await;
    let sent = call(
        Method::POST,
        "/auth/phone",
        None,
        Some(json!({"country_code": "1", "phone_number": "5551234567"})),
    )
    .await;
    assert_eq!(sent.status, StatusCode::OK);
    let code = twilio.last_code("+15551234567");
    call(
        Method::POST,
        "/auth/verify-otp",
        None,
        Some(json!({"country_code": "1", "phone_number": "5551234567", "otp": "000000"})),
    )
    .await;
    let login = call(
        Method::POST,
        "/auth/verify-otp",
        None,
        Some(json!({"country_code": "1", "phone_number": "5551234567", "otp": code})),
    )
    .await;
    let tenant_token = login.body["data"]["token"].as_str().unwrap().to_owned();
    let access = call(Method::GET, "/tenant/access", Some(&tenant_token), None).await;
    assert_eq!(access.status, StatusCode::OK);
    call(
        Method::POST,
        "/admin/sign-in",
        None,
        Some(json!({"email": "root@example.com", "password": "a wrong password"})),
    )
    .await;

    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_file(&log_path).ok();

    let mut request_lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let object: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if object["message"] == "request finished" {
            request_lines += 1;
            assert!(
                object["span"]["request_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
                "{line}"
            );
        }
    }
    assert!(request_lines >= 10, "{request_lines} request lines");

    let secret_of = |token: &str| token.rsplit(['.', '|']).next().unwrap().to_owned();
    for secret in [
        ADMIN_PASSWORD.to_owned(),
        "a wrong password".to_owned(),
        secret_of(&admin_token),
        secret_of(&api_token),
        secret_of(&tenant_token),
        code.clone(),
        APP_KEY.to_owned(),
        fake_twilio::AUTH_TOKEN.to_owned(),
        "98765".to_owned(),
    ] {
        assert!(!logs.contains(&secret), "the logs contain {secret:?}");
    }
}

#[sqlx::test]
async fn expired_sessions_tokens_and_codes_are_purged(db: PgPool) {
    use chrono::TimeDelta;
    use kiss_auth::app::maintenance::purge_expired;
    let app = spawn_app(db).await;
    let cooldown = app.state.config.otp_resend_cooldown;
    let purge = || async {
        purge_expired(&app.db, cooldown, app.clock_now(), 2)
            .await
            .unwrap()
    };

    let _root = app.super_admin_token().await;
    let other = app
        .sign_in("root@example.com", crate::helpers::ADMIN_PASSWORD)
        .await;
    let other = other.body["data"]["token"].as_str().unwrap().to_owned();
    app.request(reqwest::Method::POST, "/admin/sign-out", Some(&other), None)
        .await;
    let (_, pms) = app.company_with_token("Acme").await;
    app.unit_rented_by_jane(&pms).await;
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    for (days, hash) in [(1, 1u8), (3, 2)] {
        sqlx::query(
            "INSERT INTO tenant_tokens (tenant_id, person_id, secret_hash, created_at, expires_at)
             SELECT id, person_id, $1, $2, $3 FROM tenants",
        )
        .bind(vec![hash])
        .bind(app.clock_now())
        .bind(app.clock_now() + TimeDelta::days(days))
        .execute(&app.db)
        .await
        .unwrap();
    }

    assert_eq!(purge().await, 1, "the signed-out session");
    app.clock.advance(TimeDelta::seconds(300));
    assert_eq!(purge().await, 1, "the expired code");
    app.clock.advance(TimeDelta::hours(12));
    assert_eq!(purge().await, 1, "the expired admin session");
    app.clock.advance(TimeDelta::days(1));
    assert_eq!(purge().await, 1, "one tenant token");
    assert_eq!(
        app.count("tenant_tokens").await,
        1,
        "the other is still valid"
    );
    assert_eq!(app.count("admin_sessions").await, 0);
    assert_eq!(app.count("otp_challenges").await, 0);
}

/// `.env.example` is the complete list of settings: every variable the configuration reads is in it.
#[test]
fn every_configuration_variable_is_in_the_env_example() {
    let source = std::fs::read_to_string("src/infra/config.rs").unwrap();
    let code = source.split("#[cfg(test)]").next().unwrap();
    let example = std::fs::read_to_string(".env.example").unwrap();
    let mut read = Vec::new();
    for literal in code.split('"').skip(1).step_by(2) {
        let is_variable = (literal.starts_with("KISS_") || literal.ends_with("_URL"))
            && literal
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if is_variable && !read.contains(&literal) {
            read.push(literal);
        }
    }
    assert!(read.len() > 30, "the scan found the variables: {read:?}");
    let missing: Vec<&&str> = read
        .iter()
        .filter(|name| {
            !example
                .lines()
                .any(|line| line.starts_with(&format!("{name}=")))
        })
        .collect();
    assert!(missing.is_empty(), "not in .env.example: {missing:?}");
}
