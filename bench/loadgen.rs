//! Load generator for `bench/run.sh`: drives a running kiss-auth over loopback and prints a
//! Markdown table. Targets are read by people from the table; nothing here asserts timings.
//!
//! Environment: BENCH_URL (e.g. http://127.0.0.1:18080/api/v2), BENCH_TOKEN (an API token),
//! BENCH_SECONDS (measured seconds per throughput scenario, default 10), BENCH_CONCURRENCY (32).

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
    kiss_auth::sms::install_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .build()?;
    let bench = Bench {
        client,
        base,
        token,
    };

    let mut rows = Vec::new();
    rows.push(
        bench
            .bulk("bulk PATCH 1,000 units (create)", "b1k", 1_000, 1)
            .await?,
    );
    rows.push(
        bench
            .bulk("bulk PATCH 1,000 units (update)", "b1k", 1_000, 10)
            .await?,
    );
    rows.push(
        bench
            .bulk("bulk PATCH 10,000 units (create)", "b10k", 10_000, 1)
            .await?,
    );
    rows.push(
        bench
            .bulk("bulk PATCH 10,000 units (update)", "b10k", 10_000, 5)
            .await?,
    );
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

    println!();
    println!("| scenario | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
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
    Ok(())
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
        let units: Vec<Value> = (0..1000)
            .map(|i| json!({"crm_unit_id": format!("single-{i:04}"), "crm_location_id": "single"}))
            .collect();
        if self
            .send(reqwest::Method::PATCH, "/units", &json!({"units": units}))
            .await?
            != 200
        {
            bail!("could not seed the units for the single-unit scenario");
        }

        let warm_up = Duration::from_secs(2);
        let run = uuid::Uuid::new_v4().simple().to_string();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let client = self.client.clone();
            let base = self.base.clone();
            let token = self.token.clone();
            let run = run.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                let mut i = worker;
                while start.elapsed() < warm_up + duration {
                    let path = format!("{base}/units/single-{:04}", i % 1000);
                    let status = if i % 2 == 0 { "rented" } else { "available" };
                    let body = json!({"status": status}).to_string();
                    i += concurrency;
                    let sent = Instant::now();
                    let mut request = client
                        .patch(&path)
                        .bearer_auth(&token)
                        .header("content-type", "application/json");
                    if with_key {
                        request = request.header("idempotency-key", format!("{run}-{i}"));
                    }
                    let result = request.body(body).send().await;
                    let ok = match result {
                        Ok(response) => {
                            let ok = response.status().as_u16() == 200;
                            ok && response.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    if sent.duration_since(start) >= warm_up {
                        latencies.push(sent.elapsed());
                        if !ok {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (mut l, e) = task.await?;
            latencies.append(&mut l);
            errors += e;
        }
        latencies.sort();
        let key = if with_key { ", Idempotency-Key" } else { "" };
        Ok(Row {
            scenario: format!("single-unit PATCH{key}, {concurrency} connections"),
            requests: latencies.len(),
            seconds: duration.as_secs_f64(),
            latencies,
            errors,
        })
    }
}
