//! The limits on requests to one provider endpoint: how many are in flight, how many
//! start per minute, and the pause every request takes after a provider's
//! `Retry-After`. Every query of a session shares them.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The endpoint `url` belongs to, as limits are kept: its scheme, host and port (chat
/// and embeddings of one provider share them).
pub(crate) fn endpoint_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port_or_known_default().unwrap_or_default()
        ),
        Err(_) => url.to_string(),
    }
}

/// Concurrency cap, rate limit and cool-down shared by all requests to one endpoint.
#[derive(Debug)]
pub(crate) struct Limits {
    in_flight: Arc<Semaphore>,
    caps: Mutex<Caps>,
    rate: Mutex<Option<Arc<DefaultDirectRateLimiter>>>,
    cool_down_until: Mutex<Option<Instant>>,
}

/// The settings in force, and the slots still to be taken out of circulation after the
/// cap was lowered while they were in use.
#[derive(Debug)]
struct Caps {
    max_concurrency: usize,
    requests_per_minute: u32,
    to_retire: usize,
}

/// A slot of the endpoint's cap, held by one request through all its attempts.
pub(crate) struct Slot<'a> {
    permit: Option<SemaphorePermit<'a>>,
    limits: &'a Limits,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.limits.give_back(permit, SemaphorePermit::forget);
        }
    }
}

/// A slot held apart from any borrow of its limits: the cluster limiter holds one for
/// each remote request, for as long as the worker's connection says it is in flight.
pub(crate) struct OwnedSlot {
    permit: Option<OwnedSemaphorePermit>,
    limits: Arc<Limits>,
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.limits.give_back(permit, OwnedSemaphorePermit::forget);
        }
    }
}

/// Evenly spaced starts with no burst: over any window of a minute at most
/// `requests_per_minute + 1` requests start, so a provider limit above ours is never
/// hit. `None` for no limit.
fn rate_limiter(requests_per_minute: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
    NonZeroU32::new(requests_per_minute).and_then(|rpm| {
        let period = Duration::from_secs_f64(60.0 / f64::from(rpm.get()));
        Quota::with_period(period)
            .map(|q| Arc::new(RateLimiter::direct(q.allow_burst(NonZeroU32::MIN))))
    })
}

impl Limits {
    pub(crate) fn new(max_concurrency: usize, requests_per_minute: u32) -> Self {
        let max_concurrency = max_concurrency.max(1);
        Self {
            in_flight: Arc::new(Semaphore::new(max_concurrency)),
            caps: Mutex::new(Caps {
                max_concurrency,
                requests_per_minute,
                to_retire: 0,
            }),
            rate: Mutex::new(rate_limiter(requests_per_minute)),
            cool_down_until: Mutex::new(None),
        }
    }

    fn lock_caps(&self) -> std::sync::MutexGuard<'_, Caps> {
        self.caps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `max_concurrency` and `requests_per_minute` in force. A larger cap frees
    /// slots at once; a smaller one retires free slots now and the others as the
    /// requests holding them finish, so the count in flight never exceeds the larger of
    /// the old and new caps and soon obeys the new one.
    pub(crate) fn set(&self, max_concurrency: usize, requests_per_minute: u32) {
        let max_concurrency = max_concurrency.max(1);
        let mut caps = self.lock_caps();
        if caps.requests_per_minute != requests_per_minute {
            caps.requests_per_minute = requests_per_minute;
            *self.rate.lock().unwrap_or_else(|p| p.into_inner()) =
                rate_limiter(requests_per_minute);
        }
        if caps.max_concurrency == max_concurrency {
            return;
        }
        if max_concurrency > caps.max_concurrency {
            let mut more = max_concurrency - caps.max_concurrency;
            // Slots still owed to a lower cap are simply not retired.
            let kept = more.min(caps.to_retire);
            caps.to_retire -= kept;
            more -= kept;
            self.in_flight.add_permits(more);
        } else {
            let fewer = caps.max_concurrency - max_concurrency;
            let retired = self.in_flight.forget_permits(fewer);
            caps.to_retire += fewer - retired;
        }
        caps.max_concurrency = max_concurrency;
    }

    /// Waits for a free slot: one request holds it through all its attempts, so that
    /// retries never queue behind new requests (a failing query then stops after at
    /// most `max_concurrency` requests' retry schedules, not after every row's first
    /// attempt).
    pub(crate) async fn slot(&self) -> Slot<'_> {
        // The semaphore is never closed, so acquire cannot fail; fall back to a fresh
        // wait rather than panic if that ever changes.
        loop {
            if let Ok(permit) = self.in_flight.acquire().await {
                return Slot {
                    permit: Some(permit),
                    limits: self,
                };
            }
            tokio::task::yield_now().await;
        }
    }

    /// Like [`Self::slot`], for a holder that does not borrow the limits.
    pub(crate) async fn owned_slot(self: &Arc<Self>) -> OwnedSlot {
        loop {
            if let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await {
                return OwnedSlot {
                    permit: Some(permit),
                    limits: Arc::clone(self),
                };
            }
            tokio::task::yield_now().await;
        }
    }

    /// Takes a slot given back out of circulation if a lowered cap still owes one
    /// (`forget`), else frees it.
    fn give_back<P>(&self, permit: P, forget: impl FnOnce(P)) {
        let mut caps = self.lock_caps();
        if caps.to_retire > 0 {
            caps.to_retire -= 1;
            forget(permit);
        } else {
            drop(caps);
            drop(permit);
        }
    }

    /// Waits for the end of any cool-down and for the rate limit before an attempt;
    /// says how long that took.
    pub(crate) async fn throttle(&self) -> Duration {
        let throttle_start = Instant::now();
        loop {
            let until = *self
                .cool_down_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match until {
                Some(until) if until > Instant::now() => {
                    // Spread the waiters over a tenth of the wait (at most a second) so
                    // they do not all hit the provider again in the same instant.
                    let wait = until - Instant::now();
                    let spread = (wait / 10).min(Duration::from_secs(1));
                    let jitter = spread.mul_f64(fastrand::f64());
                    tokio::time::sleep_until(until + jitter).await;
                }
                _ => break,
            }
        }
        let rate = self.rate.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(rate) = rate {
            rate.until_ready().await;
        }
        throttle_start.elapsed()
    }

    /// Makes every request wait `wait` from now before it starts.
    pub(crate) fn cool_down(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut current = self
            .cool_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_and_embeddings_of_one_host_share_an_endpoint() {
        assert_eq!(
            endpoint_of("https://api.openai.com/v1/chat/completions"),
            endpoint_of("https://api.openai.com/v1/embeddings")
        );
        assert_eq!(
            endpoint_of("http://127.0.0.1:8080/v1/chat/completions"),
            "http://127.0.0.1:8080"
        );
        assert_ne!(
            endpoint_of("http://127.0.0.1:8080/v1"),
            endpoint_of("http://127.0.0.1:8081/v1")
        );
    }

    #[tokio::test]
    async fn a_lowered_cap_retires_slots_as_they_are_given_back() {
        let limits = Limits::new(3, 0);
        let a = limits.slot().await;
        let b = limits.slot().await;
        let c = limits.slot().await;
        assert_eq!(limits.in_flight.available_permits(), 0);
        limits.set(1, 0);
        drop(a);
        drop(b);
        // Two of the three slots are retired; the one still held is the new cap.
        assert_eq!(limits.in_flight.available_permits(), 0);
        drop(c);
        assert_eq!(limits.in_flight.available_permits(), 1);
        // Raising the cap again frees slots at once.
        limits.set(4, 0);
        assert_eq!(limits.in_flight.available_permits(), 4);
    }

    #[tokio::test]
    async fn owned_slots_share_the_cap_and_retire_alike() {
        let limits = Arc::new(Limits::new(2, 0));
        let a = limits.owned_slot().await;
        let b = limits.slot().await;
        assert_eq!(limits.in_flight.available_permits(), 0);
        limits.set(1, 0);
        drop(a);
        assert_eq!(limits.in_flight.available_permits(), 0, "retired");
        drop(b);
        assert_eq!(limits.in_flight.available_permits(), 1);
    }

    #[tokio::test]
    async fn raising_a_cap_cancels_retirements_still_owed() {
        let limits = Limits::new(4, 0);
        let held: Vec<_> = [(); 4].iter().map(|_| limits.slot()).collect();
        let held = futures::future::join_all(held).await;
        limits.set(2, 0);
        limits.set(3, 0);
        drop(held);
        assert_eq!(limits.in_flight.available_permits(), 3);
    }
}
