//! State shared by all connections of one simulator: the current configuration with its
//! rate limiter and dice, the admission counter for `max_concurrent`, and the statistics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::config::SimConfig;
use super::faults::{FaultDice, FaultKind};
use super::limiter::RateLimiter;
use super::stats::StatsCounters;

/// Seed offset of the jitter generator, so jitter and fault dice draw independent streams.
const JITTER_SEED_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// The configuration together with the mutable machinery derived from it.
#[derive(Debug)]
struct Control {
    config: Arc<SimConfig>,
    limiter: Option<RateLimiter>,
    dice: FaultDice,
    jitter: fastrand::Rng,
}

impl Control {
    fn new(config: SimConfig) -> Self {
        Self {
            limiter: config
                .requests_per_minute
                .map(|rpm| RateLimiter::new(rpm, config.rate_burst)),
            dice: FaultDice::new(config.seed),
            jitter: fastrand::Rng::with_seed(config.seed ^ JITTER_SEED_SALT),
            config: Arc::new(config),
        }
    }
}

/// What the dice decided for one request that passed the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The fault to inject, if any.
    pub fault: Option<FaultKind>,
    /// Latency plus jitter to wait before answering.
    pub delay: Duration,
}

/// Shared state of one running simulator.
#[derive(Debug)]
pub struct SharedState {
    control: Mutex<Control>,
    /// Counters served as [`SimStats`](super::SimStats).
    pub stats: StatsCounters,
    admitted: AtomicUsize,
    next_id: AtomicU64,
}

/// Holds one of the `max_concurrent` slots until dropped.
#[derive(Debug)]
pub struct Admission<'a> {
    admitted: &'a AtomicUsize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SharedState {
    /// State for a fresh server.
    pub fn new(config: SimConfig) -> Self {
        Self {
            control: Mutex::new(Control::new(config)),
            stats: StatsCounters::default(),
            admitted: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    /// The control block; a panic elsewhere while holding it must not stop the server.
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<SimConfig> {
        Arc::clone(&self.control().config)
    }

    /// Replaces the configuration; the rate limiter, the dice (reseeded) and the
    /// `max_faults` budget start afresh.
    pub fn set_config(&self, config: SimConfig) {
        *self.control() = Control::new(config);
    }

    /// Takes a concurrency slot unless `max` are already taken.
    pub fn try_admit(&self, max: Option<usize>) -> Option<Admission<'_>> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| match max {
                Some(max) if n >= max => None,
                _ => Some(n.saturating_add(1)),
            })
            .ok()
            .map(|_| Admission {
                admitted: &self.admitted,
            })
    }

    /// Takes a rate-limiter token, or returns how long to wait for one.
    pub fn check_rate(&self) -> Result<(), Duration> {
        let now = tokio::time::Instant::now().into_std();
        match self.control().limiter.as_mut() {
            Some(limiter) => limiter.check(now),
            None => Ok(()),
        }
    }

    /// Rolls the fault dice and the jitter for one request.
    pub fn plan(&self) -> Plan {
        let mut control = self.control();
        let control = &mut *control;
        let fault = control.dice.roll(&control.config.faults);
        let jitter = control.config.jitter;
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(control.jitter.u64(0..=nanos))
        };
        Plan {
            fault,
            delay: control.config.latency.saturating_add(extra),
        }
    }

    /// A fresh completion id number.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::FaultConfig;

    #[test]
    fn admission_limits_concurrency() {
        let state = SharedState::new(SimConfig::default());
        let a = state.try_admit(Some(2));
        let b = state.try_admit(Some(2));
        assert!(a.is_some() && b.is_some());
        assert!(state.try_admit(Some(2)).is_none());
        drop(a);
        assert!(state.try_admit(Some(2)).is_some());
        assert!(state.try_admit(None).is_some());
    }

    #[test]
    fn plan_is_seeded_and_bounded() {
        let config = SimConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            faults: FaultConfig {
                server_error: 0.5,
                ..FaultConfig::default()
            },
            ..SimConfig::default()
        };
        let a = SharedState::new(config.clone());
        let b = SharedState::new(config.clone());
        for _ in 0..100 {
            let (pa, pb) = (a.plan(), b.plan());
            assert_eq!(pa, pb);
            assert!(pa.delay >= Duration::from_millis(10) && pa.delay <= Duration::from_millis(15));
        }
        // set_config restarts the dice.
        let first: Vec<_> = (0..20).map(|_| b.plan()).collect();
        b.set_config(config);
        let fresh = SharedState::new(a.config().as_ref().clone());
        let again: Vec<_> = (0..20).map(|_| b.plan()).collect();
        let expect: Vec<_> = (0..20).map(|_| fresh.plan()).collect();
        assert_eq!(again, expect);
        assert_eq!(first.len(), 20);
    }
}
