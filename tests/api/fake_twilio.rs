//! A local stand-in for Twilio's Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! form-encoded `To`/`From`/`Body`, HTTP Basic auth), answering as Twilio does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};

pub const ACCOUNT_SID: &str = "ACtest0123456789";
pub const AUTH_TOKEN: &str = "twilio-auth-token";
pub const FROM: &str = "+15550001111";

#[derive(Debug, Clone)]
pub struct SentSms {
    pub to: String,
    pub from: String,
    pub body: String,
}

#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<SentSms>>,
    failing: AtomicBool,
}

pub struct FakeTwilio {
    pub base_url: String,
    inbox: Arc<Inbox>,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let inbox = Arc::new(Inbox::default());
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(create_message),
            )
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeTwilio { base_url, inbox }
    }

    /// The configuration that sends SMS here.
    pub fn env(&self) -> [(&'static str, &str); 5] {
        [
            ("KISS_SMS_PROVIDER", "twilio"),
            ("KISS_TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("KISS_TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("KISS_TWILIO_FROM", FROM),
            ("KISS_TWILIO_API_BASE", self.base_url.as_str()),
        ]
    }

    /// While set, every message is refused as Twilio refuses an undeliverable one.
    pub fn set_failing(&self, failing: bool) {
        self.inbox.failing.store(failing, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<SentSms> {
        self.inbox.messages.lock().unwrap().clone()
    }

    /// The 6-digit code in the last message sent to `phone`.
    pub fn last_code(&self, phone: &str) -> String {
        let messages = self.messages();
        let message = messages
            .iter()
            .rev()
            .find(|m| m.to == phone)
            .unwrap_or_else(|| panic!("no SMS was sent to {phone}"));
        code_in(&message.body).unwrap_or_else(|| panic!("no code in {:?}", message.body))
    }
}

fn code_in(body: &str) -> Option<String> {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .map(str::to_owned)
}

async fn create_message(
    State(inbox): State<Arc<Inbox>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
    if sid != ACCOUNT_SID || !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
        );
    }
    if inbox.failing.load(Ordering::SeqCst) {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}),
            ),
        );
    }
    let (Some(to), Some(from), Some(body)) = (form.get("To"), form.get("From"), form.get("Body"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": 21604, "message": "A 'To' phone number is required.", "status": 400}),
            ),
        );
    };
    inbox.messages.lock().unwrap().push(SentSms {
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
    });
    (
        StatusCode::CREATED,
        Json(
            json!({"sid": "SM00000000000000000000000000000001", "account_sid": sid,
                    "to": to, "from": from, "body": body, "status": "queued"}),
        ),
    )
}
