//! Spawning the app against a test database, and shortcuts for the setup most tests share.

use std::collections::HashMap;

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, TimeZone, Utc};
use kiss_auth::app;
use kiss_auth::features::admin::{self, Admin, NewAdmin};
use kiss_auth::features::api_tokens::{self, NewApiToken};
use kiss_auth::features::companies::{self, NewCompany};
use kiss_auth::http::AppState;
use kiss_auth::infra::clock::{ManualClock, SharedClock};
use kiss_auth::infra::config::Config;
use kiss_auth::services::audit::{Actor, Origin};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fake_twilio::FakeTwilio;

/// The app key every test server and CLI run shares (base64 of 32 bytes).
pub const APP_KEY: &str = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMzJieXQ=";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub clock: ManualClock,
    pub state: AppState,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// The configuration tests start from, with `overrides` applied as environment variables would be.
pub fn test_config(overrides: &[(&str, &str)]) -> Config {
    // Small pools: tests run in parallel, some with extra server processes, against one Postgres
    // whose max_connections is 100.
    let mut vars: HashMap<String, String> = HashMap::from([
        ("KISS_APP_KEY".to_owned(), APP_KEY.to_owned()),
        ("KISS_DATABASE_MAX_CONNECTIONS".to_owned(), "5".to_owned()),
    ]);
    for (name, value) in overrides {
        vars.insert(name.to_string(), value.to_string());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration is valid")
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

pub async fn spawn_app(db: PgPool) -> TestApp {
    spawn_app_with(db, &[]).await
}

/// Serves the real router on an ephemeral loopback port (bound before it is spawned, so no waiting).
pub async fn spawn_app_with(db: PgPool, overrides: &[(&str, &str)]) -> TestApp {
    let clock = ManualClock::new(start_time());
    let state = AppState::new(
        db.clone(),
        test_config(overrides),
        SharedClock::new(clock.clone()),
    )
    .expect("the app state builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app::serve(listener, state.clone(), std::future::pending()));
    TestApp {
        address,
        client: http_client(),
        db,
        clock,
        state,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v2{path}", self.address)
    }

    /// Sends a request; a body is sent as JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        read(request.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> TestResponse {
        self.post(
            "/admin/sign-in",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Creates an admin (a super admin when `company_id` is `None`) and returns its admin token.
    pub async fn admin_token(&self, email: &str, company_id: Option<Uuid>) -> String {
        create_admin(&self.db, email, company_id, self.clock_now()).await;
        let response = self.sign_in(email, ADMIN_PASSWORD).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        response.body["data"]["token"].as_str().unwrap().to_owned()
    }

    pub async fn super_admin_token(&self) -> String {
        self.admin_token("root@example.com", None).await
    }

    /// Creates a company through the API and returns its id.
    pub async fn create_company(&self, admin_token: &str, name: &str) -> Uuid {
        let response = self
            .post("/companies", Some(admin_token), json!({"name": name}))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        response.body["data"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Creates an API token through the API and returns the whole `data` object.
    pub async fn create_api_token(&self, admin_token: &str, company_id: Uuid, name: &str) -> Value {
        let response = self
            .post(
                &format!("/companies/{company_id}/api-tokens"),
                Some(admin_token),
                json!({"name": name}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        response.body["data"].clone()
    }

    /// A company made directly through the library, with an API token for it.
    pub async fn company_with_token(&self, name: &str) -> (Uuid, String) {
        let now = self.clock_now();
        let company = companies::create(
            &self.db,
            NewCompany { name: name.into() },
            Actor::system(),
            &Origin::default(),
            now,
        )
        .await
        .unwrap();
        let token = api_tokens::create(
            &self.db,
            &self.state.hasher,
            company.id,
            NewApiToken { name: "pms".into() },
            Actor::system(),
            &Origin::default(),
            now,
        )
        .await
        .unwrap();
        (company.id, token.token)
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    /// Unit `A` (location `dt`) rented by Jane (+15551234567), pushed with the API token `pms`.
    pub async fn unit_rented_by_jane(&self, pms: &str) {
        let synced = self
            .patch(
                "/units",
                pms,
                json!({"units": [{"crm_unit_id": "A", "crm_location_id": "dt"}]}),
            )
            .await;
        assert_eq!(synced.status, StatusCode::OK);
        let rented = self
            .put(
                "/units/A/tenancy",
                pms,
                json!({"crm_tenant_id": "T", "name": "Jane", "phone": "+15551234567"}),
            )
            .await;
        assert_eq!(rented.status, StatusCode::OK);
    }

    /// `POST /auth/phone` for a US number (`country_code` 1).
    pub async fn request_code(&self, national: &str) -> TestResponse {
        self.post(
            "/auth/phone",
            None,
            json!({"country_code": "1", "phone_number": national}),
        )
        .await
    }

    /// Runs the webhook delivery worker of `serve` for this app (stopped when the test ends).
    pub fn start_deliveries(&self) -> tokio::task::JoinHandle<()> {
        kiss_auth::app::deliveries::spawn(self.state.clone())
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        use kiss_auth::infra::clock::Clock;
        self.clock.now()
    }

    /// The company behind an API token, as the server's lookup finds it (with nothing remembered).
    pub async fn authenticate_api_token(
        &self,
        token: &str,
    ) -> Option<kiss_auth::services::auth::CompanyAuth> {
        let accepted = kiss_auth::services::auth::authenticate_api(
            &self.db,
            &self.state.hasher,
            &kiss_auth::services::auth::ApiTokenCache::default(),
            token,
            self.clock_now(),
        )
        .await
        .unwrap()?;
        assert!(accepted.confirmed_live, "a lookup confirms the token live");
        Some(accepted.auth)
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

/// Creates an admin with `ADMIN_PASSWORD` through the library (a super admin without a company).
pub async fn create_admin(
    db: &PgPool,
    email: &str,
    company_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Admin {
    let new = NewAdmin {
        email: email.to_owned(),
        password: ADMIN_PASSWORD.to_owned(),
        company_id,
    };
    admin::create(db, new, Actor::system(), &Origin::default(), now)
        .await
        .expect("admin is created")
}

/// The URL of the database behind a test pool (for processes that need to reach it).
pub fn database_url(db: &PgPool) -> String {
    let options = db.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("test databases are named"),
    )
}

/// Starts the real binary (`serve`) on port 0 against the test database, with `env` added, and
/// returns it with its API base URL, read from the `{"listening": …}` line it prints once bound.
pub async fn start_server(db: &PgPool, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    start_server_logging_to(db, env, std::process::Stdio::inherit()).await
}

/// `start_server` with the server's log (stderr) sent to `log`.
pub async fn start_server_logging_to(
    db: &PgPool,
    env: &[(&str, &str)],
    log: std::process::Stdio,
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiss-auth"))
        .arg("serve")
        .env("DATABASE_URL", database_url(db))
        .env("KISS_BIND", "127.0.0.1:0")
        .env("KISS_APP_KEY", APP_KEY)
        .env("KISS_DATABASE_MAX_CONNECTIONS", "5")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server reports its address within 30 s")
        .unwrap()
        .expect("the server prints its address before anything else");
    // Keep reading, so the server never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let listening: Value = serde_json::from_str(&first).unwrap();
    let address = listening["listening"].as_str().unwrap();
    (child, format!("http://{address}/api/v2"))
}

/// A super admin's token issued by a server process (whose clock is the system's, not the test's):
/// `root@example.com` must exist.
pub async fn sign_in_on(base: &str) -> String {
    let signed_in = read(
        http_client()
            .post(format!("{base}/admin/sign-in"))
            .json(&json!({"email": "root@example.com", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{:?}", signed_in.body);
    signed_in.body["data"]["token"].as_str().unwrap().to_owned()
}

/// An HTTP client for tests (reqwest needs the process's TLS crypto provider installed first).
pub fn http_client() -> reqwest::Client {
    kiss_auth::infra::sms::install_crypto_provider();
    reqwest::Client::new()
}

pub async fn read(response: reqwest::Response) -> TestResponse {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body is readable");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "body is JSON, got {:?} ({status})",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    TestResponse {
        status,
        headers,
        body,
    }
}

pub const REDIS: &str = "redis://127.0.0.1:6379";

/// A Redis key prefix of this test's own, so tests never share counters.
pub fn fresh_prefix() -> String {
    format!("kiss-test-{}", uuid::Uuid::new_v4().simple())
}

/// The contract's 429 with `Retry-After: seconds`.
pub fn too_many(response: &TestResponse, seconds: u64) {
    assert_eq!(
        response.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        response.body
    );
    assert_eq!(
        response.header("retry-after"),
        Some(seconds.to_string().as_str())
    );
    assert_eq!(
        response.body,
        json!({"message": format!("Too many attempts. Please try again in {seconds} seconds.")})
    );
}

/// Runs the same checks against the in-process and the Redis backend.
pub async fn for_each_backend(db: PgPool, extra: &[(&str, &str)], test: impl AsyncFn(TestApp)) {
    for_each_backend_with_twilio(db, extra, async |app, _| test(app).await).await;
}

/// `for_each_backend` with SMS sent through a fresh fake Twilio for each backend.
pub async fn for_each_backend_with_twilio(
    db: PgPool,
    extra: &[(&str, &str)],
    test: impl AsyncFn(TestApp, FakeTwilio),
) {
    let prefix = fresh_prefix();
    for backend in ["memory", "redis"] {
        let twilio = FakeTwilio::start().await;
        let mut vars = vec![
            ("KISS_RATE_LIMIT_BACKEND", backend),
            ("REDIS_URL", REDIS),
            ("KISS_RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
        ];
        vars.extend(twilio.env());
        vars.extend_from_slice(extra);
        // Both apps share the database: the second one starts from what the first left.
        test(spawn_app_with(db.clone(), &vars).await, twilio).await;
        sqlx::query("TRUNCATE companies, people, otp_challenges CASCADE")
            .execute(&db)
            .await
            .unwrap();
    }
}

/// A client whose requests come from another loopback address.
pub fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    kiss_auth::infra::sms::install_crypto_provider();
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

/// The keys of a JSON object, sorted.
pub fn sorted_keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

/// The Prometheus text a server serves at `<root>/metrics`.
pub async fn metrics_text(root: &str) -> String {
    http_client()
        .get(format!("{root}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
