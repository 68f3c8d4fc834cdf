//! The simulator's own request rate limiter: a GCRA (generic cell rate algorithm), i.e. a
//! token bucket of `burst` tokens refilled at `requests_per_minute`.

use std::time::{Duration, Instant};

/// A GCRA rate limiter; time is passed in so it can be tested without sleeping.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Time between two requests at the sustained rate; `None` when nothing is allowed.
    interval: Option<Duration>,
    /// `interval * burst`: how far the theoretical arrival time may run ahead of now.
    tolerance: Duration,
    /// Theoretical arrival time of the next request at the sustained rate.
    tat: Option<Instant>,
}

/// The wait reported when the rate is zero and no request will ever be allowed.
const FOREVER: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// A limiter allowing `requests_per_minute` on average and `burst` at once
    /// (`burst` 0 counts as 1; `requests_per_minute` 0 allows nothing).
    pub fn new(requests_per_minute: u32, burst: u32) -> Self {
        let interval =
            (requests_per_minute > 0).then(|| Duration::from_secs(60) / requests_per_minute);
        let tolerance = interval.map_or(Duration::ZERO, |i| {
            i.checked_mul(burst.max(1)).unwrap_or(Duration::MAX)
        });
        Self {
            interval,
            tolerance,
            tat: None,
        }
    }

    /// Takes a token at `now`, or returns how long to wait until one is available.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Err(FOREVER);
        };
        let start = self.tat.map_or(now, |tat| tat.max(now));
        let Some(new_tat) = start.checked_add(interval) else {
            return Err(FOREVER);
        };
        let ahead = new_tat.saturating_duration_since(now);
        if ahead > self.tolerance {
            Err(ahead - self.tolerance)
        } else {
            self.tat = Some(new_tat);
            Ok(())
        }
    }
}

/// `wait` in whole seconds, rounded up.
pub fn ceil_secs(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
}

/// Whole seconds to advertise in `Retry-After` for a limiter wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    ceil_secs(wait).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(60, 3); // one per second, 3 at once
        for _ in 0..3 {
            assert!(l.check(t0).is_ok());
        }
        let wait = l.check(t0).expect_err("bucket empty");
        assert_eq!(wait, Duration::from_secs(1));
        // A rejected request does not consume a token.
        assert_eq!(l.check(t0), Err(Duration::from_secs(1)));
        assert!(l.check(t0 + Duration::from_secs(1)).is_ok());
        assert!(l.check(t0 + Duration::from_secs(1)).is_err());
        // After a long idle time the full burst is back, not more.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(l.check(later).is_ok());
        }
        assert!(l.check(later).is_err());
    }

    #[test]
    fn default_burst_of_one() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(120, 0);
        assert!(l.check(t0).is_ok());
        assert_eq!(l.check(t0), Err(Duration::from_millis(500)));
        assert!(l.check(t0 + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn zero_rate_rejects_everything() {
        let mut l = RateLimiter::new(0, 5);
        assert_eq!(l.check(Instant::now()), Err(FOREVER));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
    }
}
