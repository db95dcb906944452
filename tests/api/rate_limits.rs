//! Rate limits (docs/api.md, "Rate limits"): exact counts per rolling window, per scope and key, in memory and
//! shared through the real Redis, with `Retry-After` and the `RateLimit` headers.

use std::net::Ipv4Addr;

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    REDIS, TestApp, TestResponse, client_from, for_each_backend, fresh_prefix, read,
    spawn_app_with, start_server, too_many,
};

#[sqlx::test]
async fn otp_sends_are_limited_per_phone_in_a_rolling_window(db: PgPool) {
    // The per-minute window alone: the daily limit (10) is lifted out of the way.
    let daily = [("KISS_RATE_LIMIT_OTP_SEND_DAILY", "100/86400s")];
    for_each_backend(db, &daily, async |app: TestApp| {
        // An unknown phone gets 422, yet each request counts: the limit runs before the route.
        for _ in 0..5 {
            let response = app.request_code("5550000001").await;
            assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                response.header("ratelimit-policy"),
                Some("\"otp_send_ip\";q=20;w=3600, \"otp_send\";q=5;w=60, \"otp_send_daily\";q=100;w=86400")
            );
        }
        too_many(&app.request_code("5550000001").await, 60);

        // Refused requests do not count, and the window rolls rather than resets.
        app.clock.advance(TimeDelta::milliseconds(59_001));
        too_many(&app.request_code("555-000-0001").await, 1);
        app.clock.advance(TimeDelta::milliseconds(999));
        // All five were let through at t=0, so at t=60 s all five slots are free again.
        for _ in 0..5 {
            let response = app.request_code("5550000001").await;
            assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        too_many(&app.request_code("5550000001").await, 60);

        // Another phone has its own limit.
        assert_eq!(
            app.request_code("5550000002").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    })
    .await;
}

#[sqlx::test]
async fn one_phone_in_two_spellings_shares_a_limit(db: PgPool) {
    for_each_backend(
        db,
        &[("KISS_RATE_LIMIT_OTP_SEND", "2/60s")],
        async |app: TestApp| {
            app.request_code("555-123-0000").await;
            app.request_code("(555) 123 0000").await;
            too_many(&app.request_code("5551230000").await, 60);
        },
    )
    .await;
}

#[sqlx::test]
async fn a_sixth_verify_of_a_dead_code_is_a_429_not_a_422(db: PgPool) {
    for_each_backend(db, &[], async |app: TestApp| {
        let body = json!({"country_code": "1", "phone_number": "5551234567", "otp": "123456"});
        for _ in 0..5 {
            let response = app.post("/auth/verify-otp", None, body.clone()).await;
            assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        let sixth = app.post("/auth/verify-otp", None, body).await;
        too_many(&sixth, 60);
        // The wrong codes of the day are not reported: their slots are reservations.
        assert_eq!(
            sixth.header("ratelimit"),
            Some("\"otp_verify_ip\";r=55;t=3600, \"otp_verify\";r=0;t=60")
        );
    })
    .await;
}

#[sqlx::test]
async fn a_limited_otp_request_sends_no_sms(db: PgPool) {
    let app = spawn_app_with(db, &[("KISS_RATE_LIMIT_OTP_SEND", "1/60s")]).await;
    let (_, pms) = app.company_with_token("Acme").await;
    app.unit_rented_by_jane(&pms).await;
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let sent_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT sent_at FROM otp_challenges")
            .fetch_one(&app.db)
            .await
            .unwrap();
    app.clock.advance(TimeDelta::seconds(45));
    too_many(&app.request_code("5551234567").await, 15);
    let unchanged: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT sent_at FROM otp_challenges")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(unchanged, sent_at, "no new code was issued");
}

fn bulk(id: &str) -> Value {
    json!({"units": [{"crm_unit_id": id, "crm_location_id": "dt"}]})
}

#[sqlx::test]
async fn pms_writes_are_limited_per_company_and_per_scope(db: PgPool) {
    let limits = [
        ("KISS_RATE_LIMIT_PMS_BULK", "3/60s"),
        ("KISS_RATE_LIMIT_PMS_UNIT", "2/10s"),
    ];
    for_each_backend(db, &limits, async |app: TestApp| {
        let (_, acme) = app.company_with_token("Acme").await;
        let (_, other) = app.company_with_token("Other").await;
        for i in 0..3 {
            let response = app.patch("/units", &acme, bulk(&format!("U{i}"))).await;
            assert_eq!(response.status, StatusCode::OK);
            assert_eq!(
                response.header("ratelimit-policy"),
                Some("\"pms_bulk\";q=3;w=60")
            );
            assert_eq!(
                response.header("ratelimit"),
                Some(format!("\"pms_bulk\";r={};t=60", 2 - i).as_str())
            );
        }
        too_many(&app.patch("/units", &acme, bulk("U9")).await, 60);
        assert_eq!(
            app.count("units").await,
            3,
            "the limited request wrote nothing"
        );
        assert_eq!(
            app.patch("/units", &other, bulk("U0")).await.status,
            StatusCode::OK
        );

        // Reads are not limited; single-unit writes have their own scope.
        let read = app.get("/units/U0", &acme).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.header("ratelimit-policy"), None);
        let tenancy = json!({"crm_tenant_id": "T", "name": "Jane", "phone": "+15551234567"});
        assert_eq!(
            app.patch("/units/U0", &acme, json!({"status": "rented"}))
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            app.put("/units/U0/tenancy", &acme, tenancy.clone())
                .await
                .status,
            StatusCode::OK
        );
        too_many(&app.delete("/units/U0/tenancy", &acme).await, 10);
        app.clock.advance(TimeDelta::seconds(10));
        assert_eq!(
            app.delete("/units/U0/tenancy", &acme).await.status,
            StatusCode::NO_CONTENT
        );

        // An unauthenticated request is a 401 and counts for nobody.
        let anonymous = app
            .request(
                reqwest::Method::PATCH,
                "/units",
                Some("kat_x.y"),
                Some(bulk("X")),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

async fn sign_in_from(app: &TestApp, client: &reqwest::Client, email: &str) -> TestResponse {
    read(
        client
            .post(app.url("/admin/sign-in"))
            .json(&json!({"email": email, "password": "wrong password"}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[sqlx::test]
async fn admin_sign_in_is_limited_per_e_mail_and_per_address(db: PgPool) {
    for_each_backend(
        db,
        &[("KISS_RATE_LIMIT_ADMIN_SIGN_IN", "3/60s")],
        async |app: TestApp| {
            let first = client_from(Ipv4Addr::new(127, 0, 0, 1));
            let second = client_from(Ipv4Addr::new(127, 0, 0, 2));
            for _ in 0..3 {
                let response = sign_in_from(&app, &first, "root@example.com").await;
                assert_eq!(response.status, StatusCode::UNAUTHORIZED);
            }
            // The same e-mail from another address: the e-mail's limit holds.
            too_many(&sign_in_from(&app, &second, "ROOT@example.com").await, 60);
            // Another e-mail from the first address: that address's limit holds.
            too_many(&sign_in_from(&app, &first, "ops@example.com").await, 60);
            // Another e-mail from another address goes through; the refusals above did not count.
            let fresh = sign_in_from(&app, &second, "ops@example.com").await;
            assert_eq!(fresh.status, StatusCode::UNAUTHORIZED);
            assert_eq!(
                fresh.header("ratelimit-policy"),
                Some("\"admin_sign_in_email\";q=3;w=60, \"admin_sign_in_ip\";q=3;w=60")
            );
            assert_eq!(
                fresh.header("ratelimit"),
                Some("\"admin_sign_in_email\";r=2;t=60, \"admin_sign_in_ip\";r=2;t=60")
            );
        },
    )
    .await;
}

#[sqlx::test]
async fn an_unreachable_redis_refuses_otp_and_sign_in_but_not_pms_writes(db: PgPool) {
    let app = spawn_app_with(
        db,
        &[
            ("KISS_RATE_LIMIT_BACKEND", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ],
    )
    .await;
    let otp = app.request_code("5551234567").await;
    assert_eq!(otp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(otp.body, json!({"message": "Server error."}));
    let sign_in = app.sign_in("root@example.com", "whatever").await;
    assert_eq!(sign_in.status, StatusCode::SERVICE_UNAVAILABLE);

    let (_, pms) = app.company_with_token("Acme").await;
    let response = app.patch("/units", &pms, bulk("A")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("ratelimit"), None);
}

#[sqlx::test]
async fn two_server_processes_share_one_limit_through_redis(db: PgPool) {
    let app = spawn_app_with(db.clone(), &[]).await;
    let (_, token) = app.company_with_token("Acme").await;
    let prefix = fresh_prefix();
    let env = [
        ("KISS_RATE_LIMIT_BACKEND", "redis"),
        ("REDIS_URL", REDIS),
        ("KISS_RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
        ("KISS_RATE_LIMIT_PMS_BULK", "7/60s"),
    ];
    let (_first, first) = start_server(&db, &env).await;
    let (_second, second) = start_server(&db, &env).await;
    let urls = [format!("{first}/units"), format!("{second}/units")];
    let client = crate::helpers::http_client();

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..20 {
        let request = client
            .patch(&urls[i % 2])
            .bearer_auth(&token)
            .json(&bulk(&format!("U{i}")));
        requests.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = requests.join_all().await;
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((admitted, limited), (7, 13), "{statuses:?}");
    assert_eq!(app.count("units").await, 7);
}
