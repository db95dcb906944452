//! Configuration from the environment (and `.env`), validated once at start-up.
//!
//! Every bad or missing value names its variable and what is expected, so an operator can fix
//! a deployment from the error alone. Secret values are never echoed back.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::domain::phone::PhoneE164;

/// `KISS_ENV`: production refuses settings that are only safe on a developer's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// `KISS_SMS_PROVIDER` with the settings each provider needs. Credentials (and a webhook URL,
/// which may carry one) are secrets: `Debug` prints them redacted.
#[derive(Debug, Clone)]
pub enum SmsProvider {
    /// Writes the message to the server log (development only).
    Log,
    Twilio {
        account_sid: String,
        auth_token: SecretString,
        from: String,
        api_base: String,
    },
    Webhook {
        url: SecretString,
        /// Signs each request (`X-Kiss-Signature`) when set.
        secret: Option<SecretString>,
    },
}

impl SmsProvider {
    /// The provider's name, as metrics label it.
    pub fn name(&self) -> &'static str {
        match self {
            SmsProvider::Log => "log",
            SmsProvider::Twilio { .. } => "twilio",
            SmsProvider::Webhook { .. } => "webhook",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// At most `max` requests in any rolling window of `window_secs` seconds (`N/<seconds>s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window_secs: u32,
}

impl FromStr for RateLimit {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (max, window) = s.trim().split_once('/').ok_or(())?;
        let window = window.strip_suffix('s').ok_or(())?;
        let max: u32 = max.parse().map_err(|_| ())?;
        let window_secs: u32 = window.parse().map_err(|_| ())?;
        if max == 0 || window_secs == 0 {
            return Err(());
        }
        Ok(RateLimit { max, window_secs })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.max, self.window_secs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub otp_send: RateLimit,
    pub otp_verify: RateLimit,
    pub pms_bulk: RateLimit,
    pub pms_unit: RateLimit,
    pub admin_sign_in: RateLimit,
    /// `POST /auth/phone` per client IP.
    pub otp_send_ip: RateLimit,
    /// `POST /auth/verify-otp` per client IP.
    pub otp_verify_ip: RateLimit,
    /// `POST /auth/phone` per phone over a day.
    pub otp_send_daily: RateLimit,
    /// Wrong codes per phone over a day (`KISS_OTP_MAX_FAILED_PER_DAY` per 86400 s).
    pub otp_failed_daily: RateLimit,
    /// SMS sent by the whole service over a day; `None` without a budget.
    pub sms_daily_budget: Option<RateLimit>,
}

/// Seconds in the rolling day of the daily limits.
pub const DAY_SECS: u32 = 86_400;

/// `KISS_TEST_OTP`: fixed codes for listed phones (app-store review), until `KISS_TEST_OTP_UNTIL`.
#[derive(Clone, Default)]
pub struct TestOtps {
    codes: Vec<(String, SecretString)>,
    pub until: Option<DateTime<Utc>>,
}

impl TestOtps {
    /// The fixed code of `phone` (E.164) while test codes are in force at `now`.
    pub fn code_for(&self, phone: &str, now: DateTime<Utc>) -> Option<&str> {
        if self.until.is_some_and(|until| now >= until) {
            return None;
        }
        self.codes
            .iter()
            .find(|(listed, _)| listed == phone)
            .map(|(_, code)| code.expose_secret())
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// The phones, not their codes.
impl fmt::Debug for TestOtps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestOtps")
            .field(
                "phones",
                &self.codes.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("until", &self.until)
            .finish()
    }
}

/// The secret behind every keyed hash (tokens, OTP codes).
#[derive(Clone)]
pub struct AppKey {
    bytes: SecretBox<[u8]>,
    /// True when no key was configured (development only): a random one stands in until the
    /// database's development key replaces it (`db::keep_development_key`).
    pub ephemeral: bool,
}

impl AppKey {
    pub const MIN_BYTES: usize = 32;

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.expose_secret()
    }

    pub fn generate() -> Self {
        let mut bytes = vec![0u8; Self::MIN_BYTES];
        rand::fill(&mut bytes[..]);
        AppKey {
            bytes: bytes.into(),
            ephemeral: true,
        }
    }

    /// A key read back from storage.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= Self::MIN_BYTES).then(|| AppKey {
            bytes: bytes.into(),
            ephemeral: false,
        })
    }

    fn parse(value: &str) -> Option<Self> {
        let encoded = value.trim();
        let encoded = encoded.strip_prefix("base64:").unwrap_or(encoded);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
            .ok()?;
        Self::from_bytes(bytes)
    }
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppKey(<redacted>)")
    }
}

/// The whole configuration. Every secret in it (the app key, the database and Redis URLs, which
/// may carry passwords, the SMS provider's credentials) is wrapped so that `Debug` redacts it.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub bind: SocketAddr,
    pub app_key: AppKey,
    pub env: Environment,
    pub sms_provider: SmsProvider,
    pub otp_ttl: TimeDelta,
    pub otp_resend_cooldown: TimeDelta,
    pub tenant_token_ttl: TimeDelta,
    pub admin_token_ttl: TimeDelta,
    pub idempotency_ttl: TimeDelta,
    pub rate_limit_backend: RateLimitBackend,
    pub redis_url: Option<SecretString>,
    /// Prefix of this deployment's keys in a shared Redis.
    pub redis_prefix: String,
    pub rate_limits: RateLimits,
    pub bulk_max_units: usize,
    pub body_limit_bytes: usize,
    /// Body limit of the routes that take no token.
    pub public_body_limit_bytes: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub lock_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// ISO 3166-1 alpha-2 codes SMS may go to; empty: every country.
    pub sms_allowed_countries: Vec<String>,
    pub test_otps: TestOtps,
    /// The app's name in the SMS text.
    pub sms_app_name: Option<String>,
    /// The origin of the SMS's autofill line (`@<domain> #<code>`).
    pub sms_autofill_domain: Option<String>,
    /// `/auth/phone` answers unknown phones as known ones.
    pub otp_hide_unknown_phones: bool,
    /// How long audit events (and their webhook deliveries) are kept.
    pub audit_retention: TimeDelta,
    pub log_format: LogFormat,
    /// Things worth a warning once logging is up (e.g. a generated app key).
    pub warnings: Vec<String>,
}

/// A configuration variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/kiss_auth";

impl Config {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is not worth refusing to start over.
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let mut warnings = Vec::new();

        let env = match vars.get("KISS_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(ConfigError::new(
                    "KISS_ENV",
                    format!("expected `development` or `production`, got {other:?}"),
                ));
            }
        };

        let app_key = match vars.get("KISS_APP_KEY") {
            Some(value) => AppKey::parse(&value).ok_or_else(|| {
                ConfigError::new(
                    "KISS_APP_KEY",
                    "expected at least 32 random bytes in base64 (e.g. the output of `openssl rand -base64 32`)",
                )
            })?,
            None if env == Environment::Development => {
                warnings.push(
                    "KISS_APP_KEY is not set: using the development key kept in the database (made \
                     by the first process that needed it). Set KISS_APP_KEY before going to production."
                        .to_owned(),
                );
                AppKey::generate()
            }
            None => {
                return Err(ConfigError::new(
                    "KISS_APP_KEY",
                    "required in production: at least 32 random bytes in base64",
                ));
            }
        };

        let sms_provider = match vars.get("KISS_SMS_PROVIDER").as_deref() {
            None | Some("log") => {
                if env == Environment::Production {
                    return Err(ConfigError::new(
                        "KISS_SMS_PROVIDER",
                        "`log` writes one-time codes to the server log and is refused in production; use `twilio` or `webhook`",
                    ));
                }
                SmsProvider::Log
            }
            Some("twilio") => SmsProvider::Twilio {
                account_sid: vars.required("KISS_TWILIO_ACCOUNT_SID", "the Twilio account SID")?,
                auth_token: vars
                    .required("KISS_TWILIO_AUTH_TOKEN", "the Twilio auth token")?
                    .into(),
                from: vars
                    .required("KISS_TWILIO_FROM", "the sender number or messaging service")?,
                api_base: vars
                    .url("KISS_TWILIO_API_BASE")?
                    .unwrap_or_else(|| "https://api.twilio.com".to_owned()),
            },
            Some("webhook") => SmsProvider::Webhook {
                secret: match vars.get("KISS_SMS_WEBHOOK_SECRET") {
                    Some(secret) => Some(secret.into()),
                    None if env == Environment::Production => {
                        return Err(ConfigError::new(
                            "KISS_SMS_WEBHOOK_SECRET",
                            "required in production with KISS_SMS_PROVIDER=webhook, so the receiver can tell kiss-auth's requests from forged ones",
                        ));
                    }
                    None => None,
                },
                url: vars
                    .url("KISS_SMS_WEBHOOK_URL")?
                    .ok_or_else(|| {
                        ConfigError::new(
                            "KISS_SMS_WEBHOOK_URL",
                            "required when KISS_SMS_PROVIDER=webhook: an http(s) URL",
                        )
                    })?
                    .into(),
            },
            Some(other) => {
                return Err(ConfigError::new(
                    "KISS_SMS_PROVIDER",
                    format!("expected `log`, `twilio` or `webhook`, got {other:?}"),
                ));
            }
        };

        let rate_limit_backend = match vars.get("KISS_RATE_LIMIT_BACKEND").as_deref() {
            None | Some("memory") => RateLimitBackend::Memory,
            Some("redis") => RateLimitBackend::Redis,
            Some(other) => {
                return Err(ConfigError::new(
                    "KISS_RATE_LIMIT_BACKEND",
                    format!("expected `memory` or `redis`, got {other:?}"),
                ));
            }
        };
        let redis_url = vars.get("REDIS_URL").map(SecretString::from);
        if rate_limit_backend == RateLimitBackend::Redis && redis_url.is_none() {
            return Err(ConfigError::new(
                "REDIS_URL",
                "required when KISS_RATE_LIMIT_BACKEND=redis (e.g. redis://127.0.0.1:6379)",
            ));
        }

        let test_otps = vars.test_otps(env)?;
        let sms_daily_budget = match vars.number("KISS_SMS_DAILY_BUDGET", 0u32, 0..=100_000_000)? {
            0 => None,
            max => Some(RateLimit {
                max,
                window_secs: DAY_SECS,
            }),
        };

        let log_format = match vars.get("KISS_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "KISS_LOG_FORMAT",
                    format!("expected `pretty` or `json`, got {other:?}"),
                ));
            }
        };

        Ok(Config {
            database_url: vars
                .get("DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
                .into(),
            database_max_connections: vars.number("KISS_DATABASE_MAX_CONNECTIONS", 20, 1..=1000)?,
            bind: vars.parsed(
                "KISS_BIND",
                "127.0.0.1:8080",
                "a socket address such as 127.0.0.1:8080",
            )?,
            app_key,
            env,
            sms_provider,
            otp_ttl: vars.seconds("KISS_OTP_TTL_SECS", 300)?,
            otp_resend_cooldown: vars.seconds("KISS_OTP_RESEND_COOLDOWN_SECS", 30)?,
            tenant_token_ttl: vars.seconds("KISS_TENANT_TOKEN_TTL_SECS", 2_592_000)?,
            admin_token_ttl: vars.seconds("KISS_ADMIN_TOKEN_TTL_SECS", 43_200)?,
            idempotency_ttl: vars.seconds("KISS_IDEMPOTENCY_TTL_SECS", 86_400)?,
            rate_limit_backend,
            redis_url,
            redis_prefix: vars
                .get("KISS_RATE_LIMIT_REDIS_PREFIX")
                .unwrap_or_else(|| "kiss-auth".to_owned()),
            rate_limits: RateLimits {
                otp_send: vars.rate_limit("KISS_RATE_LIMIT_OTP_SEND", "5/60s")?,
                otp_verify: vars.rate_limit("KISS_RATE_LIMIT_OTP_VERIFY", "5/60s")?,
                pms_bulk: vars.rate_limit("KISS_RATE_LIMIT_PMS_BULK", "60/60s")?,
                pms_unit: vars.rate_limit("KISS_RATE_LIMIT_PMS_UNIT", "600/60s")?,
                admin_sign_in: vars.rate_limit("KISS_RATE_LIMIT_ADMIN_SIGN_IN", "10/60s")?,
                otp_send_ip: vars.rate_limit("KISS_RATE_LIMIT_OTP_SEND_IP", "20/3600s")?,
                otp_verify_ip: vars.rate_limit("KISS_RATE_LIMIT_OTP_VERIFY_IP", "60/3600s")?,
                otp_send_daily: vars.rate_limit("KISS_RATE_LIMIT_OTP_SEND_DAILY", "10/86400s")?,
                otp_failed_daily: RateLimit {
                    max: vars.number("KISS_OTP_MAX_FAILED_PER_DAY", 15, 1..=1_000_000)?,
                    window_secs: DAY_SECS,
                },
                sms_daily_budget,
            },
            bulk_max_units: vars.number("KISS_BULK_MAX_UNITS", 10_000, 1..=1_000_000)?,
            body_limit_bytes: vars.number("KISS_BODY_LIMIT_BYTES", 16_777_216, 1024..=1 << 30)?,
            public_body_limit_bytes: vars.number(
                "KISS_PUBLIC_BODY_LIMIT_BYTES",
                16_384,
                1024..=1 << 20,
            )?,
            header_timeout: Duration::from_secs(vars.number(
                "KISS_HEADER_TIMEOUT_SECS",
                10,
                1..=3600,
            )?),
            request_timeout: Duration::from_secs(vars.number(
                "KISS_REQUEST_TIMEOUT_SECS",
                30,
                1..=3600,
            )?),
            max_connections: vars.number("KISS_MAX_CONNECTIONS", 10_000, 1..=1_000_000)?,
            shutdown_grace: Duration::from_secs(vars.number(
                "KISS_SHUTDOWN_GRACE_SECS",
                30,
                0..=3600,
            )?),
            lock_timeout: Duration::from_millis(vars.number(
                "KISS_LOCK_TIMEOUT_MS",
                5_000,
                1..=3_600_000,
            )?),
            trusted_proxies: vars.networks("KISS_TRUSTED_PROXIES")?,
            sms_allowed_countries: vars.countries("KISS_SMS_ALLOWED_COUNTRIES")?,
            test_otps,
            sms_app_name: vars.sms_text(
                "KISS_SMS_APP_NAME",
                |c| !c.is_control(),
                "an app name of at most 40 characters on one line",
            )?,
            sms_autofill_domain: vars.sms_text(
                "KISS_SMS_AUTOFILL_DOMAIN",
                |c| c.is_ascii_alphanumeric() || c == '.' || c == '-',
                "a host name such as app.example.com (the web origin the code is bound to)",
            )?,
            otp_hide_unknown_phones: vars.flag("KISS_OTP_HIDE_UNKNOWN_PHONES")?,
            audit_retention: TimeDelta::days(vars.number(
                "KISS_AUDIT_RETENTION_DAYS",
                365,
                1..=36_500,
            )?),
            log_format,
            warnings,
        })
    }
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The value, with an empty one treated as unset (as `.env` files often leave them).
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    fn required(&self, name: &'static str, what: &str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, format!("required: {what}")))
    }

    fn url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Some(url.trim_end_matches('/').to_owned()))
            }
            // The value is not echoed: a URL can carry credentials.
            Some(_) => Err(ConfigError::new(
                name,
                "expected an http:// or https:// URL",
            )),
            None => Ok(None),
        }
    }

    fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        default: &str,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        value
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(name, format!("expected {expected}, got {value:?}")))
    }

    fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let problem = || {
            format!(
                "expected a whole number from {} to {}, got {value:?}",
                range.start(),
                range.end()
            )
        };
        let number: T = value
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(name, problem()))?;
        if !range.contains(&number) {
            return Err(ConfigError::new(name, problem()));
        }
        Ok(number)
    }

    fn seconds(&self, name: &'static str, default: i64) -> Result<TimeDelta, ConfigError> {
        // Up to ten years: enough for any lifetime and far from chrono's overflow.
        self.number(name, default, 1..=315_360_000)
            .map(TimeDelta::seconds)
    }

    /// A comma-separated list of CIDRs; a bare address is its own /32 or /128.
    fn networks(&self, name: &'static str) -> Result<Vec<IpNet>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .or_else(|_| part.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        ConfigError::new(
                            name,
                            format!(
                                "expected comma-separated CIDRs such as 10.0.0.0/8, got {part:?}"
                            ),
                        )
                    })
            })
            .collect()
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref().map(str::trim) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ConfigError::new(
                name,
                format!("expected `true` or `false`, got {other:?}"),
            )),
        }
    }

    /// Comma-separated ISO 3166-1 alpha-2 codes, as the phone-number metadata knows them.
    fn countries(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(|part| part.trim().to_ascii_uppercase())
            .filter(|part| !part.is_empty())
            .map(|code| match code.parse::<phonenumber::country::Id>() {
                Ok(_) => Ok(code),
                Err(_) => Err(ConfigError::new(
                    name,
                    format!(
                        "expected ISO 3166-1 alpha-2 country codes such as US,CA, got {code:?}"
                    ),
                )),
            })
            .collect()
    }

    /// A short piece of the SMS text, of at most 40 characters that all pass `allowed`.
    fn sms_text(
        &self,
        name: &'static str,
        allowed: impl Fn(char) -> bool,
        expected: &str,
    ) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let value = value.trim();
        if value.chars().count() > 40 || !value.chars().all(allowed) {
            return Err(ConfigError::new(
                name,
                format!("expected {expected}, got {value:?}"),
            ));
        }
        Ok(Some(value.to_owned()))
    }

    /// `KISS_TEST_OTP` (`+E164=CODE,…`) and `KISS_TEST_OTP_UNTIL`. The codes are never echoed.
    fn test_otps(&self, env: Environment) -> Result<TestOtps, ConfigError> {
        let until = match self.get("KISS_TEST_OTP_UNTIL") {
            Some(value) => Some(
                DateTime::parse_from_rfc3339(value.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ConfigError::new(
                            "KISS_TEST_OTP_UNTIL",
                            format!("expected an RFC 3339 instant such as 2027-01-31T00:00:00Z, got {value:?}"),
                        )
                    })?,
            ),
            None => None,
        };
        let Some(value) = self.get("KISS_TEST_OTP") else {
            return Ok(TestOtps::default());
        };
        if until.is_none() && env == Environment::Production {
            return Err(ConfigError::new(
                "KISS_TEST_OTP_UNTIL",
                "required in production with KISS_TEST_OTP, so review logins cannot outlive the review",
            ));
        }
        let codes = value
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let bad = |problem: &str| ConfigError::new("KISS_TEST_OTP", problem.to_owned());
                let (phone, code) = pair
                    .split_once('=')
                    .ok_or_else(|| bad("expected comma-separated `+E164=CODE` pairs"))?;
                let phone = PhoneE164::parse(phone.trim()).ok_or_else(|| {
                    bad(&format!(
                        "expected an E.164 phone number, got {:?}",
                        phone.trim()
                    ))
                })?;
                let code = code.trim();
                if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(&format!("the code of {phone} must be 6 digits")));
                }
                Ok((phone.to_string(), SecretString::from(code.to_owned())))
            })
            .collect::<Result<_, _>>()?;
        Ok(TestOtps { codes, until })
    }

    fn rate_limit(&self, name: &'static str, default: &str) -> Result<RateLimit, ConfigError> {
        self.parsed(
            name,
            default,
            "`N/<seconds>s` with N and seconds at least 1, e.g. `5/60s`",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn defaults_follow_the_contract() {
        let config = config(&[]).unwrap();
        assert_eq!(config.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.env, Environment::Development);
        assert!(matches!(config.sms_provider, SmsProvider::Log));
        assert_eq!(config.otp_ttl, TimeDelta::seconds(300));
        assert_eq!(config.otp_resend_cooldown, TimeDelta::seconds(30));
        assert_eq!(config.tenant_token_ttl, TimeDelta::seconds(2_592_000));
        assert_eq!(config.admin_token_ttl, TimeDelta::seconds(43_200));
        assert_eq!(config.idempotency_ttl, TimeDelta::seconds(86_400));
        assert_eq!(config.rate_limit_backend, RateLimitBackend::Memory);
        assert_eq!(
            config.rate_limits.pms_unit,
            RateLimit {
                max: 600,
                window_secs: 60
            }
        );
        assert_eq!(config.bulk_max_units, 10_000);
        assert_eq!(config.body_limit_bytes, 16_777_216);
        assert_eq!(config.public_body_limit_bytes, 16_384);
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.lock_timeout, Duration::from_millis(5_000));
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert!(config.app_key.ephemeral);
        assert_eq!(config.warnings.len(), 1);
    }

    #[test]
    fn production_requires_an_app_key() {
        let err = config(&[("KISS_ENV", "production")]).unwrap_err();
        assert_eq!(err.variable, "KISS_APP_KEY");
    }

    #[test]
    fn production_refuses_the_log_sms_provider() {
        let err = config(&[("KISS_ENV", "production"), ("KISS_APP_KEY", KEY)]).unwrap_err();
        assert_eq!(err.variable, "KISS_SMS_PROVIDER");
    }

    #[test]
    fn production_accepts_a_complete_twilio_setup() {
        let config = config(&[
            ("KISS_ENV", "production"),
            ("KISS_APP_KEY", KEY),
            ("KISS_SMS_PROVIDER", "twilio"),
            ("KISS_TWILIO_ACCOUNT_SID", "AC123"),
            ("KISS_TWILIO_AUTH_TOKEN", "secret"),
            ("KISS_TWILIO_FROM", "+15550001111"),
        ])
        .unwrap();
        assert!(!config.app_key.ephemeral);
        assert!(
            matches!(config.sms_provider, SmsProvider::Twilio { ref api_base, .. } if api_base == "https://api.twilio.com")
        );
    }

    #[test]
    fn twilio_without_credentials_names_the_missing_variable() {
        let err = config(&[("KISS_SMS_PROVIDER", "twilio")]).unwrap_err();
        assert_eq!(err.variable, "KISS_TWILIO_ACCOUNT_SID");
    }

    #[test]
    fn a_short_app_key_is_refused_without_echoing_it() {
        let err = config(&[("KISS_APP_KEY", "c2hvcnQ=")]).unwrap_err();
        assert_eq!(err.variable, "KISS_APP_KEY");
        assert!(!err.to_string().contains("c2hvcnQ="));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_expectation() {
        for (name, value) in [
            ("KISS_BIND", "not-an-address"),
            ("KISS_OTP_TTL_SECS", "0"),
            ("KISS_OTP_TTL_SECS", "five"),
            ("KISS_BULK_MAX_UNITS", "-1"),
            ("KISS_RATE_LIMIT_OTP_SEND", "5/60"),
            ("KISS_RATE_LIMIT_PMS_BULK", "0/60s"),
            ("KISS_LOG_FORMAT", "xml"),
            ("KISS_RATE_LIMIT_BACKEND", "memcached"),
            ("KISS_ENV", "staging"),
            ("KISS_TRUSTED_PROXIES", "10.0.0.0/8,not-a-network"),
            ("KISS_HEADER_TIMEOUT_SECS", "0"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "for {name}={value}");
            assert!(err.to_string().starts_with(name));
        }
    }

    #[test]
    fn no_secret_appears_in_the_debug_rendering() {
        let secrets = [
            ("DATABASE_URL", "postgres://kiss:db-password-1@db/kiss"),
            ("REDIS_URL", "redis://:redis-password-2@cache:6379"),
            ("KISS_TWILIO_AUTH_TOKEN", "twilio-token-3"),
        ];
        let mut vars = vec![
            ("KISS_APP_KEY", KEY),
            ("KISS_RATE_LIMIT_BACKEND", "redis"),
            ("KISS_SMS_PROVIDER", "twilio"),
            ("KISS_TWILIO_ACCOUNT_SID", "AC123"),
            ("KISS_TWILIO_FROM", "+15550001111"),
        ];
        vars.extend(secrets);
        let rendered = format!("{:?}", config(&vars).unwrap());
        for (name, secret) in secrets.iter().chain(&[("KISS_APP_KEY", KEY)]) {
            assert!(!rendered.contains(secret), "{name} leaks: {rendered}");
        }
        let webhook = config(&[
            ("KISS_SMS_PROVIDER", "webhook"),
            (
                "KISS_SMS_WEBHOOK_URL",
                "https://sms.example/send?key=hook-secret-4",
            ),
        ])
        .unwrap();
        assert!(!format!("{webhook:?}").contains("hook-secret-4"));
    }

    #[test]
    fn trusted_proxies_are_networks_or_single_addresses() {
        let config = config(&[(
            "KISS_TRUSTED_PROXIES",
            "10.0.0.0/8, 127.0.0.1,2001:db8::/32",
        )])
        .unwrap();
        let proxies: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32", "2001:db8::/32"]);
    }

    #[test]
    fn the_redis_backend_needs_a_redis_url() {
        let err = config(&[("KISS_RATE_LIMIT_BACKEND", "redis")]).unwrap_err();
        assert_eq!(err.variable, "REDIS_URL");
    }

    #[test]
    fn rate_limits_parse_and_print_as_n_per_seconds() {
        let limit: RateLimit = "7/30s".parse().unwrap();
        assert_eq!(
            limit,
            RateLimit {
                max: 7,
                window_secs: 30
            }
        );
        assert_eq!(limit.to_string(), "7/30s");
        assert!("7/30".parse::<RateLimit>().is_err());
        assert!("x/30s".parse::<RateLimit>().is_err());
    }

    #[test]
    fn abuse_controls_default_to_the_contract() {
        let config = config(&[]).unwrap();
        let limits = config.rate_limits;
        assert_eq!(limits.otp_send_ip.to_string(), "20/3600s");
        assert_eq!(limits.otp_verify_ip.to_string(), "60/3600s");
        assert_eq!(limits.otp_send_daily.to_string(), "10/86400s");
        assert_eq!(limits.otp_failed_daily.to_string(), "15/86400s");
        assert_eq!(limits.sms_daily_budget, None);
        assert!(config.sms_allowed_countries.is_empty());
        assert!(config.test_otps.is_empty());
        assert_eq!(config.sms_app_name, None);
        assert_eq!(config.sms_autofill_domain, None);
        assert!(!config.otp_hide_unknown_phones);
        assert_eq!(config.audit_retention, TimeDelta::days(365));
    }

    #[test]
    fn abuse_controls_are_read_and_checked() {
        let parse = config;
        let read = parse(&[
            ("KISS_SMS_ALLOWED_COUNTRIES", "us, ca"),
            ("KISS_SMS_DAILY_BUDGET", "500"),
            ("KISS_OTP_MAX_FAILED_PER_DAY", "9"),
            (
                "KISS_TEST_OTP",
                "+1 555 123 4567=908172, +447700900123=364501",
            ),
            ("KISS_TEST_OTP_UNTIL", "2027-01-31T00:00:00Z"),
            ("KISS_SMS_APP_NAME", "Acme Storage"),
            ("KISS_SMS_AUTOFILL_DOMAIN", "app.acme.example"),
            ("KISS_OTP_HIDE_UNKNOWN_PHONES", "true"),
        ])
        .unwrap();
        let config = &read;
        assert_eq!(config.sms_allowed_countries, ["US", "CA"]);
        assert_eq!(
            config.rate_limits.sms_daily_budget.map(|b| b.to_string()),
            Some("500/86400s".to_owned())
        );
        assert_eq!(config.rate_limits.otp_failed_daily.max, 9);
        let until = config.test_otps.until.unwrap();
        assert_eq!(
            config
                .test_otps
                .code_for("+15551234567", until - TimeDelta::seconds(1)),
            Some("908172")
        );
        assert_eq!(config.test_otps.code_for("+15551234567", until), None);
        assert_eq!(
            config
                .test_otps
                .code_for("+15550000000", until - TimeDelta::days(1)),
            None
        );
        let rendered = format!("{config:?}");
        assert!(
            !rendered.contains("908172") && !rendered.contains("364501"),
            "{rendered}"
        );
        assert!(config.otp_hide_unknown_phones);

        for (name, value) in [
            ("KISS_SMS_ALLOWED_COUNTRIES", "US,XX"),
            ("KISS_SMS_DAILY_BUDGET", "-1"),
            ("KISS_OTP_MAX_FAILED_PER_DAY", "0"),
            ("KISS_TEST_OTP", "+15551234567=12345"),
            ("KISS_TEST_OTP", "5551234567=123456"),
            ("KISS_TEST_OTP_UNTIL", "tomorrow"),
            ("KISS_SMS_APP_NAME", "Line\nbreak"),
            ("KISS_SMS_AUTOFILL_DOMAIN", "https://app.example.com"),
            ("KISS_OTP_HIDE_UNKNOWN_PHONES", "yes please"),
            ("KISS_RATE_LIMIT_OTP_SEND_IP", "20"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "for {name}={value}");
        }
    }

    #[test]
    fn production_refuses_test_otps_without_an_expiry() {
        let production = [
            ("KISS_ENV", "production"),
            ("KISS_APP_KEY", KEY),
            ("KISS_SMS_PROVIDER", "webhook"),
            ("KISS_SMS_WEBHOOK_URL", "https://sms.example/send"),
            ("KISS_SMS_WEBHOOK_SECRET", "whsec-1"),
        ];
        let mut vars = production.to_vec();
        vars.push(("KISS_TEST_OTP", "+15551234567=123456"));
        let err = config(&vars).unwrap_err();
        assert_eq!(err.variable, "KISS_TEST_OTP_UNTIL");
        vars.push(("KISS_TEST_OTP_UNTIL", "2027-01-31T00:00:00Z"));
        assert!(config(&vars).is_ok());
        // Development may keep test codes without an end.
        assert!(config(&[("KISS_TEST_OTP", "+15551234567=123456")]).is_ok());
    }

    #[test]
    fn production_refuses_an_unsigned_sms_webhook() {
        let err = config(&[
            ("KISS_ENV", "production"),
            ("KISS_APP_KEY", KEY),
            ("KISS_SMS_PROVIDER", "webhook"),
            ("KISS_SMS_WEBHOOK_URL", "https://sms.example/send"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "KISS_SMS_WEBHOOK_SECRET");
        let signed = config(&[
            ("KISS_SMS_PROVIDER", "webhook"),
            ("KISS_SMS_WEBHOOK_URL", "https://sms.example/send"),
            ("KISS_SMS_WEBHOOK_SECRET", "whsec-secret-7"),
        ])
        .unwrap();
        assert!(!format!("{signed:?}").contains("whsec-secret-7"));
    }
}
