//! PMS push of units (docs/api.md, "PMS push"): bulk and single PATCH, reads, pagination, isolation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn unit(app: &TestApp, token: &str, crm_unit_id: &str) -> Value {
    let response = app.get(&format!("/units/{crm_unit_id}"), token).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.body["data"].clone()
}

#[sqlx::test]
async fn bulk_patch_creates_units_with_their_defaults(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;

    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [
                {"crm_unit_id": "A-101", "crm_location_id": "downtown", "location_name": "Downtown Storage",
                 "name": "A101", "size": "10x10", "status": "rented"},
                {"crm_unit_id": "A-102", "crm_location_id": "downtown"},
                {"crm_unit_id": "B-1", "crm_location_id": "uptown"},
            ]}),
        )
        .await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.body,
        json!({"message": "Units synced.", "data": {"created": 3, "updated": 0}})
    );
    assert_eq!(
        unit(&app, &token, "A-101").await,
        json!({"crm_unit_id": "A-101", "crm_location_id": "downtown", "location_name": "Downtown Storage",
               "name": "A101", "size": "10x10", "status": "rented", "tenancy": null})
    );
    assert_eq!(
        unit(&app, &token, "B-1").await,
        json!({"crm_unit_id": "B-1", "crm_location_id": "uptown", "location_name": null,
               "name": "B-1", "size": null, "status": "available", "tenancy": null})
    );
    assert_eq!(app.count("locations").await, 2);
}

#[sqlx::test]
async fn bulk_patch_changes_only_the_fields_sent(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    app.patch(
        "/units",
        &token,
        json!({"units": [{"crm_unit_id": "A-1", "crm_location_id": "dt", "location_name": "Downtown",
                          "name": "Big one", "size": "10x20", "status": "rented"}]}),
    )
    .await;

    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [
                {"crm_unit_id": "A-1", "status": "overlocked"},
                {"crm_unit_id": "A-2", "crm_location_id": "dt"},
            ]}),
        )
        .await;

    assert_eq!(response.body["data"], json!({"created": 1, "updated": 1}));
    assert_eq!(
        unit(&app, &token, "A-1").await,
        json!({"crm_unit_id": "A-1", "crm_location_id": "dt", "location_name": "Downtown",
               "name": "Big one", "size": "10x20", "status": "overlocked", "tenancy": null})
    );

    // null clears a nullable field; a location_name alone renames the unit's location.
    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [{"crm_unit_id": "A-1", "size": null, "location_name": "Downtown Depot"}]}),
        )
        .await;
    assert_eq!(response.body["data"], json!({"created": 0, "updated": 1}));
    let a1 = unit(&app, &token, "A-1").await;
    assert_eq!(a1["size"], Value::Null);
    assert_eq!(a1["location_name"], "Downtown Depot");
    assert_eq!(
        unit(&app, &token, "A-2").await["location_name"],
        "Downtown Depot"
    );
}

#[sqlx::test]
async fn bulk_patch_moves_units_between_locations(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    app.patch(
        "/units",
        &token,
        json!({"units": [{"crm_unit_id": "A-1", "crm_location_id": "dt", "location_name": "Downtown"}]}),
    )
    .await;
    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [{"crm_unit_id": "A-1", "crm_location_id": "up", "location_name": "Uptown"}]}),
        )
        .await;
    assert_eq!(response.body["data"], json!({"created": 0, "updated": 1}));
    let a1 = unit(&app, &token, "A-1").await;
    assert_eq!(a1["crm_location_id"], "up");
    assert_eq!(a1["location_name"], "Uptown");
}

#[sqlx::test]
async fn a_new_unit_without_a_location_rejects_the_whole_request(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    app.patch(
        "/units",
        &token,
        json!({"units": [{"crm_unit_id": "A-1", "crm_location_id": "dt"}]}),
    )
    .await;

    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [
                {"crm_unit_id": "A-2", "crm_location_id": "dt"},
                {"crm_unit_id": "A-1", "status": "rented"},
                {"crm_unit_id": "A-3", "location_name": "Nowhere"},
            ]}),
        )
        .await;

    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body["errors"],
        json!({"units.2.crm_location_id": ["The crm location id field is required when the unit is created."]})
    );
    assert_eq!(app.count("units").await, 1);
    assert_eq!(unit(&app, &token, "A-1").await["status"], "available");
    let names: Vec<Option<String>> = sqlx::query_scalar("SELECT name FROM locations")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(names, vec![None]);
}

#[sqlx::test]
async fn invalid_items_are_each_named_and_nothing_is_written(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;

    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [
                {"crm_unit_id": "ok", "crm_location_id": "dt"},
                {"crm_unit_id": "a/b", "crm_location_id": "dt"},
                {"crm_unit_id": "x".repeat(192), "crm_location_id": "dt"},
                {"crm_location_id": "dt", "status": "gone"},
                {"crm_unit_id": "ok", "crm_location_id": "dt"},
                {"crm_unit_id": "big", "crm_location_id": "dt", "name": "n".repeat(192), "size": 10},
                17,
            ]}),
        )
        .await;

    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = response.body["errors"].as_object().unwrap();
    let mut paths: Vec<&str> = errors.keys().map(String::as_str).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "units.1.crm_unit_id",
            "units.2.crm_unit_id",
            "units.3.crm_unit_id",
            "units.3.status",
            "units.4.crm_unit_id",
            "units.5.name",
            "units.5.size",
            "units.6",
        ]
    );
    assert_eq!(
        errors["units.4.crm_unit_id"],
        json!(["The crm unit id field has a duplicate value."])
    );
    assert_eq!(
        errors["units.3.crm_unit_id"],
        json!(["The crm unit id field is required."])
    );
    assert!(
        response.message().ends_with("(and 7 more errors)"),
        "{}",
        response.message()
    );
    assert_eq!(app.count("units").await, 0);
    assert_eq!(app.count("locations").await, 0);
}

#[sqlx::test]
async fn the_number_of_units_per_request_is_bounded(db: PgPool) {
    let app = spawn_app_with(db, &[("KISS_BULK_MAX_UNITS", "5")]).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    let units: Vec<Value> = (0..6)
        .map(|i| json!({"crm_unit_id": format!("U{i}"), "crm_location_id": "dt"}))
        .collect();
    let response = app.patch("/units", &token, json!({"units": units})).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body["errors"]["units"],
        json!(["The units field must not have more than 5 items."])
    );
    for body in [
        json!({"units": []}),
        json!({}),
        json!({"units": {"crm_unit_id": "A"}}),
    ] {
        let response = app.patch("/units", &token, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(response.body["errors"]["units"].is_array());
    }
    assert_eq!(app.count("units").await, 0);
}

fn many_units(count: usize, status: &str) -> Value {
    let units: Vec<Value> = (0..count)
        .map(|i| {
            json!({"crm_unit_id": format!("U-{i:05}"), "crm_location_id": format!("L{}", i % 20),
                   "location_name": format!("Location {}", i % 20), "size": "10x10", "status": status})
        })
        .collect();
    json!({"units": units})
}

#[sqlx::test]
async fn ten_thousand_units_are_upserted_in_one_request(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;

    let created = app
        .patch("/units", &token, many_units(10_000, "available"))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert_eq!(
        created.body["data"],
        json!({"created": 10000, "updated": 0})
    );

    let updated = app
        .patch("/units", &token, many_units(10_000, "rented"))
        .await;
    assert_eq!(
        updated.body["data"],
        json!({"created": 0, "updated": 10000})
    );
    assert_eq!(app.count("units").await, 10_000);
    assert_eq!(app.count("locations").await, 20);
    let rented: i64 = sqlx::query_scalar("SELECT count(*) FROM units WHERE status = 'rented'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rented, 10_000);
    assert_eq!(
        unit(&app, &token, "U-09999").await["location_name"],
        "Location 19"
    );
}

#[sqlx::test]
async fn a_body_beyond_the_limit_is_a_413_and_writes_nothing(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    let padding = "x".repeat(17 * 1024 * 1024);
    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt", "note": padding}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.message(), "Payload too large.");
    assert_eq!(app.count("units").await, 0);
}

#[sqlx::test]
async fn single_patch_changes_one_unit_and_returns_it(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    app.patch(
        "/units",
        &token,
        json!({"units": [{"crm_unit_id": "A 1", "crm_location_id": "dt", "location_name": "Downtown",
                          "name": "A1", "size": "5x5"}]}),
    )
    .await;

    // A space in the id travels percent-encoded; an id in the body is ignored.
    let response = app
        .patch(
            "/units/A%201",
            &token,
            json!({"status": "reserved", "crm_unit_id": "ignored", "unknown": 1}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.body,
        json!({"data": {"crm_unit_id": "A 1", "crm_location_id": "dt", "location_name": "Downtown",
                        "name": "A1", "size": "5x5", "status": "reserved", "tenancy": null}})
    );

    let moved = app
        .patch(
            "/units/A%201",
            &token,
            json!({"crm_location_id": "up", "location_name": "Uptown", "size": null}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(
        moved.body["data"],
        json!({"crm_unit_id": "A 1", "crm_location_id": "up", "location_name": "Uptown",
               "name": "A1", "size": null, "status": "reserved", "tenancy": null})
    );
    assert_eq!(unit(&app, &token, "A%201").await, moved.body["data"]);
}

#[sqlx::test]
async fn single_patch_of_an_unknown_unit_is_a_404_that_creates_nothing(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    for body in [
        json!({"status": "rented"}),
        json!({"crm_location_id": "dt"}),
    ] {
        let response = app.patch("/units/nope", &token, body).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.body, json!({"message": "Unit not found."}));
    }
    assert_eq!(app.count("units").await, 0);
    assert_eq!(app.count("locations").await, 0);
    let response = app.get("/units/nope", &token).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.body, json!({"message": "Unit not found."}));
}

#[sqlx::test]
async fn single_patch_validates_its_fields(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    app.patch(
        "/units",
        &token,
        json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}]}),
    )
    .await;
    let response = app
        .patch(
            "/units/A",
            &token,
            json!({"status": "borrowed", "name": "", "crm_location_id": 5}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = response.body["errors"].as_object().unwrap();
    assert!(errors.contains_key("status"));
    assert!(errors.contains_key("name"));
    assert!(errors.contains_key("crm_location_id"));
    assert_eq!(unit(&app, &token, "A").await["status"], "available");
}

#[sqlx::test]
async fn units_are_listed_in_pages_with_an_opaque_cursor(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    app.patch(
        "/units",
        &token,
        json!({"units": [
            {"crm_unit_id": "E", "crm_location_id": "dt"},
            {"crm_unit_id": "A", "crm_location_id": "dt"},
            {"crm_unit_id": "C", "crm_location_id": "up"},
            {"crm_unit_id": "B", "crm_location_id": "dt"},
            {"crm_unit_id": "D", "crm_location_id": "up"},
        ]}),
    )
    .await;

    let mut seen = Vec::new();
    let mut path = "/units?limit=2".to_owned();
    loop {
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, StatusCode::OK);
        let ids: Vec<String> = page.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["crm_unit_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 2);
        seen.extend(ids);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/units?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["A", "B", "C", "D", "E"]);

    let downtown = app.get("/units?crm_location_id=dt", &token).await;
    let ids: Vec<&str> = downtown.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["crm_unit_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A", "B", "E"]);
    assert_eq!(downtown.body["next_cursor"], Value::Null);
    let nowhere = app.get("/units?crm_location_id=nowhere", &token).await;
    assert_eq!(nowhere.body, json!({"data": [], "next_cursor": null}));
}

#[sqlx::test]
async fn bad_list_parameters_are_422s(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-base64!", "cursor"),
    ] {
        let response = app.get(&format!("/units?{query}"), &token).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(response.body["errors"][field].is_array(), "{query}");
    }
    let max = app.get("/units?limit=1000", &token).await;
    assert_eq!(max.status, StatusCode::OK);
}

#[sqlx::test]
async fn companies_never_see_each_other_s_units(db: PgPool) {
    let app = spawn_app(db).await;
    let (_, acme) = app.company_with_token("Acme Storage").await;
    let (_, other) = app.company_with_token("Other Storage").await;
    for (token, size) in [(&acme, "10x10"), (&other, "5x5")] {
        let response = app
            .patch(
                "/units",
                token,
                json!({"units": [{"crm_unit_id": "A-1", "crm_location_id": "main", "size": size}]}),
            )
            .await;
        assert_eq!(response.body["data"], json!({"created": 1, "updated": 0}));
    }
    app.patch(
        "/units",
        &acme,
        json!({"units": [{"crm_unit_id": "ACME-ONLY", "crm_location_id": "main"}]}),
    )
    .await;

    assert_eq!(unit(&app, &acme, "A-1").await["size"], "10x10");
    assert_eq!(unit(&app, &other, "A-1").await["size"], "5x5");
    app.patch("/units/A-1", &other, json!({"status": "rented"}))
        .await;
    assert_eq!(unit(&app, &acme, "A-1").await["status"], "available");

    let tenancy = json!({"crm_tenant_id": "T1", "name": "Jane", "phone": "+15551234567"});
    for response in [
        app.get("/units/ACME-ONLY", &other).await,
        app.patch("/units/ACME-ONLY", &other, json!({"status": "rented"}))
            .await,
        app.put("/units/ACME-ONLY/tenancy", &other, tenancy).await,
        app.delete("/units/ACME-ONLY/tenancy", &other).await,
    ] {
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.body, json!({"message": "Unit not found."}));
    }
    let listed = app.get("/units", &other).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(unit(&app, &acme, "ACME-ONLY").await["tenancy"], Value::Null);
}

#[sqlx::test]
async fn pms_routes_need_a_current_api_token(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let company = app.create_company(&root, "Acme Storage").await;
    let created = app.create_api_token(&root, company, "sync").await;
    let token = created["token"].as_str().unwrap();
    let sync = json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}]});
    assert_eq!(
        app.patch("/units", token, sync.clone()).await.status,
        StatusCode::OK
    );

    // An admin token is not an API token.
    assert_eq!(
        app.patch("/units", &root, sync.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let none = app.request(Method::GET, "/units", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));

    let revoked = app
        .delete(
            &format!(
                "/companies/{company}/api-tokens/{}",
                created["id"].as_str().unwrap()
            ),
            &root,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let refused = app.get("/units/A", token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body, json!({"message": "Unauthorized."}));
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[sqlx::test]
async fn nul_characters_are_refused_not_passed_to_the_database(db: PgPool) {
    // Found by schemathesis: Postgres text cannot hold U+0000, which used to surface as a 500.
    let app = spawn_app(db).await;
    let (_, token) = app.company_with_token("Acme Storage").await;
    let response = app
        .patch(
            "/units",
            &token,
            json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt", "name": "bad\u{0}name"}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body["errors"]["units.0.name"],
        json!(["The name field must not contain NUL characters."])
    );
    assert_eq!(
        app.get("/units/A%00", &token).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = app.get("/units?crm_location_id=dt%00", &token).await;
    assert_eq!(listed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(listed.body["errors"]["crm_location_id"].is_array());
    assert_eq!(app.count("units").await, 0);
}
