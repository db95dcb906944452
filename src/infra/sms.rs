//! Sending SMS through the configured provider: `log` (development), `twilio` (its real Messages
//! API) or `webhook` (POST `{"to", "body"}` as JSON, signed with `X-Kiss-Signature` when a
//! secret is configured).

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;

use super::config::SmsProvider;
use super::crypto::signature_header;
use crate::domain::phone::PhoneE164;

/// How long a provider may take before the send counts as failed.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// reqwest is built without a bundled TLS crypto provider (to keep one crypto library, ring);
/// this installs ring's before any HTTP client is built. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Clone)]
pub struct SmsSender {
    provider: SmsProvider,
    client: reqwest::Client,
}

/// The provider did not accept the message. Logged; the client sees a 502.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The URL is left out: a webhook's can carry a credential in its query string.
    #[error("the SMS provider could not be reached: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("the SMS provider refused the message with status {status}: {detail}")]
    Refused { status: u16, detail: String },
}

impl SmsSender {
    pub fn new(provider: SmsProvider) -> Self {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("kiss-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        SmsSender { provider, client }
    }

    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// Sends `body` to `to`; `now` dates the webhook signature.
    pub async fn send(
        &self,
        to: &PhoneE164,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SmsError> {
        let request = match &self.provider {
            SmsProvider::Log => {
                tracing::info!(to = %to, message = body, "SMS (log provider, development only)");
                return Ok(());
            }
            SmsProvider::Twilio {
                account_sid,
                auth_token,
                from,
                api_base,
            } => self
                .client
                .post(format!(
                    "{api_base}/2010-04-01/Accounts/{account_sid}/Messages.json"
                ))
                .basic_auth(account_sid, Some(auth_token.expose_secret()))
                .form(&[("To", to.as_str()), ("From", from), ("Body", body)]),
            SmsProvider::Webhook { url, secret } => {
                let json = serde_json::json!({"to": to.as_str(), "body": body}).to_string();
                let mut request = self
                    .client
                    .post(url.expose_secret())
                    .header(reqwest::header::CONTENT_TYPE, "application/json");
                if let Some(secret) = secret {
                    let signature = signature_header(
                        secret.expose_secret().as_bytes(),
                        now.timestamp(),
                        json.as_bytes(),
                    );
                    request = request.header("x-kiss-signature", signature);
                }
                request.body(json)
            }
        };
        let response = request
            .send()
            .await
            .map_err(|err| SmsError::Transport(err.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Twilio explains a refusal in a JSON body ({"code", "message"}); keep a short excerpt.
        let detail: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Err(SmsError::Refused {
            status: status.as_u16(),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transport_error_does_not_carry_the_webhook_url() {
        let sender = SmsSender::new(SmsProvider::Webhook {
            url: "http://127.0.0.1:1/send?key=hook-secret-5"
                .to_owned()
                .into(),
            secret: None,
        });
        let phone = PhoneE164::parse("+15551234567").unwrap();
        let err = sender
            .send(&phone, "Your code is 123456", Utc::now())
            .await
            .unwrap_err();
        for rendered in [err.to_string(), format!("{err:?}")] {
            assert!(!rendered.contains("hook-secret-5"), "{rendered}");
            assert!(!rendered.contains("127.0.0.1:1/send"), "{rendered}");
        }
    }
}
