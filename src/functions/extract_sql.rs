//! The compatible spelling `extract(text, 'schema')` of `ai_extract()`: the parser reads
//! every `extract(a, b)` as SQL's `EXTRACT(field, expr)` (a date part), so
//! [`ExtractPlanner`] claims the calls that cannot be a date part and plans them as
//! `ai_extract()`; every other `EXTRACT` keeps DataFusion's meaning.

use std::sync::Arc;

use datafusion::common::{Column, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{Expr, ScalarUDF};

use super::{AiUdf, Extract};

/// Plans `extract(text, 'name VARCHAR, ...')` as `ai_extract()` instead of a date part.
///
/// SQL parses `extract(x, y)` as `EXTRACT(x, y)`: `x` must then be a column name or a
/// text literal (not an expression) and there is no third argument. A call is claimed
/// when `y` is a text literal that does not start with a digit, `+` or `-` (a date or
/// timestamp string would, so `EXTRACT(year FROM '2024-05-01')` keeps its meaning).
/// Every other form, e.g. with an expression or options, is written `ai_extract(...)`:
///
/// ```sql
/// SELECT extract(text, 'name VARCHAR, price DOUBLE') FROM 'data/reviews.csv';
/// SELECT ai_extract(upper(text), 'name VARCHAR', '{"model": "mistral"}') FROM 'data/reviews.csv';
/// ```
#[derive(Debug)]
pub struct ExtractPlanner {
    udf: Arc<ScalarUDF>,
}

impl Default for ExtractPlanner {
    fn default() -> Self {
        Self {
            udf: Arc::new(ScalarUDF::new_from_impl(AiUdf::new(Arc::new(Extract)))),
        }
    }
}

impl ExprPlanner for ExtractPlanner {
    fn plan_extract(&self, args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        let (Some(field), Some(schema)) = (args.first(), args.get(1)) else {
            return Ok(PlannerResult::Original(args));
        };
        let is_schema = literal_text(schema).is_some_and(|s| {
            !s.trim_start()
                .starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-')
        });
        let text = match literal_text(field) {
            Some(field) if is_schema => text_argument(field),
            _ => return Ok(PlannerResult::Original(args)),
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::clone(&self.udf), vec![text, schema.clone()]),
        )))
    }
}

/// The text of a string literal.
fn literal_text(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(value, _) => value.try_as_str().flatten(),
        _ => None,
    }
}

/// The first argument, as the parser printed its "date part": `'text'` is a text
/// literal, `"Name"` a column named exactly so, anything else a column name (normalized
/// to lower case like any unquoted identifier).
fn text_argument(field: &str) -> Expr {
    let unquoted = |q: char| {
        field
            .strip_prefix(q)
            .and_then(|rest| rest.strip_suffix(q))
            .map(|inner| inner.replace(&format!("{q}{q}"), &q.to_string()))
    };
    if let Some(text) = unquoted('\'') {
        Expr::Literal(ScalarValue::Utf8(Some(text)), None)
    } else if let Some(name) = unquoted('"') {
        Expr::Column(Column::from_name(name))
    } else {
        Expr::Column(Column::from_name(field.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(s: &str) -> Expr {
        Expr::Literal(ScalarValue::Utf8(Some(s.to_string())), None)
    }

    fn planned(field: &str, second: Expr) -> Option<Expr> {
        match ExtractPlanner::default()
            .plan_extract(vec![utf8(field), second])
            .expect("plans")
        {
            PlannerResult::Planned(expr) => Some(expr),
            PlannerResult::Original(_) => None,
        }
    }

    #[test]
    fn claims_schema_literals_only() {
        let Some(Expr::ScalarFunction(call)) = planned("text", utf8("name VARCHAR")) else {
            panic!("not claimed")
        };
        assert_eq!(call.name(), "ai_extract");
        assert_eq!(call.args[0], Expr::Column(Column::from_name("text")));
        let Some(Expr::ScalarFunction(call)) = planned("'It''s 5'", utf8(" ")) else {
            panic!("not claimed")
        };
        assert_eq!(call.args[0], utf8("It's 5"));
        let Some(Expr::ScalarFunction(call)) = planned("\"Body\"", utf8("a INT")) else {
            panic!("not claimed")
        };
        assert_eq!(call.args[0], Expr::Column(Column::from_name("Body")));
        assert!(planned("YEAR", utf8("2024-05-01")).is_none());
        assert!(planned("YEAR", utf8("-infinity")).is_none());
        assert!(planned("YEAR", Expr::Column(Column::from_name("ts"))).is_none());
    }
}
