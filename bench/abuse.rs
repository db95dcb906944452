//! Hostile clients for `bench/abuse.sh`: what an anonymous client can make kiss-auth spend.
//! Three attacks run one after another while a legitimate client keeps using the API; the script
//! reads the server's memory. Nothing here asserts a timing: it prints what happened.
//!
//! Environment: BENCH_ROOT (e.g. http://127.0.0.1:18082), BENCH_TOKEN (an API token).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PUBLIC_ROUTES: [&str; 3] = [
    "/api/v2/admin/sign-in",
    "/api/v2/auth/phone",
    "/api/v2/auth/verify-otp",
];
const BIG_BODY: usize = 16 * 1024 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::env::var("BENCH_ROOT").context("BENCH_ROOT is required")?;
    let token = std::env::var("BENCH_TOKEN").context("BENCH_TOKEN is required")?;
    let address = root.trim_start_matches("http://").to_owned();
    kiss_auth::infra::sms::install_crypto_provider();

    let legit = Legit::start(root.clone(), token);

    let started = Instant::now();
    let answers = big_bodies(&address).await;
    println!(
        "50 concurrent 16 MiB bodies to each public route: {answers} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let (opened, closed) = half_open(&address, 1_000).await;
    println!(
        "{opened} half-open connections (half a header each): {closed} closed by the server within {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let statuses = random_requests(&root, 10_000).await;
    println!(
        "10,000 requests with random methods and paths in {:.1} s: {statuses}",
        started.elapsed().as_secs_f64()
    );

    let (ok, failed) = legit.stop().await;
    println!("legitimate requests meanwhile: {ok} succeeded, {failed} failed");
    Ok(())
}

/// A PMS read and a health check every 50 ms for the whole run.
struct Legit {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl Legit {
    fn start(root: String, token: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut failed) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                for request in [
                    client
                        .get(format!("{root}/api/v2/units"))
                        .bearer_auth(&token),
                    client.get(format!("{root}/healthz")),
                ] {
                    match request.timeout(Duration::from_secs(10)).send().await {
                        Ok(response) if response.status().is_success() => ok += 1,
                        _ => failed += 1,
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, failed)
        });
        Legit { stop, task }
    }

    async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or((0, 0))
    }
}

/// 50 clients per public route, each sending a 16 MiB `{"a":[0,0,…]}` as fast as the server takes
/// it: half declare the length, half send it chunked. Returns the status lines counted.
async fn big_bodies(address: &str) -> String {
    let tasks: Vec<_> = PUBLIC_ROUTES
        .iter()
        .flat_map(|route| (0..50).map(move |i| (*route, i % 2 == 0)))
        .map(|(route, chunked)| {
            let address = address.to_owned();
            tokio::spawn(async move { send_big_body(&address, route, chunked).await })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        let status = task.await.unwrap_or_else(|_| "panicked".into());
        *statuses.entry(status).or_default() += 1;
    }
    format!("{statuses:?}")
}

async fn send_big_body(address: &str, route: &str, chunked: bool) -> String {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return "connect failed".into();
    };
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {BIG_BODY}")
    };
    let head = format!(
        "POST {route} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return "refused headers".into();
    }
    let piece = "0,".repeat(32 * 1024);
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let mut sent = 0;
        let mut next = "{\"a\":[".to_owned();
        while sent < BIG_BODY {
            let data = if chunked {
                format!("{:x}\r\n{next}\r\n", next.len())
            } else {
                next.clone()
            };
            if writer.write_all(data.as_bytes()).await.is_err() {
                return;
            }
            sent += next.len();
            next.clone_from(&piece);
        }
    });
    let mut answer = [0u8; 12];
    let status =
        match tokio::time::timeout(Duration::from_secs(60), reader.read_exact(&mut answer)).await {
            Ok(Ok(_)) => String::from_utf8_lossy(&answer[9..12]).into_owned(),
            Ok(Err(_)) => "closed without answer".into(),
            Err(_) => "no answer in 60 s".into(),
        };
    writing.abort();
    status
}

/// Opens `count` connections that send half a request header and then nothing; returns how many
/// opened and how many the server closed (within its header timeout, plus a margin).
async fn half_open(address: &str, count: usize) -> (usize, usize) {
    let mut streams = Vec::new();
    for _ in 0..count {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            continue;
        };
        if stream
            .write_all(b"GET /api/v2/units HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            .await
            .is_ok()
        {
            streams.push(stream);
        }
    }
    let opened = streams.len();
    let closed = Arc::new(AtomicUsize::new(0));
    let waits: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(30), async {
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                });
                if read.await.is_ok() {
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for wait in waits {
        let _ = wait.await;
    }
    (opened, closed.load(Ordering::Relaxed))
}

/// `count` requests, 64 at a time, each with a random method (standard or made up) and a random
/// path; returns the statuses counted.
async fn random_requests(root: &str, count: usize) -> String {
    let client = reqwest::Client::new();
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        usize,
    >::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (client, root, statuses, next) = (
                client.clone(),
                root.to_owned(),
                statuses.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let method = random_method();
                    let path = random_path();
                    let status = match client
                        .request(method, format!("{root}{path}"))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                    {
                        Ok(response) => response.status().as_u16().to_string(),
                        Err(_) => "error".into(),
                    };
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let statuses = statuses.lock().unwrap();
    format!("{statuses:?}")
}

fn random_method() -> reqwest::Method {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    if rand::random_range(0..2) == 0 {
        return reqwest::Method::from_bytes(KNOWN[rand::random_range(0..KNOWN.len())].as_bytes())
            .unwrap_or(reqwest::Method::GET);
    }
    let length = rand::random_range(1..200);
    let made_up: String = (0..length)
        .map(|_| char::from(b'A' + rand::random_range(0..26u8)))
        .collect();
    reqwest::Method::from_bytes(made_up.as_bytes()).unwrap_or(reqwest::Method::GET)
}

fn random_path() -> String {
    const PREFIXES: [&str; 6] = [
        "/api/v2/units/",
        "/api/v2/companies/",
        "/api/v2/tenant/units/",
        "/api/v2/",
        "/",
        "/metrics/",
    ];
    let prefix = PREFIXES[rand::random_range(0..PREFIXES.len())];
    let segment: String = (0..rand::random_range(1..40))
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect();
    format!("{prefix}{segment}")
}
