//! [`pass_rows_on`]: over an unbounded source, filters pass each batch on as it comes.
//! DataFusion's `FilterExec` gathers its output into batches of 8,192 rows, so a
//! trickling stream's rows would wait for thousands more before reaching the AI calls
//! or the sink; with a target of one row, every input batch goes on at once, whole.
//!
//! ```sql
//! CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR)
//!   STORED AS NDJSON LOCATION 'http://127.0.0.1:9000/stream';
//! SELECT id, sentiment(text) FROM events WHERE text <> '';  -- each row as it is answered
//! ```

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// `plan` with its filters passing batches on at once, when it reads an unbounded
/// source; otherwise `plan` as it is.
pub(crate) fn pass_rows_on(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if !plan.boundedness().is_unbounded() {
        return Ok(plan);
    }
    plan.transform_up(|node| match node.downcast_ref::<FilterExec>() {
        Some(filter) if filter.batch_size() > 1 => {
            Ok(Transformed::yes(Arc::new(filter.with_batch_size(1)?) as _))
        }
        _ => Ok(Transformed::no(node)),
    })
    .data()
}
