//! The in-process backend: a sliding-window log per key, swept so that keys whose window has
//! passed are forgotten and memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{Check, KeyState, Outcome, Ticket};

/// How often (in the limiter's clock) the whole map is swept for idle keys.
const SWEEP_EVERY_MS: i64 = 10_000;

#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    windows: HashMap<String, Window>,
    last_sweep_ms: i64,
}

impl State {
    fn window(&mut self, check: &Check) -> &mut Window {
        self.windows
            .entry(check.key.clone())
            .or_insert_with(|| Window {
                window_ms: check.window_ms,
                admitted: VecDeque::new(),
            })
    }
}

struct Window {
    window_ms: i64,
    /// Times (ms) and ticket ids of the requests let through that are still inside the window,
    /// oldest first.
    admitted: VecDeque<(i64, u64)>,
}

impl MemoryBackend {
    pub fn acquire(&self, checks: &[Check], ticket: &Ticket) -> Outcome {
        let now_ms = ticket.at_ms;
        let mut state = self.lock();
        if now_ms - state.last_sweep_ms >= SWEEP_EVERY_MS {
            state.windows.retain(|_, w| {
                w.admitted
                    .back()
                    .is_some_and(|&(t, _)| t > now_ms - w.window_ms)
            });
            state.last_sweep_ms = now_ms;
        }

        let mut allowed = true;
        for check in checks {
            let window = state.window(check);
            while window
                .admitted
                .front()
                .is_some_and(|&(t, _)| t <= now_ms - check.window_ms)
            {
                window.admitted.pop_front();
            }
            if window.admitted.len() >= check.max as usize {
                allowed = false;
            }
        }
        let keys = checks
            .iter()
            .map(|check| {
                let window = state.window(check);
                if allowed {
                    window.admitted.push_back((now_ms, ticket.id));
                }
                KeyState {
                    count: window.admitted.len() as u32,
                    oldest_ms: window.admitted.front().map_or(now_ms, |&(t, _)| t),
                }
            })
            .collect();
        Outcome { allowed, keys }
    }

    pub fn release(&self, check: &Check, ticket: &Ticket) {
        let mut state = self.lock();
        if let Some(window) = state.windows.get_mut(&check.key) {
            window
                .admitted
                .retain(|&entry| entry != (ticket.at_ms, ticket.id));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.state.lock().unwrap().windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: i64) -> Ticket {
        Ticket {
            at_ms,
            id: rand::random(),
        }
    }

    fn check(key: &str, max: u32, window_ms: i64) -> Check {
        Check {
            key: key.into(),
            max,
            window_ms,
        }
    }

    #[test]
    fn at_most_n_in_any_rolling_window_and_refusals_do_not_count() {
        let backend = MemoryBackend::default();
        let limit = [check("phone", 3, 1_000)];
        let admitted: Vec<bool> = [0, 100, 200, 300, 999, 1_000, 1_050, 1_100, 1_199, 1_200]
            .iter()
            .map(|&t| backend.acquire(&limit, &at(t)).allowed)
            .collect();
        // t=1000 sees 100 and 200 still in (1000-1000, 1000]; 0 has left, so one slot frees.
        assert_eq!(
            admitted,
            [
                true, true, true, false, false, true, false, true, false, true
            ]
        );
    }

    #[test]
    fn several_keys_are_admitted_together_or_not_at_all() {
        let backend = MemoryBackend::default();
        let email = check("email", 2, 1_000);
        let ip = check("ip", 3, 1_000);
        assert!(
            backend
                .acquire(&[email.clone(), ip.clone()], &at(0))
                .allowed
        );
        assert!(
            backend
                .acquire(&[email.clone(), ip.clone()], &at(1))
                .allowed
        );
        let refused = backend.acquire(&[email, ip.clone()], &at(2));
        assert!(!refused.allowed);
        assert_eq!(
            refused.keys[1].count, 2,
            "the refused request did not count for the IP"
        );
        assert!(backend.acquire(&[ip], &at(3)).allowed);
    }

    #[test]
    fn a_released_slot_is_free_again_and_only_that_one() {
        let backend = MemoryBackend::default();
        let limit = check("failures", 2, 1_000);
        let first = at(0);
        assert!(
            backend
                .acquire(std::slice::from_ref(&limit), &first)
                .allowed
        );
        let second = at(0);
        assert!(
            backend
                .acquire(std::slice::from_ref(&limit), &second)
                .allowed
        );
        assert!(
            !backend
                .acquire(std::slice::from_ref(&limit), &at(1))
                .allowed
        );
        backend.release(&limit, &second);
        let third = backend.acquire(std::slice::from_ref(&limit), &at(2));
        assert!(third.allowed);
        assert_eq!(
            third.keys[0].oldest_ms, 0,
            "the first entry is still counted"
        );
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let backend = MemoryBackend::default();
        for i in 0..1_000 {
            backend.acquire(&[check(&format!("phone-{i}"), 5, 1_000)], &at(0));
        }
        assert_eq!(backend.tracked_keys(), 1_000);
        backend.acquire(&[check("late", 5, 1_000)], &at(SWEEP_EVERY_MS));
        assert_eq!(backend.tracked_keys(), 1);
    }
}
