//! What the request pipeline reports about one AI call ([`CallObserver`]), and the one
//! fan-out ([`CallEvents`]) that records each event once into every place that counts
//! it: the operator's `EXPLAIN ANALYZE` metrics, the query's `blossom_metrics()` entry
//! and the session's live counters.

use std::sync::Arc;
use std::time::Duration;

use super::operator_metrics::AiMetrics;
use super::query_metrics::FunctionMetrics;
use super::stats::SessionStats;
use crate::error_class::ErrorClass;
use crate::provider::{ProviderError, TokenUsage};

/// Receives the events of one call's requests. Every method has a do-nothing default.
///
/// ```sql
/// SELECT function, requests, retries, latency_p95_ms, throttled_ms FROM blossom_metrics();
/// ```
///
/// shows what blossom's implementation ([`CallEvents`]) records.
pub trait CallObserver: Send + Sync {
    /// A prompt not asked before in this query.
    fn unique_prompt(&self) {}

    /// A row answered by an identical request of the same query.
    fn dedup_hit(&self) {}

    /// A prompt answered by the persistent response cache.
    fn cache_hit(&self) {}

    /// An answer paid for that could not be stored: the cache asked for is unusable.
    fn answer_not_cached(&self) {}

    /// A request a dry run (`blossom_estimate`) would have sent, of `prompt_chars`
    /// characters, whose prompt and longest answer (`max_answer_tokens`, 0 when unset)
    /// cost `cost_nanos` nano-USD at the model's price (`None` when it is unknown).
    fn not_sent(&self, _prompt_chars: usize, _cost_nanos: Option<u64>) {}

    /// The pack size in force after a packed answer was judged.
    fn pack_size(&self, _rows: u64) {}

    /// Rows a packed answer did not cover validly, asked again in smaller packs.
    fn repacked(&self, _rows: u64) {}

    /// Time an attempt waited for the rate limit or a provider-asked pause
    /// (`Retry-After`) before it could be sent.
    fn throttled(&self, _waited: Duration) {}

    /// An attempt is sent (`retry` when it is not the request's first).
    fn attempt_started(&self, _retry: bool) {}

    /// An attempt came back after `latency`: answered (with the provider's token usage,
    /// when it reported one) or failed with `error`.
    fn attempt_finished(
        &self,
        _latency: Duration,
        _usage: Option<TokenUsage>,
        _error: Option<&ProviderError>,
    ) {
    }

    /// What an answered attempt cost, in nano-USD: its tokens (as the provider reported
    /// them, else as estimated) at the model's price; `None` when the price is unknown.
    fn charged(&self, _cost_nanos: Option<u64>) {}

    /// An attempt in flight was dropped (its query stopped) before it came back.
    fn attempt_dropped(&self) {}

    /// A failed attempt will be retried; `class` is its error class.
    fn retrying(&self, _class: ErrorClass) {}
}

/// An observer that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl CallObserver for Unobserved {}

/// The observer of one AI call in one partition: each event is recorded once, here, in
/// the operator's metrics, the query's entry for the function and the session's
/// counters. A dry run (`blossom_estimate`) is not work the session's progress and
/// totals should show: its events reach only the query's entry.
#[derive(Debug, Clone)]
pub struct CallEvents {
    operator: AiMetrics,
    function: Arc<FunctionMetrics>,
    session: Arc<SessionStats>,
    dry_run: bool,
}

impl CallEvents {
    /// The fan-out into `operator` (the partition's metrics), `function` (the query's
    /// entry) and `session`.
    pub fn new(
        operator: AiMetrics,
        function: Arc<FunctionMetrics>,
        session: Arc<SessionStats>,
        dry_run: bool,
    ) -> Self {
        Self {
            operator,
            function,
            session,
            dry_run,
        }
    }

    /// `asked` rows of a batch need an answer; `skipped` were left uncalled by a CASE
    /// branch or AND/OR that did not need them.
    pub fn rows_started(&self, asked: u64, skipped: u64) {
        self.operator.rows.add(asked as usize);
        self.operator.skipped.add(skipped as usize);
        self.function.rows(asked);
        if !self.dry_run {
            self.session.rows_started(asked);
        }
    }

    /// The rows of a batch are done; `failed` of them failed for good.
    pub fn rows_finished(&self, asked: u64, failed: u64) {
        self.operator.failures.add(failed as usize);
        self.function.rows_finished(asked, failed);
        if !self.dry_run {
            self.session.rows_finished(asked, failed);
        }
    }

    /// A row whose requests a dry run could not count in full.
    pub fn estimate_incomplete(&self) {
        self.function.estimate_incomplete();
    }
}

impl CallObserver for CallEvents {
    fn unique_prompt(&self) {
        self.function.unique_prompt();
    }

    fn dedup_hit(&self) {
        self.operator.dedup_hits.add(1);
        self.function.dedup_hit();
        if !self.dry_run {
            self.session.dedup_hit();
        }
    }

    fn cache_hit(&self) {
        self.operator.cache_hits.add(1);
        self.function.cache_hit();
        if !self.dry_run {
            self.session.cache_hit();
        }
    }

    fn answer_not_cached(&self) {
        self.session.answer_not_cached();
    }

    fn not_sent(&self, prompt_chars: usize, cost_nanos: Option<u64>) {
        self.function.not_sent(prompt_chars, cost_nanos);
    }

    fn pack_size(&self, rows: u64) {
        self.function.pack_size(rows);
    }

    fn repacked(&self, rows: u64) {
        self.function.repacked(rows);
    }

    fn throttled(&self, waited: Duration) {
        self.function.throttled(waited);
    }

    fn attempt_started(&self, retry: bool) {
        self.operator.requests.add(1);
        if retry {
            self.operator.retries.add(1);
        }
        self.session.request_started(retry);
    }

    fn attempt_finished(
        &self,
        latency: Duration,
        usage: Option<TokenUsage>,
        _error: Option<&ProviderError>,
    ) {
        self.function.attempt_finished(latency, usage);
        let usage = usage.unwrap_or_default();
        self.session
            .request_finished(usage.prompt_tokens, usage.completion_tokens);
    }

    fn charged(&self, cost_nanos: Option<u64>) {
        self.function.charged(cost_nanos);
        if !self.dry_run {
            self.session.charged(cost_nanos);
        }
    }

    fn attempt_dropped(&self) {
        self.session.request_finished(0, 0);
    }

    fn retrying(&self, class: ErrorClass) {
        self.function.retrying(class);
    }
}
