//! Argument checking and coercion shared by the AI functions: every argument is text;
//! numbers, booleans, dates, times and lists are cast to text.

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};

/// The types the arguments are cast to, or a planning error naming the bad argument.
pub(crate) fn coerce_to_text(
    function: &str,
    names: &[&str],
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    if arg_types.len() != names.len() {
        let plural = if names.len() == 1 { "" } else { "s" };
        return plan_err!(
            "{function}() takes {} argument{plural} ({}), got {}",
            names.len(),
            names.join(", "),
            arg_types.len()
        );
    }
    arg_types
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (t, name))| {
            if castable_to_text(t) {
                Ok(DataType::Utf8)
            } else {
                plan_err!(
                    "{function}(): argument {} ({name}) must be text, got {t}; \
                     convert it first, e.g. CAST(... AS VARCHAR) or array_to_string(...)",
                    i + 1
                )
            }
        })
        .collect()
}

fn castable_to_text(t: &DataType) -> bool {
    can_cast_types(t, &DataType::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_what_arrow_can_cast_to_text() {
        for t in [
            DataType::Int64,
            DataType::Date32,
            DataType::new_list(DataType::Int64, true),
        ] {
            let ok = coerce_to_text("f", &["text"], std::slice::from_ref(&t)).unwrap();
            assert_eq!(ok, vec![DataType::Utf8], "{t}");
        }
        let err = coerce_to_text(
            "sentiment",
            &["text"],
            &[DataType::Map(
                std::sync::Arc::new(datafusion::arrow::datatypes::Field::new(
                    "entries",
                    DataType::Struct(Default::default()),
                    false,
                )),
                false,
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sentiment(): argument 1 (text) must be text"),
            "{err}"
        );
        let err = coerce_to_text("enhance", &["text"], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("enhance() takes 1 argument (text), got 0"),
            "{err}"
        );
    }
}
