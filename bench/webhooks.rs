//! Webhook delivery latency for `bench/webhooks.sh`: a local receiver is registered as a webhook
//! of the bench company for `tenancy.replaced`, then BENCH_EVENTS tenancies are written (each its
//! own unit, BENCH_CONCURRENCY at a time) and the receiver notes when each event arrives. Prints
//! the latency from the write's answer (the event is committed before it) to the receiver, and
//! from the write's request, at p50/p90/p99/max. Nothing here asserts a timing.
//!
//! Environment: BENCH_URL (…/api/v2), BENCH_TOKEN (an API token), BENCH_ADMIN (an admin token),
//! BENCH_COMPANY, BENCH_HOOK_PORT (default 18088), BENCH_EVENTS (default 1000),
//! BENCH_CONCURRENCY (default 8).

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{env_or, percentile};
use serde_json::{Value, json};

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("BENCH_URL").context("BENCH_URL is required")?;
    let token = std::env::var("BENCH_TOKEN").context("BENCH_TOKEN is required")?;
    let admin = std::env::var("BENCH_ADMIN").context("BENCH_ADMIN is required")?;
    let company = std::env::var("BENCH_COMPANY").context("BENCH_COMPANY is required")?;
    let port: u16 = env_or("BENCH_HOOK_PORT", 18088);
    let events: usize = env_or("BENCH_EVENTS", 1000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 8);
    kiss_auth::infra::sms::install_crypto_provider();
    let client = reqwest::Client::new();

    let arrivals: Arrivals = Arc::default();
    start_receiver(port, arrivals.clone()).await?;
    let hook = client
        .post(format!("{base}/companies/{company}/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["tenancy.replaced"]}))
        .send()
        .await?;
    if hook.status() != reqwest::StatusCode::CREATED {
        bail!("the webhook was not created: {}", hook.text().await?);
    }
    let units: Vec<Value> = (0..events)
        .map(|i| json!({"crm_unit_id": format!("hook-{i}"), "crm_location_id": "hooks"}))
        .collect();
    let pushed = client
        .patch(format!("{base}/units"))
        .bearer_auth(&token)
        .json(&json!({"units": units}))
        .send()
        .await?;
    if !pushed.status().is_success() {
        bail!("seeding units: {}", pushed.status());
    }

    // (sent, answered) per unit.
    let writes: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, base, token, writes, next) = (
            client.clone(),
            base.clone(),
            token.clone(),
            writes.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= events {
                    return Ok::<_, anyhow::Error>(());
                }
                let unit = format!("hook-{i}");
                let sent = Instant::now();
                let response = client
                    .put(format!("{base}/units/{unit}/tenancy"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"crm_tenant_id": format!("H{i}"), "name": "Hook Tenant",
                                  "phone": format!("+1555400{i:04}")}),
                    )
                    .send()
                    .await?;
                let answered = Instant::now();
                if !response.status().is_success() {
                    bail!("tenancy {i}: {}", response.status());
                }
                writes.lock().unwrap().insert(unit, (sent, answered));
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let written_in = started.elapsed();
    for _ in 0..200 {
        if arrivals.lock().unwrap().len() >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let writes = writes.lock().unwrap();
    let arrivals = arrivals.lock().unwrap();
    let mut from_answer = Vec::new();
    let mut from_request = Vec::new();
    for (unit, (sent, answered)) in writes.iter() {
        if let Some(arrived) = arrivals.get(unit) {
            from_answer.push(arrived.saturating_duration_since(*answered).as_secs_f64() * 1000.0);
            from_request.push(arrived.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    from_answer.sort_by(f64::total_cmp);
    from_request.sort_by(f64::total_cmp);
    println!(
        "{events} tenancy writes, {concurrency} at a time, in {:.1} s ({:.0}/s); {} events delivered",
        written_in.as_secs_f64(),
        events as f64 / written_in.as_secs_f64(),
        from_answer.len()
    );
    println!("| latency to the receiver, from | p50 ms | p90 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, samples) in [
        ("the write's answer (event committed)", &from_answer),
        ("the write's request", &from_request),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            percentile(samples, 0.5),
            percentile(samples, 0.9),
            percentile(samples, 0.99),
            percentile(samples, 1.0)
        );
    }
    Ok(())
}

/// Notes when each `tenancy.replaced` arrives, by the unit it names.
async fn start_receiver(port: u16, arrivals: Arrivals) -> anyhow::Result<()> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(event): axum::Json<Value>| {
            let arrivals = arrivals.clone();
            async move {
                let now = Instant::now();
                if let Some(unit) = event["subject"]["crm_unit_id"].as_str() {
                    arrivals
                        .lock()
                        .unwrap()
                        .entry(unit.to_owned())
                        .or_insert(now);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}
