//! Timing of the anti-enumeration mode for `bench/enumeration.sh`: with
//! `KISS_OTP_HIDE_UNKNOWN_PHONES=true`, `POST /auth/phone` for a phone without accounts must
//! answer like one with accounts, in its body and in its latency. Seeds BENCH_PHONES tenants, then
//! alternates requests for a known and an unknown phone (one at a time, each phone once) and
//! prints both latency distributions and whether any answer differed. The SMS webhook sink
//! answers after a random delay, as a real provider's API does. Nothing here asserts a timing.
//!
//! Environment: BENCH_URL (…/api/v2), BENCH_TOKEN (an API token), BENCH_SMS_PORT (the sink),
//! BENCH_PHONES (default 200), BENCH_SMS_DELAY_MS (`min-max`, default 60-180).

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{env_or, percentile};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("BENCH_URL").context("BENCH_URL is required")?;
    let token = std::env::var("BENCH_TOKEN").context("BENCH_TOKEN is required")?;
    let sms_port: u16 = env_or("BENCH_SMS_PORT", 18085);
    let phones: usize = env_or("BENCH_PHONES", 200);
    let delay = std::env::var("BENCH_SMS_DELAY_MS").unwrap_or_else(|_| "60-180".into());
    let (min_ms, max_ms) = delay
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .context("BENCH_SMS_DELAY_MS is `min-max` in milliseconds")?;
    kiss_auth::infra::sms::install_crypto_provider();
    start_sink(sms_port, min_ms, max_ms).await?;
    let client = reqwest::Client::new();
    seed(&client, &base, &token, phones).await?;

    // A few rounds first, so the server has timed some real sends (and connections are warm).
    let warm_up = 10;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let mut different = 0;
    for i in 0..phones + warm_up {
        let (known_answer, known_ms) = request_code(&client, &base, &known_phone(i)).await?;
        let (unknown_answer, unknown_ms) = request_code(&client, &base, &unknown_phone(i)).await?;
        if known_answer != unknown_answer {
            different += 1;
            eprintln!("answers differ: {known_answer:?} / {unknown_answer:?}");
        }
        if i >= warm_up {
            known.push(known_ms);
            unknown.push(unknown_ms);
        }
    }
    known.sort_by(f64::total_cmp);
    unknown.sort_by(f64::total_cmp);
    let (known_median, unknown_median) = (percentile(&known, 0.5), percentile(&unknown, 0.5));
    println!("SMS provider delay: uniform {min_ms}-{max_ms} ms; {phones} phones of each kind");
    println!("| phone | requests | p10 ms | p50 ms | p90 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, samples) in [
        ("with accounts (SMS sent)", &known),
        ("without accounts (nothing sent)", &unknown),
    ] {
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            samples.len(),
            percentile(samples, 0.1),
            percentile(samples, 0.5),
            percentile(samples, 0.9),
            percentile(samples, 1.0)
        );
    }
    println!(
        "median unknown / known: {:.3} ({:+.1} %); answers that differed: {different}",
        unknown_median / known_median,
        (unknown_median / known_median - 1.0) * 100.0
    );
    Ok(())
}

fn known_phone(i: usize) -> String {
    format!("+1555200{i:04}")
}

fn unknown_phone(i: usize) -> String {
    format!("+1555300{i:04}")
}

/// `POST /auth/phone`: the status and body, and the milliseconds until the whole answer arrived.
async fn request_code(
    client: &reqwest::Client,
    base: &str,
    phone: &str,
) -> anyhow::Result<((u16, Value), f64)> {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/auth/phone"))
        .json(&json!({"country_code": "1", "phone_number": &phone[2..]}))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    Ok(((status, body), started.elapsed().as_secs_f64() * 1000.0))
}

/// Units `enum-N` with tenancies for the known phones.
async fn seed(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    count: usize,
) -> anyhow::Result<()> {
    let units: Vec<Value> = (0..count)
        .map(|i| json!({"crm_unit_id": format!("enum-{i}"), "crm_location_id": "enum"}))
        .collect();
    let pushed = client
        .patch(format!("{base}/units"))
        .bearer_auth(token)
        .json(&json!({"units": units}))
        .send()
        .await?;
    if !pushed.status().is_success() {
        bail!("seeding units: {}", pushed.status());
    }
    for i in 0..count {
        let rented = client
            .put(format!("{base}/units/enum-{i}/tenancy"))
            .bearer_auth(token)
            .json(
                &json!({"crm_tenant_id": format!("E{i}"), "name": "Bench Tenant",
                          "phone": known_phone(i)}),
            )
            .send()
            .await?;
        if !rented.status().is_success() {
            bail!("seeding tenancy {i}: {}", rented.status());
        }
    }
    Ok(())
}

/// The SMS webhook's stand-in: answers `204` after a delay drawn uniformly from `min..=max` ms.
async fn start_sink(port: u16, min_ms: u64, max_ms: u64) -> anyhow::Result<()> {
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(move || async move {
            let delay = rand::random_range(min_ms..=max_ms.max(min_ms));
            tokio::time::sleep(Duration::from_millis(delay)).await;
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}
