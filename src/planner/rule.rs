//! [`PlanAiCalls`]: the physical optimizer rule that takes AI calls out of projections
//! and filters and evaluates them in [`AiExec`] operators below, innermost calls first,
//! so that nested calls (`sentiment(enhance(text))`) and stages merged by the optimizer
//! work. In a filter, the conditions without AI calls run first.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, plan_err};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

use super::ai_call::{AiCall, AnswerMemo};
use super::ai_exec::AiExec;
use crate::dispatch::Dispatcher;

/// Finished answers a query remembers for deduplication (older ones are forgotten).
const QUERY_MEMO_CAPACITY: usize = 1_000_000;

/// Moves AI calls into [`AiExec`] operators. One instance per session; each query gets
/// its own answer memo, so identical requests within a query are sent once.
#[derive(Debug)]
pub struct PlanAiCalls {
    dispatcher: Arc<Dispatcher>,
}

impl PlanAiCalls {
    /// The rule for a session whose calls go through `dispatcher`.
    pub fn new(dispatcher: Arc<Dispatcher>) -> Self {
        Self { dispatcher }
    }
}

impl PhysicalOptimizerRule for PlanAiCalls {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let memo = Arc::new(AnswerMemo::new(QUERY_MEMO_CAPACITY));
        let planner = Planner {
            dispatcher: &self.dispatcher,
            memo: &memo,
        };
        plan.transform_up(|node| planner.rewrite(node)).data()
    }

    fn name(&self) -> &str {
        "blossom_plan_ai_calls"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

type Exprs = Vec<Arc<dyn PhysicalExpr>>;

struct Planner<'a> {
    dispatcher: &'a Arc<Dispatcher>,
    memo: &'a Arc<AnswerMemo>,
}

impl Planner<'_> {
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
            let original_columns = filter.input().schema().fields().len();
            let (plain, with_ai): (Vec<_>, Vec<_>) = split_conjunction(filter.predicate())
                .into_iter()
                .cloned()
                .partition(|e| !contains_ai_call(e));
            let mut input = Arc::clone(filter.input());
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
    /// first, and rewrites `exprs` to read their result columns.
    fn extract(
        &self,
        mut input: Arc<dyn ExecutionPlan>,
        mut exprs: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<(Arc<dyn ExecutionPlan>, Exprs)> {
        loop {
            let innermost = innermost_ai_calls(&exprs);
            if innermost.is_empty() {
                return Ok((input, exprs));
            }
            let schema = input.schema();
            let first_column = schema.fields().len();
            let mut calls = Vec::with_capacity(innermost.len());
            for (i, expr) in innermost.iter().enumerate() {
                let name = format!("__blossom_ai_{}", first_column + i);
                if let Some(call) = AiCall::try_new(name, expr, &schema)? {
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
            input = Arc::new(AiExec::try_new(
                input,
                calls,
                Arc::clone(self.dispatcher),
                Arc::clone(self.memo),
            )?);
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

/// The distinct AI calls in `exprs` whose arguments hold no AI call.
fn innermost_ai_calls(exprs: &[Arc<dyn PhysicalExpr>]) -> Vec<Arc<dyn PhysicalExpr>> {
    let mut found: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
    for expr in exprs {
        let _ = expr.apply(|e| {
            if AiCall::function_of(e).is_some()
                && !e.children().iter().any(|child| contains_ai_call(child))
                && !found.iter().any(|f| f.as_ref() == e.as_ref())
            {
                found.push(Arc::clone(e));
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    found
}
