//! Live counters of a session's AI work, fed by the call observer (`CallEvents`),
//! for progress bars, per-statement summaries and run reports.
//!
//! ```no_run
//! # async fn f(ctx: datafusion::prelude::SessionContext) -> datafusion::common::Result<()> {
//! let stats = blossom_sql::observe::session_stats(&ctx).expect("a blossom session");
//! let before = stats.snapshot();
//! ctx.sql("SELECT sentiment(text) FROM 'data/reviews.csv'").await?.collect().await?;
//! println!("{:?}", stats.snapshot().since(&before));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::config::NANO_USD_PER_USD;

/// Counters of everything AI functions did in a session, since it started.
#[derive(Debug, Default)]
pub struct SessionStats {
    rows: AtomicU64,
    rows_done: AtomicU64,
    failed_rows: AtomicU64,
    dedup_hits: AtomicU64,
    cache_hits: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    uncached_answers: AtomicU64,
    cost_nanos: AtomicU64,
    unpriced_requests: AtomicU64,
    /// Why the response cache asked for could not be used, once it could not.
    cache_unavailable: Mutex<Option<String>>,
    /// On a cluster's coordinator: what each worker reported, by worker name (the
    /// totals above include it).
    workers: Mutex<BTreeMap<String, StatsSnapshot>>,
}

/// What each worker of a cluster did, by worker name.
pub type PerWorker = BTreeMap<String, StatsSnapshot>;

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Rows that needed an answer (NULL, blank and short-circuited rows excluded).
    pub rows: u64,
    /// Of those, rows answered or failed so far.
    pub rows_done: u64,
    /// Rows whose call failed for good.
    pub failed_rows: u64,
    /// Rows answered by an identical request of the same query.
    pub dedup_hits: u64,
    /// Rows answered from the persistent response cache (`blossom.cache`).
    pub cache_hits: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// Requests waiting for an answer right now.
    pub in_flight: u64,
    /// Prompt tokens the provider reported.
    pub prompt_tokens: u64,
    /// Answer tokens the provider reported.
    pub completion_tokens: u64,
    /// Answers that would have been written to the response cache but were not, because
    /// the cache asked for could not be used (another process had it open): each was
    /// paid for without the cache, and a rerun pays for it again.
    pub uncached_answers: u64,
    /// Nano-USD the answered requests with a known price cost (see [`Self::cost`]).
    #[serde(skip)]
    pub cost_nanos: u64,
    /// Answered requests whose model has no known price: while there are any, the
    /// cost is unknown.
    pub unpriced_requests: u64,
}

impl StatsSnapshot {
    /// USD the answered requests cost, at their models' prices; `None` (unknown) when a
    /// request's model has no known price. Cached and deduplicated answers cost 0.
    pub fn cost(&self) -> Option<f64> {
        (self.unpriced_requests == 0).then(|| self.cost_nanos as f64 / NANO_USD_PER_USD)
    }

    /// What happened between `before` and this snapshot (`in_flight` is this one's).
    pub fn since(&self, before: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            in_flight: self.in_flight,
            ..self.combine(before, u64::saturating_sub)
        }
    }

    /// The counts of this snapshot and `other` added up (`in_flight` is this one's), to
    /// total several statements.
    pub fn plus(&self, other: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            in_flight: self.in_flight,
            ..self.combine(other, u64::saturating_add)
        }
    }

    /// Every counter of `self` and `other` combined with `op`: the one place that lists
    /// the fields, so a new counter cannot be forgotten by `since` or `plus`.
    fn combine(&self, other: &StatsSnapshot, op: fn(u64, u64) -> u64) -> StatsSnapshot {
        StatsSnapshot {
            rows: op(self.rows, other.rows),
            rows_done: op(self.rows_done, other.rows_done),
            failed_rows: op(self.failed_rows, other.failed_rows),
            dedup_hits: op(self.dedup_hits, other.dedup_hits),
            cache_hits: op(self.cache_hits, other.cache_hits),
            requests: op(self.requests, other.requests),
            retries: op(self.retries, other.retries),
            in_flight: op(self.in_flight, other.in_flight),
            prompt_tokens: op(self.prompt_tokens, other.prompt_tokens),
            completion_tokens: op(self.completion_tokens, other.completion_tokens),
            uncached_answers: op(self.uncached_answers, other.uncached_answers),
            cost_nanos: op(self.cost_nanos, other.cost_nanos),
            unpriced_requests: op(self.unpriced_requests, other.unpriced_requests),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl SessionStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            rows: get(&self.rows),
            rows_done: get(&self.rows_done),
            failed_rows: get(&self.failed_rows),
            dedup_hits: get(&self.dedup_hits),
            cache_hits: get(&self.cache_hits),
            requests: get(&self.requests),
            retries: get(&self.retries),
            in_flight: get(&self.in_flight),
            prompt_tokens: get(&self.prompt_tokens),
            completion_tokens: get(&self.completion_tokens),
            uncached_answers: get(&self.uncached_answers),
            cost_nanos: get(&self.cost_nanos),
            unpriced_requests: get(&self.unpriced_requests),
        }
    }

    /// What each worker did, on a cluster's coordinator (empty elsewhere).
    pub fn per_worker(&self) -> PerWorker {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds what `worker` reported it did (`MetricsLog::absorb` gives it) to the
    /// counters and to the worker's own.
    pub fn absorb(&self, worker: &str, done: &StatsSnapshot) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let entry = workers.entry(worker.to_string()).or_default();
        *entry = entry.plus(done);
        for (counter, n) in [
            (&self.rows, done.rows),
            (&self.rows_done, done.rows_done),
            (&self.failed_rows, done.failed_rows),
            (&self.dedup_hits, done.dedup_hits),
            (&self.cache_hits, done.cache_hits),
            (&self.requests, done.requests),
            (&self.retries, done.retries),
            (&self.prompt_tokens, done.prompt_tokens),
            (&self.completion_tokens, done.completion_tokens),
            (&self.uncached_answers, done.uncached_answers),
            (&self.cost_nanos, done.cost_nanos),
            (&self.unpriced_requests, done.unpriced_requests),
        ] {
            add(counter, n);
        }
    }

    /// Why the response cache the session asked for could not be used (e.g. "the
    /// response cache /x/responses.redb is in use by another process"), if it could not.
    pub fn cache_unavailable(&self) -> Option<String> {
        self.cache_unavailable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn cache_refused(&self, why: String) {
        *self
            .cache_unavailable
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    pub(crate) fn answer_not_cached(&self) {
        add(&self.uncached_answers, 1);
    }

    pub(crate) fn rows_started(&self, n: u64) {
        add(&self.rows, n);
    }

    pub(crate) fn rows_finished(&self, done: u64, failed: u64) {
        add(&self.rows_done, done);
        add(&self.failed_rows, failed);
    }

    pub(crate) fn dedup_hit(&self) {
        add(&self.dedup_hits, 1);
    }

    pub(crate) fn cache_hit(&self) {
        add(&self.cache_hits, 1);
    }

    pub(crate) fn request_started(&self, retry: bool) {
        add(&self.requests, 1);
        add(&self.in_flight, 1);
        if retry {
            add(&self.retries, 1);
        }
    }

    pub(crate) fn charged(&self, cost_nanos: Option<u64>) {
        match cost_nanos {
            Some(nanos) => add(&self.cost_nanos, nanos),
            None => add(&self.unpriced_requests, 1),
        }
    }

    pub(crate) fn request_finished(&self, prompt_tokens: u64, completion_tokens: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        add(&self.prompt_tokens, prompt_tokens);
        add(&self.completion_tokens, completion_tokens);
    }
}

/// What each worker did between `before` and `now` (two [`SessionStats::per_worker`]).
pub fn per_worker_since(now: &PerWorker, before: &PerWorker) -> PerWorker {
    now.iter()
        .map(|(worker, counts)| {
            let before = before.get(worker).copied().unwrap_or_default();
            (worker.clone(), counts.since(&before))
        })
        .filter(|(_, counts)| counts.rows > 0 || counts.requests > 0)
        .collect()
}

/// The counters of a session made by [`crate::BlossomSessionBuilder`].
pub fn session_stats(ctx: &SessionContext) -> Option<Arc<SessionStats>> {
    ctx.state().config().get_extension::<SessionStats>()
}
