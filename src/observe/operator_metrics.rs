//! The metrics `BlossomAiExec` reports in `EXPLAIN ANALYZE`: rows evaluated, requests
//! and retries sent, answers shared by deduplication or taken from the response cache,
//! failed rows, and time spent waiting on the provider.

use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, Time};

/// Counters of one partition of an AI operator.
#[derive(Debug, Clone)]
pub struct AiMetrics {
    /// Rows that needed an answer (NULL, blank and guarded-off rows excluded).
    pub rows: Count,
    /// HTTP requests sent, retries included.
    pub requests: Count,
    /// Requests that were retries.
    pub retries: Count,
    /// Rows answered by an identical request of the same query.
    pub dedup_hits: Count,
    /// Rows answered from the persistent response cache.
    pub cache_hits: Count,
    /// Rows whose call failed for good.
    pub failures: Count,
    /// Rows left uncalled because a CASE branch or AND/OR did not need them.
    pub skipped: Count,
    /// Wall time batches spent waiting for their answers.
    pub provider_wait: Time,
}

impl AiMetrics {
    /// The counters of `partition` in the operator's metrics `set`.
    pub fn new(set: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        let count = |name: &'static str| MetricBuilder::new(set).counter(name, partition);
        Self {
            rows: count("ai_rows"),
            requests: count("requests"),
            retries: count("retries"),
            dedup_hits: count("dedup_hits"),
            cache_hits: count("cache_hits"),
            failures: count("failed_rows"),
            skipped: count("skipped_rows"),
            provider_wait: MetricBuilder::new(set).subset_time("provider_wait", partition),
        }
    }
}
