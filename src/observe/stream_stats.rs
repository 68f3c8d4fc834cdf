//! [`StreamStats`]: what a session's streaming sources and sinks did, for the CLI's
//! status line, its `--report` and the Prometheus endpoint: records read, bad lines,
//! reconnects, records delivered to sinks and records sent to dead-letter files.
//!
//! ```sql
//! INSERT INTO scored SELECT id, sentiment(text) AS s FROM events;  -- counted as it runs
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The session's streaming counters, shared by its sources and sinks.
#[derive(Debug)]
pub struct StreamStats {
    started: Instant,
    records_in: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    sink_retries: AtomicU64,
}

impl Default for StreamStats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            records_in: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            sink_retries: AtomicU64::new(0),
        }
    }
}

/// A copy of [`StreamStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSnapshot {
    /// Records read from sources (good lines).
    pub records_in: u64,
    /// Lines of sources that were no record (recorded in `blossom_errors()`).
    pub malformed: u64,
    /// Connections of sources made again after a drop.
    pub reconnects: u64,
    /// Records sinks delivered.
    pub delivered: u64,
    /// Records sinks wrote to their dead-letter files.
    pub dead_lettered: u64,
    /// Sink requests sent again after a failure.
    pub sink_retries: u64,
    /// Milliseconds since the session started.
    pub uptime_ms: u64,
}

impl StreamStats {
    /// Counts `n` records read.
    pub fn read(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a bad line.
    pub fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a reconnect.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` records a sink delivered.
    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` records a sink wrote to its dead-letter file.
    pub fn dead_lettered(&self, n: u64) {
        self.dead_lettered.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a sink request sent again.
    pub fn sink_retried(&self) {
        self.sink_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StreamSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StreamSnapshot {
            records_in: get(&self.records_in),
            malformed: get(&self.malformed),
            reconnects: get(&self.reconnects),
            delivered: get(&self.delivered),
            dead_lettered: get(&self.dead_lettered),
            sink_retries: get(&self.sink_retries),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_it_is_told() {
        let stats = StreamStats::default();
        stats.read(3);
        stats.malformed();
        stats.reconnected();
        stats.delivered(2);
        stats.dead_lettered(1);
        stats.sink_retried();
        let snap = stats.snapshot();
        assert_eq!(
            (snap.records_in, snap.malformed, snap.reconnects),
            (3, 1, 1)
        );
        assert_eq!(
            (snap.delivered, snap.dead_lettered, snap.sink_retries),
            (2, 1, 1)
        );
    }
}
