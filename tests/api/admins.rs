//! Managing administrators (docs/api.md, "The dashboard"): who am I, list, create, disable, change password,
//! with every 401, 403 and 422, against the real router and Postgres.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{ADMIN_PASSWORD, TestApp, sorted_keys, spawn_app};

const NEW_PASSWORD: &str = "a much longer new password";

async fn signed_in(app: &TestApp, email: &str) -> String {
    let response = app.sign_in(email, ADMIN_PASSWORD).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.body["data"]["token"].as_str().unwrap().to_owned()
}

fn field_error(body: &Value, field: &str) -> String {
    body["errors"][field][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[sqlx::test]
async fn me_names_the_admin_behind_the_token(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let me = app.get("/admin/me", &root).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["data"]["email"], "root@example.com");
    assert_eq!(me.body["data"]["company_id"], Value::Null);
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let anonymous = app.request(Method::GET, "/admin/me", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("cache-control"), Some("no-store"));
}

#[sqlx::test]
async fn super_admins_see_every_admin_and_company_admins_their_company(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let globex = app.create_company(&root, "Globex").await;
    let acme_admin = app.admin_token("ops@acme.example", Some(acme)).await;
    app.admin_token("ops@globex.example", Some(globex)).await;

    let all = app.get("/admins", &root).await;
    let mut emails: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    // Made at the same instant of the test clock, so their order is their ids'.
    emails.sort();
    assert_eq!(
        emails,
        ["ops@acme.example", "ops@globex.example", "root@example.com"]
    );
    let first = &all.body["data"][0];
    assert_eq!(
        sorted_keys(first),
        ["company_id", "created_at", "disabled_at", "email", "id"]
    );

    let own = app.get("/admins", &acme_admin).await;
    assert_eq!(own.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(own.body["data"][0]["email"], "ops@acme.example");
    let anonymous = app.request(Method::GET, "/admins", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn admins_are_created_within_the_creators_reach(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let globex = app.create_company(&root, "Globex").await;
    let acme_admin = app.admin_token("ops@acme.example", Some(acme)).await;
    let new = |email: &str, company: Option<Uuid>| json!({"email": email, "password": "twelve chars!", "company_id": company});

    let created = app
        .post("/admins", Some(&root), new("second-root@example.com", None))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["data"]["company_id"], Value::Null);
    let colleague = app
        .post(
            "/admins",
            Some(&acme_admin),
            new("two@acme.example", Some(acme)),
        )
        .await;
    assert_eq!(colleague.status, StatusCode::CREATED);
    assert_eq!(colleague.body["data"]["company_id"], acme.to_string());
    // The new admin can sign in.
    let signed_in = app.sign_in("two@acme.example", "twelve chars!").await;
    assert_eq!(signed_in.status, StatusCode::OK);

    for body in [
        new("x@acme.example", None),
        new("x@globex.example", Some(globex)),
    ] {
        let refused = app.post("/admins", Some(&acme_admin), body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.message(), "This action is unauthorized.");
    }

    let short = app
        .post(
            "/admins",
            Some(&root),
            json!({"email": "short@example.com", "password": "eleven char"}),
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_error(&short.body, "password"),
        "The password must be 12 to 1024 characters long."
    );
    let invalid = app
        .post(
            "/admins",
            Some(&root),
            json!({"email": "not-an-address", "company_id": "nope"}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.body["errors"]["password"].is_array());
    assert!(invalid.body["errors"]["company_id"].is_array());
    let duplicate = app
        .post("/admins", Some(&root), new("OPS@acme.example", Some(acme)))
        .await;
    assert_eq!(
        field_error(&duplicate.body, "email"),
        "An admin with this e-mail already exists."
    );
    let nowhere = app
        .post(
            "/admins",
            Some(&root),
            new("lost@example.com", Some(Uuid::new_v4())),
        )
        .await;
    assert_eq!(
        field_error(&nowhere.body, "company_id"),
        "The selected company id is invalid."
    );
    let anonymous = app
        .post("/admins", None, new("anon@example.com", None))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("admins").await, 4);
}

#[sqlx::test]
async fn a_disabled_admin_is_refused_at_once(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let globex = app.create_company(&root, "Globex").await;
    let acme_admin = app.admin_token("ops@acme.example", Some(acme)).await;
    let colleague = app.admin_token("two@acme.example", Some(acme)).await;
    app.admin_token("ops@globex.example", Some(globex)).await;
    let id_of = async |email: &str| -> String {
        let all = app.get("/admins", &root).await;
        all.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["email"] == email)
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let disable = async |token: &str, id: &str| {
        app.request(
            Method::POST,
            &format!("/admins/{id}/disable"),
            Some(token),
            None,
        )
        .await
    };

    let colleague_id = id_of("two@acme.example").await;
    assert_eq!(
        disable(&acme_admin, &colleague_id).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/admin/me", &colleague).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in("two@acme.example", ADMIN_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let listed = app.get("/admins", &root).await;
    let row = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "two@acme.example")
        .unwrap()
        .clone();
    assert!(row["disabled_at"].is_string());
    // Disabling it again changes nothing.
    assert_eq!(
        disable(&root, &colleague_id).await.status,
        StatusCode::NO_CONTENT
    );

    let own_id = id_of("ops@acme.example").await;
    let itself = disable(&acme_admin, &own_id).await;
    assert_eq!(itself.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(itself.message(), "An admin cannot disable itself.");

    let outsider = id_of("ops@globex.example").await;
    let root_id = id_of("root@example.com").await;
    for id in [
        outsider.as_str(),
        root_id.as_str(),
        &Uuid::new_v4().to_string(),
    ] {
        assert_eq!(
            disable(&acme_admin, id).await.status,
            StatusCode::FORBIDDEN,
            "{id}"
        );
    }
    let unknown = disable(&root, &Uuid::new_v4().to_string()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.message(), "Admin not found.");
    assert_eq!(
        disable(&root, "not-an-id").await.status,
        StatusCode::NOT_FOUND
    );
    let anonymous = app
        .request(
            Method::POST,
            &format!("/admins/{outsider}/disable"),
            None,
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn a_password_change_ends_the_admins_other_sessions(db: PgPool) {
    let app = spawn_app(db).await;
    let here = app.super_admin_token().await;
    let elsewhere = signed_in(&app, "root@example.com").await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let wrong = app
        .post(
            "/admin/password",
            Some(&here),
            change("not my password", NEW_PASSWORD),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_error(&wrong.body, "current_password"),
        "The current password is incorrect."
    );
    let short = app
        .post(
            "/admin/password",
            Some(&here),
            change(ADMIN_PASSWORD, "too short"),
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.body["errors"]["new_password"].is_array());
    assert_eq!(
        app.get("/admin/me", &elsewhere).await.status,
        StatusCode::OK
    );

    let changed = app
        .post(
            "/admin/password",
            Some(&here),
            change(ADMIN_PASSWORD, NEW_PASSWORD),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/admin/me", &here).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/admin/me", &elsewhere).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in("root@example.com", ADMIN_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in("root@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    let anonymous = app
        .post(
            "/admin/password",
            None,
            change(NEW_PASSWORD, ADMIN_PASSWORD),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn guessing_the_current_password_is_limited(db: PgPool) {
    let app = spawn_app(db).await;
    let token = app.super_admin_token().await;
    // The sign-in above used one of the e-mail's ten checks a minute.
    for _ in 0..9 {
        let guess = app
            .post(
                "/admin/password",
                Some(&token),
                json!({"current_password": "a guess", "new_password": NEW_PASSWORD}),
            )
            .await;
        assert_eq!(guess.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let limited = app
        .post(
            "/admin/password",
            Some(&token),
            json!({"current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
}
