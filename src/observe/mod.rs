//! Observation: what a session's AI work did, in one place. The session's live counters
//! ([`SessionStats`]), the per-query, per-function metrics behind `blossom_metrics()`,
//! the log of failed rows behind `blossom_errors()`, the operator's `EXPLAIN ANALYZE`
//! metrics, and the one fan-out ([`CallEvents`]) that records each event of a call into
//! all of them once.
//!
//! ```sql
//! SELECT query_id, function, rows, requests, cache_hits FROM blossom_metrics();
//! SELECT function, error_class, input FROM blossom_errors();
//! ```

pub mod error_log;
mod events;
mod operator_metrics;
pub mod query_metrics;
pub mod stats;
pub mod stream_stats;

pub use error_log::{ErrorLog, ErrorsTable, RowError, error_log};
pub use events::{CallEvents, CallObserver, Unobserved};
pub use operator_metrics::AiMetrics;
pub use query_metrics::{
    FunctionMetrics, MetricsLog, MetricsTable, QueryMetrics, WorkReport, metrics_log,
};
pub use stats::{PerWorker, SessionStats, StatsSnapshot, per_worker_since, session_stats};
pub use stream_stats::{StreamSnapshot, StreamStats};
