//! OTP and SMS abuse controls (docs/api.md, "SMS and OTP abuse controls"), each against the real Postgres, the real Redis where
//! limits are shared, the fake Twilio and a local receiver that checks webhook signatures.

use std::net::Ipv4Addr;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::fake_twilio::FakeTwilio;
use crate::helpers::{
    REDIS, TestApp, TestResponse, client_from, for_each_backend, for_each_backend_with_twilio,
    fresh_prefix, metrics_text, read, spawn_app_with, start_server, too_many,
};
use crate::receiver::Receiver;

const JANE: &str = "+15551234567";

/// Rents unit `unit` to a tenant with `phone`, through the PMS API.
async fn rent(app: &TestApp, pms: &str, unit: &str, phone: &str) {
    let pushed = app
        .patch(
            "/units",
            pms,
            json!({"units": [{"crm_unit_id": unit, "crm_location_id": "dt"}]}),
        )
        .await;
    assert_eq!(pushed.status, StatusCode::OK);
    let rented = app
        .put(
            &format!("/units/{unit}/tenancy"),
            pms,
            json!({"crm_tenant_id": format!("T-{unit}"), "name": "Tenant", "phone": phone}),
        )
        .await;
    assert_eq!(rented.status, StatusCode::OK, "{:?}", rented.body);
}

async fn jane_rents(app: &TestApp) {
    let (_, pms) = app.company_with_token("Acme").await;
    app.unit_rented_by_jane(&pms).await;
}

async fn verify(app: &TestApp, national: &str, otp: &str) -> TestResponse {
    app.post(
        "/auth/verify-otp",
        None,
        json!({"country_code": "1", "phone_number": national, "otp": otp}),
    )
    .await
}

/// A 6-digit code that is not `code`.
fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

fn invalid_otp() -> Value {
    json!({"message": "The OTP code is invalid or has expired."})
}

async fn challenges_of(app: &TestApp, phone: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM otp_challenges WHERE phone_e164 = $1")
        .bind(phone)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn request_code_from(
    app: &TestApp,
    client: &reqwest::Client,
    national: &str,
) -> TestResponse {
    read(
        client
            .post(app.url("/auth/phone"))
            .json(&json!({"country_code": "1", "phone_number": national}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[sqlx::test]
async fn sends_and_verifications_are_limited_per_client_ip_whatever_the_phone(db: PgPool) {
    let limits = [
        ("KISS_RATE_LIMIT_OTP_SEND_IP", "3/3600s"),
        ("KISS_RATE_LIMIT_OTP_VERIFY_IP", "2/3600s"),
    ];
    for_each_backend(db, &limits, async |app: TestApp| {
        let here = client_from(Ipv4Addr::new(127, 0, 0, 1));
        let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, 2));
        // Three different phones from one address: each a 422 (unknown), each counted.
        for national in ["5550000001", "5550000002", "5550000003"] {
            let response = request_code_from(&app, &here, national).await;
            assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        too_many(&request_code_from(&app, &here, "5550000004").await, 3600);
        // Another address has its own allowance; the refusal above did not count.
        let other = request_code_from(&app, &elsewhere, "5550000004").await;
        assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
        app.clock.advance(TimeDelta::seconds(3599));
        too_many(&request_code_from(&app, &here, "5550000005").await, 1);
        app.clock.advance(TimeDelta::seconds(1));
        let later = request_code_from(&app, &here, "5550000005").await;
        assert_eq!(later.status, StatusCode::UNPROCESSABLE_ENTITY);

        for national in ["5550000001", "5550000002"] {
            let response = verify(&app, national, "123456").await;
            assert_eq!(response.body, invalid_otp());
        }
        too_many(&verify(&app, "5550000003", "123456").await, 3600);
        // A body that names no valid phone still counts against the address.
        let unnamed = app
            .post("/auth/verify-otp", None, json!({"otp": "123456"}))
            .await;
        too_many(&unnamed, 3600);
    })
    .await;
}

#[sqlx::test]
async fn a_phone_gets_at_most_the_daily_number_of_codes(db: PgPool) {
    let limits = [("KISS_RATE_LIMIT_OTP_SEND_DAILY", "3/86400s")];
    for_each_backend_with_twilio(db, &limits, async |app: TestApp, twilio: FakeTwilio| {
        jane_rents(&app).await;
        for _ in 0..3 {
            assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
            // Past the cooldown and the per-minute limit.
            app.clock.advance(TimeDelta::seconds(61));
        }
        let fourth = app.request_code("5551234567").await;
        too_many(&fourth, 86_400 - 3 * 61);
        assert_eq!(
            fourth.header("ratelimit"),
            Some(
                "\"otp_send_ip\";r=17;t=3417, \"otp_send\";r=5;t=0, \"otp_send_daily\";r=0;t=86217"
            )
        );
        assert_eq!(
            twilio.messages().len(),
            3,
            "nothing is sent when a limit refuses"
        );

        app.clock.advance(TimeDelta::seconds(86_400 - 3 * 61));
        assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
        assert_eq!(twilio.messages().len(), 4);
    })
    .await;
}

#[sqlx::test]
async fn wrong_codes_are_capped_per_phone_per_day_across_codes(db: PgPool) {
    for_each_backend_with_twilio(db, &[], async |app: TestApp, twilio: FakeTwilio| {
        jane_rents(&app).await;
        // Three codes, five wrong guesses each (the most one code takes): 15, the daily cap.
        for _ in 0..3 {
            assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
            let code = twilio.last_code(JANE);
            for _ in 0..5 {
                let response = verify(&app, "5551234567", wrong(&code)).await;
                assert_eq!(response.body, invalid_otp());
            }
            app.clock.advance(TimeDelta::seconds(61));
        }
        assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
        let code = twilio.last_code(JANE);
        // Even the right code is refused until the first wrong one is a day old.
        too_many(&verify(&app, "5551234567", &code).await, 86_400 - 3 * 61);
        let (failed, consumed): (i32, bool) = sqlx::query_as(
            "SELECT failed_attempts, consumed_at IS NOT NULL FROM otp_challenges WHERE phone_e164 = $1",
        )
        .bind(JANE)
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!((failed, consumed), (0, false), "the refused request changed nothing");

        app.clock.advance(TimeDelta::seconds(86_400 - 3 * 61));
        assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
        let code = twilio.last_code(JANE);
        let response = verify(&app, "5551234567", &code).await;
        assert_eq!(response.body["message"], "Login successful.");
    })
    .await;
}

#[sqlx::test]
async fn right_codes_and_codeless_guesses_do_not_count_as_wrong(db: PgPool) {
    let limits = [
        ("KISS_OTP_MAX_FAILED_PER_DAY", "2"),
        ("KISS_RATE_LIMIT_OTP_VERIFY", "100/60s"),
    ];
    for_each_backend_with_twilio(db, &limits, async |app: TestApp, twilio: FakeTwilio| {
        jane_rents(&app).await;
        // No code yet: nothing to guess, nothing counted.
        for _ in 0..3 {
            assert_eq!(
                verify(&app, "5551234567", "123456").await.body,
                invalid_otp()
            );
        }
        for _ in 0..3 {
            assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
            let code = twilio.last_code(JANE);
            let response = verify(&app, "5551234567", &code).await;
            assert_eq!(response.body["message"], "Login successful.");
            app.clock.advance(TimeDelta::seconds(31));
        }
        assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
        let code = twilio.last_code(JANE);
        for _ in 0..2 {
            assert_eq!(
                verify(&app, "5551234567", wrong(&code)).await.body,
                invalid_otp()
            );
        }
        too_many(&verify(&app, "5551234567", &code).await, 86_400);
    })
    .await;
}

#[sqlx::test]
async fn concurrent_wrong_codes_cannot_overshoot_the_daily_cap(db: PgPool) {
    let limits = [
        ("KISS_OTP_MAX_FAILED_PER_DAY", "3"),
        ("KISS_RATE_LIMIT_OTP_VERIFY", "100/60s"),
    ];
    for_each_backend_with_twilio(db, &limits, async |app: TestApp, twilio: FakeTwilio| {
        jane_rents(&app).await;
        assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
        let code = twilio.last_code(JANE);
        let mut guesses = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let guess = app.client.post(app.url("/auth/verify-otp")).json(
                &json!({"country_code": "1", "phone_number": "5551234567", "otp": wrong(&code)}),
            );
            guesses.spawn(async move { guess.send().await.unwrap().status() });
        }
        let statuses = guesses.join_all().await;
        let wrong_answers = statuses
            .iter()
            .filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY)
            .count();
        let limited = statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!((wrong_answers, limited), (3, 7), "{statuses:?}");
        let failed: i32 =
            sqlx::query_scalar("SELECT failed_attempts FROM otp_challenges WHERE phone_e164 = $1")
                .bind(JANE)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(failed, 3);
    })
    .await;
}

#[sqlx::test]
async fn two_server_processes_share_the_ip_daily_and_failure_limits_through_redis(db: PgPool) {
    let app = spawn_app_with(db.clone(), &[]).await;
    jane_rents(&app).await;
    let twilio = FakeTwilio::start().await;
    let prefix = fresh_prefix();
    let mut env = vec![
        ("KISS_RATE_LIMIT_BACKEND", "redis"),
        ("REDIS_URL", REDIS),
        ("KISS_RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
        ("KISS_RATE_LIMIT_OTP_SEND_IP", "4/3600s"),
        ("KISS_RATE_LIMIT_OTP_SEND_DAILY", "2/86400s"),
        ("KISS_OTP_MAX_FAILED_PER_DAY", "2"),
    ];
    env.extend(twilio.env());
    let (_first, first) = start_server(&db, &env).await;
    let (_second, second) = start_server(&db, &env).await;
    let client = crate::helpers::http_client();
    let post = async |base: &str, path: &str, body: Value| {
        read(
            client
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let phone = |national: &str| json!({"country_code": "1", "phone_number": national});
    let limited = |response: &TestResponse| {
        assert_eq!(
            response.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{:?}",
            response.body
        );
        assert!(response.header("retry-after").is_some());
    };

    // Jane's code (the address's first send), then two wrong guesses through different servers.
    let sent = post(&first, "/auth/phone", phone("5551234567")).await;
    assert_eq!(sent.status, StatusCode::OK);
    let code = twilio.last_code(JANE);
    let guess = |otp: &str| json!({"country_code": "1", "phone_number": "5551234567", "otp": otp});
    for base in [&first, &second] {
        let response = post(base, "/auth/verify-otp", guess(wrong(&code))).await;
        assert_eq!(response.body, invalid_otp());
    }
    // The cap of two wrong codes holds in both processes, even for the right code.
    for base in [&first, &second] {
        limited(&post(base, "/auth/verify-otp", guess(&code)).await);
    }

    // An unknown phone's daily limit of two, across the servers.
    for base in [&second, &first] {
        let response = post(base, "/auth/phone", phone("5550000009")).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    limited(&post(&second, "/auth/phone", phone("5550000009")).await);
    // The address's fourth send is let through, its fifth is not, whichever server gets it.
    let fourth = post(&first, "/auth/phone", phone("5550000010")).await;
    assert_eq!(fourth.status, StatusCode::UNPROCESSABLE_ENTITY);
    limited(&post(&second, "/auth/phone", phone("5550000011")).await);
    assert_eq!(twilio.messages().len(), 1);
}

#[sqlx::test]
async fn sms_only_goes_to_allowed_countries(db: PgPool) {
    let twilio = FakeTwilio::start().await;
    let mut vars = twilio.env().to_vec();
    vars.push(("KISS_SMS_ALLOWED_COUNTRIES", "CA,GB"));
    let app = spawn_app_with(db, &vars).await;
    let (_, pms) = app.company_with_token("Acme").await;
    rent(&app, &pms, "A", JANE).await;
    rent(&app, &pms, "B", "+16137827274").await;

    let not_enabled = json!({
        "message": "SMS to this country is not enabled.",
        "errors": {"phone_number": ["SMS to this country is not enabled."]}
    });
    // Jane's number is in the US: refused before anything else, whether or not it is a tenant's.
    for national in ["5551234567", "5550000000"] {
        let response = app.request_code(national).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.body, not_enabled);
    }
    assert_eq!(challenges_of(&app, JANE).await, 0);

    let canada = app.request_code("6137827274").await;
    assert_eq!(canada.status, StatusCode::OK);
    let britain = app
        .post(
            "/auth/phone",
            None,
            json!({"country_code": "44", "phone_number": "07700 900123"}),
        )
        .await;
    assert_eq!(
        britain.message(),
        "A tenant with the submitted phone number does not exist."
    );
    let sent: Vec<String> = twilio.messages().into_iter().map(|m| m.to).collect();
    assert_eq!(sent, ["+16137827274"]);
}

#[sqlx::test]
async fn the_daily_sms_budget_stops_sending_with_a_503(db: PgPool) {
    let budget = [("KISS_SMS_DAILY_BUDGET", "2")];
    for_each_backend_with_twilio(db, &budget, async |app: TestApp, twilio: FakeTwilio| {
        let (_, pms) = app.company_with_token("Acme").await;
        for (unit, phone) in [
            ("A", "+15551230001"),
            ("B", "+15551230002"),
            ("C", "+15551230003"),
        ] {
            rent(&app, &pms, unit, phone).await;
        }
        // A send the provider refused, and a phone without accounts, use none of the budget.
        twilio.set_failing(true);
        assert_eq!(
            app.request_code("5551230001").await.status,
            StatusCode::BAD_GATEWAY
        );
        twilio.set_failing(false);
        let unknown = app.request_code("5550000000").await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);

        for national in ["5551230001", "5551230002"] {
            assert_eq!(app.request_code(national).await.status, StatusCode::OK);
        }
        app.clock.advance(TimeDelta::seconds(10));
        let spent = app.request_code("5551230003").await;
        assert_eq!(spent.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(spent.body, json!({"message": "Server error."}));
        assert_eq!(spent.header("retry-after"), Some("86390"));
        assert_eq!(twilio.messages().len(), 2);
        assert_eq!(
            challenges_of(&app, "+15551230003").await,
            0,
            "no cooldown starts for a code that was not sent"
        );

        app.clock.advance(TimeDelta::seconds(86_390));
        assert_eq!(app.request_code("5551230003").await.status, StatusCode::OK);
        assert_eq!(twilio.messages().len(), 3);
    })
    .await;
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
}

#[sqlx::test]
async fn a_test_otp_logs_in_without_sms_until_its_expiry(db: PgPool) {
    // The test clock starts at 2026-11-23T09:00:00Z.
    let twilio = FakeTwilio::start().await;
    let mut vars = twilio.env().to_vec();
    vars.push(("KISS_TEST_OTP", "+15551234567=246810,+15559990000=135790"));
    vars.push(("KISS_TEST_OTP_UNTIL", "2026-11-23T10:00:00Z"));
    let app = spawn_app_with(db, &vars).await;
    jane_rents(&app).await;

    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    // Cooldowns apply to test phones too.
    too_many(&app.request_code("5551234567").await, 30);
    let response = verify(&app, "5551234567", "246810").await;
    assert_eq!(response.body["message"], "Login successful.");
    // A test phone without a tenancy is still unknown.
    let stranger = app.request_code("5559990000").await;
    assert_eq!(stranger.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(twilio.messages().is_empty(), "test codes send no SMS");

    // A test code issued two minutes before the end stops at the end, not five minutes later.
    app.clock.advance(TimeDelta::minutes(58));
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    app.clock.advance(TimeDelta::minutes(2));
    assert_eq!(app.clock_now(), at("2026-11-23T10:00:00Z"));
    assert_eq!(
        verify(&app, "5551234567", "246810").await.body,
        invalid_otp()
    );

    // After the end the phone gets real codes by SMS, and the test code is just a wrong guess.
    app.clock.advance(TimeDelta::minutes(1));
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let real = twilio.last_code(JANE);
    if real != "246810" {
        assert_eq!(
            verify(&app, "5551234567", "246810").await.body,
            invalid_otp()
        );
    }
    let response = verify(&app, "5551234567", &real).await;
    assert_eq!(response.body["message"], "Login successful.");
}

#[sqlx::test]
async fn the_sms_names_the_app_and_ends_with_the_autofill_line(db: PgPool) {
    let twilio = FakeTwilio::start().await;
    let mut vars = twilio.env().to_vec();
    vars.push(("KISS_SMS_APP_NAME", "Acme Storage"));
    vars.push(("KISS_SMS_AUTOFILL_DOMAIN", "app.acme.example"));
    let app = spawn_app_with(db, &vars).await;
    jane_rents(&app).await;
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let code = twilio.last_code(JANE);
    assert_eq!(
        twilio.messages()[0].body,
        format!(
            "Your Acme Storage verification code is {code}. It expires in 5 minutes.\n\n@app.acme.example #{code}"
        )
    );
}

#[sqlx::test]
async fn webhook_sms_requests_are_signed(db: PgPool) {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(
        db,
        &[
            ("KISS_SMS_PROVIDER", "webhook"),
            ("KISS_SMS_WEBHOOK_URL", receiver.url.as_str()),
            ("KISS_SMS_WEBHOOK_SECRET", "whsec-test-1"),
        ],
    )
    .await;
    jane_rents(&app).await;
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        request.signed_at("whsec-test-1"),
        Some(app.clock_now().timestamp()),
        "signed under the secret, dated by the server's clock: {:?}",
        request.header("x-kiss-signature")
    );
    assert_eq!(request.signed_at("another-secret"), None);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json()["to"], JANE);
    assert!(
        request.json()["body"]
            .as_str()
            .unwrap()
            .contains("verification code")
    );
}

#[sqlx::test]
async fn an_sms_webhook_without_a_secret_is_unsigned_in_development(db: PgPool) {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(
        db,
        &[
            ("KISS_SMS_PROVIDER", "webhook"),
            ("KISS_SMS_WEBHOOK_URL", receiver.url.as_str()),
        ],
    )
    .await;
    jane_rents(&app).await;
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    assert_eq!(receiver.received()[0].header("x-kiss-signature"), None);
    // A receiver that fails is the provider failing: 502, and no cooldown starts.
    receiver.answer_with(500);
    app.clock.advance(TimeDelta::seconds(30));
    let failed = app.request_code("5551234567").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
    assert_eq!(challenges_of(&app, JANE).await, 0);
}

#[sqlx::test]
async fn with_unknown_phones_hidden_known_and_unknown_phones_get_the_same_answers(db: PgPool) {
    let twilio = FakeTwilio::start().await;
    let mut vars = twilio.env().to_vec();
    vars.push(("KISS_OTP_HIDE_UNKNOWN_PHONES", "true"));
    vars.push(("KISS_SMS_DAILY_BUDGET", "1"));
    let app = spawn_app_with(db, &vars).await;
    let (_, pms) = app.company_with_token("Acme").await;
    rent(&app, &pms, "A", JANE).await;
    rent(&app, &pms, "B", "+15551230002").await;

    let mut answers = Vec::new();
    // The unknown phone first: it must not use up the budget of one SMS that Jane then gets.
    for national in ["5550000000", "5551234567"] {
        let first = app.request_code(national).await;
        let again = app.request_code(national).await;
        let mut guesses = Vec::new();
        for _ in 0..6 {
            guesses.push(verify(&app, national, "000000").await.body);
        }
        answers.push((first.status, first.body, again.status, again.body, guesses));
    }
    assert_eq!(
        answers[0], answers[1],
        "the answers do not tell the phones apart"
    );
    assert_eq!(answers[0].1, json!({"message": "OTP sent successfully."}));
    assert_eq!(answers[0].2, StatusCode::TOO_MANY_REQUESTS);
    let sent: Vec<String> = twilio.messages().into_iter().map(|m| m.to).collect();
    assert_eq!(sent, [JANE], "nothing is sent to a phone without accounts");

    // With the budget spent, both kinds of phone get the 503.
    for national in ["5550000001", "5551230002"] {
        let response = app.request_code(national).await;
        assert_eq!(
            response.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{national}"
        );
    }
}

#[sqlx::test]
async fn metrics_count_sms_by_provider_and_country_refusals_by_reason_and_verifications(
    db: PgPool,
) {
    let app = spawn_app_with(db.clone(), &[]).await;
    let (_, pms) = app.company_with_token("Acme").await;
    rent(&app, &pms, "A", JANE).await;
    rent(&app, &pms, "B", "+15551230002").await;
    let twilio = FakeTwilio::start().await;
    let mut env = twilio.env().to_vec();
    env.extend([
        ("KISS_SMS_ALLOWED_COUNTRIES", "US"),
        ("KISS_SMS_DAILY_BUDGET", "1"),
    ]);
    let (_server, base) = start_server(&db, &env).await;
    let client = crate::helpers::http_client();
    let post = async |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    };
    let phone = |cc: &str, national: &str| json!({"country_code": cc, "phone_number": national});
    assert_eq!(
        post("/auth/phone", phone("1", "5551234567")).await,
        StatusCode::OK
    );
    assert_eq!(
        post("/auth/phone", phone("1", "5551234567")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        post("/auth/phone", phone("1", "5551230002")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        post("/auth/phone", phone("44", "7700900123")).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let code = twilio.last_code(JANE);
    let guess = |otp: &str| json!({"country_code": "1", "phone_number": "5551234567", "otp": otp});
    assert_eq!(
        post("/auth/verify-otp", guess(wrong(&code))).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(post("/auth/verify-otp", guess(&code)).await, StatusCode::OK);

    let metrics = metrics_text(base.trim_end_matches("/api/v2")).await;
    for line in [
        "sms_sent_total{provider=\"twilio\",country=\"US\"} 1",
        "sms_refused_total{reason=\"limit\"} 1",
        "sms_refused_total{reason=\"budget\"} 1",
        "sms_refused_total{reason=\"country\"} 1",
        "otp_verifications_total{result=\"wrong_code\"} 1",
        "otp_verifications_total{result=\"success\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
}
