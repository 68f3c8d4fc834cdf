//! [`AiJoinExec`]: a semantic join, `a JOIN b ON ai_match(a.text, b.text, condition)`,
//! planned as a whole instead of one request per pair.
//!
//! Both inputs are read whole. The pairs that pass the join's other conditions are the
//! candidates; their texts are deduplicated (a pair of texts is asked once, whatever
//! rows hold it; with `blossom.join_symmetric`, once per unordered pair), optionally
//! narrowed by the texts' embeddings (`blossom.join_prefilter`), and laid out in blocks
//! of up to `blossom.join_block` texts per side. Each block is one prompt listing its
//! texts, whose answer names the matching pairs; an answer that is not a list of the
//! block's own pairs, each once, is asked again in two halves, down to a single pair.
//! Under a `LIMIT` the blocks are asked in growing waves, and no more once the limit is
//! filled.
//!
//! ```sql
//! EXPLAIN SELECT a.id, b.id FROM 'data/reviews.csv' a JOIN 'data/reviews.csv' b
//!   ON a.id < b.id AND ai_match(a.text, b.text, 'the two reviews express the same opinion');
//! -- BlossomAiJoinExec: on=ai_match(text@1, text@3, ...), filter=id@0 < id@2
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    DataFusionError, JoinType, Result, ScalarValue, internal_datafusion_err, internal_err,
};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan,
    PlanProperties, ReplaceChildrenOptions, common,
};
use futures::future::{BoxFuture, join_all};
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::ai_call::{AiCall, CallRuntime};
use super::services::Started;
use super::waves::Waves;
use super::work_report::reported;
use crate::config::{JoinPrefilter, OnError};
use crate::dispatch::{CallError, StopReason, embedding};
use crate::error_class::ErrorClass;
use crate::functions::{AiFunction, AiMatch, Constants};
use crate::observe::error_log::now_unix_ms;
use crate::observe::{AiMetrics, RowError};
use crate::provider::{ChatMessage, ChatRequest, message_chars, truncate_chars};

/// The most candidate pairs (those passing the join's other conditions) a semantic
/// join takes on; more needs a narrower join.
const MAX_CANDIDATE_PAIRS: usize = 20_000_000;

/// Pairs of rows whose join condition is evaluated at once.
const PAIRS_PER_CHUNK: usize = 65_536;

/// How much of each text an error message shows.
const INPUT_EXCERPT_CHARS: usize = 40;

/// The semantic join operator: the matching pairs of its two inputs, as an inner join
/// gives them (left columns, then right ones, then the join's projection).
#[derive(Debug, Clone)]
pub struct AiJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    /// The `ai_match` call, over the joined columns (left, then right).
    call: AiCall,
    /// The join's other conditions, over the joined columns.
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// The output columns, as indices into the joined ones.
    projection: Option<Vec<usize>>,
    query_id: u64,
    waves: bool,
    joined: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// The parts of an `ai_match` call a semantic join asks with.
struct MatchArgs {
    /// The text read from the left input, over its columns.
    left_text: Arc<dyn PhysicalExpr>,
    /// The text read from the right input, over its columns.
    right_text: Arc<dyn PhysicalExpr>,
    /// Whether the call's first text is the right input's (`ai_match(b.text, a.text,
    /// ...)`): its texts are then the A texts of the prompts.
    swapped: bool,
    condition: String,
}

impl AiJoinExec {
    /// Whether `call`, over the joined columns of a join whose left input has
    /// `left_columns` columns, can be asked in blocks: an `ai_match` call one of whose
    /// texts reads only left columns and the other only right ones, and whose condition
    /// is a literal.
    pub(crate) fn can_plan(call: &Arc<dyn PhysicalExpr>, left_columns: usize) -> bool {
        match_args_of(call, left_columns).is_some()
    }

    pub(crate) fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        call: &Arc<dyn PhysicalExpr>,
        filter: Option<Arc<dyn PhysicalExpr>>,
        projection: Option<Vec<usize>>,
        query_id: u64,
    ) -> Result<Self> {
        let (joined, _) = build_join_schema(&left.schema(), &right.schema(), &JoinType::Inner);
        let joined = Arc::new(joined);
        let Some(call) = AiCall::try_new("__blossom_match".to_string(), call, vec![], &joined)?
        else {
            return internal_err!("BlossomAiJoinExec takes an ai_match call, not {call}");
        };
        if match_args_of(&call.expr, left.schema().fields().len()).is_none() {
            return internal_err!("BlossomAiJoinExec cannot ask {} in blocks", call.expr);
        }
        let schema = match &projection {
            Some(indices) => Arc::new(joined.project(indices)?),
            None => Arc::clone(&joined),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            left,
            right,
            call,
            filter,
            projection,
            query_id,
            waves: false,
            joined,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The same join asking its blocks in growing waves, for a `LIMIT` above it.
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

    /// The `ai_match` call, over the joined columns.
    pub fn match_call(&self) -> &Arc<dyn PhysicalExpr> {
        &self.call.expr
    }

    /// The join's other conditions, over the joined columns.
    pub fn filter(&self) -> Option<&Arc<dyn PhysicalExpr>> {
        self.filter.as_ref()
    }

    /// The output columns, as indices into the joined ones.
    pub fn projection(&self) -> Option<&[usize]> {
        self.projection.as_deref()
    }

    /// The number of the query it belongs to.
    pub fn query_id(&self) -> u64 {
        self.query_id
    }
}

/// The texts and condition of `call`, if a semantic join can ask it in blocks.
fn match_args_of(call: &Arc<dyn PhysicalExpr>, left_columns: usize) -> Option<MatchArgs> {
    if AiCall::function_of(call)?.name() != "ai_match" {
        return None;
    }
    let args = call.children();
    let (left, right, condition) = (args.first()?, args.get(1)?, args.get(2)?);
    let condition = match condition.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(c))
        | ScalarValue::LargeUtf8(Some(c))
        | ScalarValue::Utf8View(Some(c))
            if !c.trim().is_empty() =>
        {
            c.clone()
        }
        _ => return None,
    };
    let reads = |expr: &Arc<dyn PhysicalExpr>| {
        let mut columns = Vec::new();
        let _ = expr.apply(|e| {
            if let Some(column) = e.downcast_ref::<Column>() {
                columns.push(column.index());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        columns
    };
    let on_left_side = |columns: &[usize]| columns.iter().all(|&i| i < left_columns);
    let on_right_side = |columns: &[usize]| columns.iter().all(|&i| i >= left_columns);
    let (first, second) = (reads(left), reads(right));
    if first.is_empty() || second.is_empty() {
        return None;
    }
    let swapped = if on_left_side(&first) && on_right_side(&second) {
        false
    } else if on_right_side(&first) && on_left_side(&second) {
        true
    } else {
        return None;
    };
    let (left_text, right_text) = if swapped {
        (right, left)
    } else {
        (left, right)
    };
    let right_text = Arc::clone(right_text)
        .transform_up(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) => {
                    Transformed::yes(Arc::new(Column::new(c.name(), c.index() - left_columns)) as _)
                }
                None => Transformed::no(e),
            })
        })
        .data()
        .ok()?;
    Some(MatchArgs {
        left_text: Arc::clone(left_text),
        right_text,
        swapped,
        condition,
    })
}

impl DisplayAs for AiJoinExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let waves = if self.waves { ", waves" } else { "" };
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "BlossomAiJoinExec: on={}", self.call.expr)?;
                if let Some(filter) = &self.filter {
                    write!(f, ", filter={filter}")?;
                }
                if let Some(projection) = &self.projection {
                    write!(f, ", projection={projection:?}")?;
                }
                f.write_str(waves)
            }
            DisplayFormatType::TreeRender => writeln!(f, "on={}{waves}", self.call.expr),
        }
    }
}

impl ExecutionPlan for AiJoinExec {
    fn name(&self) -> &str {
        "BlossomAiJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition, Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let recursion = f(&self.call.expr)?;
        match (&self.filter, recursion) {
            (Some(filter), TreeNodeRecursion::Continue) => f(filter),
            _ => Ok(recursion),
        }
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [left, right] = <[_; 2]>::try_from(children)
            .map_err(|_| internal_datafusion_err!("BlossomAiJoinExec takes two children"))?;
        let exec = Self::try_new(
            left,
            right,
            &self.call.expr,
            self.filter.clone(),
            self.projection.clone(),
            self.query_id,
        )?;
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
        if partition != 0 {
            return internal_err!("BlossomAiJoinExec has one partition, not {partition}");
        }
        let Started {
            options,
            settings,
            services,
            query,
        } = Started::in_context(&context, self.query_id)?;
        let operator = AiMetrics::new(&self.metrics, partition);
        let runtime = CallRuntime::new(
            "ai_match",
            &self.call.to_string(),
            &services,
            &query,
            &settings,
            &operator,
        );
        let args = match_args_of(&self.call.expr, self.left.schema().fields().len())
            .ok_or_else(|| internal_datafusion_err!("BlossomAiJoinExec lost its ai_match call"))?;
        let join = Arc::new(SemanticJoin {
            call: self.call.clone(),
            args,
            filter: self.filter.clone(),
            projection: self.projection.clone(),
            joined: Arc::clone(&self.joined),
            runtime,
            block: options.join_block,
            prefilter: options.join_prefilter,
            symmetric: options.join_symmetric,
            waves: self.waves,
        });
        let left = self.left.execute(0, Arc::clone(&context))?;
        let right = self.right.execute(0, context)?;
        let stream = futures::stream::once(async move {
            let left = common::collect(left).await?;
            let right = common::collect(right).await?;
            let pairs = Arc::clone(&join).prepare(left, right).await?;
            Ok::<_, DataFusionError>(join.answer(pairs))
        })
        .try_flatten();
        let stream = Box::pin(RecordBatchStreamAdapter::new(self.schema(), stream));
        Ok(reported(stream, &settings, &query))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One execution of a semantic join.
struct SemanticJoin {
    call: AiCall,
    args: MatchArgs,
    filter: Option<Arc<dyn PhysicalExpr>>,
    projection: Option<Vec<usize>>,
    joined: SchemaRef,
    runtime: CallRuntime,
    block: usize,
    prefilter: JoinPrefilter,
    symmetric: bool,
    waves: bool,
}

/// A pair of texts asked about, as numbers into [`Candidates::texts`]: the first is
/// shown as an A text, the second as a B text.
type Key = (u32, u32);

/// A row of one input and the number of its text.
type RowText = (u32, u32);

/// What a semantic join asks about: its inputs, the distinct texts, and for every pair
/// of texts the pairs of rows that hold it.
struct Candidates {
    left: RecordBatch,
    right: RecordBatch,
    texts: Vec<String>,
    rows: HashMap<Key, Vec<(u32, u32)>>,
    blocks: Vec<Block>,
}

/// One prompt's worth of pairs: its A and B texts and the pairs among them that are
/// candidates (the rest of the block's pairs are not asked about, whatever the answer).
#[derive(Debug, Clone)]
struct Block {
    a: Vec<u32>,
    b: Vec<u32>,
    pairs: HashSet<Key>,
}

impl Block {
    /// A block of `pairs`, listing only the texts they use.
    fn of(pairs: HashSet<Key>) -> Self {
        let mut a: Vec<u32> = pairs.iter().map(|k| k.0).collect();
        let mut b: Vec<u32> = pairs.iter().map(|k| k.1).collect();
        a.sort_unstable();
        a.dedup();
        b.sort_unstable();
        b.dedup();
        Self { a, b, pairs }
    }

    fn splittable(&self) -> bool {
        self.a.len() > 1 || self.b.len() > 1
    }

    /// The block in two, its longer side halved.
    fn halves(&self) -> [Block; 2] {
        let (side, first): (&[u32], bool) = if self.a.len() >= self.b.len() {
            (&self.a, true)
        } else {
            (&self.b, false)
        };
        let upper: HashSet<u32> = side[side.len() / 2..].iter().copied().collect();
        let (high, low): (HashSet<Key>, HashSet<Key>) = self
            .pairs
            .iter()
            .partition(|k| upper.contains(if first { &k.0 } else { &k.1 }));
        [Block::of(low), Block::of(high)]
    }
}

/// The pairs a block's answer says match, and how many of its pairs failed.
#[derive(Debug, Default)]
struct Answered {
    matched: Vec<Key>,
    failed: u64,
}

impl SemanticJoin {
    /// The candidates of the join of `left` and `right`, laid out in blocks.
    async fn prepare(
        self: Arc<Self>,
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
    ) -> Result<Candidates> {
        let left_schema = left.first().map(RecordBatch::schema);
        let right_schema = right.first().map(RecordBatch::schema);
        let (Some(left_schema), Some(right_schema)) = (left_schema, right_schema) else {
            return Ok(Candidates::empty(&self.joined));
        };
        let left = concat_batches(&left_schema, &left)?;
        let right = concat_batches(&right_schema, &right)?;
        let mut texts = Texts::default();
        let left_ids = texts.intern(&text_column(&self.args.left_text, &left)?);
        let right_ids = texts.intern(&text_column(&self.args.right_text, &right)?);
        let left_rows: Vec<RowText> = valid(&left_ids);
        let right_rows: Vec<RowText> = valid(&right_ids);
        let mut rows: HashMap<Key, Vec<(u32, u32)>> = HashMap::new();
        let mut candidates = 0usize;
        let per_chunk = (PAIRS_PER_CHUNK / right_rows.len().max(1)).max(1);
        for chunk in left_rows.chunks(per_chunk) {
            let pairs: Vec<(RowText, RowText)> = chunk
                .iter()
                .flat_map(|l| right_rows.iter().map(move |r| (*l, *r)))
                .collect();
            let keep = self.passes_filter(&left, &right, &pairs)?;
            for (((l, lt), (r, rt)), keep) in pairs.into_iter().zip(keep) {
                if keep {
                    candidates += 1;
                    rows.entry(self.key(lt, rt)).or_default().push((l, r));
                }
            }
            if candidates > MAX_CANDIDATE_PAIRS {
                return Err(DataFusionError::Execution(format!(
                    "ai_match() in a join: more than {MAX_CANDIDATE_PAIRS} pairs of rows pass \
                     the join's other conditions ({} × {} rows), more than a semantic join \
                     asks about; narrow the join with a more selective condition",
                    left_rows.len(),
                    right_rows.len()
                )));
            }
        }
        let mut keys: Vec<Key> = rows.keys().copied().collect();
        keys.sort_unstable();
        let keys = self.prefiltered(keys, &texts.texts).await?;
        rows.retain(|key, _| keys.binary_search(key).is_ok());
        self.runtime.events.rows_started(keys.len() as u64, 0);
        let blocks = blocks(&keys, self.block);
        Ok(Candidates {
            left,
            right,
            texts: texts.texts,
            rows,
            blocks,
        })
    }

    /// The key the texts of a left and a right row are asked under: the call's first
    /// text as A; with a symmetric condition, the same for both orders.
    fn key(&self, left: u32, right: u32) -> Key {
        let (a, b) = if self.args.swapped {
            (right, left)
        } else {
            (left, right)
        };
        if self.symmetric && b < a {
            (b, a)
        } else {
            (a, b)
        }
    }

    /// Which pairs of rows (with their texts' numbers) pass the join's other conditions.
    fn passes_filter(
        &self,
        left: &RecordBatch,
        right: &RecordBatch,
        pairs: &[(RowText, RowText)],
    ) -> Result<Vec<bool>> {
        let Some(filter) = &self.filter else {
            return Ok(vec![true; pairs.len()]);
        };
        let left_rows = UInt32Array::from_iter_values(pairs.iter().map(|p| p.0.0));
        let right_rows = UInt32Array::from_iter_values(pairs.iter().map(|p| p.1.0));
        let batch = joined_batch(&self.joined, left, right, &left_rows, &right_rows)?;
        let values = filter.evaluate(&batch)?.into_array(batch.num_rows())?;
        let values = cast(&values, &DataType::Boolean)?;
        let values = values
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| internal_datafusion_err!("a join condition is not boolean"))?;
        Ok((0..values.len())
            .map(|i| values.is_valid(i) && values.value(i))
            .collect())
    }

    /// The keys `blossom.join_prefilter` keeps, sorted.
    async fn prefiltered(&self, keys: Vec<Key>, texts: &[String]) -> Result<Vec<Key>> {
        if self.prefilter == JoinPrefilter::Off || keys.is_empty() {
            return Ok(keys);
        }
        let mut used: Vec<u32> = keys.iter().flat_map(|k| [k.0, k.1]).collect();
        used.sort_unstable();
        used.dedup();
        let settings = &self.runtime.scope.settings;
        let requests: Vec<ChatRequest> = used
            .iter()
            .map(|&t| ChatRequest {
                model: settings.embedding_model.clone(),
                messages: vec![ChatMessage::user(texts[t as usize].clone())],
                temperature: None,
                max_tokens: None,
                response_format: None,
            })
            .collect();
        let asked: Vec<Option<&ChatRequest>> = requests.iter().map(Some).collect();
        let answers = embedding::answers(&asked, None, &self.runtime.scope).await;
        let mut vectors: HashMap<u32, Vec<f32>> = HashMap::with_capacity(used.len());
        for (&text, answer) in used.iter().zip(answers) {
            let answer = match answer {
                Some(Ok(answer)) => answer,
                Some(Err(error)) => return Err(prefilter_error(&error)),
                None => continue,
            };
            let vector: Vec<f32> = serde_json::from_str(&answer.content).map_err(|e| {
                DataFusionError::Execution(format!(
                    "blossom.join_prefilter: the embedding of a text is not a list of numbers: {e}"
                ))
            })?;
            vectors.insert(text, vector);
        }
        let similarity = |k: &Key| match (vectors.get(&k.0), vectors.get(&k.1)) {
            (Some(a), Some(b)) => cosine(a, b),
            _ => f64::NEG_INFINITY,
        };
        let mut kept: Vec<Key> = match self.prefilter {
            JoinPrefilter::Off => keys,
            JoinPrefilter::Cosine(threshold) => keys
                .into_iter()
                .filter(|k| similarity(k) >= threshold)
                .collect(),
            JoinPrefilter::Top(k) => {
                let mut by_left: BTreeMap<u32, Vec<(f64, Key)>> = BTreeMap::new();
                for key in keys {
                    by_left
                        .entry(key.0)
                        .or_default()
                        .push((similarity(&key), key));
                }
                by_left
                    .into_values()
                    .flat_map(|mut ranked| {
                        ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
                        ranked.into_iter().take(k).map(|(_, key)| key)
                    })
                    .collect()
            }
        };
        kept.sort_unstable();
        Ok(kept)
    }

    /// The matching pairs of rows, a batch per wave of blocks (one wave of all blocks
    /// when no `LIMIT` asks for waves).
    fn answer(
        self: Arc<Self>,
        candidates: Candidates,
    ) -> futures::stream::BoxStream<'static, Result<RecordBatch>> {
        let waves = Waves::new(1);
        let state = (self, Arc::new(candidates), waves, 0usize, 0u64, 0u64);
        futures::stream::try_unfold(
            state,
            |(join, candidates, mut waves, next, asked, failed)| async move {
                let remaining = candidates.blocks.len() - next;
                if remaining == 0 {
                    join.runtime.events.rows_finished(asked, failed);
                    return Ok(None);
                }
                let size = if join.waves {
                    waves.next(remaining)
                } else {
                    remaining
                };
                let wave = &candidates.blocks[next..next + size];
                let answered = join_all(wave.iter().cloned().map(|b| join.ask(b, &candidates)))
                    .await
                    .into_iter()
                    .collect::<Result<Vec<Answered>>>()?;
                let asked = asked + wave.iter().map(|b| b.pairs.len() as u64).sum::<u64>();
                let failed = failed + answered.iter().map(|a| a.failed).sum::<u64>();
                let matched: Vec<Key> = answered.into_iter().flat_map(|a| a.matched).collect();
                let batch = join.output(&candidates, &matched)?;
                Ok(Some((
                    batch,
                    (join, candidates, waves, next + size, asked, failed),
                )))
            },
        )
        .boxed()
    }

    /// The answer to one block: the candidate pairs it says match. A broken answer is
    /// asked again in two halves; a block of one pair that still fails is recorded.
    fn ask<'a>(
        &'a self,
        block: Block,
        candidates: &'a Candidates,
    ) -> BoxFuture<'a, Result<Answered>> {
        async move {
            let text = |t: &u32| candidates.texts[*t as usize].as_str();
            let a: Vec<&str> = block.a.iter().map(text).collect();
            let b: Vec<&str> = block.b.iter().map(text).collect();
            let messages = AiMatch::block_messages(&a, &b, &self.args.condition);
            let scope = &self.runtime.scope;
            if message_chars(&messages) > scope.settings.max_prompt_chars && block.splittable() {
                return self.ask_halves(&block, candidates).await;
            }
            let request = self.call.request(&scope.settings, messages);
            let answer = match scope.answer(&request).await {
                Ok(answer) => answer,
                Err(error) => return self.failed_request(&block, &a, &b, &error),
            };
            match AiMatch::parse_block(&answer.content, a.len(), b.len()) {
                Ok(pairs) => Ok(Answered {
                    matched: pairs
                        .into_iter()
                        .map(|(i, j)| (block.a[i], block.b[j]))
                        .filter(|key| block.pairs.contains(key))
                        .collect(),
                    failed: 0,
                }),
                Err(_) if block.splittable() => {
                    scope.events.repacked(block.pairs.len() as u64);
                    self.ask_halves(&block, candidates).await
                }
                Err(_) => {
                    scope.events.repacked(1);
                    self.ask_pair(&block, &a, &b).await
                }
            }
        }
        .boxed()
    }

    /// A block of one pair whose block answer was broken: the pair asked on its own,
    /// with `ai_match`'s YES/NO prompt.
    async fn ask_pair(&self, block: &Block, a: &[&str], b: &[&str]) -> Result<Answered> {
        let (Some(left), Some(right)) = (a.first(), b.first()) else {
            return Ok(Answered::default());
        };
        let scope = &self.runtime.scope;
        let messages =
            AiMatch.messages(&[left, right, &self.args.condition], &Constants::default());
        let request = self.call.request(&scope.settings, messages);
        let answer = match scope.answer(&request).await {
            Ok(answer) => answer,
            Err(error) => return self.failed_request(block, a, b, &error),
        };
        match AiMatch.parse(&answer.content, &Constants::default()) {
            Ok(ScalarValue::Boolean(Some(true))) => Ok(Answered {
                matched: block.pairs.iter().copied().collect(),
                failed: 0,
            }),
            Ok(_) => Ok(Answered::default()),
            Err(why) => self.failed(
                block,
                a,
                b,
                ErrorClass::InvalidAnswer,
                None,
                None,
                format!("{why} (asked about the pair alone, after a broken block answer)"),
            ),
        }
    }

    async fn ask_halves(&self, block: &Block, candidates: &Candidates) -> Result<Answered> {
        let mut answered = Answered::default();
        let halves = block.halves().into_iter().filter(|h| !h.pairs.is_empty());
        for half in join_all(halves.map(|h| self.ask(h, candidates))).await {
            let half = half?;
            answered.matched.extend(half.matched);
            answered.failed += half.failed;
        }
        Ok(answered)
    }

    /// A block whose request failed: the query's error for a budget or a stop, else its
    /// pairs recorded as failed.
    fn failed_request(
        &self,
        block: &Block,
        a: &[&str],
        b: &[&str],
        error: &CallError,
    ) -> Result<Answered> {
        match error {
            CallError::Failed {
                attempts,
                error: provider_error,
            } => self.failed(
                block,
                a,
                b,
                provider_error.class(),
                provider_error.status(),
                Some(*attempts),
                error.to_string(),
            ),
            CallError::OverBudget(exceeded) => {
                Err(DataFusionError::External(Box::new(exceeded.clone())))
            }
            CallError::Stopped(reason) => Err(DataFusionError::Execution(reason.to_string())),
            CallError::DryRun => Ok(Answered::default()),
        }
    }

    /// Records a block's pairs as failed: the query fails under `blossom.on_error =
    /// 'fail'`; under `'null'` they do not match.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        block: &Block,
        a: &[&str],
        b: &[&str],
        class: ErrorClass,
        status: Option<u16>,
        attempts: Option<u32>,
        message: String,
    ) -> Result<Answered> {
        let scope = &self.runtime.scope;
        if scope.dry_run {
            return Ok(Answered::default());
        }
        let excerpt = |texts: &[&str]| {
            let first = truncate_chars(
                texts.first().copied().unwrap_or_default(),
                INPUT_EXCERPT_CHARS,
            );
            match texts.len() {
                0 | 1 => format!("{first:?}"),
                n => format!("{first:?} (+{} more)", n - 1),
            }
        };
        let input = format!("A {} × B {}", excerpt(a), excerpt(b));
        self.runtime.errors.record(RowError {
            query_id: scope.query_id,
            function: "ai_match".to_string(),
            input: input.clone(),
            error_class: class.as_str().to_string(),
            status,
            message: message.clone(),
            attempts,
            at_unix_ms: now_unix_ms(),
        });
        let failure = format!("ai_match() failed for the pairs of {input}: {message}");
        if scope.settings.on_error == OnError::Fail {
            scope
                .query
                .stop
                .stop(StopReason::RowFailed(failure.clone()));
            return Err(DataFusionError::Execution(failure));
        }
        tracing::warn!("{failure}; the pairs do not match (blossom.on_error = 'null')");
        Ok(Answered {
            matched: Vec::new(),
            failed: block.pairs.len() as u64,
        })
    }

    /// The output rows of the matching pairs, in the order of their left and right rows.
    fn output(&self, candidates: &Candidates, matched: &[Key]) -> Result<RecordBatch> {
        let mut rows: Vec<(u32, u32)> = matched
            .iter()
            .filter_map(|key| candidates.rows.get(key))
            .flatten()
            .copied()
            .collect();
        rows.sort_unstable();
        let left_rows = UInt32Array::from_iter_values(rows.iter().map(|r| r.0));
        let right_rows = UInt32Array::from_iter_values(rows.iter().map(|r| r.1));
        let batch = joined_batch(
            &self.joined,
            &candidates.left,
            &candidates.right,
            &left_rows,
            &right_rows,
        )?;
        match &self.projection {
            Some(indices) => Ok(batch.project(indices)?),
            None => Ok(batch),
        }
    }
}

impl Candidates {
    fn empty(joined: &SchemaRef) -> Self {
        Self {
            left: RecordBatch::new_empty(Arc::clone(joined)),
            right: RecordBatch::new_empty(Arc::clone(joined)),
            texts: Vec::new(),
            rows: HashMap::new(),
            blocks: Vec::new(),
        }
    }
}

/// Distinct texts, numbered in the order first seen.
#[derive(Default)]
struct Texts {
    texts: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Texts {
    /// The number of each row's text; `None` for NULL or blank text (never asked about).
    fn intern(&mut self, column: &StringArray) -> Vec<Option<u32>> {
        (0..column.len())
            .map(|row| {
                if column.is_null(row) || column.value(row).trim().is_empty() {
                    return None;
                }
                let text = column.value(row);
                if let Some(id) = self.ids.get(text) {
                    return Some(*id);
                }
                let id = u32::try_from(self.texts.len()).ok()?;
                self.texts.push(text.to_string());
                self.ids.insert(text.to_string(), id);
                Some(id)
            })
            .collect()
    }
}

/// The rows that have a text, with its number.
fn valid(ids: &[Option<u32>]) -> Vec<RowText> {
    ids.iter()
        .enumerate()
        .filter_map(|(row, id)| Some((u32::try_from(row).ok()?, (*id)?)))
        .collect()
}

/// `expr` over `batch`, as text.
fn text_column(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<StringArray> {
    let values = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    let text = cast(&values, &DataType::Utf8)?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| internal_datafusion_err!("cast to Utf8 gave no StringArray"))
}

/// The rows `left_rows[i]` of `left` beside `right_rows[i]` of `right`.
fn joined_batch(
    joined: &SchemaRef,
    left: &RecordBatch,
    right: &RecordBatch,
    left_rows: &UInt32Array,
    right_rows: &UInt32Array,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(joined.fields().len());
    for column in left.columns() {
        columns.push(take(column, left_rows, None)?);
    }
    for column in right.columns() {
        columns.push(take(column, right_rows, None)?);
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(joined),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(left_rows.len())),
    )?)
}

/// The keys laid out in blocks of up to `size` texts per side.
///
/// The candidates fall apart into groups that share no text (the texts of one key of
/// an equality, say): groups small enough share blocks, filled up to `size` texts per
/// side; a larger group is cut on its own: its A texts, in the order of their first
/// candidate B text, `size` at a time, and the B texts that are candidates of such a
/// cut, `size` at a time.
fn blocks(keys: &[Key], size: usize) -> Vec<Block> {
    let size = size.max(1);
    let mut blocks = Vec::new();
    let mut shared: HashSet<Key> = HashSet::new();
    let (mut shared_a, mut shared_b) = (0, 0);
    for group in connected(keys) {
        let a: HashSet<u32> = group.iter().map(|k| k.0).collect();
        let b: HashSet<u32> = group.iter().map(|k| k.1).collect();
        if a.len() <= size && b.len() <= size {
            if shared_a + a.len() > size || shared_b + b.len() > size {
                blocks.push(Block::of(std::mem::take(&mut shared)));
                (shared_a, shared_b) = (0, 0);
            }
            shared.extend(group);
            shared_a += a.len();
            shared_b += b.len();
            continue;
        }
        let mut by_a: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for key in &group {
            by_a.entry(key.0).or_default().push(key.1);
        }
        let mut order: Vec<(u32, Vec<u32>)> = by_a.into_iter().collect();
        for (_, bs) in &mut order {
            bs.sort_unstable();
        }
        order.sort_by_key(|(a, bs)| (bs.first().copied(), *a));
        for cut in order.chunks(size) {
            let mut bs: Vec<u32> = cut.iter().flat_map(|(_, bs)| bs.iter().copied()).collect();
            bs.sort_unstable();
            bs.dedup();
            for chunk in bs.chunks(size) {
                let pairs: HashSet<Key> = cut
                    .iter()
                    .flat_map(|(a, candidates)| {
                        candidates
                            .iter()
                            .filter(|b| chunk.binary_search(b).is_ok())
                            .map(move |b| (*a, *b))
                    })
                    .collect();
                if !pairs.is_empty() {
                    blocks.push(Block::of(pairs));
                }
            }
        }
    }
    if !shared.is_empty() {
        blocks.push(Block::of(shared));
    }
    blocks
}

/// The keys in groups that share no A text and no B text, each group's keys sorted,
/// the groups in the order of their first key.
fn connected(keys: &[Key]) -> Vec<Vec<Key>> {
    // A texts and B texts are nodes apart: A text t is node 2t, B text t node 2t + 1.
    let mut parent: HashMap<u64, u64> = HashMap::new();
    fn root(parent: &mut HashMap<u64, u64>, node: u64) -> u64 {
        let mut at = node;
        while let Some(&up) = parent.get(&at) {
            if up == at {
                break;
            }
            at = up;
        }
        // Path compression.
        let mut walk = node;
        while walk != at {
            let up = parent[&walk];
            parent.insert(walk, at);
            walk = up;
        }
        at
    }
    for key in keys {
        let (a, b) = (u64::from(key.0) * 2, u64::from(key.1) * 2 + 1);
        parent.entry(a).or_insert(a);
        parent.entry(b).or_insert(b);
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        if ra != rb {
            parent.insert(ra.max(rb), ra.min(rb));
        }
    }
    let mut groups: BTreeMap<u64, Vec<Key>> = BTreeMap::new();
    for key in keys {
        let group = root(&mut parent, u64::from(key.0) * 2);
        groups.entry(group).or_default().push(*key);
    }
    let mut groups: Vec<Vec<Key>> = groups.into_values().collect();
    for group in &mut groups {
        group.sort_unstable();
    }
    groups.sort_by_key(|g| g.first().copied());
    groups
}

/// The cosine similarity of two vectors (0 when either is all zeros).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        dot / (aa.sqrt() * bb.sqrt())
    }
}

/// The query's error when a text's embedding, needed by the pre-filter, failed.
fn prefilter_error(error: &CallError) -> DataFusionError {
    match error {
        CallError::OverBudget(exceeded) => DataFusionError::External(Box::new(exceeded.clone())),
        other => DataFusionError::Execution(format!(
            "blossom.join_prefilter: the embedding of a text failed: {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_group_texts_by_side_and_keep_only_candidates() {
        // The triangle a < b of 5 texts, in blocks of 2 texts per side.
        let keys: Vec<Key> = (0..5u32)
            .flat_map(|a| (a + 1..5).map(move |b| (a, b)))
            .collect();
        let blocks = blocks(&keys, 2);
        let asked: usize = blocks.iter().map(|b| b.pairs.len()).sum();
        assert_eq!(asked, keys.len());
        for block in &blocks {
            assert!(block.a.len() <= 2 && block.b.len() <= 2, "{block:?}");
            for key in &block.pairs {
                assert!(block.a.contains(&key.0) && block.b.contains(&key.1));
            }
        }
        let mut all: Vec<Key> = blocks
            .iter()
            .flat_map(|b| b.pairs.iter().copied())
            .collect();
        all.sort_unstable();
        assert_eq!(all, keys);
    }

    #[test]
    fn groups_that_share_no_text_are_blocked_apart() {
        // An equality with two keys: texts 0..4 pair among themselves, 10..14 too.
        let mut keys: Vec<Key> = Vec::new();
        for base in [0u32, 10] {
            for a in base..base + 4 {
                for b in base..base + 4 {
                    keys.push((a, b));
                }
            }
        }
        keys.sort_unstable();
        assert_eq!(connected(&keys).len(), 2);
        // Blocks of 4 texts a side: one block per key, every pair of it a candidate.
        let blocks = blocks(&keys, 4);
        assert_eq!(blocks.len(), 2);
        assert!(blocks.iter().all(|b| b.pairs.len() == 16));
        // Blocks of 8: both keys share one block.
        assert_eq!(super::blocks(&keys, 8).len(), 1);
    }

    #[test]
    fn halves_split_the_longer_side_and_keep_every_pair() {
        let pairs: HashSet<Key> = [(0, 10), (1, 10), (2, 11), (3, 11), (3, 10)].into();
        let block = Block::of(pairs.clone());
        let [low, high] = block.halves();
        assert_eq!(low.a, [0, 1]);
        assert_eq!(high.a, [2, 3]);
        let mut rejoined = low.pairs.clone();
        rejoined.extend(high.pairs.iter().copied());
        assert_eq!(rejoined, pairs);
        assert!(!Block::of([(1, 2)].into()).splittable());
    }

    #[test]
    fn cosine_of_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
