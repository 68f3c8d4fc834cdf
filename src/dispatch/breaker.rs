//! The circuit breaker of one provider endpoint, in the spirit of resilience4j's and
//! Envoy's outlier detection: `blossom.breaker_failures` consecutive attempts that find
//! the provider unreachable (connection refused or broken, timeouts, 502/503/504) open
//! it; while it is open the session sends nothing to that endpoint but one probe at a
//! time, spaced like retries; the first probe answered closes it and every waiting
//! request goes on. An outage longer than `blossom.max_outage` stops the query.
//!
//! ```sql
//! SET blossom.breaker_failures = 5; -- 0 turns the breaker off
//! SET blossom.max_outage = 300;     -- seconds the provider may stay down
//! ```

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::provider::ProviderError;

/// How an attempt was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The breaker is closed.
    Normal,
    /// The breaker is open and this attempt is its probe.
    Probe,
}

/// What [`Breaker::admit`] says when the outage lasted too long.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutageTooLong {
    /// How long the endpoint has been unreachable.
    pub down_for: Duration,
    /// The last failure seen.
    pub last_error: String,
}

#[derive(Debug)]
enum State {
    Closed {
        consecutive: u32,
    },
    Open {
        since: Instant,
        probe_at: Instant,
        probing: bool,
        delay: Duration,
        last_error: String,
    },
}

/// The breaker of one endpoint, shared by every query of the session.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    /// Bumped whenever the state changes, to wake waiting requests.
    changed: watch::Sender<u64>,
}

/// The settings one decision needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerSettings {
    /// Consecutive unreachable attempts that open the breaker; 0 never opens it.
    pub failures: u32,
    /// The longest outage before the query stops.
    pub max_outage: Duration,
    /// The first wait between probes; it doubles up to `max_probe_delay`.
    pub probe_delay: Duration,
    pub max_probe_delay: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Closed { consecutive: 0 }),
            changed: watch::Sender::new(0),
        }
    }
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// True while the breaker is open.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { .. })
    }

    /// Waits until an attempt may be sent: at once while closed; while open, until this
    /// attempt is the probe or the breaker closes. Fails when the outage has lasted
    /// longer than `settings.max_outage`.
    pub(crate) async fn admit(
        &self,
        settings: &BreakerSettings,
    ) -> Result<Admission, OutageTooLong> {
        let mut changes = self.changed.subscribe();
        loop {
            let wake = {
                let mut state = self.lock();
                match &mut *state {
                    State::Closed { .. } => return Ok(Admission::Normal),
                    State::Open {
                        since,
                        probe_at,
                        probing,
                        last_error,
                        ..
                    } => {
                        let now = Instant::now();
                        let deadline = *since + settings.max_outage;
                        if now >= deadline {
                            return Err(OutageTooLong {
                                down_for: now - *since,
                                last_error: last_error.clone(),
                            });
                        }
                        if !*probing && now >= *probe_at {
                            *probing = true;
                            return Ok(Admission::Probe);
                        }
                        if *probing {
                            deadline
                        } else {
                            (*probe_at).min(deadline)
                        }
                    }
                }
            };
            changes.borrow_and_update();
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = changes.changed() => {}
            }
        }
    }

    /// Records an answer: the provider is reachable, the breaker closes.
    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        let was_open = matches!(*state, State::Open { .. });
        *state = State::Closed { consecutive: 0 };
        drop(state);
        if was_open {
            tracing::info!("the provider answers again; the circuit breaker closes");
            self.bump();
        }
    }

    /// Records a failed attempt; returns whether the breaker is open afterwards. A
    /// failure that is not [`ProviderError::is_unreachable`] proves the provider
    /// reachable and counts as an answer.
    pub(crate) fn failed(
        &self,
        admission: Admission,
        error: &ProviderError,
        settings: &BreakerSettings,
    ) -> bool {
        if !error.is_unreachable() {
            self.succeeded();
            return false;
        }
        let mut state = self.lock();
        let now = Instant::now();
        match &mut *state {
            State::Closed { consecutive } => {
                *consecutive += 1;
                if settings.failures == 0 || *consecutive < settings.failures {
                    return false;
                }
                tracing::warn!(
                    failures = *consecutive,
                    "the provider looks unreachable ({error}); the circuit breaker opens: \
                     requests wait while one probe at a time is sent"
                );
                *state = State::Open {
                    since: now,
                    probe_at: now + settings.probe_delay,
                    probing: false,
                    delay: settings.probe_delay,
                    last_error: error.to_string(),
                };
            }
            State::Open {
                probe_at,
                probing,
                delay,
                last_error,
                ..
            } => {
                *last_error = error.to_string();
                if admission == Admission::Probe {
                    *probing = false;
                    *delay = (*delay * 2).min(settings.max_probe_delay.max(settings.probe_delay));
                    *probe_at = now + *delay;
                }
            }
        }
        drop(state);
        self.bump();
        true
    }

    /// Closes the breaker after its outage stopped a query, so that the next query
    /// starts by trying the provider again.
    pub(crate) fn reset(&self) {
        *self.lock() = State::Closed { consecutive: 0 };
        self.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failures: 3,
            max_outage: Duration::from_millis(400),
            probe_delay: Duration::from_millis(20),
            max_probe_delay: Duration::from_millis(40),
        }
    }

    fn refused() -> ProviderError {
        ProviderError::Connect {
            url: "http://127.0.0.1:9/v1".into(),
            detail: "Connection refused".into(),
        }
    }

    #[tokio::test]
    async fn opens_after_consecutive_failures_probes_one_at_a_time_and_closes() {
        let breaker = std::sync::Arc::new(Breaker::default());
        let s = settings();
        assert!(!breaker.failed(Admission::Normal, &refused(), &s));
        assert!(!breaker.failed(Admission::Normal, &refused(), &s));
        assert!(breaker.failed(Admission::Normal, &refused(), &s));
        assert!(breaker.is_open());
        // One probe is let through; a second waiter waits for its outcome.
        assert_eq!(breaker.admit(&s).await, Ok(Admission::Probe));
        let waiter = {
            let breaker = std::sync::Arc::clone(&breaker);
            tokio::spawn(async move { breaker.admit(&settings()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while the probe is out");
        breaker.succeeded();
        assert_eq!(waiter.await.unwrap(), Ok(Admission::Normal));
        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn answered_errors_reset_the_count_and_outages_have_a_bound() {
        let s = settings();
        let breaker = Breaker::default();
        let server_error = ProviderError::Status {
            status: 500,
            message: "oops".into(),
            retry_after: None,
        };
        breaker.failed(Admission::Normal, &refused(), &s);
        breaker.failed(Admission::Normal, &refused(), &s);
        assert!(!breaker.failed(Admission::Normal, &server_error, &s));
        assert!(
            !breaker.failed(Admission::Normal, &refused(), &s),
            "count reset"
        );
        breaker.failed(Admission::Normal, &refused(), &s);
        assert!(breaker.failed(Admission::Normal, &refused(), &s));
        let started = Instant::now();
        loop {
            match breaker.admit(&s).await {
                Ok(Admission::Probe) => {
                    assert!(breaker.failed(Admission::Probe, &refused(), &s));
                }
                Ok(Admission::Normal) => panic!("closed without an answer"),
                Err(too_long) => {
                    assert!(too_long.down_for >= s.max_outage);
                    assert!(too_long.last_error.contains("Connection refused"));
                    break;
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        breaker.reset();
        assert_eq!(breaker.admit(&s).await, Ok(Admission::Normal));
    }
}
