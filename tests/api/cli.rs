//! The `kiss-auth` command line (docs/api.md, "Command line"), run as the real binary against a test database.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{APP_KEY, database_url, read, spawn_app, start_server};

fn kiss_auth(db: &PgPool, args: &[&str], stdin: &str, app_key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiss-auth"));
    command
        .args(args)
        .env("DATABASE_URL", database_url(db))
        .env("KISS_ENV", "development")
        .env("RUST_LOG", "warn")
        .env_remove("KISS_APP_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(key) = app_key {
        command.env("KISS_APP_KEY", key);
    }
    let mut child = command.spawn().expect("the binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed and returns the JSON it printed.
fn run_ok(db: &PgPool, args: &[&str], stdin: &str) -> Value {
    let output = kiss_auth(db, args, stdin, Some(APP_KEY));
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
}

fn run_err(db: &PgPool, args: &[&str], stdin: &str) -> String {
    let output = kiss_auth(db, args, stdin, Some(APP_KEY));
    assert!(!output.status.success(), "{args:?} should fail");
    assert!(output.stdout.is_empty(), "nothing on stdout on failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[sqlx::test(migrations = false)]
async fn migrate_applies_every_migration_once(db: PgPool) {
    let first = run_ok(&db, &["migrate"], "");
    let expected = kiss_auth::infra::db::MIGRATOR.iter().count();
    assert_eq!(first, json!({"applied": expected}));
    assert_eq!(run_ok(&db, &["migrate"], ""), json!({"applied": 0}));
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'api_tokens'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(tables, 1);
}

#[sqlx::test(migrations = false)]
async fn migrate_creates_a_missing_database(db: PgPool) {
    let name = format!("kiss_cli_{}", uuid::Uuid::new_v4().simple());
    let url = database_url(&db).rsplit_once('/').unwrap().0.to_owned() + "/" + &name;
    let output = Command::new(env!("CARGO_BIN_EXE_kiss-auth"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&db)
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed["applied"].as_u64().unwrap() >= 1);
}

#[sqlx::test]
async fn company_create_prints_the_company(db: PgPool) {
    let printed = run_ok(&db, &["company", "create", "--name", "Acme Storage"], "");
    assert_eq!(printed["name"], "Acme Storage");
    let stored: String = sqlx::query_scalar("SELECT name FROM companies WHERE id = $1::uuid")
        .bind(printed["id"].as_str().unwrap())
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, "Acme Storage");
    assert!(printed["created_at"].as_str().unwrap().ends_with('Z'));

    let error = run_err(&db, &["company", "create", "--name", " "], "");
    assert!(error.contains("The name field is required."), "{error}");
}

#[sqlx::test]
async fn admin_create_reads_the_password_from_stdin(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let company = run_ok(&db, &["company", "create", "--name", "Acme Storage"], "");
    let company_id = company["id"].as_str().unwrap();

    let root = run_ok(
        &db,
        &["admin", "create", "--email", "root@example.com"],
        "a long root password\n",
    );
    assert_eq!(root["email"], "root@example.com");
    assert_eq!(root["company_id"], Value::Null);
    let ops = run_ok(
        &db,
        &[
            "admin",
            "create",
            "--email",
            "ops@acme.test",
            "--company",
            company_id,
        ],
        "trailing space kept \n\n",
    );
    assert_eq!(ops["company_id"], company_id);

    // One trailing newline is stripped, nothing else.
    let signed_in = app
        .sign_in("root@example.com", "a long root password")
        .await;
    assert_eq!(signed_in.status, StatusCode::OK);
    assert_eq!(signed_in.body["data"]["admin"], root);
    let ops_sign_in = app.sign_in("ops@acme.test", "trailing space kept \n").await;
    assert_eq!(ops_sign_in.status, StatusCode::OK);
}

#[sqlx::test]
async fn admin_create_refuses_bad_input(db: PgPool) {
    run_ok(
        &db,
        &["admin", "create", "--email", "root@example.com"],
        "a long root password",
    );
    let duplicate = run_err(
        &db,
        &["admin", "create", "--email", "ROOT@example.com"],
        "another long password",
    );
    assert!(duplicate.contains("already exists"), "{duplicate}");
    let short = run_err(
        &db,
        &["admin", "create", "--email", "new@example.com"],
        "short\n",
    );
    assert!(short.contains("12"), "{short}");
    let bad_email = run_err(
        &db,
        &["admin", "create", "--email", "nope"],
        "a long root password",
    );
    assert!(bad_email.contains("not a valid e-mail"), "{bad_email}");
    let unknown_company = run_err(
        &db,
        &[
            "admin",
            "create",
            "--email",
            "x@example.com",
            "--company",
            &uuid::Uuid::new_v4().to_string(),
        ],
        "a long root password",
    );
    assert!(unknown_company.contains("no company"), "{unknown_company}");
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM admins")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(admins, 1);
}

#[sqlx::test]
async fn token_create_prints_a_token_the_server_accepts(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let company = run_ok(&db, &["company", "create", "--name", "Acme Storage"], "");
    let company_id = company["id"].as_str().unwrap();

    let token = run_ok(
        &db,
        &[
            "token",
            "create",
            "--company",
            company_id,
            "--name",
            "production-sync",
        ],
        "",
    );
    assert_eq!(token["name"], "production-sync");
    let auth = app
        .authenticate_api_token(token["token"].as_str().unwrap())
        .await
        .expect("the server (same KISS_APP_KEY) accepts the token");
    assert_eq!(auth.company_id.to_string(), company_id);

    let too_long = run_err(
        &db,
        &[
            "token",
            "create",
            "--company",
            company_id,
            "--name",
            &"x".repeat(101),
        ],
        "",
    );
    assert!(too_long.contains("100 characters"), "{too_long}");
}

/// Development without `KISS_APP_KEY`: the CLI and every server process use the one key kept in
/// the database, so a token made by one works on the others and after a restart.
#[sqlx::test]
async fn without_an_app_key_development_keeps_one_key_in_the_database(db: PgPool) {
    let company = run_ok(&db, &["company", "create", "--name", "Acme Storage"], "");
    let output = kiss_auth(
        &db,
        &[
            "token",
            "create",
            "--company",
            company["id"].as_str().unwrap(),
            "--name",
            "x",
        ],
        "",
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let token: Value = serde_json::from_slice(&output.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();

    let no_key = [("KISS_APP_KEY", "")];
    let units_with = |base: String| {
        let token = token.clone();
        async move {
            crate::helpers::http_client()
                .get(format!("{base}/units"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let (mut first, first_base) = start_server(&db, &no_key).await;
    let (_second, second_base) = start_server(&db, &no_key).await;
    assert_eq!(units_with(first_base).await, StatusCode::OK);
    assert_eq!(units_with(second_base).await, StatusCode::OK);
    first.kill().await.unwrap();
    let (_restarted, restarted_base) = start_server(&db, &no_key).await;
    assert_eq!(units_with(restarted_base).await, StatusCode::OK);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM development_app_key")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(keys, 1);
}

#[test]
fn a_bad_configuration_value_stops_start_up_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_kiss-auth"))
        .arg("migrate")
        .env("KISS_BIND", "nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("KISS_BIND"), "{stderr}");
}

#[test]
fn production_refuses_the_log_sms_provider() {
    let output = Command::new(env!("CARGO_BIN_EXE_kiss-auth"))
        .arg("serve")
        .env("KISS_ENV", "production")
        .env("KISS_APP_KEY", APP_KEY)
        .env("KISS_SMS_PROVIDER", "log")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("KISS_SMS_PROVIDER"));
}

#[test]
fn production_refuses_open_ended_test_codes_and_an_unsigned_sms_webhook() {
    let production = |extra: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_kiss-auth"))
            .arg("serve")
            .env("KISS_ENV", "production")
            .env("KISS_APP_KEY", APP_KEY)
            .env("KISS_SMS_PROVIDER", "webhook")
            .env("KISS_SMS_WEBHOOK_URL", "https://sms.example/send")
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let unsigned = production(&[]);
    assert!(unsigned.contains("KISS_SMS_WEBHOOK_SECRET"), "{unsigned}");
    let open_ended = production(&[
        ("KISS_SMS_WEBHOOK_SECRET", "whsec-1"),
        ("KISS_TEST_OTP", "+15551234567=246810"),
    ]);
    assert!(open_ended.contains("KISS_TEST_OTP_UNTIL"), "{open_ended}");
    assert!(
        !open_ended.contains("246810"),
        "the code is not echoed: {open_ended}"
    );
}

#[sqlx::test]
async fn serve_answers_and_stops_cleanly_on_sigterm(db: PgPool) {
    let (mut server, base) = start_server(&db, &[]).await;
    let answer = read(
        crate::helpers::http_client()
            .get(format!("{base}/companies"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let pid = server.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the server stops within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
