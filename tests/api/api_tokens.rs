//! Company API tokens: created, listed, revoked (docs/api.md, "Tokens" and "Administration"), and checked as bearer tokens.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// The company an API token authenticates as, checked through the same function the PMS routes use.
async fn company_of(app: &TestApp, token: &str) -> Option<Uuid> {
    app.authenticate_api_token(token)
        .await
        .map(|auth| auth.company_id)
}

fn token_of(created: &Value) -> &str {
    created["token"].as_str().unwrap()
}

#[sqlx::test]
async fn a_created_token_is_shown_once_and_authenticates_as_its_company(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;

    let created = app
        .create_api_token(&root, company, "production-sync")
        .await;

    assert_eq!(created["name"], "production-sync");
    assert_eq!(created["created_at"], json!(app.clock_now()));
    let token = token_of(&created);
    assert!(token.starts_with("kat_"), "{token}");
    assert!(token.len() >= 4 + 32 + 1 + 43, "≥ 256-bit secret: {token}");
    assert_eq!(company_of(&app, token).await, Some(company));

    let listed = app
        .get(&format!("/companies/{company}/api-tokens"), &root)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let item = &listed.body["data"][0];
    assert_eq!(
        item,
        &json!({
            "id": created["id"],
            "name": "production-sync",
            "created_at": created["created_at"],
            "last_used_at": app.clock_now(),
        })
    );
    assert!(
        !listed
            .body
            .to_string()
            .contains(token.split('.').nth(1).unwrap())
    );
}

#[sqlx::test]
async fn last_used_at_is_written_at_most_once_a_minute(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    let created = app.create_api_token(&root, company, "sync").await;
    let token = token_of(&created);
    let last_used = || async {
        let listed = app
            .get(&format!("/companies/{company}/api-tokens"), &root)
            .await;
        listed.body["data"][0]["last_used_at"].clone()
    };

    assert_eq!(last_used().await, Value::Null);
    let first_use = app.clock_now();
    company_of(&app, token).await.unwrap();
    assert_eq!(last_used().await, json!(first_use));

    app.clock.advance(TimeDelta::seconds(59));
    company_of(&app, token).await.unwrap();
    assert_eq!(
        last_used().await,
        json!(first_use),
        "no write within the minute"
    );

    app.clock.advance(TimeDelta::seconds(1));
    company_of(&app, token).await.unwrap();
    assert_eq!(last_used().await, json!(app.clock_now()));
}

#[sqlx::test]
async fn a_revoked_token_is_refused_on_the_very_next_request(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    let kept = app.create_api_token(&root, company, "staging").await;
    let revoked = app.create_api_token(&root, company, "production").await;
    assert!(company_of(&app, token_of(&revoked)).await.is_some());

    let path = format!(
        "/companies/{company}/api-tokens/{}",
        revoked["id"].as_str().unwrap()
    );
    let response = app.delete(&path, &root).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert_eq!(response.body, Value::Null);

    assert_eq!(company_of(&app, token_of(&revoked)).await, None);
    assert_eq!(company_of(&app, token_of(&kept)).await, Some(company));
    let listed = app
        .get(&format!("/companies/{company}/api-tokens"), &root)
        .await;
    let names: Vec<_> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["staging"]);

    let again = app.delete(&path, &root).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.body, json!({"message": "API token not found."}));
}

#[sqlx::test]
async fn forged_and_wrong_kind_tokens_do_not_authenticate(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    let created = app.create_api_token(&root, company, "sync").await;
    let token = token_of(&created);
    let (id, _) = token.split_once('.').unwrap();

    for forged in [
        format!("{id}.{}", "A".repeat(43)),
        token.replace("kat_", "kadm_"),
        format!("{token}="),
        root.clone(),
        "1|abc123".to_owned(),
        String::new(),
    ] {
        assert_eq!(company_of(&app, &forged).await, None, "{forged}");
    }
}

#[sqlx::test]
async fn token_names_are_validated_and_nothing_is_written_on_failure(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    let path = format!("/companies/{company}/api-tokens");
    for (body, message) in [
        (json!({}), "The name field is required."),
        (json!({"name": ["x"]}), "The name field must be a string."),
        (
            json!({"name": "x".repeat(101)}),
            "The name field must not be greater than 100 characters.",
        ),
    ] {
        let response = app.post(&path, Some(&root), body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(response.body["errors"]["name"], json!([message]));
    }
    let response = app
        .post(&path, Some(&root), json!({"name": "x".repeat(100)}))
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(app.count("api_tokens").await, 1);
}

#[sqlx::test]
async fn a_company_admin_manages_only_its_own_company_s_tokens(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme Storage").await;
    let other = app.create_company(&root, "Other Storage").await;
    let other_token = app.create_api_token(&root, other, "theirs").await;
    let acme_admin = app.admin_token("ops@acme.test", Some(acme)).await;

    let own = app.create_api_token(&acme_admin, acme, "ours").await;
    assert_eq!(company_of(&app, token_of(&own)).await, Some(acme));

    let forbidden = [
        app.post(
            &format!("/companies/{other}/api-tokens"),
            Some(&acme_admin),
            json!({"name": "sneaky"}),
        )
        .await,
        app.get(&format!("/companies/{other}/api-tokens"), &acme_admin)
            .await,
        app.delete(
            &format!(
                "/companies/{other}/api-tokens/{}",
                other_token["id"].as_str().unwrap()
            ),
            &acme_admin,
        )
        .await,
        // A company that does not exist is no different to a company admin.
        app.get(
            &format!("/companies/{}/api-tokens", Uuid::new_v4()),
            &acme_admin,
        )
        .await,
    ];
    for response in forbidden {
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert_eq!(
            response.body,
            json!({"message": "This action is unauthorized."})
        );
    }
    assert_eq!(company_of(&app, token_of(&other_token)).await, Some(other));
    assert_eq!(app.count("api_tokens").await, 2);

    // Its own token id under its own company, but a token of another company: not found.
    let cross = app
        .delete(
            &format!(
                "/companies/{acme}/api-tokens/{}",
                other_token["id"].as_str().unwrap()
            ),
            &acme_admin,
        )
        .await;
    assert_eq!(cross.status, StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn unknown_companies_and_tokens_are_404s_for_a_super_admin(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    for path in [
        format!("/companies/{}/api-tokens", Uuid::new_v4()),
        "/companies/not-a-uuid/api-tokens".to_owned(),
    ] {
        let response = app.get(&path, &root).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.body, json!({"message": "Company not found."}));
    }
    for token_id in [Uuid::new_v4().to_string(), "nope".to_owned()] {
        let response = app
            .delete(
                &format!("/companies/{company}/api-tokens/{token_id}"),
                &root,
            )
            .await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.body, json!({"message": "API token not found."}));
    }
}
