//! The KISS Dashboard (docs/api.md, "The dashboard") in a real headless Chromium: the reference docs' token flow
//! from sign-in to a revoked token refused over HTTP, a company admin's narrower view, the Admins
//! tab, keyboard-only sign-in and an expired session; plus the security headers of its assets.

use chrono::TimeDelta;
use fantoccini::Locator;
use fantoccini::key::Key;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::browser::Browser;
use crate::helpers::{ADMIN_PASSWORD, TestApp, create_admin, spawn_app};

#[sqlx::test]
async fn dashboard_assets_come_from_the_binary_with_a_strict_policy(db: PgPool) {
    let app = spawn_app(db).await;
    let client = crate::helpers::http_client();
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/dashboard", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/dashboard/");

    for (path, content_type) in [
        ("/dashboard/", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
    ] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
        let body = response.text().await.unwrap();
        // No asset from anywhere else, nothing inline to run.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}"
        );
        if path.ends_with(".js") {
            assert!(!body.contains("localStorage") && !body.contains("innerHTML"));
        }
        if path == "/dashboard/" {
            assert!(!body.contains("<script>") && !body.contains("style="));
        }
    }
}

/// Signs in through the form: e-mail, password, `Sign in`.
async fn sign_in(browser: &Browser, app: &TestApp, email: &str) {
    browser
        .client
        .goto(&format!("{}/dashboard/", app.address))
        .await
        .unwrap();
    browser.fill("E-mail", email).await;
    browser.fill("Password", ADMIN_PASSWORD).await;
    browser.click("Sign in").await;
    browser.button("Sign out").await;
}

async fn status_with(app: &TestApp, token: &str) -> StatusCode {
    app.client
        .get(app.url("/units"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

const ROW: &str = "//*[@data-role='token-row']";

#[sqlx::test]
async fn the_reference_token_flow_works_in_a_real_browser(db: PgPool) {
    let app = spawn_app(db).await;
    create_admin(&app.db, "admin@example.com", None, app.clock_now()).await;
    let browser = Browser::start().await;

    sign_in(&browser, &app, "admin@example.com").await;
    // A super admin creates the company from the sidebar.
    browser.fill("Company name", "ABC Storage Co.").await;
    browser.click("Create company").await;
    browser.click_link("ABC Storage Co.").await;
    browser.click_link("API").await;

    browser.fill("Token name", "production-sync").await;
    browser.click("Create a new token").await;
    let shown = browser.wait_for("//*[@data-role='new-token']").await;
    let token = shown.text().await.unwrap();
    assert!(token.starts_with("kat_"), "{token}");
    assert!(
        browser
            .wait_for("//*[contains(., 'see it again')]")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    browser.button("Copy").await;
    browser.screenshot("api-tab-1280", 1280, 860).await;
    browser.client.set_window_size(375, 812).await.unwrap();
    browser
        .client
        .execute(
            "document.querySelector('.new-token').scrollIntoView({block: 'center'})",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("api-tab-375", 375, 812).await;
    browser.client.set_window_size(1280, 900).await.unwrap();
    assert_eq!(status_with(&app, &token).await, StatusCode::OK);

    let row = browser.wait_for(ROW).await;
    let text = row.text().await.unwrap();
    assert!(text.contains("production-sync"), "{text}");
    // The use above is listed as the token's last use.
    browser.client.refresh().await.unwrap();
    let row = browser.wait_for(ROW).await;
    assert!(!row.text().await.unwrap().contains("Never"));

    // Revoke, with its confirmation; refused on the very next request, gone from the list.
    browser
        .click_xpath(&format!("{ROW}//button[normalize-space()='Revoke']"))
        .await;
    browser.click("Revoke token").await;
    browser.wait_gone(ROW).await;
    assert_eq!(status_with(&app, &token).await, StatusCode::UNAUTHORIZED);
    browser
        .wait_for("//*[normalize-space()='No active tokens.']")
        .await;

    // The token never reached a URL or localStorage.
    let stored = browser
        .client
        .execute(
            "return JSON.stringify(localStorage) + location.href + document.cookie",
            vec![],
        )
        .await
        .unwrap();
    assert!(!stored.as_str().unwrap().contains("kat_"));
    assert!(!stored.as_str().unwrap().contains("kadm_"));

    browser.click("Sign out").await;
    browser.field("E-mail").await;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM admin_sessions WHERE revoked_at IS NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(open, 0, "signing out ended the session on the server");
}

#[sqlx::test]
async fn a_company_admin_manages_its_company_by_keyboard_until_its_session_expires(db: PgPool) {
    let app = spawn_app(db).await;
    let (acme, _) = app.company_with_token("Acme").await;
    app.company_with_token("Globex").await;
    create_admin(&app.db, "ops@acme.example", Some(acme), app.clock_now()).await;
    let browser = Browser::start().await;

    // Keyboard only: the e-mail field has the focus; Tab to the password; Enter submits.
    browser
        .client
        .goto(&format!("{}/dashboard/", app.address))
        .await
        .unwrap();
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("email"));
    focused
        .send_keys(&format!(
            "ops@acme.example{}{ADMIN_PASSWORD}{}",
            char::from(Key::Tab),
            char::from(Key::Enter)
        ))
        .await
        .unwrap();
    browser.button("Sign out").await;

    // Only its own company, and no company creation.
    let companies = browser
        .client
        .find_all(Locator::XPath("//nav[@aria-label='Companies']//a"))
        .await
        .unwrap();
    assert_eq!(companies.len(), 1);
    assert_eq!(companies[0].text().await.unwrap(), "Acme");
    assert!(
        browser
            .client
            .find_all(Locator::XPath(
                "//button[normalize-space()='Create company']"
            ))
            .await
            .unwrap()
            .is_empty()
    );

    // The Admins tab: add a colleague, see it listed, disable it.
    browser.click_link("Admins").await;
    // The API's message is shown as it is.
    browser.fill("Admin e-mail", "OPS@acme.example").await;
    browser
        .fill("Admin password", "a long enough password")
        .await;
    browser.click("Create admin").await;
    browser
        .wait_for("//*[@role='alert'][contains(., 'An admin with this e-mail already exists.')]")
        .await;
    browser.fill("Admin e-mail", "two@acme.example").await;
    browser.click("Create admin").await;
    let colleague = "//*[@data-role='admin-row'][contains(., 'two@acme.example')]";
    browser.wait_for(colleague).await;
    browser
        .click_xpath(&format!("{colleague}//button[normalize-space()='Disable']"))
        .await;
    browser.click("Disable admin").await;
    browser
        .wait_for(&format!("{colleague}[contains(., 'Disabled')]"))
        .await;
    assert_eq!(
        app.sign_in("two@acme.example", "a long enough password")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // The session ends on the server (12 h later): the next request returns to the sign-in form.
    app.clock.advance(TimeDelta::hours(13));
    browser.click_link("API").await;
    browser
        .wait_for("//*[@role='status'][contains(., 'Your session has expired')]")
        .await;
    browser.field("E-mail").await;
}
