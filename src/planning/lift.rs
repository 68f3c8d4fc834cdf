//! [`LiftAiCalls`]: the query planner that rewrites the optimized logical plan so that
//! AI calls sit only in projections and filters before DataFusion's physical planner
//! runs. Rewriting after the logical optimizer means projection merging cannot fold the
//! lifted calls back.
//!
//! [`lift`] moves AI calls out of sorts, aggregates, windows and join conditions into a
//! projection below the node (a join gets one per side), rewrites the node to read the
//! new columns, and restores the node's output schema where the extra columns would
//! show. Subqueries inside expressions are lifted too.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, Result, internal_err, plan_err};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr::{AggregateFunction, Alias, Case};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, Filter, Join, JoinType, LogicalPlan, Projection, Sort,
    SortExpr, Volatility, Window,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

use crate::config::BlossomOptions;
use crate::execution::{StagedCopyExec, stage};
use crate::functions::AiUdf;

/// Prefix of the columns that hold lifted expressions.
const LIFTED_PREFIX: &str = "__blossom_lift_";

/// Plans queries like DataFusion's default planner, after lifting AI calls out of the
/// positions its physical planner cannot evaluate them in (see [`lift`]).
///
/// Every blossom session uses it, so this works:
///
/// ```sql
/// SELECT id FROM 'data/reviews.csv' ORDER BY sentiment(text), id LIMIT 5;
/// ```
#[derive(Debug, Default)]
pub struct LiftAiCalls;

/// Marks the session config of a coordinator, whose planner runs queries over
/// `blossom.workers`; elsewhere a query with `blossom.workers` set is refused rather
/// than run in one process unnoticed.
#[derive(Debug)]
pub struct Coordinator;

#[async_trait]
impl QueryPlanner for LiftAiCalls {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if session_state
            .config()
            .get_extension::<Coordinator>()
            .is_none()
            && let Some(workers) = session_state
                .config()
                .options()
                .extensions
                .get::<BlossomOptions>()
                .and_then(|o| o.workers.as_deref())
            && calls_ai(logical_plan)?
        {
            return plan_err!(
                "blossom.workers is set to '{workers}', but this session runs in one process: \
                 a coordinator is started with its workers (blossom --workers, BLOSSOM_WORKERS \
                 or BlossomSessionBuilder::with_workers); SET blossom.workers = '' goes back"
            );
        }
        let lifted = lift(logical_plan.clone())?;
        // A COPY to a local path writes to a temporary path, moved into place when done.
        let (lifted, staging) = stage(lifted)?;
        let plan = DefaultPhysicalPlanner::default()
            .create_physical_plan(&lifted, session_state)
            .await?;
        Ok(match staging {
            Some(staging) => Arc::new(StagedCopyExec::new(plan, staging)),
            None => plan,
        })
    }
}

/// The plan with AI calls lifted out of sorts, aggregates, joins and windows, in the
/// plan and in the subqueries of its expressions.
///
/// Each AI-calling expression (the largest part of it that reads only the node's input
/// rows) is computed once in a projection below the node, under a fresh
/// `__blossom_lift_<n>` name, and the node reads that column instead. The node's output
/// schema is kept: a projection above drops the new columns, and rewritten group,
/// aggregate and window expressions keep their names. So
///
/// ```sql
/// SELECT sentiment(text), count(DISTINCT enhance(text)) FROM t
/// GROUP BY sentiment(text) ORDER BY count(DISTINCT enhance(text)) DESC;
/// ```
///
/// plans its calls in a projection below the aggregate. Join conditions are lifted per
/// side; an AI call reading both sides of an inner join moves into a filter above the
/// join, and in any other join it is an error. Other nodes are left as they are (the
/// physical rule [`crate::planning::PlanAiCalls`] explains what it cannot run).
pub fn lift(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut lifter = Lifter::default();
    plan.transform_up_with_subqueries(|node| lifter.lift_node(node))
        .data()
}

/// Rewrites nodes one at a time; numbers the lifted columns across the whole plan.
#[derive(Debug, Default)]
struct Lifter {
    next: usize,
}

impl Lifter {
    fn lift_node(&mut self, node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        if !matches!(
            node,
            LogicalPlan::Sort(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Join(_)
        ) || !node_has_ai_call(&node)?
        {
            return Ok(Transformed::no(node));
        }
        let lifted = match &node {
            LogicalPlan::Sort(sort) => self.sort(sort)?,
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate)?,
            LogicalPlan::Window(window) => self.window(window)?,
            LogicalPlan::Join(join) => self.join(join)?,
            _ => None,
        };
        match lifted {
            Some(lifted) => {
                ensure_same_schema(&node, &lifted)?;
                Ok(Transformed::yes(lifted))
            }
            None => Ok(Transformed::no(node)),
        }
    }

    /// `ORDER BY sentiment(text)`: the sort reads a lifted column.
    fn sort(&mut self, sort: &Sort) -> Result<Option<LogicalPlan>> {
        let mut below = Below::new(&[sort.input.schema()]);
        let expr = sort
            .expr
            .iter()
            .map(|s| {
                let expr = lift_expr(s.expr.clone(), |e| {
                    Ok(Some(below.column_for(e, &mut self.next)))
                })?;
                Ok(SortExpr { expr, ..s.clone() })
            })
            .collect::<Result<Vec<_>>>()?;
        if below.is_empty() {
            return Ok(None);
        }
        let sorted = LogicalPlan::Sort(Sort {
            expr,
            input: below.build(&sort.input)?,
            fetch: sort.fetch,
        });
        restore_schema(sorted, sort.input.schema()).map(Some)
    }

    /// `GROUP BY sentiment(text)`, `count(DISTINCT sentiment(text))`,
    /// `max(enhance(text)) FILTER (WHERE ...)`: the aggregate reads lifted columns and
    /// its expressions keep their names.
    fn aggregate(&mut self, aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
        let input_schema = aggregate.input.schema();
        let mut below = Below::new(&[input_schema]);
        let next = &mut self.next;
        let group_expr = aggregate
            .group_expr
            .iter()
            .map(|expr| match expr {
                // Each expression of a grouping set keeps its own name.
                Expr::GroupingSet(_) => expr
                    .clone()
                    .map_children(|e| {
                        lift_keeping_name(&e, e.clone(), &mut below, next).map(Transformed::yes)
                    })
                    .data(),
                _ => lift_keeping_name(expr, expr.clone(), &mut below, next),
            })
            .collect::<Result<Vec<_>>>()?;
        let aggr_expr = aggregate
            .aggr_expr
            .iter()
            .map(|expr| {
                let guarded = guard_filtered_arguments(expr.clone(), input_schema)?;
                lift_keeping_name(expr, guarded, &mut below, next)
            })
            .collect::<Result<Vec<_>>>()?;
        if below.is_empty() {
            return Ok(None);
        }
        let input = below.build(&aggregate.input)?;
        Aggregate::try_new(input, group_expr, aggr_expr)
            .map(LogicalPlan::Aggregate)
            .map(Some)
    }

    /// `row_number() OVER (PARTITION BY sentiment(text) ORDER BY id)`: the window reads
    /// lifted columns and its expressions keep their names.
    fn window(&mut self, window: &Window) -> Result<Option<LogicalPlan>> {
        let mut below = Below::new(&[window.input.schema()]);
        let window_expr = window
            .window_expr
            .iter()
            .map(|expr| lift_keeping_name(expr, expr.clone(), &mut below, &mut self.next))
            .collect::<Result<Vec<_>>>()?;
        if below.is_empty() {
            return Ok(None);
        }
        let input = below.build(&window.input)?;
        let windowed = LogicalPlan::Window(Window::try_new(window_expr, input)?);
        restore_schema(windowed, &window.schema).map(Some)
    }

    /// `JOIN b ON a.label = sentiment(b.text)`: calls that read one side are computed on
    /// that side; in an inner join, conditions whose calls read both sides move into a
    /// filter above the join.
    fn join(&mut self, join: &Join) -> Result<Option<LogicalPlan>> {
        let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
        let both = [left_schema, right_schema];
        let mut left = Below::new(&both);
        let mut right = Below::new(&both);
        let next = &mut self.next;

        let mut on = Vec::with_capacity(join.on.len());
        for (l, r) in &join.on {
            let l = lift_expr(l.clone(), |e| {
                Ok(matches!(
                    side_of(e, left_schema, right_schema),
                    Side::Left | Side::None
                )
                .then(|| left.column_for(e, next)))
            })?;
            let r = lift_expr(r.clone(), |e| {
                Ok(matches!(
                    side_of(e, left_schema, right_schema),
                    Side::Right | Side::None
                )
                .then(|| right.column_for(e, next)))
            })?;
            on.push((l, r));
        }

        let mut kept = Vec::new();
        let mut above = Vec::new();
        for condition in join.filter.iter().flat_map(split_conjunction) {
            let condition = lift_expr(condition.clone(), |e| {
                Ok(match side_of(e, left_schema, right_schema) {
                    Side::Left | Side::None => Some(left.column_for(e, next)),
                    Side::Right => Some(right.column_for(e, next)),
                    Side::Both => None,
                })
            })?;
            match first_ai_call(&condition) {
                None => kept.push(condition),
                Some(_) if join.join_type == JoinType::Inner => above.push(condition),
                Some(function) => return mixed_sides_error(&function, join.join_type),
            }
        }
        if left.is_empty() && right.is_empty() && above.is_empty() {
            return Ok(None);
        }

        let mut plan = LogicalPlan::Join(Join::try_new(
            left.build(&join.left)?,
            right.build(&join.right)?,
            on,
            conjunction(kept),
            join.join_type,
            join.join_constraint,
            join.null_equality,
            join.null_aware,
        )?);
        if let Some(predicate) = conjunction(above) {
            plan = LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(plan))?);
        }
        if plan.schema().fields().len() == join.schema.fields().len() {
            return Ok(Some(plan));
        }
        restore_schema(plan, &join.schema).map(Some)
    }
}

/// The expressions a node's rewrite computes in a projection below it, each once.
struct Below {
    /// Names the new columns must not take (those of the node's inputs).
    taken: HashSet<String>,
    lifted: Vec<(Expr, String)>,
}

impl Below {
    fn new(inputs: &[&Arc<DFSchema>]) -> Self {
        let taken = inputs
            .iter()
            .flat_map(|schema| schema.fields().iter().map(|f| f.name().clone()))
            .collect();
        Self {
            taken,
            lifted: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.lifted.is_empty()
    }

    /// The column that will hold `expr`: the one already lifted for an equal
    /// expression, or a new one.
    fn column_for(&mut self, expr: &Expr, next: &mut usize) -> Expr {
        let name = match self.lifted.iter().find(|(e, _)| e == expr) {
            Some((_, name)) => name.clone(),
            None => {
                let name = loop {
                    let name = format!("{LIFTED_PREFIX}{next}");
                    *next += 1;
                    if !self.taken.contains(&name) {
                        break name;
                    }
                };
                self.lifted.push((expr.clone(), name.clone()));
                name
            }
        };
        Expr::Column(Column::new_unqualified(name))
    }

    /// `input` with the lifted expressions as extra columns after its own.
    fn build(self, input: &Arc<LogicalPlan>) -> Result<Arc<LogicalPlan>> {
        if self.lifted.is_empty() {
            return Ok(Arc::clone(input));
        }
        let exprs = input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .chain(self.lifted.into_iter().map(|(e, name)| e.alias(name)))
            .collect();
        Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::clone(input),
        )?)))
    }
}

/// `expr` with each largest AI-calling part that a projection below can compute
/// replaced by the column `place` gives for it (`None`: leave it, look inside).
fn lift_expr(expr: Expr, mut place: impl FnMut(&Expr) -> Result<Option<Expr>>) -> Result<Expr> {
    expr.transform_down(|e| {
        if first_ai_call(&e).is_none() {
            return Ok(Transformed::new(e, false, TreeNodeRecursion::Jump));
        }
        if !is_row_level(&e) {
            return Ok(Transformed::no(e));
        }
        Ok(match place(&e)? {
            Some(column) => Transformed::new(column, true, TreeNodeRecursion::Jump),
            None => Transformed::no(e),
        })
    })
    .data()
}

/// Whether a projection over the node's input can compute `expr` for each row: no
/// aggregate or window function, subquery, outer reference or lambda variable in it,
/// and not a bare alias, lambda or grouping set.
fn is_row_level(expr: &Expr) -> bool {
    if matches!(
        expr,
        Expr::Alias(_) | Expr::Lambda(_) | Expr::GroupingSet(_)
    ) {
        return false;
    }
    !expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::SetComparison(_)
                    | Expr::ScalarSubquery(_)
                    | Expr::GroupingSet(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Unnest(_)
                    | Expr::LambdaVariable(_)
            ))
        })
        .unwrap_or(true)
}

/// `expr` (a rewrite of `original`) lifted into `below`, under the output name of
/// `original`.
fn lift_keeping_name(
    original: &Expr,
    expr: Expr,
    below: &mut Below,
    next: &mut usize,
) -> Result<Expr> {
    let saved = NamePreserver::new_for_projection().save(original);
    let lifted = lift_expr(expr, |e| Ok(Some(below.column_for(e, next))))?;
    Ok(saved.restore(lifted))
}

/// In `agg(x) FILTER (WHERE cond)`, arguments and orderings with AI calls become
/// `CASE WHEN cond THEN x END`: the aggregate never sees rows where `cond` does not
/// hold, so the calls need not be made for them. Left as is when `cond` has other
/// volatile functions (it would be evaluated twice), cannot be computed below the
/// aggregate, or the guard could make a non-nullable value nullable.
fn guard_filtered_arguments(expr: Expr, schema: &DFSchema) -> Result<Expr> {
    match expr {
        Expr::Alias(alias) => Ok(Expr::Alias(Alias {
            expr: Box::new(guard_filtered_arguments(*alias.expr, schema)?),
            ..alias
        })),
        Expr::AggregateFunction(AggregateFunction { func, mut params }) => {
            if let Some(filter) = params.filter.as_deref().cloned()
                && is_row_level(&filter)
                && !has_volatile_non_ai_call(&filter)
            {
                let guard = |value: Expr| -> Result<Expr> {
                    if first_ai_call(&value).is_some()
                        && is_row_level(&value)
                        && value.nullable(schema)?
                    {
                        Ok(Expr::Case(Case::new(
                            None,
                            vec![(Box::new(filter.clone()), Box::new(value))],
                            None,
                        )))
                    } else {
                        Ok(value)
                    }
                };
                params.args = params.args.into_iter().map(guard).collect::<Result<_>>()?;
                params.order_by = params
                    .order_by
                    .into_iter()
                    .map(|s| {
                        Ok(SortExpr {
                            expr: guard(s.expr)?,
                            ..s
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            Ok(Expr::AggregateFunction(AggregateFunction { func, params }))
        }
        other => Ok(other),
    }
}

/// Which join input an expression's columns come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// No columns at all.
    None,
    Left,
    Right,
    /// Both inputs, or a column neither has alone.
    Both,
}

fn side_of(expr: &Expr, left: &DFSchema, right: &DFSchema) -> Side {
    let mut side = Side::None;
    for column in expr.column_refs() {
        let here = match (left.has_column(column), right.has_column(column)) {
            (true, false) => Side::Left,
            (false, true) => Side::Right,
            _ => return Side::Both,
        };
        side = match side {
            Side::None => here,
            s if s == here => s,
            _ => return Side::Both,
        };
    }
    side
}

/// The error for an AI call reading both sides of a join other than an inner join:
/// such a join needs the condition's value before it can decide which rows to keep,
/// so the call cannot move above it, nor to one side below it.
fn mixed_sides_error<T>(function: &str, join_type: JoinType) -> Result<T> {
    const OUTER: &str = "find the matching pairs first in a subquery that uses an inner JOIN \
                         with that condition, then outer-join that subquery on the tables' keys";
    const SUBQUERY: &str = "find the matching pairs first in a subquery that uses an inner \
                            JOIN with that condition, then test `key IN (SELECT key FROM that \
                            subquery)`";
    let (position, sides, instead) = match join_type {
        JoinType::Left => ("the ON condition of a LEFT JOIN", "both sides", OUTER),
        JoinType::Right => ("the ON condition of a RIGHT JOIN", "both sides", OUTER),
        JoinType::Full => ("the ON condition of a FULL JOIN", "both sides", OUTER),
        // Not reached: lift moves these conditions into a filter above the join.
        JoinType::Inner => ("the ON condition of an INNER JOIN", "both sides", OUTER),
        JoinType::LeftSemi
        | JoinType::RightSemi
        | JoinType::LeftAnti
        | JoinType::RightAnti
        | JoinType::LeftMark
        | JoinType::RightMark => (
            "the condition of an EXISTS or IN subquery",
            "both the subquery and the outer query",
            SUBQUERY,
        ),
    };
    plan_err!(
        "{function}() in {position} reads columns of {sides}, which only an inner join \
         supports: {instead}"
    )
}

fn is_ai_udf(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::ScalarFunction(f) if f.func.inner().downcast_ref::<AiUdf>().is_some() => {
            Some(f.func.name())
        }
        _ => None,
    }
}

/// The name of the first AI function called in `expr` (not looking into subqueries).
fn first_ai_call(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = expr.apply(|e| {
        found = is_ai_udf(e).map(str::to_string);
        Ok(stop_when(found.is_some()))
    });
    found
}

fn has_volatile_non_ai_call(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(f)
            if f.func.signature().volatility == Volatility::Volatile && is_ai_udf(e).is_none()))
    })
    .unwrap_or(true)
}

/// Whether `plan` (its subqueries included) calls an AI function.
fn calls_ai(plan: &LogicalPlan) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        found = node_has_ai_call(node)?;
        Ok(stop_when(found))
    })?;
    Ok(found)
}

fn node_has_ai_call(node: &LogicalPlan) -> Result<bool> {
    let mut found = false;
    node.apply_expressions(|e| {
        found = first_ai_call(e).is_some();
        Ok(stop_when(found))
    })?;
    Ok(found)
}

/// A walk stops once it `found` what it looks for.
fn stop_when(found: bool) -> TreeNodeRecursion {
    match found {
        true => TreeNodeRecursion::Stop,
        false => TreeNodeRecursion::Continue,
    }
}

/// `plan` under a projection with exactly the columns of `schema`.
fn restore_schema(plan: LogicalPlan, schema: &DFSchema) -> Result<LogicalPlan> {
    let columns = schema.columns().into_iter().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}

/// An internal error unless `after` has the fields of `before`: same qualifiers, names
/// and types, in the same order.
fn ensure_same_schema(before: &LogicalPlan, after: &LogicalPlan) -> Result<()> {
    let (old, new) = (before.schema(), after.schema());
    let same = old.fields().len() == new.fields().len()
        && old.iter().zip(new.iter()).all(|((q1, f1), (q2, f2))| {
            q1 == q2 && f1.name() == f2.name() && f1.data_type() == f2.data_type()
        });
    if same {
        Ok(())
    } else {
        internal_err!(
            "lifting AI calls out of {} changed its output schema from {old} to {new}",
            before.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::BlossomSessionBuilder;

    /// A session (planning only: nothing here sends a request) with tables `a(label,
    /// n, word)` and `b(id, text)`.
    async fn session() -> Result<SessionContext> {
        let ctx = BlossomSessionBuilder::new().build()?;
        for sql in [
            "CREATE TABLE a (label VARCHAR, n INT, word VARCHAR) AS VALUES ('POSITIVE', 1, 'love')",
            "CREATE TABLE b (id INT, text VARCHAR) AS VALUES (1, 'great')",
        ] {
            ctx.sql(sql).await?.collect().await?;
        }
        Ok(ctx)
    }

    async fn optimized(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        ctx.sql(sql).await?.into_optimized_plan()
    }

    /// The nodes (subqueries included) other than projections and filters that still
    /// have an AI call in their own expressions.
    fn ai_positions(plan: &LogicalPlan) -> Vec<String> {
        let mut found = Vec::new();
        let _ = plan.apply_with_subqueries(|node| {
            if !matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Filter(_))
                && node_has_ai_call(node).unwrap_or(true)
            {
                found.push(node.display().to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        found
    }

    /// Lifts `sql`'s optimized plan and checks what every lift must give: no AI call
    /// left outside projections and filters, and the same output schema.
    async fn lifted(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        let plan = optimized(ctx, sql).await?;
        assert!(
            !ai_positions(&plan).is_empty(),
            "nothing to lift in\n{plan}"
        );
        let lifted = lift(plan.clone())?;
        assert_eq!(ai_positions(&lifted), Vec::<String>::new(), "{lifted}");
        ensure_same_schema(&plan, &lifted)?;
        Ok(lifted)
    }

    fn indented(plan: &LogicalPlan) -> String {
        plan.display_indent().to_string()
    }

    #[tokio::test]
    async fn sort_reads_a_lifted_column_and_keeps_its_schema() -> Result<()> {
        let ctx = session().await?;
        let sql = "SELECT id FROM b \
                   ORDER BY sentiment(text) DESC NULLS LAST, upper(enhance(text)), id LIMIT 2";
        let text = indented(&lifted(&ctx, sql).await?);
        let sort = "Sort: __blossom_lift_0 DESC NULLS LAST, __blossom_lift_1 ASC NULLS LAST, \
                    b.id ASC NULLS LAST, fetch=2";
        assert!(text.contains(sort), "{text}");
        assert!(text.contains(") AS __blossom_lift_0"), "{text}");
        assert!(text.contains(")) AS __blossom_lift_1"), "{text}");
        Ok(())
    }

    #[tokio::test]
    async fn aggregate_keeps_its_output_names() -> Result<()> {
        let ctx = session().await?;
        let sql = "SELECT sentiment(text), count(DISTINCT enhance(text)), max(enhance(text)), \
                     count(*) FILTER (WHERE sentiment(text) = 'POSITIVE'), \
                     array_agg(id ORDER BY insights(text)) \
                   FROM b GROUP BY sentiment(text) HAVING count(DISTINCT enhance(text)) > 0";
        let text = indented(&lifted(&ctx, sql).await?);
        assert!(
            text.contains("__blossom_lift_0 AS sentiment(b.text)"),
            "{text}"
        );
        let distinct = "count(DISTINCT __blossom_lift_1) AS count(DISTINCT enhance(b.text))";
        assert!(text.contains(distinct), "{text}");
        Ok(())
    }

    #[tokio::test]
    async fn filtered_aggregate_arguments_are_guarded_by_the_filter() -> Result<()> {
        let ctx = session().await?;
        let sql = "SELECT max(enhance(text)) FILTER (WHERE id > 3) FROM b";
        let text = indented(&lifted(&ctx, sql).await?);
        assert!(
            text.contains("CASE WHEN b.id > Int32(3) THEN enhance("),
            "{text}"
        );
        assert!(text.contains("END AS __blossom_lift_0"), "{text}");
        Ok(())
    }

    #[tokio::test]
    async fn grouping_sets_keep_each_name() -> Result<()> {
        let ctx = session().await?;
        let sql = "SELECT sentiment(text), id % 2, count(*) FROM b \
                   GROUP BY ROLLUP(sentiment(text), id % 2)";
        lifted(&ctx, sql).await?;
        Ok(())
    }

    #[tokio::test]
    async fn window_keeps_its_output_names() -> Result<()> {
        let ctx = session().await?;
        let sql = "SELECT id, \
                     row_number() OVER (PARTITION BY sentiment(text) ORDER BY enhance(text)), \
                     rank() OVER (ORDER BY sentiment(text)) \
                   FROM b";
        lifted(&ctx, sql).await?;
        Ok(())
    }

    #[tokio::test]
    async fn join_calls_run_on_their_side() -> Result<()> {
        let ctx = session().await?;
        let sql = "SELECT * FROM a JOIN b ON a.label = sentiment(b.text)";
        let text = indented(&lifted(&ctx, sql).await?);
        assert!(
            text.contains("Inner Join: a.label = __blossom_lift_0"),
            "{text}"
        );
        let right = text
            .lines()
            .find(|l| l.contains("Projection: b.id, b.text, "));
        assert!(right.is_some_and(|l| l.contains("sentiment(")), "{text}");

        // The preserved side of an outer join keeps its condition in the join.
        let sql = "SELECT * FROM a LEFT JOIN b ON b.id = a.n AND sentiment(a.word) = 'POSITIVE'";
        let text = indented(&lifted(&ctx, sql).await?);
        assert!(text.contains("Filter: __blossom_lift_0"), "{text}");
        assert!(
            text.contains("Projection: a.label, a.n, a.word, sentiment("),
            "{text}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn inner_join_conditions_on_both_sides_move_above_the_join() -> Result<()> {
        let ctx = session().await?;
        let sql =
            "SELECT * FROM a JOIN b ON a.n = b.id AND sentiment(a.word || b.text) = 'POSITIVE'";
        let text = indented(&lifted(&ctx, sql).await?);
        assert!(text.starts_with("Filter: sentiment("), "{text}");
        assert!(text.contains("\n  Inner Join: a.n = b.id\n"), "{text}");
        Ok(())
    }

    #[tokio::test]
    async fn outer_join_conditions_on_both_sides_are_refused() -> Result<()> {
        let ctx = session().await?;
        let plan = optimized(
            &ctx,
            "SELECT * FROM a LEFT JOIN b ON a.n = b.id AND sentiment(a.word || b.text) = 'POSITIVE'",
        )
        .await?;
        let error = lift(plan).map(|_| ()).unwrap_err().to_string();
        assert!(
            error.contains(
                "sentiment() in the ON condition of a LEFT JOIN reads columns of both sides"
            ),
            "{error}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn lifted_names_avoid_user_columns() -> Result<()> {
        let ctx = session().await?;
        let plan = lifted(
            &ctx,
            "SELECT __blossom_lift_0 FROM (SELECT text AS __blossom_lift_0 FROM b) \
             ORDER BY sentiment(__blossom_lift_0)",
        )
        .await?;
        assert!(indented(&plan).contains("AS __blossom_lift_1"), "{plan}");
        Ok(())
    }

    #[tokio::test]
    async fn subqueries_are_lifted() -> Result<()> {
        let ctx = session().await?;
        // A correlated subquery with a LIMIT stays a subquery after optimization.
        let plan = lifted(
            &ctx,
            "SELECT a.n, (SELECT b.id FROM b WHERE b.id = a.n ORDER BY sentiment(b.text) LIMIT 1) \
             FROM a",
        )
        .await?;
        assert!(indented(&plan).contains("Subquery:"), "{plan}");
        Ok(())
    }

    #[tokio::test]
    async fn plans_without_ai_calls_in_those_positions_are_unchanged() -> Result<()> {
        let ctx = session().await?;
        let plan = optimized(
            &ctx,
            "SELECT s, count(*) FROM (SELECT sentiment(text) AS s FROM b) GROUP BY s ORDER BY s",
        )
        .await?;
        assert_eq!(lift(plan.clone())?, plan);
        Ok(())
    }
}
