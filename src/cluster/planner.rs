//! The coordinator's query planner: datafusion-distributed's planner (which wraps
//! blossom's own, `LiftAiCalls`), after two checks that make a cluster query fail
//! before any request is sent rather than half-way: every setting can travel to the
//! workers, and every worker answers. The workers are `blossom.workers` at the time of
//! the query, so `SET blossom.workers` changes them for the queries after it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

use crate::cluster::failures::NamedFailures;
use crate::cluster::{
    TokenChannels, Workers, check_workers, parse_workers, settings_that_cannot_travel,
};
use crate::config::BlossomOptions;

/// Checks, then plans over the workers.
pub struct ClusterPlanner {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
    channels: TokenChannels,
    workers: Workers,
}

impl std::fmt::Debug for ClusterPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPlanner")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl ClusterPlanner {
    /// A planner checking `workers` over `channels` before `distributed` plans.
    pub fn new(
        distributed: Arc<dyn QueryPlanner + Send + Sync>,
        channels: TokenChannels,
        workers: Workers,
    ) -> Self {
        Self {
            distributed,
            channels,
            workers,
        }
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = session_state
            .config()
            .options()
            .extensions
            .get::<BlossomOptions>()
            .cloned()
            .unwrap_or_default();
        let stuck = settings_that_cannot_travel(&options);
        if !stuck.is_empty() {
            return Err(DataFusionError::Configuration(format!(
                "{} cannot reach the workers: settings travel to them as gRPC metadata, which \
                 holds printable ASCII on one line only",
                stuck.join(", ")
            )));
        }
        // SET blossom.workers between queries changes the workers of the next ones.
        let urls = parse_workers(options.workers.as_deref().unwrap_or(""))?;
        if urls.is_empty() {
            return Err(DataFusionError::Configuration(
                "blossom.workers is empty: this session coordinates a cluster and needs at least \
                 one worker (a session of one process is started without --workers)"
                    .to_string(),
            ));
        }
        check_workers(&self.channels, &urls).await?;
        self.workers.set(urls);
        let plan = self
            .distributed
            .create_physical_plan(logical_plan, session_state)
            .await?;
        Ok(Arc::new(NamedFailures::new(
            plan,
            self.channels.clone(),
            self.workers.clone(),
        )))
    }
}
