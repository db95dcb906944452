//! Rate limits (docs/api.md, "Rate limits"): at most N requests let through in any rolling window, per scope and
//! key, in one process (`memory`) or shared by every process through Redis (`redis`). Refused
//! requests do not count. This is the counting engine; the HTTP layer (`http::rate_limit`) applies it to
//! routes and writes the `RateLimit-Policy` / `RateLimit` headers.

mod memory;
mod redis;

use std::sync::Arc;

use secrecy::ExposeSecret as _;

use crate::domain::Error;
use crate::infra::clock::SharedClock;
use crate::infra::config::{Config, RateLimit, RateLimitBackend, RateLimits};

/// What a limit is about; its name appears in the `RateLimit` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    OtpSend,
    OtpVerify,
    PmsBulk,
    PmsUnit,
    AdminSignInEmail,
    AdminSignInIp,
    /// `POST /auth/phone` per client IP.
    OtpSendIp,
    /// `POST /auth/verify-otp` per client IP.
    OtpVerifyIp,
    /// `POST /auth/phone` per phone over a day.
    OtpSendDaily,
    /// Wrong codes per phone over a day: every verification reserves a slot, and gives it back
    /// unless its code was wrong, so concurrent guesses cannot overshoot the cap.
    OtpFailedDaily,
    /// SMS sent by the whole service over a day.
    SmsBudget,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::OtpSend => "otp_send",
            Scope::OtpVerify => "otp_verify",
            Scope::PmsBulk => "pms_bulk",
            Scope::PmsUnit => "pms_unit",
            Scope::AdminSignInEmail => "admin_sign_in_email",
            Scope::AdminSignInIp => "admin_sign_in_ip",
            Scope::OtpSendIp => "otp_send_ip",
            Scope::OtpVerifyIp => "otp_verify_ip",
            Scope::OtpSendDaily => "otp_send_daily",
            Scope::OtpFailedDaily => "otp_failed_daily",
            Scope::SmsBudget => "sms_budget",
        }
    }

    /// Whether the `RateLimit` headers report the scope. A reserved slot that may be given back
    /// (a wrong-code reservation) or a service-wide count would only mislead the client.
    pub fn is_reported(self) -> bool {
        !matches!(self, Scope::OtpFailedDaily | Scope::SmsBudget)
    }

    /// Whether the scope limits requests for an SMS.
    pub fn limits_sms(self) -> bool {
        matches!(
            self,
            Scope::OtpSend | Scope::OtpSendIp | Scope::OtpSendDaily
        )
    }

    /// Whether the scope limits code verifications.
    pub fn limits_verification(self) -> bool {
        matches!(
            self,
            Scope::OtpVerify | Scope::OtpVerifyIp | Scope::OtpFailedDaily
        )
    }

    fn limit(self, limits: &RateLimits) -> RateLimit {
        match self {
            Scope::OtpSend => limits.otp_send,
            Scope::OtpVerify => limits.otp_verify,
            Scope::PmsBulk => limits.pms_bulk,
            Scope::PmsUnit => limits.pms_unit,
            Scope::AdminSignInEmail | Scope::AdminSignInIp => limits.admin_sign_in,
            Scope::OtpSendIp => limits.otp_send_ip,
            Scope::OtpVerifyIp => limits.otp_verify_ip,
            Scope::OtpSendDaily => limits.otp_send_daily,
            Scope::OtpFailedDaily => limits.otp_failed_daily,
            // Callers count against the budget only when there is one.
            Scope::SmsBudget => limits.sms_daily_budget.unwrap_or(RateLimit {
                max: u32::MAX,
                window_secs: 1,
            }),
        }
    }

    /// Scopes that guard guessable secrets refuse requests when the shared limiter cannot be
    /// reached; the PMS scopes (high-entropy tokens) let them through.
    fn fails_closed(self) -> bool {
        !matches!(self, Scope::PmsBulk | Scope::PmsUnit)
    }
}

/// One key to count a request against.
#[derive(Debug, Clone)]
pub struct Check {
    key: String,
    max: u32,
    window_ms: i64,
}

/// The entry an admitted request left in each of its keys' windows, by which it can be given
/// back (`RateLimiter::release`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    at_ms: i64,
    id: u64,
}

impl Ticket {
    /// The member a shared backend stores: unique even for requests in the same millisecond.
    fn member(&self) -> String {
        format!("{}-{:016x}", self.at_ms, self.id)
    }
}

/// A backend's answer: whether the request was admitted, and each key's state afterwards.
pub struct Outcome {
    allowed: bool,
    keys: Vec<KeyState>,
}

struct KeyState {
    /// Requests counted in the window (including this one when admitted).
    count: u32,
    /// When the oldest counted request was let through.
    oldest_ms: i64,
}

enum Backend {
    Memory(memory::MemoryBackend),
    Redis(redis::RedisBackend),
}

pub struct RateLimiter {
    backend: Backend,
    limits: RateLimits,
    clock: SharedClock,
}

/// The limiter's verdict on one request, with what the headers report.
pub struct Decision {
    pub allowed: bool,
    /// Seconds until a request would be let through (at least 1) when refused.
    pub retry_after_secs: u64,
    /// The entry an admitted request holds in each of its keys.
    pub ticket: Ticket,
    scopes: Vec<ScopeState>,
}

/// What the `RateLimit` headers say about one scope after this request.
struct ScopeState {
    scope: Scope,
    limit: RateLimit,
    remaining: u32,
    reset_secs: u64,
}

impl RateLimiter {
    pub fn new(config: &Config, clock: SharedClock) -> anyhow::Result<Self> {
        let backend = match config.rate_limit_backend {
            RateLimitBackend::Memory => Backend::Memory(memory::MemoryBackend::default()),
            RateLimitBackend::Redis => {
                let url = config
                    .redis_url
                    .as_ref()
                    .map(|url| url.expose_secret())
                    .unwrap_or_default();
                Backend::Redis(redis::RedisBackend::new(url, &config.redis_prefix)?)
            }
        };
        Ok(RateLimiter {
            backend,
            limits: config.rate_limits,
            clock,
        })
    }

    pub fn uses_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// Whether the shared backend answers (always true in memory).
    pub async fn ping(&self) -> bool {
        match &self.backend {
            Backend::Memory(_) => true,
            Backend::Redis(redis) => redis.ping().await,
        }
    }

    /// Counts the request against every key (all or none), or refuses it.
    pub async fn acquire(&self, keys: &[(Scope, String)]) -> Result<Decision, Error> {
        let now_ms = self.clock.now().timestamp_millis();
        let ticket = Ticket {
            at_ms: now_ms,
            id: rand::random(),
        };
        let checks: Vec<Check> = keys
            .iter()
            .map(|(scope, key)| self.check(*scope, key))
            .collect();
        let outcome = match &self.backend {
            Backend::Memory(memory) => memory.acquire(&checks, &ticket),
            Backend::Redis(redis) => match redis.acquire(&checks, &ticket).await {
                Ok(outcome) => outcome,
                Err(err) if keys.iter().any(|(scope, _)| scope.fails_closed()) => {
                    metrics::counter!("rate_limiter_unavailable_total", "outcome" => "refused")
                        .increment(1);
                    tracing::error!(error = %err, "rate limiter unreachable: refusing the request");
                    return Err(Error::Unavailable("rate limiter"));
                }
                Err(err) => {
                    metrics::counter!("rate_limiter_unavailable_total", "outcome" => "let_through")
                        .increment(1);
                    tracing::warn!(error = %err, "rate limiter unreachable: letting the request through");
                    return Ok(Decision {
                        allowed: true,
                        retry_after_secs: 0,
                        ticket,
                        scopes: Vec::new(),
                    });
                }
            },
        };

        let mut retry_after_ms = 0;
        let scopes = keys
            .iter()
            .zip(&checks)
            .zip(&outcome.keys)
            .map(|(((scope, _), check), state)| {
                let until_oldest_leaves = (state.oldest_ms + check.window_ms - now_ms).max(0);
                if state.count >= check.max {
                    retry_after_ms = retry_after_ms.max(until_oldest_leaves);
                }
                let remaining = check.max.saturating_sub(state.count);
                let reset_secs = if state.count == 0 {
                    0
                } else {
                    ceil_secs(until_oldest_leaves)
                };
                ScopeState {
                    scope: *scope,
                    limit: scope.limit(&self.limits),
                    remaining,
                    reset_secs,
                }
            })
            .collect();
        Ok(Decision {
            allowed: outcome.allowed,
            retry_after_secs: ceil_secs(retry_after_ms).max(1),
            ticket,
            scopes,
        })
    }

    /// Gives back the slot an admitted request took under `key`, as if it had never been counted
    /// (a reservation that turned out not to be needed). A shared backend that cannot be reached
    /// keeps the slot counted: the error is on the safe side.
    pub async fn release(&self, scope: Scope, key: &str, ticket: &Ticket) {
        let check = self.check(scope, key);
        match &self.backend {
            Backend::Memory(memory) => memory.release(&check, ticket),
            Backend::Redis(redis) => {
                if let Err(err) = redis.release(&check, ticket).await {
                    tracing::warn!(error = %err, scope = scope.name(), "could not give back a rate-limit slot");
                }
            }
        }
    }

    fn check(&self, scope: Scope, key: &str) -> Check {
        let limit = scope.limit(&self.limits);
        Check {
            key: format!("{}:{key}", scope.name()),
            max: limit.max,
            window_ms: i64::from(limit.window_secs) * 1000,
        }
    }
}

/// A slot an admitted request holds in one key, to keep (`keep`) or give back (`release`). One
/// dropped without either (the request was cancelled, e.g. at its deadline) is given back in the
/// background, so a cancelled request is not counted as if it had finished.
pub struct Reservation {
    limiter: Arc<RateLimiter>,
    scope: Scope,
    key: String,
    ticket: Ticket,
    settled: bool,
}

impl Reservation {
    pub fn new(limiter: Arc<RateLimiter>, scope: Scope, key: String, ticket: Ticket) -> Self {
        Reservation {
            limiter,
            scope,
            key,
            ticket,
            settled: false,
        }
    }

    pub fn keep(mut self) {
        self.settled = true;
    }

    pub async fn release(mut self) {
        self.settled = true;
        self.limiter
            .release(self.scope, &self.key, &self.ticket)
            .await;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (limiter, scope, key, ticket) = (
            self.limiter.clone(),
            self.scope,
            std::mem::take(&mut self.key),
            self.ticket.clone(),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { limiter.release(scope, &key, &ticket).await });
        }
    }
}

fn ceil_secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}

impl Decision {
    /// `RateLimit-Policy` and `RateLimit` values (draft-ietf-httpapi-ratelimit-headers), one item
    /// per scope: `"otp_send";q=5;w=60` and `"otp_send";r=4;t=60`. `None` when nothing was counted.
    pub fn header_values(&self) -> Option<(String, String)> {
        let reported: Vec<&ScopeState> = self
            .scopes
            .iter()
            .filter(|s| s.scope.is_reported())
            .collect();
        if reported.is_empty() {
            return None;
        }
        let policy: Vec<String> = reported
            .iter()
            .map(|s| {
                format!(
                    "\"{}\";q={};w={}",
                    s.scope.name(),
                    s.limit.max,
                    s.limit.window_secs
                )
            })
            .collect();
        let state: Vec<String> = reported
            .iter()
            .map(|s| {
                format!(
                    "\"{}\";r={};t={}",
                    s.scope.name(),
                    s.remaining,
                    s.reset_secs
                )
            })
            .collect();
        Some((policy.join(", "), state.join(", ")))
    }

    /// The scopes counted for this request.
    pub fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.scopes.iter().map(|s| s.scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::clock::ManualClock;

    fn limiter(vars: &[(&str, &str)]) -> Arc<RateLimiter> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let clock = SharedClock::new(ManualClock::new(chrono::Utc::now()));
        Arc::new(RateLimiter::new(&config, clock).unwrap())
    }

    async fn reserve(limiter: &Arc<RateLimiter>) -> Option<Reservation> {
        let key = "+15551234567".to_owned();
        let decision = limiter
            .acquire(&[(Scope::OtpFailedDaily, key.clone())])
            .await
            .unwrap();
        decision
            .allowed
            .then(|| Reservation::new(limiter.clone(), Scope::OtpFailedDaily, key, decision.ticket))
    }

    #[tokio::test]
    async fn a_reservation_dropped_unsettled_is_given_back() {
        let limiter = limiter(&[("KISS_OTP_MAX_FAILED_PER_DAY", "1")]);
        let kept = reserve(&limiter).await.unwrap();
        assert!(reserve(&limiter).await.is_none(), "the one slot is taken");
        // A cancelled request drops its reservation without settling it.
        drop(kept);
        tokio::task::yield_now().await;
        let again = reserve(&limiter).await.expect("the slot was given back");
        again.keep();
        assert!(
            reserve(&limiter).await.is_none(),
            "a kept slot stays counted"
        );
    }
}
