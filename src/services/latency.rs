//! Recent latencies of one kind of work, to give another branch the same timing: the
//! anti-enumeration mode answers a phone without accounts after a delay drawn from how long
//! sending a real code took, so timing does not tell the two apart.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many recent latencies are kept: enough to follow the provider's drift, small enough to
/// copy nothing large under the lock.
const KEPT: usize = 64;

pub struct LatencyProfile {
    recent: Mutex<VecDeque<Duration>>,
    /// Drawn until a first latency has been recorded.
    fallback: Duration,
}

impl LatencyProfile {
    pub fn new(fallback: Duration) -> Self {
        LatencyProfile {
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
            fallback,
        }
    }

    pub fn record(&self, latency: Duration) {
        let mut recent = self.lock();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(latency);
    }

    /// One of the recent latencies, at random, so the imitation has the real distribution (its
    /// median and its spread), not just its mean.
    pub fn sample(&self) -> Duration {
        let recent = self.lock();
        if recent.is_empty() {
            return self.fallback;
        }
        recent[rand::random_range(0..recent.len())]
    }

    /// Waits until a sampled latency has passed since `started`. The timer wheel rounds a sleep up
    /// to the next millisecond, which alone would make an imitation of a fast provider ~0.5 ms
    /// slower than the real thing: the last millisecond is waited out by yielding instead.
    pub async fn imitate(&self, started: Instant) {
        let deadline = started + self.sample();
        let coarse = deadline.checked_sub(Duration::from_millis(1));
        if let Some(coarse) = coarse.filter(|coarse| *coarse > Instant::now()) {
            tokio::time::sleep_until(coarse.into()).await;
        }
        while Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Duration>> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_imitation_ends_at_the_sampled_latency_not_a_millisecond_later() {
        let profile = LatencyProfile::new(Duration::from_micros(2_300));
        for _ in 0..20 {
            let started = Instant::now();
            profile.imitate(started).await;
            let took = started.elapsed();
            assert!(took >= Duration::from_micros(2_300), "{took:?}");
        }
    }

    #[test]
    fn samples_come_from_the_recent_latencies_or_the_fallback() {
        let profile = LatencyProfile::new(Duration::from_millis(200));
        assert_eq!(profile.sample(), Duration::from_millis(200));
        for ms in 0..100 {
            profile.record(Duration::from_millis(ms));
        }
        for _ in 0..1_000 {
            let sample = profile.sample();
            // Only the last 64 (36..=99 ms) are kept.
            assert!((36..100).contains(&sample.as_millis()), "{sample:?}");
        }
    }
}
