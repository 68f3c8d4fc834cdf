//! How many tasks a stage gets. datafusion-distributed sizes a stage by its input
//! (bytes of the files it scans), which keeps a small scan, and the AI calls over it,
//! on one task; but AI calls cost seconds per row, not bytes. A stage holding an AI
//! operator therefore asks for one task per worker (the planner caps it at the number
//! of workers and `distributed.max_tasks_per_stage`), and its scan is split into byte
//! ranges (CSV, JSON) or row groups (Parquet) among them.

use async_trait::async_trait;
use datafusion::common::Result;
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DesiredTaskCountHandler,
};

use crate::execution::{AiExec, AiJoinExec};

/// One task per worker for stages with an AI operator.
#[derive(Debug, Clone, Copy, Default)]
pub struct AiStages;

#[async_trait]
impl DesiredTaskCountHandler for AiStages {
    async fn handle(
        &self,
        ev: DesiredTaskCountEvent<'_>,
    ) -> Option<Result<DesiredTaskCountEventResponse>> {
        let plan = ev.plan;
        (plan.downcast_ref::<AiExec>().is_some() || plan.downcast_ref::<AiJoinExec>().is_some())
            .then(|| Ok(DesiredTaskCountEventResponse::desired(usize::MAX)))
    }
}
