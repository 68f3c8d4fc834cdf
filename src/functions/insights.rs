//! `insights(text)`: the key insights of a text, as a short list.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{
    AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, text_answer, with_options_argument,
};
use crate::provider::ChatMessage;

const INSTRUCTION: &str = "You extract the key insights from a text. Answer with a short list \
of the key insights only, in the language of the text.";

/// `insights(text)`: returns the key insights of the text as a short list.
///
/// ```sql
/// SELECT id, insights(text) AS insights FROM 'data/articles.json' LIMIT 5;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Insights;

const SPEC: ArgSpec = ArgSpec::fixed(&[Param::text("text")]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(Documentation::builder(
        DOC_SECTION,
        "Extracts the key insights of the text as a short list. NULL or empty text gives NULL without a request.",
        "insights(text)",
    )
    .with_sql_example(
        "```sql\n> SELECT insights('Sales rose 12% while costs fell.');\n+---------------------------------------------------+\n| insights(Utf8(\"Sales rose 12% while costs fell.\")) |\n+---------------------------------------------------+\n| - Sales grew 12%  - Costs went down               |\n+---------------------------------------------------+\n```",
    )
    .with_argument("text", "The text to analyse."))
    .build()
});

impl AiFunction for Insights {
    fn name(&self) -> &'static str {
        "insights"
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

    fn parse(&self, answer: &str, _: &Constants) -> Result<ScalarValue, String> {
        text_answer(answer)
    }
}
