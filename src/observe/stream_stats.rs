//! [`StreamStats`]: what a session's streaming sources and sinks did, for the CLI's
//! status line, its `--report` and the Prometheus endpoint: records read, bad lines,
//! reconnects, records delivered to sinks and records sent to dead-letter files; and
//! the signal that stops the sources reading ([`StreamStats::stop_sources`]), which the
//! CLI gives on Ctrl-C or SIGTERM so that a streaming query ends as if its sources had
//! ended: the rows read are answered and the sink flushed.
//!
//! ```sql
//! INSERT INTO scored SELECT id, sentiment(text) AS s FROM events;  -- counted as it runs
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;

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
    /// `true` once the sources were asked to stop reading.
    stop: watch::Sender<bool>,
}

impl Default for StreamStats {
    fn default() -> Self {
        Self {
            stop: watch::Sender::new(false),
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

    /// Asks every source of the session to stop reading and end its stream, as if
    /// the stream had ended (the CLI's first Ctrl-C): rows already read go on through
    /// the query and the sink. Sources opened afterwards end at once. Idempotent.
    pub fn stop_sources(&self) {
        self.stop.send_replace(true);
    }

    /// Lets sources read again after a stopped statement has ended (the shell's next
    /// statement): clears what [`Self::stop_sources`] set.
    pub fn resume_sources(&self) {
        self.stop.send_replace(false);
    }

    /// Whether [`Self::stop_sources`] was called (and not undone by
    /// [`Self::resume_sources`]).
    pub fn sources_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once [`Self::stop_sources`] is called (at once if it was): for a source
    /// to `select!` on beside its reads.
    ///
    /// ```
    /// # async fn f(stats: std::sync::Arc<blossom_sql::observe::StreamStats>) {
    /// tokio::select! {
    ///     () = stats.sources_stop() => { /* end the stream */ }
    ///     () = std::future::pending::<()>() => { /* a read */ }
    /// }
    /// # }
    /// ```
    pub async fn sources_stop(&self) {
        let mut stopped = self.stop.subscribe();
        // The sender lives in `self`, which outlives this borrow: no error to handle.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }

    /// A receiver of the stop flag (`true` once stopped), for a source that keeps
    /// its own task apart from the `StreamStats`.
    pub fn stop_receiver(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
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

    #[tokio::test]
    async fn stopping_the_sources_wakes_every_waiter_once_and_for_all() {
        let stats = std::sync::Arc::new(StreamStats::default());
        assert!(!stats.sources_stopped());
        let mut receiver = stats.stop_receiver();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let stats = std::sync::Arc::clone(&stats);
                tokio::spawn(async move { stats.sources_stop().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "nobody stopped yet"
        );
        stats.stop_sources();
        for waiter in waiters {
            waiter.await.expect("a waiter wakes");
        }
        assert!(stats.sources_stopped());
        receiver
            .changed()
            .await
            .expect("the receiver sees the change");
        assert!(*receiver.borrow());
        // A source opened after the stop ends at once; stopping again changes nothing.
        stats.stop_sources();
        stats.sources_stop().await;
        assert!(stats.sources_stopped());
        // The shell's next statement reads again.
        stats.resume_sources();
        assert!(!stats.sources_stopped());
        let waiter = {
            let stats = std::sync::Arc::clone(&stats);
            tokio::spawn(async move { stats.sources_stop().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "not stopped again yet");
        stats.stop_sources();
        waiter.await.expect("a waiter wakes");
    }
}
