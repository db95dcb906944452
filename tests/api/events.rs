//! Audit events and webhooks (docs/api.md, "Audit events and webhooks") against the real Postgres, with a local receiver
//! that checks signatures: every type recorded once with the pinned fields and no secret, written
//! with its change or not at all, read per company and across companies in pages, delivered
//! signed, retried, across restarts, and once by two processes.

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fake_twilio::FakeTwilio;
use crate::helpers::{
    ADMIN_PASSWORD, TestApp, TestResponse, http_client, metrics_text, read, sign_in_on,
    sorted_keys, spawn_app, spawn_app_with, start_server,
};
use crate::receiver::{Received, Receiver};

/// Every event of the app, oldest first (a super admin reads them page by page).
async fn all_events(app: &TestApp, root: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/events?limit=100&cursor={cursor}"),
            None => "/events?limit=100".to_owned(),
        };
        let page = app.get(&path, root).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        events.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    events.reverse();
    events
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn only<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let found = of_type(events, kind);
    assert_eq!(found.len(), 1, "{kind}: {found:?}");
    found[0]
}

/// Waits (up to 15 s) until the receiver holds `count` requests.
async fn received(receiver: &Receiver, count: usize) -> Vec<Received> {
    for _ in 0..300 {
        let got = receiver.received();
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the receiver got {} of {count} requests",
        receiver.received().len()
    );
}

#[sqlx::test]
async fn every_event_type_is_recorded_once_with_its_fields_and_no_secret(db: PgPool) {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(db, &twilio.env()).await;
    let root = app.super_admin_token().await;
    let root_id = app.get("/admin/me", &root).await.body["data"]["id"].clone();
    let failed = app.sign_in("nobody@example.com", "wrong password").await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);

    let created = app
        .request(
            Method::POST,
            "/companies",
            Some(&root),
            Some(json!({"name": "Acme"})),
        )
        .await;
    let company = created.body["data"]["id"].as_str().unwrap().to_owned();
    let admin = app
        .post(
            "/admins",
            Some(&root),
            json!({"email": "ops@acme.example", "password": "twelve chars!", "company_id": company}),
        )
        .await;
    let admin_id = admin.body["data"]["id"].as_str().unwrap().to_owned();
    let token = app
        .create_api_token(&root, company.parse().unwrap(), "pms")
        .await;
    let pms = token["token"].as_str().unwrap().to_owned();
    let spare = app
        .create_api_token(&root, company.parse().unwrap(), "spare")
        .await;
    let revoked = app
        .delete(
            &format!(
                "/companies/{company}/api-tokens/{}",
                spare["id"].as_str().unwrap()
            ),
            &root,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);

    // A PMS request with a request id of its own, which the event must carry.
    app.patch(
        "/units",
        &pms,
        json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}]}),
    )
    .await;
    let rented = read(
        app.client
            .put(app.url("/units/A/tenancy"))
            .bearer_auth(&pms)
            .header("x-request-id", "pms-req-42")
            .json(&json!({"crm_tenant_id": "T", "name": "Jane", "phone": "+15551234567"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rented.status, StatusCode::OK);
    let tenant_id = rented.body["data"]["tenant"]["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A code, five wrong guesses (the fifth kills it), then a new code and a login.
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let first_code = twilio.last_code("+15551234567");
    let guess = |otp: &str| json!({"country_code": "1", "phone_number": "5551234567", "otp": otp});
    let wrong = if first_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        app.post("/auth/verify-otp", None, guess(wrong)).await;
    }
    // Past the cooldown and the per-minute verify limit.
    app.clock.advance(TimeDelta::seconds(61));
    assert_eq!(app.request_code("5551234567").await.status, StatusCode::OK);
    let code = twilio.last_code("+15551234567");
    let login = app.post("/auth/verify-otp", None, guess(&code)).await;
    let tenant_token = login.body["data"]["token"].as_str().unwrap().to_owned();
    let logout = app
        .request(Method::POST, "/auth/logout", Some(&tenant_token), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.delete("/units/A/tenancy", &pms).await.status,
        StatusCode::NO_CONTENT
    );

    let ops = app.sign_in("ops@acme.example", "twelve chars!").await;
    let ops = ops.body["data"]["token"].as_str().unwrap().to_owned();
    let changed = app
        .post(
            "/admin/password",
            Some(&ops),
            json!({"current_password": "twelve chars!", "new_password": "thirteen chars"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let disabled = app
        .request(
            Method::POST,
            &format!("/admins/{admin_id}/disable"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(disabled.status, StatusCode::NO_CONTENT);
    let second_root = app.sign_in("root@example.com", ADMIN_PASSWORD).await;
    let second_root = second_root.body["data"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = app
        .request(Method::POST, "/admin/sign-out", Some(&second_root), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);

    let events = all_events(&app, &root).await;
    for kind in [
        "admin.sign_in_failed",
        "admin.disabled",
        "admin.password_changed",
        "admin.signed_out",
        "company.created",
        "api_token.revoked",
        "tenancy.replaced",
        "tenancy.vacated",
        "tenant.logged_in",
        "tenant.logged_out",
        "otp.locked",
    ] {
        only(&events, kind);
    }
    // Counted as they happened: root made by the test's setup (as the command line would) and
    // ops by root; sign-ins of root (2) and ops (1); two tokens; two codes; five wrong guesses.
    let counts = [
        ("admin.created", 2),
        ("admin.signed_in", 3),
        ("api_token.created", 2),
        ("otp.sent", 2),
        ("otp.failed", 5),
    ];
    for (kind, count) in counts {
        assert_eq!(of_type(&events, kind).len(), count, "{kind}");
    }
    assert_eq!(events.len(), 11 + 14, "{events:#?}");

    // The pinned shape of every event.
    for event in &events {
        assert_eq!(
            sorted_keys(event),
            [
                "actor",
                "company_id",
                "id",
                "ip",
                "occurred_at",
                "request_id",
                "subject",
                "type"
            ]
        );
        assert_eq!(event["id"].as_str().unwrap().len(), 26);
        if event["actor"]["kind"] == "system" {
            // The setup's admin, made through the library as the command line makes them.
            assert_eq!(
                (&event["ip"], &event["request_id"]),
                (&Value::Null, &Value::Null)
            );
        } else {
            assert_eq!(event["ip"], "127.0.0.1");
            assert!(event["request_id"].is_string());
        }
    }
    let company = json!(company);
    let token_id = json!(token["id"]);
    let pinned = [
        (
            "admin.sign_in_failed",
            Value::Null,
            json!({"kind": "anonymous", "id": null}),
            json!({}),
        ),
        (
            "company.created",
            company.clone(),
            json!({"kind": "admin", "id": root_id}),
            json!({"company_id": company}),
        ),
        (
            "admin.created",
            company.clone(),
            json!({"kind": "admin", "id": root_id}),
            json!({"admin_id": admin_id}),
        ),
        (
            "api_token.revoked",
            company.clone(),
            json!({"kind": "admin", "id": root_id}),
            json!({"api_token_id": spare["id"]}),
        ),
        (
            "tenancy.replaced",
            company.clone(),
            json!({"kind": "api_token", "id": token_id}),
            json!({"crm_unit_id": "A", "tenant_id": tenant_id}),
        ),
        (
            "tenancy.vacated",
            company.clone(),
            json!({"kind": "api_token", "id": token_id}),
            json!({"crm_unit_id": "A", "tenant_id": tenant_id}),
        ),
        (
            "tenant.logged_in",
            company.clone(),
            json!({"kind": "tenant", "id": tenant_id}),
            json!({"tenant_id": tenant_id}),
        ),
        (
            "tenant.logged_out",
            company.clone(),
            json!({"kind": "tenant", "id": tenant_id}),
            json!({"tenant_id": tenant_id}),
        ),
        (
            "otp.locked",
            company.clone(),
            json!({"kind": "anonymous", "id": null}),
            json!({"phone_last4": "4567", "tenant_ids": [tenant_id]}),
        ),
        (
            "admin.password_changed",
            company.clone(),
            json!({"kind": "admin", "id": admin_id}),
            json!({"admin_id": admin_id}),
        ),
        (
            "admin.disabled",
            company.clone(),
            json!({"kind": "admin", "id": root_id}),
            json!({"admin_id": admin_id}),
        ),
        (
            "admin.signed_out",
            Value::Null,
            json!({"kind": "admin", "id": root_id}),
            json!({"admin_id": root_id}),
        ),
    ];
    for (kind, company_id, actor, subject) in pinned {
        let by_actor: Vec<&Value> = of_type(&events, kind)
            .into_iter()
            .filter(|e| e["actor"] == actor)
            .collect();
        assert_eq!(by_actor.len(), 1, "{kind} by {actor}: {by_actor:?}");
        assert_eq!(by_actor[0]["company_id"], company_id, "{kind}");
        assert_eq!(by_actor[0]["subject"], subject, "{kind}");
    }
    assert_eq!(
        only(&events, "tenancy.replaced")["request_id"],
        "pms-req-42"
    );
    for otp in of_type(&events, "otp.sent")
        .iter()
        .chain(&of_type(&events, "otp.failed"))
    {
        assert_eq!(otp["subject"]["phone_last4"], "4567");
    }

    let everything = serde_json::to_string(&events).unwrap();
    for secret in [
        root.as_str(),
        pms.as_str(),
        tenant_token.as_str(),
        ops.as_str(),
        ADMIN_PASSWORD,
        "twelve chars!",
        "thirteen chars",
        &first_code,
        &code,
        "5551234567",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked into an event"
        );
    }
}

#[sqlx::test]
async fn an_event_is_written_with_its_change_or_not_at_all(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let (_, pms) = app.company_with_token("Acme").await;
    app.patch(
        "/units",
        &pms,
        json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}]}),
    )
    .await;
    let rent = json!({"crm_tenant_id": "T", "name": "Jane", "phone": "+15551234567"});
    let count_events = async |kind: &str| -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE type = $1")
            .bind(kind)
            .fetch_one(&db)
            .await
            .unwrap()
    };

    // The change is refused at commit (a deferred check): its event goes with it.
    sqlx::query(
        "CREATE FUNCTION refuse_tenancy() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON tenancies
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_tenancy()",
    )
    .execute(&db)
    .await
    .unwrap();
    let refused = app.put("/units/A/tenancy", &pms, rent.clone()).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count_events("tenancy.replaced").await, 0);
    assert_eq!(app.count("tenancies").await, 0);
    sqlx::query("DROP TRIGGER refuse_at_commit ON tenancies")
        .execute(&db)
        .await
        .unwrap();

    // The event cannot be written: the change does not happen either.
    sqlx::query(
        "ALTER TABLE events ADD CONSTRAINT no_tenancy_events CHECK (type <> 'tenancy.replaced')",
    )
    .execute(&db)
    .await
    .unwrap();
    let unrecorded = app.put("/units/A/tenancy", &pms, rent.clone()).await;
    assert_eq!(unrecorded.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.count("tenancies").await, 0);
    sqlx::query("ALTER TABLE events DROP CONSTRAINT no_tenancy_events")
        .execute(&db)
        .await
        .unwrap();

    assert_eq!(
        app.put("/units/A/tenancy", &pms, rent).await.status,
        StatusCode::OK
    );
    assert_eq!(count_events("tenancy.replaced").await, 1);
    assert_eq!(app.count("tenancies").await, 1);
}

#[sqlx::test]
async fn events_are_read_per_company_in_pages_newest_first(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let globex = app.create_company(&root, "Globex").await;
    for i in 0..4 {
        app.clock.advance(TimeDelta::seconds(1));
        app.create_api_token(&root, acme, &format!("acme-{i}"))
            .await;
    }
    app.create_api_token(&root, globex, "globex").await;
    let acme_admin = app.admin_token("ops@acme.example", Some(acme)).await;

    let path = format!("/companies/{acme}/events?type=api_token.created&limit=3");
    let first = app.get(&path, &acme_admin).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let ids: Vec<String> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("{path}&cursor={cursor}"), &acme_admin)
        .await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["next_cursor"], Value::Null);
    assert!(second.body["data"][0]["id"].as_str().unwrap() < ids[2].as_str());

    // The company admin sees its company's events only.
    let all_acme = app
        .get(&format!("/companies/{acme}/events"), &acme_admin)
        .await;
    let companies: Vec<&Value> = all_acme.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["company_id"])
        .collect();
    assert!(
        companies.iter().all(|c| **c == json!(acme)),
        "{companies:?}"
    );
    let other = app
        .get(&format!("/companies/{globex}/events"), &acme_admin)
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/events", &acme_admin).await.status,
        StatusCode::FORBIDDEN
    );
    let filtered = app
        .get(&format!("/events?company_id={globex}"), &root)
        .await;
    let types: Vec<&str> = filtered.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["api_token.created", "company.created"]);

    for (query, field) in [
        ("type=admin.deleted", "type"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=not-a-ulid", "cursor"),
    ] {
        let bad = app
            .get(&format!("/companies/{acme}/events?{query}"), &root)
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(
            bad.body["errors"][field].is_array(),
            "{query}: {:?}",
            bad.body
        );
    }
    let anonymous = app
        .request(
            Method::GET,
            &format!("/companies/{acme}/events"),
            None,
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let unknown = app
        .get(&format!("/companies/{}/events", Uuid::new_v4()), &root)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// Creates a webhook for `events` and returns its `data`.
async fn webhook(app: &TestApp, admin: &str, company: Uuid, url: &str, events: &[&str]) -> Value {
    let created = app
        .post(
            &format!("/companies/{company}/webhooks"),
            Some(admin),
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.body["data"].clone()
}

#[sqlx::test]
async fn webhooks_are_managed_per_company_and_their_secret_is_shown_once(db: PgPool) {
    let app = spawn_app(db).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let globex = app.create_company(&root, "Globex").await;
    let acme_admin = app.admin_token("ops@acme.example", Some(acme)).await;
    let hook = webhook(
        &app,
        &acme_admin,
        acme,
        "http://127.0.0.1:9/hook",
        &["api_token.created", "api_token.created", "tenant.logged_in"],
    )
    .await;
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        hook["events"],
        json!(["api_token.created", "tenant.logged_in"])
    );

    let listed = app
        .get(&format!("/companies/{acme}/webhooks"), &acme_admin)
        .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["data"][0]["id"], hook["id"]);
    assert!(listed.body["data"][0].get("secret").is_none());
    let other = app
        .get(&format!("/companies/{globex}/webhooks"), &acme_admin)
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);

    for (body, field) in [
        (
            json!({"url": "ftp://example.com/x", "events": ["company.created"]}),
            "url",
        ),
        (
            json!({"url": "http://example.com/x", "events": []}),
            "events",
        ),
        (
            json!({"url": "http://example.com/x", "events": ["nope"]}),
            "events.0",
        ),
        (json!({"events": ["company.created"]}), "url"),
    ] {
        let bad = app
            .post(
                &format!("/companies/{acme}/webhooks"),
                Some(&acme_admin),
                body.clone(),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            bad.body["errors"][field].is_array(),
            "{body}: {:?}",
            bad.body
        );
    }

    let id = hook["id"].as_str().unwrap();
    let deleted = app
        .delete(&format!("/companies/{acme}/webhooks/{id}"), &acme_admin)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = app
        .delete(&format!("/companies/{acme}/webhooks/{id}"), &acme_admin)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.message(), "Webhook not found.");
}

#[sqlx::test]
async fn production_webhooks_must_be_https_to_public_addresses(db: PgPool) {
    let twilio = FakeTwilio::start().await;
    let mut vars = twilio.env().to_vec();
    vars.push(("KISS_ENV", "production"));
    let app = spawn_app_with(db, &vars).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    for (url, message) in [
        ("http://hooks.example.com/x", "The url must use https://."),
        (
            "https://127.0.0.1/x",
            "The url must not point to a loopback, private, link-local or metadata address.",
        ),
        (
            "https://169.254.169.254/latest/meta-data",
            "The url must not point to a loopback, private, link-local or metadata address.",
        ),
        (
            "https://[fd00:ec2::254]/",
            "The url must not point to a loopback, private, link-local or metadata address.",
        ),
        (
            "https://10.0.0.8/x",
            "The url must not point to a loopback, private, link-local or metadata address.",
        ),
    ] {
        let refused = app
            .post(
                &format!("/companies/{acme}/webhooks"),
                Some(&root),
                json!({"url": url, "events": ["company.created"]}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(refused.body["errors"]["url"][0], message, "{url}");
    }
    assert_eq!(app.count("webhooks").await, 0);
}

/// The deliveries page of a webhook.
async fn deliveries(app: &TestApp, admin: &str, company: Uuid, hook: &Value) -> TestResponse {
    let id = hook["id"].as_str().unwrap();
    app.get(
        &format!("/companies/{company}/webhooks/{id}/deliveries"),
        admin,
    )
    .await
}

#[sqlx::test]
async fn deliveries_are_signed_and_retried_after_a_500_and_a_refused_connection(db: PgPool) {
    let app = spawn_app(db).await;
    let _worker = app.start_deliveries();
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let receiver = Receiver::start().await;
    let hook = webhook(&app, &root, acme, &receiver.url, &["api_token.created"]).await;
    let secret = hook["secret"].as_str().unwrap();

    // Delivered at once, signed with the webhook's secret.
    let created = app.create_api_token(&root, acme, "first").await;
    let got = received(&receiver, 1).await;
    let event = got[0].json();
    assert_eq!(event["type"], "api_token.created");
    assert_eq!(event["subject"], json!({"api_token_id": created["id"]}));
    assert_eq!(got[0].header("x-kiss-event-id"), event["id"].as_str());
    assert_eq!(got[0].signed_at(secret), Some(app.clock_now().timestamp()));
    assert_eq!(got[0].header("content-type"), Some("application/json"));

    // A 500 is retried after the backoff (10 s, less jitter), and recorded.
    receiver.answer_with(500);
    app.create_api_token(&root, acme, "second").await;
    received(&receiver, 2).await;
    receiver.answer_with(200);
    // Until the failure is recorded, the delivery is leased (30 s), not scheduled for its retry.
    let recorded = async |count: i64| {
        eventually(5, "the attempts recorded", async || {
            attempts_recorded(&app.db).await >= count
        })
        .await
    };
    recorded(2).await;
    app.clock.advance(TimeDelta::seconds(11));
    let got = received(&receiver, 3).await;
    assert_eq!(got[1].body, got[2].body, "the retry sends the same event");

    // A refused connection likewise.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let hook_down = webhook(&app, &root, acme, &closed_url, &["api_token.created"]).await;
    app.create_api_token(&root, acme, "third").await;
    received(&receiver, 4).await;
    let mut failed = Value::Null;
    for _ in 0..100 {
        let page = deliveries(&app, &root, acme, &hook_down).await;
        if let Some(first) = page.body["data"].as_array().and_then(|d| d.first()) {
            failed = first.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["status"], Value::Null);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{failed}"
    );
    let address = closed_url
        .trim_start_matches("http://")
        .trim_end_matches("/hook");
    let revived = Receiver::serve_on(tokio::net::TcpListener::bind(address).await.unwrap());
    recorded(5).await;
    app.clock.advance(TimeDelta::seconds(11));
    let got = received(&revived, 1).await;
    assert_eq!(got[0].json()["type"], "api_token.created");
    recorded(6).await;

    let page = deliveries(&app, &root, acme, &hook).await;
    let attempts: Vec<(i64, Value)> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].as_i64().unwrap(), a["status"].clone()))
        .collect();
    // Newest first: the third event, the retry that succeeded, the 500, the first event.
    assert_eq!(
        attempts,
        [
            (1, json!(200)),
            (2, json!(200)),
            (1, json!(500)),
            (1, json!(200))
        ]
    );

    // The same attempts two at a time.
    let id = hook["id"].as_str().unwrap();
    let path = format!("/companies/{acme}/webhooks/{id}/deliveries?limit=2");
    let first = app.get(&path, &root).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("{path}&cursor={cursor}"), &root).await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(second.body["data"][1]["status"], 200);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let bad = app.get(&format!("{path}&cursor=abc"), &root).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body["errors"]["cursor"].is_array());
}

/// Waits (up to `seconds`) until `condition` holds.
async fn eventually(seconds: u64, what: &str, condition: impl AsyncFn() -> bool) {
    for _ in 0..seconds * 20 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within {seconds} s");
}

async fn attempts_recorded(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_attempts")
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test]
async fn deliveries_survive_a_restart_with_the_receiver_down(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = port.local_addr().unwrap();
    drop(port);
    let hook = webhook(
        &app,
        &root,
        acme,
        &format!("http://{address}/hook"),
        &["api_token.created"],
    )
    .await;

    let (mut first, base) = start_server(&db, &[]).await;
    let on_server = sign_in_on(&base).await;
    let created = read(
        http_client()
            .post(format!("{base}/companies/{acme}/api-tokens"))
            .bearer_auth(&on_server)
            .json(&json!({"name": "while the receiver is down"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    eventually(10, "a first, failed attempt", async || {
        attempts_recorded(&db).await >= 1
    })
    .await;
    let pid = first.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    first.wait().await.unwrap();

    let receiver = Receiver::serve_on(tokio::net::TcpListener::bind(address).await.unwrap());
    let (_second, _) = start_server(&db, &[]).await;
    // The retry is due 5–10 s after the failure (backoff with jitter), on the real clock.
    let got = received(&receiver, 1).await;
    let event = got[0].json();
    assert_eq!(event["type"], "api_token.created");
    assert_eq!(event["subject"]["api_token_id"], created.body["data"]["id"]);
    assert!(got[0].signed_at(hook["secret"].as_str().unwrap()).is_some());
    // The server records the delivery once the receiver has answered.
    eventually(5, "the delivery recorded as the second attempt", async || {
        let delivered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NOT NULL AND attempts = 2",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        delivered == 1
    })
    .await;
}

#[sqlx::test]
async fn two_server_processes_deliver_each_event_once(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    let receiver = Receiver::start().await;
    webhook(&app, &root, acme, &receiver.url, &["api_token.created"]).await;
    let (_first, first) = start_server(&db, &[]).await;
    let (_second, second) = start_server(&db, &[]).await;
    let on_server = sign_in_on(&first).await;

    let client = http_client();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..40 {
        let base = if i % 2 == 0 { &first } else { &second };
        let request = client
            .post(format!("{base}/companies/{acme}/api-tokens"))
            .bearer_auth(&on_server)
            .json(&json!({"name": format!("token-{i}")}));
        requests.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = requests.join_all().await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );

    received(&receiver, 40).await;
    // Time for a second copy to arrive, if one were sent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut copies: HashMap<String, usize> = HashMap::new();
    for request in receiver.received() {
        *copies
            .entry(request.json()["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(copies.len(), 40);
    assert!(copies.values().all(|n| *n == 1), "{copies:?}");

    let metrics = metrics_text(first.trim_end_matches("/api/v2")).await;
    assert!(
        metrics.lines().any(|l| l == "webhook_deliveries_pending 0"),
        "{metrics}"
    );
}

#[sqlx::test]
async fn events_past_their_retention_are_purged_with_their_deliveries(db: PgPool) {
    use kiss_auth::app::maintenance::purge_old_events;
    let app = spawn_app(db.clone()).await;
    let root = app.super_admin_token().await;
    let acme = app.create_company(&root, "Acme").await;
    webhook(
        &app,
        &root,
        acme,
        "http://127.0.0.1:9/hook",
        &["api_token.created"],
    )
    .await;
    app.create_api_token(&root, acme, "old").await;
    let old_events = app.count("events").await;
    app.clock
        .advance(TimeDelta::days(365) + TimeDelta::seconds(1));
    let signed_in = app.sign_in("root@example.com", ADMIN_PASSWORD).await;
    let root = signed_in.body["data"]["token"].as_str().unwrap().to_owned();
    app.create_api_token(&root, acme, "new").await;
    assert_eq!(app.count("webhook_deliveries").await, 2);

    let purged = purge_old_events(&db, TimeDelta::days(365), app.clock_now(), 2)
        .await
        .unwrap();
    assert_eq!(purged as i64, old_events);
    assert_eq!(app.count("webhook_deliveries").await, 1);
    let left = all_events(&app, &root).await;
    let names: Vec<&str> = left.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin.signed_in", "api_token.created"]);
}
