//! [`AiExec`]: the operator that evaluates AI calls. It appends one column per call to
//! its input, evaluates all calls of a batch concurrently (the session's dispatcher caps
//! requests in flight), and keeps several batches in flight while preserving their order.
//!
//! The operator holds only its description (the calls, their guards, its schema and the
//! query's number); the dispatcher, logs and cache come from the session it executes in
//! ([`AiServices`]), and the query's memo, budget and metrics are made at execute time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

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

use super::ai_call::{AiCall, CallRuntime};
use super::services::Started;
use super::waves::Waves;
use super::work_report::reported;
use crate::observe::AiMetrics;

/// Rows of one partition whose answers may be pending at once, at least; the limit is
/// 16 requests' rows per `blossom.max_concurrency` slot (a request being a pack of
/// `blossom.pack_rows` rows when the calls pack) when that is larger, so that the next
/// batch's requests are ready while the last ones of a batch are answered.
const MIN_ROWS_IN_FLIGHT: usize = 1024;

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
    /// The query's number in its session (`blossom_metrics().query_id`).
    query_id: u64,
    /// Under a `LIMIT`: ask in growing waves, each only when more rows are wanted
    /// ([`Waves`]).
    waves: bool,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AiExec {
    pub(crate) fn try_new(
        input: Arc<dyn ExecutionPlan>,
        calls: Vec<AiCall>,
        query_id: u64,
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
            query_id,
            waves: false,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The same operator asking in growing waves, for a `LIMIT` above it: a wave is
    /// asked only when the operators above want more rows.
    pub(crate) fn in_waves(&self) -> Self {
        Self {
            waves: true,
            metrics: ExecutionPlanMetricsSet::new(),
            ..self.clone()
        }
    }

    /// Whether it asks in waves.
    pub fn asks_in_waves(&self) -> bool {
        self.waves
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

    /// Its calls.
    pub(crate) fn calls(&self) -> &[AiCall] {
        &self.calls
    }

    /// The number of the query it belongs to.
    pub fn query_id(&self) -> u64 {
        self.query_id
    }
}

impl DisplayAs for AiExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let calls: Vec<String> = self.calls.iter().map(ToString::to_string).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "BlossomAiExec: calls=[{}]", calls.join(", "))?;
                if self.waves {
                    f.write_str(", waves")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "calls={}", calls.join(", "))?;
                if self.waves {
                    writeln!(f, "waves=true")?;
                }
                Ok(())
            }
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
        let exec = Self::try_new(children.swap_remove(0), self.calls.clone(), self.query_id)?;
        Ok(Arc::new(Self {
            waves: self.waves,
            ..exec
        }))
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
        let Started {
            options,
            settings,
            services,
            query,
        } = Started::in_context(&context, self.query_id)?;
        let operator = AiMetrics::new(&self.metrics, partition);
        let runtimes: Vec<CallRuntime> = self
            .calls
            .iter()
            .map(|call| {
                CallRuntime::new(
                    call.function_name(),
                    &call.to_string(),
                    &services,
                    &query,
                    &settings,
                    &operator,
                )
            })
            .collect();
        let packs = self.calls.iter().any(AiCall::packable) && settings.pack_rows > 1;
        let rows_per_request = if packs { settings.pack_rows } else { 1 };
        let rows_in_flight_limit = settings
            .max_concurrency
            .saturating_mul(16 * rows_per_request)
            .max(MIN_ROWS_IN_FLIGHT);
        // A wave is a pack of rows when the calls pack, else a row.
        let waves = self.waves.then(|| Waves::new(rows_per_request));
        // Over a stream, rows arriving one by one wait a little for a pack to fill.
        let gather = (packs
            && options.pack_wait_ms > 0
            && self.input.boundedness().is_unbounded()
            && !self.waves)
            .then(|| {
                Gather::new(
                    Duration::from_millis(options.pack_wait_ms),
                    settings.pack_rows,
                )
            });
        let input = self.input.execute(partition, context)?;
        let stream = Box::pin(PipelinedStream {
            schema: self.schema(),
            input: Some(input),
            calls: Arc::new(self.calls.iter().cloned().zip(runtimes).collect()),
            operator,
            in_flight: FuturesOrdered::new(),
            rows_in_flight: 0,
            rows_in_flight_limit,
            waves,
            unasked: None,
            gather,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        });
        Ok(reported(stream, &settings, &query))
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
    /// Each call, with what it evaluates with.
    calls: Arc<Vec<(AiCall, CallRuntime)>>,
    operator: AiMetrics,
    in_flight: FuturesOrdered<BoxFuture<'static, (usize, Result<RecordBatch>)>>,
    rows_in_flight: usize,
    rows_in_flight_limit: usize,
    /// Under a `LIMIT`: one wave in flight at a time, the next one asked only when the
    /// stream is polled again ([`Waves`]).
    waves: Option<Waves>,
    /// In waves: the rows of the current input batch not asked yet.
    unasked: Option<RecordBatch>,
    /// Over a stream: rows waiting for a pack to fill (`blossom.pack_wait_ms`).
    gather: Option<Gather>,
    baseline: BaselineMetrics,
}

impl PipelinedStream {
    /// The future evaluating every call of `batch` and appending the columns.
    fn evaluate(&self, batch: RecordBatch) -> BoxFuture<'static, (usize, Result<RecordBatch>)> {
        let calls = Arc::clone(&self.calls);
        let provider_wait = self.operator.provider_wait.clone();
        let schema = Arc::clone(&self.schema);
        let rows = batch.num_rows();
        async move {
            let timer = provider_wait.timer();
            let result = try_join_all(
                calls
                    .iter()
                    .map(|(call, runtime)| call.evaluate(&batch, runtime)),
            )
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
        if self.waves.is_some() {
            return self.poll_wave(cx);
        }
        // Take what the input has ready, within the limit (always at least one batch).
        while self.in_flight.is_empty() || self.rows_in_flight < self.rows_in_flight_limit {
            let Some(input) = self.input.as_mut() else {
                break;
            };
            match input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    let ready = match self.gather.as_mut() {
                        Some(gather) => gather.push(batch),
                        None => Some(Ok(batch)),
                    };
                    if let Some(batch) = ready {
                        self.start(batch?);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    self.input = None;
                    if let Some(batch) = self.gather.as_mut().and_then(Gather::take) {
                        self.start(batch?);
                    }
                }
                Poll::Pending => break,
            }
        }
        // Rows that waited long enough for their pack are asked as they are.
        if let Some(batch) = self.gather.as_mut().and_then(|g| g.due(cx)) {
            self.start(batch?);
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

impl PipelinedStream {
    /// Starts evaluating `batch`.
    fn start(&mut self, batch: RecordBatch) {
        self.rows_in_flight += batch.num_rows();
        let future = self.evaluate(batch);
        self.in_flight.push_back(future);
    }
}

/// Rows of a stream waiting for a pack to fill: a batch smaller than a pack waits, with
/// those after it, until a pack's worth has come or the first of them has waited `wait`.
struct Gather {
    wait: Duration,
    pack_rows: usize,
    batches: Vec<RecordBatch>,
    rows: usize,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Gather {
    fn new(wait: Duration, pack_rows: usize) -> Self {
        Self {
            wait,
            pack_rows,
            batches: Vec::new(),
            rows: 0,
            deadline: None,
        }
    }

    /// `batch` added; the rows to ask now, if a pack's worth has come.
    fn push(&mut self, batch: RecordBatch) -> Option<Result<RecordBatch>> {
        if self.batches.is_empty() && batch.num_rows() >= self.pack_rows {
            return Some(Ok(batch));
        }
        self.rows += batch.num_rows();
        self.batches.push(batch);
        if self.rows >= self.pack_rows {
            return self.take();
        }
        if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.wait)));
        }
        None
    }

    /// The rows waiting, if their wait is over (else the waker is registered).
    fn due(&mut self, cx: &mut Context<'_>) -> Option<Result<RecordBatch>> {
        let deadline = self.deadline.as_mut()?;
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => self.take(),
            Poll::Pending => None,
        }
    }

    /// Every row waiting, as one batch.
    fn take(&mut self) -> Option<Result<RecordBatch>> {
        self.deadline = None;
        self.rows = 0;
        let batches = std::mem::take(&mut self.batches);
        let schema = batches.first()?.schema();
        Some(
            datafusion::arrow::compute::concat_batches(&schema, &batches)
                .map_err(|e| datafusion::common::DataFusionError::ArrowError(Box::new(e), None)),
        )
    }
}

impl PipelinedStream {
    /// In waves: the answered wave, asking the next one only when none is in flight.
    fn poll_wave(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        if self.in_flight.is_empty() {
            loop {
                let unasked = match self.unasked.take() {
                    Some(batch) if batch.num_rows() > 0 => batch,
                    _ => {
                        let Some(input) = self.input.as_mut() else {
                            return Poll::Ready(None);
                        };
                        match ready!(input.poll_next_unpin(cx)) {
                            Some(Ok(batch)) => batch,
                            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                            None => {
                                self.input = None;
                                return Poll::Ready(None);
                            }
                        }
                    }
                };
                let rows = unasked.num_rows();
                let Some(waves) = self.waves.as_mut() else {
                    return Poll::Ready(None);
                };
                let size = waves.next(rows);
                if size == 0 {
                    continue;
                }
                self.unasked = Some(unasked.slice(size, rows - size));
                let future = self.evaluate(unasked.slice(0, size));
                self.in_flight.push_back(future);
                break;
            }
        }
        match ready!(self.in_flight.poll_next_unpin(cx)) {
            Some((_, result)) => Poll::Ready(Some(result.record_output(&self.baseline))),
            None => Poll::Pending,
        }
    }
}

impl RecordBatchStream for PipelinedStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
