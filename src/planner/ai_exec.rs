//! [`AiExec`]: the operator that evaluates AI calls. It appends one column per call to
//! its input, evaluates all calls of a batch concurrently (the session's dispatcher caps
//! requests in flight), and keeps several batches in flight while preserving their order.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::{Fields, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::equivalence::ProjectionMapping;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::future::{BoxFuture, try_join_all};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, Stream, StreamExt};

use super::ai_call::{AiCall, AnswerMemo, CallRuntime};
use super::metrics::AiMetrics;
use crate::config::BlossomOptions;
use crate::dispatch::Dispatcher;
use crate::error_log::ErrorLog;
use crate::estimate::DryRun;
use crate::query_metrics::QueryMetrics;

/// Rows of one partition whose answers may be pending at once, at least; the limit is
/// 16 × `blossom.max_concurrency` when that is larger.
const MIN_ROWS_IN_FLIGHT: usize = 1024;

/// What belongs to one query: its metrics and budget, and the session's error log its
/// failed rows go to.
#[derive(Debug, Clone)]
pub(crate) struct QueryScope {
    pub errors: Arc<ErrorLog>,
    pub metrics: Arc<QueryMetrics>,
}

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
    scope: QueryScope,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AiExec {
    pub(crate) fn try_new(
        input: Arc<dyn ExecutionPlan>,
        calls: Vec<AiCall>,
        dispatcher: Arc<Dispatcher>,
        memo: Arc<AnswerMemo>,
        scope: QueryScope,
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
            scope,
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

    /// The AI functions it calls, in order.
    pub fn functions(&self) -> Vec<&'static str> {
        self.calls.iter().map(AiCall::function_name).collect()
    }

    /// The operator's input.
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

    fn supports_limit_pushdown(&self) -> bool {
        // One output row per input row: a LIMIT above can be pushed below, so that only
        // the rows kept are asked about.
        true
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
            self.scope.clone(),
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
        let settings = Arc::new(options.resolve()?);
        let dry_run = context.session_config().get_extension::<DryRun>();
        let rows_in_flight_limit = (settings.max_concurrency * 16).max(MIN_ROWS_IN_FLIGHT);
        let runtime = CallRuntime {
            dispatcher: Arc::clone(&self.dispatcher),
            memo: Arc::clone(&self.memo),
            settings,
            metrics: AiMetrics::new(&self.metrics, partition),
            errors: Arc::clone(&self.scope.errors),
            query: dry_run
                .as_ref()
                .map(|d| Arc::clone(d.query()))
                .unwrap_or_else(|| Arc::clone(&self.scope.metrics)),
            dry_run: dry_run.is_some(),
        };
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(PipelinedStream {
            schema: self.schema(),
            input: Some(input),
            calls: Arc::new(self.calls.clone()),
            runtime,
            in_flight: FuturesOrdered::new(),
            rows_in_flight: 0,
            rows_in_flight_limit,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The output of one partition. It takes input batches as soon as they arrive, while
/// fewer than `rows_in_flight_limit` rows wait for answers, evaluates them all at once
/// (the dispatcher caps requests in flight), and emits them in input order as each is
/// complete: a trickling input is neither held back nor serialized.
struct PipelinedStream {
    schema: SchemaRef,
    input: Option<SendableRecordBatchStream>,
    calls: Arc<Vec<AiCall>>,
    runtime: CallRuntime,
    in_flight: FuturesOrdered<BoxFuture<'static, (usize, Result<RecordBatch>)>>,
    rows_in_flight: usize,
    rows_in_flight_limit: usize,
    baseline: BaselineMetrics,
}

impl PipelinedStream {
    /// The future evaluating every call of `batch` and appending the columns.
    fn evaluate(&self, batch: RecordBatch) -> BoxFuture<'static, (usize, Result<RecordBatch>)> {
        let calls = Arc::clone(&self.calls);
        let runtime = self.runtime.clone();
        let schema = Arc::clone(&self.schema);
        let rows = batch.num_rows();
        async move {
            let timer = runtime.metrics.provider_wait.timer();
            let result = try_join_all(calls.iter().map(|call| call.evaluate(&batch, &runtime)))
                .await
                .and_then(|columns| {
                    let mut arrays = batch.columns().to_vec();
                    arrays.extend(columns);
                    Ok(RecordBatch::try_new(schema, arrays)?)
                });
            timer.done();
            (rows, result)
        }
        .boxed()
    }
}

impl Stream for PipelinedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Take what the input has ready, within the limit (always at least one batch).
        while self.in_flight.is_empty() || self.rows_in_flight < self.rows_in_flight_limit {
            let Some(input) = self.input.as_mut() else {
                break;
            };
            match input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    self.rows_in_flight += batch.num_rows();
                    let future = self.evaluate(batch);
                    self.in_flight.push_back(future);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => self.input = None,
                Poll::Pending => break,
            }
        }
        match self.in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some((rows, result))) => {
                self.rows_in_flight -= rows;
                let result = result.record_output(&self.baseline);
                Poll::Ready(Some(result))
            }
            Poll::Ready(None) if self.input.is_none() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl RecordBatchStream for PipelinedStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
