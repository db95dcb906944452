//! Configuration from the environment (and `.env`), validated once at start-up.
//!
//! Every bad or missing value names its variable and what is expected, so an operator can fix
//! a deployment from the error alone. Secret values are never echoed back.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use chrono::TimeDelta;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretBox, SecretString};

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
    },
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
}
