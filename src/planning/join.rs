//! AI calls in a join's condition: `a JOIN b ON ai_match(a.text, b.text, '...')`, or the
//! same in a `WHERE` over two tables (which DataFusion makes a join condition).
//!
//! An inner join whose only AI call is `ai_match` over a text of each side, with a
//! literal condition, becomes a semantic join ([`AiJoinExec`]: pairs asked in blocks);
//! its other conditions (an equality on a key, `a.id < b.id`) choose the candidate
//! pairs first. Any other AI condition of an inner join is asked pair by pair: the join
//! without its condition, then a filter with it, whose AI calls the rule plans as in any
//! filter. An AI call in the condition of an outer, semi or anti join is refused.
//!
//! ```sql
//! SET blossom.join_block = 1; -- pair by pair, one request per pair of texts
//! SELECT a.id, b.id FROM 'data/reviews.csv' a, 'data/reviews.csv' b
//! WHERE a.id < b.id AND ai_match(a.text, b.text, 'the two reviews express the same opinion');
//! ```

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{JoinSide, JoinType, NullEquality, Result, ScalarValue, plan_err};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal, binary};
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_plan::joins::utils::{JoinFilter, build_join_schema};
use datafusion::physical_plan::joins::{CrossJoinExec, HashJoinExec, NestedLoopJoinExec};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use crate::execution::AiJoinExec;

/// A join with AI calls in its condition, its condition over the joined columns (left,
/// then right).
pub(super) struct AiJoin {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    /// The whole condition: the join filter and, for a hash join, its key equalities.
    pub predicate: Arc<dyn PhysicalExpr>,
    projection: Option<Vec<usize>>,
}

impl AiJoin {
    /// The join `node` if it is one with an AI call (found by `has_ai_call`) in its
    /// condition; an error for such a join that is not an inner join.
    pub(super) fn of(
        node: &Arc<dyn ExecutionPlan>,
        has_ai_call: impl Fn(&Arc<dyn PhysicalExpr>) -> bool,
    ) -> Result<Option<Self>> {
        let Some(parts) = JoinParts::of(node) else {
            return Ok(None);
        };
        if !parts.filter.is_some_and(|f| has_ai_call(f.expression())) {
            return Ok(None);
        }
        if parts.join_type != JoinType::Inner {
            return plan_err!(
                "AI functions in the condition of a {} join are not supported: \
                 use an INNER JOIN, or compute the condition in a subquery",
                parts.join_type
            );
        }
        parts.into_ai_join().map(Some)
    }

    /// The inner join under a filter, `node`, with the filter's `predicate` (over the
    /// join's output) added to its condition; `None` if `node` is no inner join.
    pub(super) fn filtered(
        node: &Arc<dyn ExecutionPlan>,
        predicate: &Arc<dyn PhysicalExpr>,
    ) -> Result<Option<Self>> {
        let Some(parts) = JoinParts::of(node) else {
            return Ok(None);
        };
        if parts.join_type != JoinType::Inner {
            return Ok(None);
        }
        let mut join = parts.into_ai_join()?;
        // The predicate reads the join's output: through its projection, if it has one.
        let projection = join.projection.clone();
        let joined =
            build_join_schema(&join.left.schema(), &join.right.schema(), &JoinType::Inner).0;
        let predicate = Arc::clone(predicate)
            .transform_up(|e| {
                let Some(column) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                let index = match &projection {
                    Some(indices) => match indices.get(column.index()) {
                        Some(index) => *index,
                        None => {
                            return plan_err!("a filter reads a column the join lacks: {column}");
                        }
                    },
                    None => column.index(),
                };
                Ok(Transformed::yes(
                    Arc::new(Column::new(joined.field(index).name(), index))
                        as Arc<dyn PhysicalExpr>,
                ))
            })
            .data()?;
        join.predicate = conjunction([Arc::clone(&join.predicate), predicate]);
        Ok(Some(join))
    }

    /// The semantic join, when the condition's only AI call is an `ai_match` it can ask
    /// in blocks and `join_block` is above 1.
    pub(super) fn in_blocks(
        &self,
        join_block: usize,
        query_id: u64,
        has_ai_call: impl Fn(&Arc<dyn PhysicalExpr>) -> bool,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        // A semantic join reads both inputs whole: over a stream, pair by pair (the
        // stream on the probe side) answers as rows come.
        let streams = [&self.left, &self.right]
            .iter()
            .any(|input| input.boundedness().is_unbounded());
        if join_block <= 1 || streams {
            return Ok(None);
        }
        let (plain, with_ai): (Vec<_>, Vec<_>) = split_conjunction(&self.predicate)
            .into_iter()
            .cloned()
            .partition(|e| !has_ai_call(e));
        let [call] = with_ai.as_slice() else {
            return Ok(None);
        };
        if !AiJoinExec::can_plan(call, self.left.schema().fields().len()) {
            return Ok(None);
        }
        // A join without conditions of its own gives `true`, nothing to check.
        let plain: Vec<_> = plain
            .into_iter()
            .filter(|e| {
                e.downcast_ref::<Literal>()
                    .is_none_or(|l| l.value() != &ScalarValue::Boolean(Some(true)))
            })
            .collect();
        let filter = (!plain.is_empty()).then(|| conjunction(plain));
        Ok(Some(Arc::new(AiJoinExec::try_new(
            Arc::clone(&self.left),
            Arc::clone(&self.right),
            call,
            filter,
            self.projection.clone(),
            query_id,
        )?)))
    }

    /// Every pair of rows: the join without its condition. Its filter is `true`, so that
    /// it stays a nested-loop join, which streams its right input (DataFusion's cross
    /// join does not, and refuses a stream).
    pub(super) fn all_pairs(&self) -> Result<Arc<dyn ExecutionPlan>> {
        let always = JoinFilter::new(
            Arc::new(Literal::new(ScalarValue::Boolean(Some(true)))),
            Vec::new(),
            Arc::new(datafusion::arrow::datatypes::Schema::empty()),
        );
        Ok(Arc::new(NestedLoopJoinExec::try_new(
            Arc::clone(&self.left),
            Arc::clone(&self.right),
            Some(always),
            &JoinType::Inner,
            None,
        )?))
    }

    /// `plan` (over the joined columns) narrowed to the join's output columns.
    pub(super) fn project(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        match &self.projection {
            Some(indices) => project(plan, indices),
            None => Ok(plan),
        }
    }
}

/// `plan` narrowed to its columns `indices`.
pub(super) fn project(
    plan: Arc<dyn ExecutionPlan>,
    indices: &[usize],
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = plan.schema();
    let exprs = indices.iter().map(|&i| {
        let name = schema.field(i).name().clone();
        ProjectionExpr::new(Arc::new(Column::new(&name, i)), name)
    });
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

/// A key equality of a hash join: left key, right key, how they compare.
type KeyEquality = (Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>, Operator);

/// What a semantic join needs of a DataFusion join.
struct JoinParts<'a> {
    left: &'a Arc<dyn ExecutionPlan>,
    right: &'a Arc<dyn ExecutionPlan>,
    filter: Option<&'a JoinFilter>,
    join_type: JoinType,
    /// Key equalities (of a hash join).
    keys: Vec<KeyEquality>,
    projection: Option<Vec<usize>>,
}

impl<'a> JoinParts<'a> {
    fn of(node: &'a Arc<dyn ExecutionPlan>) -> Option<Self> {
        if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
            return Some(Self {
                left: join.left(),
                right: join.right(),
                filter: join.filter(),
                join_type: *join.join_type(),
                keys: Vec::new(),
                projection: join.projection().as_ref().map(|p| p.to_vec()),
            });
        }
        if let Some(join) = node.downcast_ref::<CrossJoinExec>() {
            return Some(Self {
                left: join.left(),
                right: join.right(),
                filter: None,
                join_type: JoinType::Inner,
                keys: Vec::new(),
                projection: None,
            });
        }
        let join = node.downcast_ref::<HashJoinExec>()?;
        let operator = match join.null_equality() {
            NullEquality::NullEqualsNothing => Operator::Eq,
            NullEquality::NullEqualsNull => Operator::IsNotDistinctFrom,
        };
        Some(Self {
            left: join.left(),
            right: join.right(),
            filter: join.filter(),
            join_type: *join.join_type(),
            keys: join
                .on()
                .iter()
                .map(|(l, r)| (Arc::clone(l), Arc::clone(r), operator))
                .collect(),
            projection: join.projection.as_ref().map(|p| p.to_vec()),
        })
    }

    /// The join with its whole condition over the joined columns.
    fn into_ai_join(self) -> Result<AiJoin> {
        let left_columns = self.left.schema().fields().len();
        let (joined, _) =
            build_join_schema(&self.left.schema(), &self.right.schema(), &JoinType::Inner);
        let mut conditions = Vec::with_capacity(self.keys.len() + 1);
        for (l, r, operator) in self.keys {
            conditions.push(binary(l, operator, shift(r, left_columns)?, &joined)?);
        }
        if let Some(filter) = self.filter {
            conditions.push(on_joined(filter, left_columns, &joined)?);
        }
        Ok(AiJoin {
            left: Arc::clone(self.left),
            right: Arc::clone(self.right),
            predicate: conjunction(conditions),
            projection: self.projection,
        })
    }
}

/// A join filter's expression over the joined columns instead of its own.
fn on_joined(
    filter: &JoinFilter,
    left_columns: usize,
    joined: &datafusion::arrow::datatypes::Schema,
) -> Result<Arc<dyn PhysicalExpr>> {
    let indices = filter.column_indices().to_vec();
    Arc::clone(filter.expression())
        .transform_up(|e| {
            let Some(column) = e.downcast_ref::<Column>() else {
                return Ok(Transformed::no(e));
            };
            let Some(source) = indices.get(column.index()) else {
                return plan_err!("a join filter reads a column it does not have: {column}");
            };
            let index = match source.side {
                JoinSide::Left => source.index,
                JoinSide::Right | JoinSide::None => left_columns + source.index,
            };
            Ok(Transformed::yes(
                Arc::new(Column::new(joined.field(index).name(), index)) as Arc<dyn PhysicalExpr>,
            ))
        })
        .data()
}

/// `expr` over the right input's columns, read from the joined ones.
fn shift(expr: Arc<dyn PhysicalExpr>, left_columns: usize) -> Result<Arc<dyn PhysicalExpr>> {
    expr.transform_up(|e| {
        Ok(match e.downcast_ref::<Column>() {
            Some(column) => Transformed::yes(Arc::new(Column::new(
                column.name(),
                column.index() + left_columns,
            )) as Arc<dyn PhysicalExpr>),
            None => Transformed::no(e),
        })
    })
    .data()
}
