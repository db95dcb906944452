//! `POST /admin/sign-in` and `/admin/sign-out`, and admin-token authentication (docs/api.md, "Tokens" and "Administration").

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{ADMIN_PASSWORD, create_admin, spawn_app, spawn_app_with};

#[sqlx::test]
async fn a_super_admin_signs_in_and_gets_a_token_for_twelve_hours(db: PgPool) {
    let app = spawn_app(db).await;
    let admin = create_admin(&app.db, "root@example.com", None, app.clock_now()).await;

    let response = app.sign_in("root@example.com", ADMIN_PASSWORD).await;

    assert_eq!(response.status, StatusCode::OK);
    let data = &response.body["data"];
    let token = data["token"].as_str().unwrap();
    assert!(token.starts_with("kadm_"), "{token}");
    let expires_at = app.clock_now() + TimeDelta::hours(12);
    assert_eq!(data["expires_at"], json!(expires_at));
    assert_eq!(
        data["admin"],
        json!({"id": admin.id, "email": "root@example.com", "company_id": null})
    );
    // The token works and is stored only as a hash.
    assert_eq!(app.get("/companies", token).await.status, StatusCode::OK);
    let secret = token.split('.').nth(1).unwrap();
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM admin_sessions WHERE position(convert_to($1, 'UTF8') in secret_hash) > 0",
    )
    .bind(secret)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
}

#[sqlx::test]
async fn the_admin_token_lifetime_follows_the_configuration(db: PgPool) {
    let app = spawn_app_with(db, &[("KISS_ADMIN_TOKEN_TTL_SECS", "600")]).await;
    let token = app.super_admin_token().await;
    app.clock.advance(TimeDelta::seconds(599));
    assert_eq!(app.get("/companies", &token).await.status, StatusCode::OK);
    app.clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        app.get("/companies", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn e_mail_addresses_match_whatever_their_case(db: PgPool) {
    let app = spawn_app(db).await;
    app.super_admin_token().await;
    let response = app.sign_in("ROOT@Example.COM", ADMIN_PASSWORD).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[sqlx::test]
async fn failed_sign_ins_look_the_same_whatever_the_cause(db: PgPool) {
    let app = spawn_app(db).await;
    app.super_admin_token().await;
    create_admin(&app.db, "gone@example.com", None, app.clock_now()).await;
    sqlx::query("UPDATE admins SET disabled_at = now() WHERE email = 'gone@example.com'")
        .execute(&app.db)
        .await
        .unwrap();

    let wrong_password = app.sign_in("root@example.com", "not the password").await;
    let unknown_email = app.sign_in("nobody@example.com", ADMIN_PASSWORD).await;
    let disabled = app.sign_in("gone@example.com", ADMIN_PASSWORD).await;

    for response in [&wrong_password, &unknown_email, &disabled] {
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(response.body, json!({"message": "Invalid credentials."}));
    }
    assert_eq!(
        app.count("admin_sessions").await,
        1,
        "only the first sign-in made a session"
    );
}

/// The median time of a few sign-ins, so one slow run on a busy machine does not decide.
async fn median_sign_in_time(app: &crate::helpers::TestApp, email: &str) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let response = app.sign_in(email, "not the password").await;
        times.push(started.elapsed());
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    }
    times.sort();
    times[2]
}

#[sqlx::test]
async fn an_unknown_e_mail_costs_a_password_check_too(db: PgPool) {
    // Eleven sign-ins from one address: lift the per-IP limit, which is not under test here.
    let app = spawn_app_with(db, &[("KISS_RATE_LIMIT_ADMIN_SIGN_IN", "100/60s")]).await;
    app.super_admin_token().await;
    let known = median_sign_in_time(&app, "root@example.com").await;
    let unknown = median_sign_in_time(&app, "nobody@example.com").await;
    // Without the dummy argon2 check an unknown e-mail answers many times faster.
    assert!(
        unknown * 3 > known,
        "unknown e-mail took {unknown:?}, wrong password {known:?}"
    );
}

#[sqlx::test]
async fn sign_in_validates_its_fields(db: PgPool) {
    let app = spawn_app(db).await;
    let response = app
        .post(
            "/admin/sign-in",
            None,
            json!({"email": "root@example.com", "password": "x".repeat(1025)}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body["errors"]["password"],
        json!(["The password field must not be greater than 1024 characters."])
    );
    let response = app.post("/admin/sign-in", None, json!({"email": ""})).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.body["errors"]["email"].is_array());
    assert!(response.body["errors"]["password"].is_array());
}

#[sqlx::test]
async fn sign_out_stops_the_token_on_the_next_request(db: PgPool) {
    let app = spawn_app(db).await;
    let token = app.super_admin_token().await;
    let other_session = app.sign_in("root@example.com", ADMIN_PASSWORD).await;
    let other_token = other_session.body["data"]["token"].as_str().unwrap();

    let response = app
        .request(Method::POST, "/admin/sign-out", Some(&token), None)
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);

    let refused = app.get("/companies", &token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body, json!({"message": "Unauthorized."}));
    let again = app
        .request(Method::POST, "/admin/sign-out", Some(&token), None)
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    // Other sessions of the same admin are untouched.
    assert_eq!(
        app.get("/companies", other_token).await.status,
        StatusCode::OK
    );
}

#[sqlx::test]
async fn a_disabled_admin_loses_its_sessions(db: PgPool) {
    let app = spawn_app(db).await;
    let token = app.super_admin_token().await;
    sqlx::query("UPDATE admins SET disabled_at = now()")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.get("/companies", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn a_missing_or_bad_token_is_a_401_with_a_bearer_challenge(db: PgPool) {
    let app = spawn_app(db).await;
    let token = app.super_admin_token().await;

    let missing = app.request(Method::GET, "/companies", None, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(missing.body, json!({"message": "Unauthorized."}));

    let (id, _secret) = token.split_once('.').unwrap();
    for bad in [
        "garbage".to_owned(),
        format!("{id}.wrong-secret"),
        format!("{token}x"),
        "kadm_not-a-uuid.secret".to_owned(),
    ] {
        let response = app.get("/companies", &bad).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }

    let basic = crate::helpers::read(
        app.client
            .get(app.url("/companies"))
            .basic_auth("root@example.com", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn an_api_token_is_not_an_admin_token(db: PgPool) {
    let app = spawn_app(db).await;
    let admin = app.super_admin_token().await;
    let company = app.create_company(&admin, "Acme Storage").await;
    let api_token = app.create_api_token(&admin, company, "sync").await;
    let response = app
        .get("/companies", api_token["token"].as_str().unwrap())
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}
