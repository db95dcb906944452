//! `PUT` and `DELETE /units/{crm_unit_id}/tenancy` (docs/api.md, "PMS push"): tenants, people and tenancies.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, sorted_keys, spawn_app};

/// A company token with units at "downtown" and B-1 at "uptown".
async fn with_units(app: &TestApp) -> String {
    let (_, token) = app.company_with_token("ABC Storage Co.").await;
    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [
                {"crm_unit_id": "A-1", "crm_location_id": "downtown", "location_name": "Downtown Storage"},
                {"crm_unit_id": "A-2", "crm_location_id": "downtown"},
                {"crm_unit_id": "B-1", "crm_location_id": "uptown", "location_name": "Uptown Storage"},
            ]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    token
}

fn jane() -> Value {
    json!({"crm_tenant_id": "T-100", "name": "Jane Smith", "phone": "+1 (555) 123-4567",
           "email": "jane@example.com", "access_code": "0482", "access_status": "active"})
}

#[sqlx::test]
async fn put_creates_the_tenancy_and_the_unit_shows_it(db: PgPool) {
    let app = spawn_app(db).await;
    let token = with_units(&app).await;

    let response = app.put("/units/A-1/tenancy", &token, jane()).await;

    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let tenancy = &response.body["data"];
    let tenant_id = tenancy["tenant"]["tenant_id"].as_str().unwrap();
    assert_eq!(tenant_id.len(), 26, "a ULID: {tenant_id}");
    assert_eq!(
        tenancy,
        &json!({"crm_unit_id": "A-1",
                "tenant": {"tenant_id": tenant_id, "crm_tenant_id": "T-100", "name": "Jane Smith",
                           "phone": "+15551234567", "email": "jane@example.com"},
                "access_code": "0482", "access_status": "active"})
    );
    let unit = app.get("/units/A-1", &token).await;
    assert_eq!(&unit.body["data"]["tenancy"], tenancy);
    let person: String =
        sqlx::query_scalar("SELECT id FROM people WHERE phone_e164 = '+15551234567'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(person.starts_with("usr_"), "{person}");
}

#[sqlx::test]
async fn optional_fields_default_and_the_tenant_is_updated_in_place(db: PgPool) {
    let app = spawn_app(db).await;
    let token = with_units(&app).await;
    let first = app
        .put(
            "/units/A-1/tenancy",
            &token,
            json!({"crm_tenant_id": "T-100", "name": "Jane", "phone": "+15551234567"}),
        )
        .await;
    assert_eq!(first.body["data"]["access_status"], "active");
    assert_eq!(first.body["data"]["access_code"], Value::Null);
    assert_eq!(first.body["data"]["tenant"]["email"], Value::Null);

    // The same tenant on a second unit of the same location: one account, renamed.
    let second = app
        .put(
            "/units/A-2/tenancy",
            &token,
            json!({"crm_tenant_id": "T-100", "name": "Jane Smith", "phone": "+15551234567",
                   "access_status": "suspended"}),
        )
        .await;
    assert_eq!(
        second.body["data"]["tenant"]["tenant_id"],
        first.body["data"]["tenant"]["tenant_id"]
    );
    assert_eq!(app.count("tenants").await, 1);
    let a1 = app.get("/units/A-1", &token).await;
    assert_eq!(a1.body["data"]["tenancy"]["tenant"]["name"], "Jane Smith");
    assert_eq!(a1.body["data"]["tenancy"]["access_status"], "active");
}

#[sqlx::test]
async fn put_replaces_the_previous_tenant_of_the_unit(db: PgPool) {
    let app = spawn_app(db).await;
    let token = with_units(&app).await;
    let jane = app.put("/units/A-1/tenancy", &token, jane()).await;
    let jane_id = jane.body["data"]["tenant"]["tenant_id"].clone();

    let bob = app
        .put(
            "/units/A-1/tenancy",
            &token,
            json!({"crm_tenant_id": "T-200", "name": "Bob", "phone": "+15557654321"}),
        )
        .await;

    assert_eq!(bob.status, StatusCode::OK);
    assert_ne!(bob.body["data"]["tenant"]["tenant_id"], jane_id);
    let unit = app.get("/units/A-1", &token).await;
    assert_eq!(unit.body["data"]["tenancy"]["tenant"]["name"], "Bob");
    let jane_units: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancies WHERE tenant_id = $1")
        .bind(jane_id.as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(jane_units, 0, "Jane lost the unit");
    assert_eq!(app.count("tenancies").await, 1);
}

#[sqlx::test]
async fn one_person_renting_at_two_locations_has_two_accounts(db: PgPool) {
    let app = spawn_app(db).await;
    let token = with_units(&app).await;
    let downtown = app.put("/units/A-1/tenancy", &token, jane()).await;
    let mut uptown_body = jane();
    uptown_body["phone"] = json!("+15551234567");
    let uptown = app.put("/units/B-1/tenancy", &token, uptown_body).await;

    assert_ne!(
        downtown.body["data"]["tenant"]["tenant_id"],
        uptown.body["data"]["tenant"]["tenant_id"]
    );
    assert_eq!(app.count("tenants").await, 2);
    assert_eq!(
        app.count("people").await,
        1,
        "one person behind both accounts"
    );
}

#[sqlx::test]
async fn delete_vacates_the_unit_and_is_idempotent(db: PgPool) {
    let app = spawn_app(db).await;
    let token = with_units(&app).await;
    app.put("/units/A-1/tenancy", &token, jane()).await;

    for _ in 0..2 {
        let response = app.delete("/units/A-1/tenancy", &token).await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        assert_eq!(response.body, Value::Null);
    }
    let unit = app.get("/units/A-1", &token).await;
    assert_eq!(unit.body["data"]["tenancy"], Value::Null);
    assert_eq!(app.count("tenancies").await, 0);

    let unknown = app.delete("/units/nope/tenancy", &token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body, json!({"message": "Unit not found."}));
}

#[sqlx::test]
async fn bad_tenancies_are_refused_and_change_nothing(db: PgPool) {
    let app = spawn_app(db).await;
    let token = with_units(&app).await;
    app.put("/units/A-1/tenancy", &token, jane()).await;

    let cases = [
        (json!({}), vec!["crm_tenant_id", "name", "phone"]),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "5551234567"}),
            vec!["phone"],
        ),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "+1 555 CALL ME"}),
            vec!["phone"],
        ),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "+15551234567", "access_code": "123"}),
            vec!["access_code"],
        ),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "+15551234567", "access_code": "12ab"}),
            vec!["access_code"],
        ),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "+15551234567", "access_code": 1234}),
            vec!["access_code"],
        ),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "+15551234567", "access_code": "1234567890123"}),
            vec!["access_code"],
        ),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "+15551234567", "email": "not-an-email"}),
            vec!["email"],
        ),
        (
            json!({"crm_tenant_id": "T", "name": "N", "phone": "+15551234567", "access_status": "banned"}),
            vec!["access_status"],
        ),
        (
            json!({"crm_tenant_id": "x".repeat(192), "name": "N", "phone": "+15551234567"}),
            vec!["crm_tenant_id"],
        ),
    ];
    for (body, fields) in cases {
        let response = app.put("/units/A-1/tenancy", &token, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(sorted_keys(&response.body["errors"]), fields, "{body}");
    }
    let unit = app.get("/units/A-1", &token).await;
    assert_eq!(unit.body["data"]["tenancy"]["tenant"]["name"], "Jane Smith");
    assert_eq!(app.count("tenants").await, 1);
    assert_eq!(app.count("people").await, 1);

    let unknown = app.put("/units/nope/tenancy", &token, jane()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(app.count("people").await, 1);
}
