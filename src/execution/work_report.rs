//! On a cluster's worker, the end of each partition of an AI operator tells the
//! coordinator what the query's AI calls on this worker counted so far
//! ([`crate::dispatch::report_work`]), before the partition's stream ends: by the time
//! the coordinator sees the query's last batch, it holds every worker's counts, for its
//! summary line, `--report` and `blossom_metrics()`.
//!
//! ```sql
//! -- on the coordinator of `blossom --workers ...`
//! SELECT worker, sum(rows), sum(requests) FROM blossom_metrics() GROUP BY worker;
//! ```

use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::services::QueryState;
use crate::config::ProviderSettings;
use crate::dispatch::report_work;

/// `stream`, which reports the query's counts when it ends (or fails) when the session
/// is a cluster's worker (`blossom.cluster_limiter` is set); `stream` itself otherwise,
/// and for a dry run, which counts nothing the coordinator shows.
pub(crate) fn reported(
    stream: SendableRecordBatchStream,
    settings: &Arc<ProviderSettings>,
    query: &Arc<QueryState>,
) -> SendableRecordBatchStream {
    if settings.cluster_limiter.is_none() || query.dry_run {
        return stream;
    }
    let schema = stream.schema();
    let settings = Arc::clone(settings);
    let query = Arc::clone(query);
    let reporting = futures::stream::unfold(Some(stream), move |stream| {
        let settings = Arc::clone(&settings);
        let query = Arc::clone(&query);
        async move {
            let mut stream = stream?;
            match stream.next().await {
                Some(Ok(batch)) => Some((Ok(batch), Some(stream))),
                end => {
                    report_work(&settings, &query.metrics.functions()).await;
                    end.map(|error| (error, None))
                }
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, reporting))
}
