//! `embed(text [, dimensions])`: the text's embedding vector, from the provider's
//! OpenAI-compatible embeddings endpoint.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{FixedSizeListArray, Float32Array};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, with_options_argument};
use crate::provider::ChatMessage;

/// The vector length when the call does not name one: that of OpenAI's
/// `text-embedding-3-small`, the default `blossom.embedding_model`.
pub const DEFAULT_DIMENSIONS: u32 = 1536;

/// The longest vector a call may ask for.
pub const MAX_DIMENSIONS: u64 = 16_384;

const DIMENSIONS: &str = "dimensions";

/// `embed(text [, dimensions])`: returns a `FixedSizeList<Float32>` of `dimensions`
/// numbers (1536 by default) from `blossom.embedding_model`. Texts go 64 to a request.
///
/// ```sql
/// SELECT id, text FROM 'data/reviews.csv'
/// ORDER BY cosine_similarity(embed(text), embed('late delivery')) DESC LIMIT 5;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Embed;

const SPEC: ArgSpec = ArgSpec {
    required: &[Param::text("text")],
    optional: &[Param::positive_int(DIMENSIONS)],
    variadic: None,
};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "The embedding vector of the text, from blossom.embedding_model at the provider's /embeddings endpoint, as a fixed-size list of FLOAT. With dimensions, that length is asked for (sent as the request's dimensions) and must be what the provider returns; without, 1536 is expected. A vector of another length is an error for that row. NULL or empty text gives NULL without a request. The options' model overrides blossom.embedding_model.",
            "embed(text [, dimensions])",
        )
        .with_sql_example(
            "```sql\n> SELECT id FROM 'data/reviews.csv'\n  ORDER BY cosine_similarity(embed(text, 256), embed('late delivery', 256)) DESC LIMIT 3;\n+-----+\n| id  |\n+-----+\n| 17  |\n| 203 |\n| 88  |\n+-----+\n```",
        )
        .with_argument("text", "The text to embed.")
        .with_argument(
            DIMENSIONS,
            "Optional: the vector length, a positive whole number literal (default 1536).",
        ),
    )
    .build()
});

/// The length a call's vectors have.
fn dimensions(constants: &Constants) -> u32 {
    constants
        .int(DIMENSIONS)
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(DEFAULT_DIMENSIONS)
}

/// The type of a call's result.
fn vector_type(dimensions: u32) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        i32::try_from(dimensions).unwrap_or(i32::MAX),
    )
}

impl AiFunction for Embed {
    fn name(&self) -> &'static str {
        "embed"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], _: &Constants) -> Vec<ChatMessage> {
        vec![ChatMessage::user(arg(args, 0))]
    }

    fn embeds(&self, constants: &Constants) -> Option<Option<u32>> {
        Some(
            constants
                .int(DIMENSIONS)
                .and_then(|d| u32::try_from(d).ok()),
        )
    }

    fn return_type(&self) -> DataType {
        vector_type(DEFAULT_DIMENSIONS)
    }

    fn return_type_for(&self, constants: &Constants) -> Result<DataType, String> {
        match constants.int(DIMENSIONS) {
            Some(d) if d > MAX_DIMENSIONS => Err(format!(
                "argument 2 (dimensions) must be at most {MAX_DIMENSIONS}, got {d}"
            )),
            _ => Ok(vector_type(dimensions(constants))),
        }
    }

    fn parse(&self, answer: &str, constants: &Constants) -> Result<ScalarValue, String> {
        let expected = dimensions(constants);
        let values: Vec<f32> = serde_json::from_str(answer)
            .map_err(|e| format!("the embedding is not a list of numbers: {e}"))?;
        if values.len() != expected as usize {
            return Err(format!(
                "the provider returned a vector of {} numbers, not {expected}: write \
                 embed(text, {}) to expect that length",
                values.len(),
                values.len()
            ));
        }
        let field = Arc::new(Field::new_list_field(DataType::Float32, true));
        let list = FixedSizeListArray::try_new(
            field,
            i32::try_from(expected).map_err(|e| e.to_string())?,
            Arc::new(Float32Array::from(values)),
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(ScalarValue::FixedSizeList(Arc::new(list)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_of_the_expected_length() {
        let constants = Constants::with_int(DIMENSIONS, 3);
        let value = Embed.parse("[0.5, -1, 2e-3]", &constants).unwrap();
        assert_eq!(value.data_type(), vector_type(3));
        let wrong = Embed.parse("[1, 2]", &constants).unwrap_err();
        assert!(wrong.contains("embed(text, 2)"), "{wrong}");
        assert!(Embed.parse("not json", &constants).is_err());
        assert_eq!(
            Embed.return_type_for(&Constants::default()),
            Ok(vector_type(1536))
        );
        assert!(
            Embed
                .return_type_for(&Constants::with_int(DIMENSIONS, 20_000))
                .is_err()
        );
        assert_eq!(Embed.embeds(&Constants::default()), Some(None));
    }
}
