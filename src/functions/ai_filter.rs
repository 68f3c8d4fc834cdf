//! `ai_filter(text, condition)`: whether the text meets a condition, as a BOOLEAN for
//! `WHERE`.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{
    AiFunction, ArgSpec, Constants, DOC_SECTION, Param, answer_key, arg, with_options_argument,
};
use crate::provider::{ChatMessage, truncate_chars};

/// `ai_filter(text, condition)`: returns TRUE when the model says the text meets the
/// condition, FALSE when it says it does not. Only `yes`, `no`, `true` and `false` are
/// accepted as answers (any case, with surrounding punctuation or markdown); anything
/// else is an error for that row, never a guess.
///
/// ```sql
/// SELECT id, text FROM 'data/reviews.csv' WHERE lang = 'en' AND ai_filter(text, 'mentions a refund');
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AiFilter;

const SPEC: ArgSpec = ArgSpec::fixed(&[Param::text("text"), Param::instruction("condition")]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Asks whether the text meets the condition and returns TRUE or FALSE, for use in WHERE. Only yes/no (or true/false) answers are accepted; anything else is an error for that row. NULL or empty text gives NULL without a request.",
            "ai_filter(text, condition)",
        )
        .with_sql_example(
            "```sql\n> SELECT ai_filter('I want my money back', 'asks for a refund');\n+--------------------------------------------------------------------+\n| ai_filter(Utf8(\"I want my money back\"),Utf8(\"asks for a refund\")) |\n+--------------------------------------------------------------------+\n| true                                                               |\n+--------------------------------------------------------------------+\n```",
        )
        .with_argument("text", "The text to check.")
        .with_argument(
            "condition",
            "What the text must meet, in plain words (e.g. 'mentions a refund'); a literal or a column.",
        ),
    )
    .build()
});

impl AiFunction for AiFilter {
    fn name(&self) -> &'static str {
        "ai_filter"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], _: &Constants) -> Vec<ChatMessage> {
        let instruction = format!(
            "You check whether a text meets a condition.\nCondition: {}\nAnswer with \
             exactly one word: YES if the text meets the condition, NO if it does not.",
            arg(args, 1).trim()
        );
        vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ]
    }

    fn return_type(&self) -> DataType {
        DataType::Boolean
    }

    fn packable(&self) -> bool {
        true
    }

    fn parse(&self, answer: &str, _: &Constants) -> Result<ScalarValue, String> {
        yes_or_no(answer)
            .map(|yes| ScalarValue::Boolean(Some(yes)))
            .ok_or_else(|| {
                format!(
                    "the answer {:?} is not YES or NO",
                    truncate_chars(answer.trim(), 80)
                )
            })
    }
}

/// `Some(true)` for yes/true, `Some(false)` for no/false (any case, with surrounding
/// quotes, markdown or punctuation), `None` for anything else.
pub(super) fn yes_or_no(answer: &str) -> Option<bool> {
    match answer_key(answer).as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_yes_and_no_only() {
        for (answer, expected) in [
            ("YES", true),
            ("yes", true),
            ("Yes.", true),
            ("**Yes**", true),
            (" true\n", true),
            ("\"TRUE\"", true),
            ("No", false),
            ("no.", false),
            ("False", false),
            ("`NO`!", false),
        ] {
            assert_eq!(yes_or_no(answer), Some(expected), "{answer}");
            assert_eq!(
                AiFilter.parse(answer, &Constants::default()),
                Ok(ScalarValue::Boolean(Some(expected)))
            );
        }
        for answer in [
            "",
            "maybe",
            "Yes, it does",
            "yes and no",
            "y",
            "nope",
            "1",
            "Yes because",
        ] {
            assert_eq!(yes_or_no(answer), None, "{answer}");
            let error = AiFilter
                .parse(answer, &Constants::default())
                .expect_err(answer);
            assert!(error.contains("is not YES or NO"), "{error}");
        }
    }

    #[test]
    fn puts_the_condition_in_the_instruction() {
        let messages = AiFilter.messages(&["my text", "mentions a refund"], &Constants::default());
        assert!(
            messages[0]
                .content
                .contains("\nCondition: mentions a refund\n")
        );
        assert_eq!(messages[1], ChatMessage::user("my text"));
        assert_eq!(AiFilter.return_type(), DataType::Boolean);
    }
}
