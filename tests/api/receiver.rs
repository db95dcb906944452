//! A local receiver of signed webhooks: records every request's headers and raw body, answers
//! with a status the test sets, and checks `X-Kiss-Signature` as a receiver would, with its own
//! HMAC rather than kiss-auth's code.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The signature's timestamp when `X-Kiss-Signature` is `t=<unix>,v1=<hex HMAC-SHA256 of
    /// "<t>.<raw body>">` under `secret`; `None` when it is missing or does not match.
    pub fn signed_at(&self, secret: &str) -> Option<i64> {
        let header = self.header("x-kiss-signature")?;
        let (t, v1) = header.split_once(',')?;
        let t = t.strip_prefix("t=")?;
        let v1 = v1.strip_prefix("v1=")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&self.body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (expected == v1).then(|| t.parse().ok()).flatten()
    }
}

struct Inbox {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
}

pub struct Receiver {
    pub url: String,
    inbox: Arc<Inbox>,
}

impl Receiver {
    /// Listens on a loopback port; every POST to any path is recorded and answered `200`.
    pub async fn start() -> Self {
        Self::serve_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// Receives on a listener already bound (e.g. on the port of a receiver that was down).
    pub fn serve_on(listener: tokio::net::TcpListener) -> Self {
        let inbox = Arc::new(Inbox {
            received: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
        });
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(inbox.clone());
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inbox }
    }

    /// The status every later request is answered with.
    pub fn answer_with(&self, status: u16) {
        self.inbox.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inbox
        .received
        .lock()
        .unwrap()
        .push(Received { headers, body });
    StatusCode::from_u16(inbox.status.load(Ordering::SeqCst)).unwrap()
}
