//! A revoked token is refused on its very next request by every process, although each process
//! remembers the tokens it has accepted: revoked through one real server process, used on another
//! right after. Each way of writing or reading meets a token that process still remembers (a
//! refusal makes the process forget the token, so every kind gets its own).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestResponse, http_client, read, sign_in_on, spawn_app, start_server};

async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> TestResponse {
    let mut request = http_client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.unwrap()).await
}

/// A request the other process makes with a token revoked a moment ago.
struct Attempt {
    kind: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    idempotency_key: Option<&'static str>,
}

fn attempt(
    kind: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    idempotency_key: Option<&'static str>,
) -> Attempt {
    Attempt {
        kind,
        method,
        path,
        body,
        idempotency_key,
    }
}

async fn unit_state(db: &PgPool) -> (i64, String, String, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM units), u.name, l.crm_location_id,
                (SELECT count(*) FROM tenancies), (SELECT count(*) FROM idempotency_keys)
         FROM units u JOIN locations l ON l.id = u.location_id WHERE u.crm_unit_id = 'A'",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_revoked_api_token_is_refused_by_every_process_on_its_next_request(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    let setup = app.create_api_token(&root, company, "setup").await;
    app.unit_rented_by_jane(setup["token"].as_str().unwrap())
        .await;

    let attempts = [
        attempt(
            "single PATCH",
            Method::PATCH,
            "/units/A",
            Some(json!({"name": "Revoked"})),
            None,
        ),
        attempt(
            "single PATCH of a unit that does not exist",
            Method::PATCH,
            "/units/Z",
            Some(json!({"name": "Revoked"})),
            None,
        ),
        attempt(
            "single PATCH with a new Idempotency-Key",
            Method::PATCH,
            "/units/A",
            Some(json!({"name": "Revoked"})),
            Some("new-key"),
        ),
        attempt(
            "replay of a stored Idempotency-Key",
            Method::PATCH,
            "/units/A",
            Some(json!({"name": "Warm"})),
            Some("stored-key"),
        ),
        attempt(
            "single PATCH moving the unit",
            Method::PATCH,
            "/units/A",
            Some(json!({"crm_location_id": "up", "location_name": "Uptown"})),
            None,
        ),
        attempt(
            "bulk PATCH",
            Method::PATCH,
            "/units",
            Some(json!({"units": [{"crm_unit_id": "B", "crm_location_id": "dt"}]})),
            None,
        ),
        attempt(
            "PUT tenancy",
            Method::PUT,
            "/units/A/tenancy",
            Some(json!({"crm_tenant_id": "T2", "name": "Joe", "phone": "+15557654321"})),
            None,
        ),
        attempt(
            "DELETE tenancy",
            Method::DELETE,
            "/units/A/tenancy",
            None,
            None,
        ),
        attempt(
            "invalid body",
            Method::PATCH,
            "/units/A",
            Some(json!({"status": "haunted"})),
            None,
        ),
        attempt("GET unit", Method::GET, "/units/A", None, None),
        attempt("GET units", Method::GET, "/units", None, None),
    ];
    let mut tokens = Vec::new();
    for attempt in &attempts {
        tokens.push(app.create_api_token(&root, company, attempt.kind).await);
    }

    let (_first, first) = start_server(&db, &[]).await;
    let (_second, second) = start_server(&db, &[]).await;
    // The second process accepts (and so remembers) every token; one stores an answer to replay.
    for (attempt, token) in attempts.iter().zip(&tokens) {
        let key = (attempt.kind == "replay of a stored Idempotency-Key").then_some("stored-key");
        let warm = call(
            &second,
            Method::PATCH,
            "/units/A",
            token["token"].as_str().unwrap(),
            Some(json!({"name": "Warm"})),
            key,
        )
        .await;
        assert_eq!(
            warm.status,
            StatusCode::OK,
            "{}: {:?}",
            attempt.kind,
            warm.body
        );
    }
    let before = unit_state(&db).await;
    assert_eq!(before, (1, "Warm".into(), "dt".into(), 1, 1));

    let admin = sign_in_on(&first).await;
    for (attempt, token) in attempts.iter().zip(&tokens) {
        let path = format!(
            "/companies/{company}/api-tokens/{}",
            token["id"].as_str().unwrap()
        );
        let revoked = call(&first, Method::DELETE, &path, &admin, None, None).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", attempt.kind);

        let refused = call(
            &second,
            attempt.method.clone(),
            attempt.path,
            token["token"].as_str().unwrap(),
            attempt.body.clone(),
            attempt.idempotency_key,
        )
        .await;
        assert_eq!(
            (refused.status, refused.body.clone()),
            (
                StatusCode::UNAUTHORIZED,
                json!({"message": "Unauthorized."})
            ),
            "{}",
            attempt.kind
        );
        assert_eq!(
            refused.header("idempotent-replayed"),
            None,
            "{}",
            attempt.kind
        );
        assert_eq!(
            unit_state(&db).await,
            before,
            "{} changed nothing",
            attempt.kind
        );
    }
}

#[sqlx::test]
async fn a_tenant_token_ended_on_one_process_is_refused_by_another_on_its_next_request(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let (_, pms) = app.company_with_token("Acme Storage").await;
    app.unit_rented_by_jane(&pms).await;
    let test_code = [
        ("KISS_TEST_OTP", "+15551234567=246810"),
        ("KISS_OTP_RESEND_COOLDOWN_SECS", "1"),
    ];
    let (_first, first) = start_server(&db, &test_code).await;
    let (_second, second) = start_server(&db, &test_code).await;

    let log_in = async || {
        // The shortest resend cooldown there is.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let phone = json!({"country_code": "1", "phone_number": "5551234567"});
        let client = http_client();
        let sent = client
            .post(format!("{first}/auth/phone"))
            .json(&phone)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), StatusCode::OK);
        let mut verify = phone.clone();
        verify["otp"] = json!("246810");
        let verified = read(
            client
                .post(format!("{first}/auth/verify-otp"))
                .json(&verify)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.body);
        verified.body["data"]["token"].as_str().unwrap().to_owned()
    };
    let access =
        async |token: &str| call(&second, Method::GET, "/tenant/access", token, None, None).await;

    // Logged out through the first process.
    let token = log_in().await;
    assert_eq!(access(&token).await.status, StatusCode::OK);
    let logged_out = call(&first, Method::POST, "/auth/logout", &token, None, None).await;
    assert_eq!(logged_out.status, StatusCode::NO_CONTENT);
    let refused = access(&token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body, json!({"message": "Unauthorized."}));

    // Two remembered tokens, then the tenancy ends through the first process: both the access
    // read and a unit read on the second are refused.
    let for_access = log_in().await;
    let for_unit = log_in().await;
    let seen = access(&for_access).await;
    assert_eq!(seen.status, StatusCode::OK);
    let unit_path = format!(
        "/tenant/units/{}",
        seen.body["data"]["units"][0]["unit_id"].as_str().unwrap()
    );
    let unit = call(&second, Method::GET, &unit_path, &for_unit, None, None).await;
    assert_eq!(unit.status, StatusCode::OK);
    let ended = call(&first, Method::DELETE, "/units/A/tenancy", &pms, None, None).await;
    assert!(ended.status.is_success(), "{:?}", ended.body);
    assert_eq!(access(&for_access).await.status, StatusCode::UNAUTHORIZED);
    let unit = call(&second, Method::GET, &unit_path, &for_unit, None, None).await;
    assert_eq!(unit.status, StatusCode::UNAUTHORIZED);
}
