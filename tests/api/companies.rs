//! `POST /companies` and `GET /companies` (docs/api.md, "Administration").

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test]
async fn a_super_admin_creates_a_company(db: PgPool) {
    let app = spawn_app(db).await;
    let token = app.super_admin_token().await;

    let response = app
        .post(
            "/companies",
            Some(&token),
            json!({"name": "  ABC Storage Co.  "}),
        )
        .await;

    assert_eq!(response.status, StatusCode::CREATED);
    let data = &response.body["data"];
    assert_eq!(data["name"], "ABC Storage Co.");
    assert_eq!(data["created_at"], json!(app.clock_now()));
    let id = data["id"].as_str().unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok());

    let listed = app.get("/companies", &token).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body, json!({"data": [data]}));
}

#[sqlx::test]
async fn company_names_are_validated_and_nothing_is_written_on_failure(db: PgPool) {
    let app = spawn_app(db).await;
    let token = app.super_admin_token().await;
    for (body, message) in [
        (json!({}), "The name field is required."),
        (json!({"name": "   "}), "The name field is required."),
        (json!({"name": 42}), "The name field must be a string."),
        (
            json!({"name": "x".repeat(192)}),
            "The name field must not be greater than 191 characters.",
        ),
    ] {
        let response = app.post("/companies", Some(&token), body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            response.body,
            json!({"message": message, "errors": {"name": [message]}})
        );
    }
    assert_eq!(app.count("companies").await, 0);
}

#[sqlx::test]
async fn a_company_admin_cannot_create_companies(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    let company_admin = app.admin_token("ops@acme.test", Some(company)).await;

    // Refused before the body is even looked at.
    for body in [json!({"name": "Another Co"}), json!({})] {
        let response = app.post("/companies", Some(&company_admin), body).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert_eq!(
            response.body,
            json!({"message": "This action is unauthorized."})
        );
    }
    assert_eq!(app.count("companies").await, 1);
}

#[sqlx::test]
async fn a_company_admin_sees_only_its_own_company(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme Storage").await;
    app.clock.advance(chrono::TimeDelta::seconds(1));
    let other = app.create_company(&root, "Other Storage").await;
    let company_admin = app.admin_token("ops@acme.test", Some(acme)).await;

    let own = app.get("/companies", &company_admin).await;
    assert_eq!(own.status, StatusCode::OK);
    let ids: Vec<_> = own.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![acme.to_string()]);

    let all = app.get("/companies", &root).await;
    let ids: Vec<_> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![acme.to_string(), other.to_string()]);
}

#[sqlx::test]
async fn companies_need_an_admin_token(db: PgPool) {
    let app = spawn_app(db).await;
    let response = app
        .request(Method::POST, "/companies", None, Some(json!({"name": "X"})))
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("companies").await, 0);
}
