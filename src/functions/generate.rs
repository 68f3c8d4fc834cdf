//! `generate(prompt)`: the model's answer to a free-form prompt.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{
    AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, text_answer, with_options_argument,
};
use crate::provider::ChatMessage;

/// `generate(prompt)`: sends the prompt as it is and returns the model's answer.
///
/// ```sql
/// SELECT id, generate('Write a one-line product title for: ' || text) AS title
/// FROM 'data/reviews.csv' LIMIT 5;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Generate;

const SPEC: ArgSpec = ArgSpec::fixed(&[Param::text("prompt")]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(Documentation::builder(
        DOC_SECTION,
        "Asks the model the prompt as it is and returns its answer as text. NULL or empty prompts give NULL without a request.",
        "generate(prompt)",
    )
    .with_sql_example(
        "```sql\n> SELECT generate('Name a color. One word.');\n+------------------------------------------+\n| generate(Utf8(\"Name a color. One word.\")) |\n+------------------------------------------+\n| Blue                                     |\n+------------------------------------------+\n```",
    )
    .with_argument("prompt", "The full prompt, as text."))
    .build()
});

impl AiFunction for Generate {
    fn name(&self) -> &'static str {
        "generate"
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

    fn parse(&self, answer: &str, _: &Constants) -> Result<ScalarValue, String> {
        text_answer(answer)
    }
}
