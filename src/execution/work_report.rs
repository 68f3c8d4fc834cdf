//! On a cluster's worker, each partition of an AI operator tells the coordinator what
//! the query's AI calls on this worker counted so far ([`crate::dispatch::report_work`]):
//! about once a second while it runs (the coordinator's progress bar), and once more
//! before the partition's stream ends, so that by the time the coordinator sees the
//! query's last batch it holds every worker's final counts, for its summary line,
//! `--report` and `blossom_metrics()`.
//!
//! ```sql
//! -- on the coordinator of `blossom --workers ...`
//! SELECT worker, sum(rows), sum(requests) FROM blossom_metrics() GROUP BY worker;
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::services::QueryState;
use crate::config::ProviderSettings;
use crate::dispatch::report_work;

/// How often a partition reports while it runs, for the coordinator's progress bar.
const EVERY: Duration = Duration::from_secs(1);

/// `stream`, which reports the query's counts when the session is a cluster's worker
/// (`blossom.cluster_limiter` is set): in the background at most once every [`EVERY`]
/// while batches come, and, awaited, when it ends or fails. `stream` itself otherwise,
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
    let reporting = futures::stream::unfold(Some((stream, Instant::now())), move |state| {
        let settings = Arc::clone(&settings);
        let query = Arc::clone(&query);
        async move {
            let (mut stream, last) = state?;
            match stream.next().await {
                Some(Ok(batch)) if last.elapsed() >= EVERY => {
                    // The coordinator keeps the newest of each entry's reports, in
                    // whatever order they arrive.
                    tokio::spawn(async move {
                        report_work(&settings, &query.metrics.functions()).await;
                    });
                    Some((Ok(batch), Some((stream, Instant::now()))))
                }
                Some(Ok(batch)) => Some((Ok(batch), Some((stream, last)))),
                end => {
                    report_work(&settings, &query.metrics.functions()).await;
                    end.map(|error| (error, None))
                }
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, reporting))
}
