//! The OpenAPI document and the docs page: every routed path is documented, and the page's
//! assets come from the binary (no CDN).

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::spawn_app;

/// Every path given to `.route(…)` in the sources, as served (API routers are nested at `/api/v2`).
fn routed_paths() -> BTreeSet<String> {
    fn visit(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, found);
                continue;
            }
            // The dashboard is a page for people, not part of the API.
            if path.ends_with("dashboard.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let outside_api = path.ends_with("health.rs");
            for piece in source.split(".route(").skip(1) {
                let literal = piece.trim_start();
                let Some(rest) = literal.strip_prefix('"') else {
                    continue;
                };
                let route = &rest[..rest.find('"').unwrap()];
                found.insert(if outside_api {
                    route.to_owned()
                } else {
                    format!("/api/v2{route}")
                });
            }
        }
    }
    let mut found = BTreeSet::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found
}

async fn document(app: &crate::helpers::TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[sqlx::test]
async fn every_routed_path_is_in_the_document(db: PgPool) {
    let app = spawn_app(db).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routed = routed_paths();
    assert!(routed.len() >= 16, "found the routes: {routed:?}");
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(missing.is_empty(), "routed but not documented: {missing:?}");
    let stale: Vec<_> = documented.difference(&routed).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
}

#[sqlx::test]
async fn the_document_describes_security_errors_and_idempotency(db: PgPool) {
    let app = spawn_app(db).await;
    let doc = document(&app).await;
    let schemes = &doc["components"]["securitySchemes"];
    for scheme in ["api_token", "admin_token", "tenant_token"] {
        assert_eq!(schemes[scheme]["scheme"], "bearer", "{scheme}");
    }
    for (path, method) in [
        ("/api/v2/units", "patch"),
        ("/api/v2/units/{crm_unit_id}", "patch"),
        ("/api/v2/units/{crm_unit_id}/tenancy", "put"),
        ("/api/v2/units/{crm_unit_id}/tenancy", "delete"),
    ] {
        let operation = &doc["paths"][path][method];
        let params = operation["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
            "{method} {path}"
        );
        assert!(operation["responses"]["409"].is_object(), "{method} {path}");
        assert!(operation["responses"]["429"].is_object(), "{method} {path}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("500"),
                "{method} {path} documents the 500"
            );
            let secured = operation.get("security").is_some();
            if secured {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents its 401"
                );
            }
        }
    }
}

#[sqlx::test]
async fn the_docs_page_is_served_from_the_binary(db: PgPool) {
    let app = spawn_app(db).await;
    let page = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(!html.contains("://cdn"), "no CDN");
    // Every script and style the page loads is answered by the server itself.
    let mut assets = 0;
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            let target = &piece[..piece.find('"').unwrap()];
            assert!(!target.starts_with("http"), "external asset {target}");
            let url = format!("{}/docs/{}", app.address, target.trim_start_matches("./"));
            let asset = app.client.get(&url).send().await.unwrap();
            assert_eq!(asset.status(), StatusCode::OK, "{url}");
            assets += 1;
        }
    }
    assert!(assets >= 2, "the page loads its scripts and styles");
    let initializer = app
        .client
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap();
    assert!(
        initializer
            .text()
            .await
            .unwrap()
            .contains("/api/v2/openapi.json")
    );
}
