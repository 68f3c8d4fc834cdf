//! Retry delays: exponential backoff with jitter, from `blossom.retry_*` settings.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::config::ProviderSettings;

/// The delays between attempts of one request.
pub(crate) struct Backoff {
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(settings: &ProviderSettings) -> Self {
        let delays = ExponentialBuilder::default()
            .with_min_delay(settings.retry_initial_backoff)
            .with_max_delay(settings.retry_max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        Self {
            delays,
            max: settings.retry_max_backoff,
        }
    }

    /// The wait before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BlossomOptions;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let options = BlossomOptions {
            retry_initial_backoff_ms: 100,
            retry_max_backoff_ms: 1_000,
            ..BlossomOptions::default()
        };
        let mut backoff = Backoff::new(&options.resolve().unwrap());
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(100));
        assert!(delays[0] <= Duration::from_millis(200), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(2_000)),
            "{delays:?}"
        );
        assert!(delays[5] >= Duration::from_millis(1_000), "{delays:?}");
    }
}
