//! `enhance(text)`: the text rewritten to be clearer and more complete.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{
    AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, text_answer, with_options_argument,
};
use crate::provider::ChatMessage;

const INSTRUCTION: &str = "You enhance texts: rewrite the text to be clearer, more complete \
and more engaging, keeping its meaning and its language. Answer with the enhanced text only.";

/// `enhance(text)`: returns the text rewritten to be clearer, more complete and more
/// engaging, in the same language.
///
/// ```sql
/// SELECT id, enhance(text) AS enhanced FROM 'data/reviews.csv' WHERE lang = 'en' LIMIT 5;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Enhance;

const SPEC: ArgSpec = ArgSpec::fixed(&[Param::text("text")]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(Documentation::builder(
        DOC_SECTION,
        "Rewrites the text to be clearer, more complete and more engaging, keeping its meaning and language. NULL or empty text gives NULL without a request.",
        "enhance(text)",
    )
    .with_sql_example(
        "```sql\n> SELECT enhance('fast shipping works great');\n+---------------------------------------------------------------+\n| enhance(Utf8(\"fast shipping works great\"))                     |\n+---------------------------------------------------------------+\n| Shipping was fast, and the product works exactly as promised. |\n+---------------------------------------------------------------+\n```",
    )
    .with_argument("text", "The text to enhance."))
    .build()
});

impl AiFunction for Enhance {
    fn name(&self) -> &'static str {
        "enhance"
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
