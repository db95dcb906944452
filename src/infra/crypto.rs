//! Secrets: random tokens and codes, keyed hashes for high-entropy secrets, argon2 for passwords.
//!
//! Tokens and one-time codes are hashed with HMAC-SHA256 under `KISS_APP_KEY`, so the hot path stays
//! fast and a stolen database alone cannot be used to check guesses. Passwords are low-entropy and
//! get argon2id instead.

use std::sync::OnceLock;

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::config::AppKey;

/// Keyed hashing of secrets under the application key.
#[derive(Clone)]
pub struct SecretHasher {
    key: AppKey,
}

impl SecretHasher {
    pub fn new(key: AppKey) -> Self {
        SecretHasher { key }
    }

    /// HMAC-SHA256 of the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ.
    pub fn hash(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_bytes())
            .expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `parts` hash to `expected`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        constant_time_eq(&self.hash(parts), expected)
    }
}

/// The `X-Kiss-Signature` value of a signed request (SMS and event webhooks):
/// `t=<unix seconds>,v1=<hex HMAC-SHA256 under secret of "<t>.<raw body>">`. The timestamp inside
/// the signed text lets receivers refuse replays of old requests.
pub fn signature_header(secret: &[u8], unix_secs: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={unix_secs},v1={hex}")
}

/// Equality whose timing does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// 256 bits from the thread-local CSPRNG, as 43 URL-safe base64 characters.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Splits a `<prefix><id>.<secret>` token (API and admin tokens) into its id and secret.
pub fn split_token<'a>(token: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    token
        .strip_prefix(prefix)?
        .split_once('.')
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// Hashes a password with argon2id and a fresh salt. Slow by design: call it off the async runtime.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow::anyhow!("argon2 hashing failed: {err}"))
}

/// Checks a password against a stored PHC string. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// How many argon2 computations may run at once: one per core. Each takes ~19 MiB and a core for
/// tens of milliseconds, so a flood of sign-ins queues here instead of exhausting memory.
fn password_work_slots() -> &'static Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Arc::new(Semaphore::new(cores))
    })
}

/// Runs argon2 work (`hash_password`, `verify_password`) off the async runtime, waiting for one of
/// the capped slots first. The slot is held until the work ends, even if the caller gives up.
pub async fn password_work<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let slot = password_work_slots().clone().acquire_owned().await?;
    let result = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await?;
    Ok(result)
}

/// A real argon2 hash of a random password, checked when the e-mail is unknown so that a failed
/// sign-in costs the same whatever its cause.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_secret()).expect("argon2 hashes a random password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn password_work_runs_at_most_one_computation_per_core() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(password_work(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let cores = std::thread::available_parallelism().unwrap().get();
        assert!(most.load(Ordering::SeqCst) <= cores);
        assert!(most.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn signatures_match_an_independent_hmac() {
        // HMAC-SHA256("whsec", "1700000000.{}") computed with `openssl dgst -sha256 -hmac whsec`.
        assert_eq!(
            signature_header(b"whsec", 1_700_000_000, b"{}"),
            "t=1700000000,v1=7d44587dddbaf4c7f70fef20f48cd594834ffea1641e3ac227b84408298738af"
        );
    }

    #[test]
    fn random_secrets_are_long_and_distinct() {
        let a = random_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_secret());
    }

    #[test]
    fn keyed_hashes_depend_on_the_key_and_the_part_boundaries() {
        let hasher = SecretHasher::new(AppKey::generate());
        let other = SecretHasher::new(AppKey::generate());
        let hash = hasher.hash(&[b"ab", b"c"]);
        assert!(hasher.verify(&[b"ab", b"c"], &hash));
        assert!(!hasher.verify(&[b"a", b"bc"], &hash));
        assert!(!other.verify(&[b"ab", b"c"], &hash));
    }

    #[test]
    fn tokens_split_only_with_their_own_prefix() {
        assert_eq!(
            split_token("kat_abc.s3cr3t", "kat_"),
            Some(("abc", "s3cr3t"))
        );
        assert_eq!(split_token("kadm_abc.s3cr3t", "kat_"), None);
        assert_eq!(split_token("kat_abc", "kat_"), None);
        assert_eq!(split_token("kat_.s3cr3t", "kat_"), None);
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("anything", "not a phc string"));
    }
}
