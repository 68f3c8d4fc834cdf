//! The session-wide limits on requests: how many are in flight, how many start per
//! minute, and the pause every request takes after a provider's `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::config::ProviderSettings;

/// Concurrency cap, rate limit and cool-down shared by all requests of a session.
#[derive(Debug)]
pub(crate) struct Limits {
    max_concurrency: usize,
    requests_per_minute: u32,
    in_flight: Semaphore,
    rate: Option<DefaultDirectRateLimiter>,
    cool_down_until: Mutex<Option<Instant>>,
}

impl Limits {
    pub(crate) fn new(max_concurrency: usize, requests_per_minute: u32) -> Self {
        // Evenly spaced starts with no burst: over any window of a minute at most
        // `requests_per_minute + 1` requests start, so a provider limit above ours is
        // never hit.
        let rate = NonZeroU32::new(requests_per_minute).and_then(|rpm| {
            let period = Duration::from_secs_f64(60.0 / f64::from(rpm.get()));
            Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(NonZeroU32::MIN)))
        });
        Self {
            max_concurrency,
            requests_per_minute,
            in_flight: Semaphore::new(max_concurrency.max(1)),
            rate,
            cool_down_until: Mutex::new(None),
        }
    }

    pub(crate) fn matches(&self, settings: &ProviderSettings) -> bool {
        self.max_concurrency == settings.max_concurrency
            && self.requests_per_minute == settings.requests_per_minute
    }

    /// Waits for a free slot: one request holds it through all its attempts, so that
    /// retries never queue behind new requests (a failing query then stops after at
    /// most `max_concurrency` requests' retry schedules, not after every row's first
    /// attempt).
    pub(crate) async fn slot(&self) -> SemaphorePermit<'_> {
        // The semaphore is never closed, so acquire cannot fail; fall back to a fresh
        // wait rather than panic if that ever changes.
        loop {
            if let Ok(permit) = self.in_flight.acquire().await {
                return permit;
            }
            tokio::task::yield_now().await;
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
        if let Some(rate) = &self.rate {
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
