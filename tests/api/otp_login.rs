//! Tenant login by phone and SMS code, tenant tokens and tenant access (docs/api.md, "Tenant login"), with the
//! Twilio provider talking to a local fake Twilio.

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::{TestApp, TestResponse, sorted_keys, spawn_app_with};

const JANE: &str = "+15551234567";

async fn spawn_with_twilio(db: PgPool, overrides: &[(&str, &str)]) -> (TestApp, FakeTwilio) {
    let twilio = FakeTwilio::start().await;
    let mut vars = twilio.env().to_vec();
    vars.extend_from_slice(overrides);
    (spawn_app_with(db, &vars).await, twilio)
}

/// A company whose PMS pushed units A-1, A-2 (Downtown Storage) and B-1 (Uptown Storage);
/// returns the API token.
async fn storage_company(app: &TestApp) -> String {
    let (_, token) = app.company_with_token("ABC Storage Co.").await;
    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [
                {"crm_unit_id": "A-1", "crm_location_id": "dt", "location_name": "Downtown Storage", "size": "10x10"},
                {"crm_unit_id": "A-2", "crm_location_id": "dt"},
                {"crm_unit_id": "B-1", "crm_location_id": "up", "location_name": "Uptown Storage"},
            ]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    token
}

async fn rent(
    app: &TestApp,
    token: &str,
    unit: &str,
    crm_tenant_id: &str,
    name: &str,
    phone: &str,
) -> String {
    let response = app
        .put(
            &format!("/units/{unit}/tenancy"),
            token,
            json!({"crm_tenant_id": crm_tenant_id, "name": name, "phone": phone,
                   "email": "jane@example.com", "access_code": "0482"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.body["data"]["tenant"]["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn verify(app: &TestApp, otp: &str, tenant_id: Option<&str>) -> TestResponse {
    let mut body = json!({"country_code": "1", "phone_number": "5551234567", "otp": otp});
    if let Some(tenant_id) = tenant_id {
        body["tenant_id"] = json!(tenant_id);
    }
    app.post("/auth/verify-otp", None, body).await
}

fn invalid_otp() -> Value {
    json!({"message": "The OTP code is invalid or has expired."})
}

/// A wrong code that differs from `code`.
fn wrong(code: &str) -> String {
    let first = if code.starts_with('9') { '0' } else { '9' };
    format!("{first}{}", &code[1..])
}

#[sqlx::test]
async fn the_single_account_flow_ends_with_the_tenant_s_access(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    let tenant_id = rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;

    let sent = app.request_code("(555) 123-4567").await;
    assert_eq!(sent.status, StatusCode::OK);
    assert_eq!(sent.body, json!({"message": "OTP sent successfully."}));
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, JANE);
    assert_eq!(messages[0].from, fake_twilio::FROM);
    let code = twilio.last_code(JANE);

    let login = verify(&app, &code, None).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    assert_eq!(login.body["message"], "Login successful.");
    let data = &login.body["data"];
    let token = data["token"].as_str().unwrap();
    let (id, secret) = token.split_once('|').expect("<id>|<secret>");
    assert!(id.parse::<i64>().is_ok() && secret.len() >= 43, "{token}");
    assert_eq!(data["tenant_id"], tenant_id);
    assert_eq!(
        data["expires_at"],
        json!(app.clock_now() + TimeDelta::days(30))
    );
    let user = &data["user"];
    assert!(user["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(
        user,
        &json!({"id": user["id"], "name": "Jane Smith", "email": "jane@example.com", "phone": JANE})
    );

    let access = app.get("/tenant/access", token).await;
    assert_eq!(access.status, StatusCode::OK);
    let unit_id: String =
        sqlx::query_scalar("SELECT id::text FROM units WHERE crm_unit_id = 'A-1'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let access = &access.body["data"];
    assert_eq!(access["tenant_id"], tenant_id);
    assert_eq!(access["name"], "Jane Smith");
    assert_eq!(access["company"]["name"], "ABC Storage Co.");
    assert_eq!(access["location"]["name"], "Downtown Storage");
    assert_eq!(
        access["units"],
        json!([{"unit_id": unit_id, "crm_unit_id": "A-1", "name": "A-1", "size": "10x10",
                "access_code": "0482", "access": "granted"}])
    );
    let one = app.get(&format!("/tenant/units/{unit_id}"), token).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["data"], access["units"][0]);

    // A successful login consumes the code.
    let again = verify(&app, &code, None).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.body, invalid_otp());
}

#[sqlx::test]
async fn several_accounts_are_offered_and_the_code_survives_the_choice(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    let downtown = rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    let uptown = rent(&app, &pms, "B-1", "T-9", "Jane Smith", "+1 555 123 4567").await;

    app.request_code("5551234567").await;
    let code = twilio.last_code(JANE);

    let choose = verify(&app, &code, None).await;
    assert_eq!(choose.status, StatusCode::OK);
    assert_eq!(
        choose.body,
        json!({"message": "Multiple accounts found.", "data": {"token": null, "accounts": [
            {"tenant_id": downtown, "name": "Jane Smith", "location": "Downtown Storage", "company": "ABC Storage Co."},
            {"tenant_id": uptown, "name": "Jane Smith", "location": "Uptown Storage", "company": "ABC Storage Co."},
        ]}})
    );

    let not_offered = verify(&app, &code, Some("01HQA123456789ABCDEFGHJKMN")).await;
    assert_eq!(not_offered.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        not_offered.body["errors"]["tenant_id"],
        json!(["The selected tenant id is invalid."])
    );

    let login = verify(&app, &code, Some(&uptown)).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    assert_eq!(login.body["message"], "Login successful.");
    assert_eq!(login.body["data"]["tenant_id"], uptown);
    let token = login.body["data"]["token"].as_str().unwrap();
    let access = app.get("/tenant/access", token).await;
    assert_eq!(access.body["data"]["location"]["name"], "Uptown Storage");
    assert_eq!(access.body["data"]["units"][0]["crm_unit_id"], "B-1");

    let reused = verify(&app, &code, Some(&downtown)).await;
    assert_eq!(reused.body, invalid_otp());
}

#[sqlx::test]
async fn an_unknown_phone_gets_the_documented_422_and_no_sms(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    storage_company(&app).await;
    let response = app.request_code("5559999999").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body,
        json!({"message": "A tenant with the submitted phone number does not exist."})
    );
    assert!(twilio.messages().is_empty());
}

#[sqlx::test]
async fn login_fields_are_validated(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let cases = [
        (json!({}), vec!["country_code", "phone_number"]),
        (
            json!({"country_code": "+1", "phone_number": "5551234567"}),
            vec!["country_code"],
        ),
        (
            json!({"country_code": "1234", "phone_number": "5551234567"}),
            vec!["country_code"],
        ),
        (
            json!({"country_code": "1", "phone_number": "555123"}),
            vec!["phone_number"],
        ),
        (
            json!({"country_code": "1", "phone_number": "555-CALL-NOW"}),
            vec!["phone_number"],
        ),
        (
            json!({"country_code": "1", "phone_number": "1234567890123456"}),
            vec!["phone_number"],
        ),
        (
            json!({"country_code": 1, "phone_number": 5551234567u64}),
            vec!["country_code", "phone_number"],
        ),
    ];
    for (body, fields) in cases {
        let response = app.post("/auth/phone", None, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(sorted_keys(&response.body["errors"]), fields, "{body}");
    }
    for otp in ["12345", "1234567", "12a456", ""] {
        let response = app
            .post(
                "/auth/verify-otp",
                None,
                json!({"country_code": "1", "phone_number": "5551234567", "otp": otp}),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{otp}");
        assert!(response.body["errors"]["otp"].is_array(), "{otp}");
    }
    assert!(twilio.messages().is_empty());
}

#[sqlx::test]
async fn a_new_code_waits_for_the_cooldown_and_replaces_the_old_one(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;

    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let first = twilio.last_code(JANE);

    let early = app.request_code("5551234567").await;
    assert_eq!(early.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(early.header("retry-after"), Some("30"));
    assert_eq!(
        early.body,
        json!({"message": "Too many attempts. Please try again in 30 seconds."})
    );
    app.clock.advance(TimeDelta::milliseconds(10_500));
    let later = app.request_code("555.123.4567").await;
    assert_eq!(later.header("retry-after"), Some("20"), "19.5 s rounds up");
    assert_eq!(twilio.messages().len(), 1);

    app.clock.advance(TimeDelta::milliseconds(19_500));
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    assert_eq!(twilio.messages().len(), 2);
    let second = twilio.last_code(JANE);
    if first != second {
        assert_eq!(verify(&app, &first, None).await.body, invalid_otp());
    }
    assert_eq!(verify(&app, &second, None).await.status, StatusCode::OK);
}

#[sqlx::test]
async fn codes_expire_after_the_configured_lifetime(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    rent(&app, &pms, "A-2", "T-2", "Bob Jones", "+15557654321").await;
    app.request_code("5551234567").await;
    app.request_code("5557654321").await;
    let jane = twilio.last_code(JANE);
    let bob = twilio.last_code("+15557654321");

    app.clock.advance(TimeDelta::seconds(299));
    assert_eq!(verify(&app, &jane, None).await.status, StatusCode::OK);
    app.clock.advance(TimeDelta::seconds(1));
    let expired = app
        .post(
            "/auth/verify-otp",
            None,
            json!({"country_code": "1", "phone_number": "5557654321", "otp": bob}),
        )
        .await;
    assert_eq!(expired.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(expired.body, invalid_otp());
}

#[sqlx::test]
async fn five_wrong_codes_kill_the_code(db: PgPool) {
    // The verify rate limit would answer 429 first; this test is about the attempt limit.
    let (app, twilio) = spawn_with_twilio(db, &[("KISS_RATE_LIMIT_OTP_VERIFY", "100/60s")]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    app.request_code("5551234567").await;
    let code = twilio.last_code(JANE);

    for _ in 0..5 {
        let response = verify(&app, &wrong(&code), None).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.body, invalid_otp());
    }
    assert_eq!(verify(&app, &code, None).await.body, invalid_otp());
}

#[sqlx::test]
async fn four_wrong_codes_still_leave_the_right_one_usable(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[("KISS_RATE_LIMIT_OTP_VERIFY", "100/60s")]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    app.request_code("5551234567").await;
    let code = twilio.last_code(JANE);
    for _ in 0..4 {
        verify(&app, &wrong(&code), None).await;
    }
    assert_eq!(verify(&app, &code, None).await.status, StatusCode::OK);
}

#[sqlx::test]
async fn concurrent_correct_verifies_yield_exactly_one_token(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[("KISS_RATE_LIMIT_OTP_VERIFY", "100/60s")]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    app.request_code("5551234567").await;
    let code = twilio.last_code(JANE);

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = app
            .client
            .post(app.url("/auth/verify-otp"))
            .header("content-type", "application/json")
            .body(
                json!({"country_code": "1", "phone_number": "5551234567", "otp": code}).to_string(),
            );
        attempts.spawn(async move { crate::helpers::read(request.send().await.unwrap()).await });
    }
    let responses = attempts.join_all().await;
    let logged_in = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(logged_in, 1);
    assert!(
        responses
            .iter()
            .filter(|r| r.status != StatusCode::OK)
            .all(|r| r.status == StatusCode::UNPROCESSABLE_ENTITY && r.body == invalid_otp())
    );
    assert_eq!(app.count("tenant_tokens").await, 1);
}

#[sqlx::test]
async fn a_provider_failure_is_a_502_and_starts_no_cooldown(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;

    twilio.set_failing(true);
    let failed = app.request_code("5551234567").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        failed.body,
        json!({"message": "The OTP could not be sent. Please try again."})
    );
    assert_eq!(app.count("otp_challenges").await, 0);

    twilio.set_failing(false);
    let retried = app.request_code("5551234567").await;
    assert_eq!(
        retried.status,
        StatusCode::OK,
        "no cooldown after a failure"
    );
    let code = twilio.last_code(JANE);
    assert_eq!(verify(&app, &code, None).await.status, StatusCode::OK);
}

#[sqlx::test]
async fn an_unreachable_provider_is_a_502(db: PgPool) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(
        db,
        &[
            ("KISS_SMS_PROVIDER", "twilio"),
            ("KISS_TWILIO_ACCOUNT_SID", "AC1"),
            ("KISS_TWILIO_AUTH_TOKEN", "t"),
            ("KISS_TWILIO_FROM", "+15550001111"),
            ("KISS_TWILIO_API_BASE", &url),
        ],
    )
    .await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    let response = app.request_code("5551234567").await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
}

/// Logs Jane in (single account) and returns her tenant token.
async fn jane_logged_in(app: &TestApp, twilio: &FakeTwilio) -> String {
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let login = verify(app, &twilio.last_code(JANE), None).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    login.body["data"]["token"].as_str().unwrap().to_owned()
}

#[sqlx::test]
async fn tenant_tokens_expire_and_have_no_refresh(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[("KISS_TENANT_TOKEN_TTL_SECS", "3600")]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    let token = jane_logged_in(&app, &twilio).await;

    app.clock.advance(TimeDelta::seconds(3599));
    assert_eq!(
        app.get("/tenant/access", &token).await.status,
        StatusCode::OK
    );
    app.clock.advance(TimeDelta::seconds(1));
    let expired = app.get("/tenant/access", &token).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body, json!({"message": "Unauthorized."}));
    assert_eq!(
        expired.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[sqlx::test]
async fn logout_stops_the_token(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    let token = jane_logged_in(&app, &twilio).await;

    let logout = app
        .request(Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/tenant/access", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app
        .request(Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    let (id, _) = token.split_once('|').unwrap();
    let forged = format!("{id}|{}", "A".repeat(43));
    assert_eq!(
        app.get("/tenant/access", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn another_tenant_s_unit_is_403_and_no_unit_is_404(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    rent(&app, &pms, "A-2", "T-2", "Bob Jones", "+15557654321").await;
    let token = jane_logged_in(&app, &twilio).await;
    let unit_id = |crm: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT id::text FROM units WHERE crm_unit_id = $1")
                .bind(crm)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    let bobs = app
        .get(&format!("/tenant/units/{}", unit_id("A-2").await), &token)
        .await;
    assert_eq!(bobs.status, StatusCode::FORBIDDEN);
    assert_eq!(
        bobs.body,
        json!({"message": "This action is unauthorized."})
    );
    let vacant = app
        .get(&format!("/tenant/units/{}", unit_id("B-1").await), &token)
        .await;
    assert_eq!(vacant.status, StatusCode::FORBIDDEN);
    for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let response = app.get(&format!("/tenant/units/{missing}"), &token).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.body, json!({"message": "Unit not found."}));
    }
    let own = app
        .get(&format!("/tenant/units/{}", unit_id("A-1").await), &token)
        .await;
    assert_eq!(own.status, StatusCode::OK);
}

#[sqlx::test]
async fn access_is_denied_while_suspended_or_overlocked(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    rent(&app, &pms, "A-2", "T-1", "Jane Smith", JANE).await;
    let token = jane_logged_in(&app, &twilio).await;

    app.patch("/units/A-1", &pms, json!({"status": "overlocked"}))
        .await;
    app.put(
        "/units/A-2/tenancy",
        &pms,
        json!({"crm_tenant_id": "T-1", "name": "Jane Smith", "phone": JANE,
               "access_code": "7777", "access_status": "suspended"}),
    )
    .await;

    let access = app.get("/tenant/access", &token).await;
    let units = access.body["data"]["units"].as_array().unwrap();
    assert_eq!(units.len(), 2);
    for unit in units {
        assert_eq!(unit["access"], "denied", "{unit}");
        assert_eq!(
            unit["access_code"],
            Value::Null,
            "no gate code while denied"
        );
    }

    app.patch("/units/A-1", &pms, json!({"status": "rented"}))
        .await;
    let access = app.get("/tenant/access", &token).await;
    assert_eq!(access.body["data"]["units"][0]["access"], "granted");
    assert_eq!(access.body["data"]["units"][0]["access_code"], "0482");
}

#[sqlx::test]
async fn vacating_the_last_tenancy_ends_login_and_tokens(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    rent(&app, &pms, "A-2", "T-1", "Jane Smith", JANE).await;
    let token = jane_logged_in(&app, &twilio).await;

    app.delete("/units/A-1/tenancy", &pms).await;
    assert_eq!(
        app.get("/tenant/access", &token).await.status,
        StatusCode::OK
    );
    app.delete("/units/A-2/tenancy", &pms).await;
    assert_eq!(
        app.get("/tenant/access", &token).await.status,
        StatusCode::UNAUTHORIZED
    );

    app.clock.advance(TimeDelta::seconds(60));
    let refused = app.request_code("5551234567").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body,
        json!({"message": "A tenant with the submitted phone number does not exist."})
    );
}

#[sqlx::test]
async fn a_phone_change_ends_the_old_phone_s_tokens(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    let janes = jane_logged_in(&app, &twilio).await;

    // The PMS gives the same tenant account another phone (and a new gate code).
    let response = app
        .put(
            "/units/A-1/tenancy",
            &pms,
            json!({"crm_tenant_id": "T-1", "name": "Jane Smith", "phone": "+15557654321",
                   "access_code": "9999"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let refused = app.get("/tenant/access", &janes).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // The new phone logs in and reads the new code; the same phone again would keep working.
    app.clock.advance(TimeDelta::seconds(60));
    let sent = app.request_code("5557654321").await;
    assert_eq!(sent.status, StatusCode::OK);
    let login = app
        .post(
            "/auth/verify-otp",
            None,
            json!({"country_code": "1", "phone_number": "5557654321",
                   "otp": twilio.last_code("+15557654321")}),
        )
        .await;
    let token = login.body["data"]["token"].as_str().unwrap().to_owned();
    let access = app.get("/tenant/access", &token).await;
    assert_eq!(access.body["data"]["units"][0]["access_code"], "9999");
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", "+15557654321").await;
    assert_eq!(
        app.get("/tenant/access", &token).await.status,
        StatusCode::OK
    );
}

#[sqlx::test]
async fn tokens_of_other_kinds_are_refused(db: PgPool) {
    let (app, twilio) = spawn_with_twilio(db, &[]).await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    let tenant = jane_logged_in(&app, &twilio).await;

    assert_eq!(
        app.get("/tenant/access", &pms).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/units/A-1", &tenant).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/companies", &tenant).await.status,
        StatusCode::UNAUTHORIZED
    );
    let missing = app.request(Method::GET, "/tenant/access", None, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
}

#[sqlx::test]
async fn the_webhook_provider_posts_the_message_as_json(db: PgPool) {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let hook = axum::Router::new().route(
        "/sms",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let app = spawn_app_with(
        db,
        &[
            ("KISS_SMS_PROVIDER", "webhook"),
            ("KISS_SMS_WEBHOOK_URL", &url),
        ],
    )
    .await;
    let pms = storage_company(&app).await;
    rent(&app, &pms, "A-1", "T-1", "Jane Smith", JANE).await;
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["to"], JANE);
    let body = received[0]["body"].as_str().unwrap();
    assert!(
        body.chars().filter(char::is_ascii_digit).count() >= 6,
        "{body}"
    );
}
