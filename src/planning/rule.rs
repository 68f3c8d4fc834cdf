//! [`PlanAiCalls`]: the physical optimizer rule that takes AI calls out of projections
//! and filters and evaluates them in [`AiExec`] operators below, innermost calls first,
//! so that nested calls (`sentiment(enhance(text))`) and stages merged by the optimizer
//! work. In a filter, the conditions without AI calls run first. An AI call in a join's
//! condition makes a semantic join (see [`super::join`]); AI operators under a `LIMIT`
//! ask in waves (see [`super::waves`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::datatypes::Schema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, CaseExpr, Column, binary};
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::joins::CrossJoinExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use super::join::{AiJoin, project};
use super::unbounded::pass_rows_on;
use super::waves::ask_in_waves;
use crate::config::{BlossomOptions, DEFAULT_JOIN_BLOCK};
use crate::execution::{AiCall, AiExec, Guard, Truth};

/// Moves AI calls into [`AiExec`] operators. One instance per session: it numbers the
/// queries it plans, and each operator carries its query's number; what the operator
/// runs with comes from the session at execute time.
#[derive(Debug, Default)]
pub struct PlanAiCalls {
    queries: AtomicU64,
}

impl PlanAiCalls {
    /// The rule for one session.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PhysicalOptimizerRule for PlanAiCalls {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = Planner {
            query_id: self.queries.fetch_add(1, Ordering::Relaxed) + 1,
            join_block: config
                .extensions
                .get::<BlossomOptions>()
                .map_or(DEFAULT_JOIN_BLOCK, |options| options.join_block),
        };
        let plan = plan.transform_up(|node| planner.rewrite(node)).data()?;
        pass_rows_on(ask_in_waves(plan)?)
    }

    fn name(&self) -> &str {
        "blossom_plan_ai_calls"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

type Exprs = Vec<Arc<dyn PhysicalExpr>>;

/// An AI call and the guards under which its value is needed.
type GuardedCall = (Arc<dyn PhysicalExpr>, Vec<Guard>);

struct Planner {
    query_id: u64,
    /// `blossom.join_block`: 1 plans semantic joins pair by pair.
    join_block: usize,
}

impl Planner {
    fn rewrite(&self, node: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
        if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            let exprs: Vec<_> = projection
                .expr()
                .iter()
                .map(|p| Arc::clone(&p.expr))
                .collect();
            if !exprs.iter().any(contains_ai_call) {
                return Ok(Transformed::no(node));
            }
            let (input, exprs) = self.extract(Arc::clone(projection.input()), exprs)?;
            let exprs = exprs
                .into_iter()
                .zip(projection.expr())
                .map(|(expr, old)| ProjectionExpr::new(expr, old.alias.clone()));
            return Ok(Transformed::yes(Arc::new(ProjectionExec::try_new(
                exprs, input,
            )?)));
        }
        if let Some(filter) = node.downcast_ref::<FilterExec>() {
            if !contains_ai_call(filter.predicate()) {
                return Ok(Transformed::no(node));
            }
            // ai_match over the rows of a join: the join becomes a semantic join. Over a
            // stream, a cross join (which DataFusion refuses for a stream) becomes a
            // nested-loop join streaming its right input, and pairs are asked one by one.
            let mut input = Arc::clone(filter.input());
            if let Some(join) = AiJoin::filtered(filter.input(), filter.predicate())? {
                if let Some(plan) =
                    join.in_blocks(self.join_block, self.query_id, contains_ai_call)?
                {
                    return Ok(Transformed::yes(match filter.projection() {
                        Some(indices) => project(plan, indices)?,
                        None => plan,
                    }));
                }
                if input.downcast_ref::<CrossJoinExec>().is_some()
                    && input.boundedness().is_unbounded()
                {
                    input = join.all_pairs()?;
                }
            }
            let original_columns = filter.input().schema().fields().len();
            let (plain, with_ai): (Vec<_>, Vec<_>) = split_conjunction(filter.predicate())
                .into_iter()
                .cloned()
                .partition(|e| !contains_ai_call(e));
            if !plain.is_empty() {
                input = Arc::new(FilterExec::try_new(conjunction(plain), input)?);
            }
            let (input, predicate) = self.extract(input, vec![conjunction(with_ai)])?;
            let mut builder = FilterExecBuilder::from(filter)
                .with_input(input)
                .with_predicate(
                    predicate
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| conjunction([])),
                );
            if filter.projection().is_none() {
                builder = builder.apply_projection(Some((0..original_columns).collect()))?;
            }
            return Ok(Transformed::yes(Arc::new(builder.build()?)));
        }
        if let Some(join) = AiJoin::of(&node, contains_ai_call)? {
            if let Some(plan) = join.in_blocks(self.join_block, self.query_id, contains_ai_call)? {
                return Ok(Transformed::yes(plan));
            }
            let filter = Arc::new(FilterExec::try_new(
                Arc::clone(&join.predicate),
                join.all_pairs()?,
            )?);
            let filtered = self.rewrite(filter)?.data;
            return Ok(Transformed::yes(join.project(filtered)?));
        }
        let mut found = None;
        node.apply_expressions(&mut |expr| {
            found = first_ai_call(expr);
            Ok(if found.is_some() {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        match found {
            Some(function) => plan_err!(
                "{function}() is not supported inside {} yet: compute it in the SELECT list \
                 of a subquery and use the resulting column",
                node.name()
            ),
            None => Ok(Transformed::no(node)),
        }
    }

    /// Evaluates the AI calls of `exprs` in [`AiExec`] layers over `input`, innermost
    /// first, and rewrites `exprs` to read their result columns. A call in a CASE branch
    /// or on the right of AND/OR is guarded: only rows that need it are asked about.
    fn extract(
        &self,
        mut input: Arc<dyn ExecutionPlan>,
        mut exprs: Exprs,
    ) -> Result<(Arc<dyn ExecutionPlan>, Exprs)> {
        loop {
            let schema = input.schema();
            let ready = ready_ai_calls(&exprs, &schema)?;
            if ready.is_empty() {
                if let Some(function) = exprs.iter().find_map(first_ai_call) {
                    return plan_err!(
                        "{function}() could not be planned: its arguments or conditions depend on each other"
                    );
                }
                return Ok((input, exprs));
            }
            let first_column = schema.fields().len();
            let mut calls = Vec::with_capacity(ready.len());
            for (i, (expr, guards)) in ready.into_iter().enumerate() {
                let name = format!("__blossom_ai_{}", first_column + i);
                if let Some(call) = AiCall::try_new(name, &expr, guards, &schema)? {
                    calls.push(call);
                }
            }
            exprs = exprs
                .into_iter()
                .map(|expr| {
                    expr.transform_up(|e| {
                        Ok(
                            match calls.iter().position(|c| c.expr.as_ref() == e.as_ref()) {
                                Some(i) => Transformed::yes(Arc::new(Column::new(
                                    &calls[i].name,
                                    first_column + i,
                                ))
                                    as Arc<dyn PhysicalExpr>),
                                None => Transformed::no(e),
                            },
                        )
                    })
                    .data()
                })
                .collect::<Result<_>>()?;
            input = Arc::new(AiExec::try_new(input, calls, self.query_id)?);
        }
    }
}

fn contains_ai_call(expr: &Arc<dyn PhysicalExpr>) -> bool {
    first_ai_call(expr).is_some()
}

/// The name of the first AI function called in `expr`, if any.
fn first_ai_call(expr: &Arc<dyn PhysicalExpr>) -> Option<&'static str> {
    let mut found = None;
    let _ = expr.apply(|e| {
        found = AiCall::function_of(e).map(|f| f.name());
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// The distinct AI calls of `exprs` that can be evaluated now (no AI call in their
/// arguments or in their guards), each with the guards under which it is needed. A
/// call needed under different guards is evaluated for every row.
fn ready_ai_calls(exprs: &[Arc<dyn PhysicalExpr>], schema: &Schema) -> Result<Vec<GuardedCall>> {
    let mut found: Vec<GuardedCall> = Vec::new();
    for expr in exprs {
        let mut calls = Vec::new();
        guarded_calls(expr, &[], schema, &mut calls)?;
        for (call, guards) in calls {
            let ready = !call.children().iter().any(|child| contains_ai_call(child))
                && !guards.iter().any(|g| contains_ai_call(&g.expr));
            if !ready {
                continue;
            }
            match found.iter_mut().find(|(f, _)| f.as_ref() == call.as_ref()) {
                Some((_, existing)) => {
                    if !same_guards(existing, &guards) {
                        existing.clear();
                    }
                }
                None => found.push((call, guards)),
            }
        }
    }
    Ok(found)
}

fn same_guards(a: &[Guard], b: &[Guard]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.truth == y.truth && x.expr.as_ref() == y.expr.as_ref())
}

/// Every AI call in `expr` with the conditions under which its value is used.
fn guarded_calls(
    expr: &Arc<dyn PhysicalExpr>,
    guards: &[Guard],
    schema: &Schema,
    out: &mut Vec<GuardedCall>,
) -> Result<()> {
    let with = |extra: Guard| {
        let mut all = guards.to_vec();
        all.push(extra);
        all
    };
    if AiCall::function_of(expr).is_some() {
        out.push((Arc::clone(expr), guards.to_vec()));
    } else if let Some(case) = expr.downcast_ref::<CaseExpr>() {
        if let Some(base) = case.expr() {
            guarded_calls(base, guards, schema, out)?;
        }
        let mut not_taken = guards.to_vec();
        for (when, then) in case.when_then_expr() {
            guarded_calls(when, &not_taken, schema, out)?;
            let condition = match case.expr() {
                Some(base) => binary(Arc::clone(base), Operator::Eq, Arc::clone(when), schema)?,
                None => Arc::clone(when),
            };
            let mut taken = not_taken.clone();
            taken.push(Guard {
                expr: Arc::clone(&condition),
                truth: Truth::True,
            });
            guarded_calls(then, &taken, schema, out)?;
            not_taken.push(Guard {
                expr: condition,
                truth: Truth::NotTrue,
            });
        }
        if let Some(otherwise) = case.else_expr() {
            guarded_calls(otherwise, &not_taken, schema, out)?;
        }
        return Ok(());
    } else if let Some(binary_expr) = expr.downcast_ref::<BinaryExpr>()
        && matches!(binary_expr.op(), Operator::And | Operator::Or)
    {
        let left = binary_expr.left();
        guarded_calls(left, guards, schema, out)?;
        let truth = if *binary_expr.op() == Operator::And {
            Truth::NotFalse
        } else {
            Truth::NotTrue
        };
        return guarded_calls(
            binary_expr.right(),
            &with(Guard {
                expr: Arc::clone(left),
                truth,
            }),
            schema,
            out,
        );
    }
    for child in expr.children() {
        guarded_calls(child, guards, schema, out)?;
    }
    Ok(())
}
