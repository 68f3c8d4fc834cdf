//! `sentiment(text)`: exactly `POSITIVE`, `NEGATIVE` or `NEUTRAL`.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, with_options_argument};
use crate::provider::ChatMessage;

const INSTRUCTION: &str = "You classify the sentiment of a text. Answer with exactly one \
word: POSITIVE, NEGATIVE or NEUTRAL.";

const LABELS: [&str; 3] = ["POSITIVE", "NEGATIVE", "NEUTRAL"];

/// `sentiment(text)`: returns `POSITIVE`, `NEGATIVE` or `NEUTRAL`, nothing else.
///
/// ```sql
/// SELECT sentiment(text) AS s, count(*) FROM 'data/reviews.parquet' GROUP BY s;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Sentiment;

const SPEC: ArgSpec = ArgSpec::fixed(&[Param::text("text")]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(Documentation::builder(
        DOC_SECTION,
        "Classifies the sentiment of the text as exactly 'POSITIVE', 'NEGATIVE' or 'NEUTRAL'. Answers are normalized ('Positive.' is POSITIVE); any other answer is an error for that row, never a wrong value. NULL or empty text gives NULL without a request.",
        "sentiment(text)",
    )
    .with_sql_example(
        "```sql\n> SELECT sentiment('I love it, works great');\n+---------------------------------------------+\n| sentiment(Utf8(\"I love it, works great\"))    |\n+---------------------------------------------+\n| POSITIVE                                    |\n+---------------------------------------------+\n```",
    )
    .with_argument("text", "The text to classify."))
    .build()
});

impl AiFunction for Sentiment {
    fn name(&self) -> &'static str {
        "sentiment"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], _: &Constants) -> Vec<ChatMessage> {
        vec![
            ChatMessage::system(INSTRUCTION),
            ChatMessage::user(arg(args, 0)),
        ]
    }

    fn packable(&self) -> bool {
        true
    }

    fn parse(&self, answer: &str, _: &Constants) -> Result<ScalarValue, String> {
        normalize_label(answer)
            .map(|label| ScalarValue::Utf8(Some(label.to_string())))
            .ok_or_else(|| {
                format!("the answer {answer:?} is not one of POSITIVE, NEGATIVE or NEUTRAL")
            })
    }
}

/// The one label an answer names: its words, upper-cased, must contain exactly one
/// distinct label ("Positive.", "**NEGATIVE**", "Sentiment: neutral").
fn normalize_label(answer: &str) -> Option<&'static str> {
    let upper = answer.to_uppercase();
    let mut found = upper
        .split(|c: char| !c.is_alphabetic())
        .filter_map(|word| LABELS.iter().find(|label| **label == word).copied());
    let first = found.next()?;
    found.all(|other| other == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_answers() {
        for (answer, label) in [
            ("POSITIVE", "POSITIVE"),
            ("Positive.", "POSITIVE"),
            (" negative\n", "NEGATIVE"),
            ("**Neutral**", "NEUTRAL"),
            ("Sentiment: positive", "POSITIVE"),
            ("POSITIVE, clearly POSITIVE", "POSITIVE"),
        ] {
            assert_eq!(normalize_label(answer), Some(label), "{answer}");
        }
    }

    /// A row asked on its own sends byte for byte what it sent before packs were filled
    /// by tokens: the query memo and the persistent cache key it, so caches written
    /// before still answer whatever the packing protocol.
    #[test]
    fn the_single_row_request_is_the_cache_key_of_before() {
        let request = crate::provider::ChatRequest {
            model: "openai".to_string(),
            messages: Sentiment.messages(&["I love it"], &Constants::default()),
            temperature: None,
            max_tokens: None,
            response_format: None,
        };
        assert_eq!(
            serde_json::to_string(&request).expect("serializes"),
            r#"{"model":"openai","messages":[{"role":"system","content":"You classify the sentiment of a text. Answer with exactly one word: POSITIVE, NEGATIVE or NEUTRAL."},{"role":"user","content":"I love it"}]}"#
        );
    }

    #[test]
    fn refuses_anything_else() {
        for answer in ["", "good", "POSITIVE or NEGATIVE", "positively", "mixed"] {
            assert_eq!(normalize_label(answer), None, "{answer}");
            assert!(Sentiment.parse(answer, &Constants::default()).is_err());
        }
    }
}
