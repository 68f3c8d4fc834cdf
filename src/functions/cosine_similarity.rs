//! `cosine_similarity(a, b)`: how alike two vectors point, from -1 to 1; for ranking
//! rows by meaning with `embed()`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Float64Array, Float64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::DOC_SECTION;

/// `cosine_similarity(a, b)`: the cosine of the angle between two vectors of the same
/// length (lists or fixed-size lists of numbers), as a DOUBLE from -1 to 1. NULL when
/// either is NULL or has no direction (all zeros).
///
/// ```sql
/// SELECT id, text FROM 'data/reviews.csv'
/// ORDER BY cosine_similarity(embed(text), embed('late delivery')) DESC LIMIT 5;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CosineSimilarity {
    signature: Signature,
}

impl Default for CosineSimilarity {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION,
        "The cosine similarity of two vectors of the same length (lists of numbers, such as embed() returns), from -1 (opposite) to 1 (same direction). NULL when either is NULL or all zeros; vectors of different lengths are an error.",
        "cosine_similarity(a, b)",
    )
    .with_sql_example(
        "```sql\n> SELECT cosine_similarity([1.0, 0.0], [1.0, 1.0]);\n+----------------------------------------------------------------+\n| cosine_similarity(make_array(Float64(1),Float64(0)),make_array(Float64(1),Float64(1))) |\n+----------------------------------------------------------------+\n| 0.7071067811865475                                             |\n+----------------------------------------------------------------+\n```",
    )
    .with_argument("a", "A vector: a list or fixed-size list of numbers.")
    .with_argument("b", "A vector of the same length.")
    .build()
});

/// The list type both arguments are cast to.
fn list_of_doubles() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

fn is_vector(data_type: &DataType) -> bool {
    match data_type {
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            field.data_type().is_numeric() || field.data_type().is_null()
        }
        DataType::Null => true,
        _ => false,
    }
}

impl ScalarUDFImpl for CosineSimilarity {
    fn name(&self) -> &str {
        "cosine_similarity"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        for (i, data_type) in arg_types.iter().enumerate() {
            if !is_vector(data_type) {
                return plan_err!(
                    "cosine_similarity(): argument {} must be a list of numbers (such as embed() returns), got {data_type}",
                    i + 1
                );
            }
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return exec_err!("cosine_similarity() takes two arguments");
        };
        let (a, b) = (cast(a, &list_of_doubles())?, cast(b, &list_of_doubles())?);
        let (a, b) = (a.as_list::<i32>(), b.as_list::<i32>());
        let mut out = Float64Builder::with_capacity(a.len());
        for row in 0..a.len() {
            if a.is_null(row) || b.is_null(row) {
                out.append_null();
                continue;
            }
            let (x, y) = (a.value(row), b.value(row));
            let (x, y) = (
                x.as_primitive::<Float64Type>(),
                y.as_primitive::<Float64Type>(),
            );
            if x.len() != y.len() {
                return exec_err!(
                    "cosine_similarity(): the vectors of row {} have lengths {} and {}",
                    row + 1,
                    x.len(),
                    y.len()
                );
            }
            out.append_option(cosine(x, y));
        }
        let result: Float64Array = out.finish();
        Ok(ColumnarValue::Array(Arc::new(result)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// The cosine of two equally long vectors; `None` if one has a NULL element or no
/// direction.
fn cosine(x: &Float64Array, y: &Float64Array) -> Option<f64> {
    if x.null_count() > 0 || y.null_count() > 0 {
        return None;
    }
    let (x, y) = (x.values(), y.values());
    let dot: f64 = x.iter().zip(y.iter()).map(|(a, b)| a * b).sum();
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let denominator = norm(x) * norm(y);
    (denominator > 0.0).then(|| dot / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines() {
        let v = |values: &[f64]| Float64Array::from(values.to_vec());
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert!(close(
            cosine(&v(&[1.0, 0.0]), &v(&[1.0, 1.0])),
            0.5f64.sqrt()
        ));
        assert!(close(cosine(&v(&[1.0, 2.0]), &v(&[-1.0, -2.0])), -1.0));
        assert_eq!(cosine(&v(&[0.0, 0.0]), &v(&[1.0, 1.0])), None);
        assert!(is_vector(&list_of_doubles()));
        assert!(!is_vector(&DataType::Utf8));
    }
}
