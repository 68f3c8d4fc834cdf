//! Errors of a cluster query that name the worker at fault. When a worker dies in the
//! middle of a query, datafusion-distributed reports what its gRPC stream saw ("h2
//! protocol error", "broken pipe"), not which worker it was; [`NamedFailures`], the top
//! of every plan a coordinator runs, checks the workers again when an error comes up
//! and adds the ones that no longer answer to it. datafusion-distributed does not run a
//! failed task again elsewhere, so the query fails; answers already received are in the
//! response cache, and a rerun pays only for the rest.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

use crate::cluster::{TokenChannels, Workers, check_workers};

/// Passes its input on; an error gets the names of the workers that are down.
#[derive(Debug)]
pub struct NamedFailures {
    input: Arc<dyn ExecutionPlan>,
    channels: TokenChannels,
    workers: Workers,
}

impl NamedFailures {
    /// `input`, run over `workers`.
    pub fn new(input: Arc<dyn ExecutionPlan>, channels: TokenChannels, workers: Workers) -> Self {
        Self {
            input,
            channels,
            workers,
        }
    }
}

impl DisplayAs for NamedFailures {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let workers: Vec<String> = self.workers.urls().iter().map(Workers::name).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "BlossomClusterExec: workers=[{}]", workers.join(", "))
            }
            DisplayFormatType::TreeRender => writeln!(f, "workers={}", workers.join(", ")),
        }
    }
}

impl ExecutionPlan for NamedFailures {
    fn name(&self) -> &str {
        "BlossomClusterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::assert_eq_or_internal_err!(
            children.len(),
            1,
            "BlossomClusterExec takes one child"
        );
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.channels.clone(),
            self.workers.clone(),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Keep),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let input = self.input.execute(partition, context)?;
        let (channels, workers) = (self.channels.clone(), self.workers.clone());
        let stream = input.then(move |item| {
            let (channels, workers) = (channels.clone(), workers.clone());
            async move {
                match item {
                    Ok(batch) => Ok(batch),
                    Err(error) => Err(name_failures(error, &channels, &workers).await),
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// `error`, with the workers that no longer answer named in front of it.
async fn name_failures(
    error: DataFusionError,
    channels: &TokenChannels,
    workers: &Workers,
) -> DataFusionError {
    let mut down = Vec::new();
    for url in workers.urls() {
        if check_workers(channels, std::slice::from_ref(&url))
            .await
            .is_err()
        {
            down.push(Workers::name(&url));
        }
    }
    if down.is_empty() {
        return error;
    }
    let which = match down.len() {
        1 => format!("blossom worker {} failed during the query", down[0]),
        _ => format!(
            "blossom workers {} failed during the query",
            down.join(", ")
        ),
    };
    DataFusionError::Context(which, Box::new(error))
}
