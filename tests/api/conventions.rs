//! The HTTP conventions (docs/api.md, "Conventions") that hold on every route.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{read, spawn_app, spawn_app_with};

#[sqlx::test]
async fn unknown_routes_answer_a_json_404(db: PgPool) {
    let app = spawn_app(db).await;
    for path in ["/api/v2/nothing-here", "/", "/api/v1/units"] {
        let response = read(
            app.client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.body, json!({"message": "Not found."}));
    }
}

#[sqlx::test]
async fn a_known_route_with_the_wrong_method_answers_a_json_405(db: PgPool) {
    let app = spawn_app(db).await;
    let response = app.request(Method::DELETE, "/companies", None, None).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.message(), "Method not allowed.");
}

#[sqlx::test]
async fn malformed_json_is_a_400_that_says_so(db: PgPool) {
    let app = spawn_app(db).await;
    let response = read(
        app.client
            .post(app.url("/admin/sign-in"))
            .header("content-type", "application/json")
            .body(r#"{"email": "root@example.com", "#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .message()
            .starts_with("The request body is not valid JSON"),
        "{}",
        response.message()
    );
}

#[sqlx::test]
async fn a_json_body_that_is_not_an_object_is_a_400(db: PgPool) {
    let app = spawn_app(db).await;
    let response = app
        .request(Method::POST, "/admin/sign-in", None, Some(json!(["a"])))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        response.message(),
        "The request body must be a JSON object."
    );
}

#[sqlx::test]
async fn a_body_of_another_content_type_is_a_415(db: PgPool) {
    let app = spawn_app(db).await;
    let response = read(
        app.client
            .post(app.url("/admin/sign-in"))
            .header("content-type", "text/plain")
            .body(r#"{"email": "a@b.co", "password": "x"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(!response.message().is_empty());
}

#[sqlx::test]
async fn a_body_over_the_configured_limit_is_a_413(db: PgPool) {
    let app = spawn_app_with(db, &[("KISS_BODY_LIMIT_BYTES", "2048")]).await;
    // The public routes have their own, smaller limit (16 KiB by default).
    for path in ["/admin/sign-in", "/auth/phone", "/auth/verify-otp"] {
        let response = app
            .post(path, None, json!({"email": "x".repeat(16_384)}))
            .await;
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(response.body, json!({"message": "Payload too large."}));
    }
    let fits = app
        .post(
            "/admin/sign-in",
            None,
            json!({"email": "x".repeat(15_000), "password": "p"}),
        )
        .await;
    assert_eq!(fits.status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, token) = app.company_with_token("Acme").await;
    let big_name = "x".repeat(4096);
    let response = app
        .patch("/units/A", &token, json!({"name": big_name}))
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.body, json!({"message": "Payload too large."}));
}

#[sqlx::test]
async fn validation_errors_name_every_bad_field(db: PgPool) {
    let app = spawn_app(db).await;
    let response = app
        .post(
            "/admin/sign-in",
            None,
            json!({"password": 12, "ignored": true}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body,
        json!({
            "message": "The email field is required. (and 1 more error)",
            "errors": {
                "email": ["The email field is required."],
                "password": ["The password field must be a string."],
            }
        })
    );
}

#[sqlx::test]
async fn an_empty_body_reads_as_an_empty_object(db: PgPool) {
    let app = spawn_app(db).await;
    let response = read(
        app.client
            .post(app.url("/admin/sign-in"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.body["errors"]["email"].is_array());
}

#[sqlx::test]
async fn every_response_carries_a_request_id(db: PgPool) {
    let app = spawn_app(db).await;
    let generated = app.request(Method::GET, "/nothing", None, None).await;
    let id = generated.header("x-request-id").expect("a request id");
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let echoed = read(
        app.client
            .get(app.url("/nothing"))
            .header("x-request-id", "pms-sync-42")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echoed.header("x-request-id"), Some("pms-sync-42"));

    let replaced = read(
        app.client
            .get(app.url("/nothing"))
            .header("x-request-id", "not sane <script>")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = replaced.header("x-request-id").unwrap();
    assert_ne!(id, "not sane <script>");
    assert_eq!(id.len(), 36);
}
