//! [`AiExec`]: the operator that evaluates AI calls. It appends one column per call to
//! its input, evaluates all calls of a batch concurrently (the session's dispatcher caps
//! requests in flight), and keeps several batches in flight while preserving their order.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Fields, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::equivalence::ProjectionMapping;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;
use futures::future::try_join_all;

use super::ai_call::{AiCall, AnswerMemo, CallRuntime};
use crate::config::BlossomOptions;
use crate::dispatch::Dispatcher;

/// Input batches of one partition evaluated at the same time (output order is kept).
const BATCHES_IN_FLIGHT: usize = 4;

/// Evaluates AI calls over its input, appending one column per call.
///
/// ```sql
/// EXPLAIN SELECT sentiment(text) FROM 'data/reviews.csv';
/// -- ProjectionExec: expr=[__blossom_ai_6@6 as sentiment(text)]
/// --   BlossomAiExec: calls=[sentiment(text@1) AS __blossom_ai_6]
/// ```
#[derive(Debug, Clone)]
pub struct AiExec {
    input: Arc<dyn ExecutionPlan>,
    calls: Vec<AiCall>,
    dispatcher: Arc<Dispatcher>,
    memo: Arc<AnswerMemo>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AiExec {
    pub(crate) fn try_new(
        input: Arc<dyn ExecutionPlan>,
        calls: Vec<AiCall>,
        dispatcher: Arc<Dispatcher>,
        memo: Arc<AnswerMemo>,
    ) -> Result<Self> {
        let input_schema = input.schema();
        let fields: Fields = input_schema
            .fields()
            .iter()
            .cloned()
            .chain(calls.iter().map(|c| Arc::clone(&c.field)))
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            input_schema.metadata().clone(),
        ));
        let properties = Arc::new(Self::properties_for(&input, &calls, schema)?);
        Ok(Self {
            input,
            calls,
            dispatcher,
            memo,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// Input columns keep their orderings and partitioning; the new columns are
    /// functions of the input.
    fn properties_for(
        input: &Arc<dyn ExecutionPlan>,
        calls: &[AiCall],
        schema: SchemaRef,
    ) -> Result<PlanProperties> {
        let input_schema = input.schema();
        let passthrough = input_schema.fields().iter().enumerate().map(|(i, f)| {
            (
                Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>,
                f.name().to_string(),
            )
        });
        let computed = calls.iter().map(|c| (Arc::clone(&c.expr), c.name.clone()));
        let mapping = ProjectionMapping::try_new(passthrough.chain(computed), &input_schema)?;
        Ok(PlanProperties::new(
            input.equivalence_properties().project(&mapping, schema),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        ))
    }

    /// The input plan.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for AiExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let calls: Vec<String> = self.calls.iter().map(ToString::to_string).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "BlossomAiExec: calls=[{}]", calls.join(", "))
            }
            DisplayFormatType::TreeRender => writeln!(f, "calls={}", calls.join(", ")),
        }
    }
}

impl ExecutionPlan for AiExec {
    fn name(&self) -> &str {
        "BlossomAiExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let mut recursion = TreeNodeRecursion::Continue;
        for call in &self.calls {
            recursion = f(&call.expr)?;
            if recursion == TreeNodeRecursion::Stop {
                break;
            }
        }
        Ok(recursion)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::assert_eq_or_internal_err!(
            children.len(),
            1,
            "BlossomAiExec takes one child"
        );
        Ok(Arc::new(Self::try_new(
            children.swap_remove(0),
            self.calls.clone(),
            Arc::clone(&self.dispatcher),
            Arc::clone(&self.memo),
        )?))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let options = context
            .session_config()
            .options()
            .extensions
            .get::<BlossomOptions>()
            .cloned()
            .unwrap_or_default();
        let runtime = CallRuntime {
            dispatcher: Arc::clone(&self.dispatcher),
            memo: Arc::clone(&self.memo),
            settings: Arc::new(options.resolve()?),
        };
        let input = self.input.execute(partition, context)?;
        let calls = Arc::new(self.calls.clone());
        let schema = self.schema();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let output_schema = Arc::clone(&schema);
        let stream = input
            .map(move |batch| {
                let calls = Arc::clone(&calls);
                let runtime = runtime.clone();
                let schema = Arc::clone(&schema);
                async move {
                    let batch = batch?;
                    let columns =
                        try_join_all(calls.iter().map(|call| call.evaluate(&batch, &runtime)))
                            .await?;
                    let mut arrays = batch.columns().to_vec();
                    arrays.extend(columns);
                    Ok(RecordBatch::try_new(schema, arrays)?)
                }
            })
            .buffered(BATCHES_IN_FLIGHT)
            .map(move |batch: Result<RecordBatch>| {
                if let Ok(batch) = &batch {
                    baseline.record_output(batch.num_rows());
                }
                batch
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            output_schema,
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
