//! Load generator for `bench/run.sh`: drives a running kiss-auth over loopback and prints a
//! Markdown table. Targets are read by people from the table; nothing here asserts timings.
//!
//! Environment: BENCH_URL (e.g. http://127.0.0.1:18080/api/v2), BENCH_TOKEN (an API token),
//! BENCH_SECONDS (measured seconds per throughput scenario, default 10), BENCH_CONCURRENCY (32).
//! With BENCH_SOAK_SECONDS set (`bench/soak.sh`), it runs the mixed soak load instead and prints
//! the answers it got by kind and status. With BENCH_SEED_TOKENS=<file> it only seeds the units of
//! the single-unit scenario and BENCH_PHONES (default 4,000) tenant logins, writes their tenant
//! tokens to the file (one per line) and exits, for the wrk scenarios of `bench/run.sh`; with
//! BENCH_ONLY=bulk it runs the bulk scenarios only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

struct Row {
    scenario: String,
    requests: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    errors: usize,
}

impl Row {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("BENCH_URL").context("BENCH_URL is required")?;
    let token = std::env::var("BENCH_TOKEN").context("BENCH_TOKEN is required")?;
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    kiss_auth::infra::sms::install_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .build()?;
    let bench = Bench {
        client,
        base,
        token,
    };

    if let Some(soak_seconds) = std::env::var("BENCH_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return bench
            .soak(Duration::from_secs(soak_seconds), concurrency)
            .await;
    }

    if let Ok(file) = std::env::var("BENCH_SEED_TOKENS") {
        let phones = std::env::var("BENCH_PHONES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4_000);
        return bench.seed_for_wrk(&file, phones, concurrency).await;
    }
    let only_bulk = std::env::var("BENCH_ONLY").is_ok_and(|only| only == "bulk");

    let mut rows = Vec::new();
    for (scenario, prefix, count, runs) in [
        ("bulk PATCH 1,000 units (create)", "b1k", 1_000, 1),
        ("bulk PATCH 1,000 units (update)", "b1k", 1_000, 10),
        ("bulk PATCH 10,000 units (create)", "b10k", 10_000, 1),
        ("bulk PATCH 10,000 units (update)", "b10k", 10_000, 5),
    ] {
        rows.push(bench.bulk(scenario, prefix, count, runs).await?);
    }
    if only_bulk {
        print_table(&rows);
        return Ok(());
    }
    // Saturated (throughput) and one connection at a time (the latency a key adds).
    for (connections, with_key) in [
        (concurrency, false),
        (concurrency, true),
        (1, false),
        (1, true),
    ] {
        rows.push(
            bench
                .single_patch(connections, Duration::from_secs(seconds), with_key)
                .await?,
        );
    }

    // The tenant side: logins by OTP (a fake SMS provider: the webhook sink), then access reads.
    let sink = SmsSink::start().await?;
    let phones = 4_000;
    bench.seed_tenants(phones, concurrency).await?;
    let tokens = Mutex::new(Vec::new());
    rows.push(bench.otp_login(&sink, concurrency, phones, &tokens).await);
    let tokens = tokens.into_inner().unwrap();
    if tokens.is_empty() {
        bail!("no OTP login succeeded");
    }
    rows.push(
        bench
            .tenant_access(&tokens, concurrency, Duration::from_secs(seconds))
            .await,
    );

    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| scenario | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            row.scenario,
            row.requests,
            row.errors,
            row.requests as f64 / row.seconds,
            row.percentile(0.50),
            row.percentile(0.90),
            row.percentile(0.99),
            row.percentile(1.0),
        );
    }
}

struct Bench {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Bench {
    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<u16> {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok(status)
    }

    /// Sequential bulk PATCHes of `count` units (ids `{prefix}-N`), alternating their status.
    async fn bulk(
        &self,
        scenario: &str,
        prefix: &str,
        count: usize,
        runs: usize,
    ) -> anyhow::Result<Row> {
        let mut latencies = Vec::new();
        let mut errors = 0;
        let started = Instant::now();
        for run in 0..runs {
            let status = if run % 2 == 0 { "rented" } else { "available" };
            let units: Vec<Value> = (0..count)
                .map(|i| {
                    json!({"crm_unit_id": format!("{prefix}-{i:06}"), "crm_location_id": format!("loc-{}", i % 25),
                           "location_name": format!("Location {}", i % 25), "size": "10x10", "status": status})
                })
                .collect();
            let body = json!({"units": units});
            let sent = Instant::now();
            let code = self.send(reqwest::Method::PATCH, "/units", &body).await?;
            latencies.push(sent.elapsed());
            if code != 200 {
                errors += 1;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        latencies.sort();
        Ok(Row {
            scenario: scenario.to_owned(),
            requests: runs,
            seconds,
            latencies,
            errors,
        })
    }

    /// `concurrency` connections PATCHing single units as fast as answers come, for `duration`
    /// after a two-second warm-up; with `with_key`, each request carries a fresh Idempotency-Key.
    async fn single_patch(
        &self,
        concurrency: usize,
        duration: Duration,
        with_key: bool,
    ) -> anyhow::Result<Row> {
        self.seed_units((0..1000).map(
            |i| json!({"crm_unit_id": format!("single-{i:04}"), "crm_location_id": "single"}),
        ))
        .await?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let key = if with_key { ", Idempotency-Key" } else { "" };
        let scenario = format!("single-unit PATCH{key}, {concurrency} connections");
        Ok(
            closed_loop(scenario, concurrency, Until::Elapsed(duration), |i| {
                let mut request = self
                    .client
                    .patch(format!("{}/units/single-{:04}", self.base, i % 1000))
                    .bearer_auth(&self.token)
                    .header("content-type", "application/json")
                    .body(
                        json!({"status": if i % 2 == 0 { "rented" } else { "available" }})
                            .to_string(),
                    );
                if with_key {
                    request = request.header("idempotency-key", format!("{run}-{i}"));
                }
                async move { ok(request.send().await).await }
            })
            .await,
        )
    }

    /// Creates (or updates) the units in one bulk request.
    async fn seed_units(&self, units: impl Iterator<Item = Value>) -> anyhow::Result<()> {
        let units: Vec<Value> = units.collect();
        if self
            .send(reqwest::Method::PATCH, "/units", &json!({"units": units}))
            .await?
            != 200
        {
            bail!("could not seed {} units", units.len());
        }
        Ok(())
    }

    /// Gives `count` tenants (one unit each, phones +1 555 … distinct) for the tenant scenarios.
    async fn seed_tenants(&self, count: usize, concurrency: usize) -> anyhow::Result<()> {
        self.seed_units((0..count).map(|i| {
            json!({"crm_unit_id": format!("tenant-{i:05}"), "crm_location_id": "tenants",
                   "location_name": "Bench Storage"})
        }))
        .await?;
        let row = closed_loop(
            "seed tenancies".into(),
            concurrency,
            Until::Count(count),
            |i| {
                let request = self
                    .client
                    .put(format!("{}/units/tenant-{i:05}/tenancy", self.base))
                    .bearer_auth(&self.token)
                    .json(
                        &json!({"crm_tenant_id": format!("T{i}"), "name": "Bench Tenant",
                              "phone": phone(i), "access_code": "4321"}),
                    );
                async move { ok(request.send().await).await }
            },
        )
        .await;
        if row.errors > 0 {
            bail!("{} tenancies could not be seeded", row.errors);
        }
        Ok(())
    }

    /// One login per iteration, each with a phone of its own (cooldown and limits are per phone):
    /// `POST /auth/phone`, the code read from the SMS webhook sink, `POST /auth/verify-otp`.
    async fn otp_login(
        &self,
        sink: &SmsSink,
        concurrency: usize,
        phones: usize,
        tokens: &Mutex<Vec<String>>,
    ) -> Row {
        let scenario = format!("OTP send + verify (one login), {concurrency} connections");
        closed_loop(scenario, concurrency, Until::Count(phones), |i| {
            let client = self.client.clone();
            let base = self.base.clone();
            async move {
                let national = &phone(i)[2..];
                let body = json!({"country_code": "1", "phone_number": national});
                let sent = client
                    .post(format!("{base}/auth/phone"))
                    .json(&body)
                    .send()
                    .await;
                if !ok(sent).await {
                    return false;
                }
                let Some(code) = sink.code_for(&phone(i)) else {
                    return false;
                };
                let verify = json!({"country_code": "1", "phone_number": national, "otp": code});
                let Ok(response) = client
                    .post(format!("{base}/auth/verify-otp"))
                    .json(&verify)
                    .send()
                    .await
                else {
                    return false;
                };
                let Ok(answer) = response.json::<Value>().await else {
                    return false;
                };
                match answer["data"]["token"].as_str() {
                    Some(token) => {
                        tokens.lock().unwrap().push(token.to_owned());
                        true
                    }
                    None => false,
                }
            }
        })
        .await
    }

    async fn tenant_access(
        &self,
        tokens: &[String],
        concurrency: usize,
        duration: Duration,
    ) -> Row {
        let scenario = format!("GET /tenant/access, {concurrency} connections");
        closed_loop(scenario, concurrency, Until::Elapsed(duration), |i| {
            let request = self
                .client
                .get(format!("{}/tenant/access", self.base))
                .bearer_auth(&tokens[i % tokens.len()]);
            async move { ok(request.send().await).await }
        })
        .await
    }
}

impl Bench {
    /// The data of the wrk scenarios: units `single-0000…0999`, and `phones` tenants logged in,
    /// whose tokens are written to `file`.
    async fn seed_for_wrk(
        &self,
        file: &str,
        phones: usize,
        concurrency: usize,
    ) -> anyhow::Result<()> {
        self.seed_units((0..1000).map(
            |i| json!({"crm_unit_id": format!("single-{i:04}"), "crm_location_id": "single"}),
        ))
        .await?;
        let sink = SmsSink::start().await?;
        self.seed_tenants(phones, concurrency).await?;
        let tokens = Mutex::new(Vec::new());
        let row = self.otp_login(&sink, concurrency, phones, &tokens).await;
        let tokens = tokens.into_inner().unwrap();
        if tokens.len() != phones {
            bail!("{} of {phones} logins failed", row.errors);
        }
        std::fs::write(file, tokens.join("\n") + "\n")?;
        Ok(())
    }

    /// Mixed load for `duration` on `concurrency` workers: single-unit and bulk PMS writes,
    /// tenant reads, OTP logins and some bad input (malformed JSON, a forged token, an invalid
    /// bulk body). Prints every answer by kind and status; any 5xx is a failure of the soak.
    async fn soak(&self, duration: Duration, concurrency: usize) -> anyhow::Result<()> {
        let sink = SmsSink::start().await?;
        let phones = 2_000;
        self.seed_tenants(phones, concurrency).await?;
        self.seed_units((0..1000).map(
            |i| json!({"crm_unit_id": format!("single-{i:04}"), "crm_location_id": "single"}),
        ))
        .await?;
        let tokens = Mutex::new(Vec::new());
        self.otp_login(&sink, concurrency, 200, &tokens).await;
        let tokens = tokens.into_inner().unwrap();
        if tokens.is_empty() {
            bail!("no OTP login succeeded");
        }

        let answers: Mutex<HashMap<(&'static str, String), usize>> = Mutex::default();
        let started = Instant::now();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let worker = || async {
            while started.elapsed() < duration {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (kind, request) = self.soak_request(i, &tokens, &sink).await;
                let status = match request {
                    Some(Ok(response)) => {
                        let status = response.status().as_u16().to_string();
                        let _ = response.bytes().await;
                        status
                    }
                    Some(Err(_)) => "connection error".into(),
                    None => continue,
                };
                *answers.lock().unwrap().entry((kind, status)).or_default() += 1;
            }
        };
        futures_join((0..concurrency).map(|_| worker())).await;

        let answers = answers.into_inner().unwrap();
        let mut rows: Vec<_> = answers.iter().collect();
        rows.sort();
        println!("| request | status | count |");
        println!("| --- | --- | ---: |");
        for ((kind, status), count) in &rows {
            println!("| {kind} | {status} | {count} |");
        }
        let failures: usize = answers
            .iter()
            .filter(|((_, status), _)| status.starts_with('5') || status == "connection error")
            .map(|(_, count)| count)
            .sum();
        let total: usize = answers.values().sum();
        println!(
            "\n{total} requests in {:.0} s, {failures} answered 5xx or failed",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The `i`-th request of the soak mix; `None` when there is nothing to send this turn.
    async fn soak_request(
        &self,
        i: usize,
        tokens: &[String],
        sink: &SmsSink,
    ) -> (&'static str, Option<reqwest::Result<reqwest::Response>>) {
        let pms = |method: reqwest::Method, path: String| {
            self.client
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
        };
        let status = if i.is_multiple_of(2) {
            "rented"
        } else {
            "available"
        };
        match i % 20 {
            0..=6 => {
                let body = json!({"status": status}).to_string();
                let request = pms(
                    reqwest::Method::PATCH,
                    format!("/units/single-{:04}", i % 1000),
                );
                ("single PATCH", Some(request.body(body).send().await))
            }
            7..=12 => {
                let request = self
                    .client
                    .get(format!("{}/tenant/access", self.base))
                    .bearer_auth(&tokens[i % tokens.len()]);
                ("tenant read", Some(request.send().await))
            }
            13 => {
                let units: Vec<Value> = (0..100)
                    .map(|u| json!({"crm_unit_id": format!("single-{:04}", (i + u) % 1000), "status": status}))
                    .collect();
                let body = json!({"units": units}).to_string();
                (
                    "bulk PATCH 100",
                    Some(
                        pms(reqwest::Method::PATCH, "/units".into())
                            .body(body)
                            .send()
                            .await,
                    ),
                )
            }
            14 => {
                let request = pms(reqwest::Method::PATCH, "/units/single-0001".into());
                (
                    "malformed JSON",
                    Some(request.body("{\"status\": ").send().await),
                )
            }
            15 => {
                let request = self
                    .client
                    .get(format!("{}/units", self.base))
                    .bearer_auth("kat_00000000-0000-0000-0000-000000000000.forged");
                ("forged token", Some(request.send().await))
            }
            16 => {
                let body = json!({"units": [{"crm_unit_id": "", "status": "sold"}]}).to_string();
                (
                    "invalid bulk",
                    Some(
                        pms(reqwest::Method::PATCH, "/units".into())
                            .body(body)
                            .send()
                            .await,
                    ),
                )
            }
            _ => {
                // A login: the code requested, then verified (cooldown and limits are per phone,
                // so a phone asked again too soon gets its 429, which is part of the mix).
                let phone_index = 200 + i % 1_800;
                let national = phone(phone_index)[2..].to_owned();
                let sent = self
                    .client
                    .post(format!("{}/auth/phone", self.base))
                    .json(&json!({"country_code": "1", "phone_number": national}))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        let Some(code) = sink.code_for(&phone(phone_index)) else {
                            return ("OTP login", None);
                        };
                        let verify = self
                            .client
                            .post(format!("{}/auth/verify-otp", self.base))
                            .json(&json!({"country_code": "1", "phone_number": national, "otp": code}))
                            .send()
                            .await;
                        ("OTP verify", Some(verify))
                    }
                    other => ("OTP send", Some(other)),
                }
            }
        }
    }
}

fn phone(i: usize) -> String {
    format!("+1555{:07}", i)
}

/// Whether a request answered 2xx, its body read.
async fn ok(result: reqwest::Result<reqwest::Response>) -> bool {
    match result {
        Ok(response) => {
            let success = response.status().is_success();
            response.bytes().await.is_ok() && success
        }
        Err(_) => false,
    }
}

/// When a closed loop stops.
#[derive(Clone, Copy)]
enum Until {
    /// After a two-second warm-up (not measured) and then this long.
    Elapsed(Duration),
    /// After request `i` for every i below this (all measured).
    Count(usize),
}

/// Runs `request(i)` on `concurrency` workers, each sending its next request when the previous
/// answers, until `until`.
async fn closed_loop<'a, F, Fut>(
    scenario: String,
    concurrency: usize,
    until: Until,
    request: F,
) -> Row
where
    F: Fn(usize) -> Fut + Sync,
    Fut: std::future::Future<Output = bool> + 'a,
{
    let warm_up = match until {
        Until::Elapsed(_) => Duration::from_secs(2),
        Until::Count(_) => Duration::ZERO,
    };
    let start = Instant::now();
    let workers = (0..concurrency).map(|worker| {
        let request = &request;
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = worker;
            while match until {
                Until::Elapsed(duration) => start.elapsed() < warm_up + duration,
                Until::Count(total) => i < total,
            } {
                let sent = Instant::now();
                let success = request(i).await;
                i += concurrency;
                if sent.duration_since(start) >= warm_up {
                    latencies.push(sent.elapsed());
                    errors += usize::from(!success);
                }
            }
            (latencies, errors)
        }
    });
    let results = futures_join(workers).await;
    let seconds = match until {
        Until::Elapsed(duration) => duration.as_secs_f64(),
        Until::Count(_) => start.elapsed().as_secs_f64(),
    };
    collect(scenario, seconds, results)
}

fn collect(scenario: String, seconds: f64, results: Vec<(Vec<Duration>, usize)>) -> Row {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for (mut l, e) in results {
        latencies.append(&mut l);
        errors += e;
    }
    latencies.sort();
    Row {
        scenario,
        requests: latencies.len(),
        seconds,
        latencies,
        errors,
    }
}

/// Polls the futures together on this task (the workers borrow the benchmark's state).
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Receives the webhook SMS provider's `{"to", "body"}` and keeps the last code per phone.
#[derive(Clone, Default)]
struct SmsSink(Arc<Mutex<HashMap<String, String>>>);

impl SmsSink {
    /// A sink listening on BENCH_SMS_PORT (default 18081), where the server's webhook posts.
    async fn start() -> anyhow::Result<Self> {
        let sink = SmsSink::default();
        let port: u16 = std::env::var("BENCH_SMS_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(18081);
        sink.serve(port).await?;
        Ok(sink)
    }

    async fn serve(&self, port: u16) -> anyhow::Result<()> {
        let sink = self.clone();
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |axum::Json(message): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    let to = message["to"].as_str().unwrap_or_default().to_owned();
                    let code = message["body"]
                        .as_str()
                        .unwrap_or_default()
                        .split(|c: char| !c.is_ascii_digit())
                        .find(|word| word.len() == 6)
                        .unwrap_or_default()
                        .to_owned();
                    sink.0.lock().unwrap().insert(to, code);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(())
    }

    fn code_for(&self, phone: &str) -> Option<String> {
        self.0.lock().unwrap().get(phone).cloned()
    }
}
