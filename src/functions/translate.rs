//! `ai_translate(text, target_language)`: the text in another language.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{
    AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, text_answer, with_options_argument,
};
use crate::provider::ChatMessage;

/// `ai_translate(text, target_language)`: returns the text translated into the target
/// language (a name such as `'German'` or `'Brazilian Portuguese'`, a literal or a
/// column; a blank literal is refused at planning time). Named `ai_` because DataFusion's
/// `translate(string, from, to)` has the plain name.
///
/// ```sql
/// SELECT id, ai_translate(text, 'English') AS english FROM 'data/reviews.csv' WHERE lang <> 'en';
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Translate;

/// The longest text translated in a pack with others.
const MAX_PACKED_TEXT_CHARS: usize = 300;

const SPEC: ArgSpec = ArgSpec::fixed(&[Param::text("text"), Param::instruction("target_language")]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Translates the text into the target language and returns the translation only. NULL or empty text gives NULL without a request.",
            "ai_translate(text, target_language)",
        )
        .with_sql_example(
            "```sql\n> SELECT ai_translate('Lieferung war schnell', 'English');\n+-------------------------------------------------------------+\n| ai_translate(Utf8(\"Lieferung war schnell\"),Utf8(\"English\")) |\n+-------------------------------------------------------------+\n| Delivery was fast                                           |\n+-------------------------------------------------------------+\n```",
        )
        .with_argument("text", "The text to translate.")
        .with_argument(
            "target_language",
            "The language to translate into, by name (e.g. 'German'); a literal or a column.",
        ),
    )
    .build()
});

impl AiFunction for Translate {
    fn name(&self) -> &'static str {
        "ai_translate"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], _: &Constants) -> Vec<ChatMessage> {
        let instruction = format!(
            "You translate texts. Translate the text into {}. Answer with the translation \
             only, and nothing else.",
            arg(args, 1).trim()
        );
        vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ]
    }

    fn packable(&self) -> bool {
        true
    }

    /// Short texts only: any text is a valid translation, so only a whole packed answer
    /// vouches for which row a translation belongs to, and short ones risk little.
    fn max_packed_text_chars(&self) -> usize {
        MAX_PACKED_TEXT_CHARS
    }

    fn parse(&self, answer: &str, _: &Constants) -> Result<ScalarValue, String> {
        text_answer(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_language_and_sends_the_text_alone() {
        let messages = Translate.messages(&["Hallo Welt", " French "], &Constants::default());
        assert!(
            messages[0]
                .content
                .contains("Translate the text into French. Answer"),
            "{}",
            messages[0].content
        );
        assert_eq!(messages[1], ChatMessage::user("Hallo Welt"));
    }
}
