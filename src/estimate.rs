//! `blossom_estimate('<query>')`: what a query would ask the provider, found by running it
//! without sending anything. Per AI function: the rows it would see after filters, the
//! unique prompts among them, how many the response cache already answers, the
//! requests it would send and what they would cost.
//!
//! ```sql
//! SELECT * FROM blossom_estimate('SELECT sentiment(text) FROM ''data/reviews.csv'' WHERE lang = ''en''');
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, internal_datafusion_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{DdlStatement, Expr, LogicalPlan};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;

use crate::dispatch::budget::CHARS_PER_TOKEN;
use crate::execution::{AiExec, DryRun};
use crate::observe::query_metrics::Snapshot;
use crate::observe::{MetricsLog, QueryMetrics};
use crate::planning::LiftAiCalls;

/// `blossom_estimate('<query>')`: the requests a query would send, without sending any.
///
/// ```sql
/// SELECT function, rows, unique_prompts, cache_hits, requests, cost
/// FROM blossom_estimate('SELECT id, sentiment(text) FROM ''data/reviews.csv''');
/// ```
///
/// `cost` is in USD at the model's price (`blossom.price_input`, `price_output` or the
/// price table), NULL when the price is unknown: the prompts' estimated tokens plus,
/// for each request, its longest answer (`blossom.max_answer_tokens`); with no
/// `max_answer_tokens` the answers count 0, so the cost is the prompts' alone, a lower
/// bound.
///
/// The query runs as usual except that AI calls send nothing: an answer already in the
/// response cache is used, any other is NULL. So the counts of a function whose input
/// depends on another AI function's answers (nested calls, a filter on an AI result)
/// are exact only when those answers are cached, and so are the combining requests of an
/// `ai_reduce()` list too long for one prompt; the `exact` column says so. `COPY`,
/// `INSERT` and `CREATE TABLE ... AS` are estimated by their query and write nothing.
#[derive(Debug, Default)]
pub struct EstimateTable;

impl TableFunctionImpl for EstimateTable {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let sql = match args.exprs() {
            [Expr::Literal(value, _)] => match value {
                ScalarValue::Utf8(Some(sql))
                | ScalarValue::LargeUtf8(Some(sql))
                | ScalarValue::Utf8View(Some(sql)) => sql.clone(),
                _ => return plan_err!("blossom_estimate() takes the query as a text literal"),
            },
            _ => {
                return plan_err!(
                    "blossom_estimate() takes one argument, the query as a text literal: \
                     blossom_estimate('SELECT sentiment(text) FROM t')"
                );
            }
        };
        Ok(Arc::new(Estimate { sql }))
    }
}

/// The table of one estimate; the query runs when the table is scanned.
#[derive(Debug)]
struct Estimate {
    sql: String,
}

fn schema() -> SchemaRef {
    let count = |name: &str| Field::new(name, DataType::UInt64, false);
    Arc::new(Schema::new(vec![
        Field::new("function", DataType::Utf8, false),
        count("rows"),
        count("unique_prompts"),
        count("cache_hits"),
        count("requests"),
        count("input_tokens_estimate"),
        Field::new("cost", DataType::Float64, true),
        Field::new("exact", DataType::Boolean, false),
    ]))
}

#[async_trait]
impl TableProvider for Estimate {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| internal_datafusion_err!("blossom_estimate() needs a SessionState"))?;
        let batch = estimate(state, &self.sql).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema(),
            projection.cloned(),
        )?)
    }
}

/// Runs `sql` as a dry run on a copy of `state` and counts what it would send.
async fn estimate(state: &SessionState, sql: &str) -> Result<RecordBatch> {
    let plan = query_of(state.create_logical_plan(sql).await?)?;
    let query = Arc::new(QueryMetrics::new(0, Arc::new(MetricsLog::default())));
    // The copy shares the session's catalogs: it must not register a fresh default
    // catalog over the one holding the session's tables.
    let config = state
        .config()
        .clone()
        .with_create_default_catalog_and_schema(false)
        .with_extension(Arc::new(DryRun::new(Arc::clone(&query))));
    // Planned in this process: on a cluster's coordinator, the workers would run the
    // plan's AI operators for real.
    let dry = SessionStateBuilder::new_from_existing(state.clone())
        .with_config(config)
        .with_query_planner(Arc::new(LiftAiCalls))
        .build();
    let physical = dry.create_physical_plan(&plan).await?;
    let depends_on = ai_functions(&physical, &query)?;
    let mut stream = execute_stream(physical, dry.task_ctx())?;
    while let Some(batch) = stream.next().await {
        batch?;
    }
    let snapshots: Vec<_> = query.functions().iter().map(|f| f.snapshot()).collect();
    // Counts are exact unless they depend on answers the dry run did not have.
    let unanswered = |function: &str| {
        snapshots
            .iter()
            .any(|s| s.function == function && s.not_sent > 0)
    };
    let exact = |function: &str| {
        let complete = snapshots
            .iter()
            .all(|s| s.function != function || s.incomplete_estimates == 0);
        complete
            && !depends_on
                .iter()
                .filter(|(f, _)| *f == function)
                .any(|(_, below)| below.iter().any(|b| unanswered(b)))
    };
    let count = |f: fn(&Snapshot) -> u64| {
        Arc::new(UInt64Array::from_iter_values(snapshots.iter().map(f))) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            snapshots.iter().map(|s| s.function.as_str()),
        )),
        count(|s| s.rows),
        count(|s| s.unique_prompts),
        count(|s| s.cache_hits),
        count(|s| s.not_sent),
        count(|s| s.not_sent_prompt_chars.div_ceil(CHARS_PER_TOKEN)),
        Arc::new(Float64Array::from_iter(
            snapshots.iter().map(|s| s.not_sent_cost),
        )),
        Arc::new(BooleanArray::from_iter(
            snapshots.iter().map(|s| Some(exact(&s.function))),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The query a statement runs: `COPY`, `INSERT` and `CREATE TABLE ... AS` are estimated
/// by their input; other statements have nothing to estimate.
fn query_of(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Copy(copy) => Ok(copy.input.as_ref().clone()),
        LogicalPlan::Dml(dml) => Ok(dml.input.as_ref().clone()),
        LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
            Ok(create.input.as_ref().clone())
        }
        LogicalPlan::Explain(_)
        | LogicalPlan::Analyze(_)
        | LogicalPlan::Ddl(_)
        | LogicalPlan::Statement(_)
        | LogicalPlan::DescribeTable(_) => plan_err!(
            "blossom_estimate() takes a query (SELECT, COPY, INSERT or CREATE TABLE ... AS), \
             not this statement"
        ),
        query => Ok(query),
    }
}

/// Lists every AI function of `plan` in `query` (so that a function no row reaches
/// still gets a row of zeros), and returns, for each, the functions whose answers its
/// operator's input depends on.
fn ai_functions(
    plan: &Arc<dyn ExecutionPlan>,
    query: &Arc<QueryMetrics>,
) -> Result<Vec<(&'static str, Vec<&'static str>)>> {
    let mut functions = Vec::new();
    plan.apply(|node| {
        if let Some(ai) = node.downcast_ref::<AiExec>() {
            let below = functions_in(ai.input())?;
            for function in ai.functions() {
                query.function(function);
                functions.push((function, below.clone()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(functions)
}

/// The AI functions of every operator in `plan`.
fn functions_in(plan: &Arc<dyn ExecutionPlan>) -> Result<Vec<&'static str>> {
    let mut functions = Vec::new();
    plan.apply(|node| {
        if let Some(ai) = node.downcast_ref::<AiExec>() {
            functions.extend(ai.functions());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(functions)
}
