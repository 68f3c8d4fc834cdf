//! [`ask_in_waves`]: AI operators under a `LIMIT` ask in growing waves (see
//! `execution::Waves`), so a query whose limit is filled early stops asking.
//!
//! A `LIMIT` reaches an AI operator through the operators that pass rows on as they
//! come: projections, filters, repartitions and coalesces, unions, and the probe side
//! (the right input) of a join. Anything that must see all its input first (a sort,
//! an aggregate, a window, the build side of a join) stops it: `ORDER BY ... LIMIT`
//! asks every row, since the first rows of the order are known only at the end.
//!
//! ```sql
//! EXPLAIN SELECT id FROM 'data/reviews.csv' WHERE ai_filter(text, 'refund') LIMIT 5;
//! -- BlossomAiExec: calls=[ai_filter(text@1, refund) AS __blossom_ai_2], waves
//! ```
//!
//! A filter over an operator asking in waves passes each batch on at once (DataFusion's
//! `FilterExec` would otherwise gather 8,192 rows, and so every wave, before passing
//! any on).

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{CrossJoinExec, HashJoinExec, NestedLoopJoinExec};
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};

use crate::execution::{AiExec, AiJoinExec};

/// `plan` with every AI operator that a `LIMIT` reaches asking in waves.
pub(crate) fn ask_in_waves(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(mark(plan, false)?.0)
}

/// `node` with the AI operators below it marked when `limited`; and whether one below
/// it asks in waves.
fn mark(node: Arc<dyn ExecutionPlan>, limited: bool) -> Result<(Arc<dyn ExecutionPlan>, bool)> {
    let is_limit = node.downcast_ref::<GlobalLimitExec>().is_some()
        || node.downcast_ref::<LocalLimitExec>().is_some();
    let passes = is_limit || passes_rows_on(&node);
    // Joins pass a limit to their probe side only; the build side is read whole.
    let probe_side = is_join(&node).then(|| node.children().len().saturating_sub(1));
    let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok((node, false));
    }
    let mut marked = Vec::with_capacity(children.len());
    let mut waves_below = false;
    let mut changed = false;
    for (i, child) in children.iter().enumerate() {
        let child_limited = match probe_side {
            Some(probe) => limited && i == probe,
            None => is_limit || (limited && passes),
        };
        let (new_child, waves) = mark(Arc::clone(child), child_limited)?;
        changed |= !Arc::ptr_eq(&new_child, child);
        waves_below |= waves;
        marked.push(new_child);
    }
    let mut node = if changed {
        node.replace_children(
            marked,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?
    } else {
        node
    };
    if limited && let Some(ai) = node.downcast_ref::<AiExec>() {
        node = Arc::new(ai.in_waves());
        waves_below = true;
    } else if limited && let Some(join) = node.downcast_ref::<AiJoinExec>() {
        node = Arc::new(join.in_waves());
        waves_below = true;
    } else if waves_below && let Some(filter) = node.downcast_ref::<FilterExec>() {
        node = Arc::new(filter.with_batch_size(1)?);
    }
    Ok((node, waves_below && passes))
}

/// Operators that pass rows on as they come, one output row per input row at most.
fn passes_rows_on(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<ProjectionExec>().is_some()
        || node.downcast_ref::<FilterExec>().is_some()
        || node.downcast_ref::<RepartitionExec>().is_some()
        || node.downcast_ref::<CoalescePartitionsExec>().is_some()
        || node.downcast_ref::<UnionExec>().is_some()
        || node.downcast_ref::<AiExec>().is_some()
        || is_join(node)
}

fn is_join(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<HashJoinExec>().is_some()
        || node.downcast_ref::<NestedLoopJoinExec>().is_some()
        || node.downcast_ref::<CrossJoinExec>().is_some()
}
