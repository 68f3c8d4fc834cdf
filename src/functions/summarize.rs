//! `summarize(text [, max_chars])`: a summary of the text, never longer than `max_chars`
//! characters (an answer running over is cut at a word boundary).

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, with_options_argument};
use crate::provider::ChatMessage;

/// The name of the optional length limit.
const MAX_CHARS: &str = "max_chars";

/// `summarize(text [, max_chars])`: returns a summary of the text in its language. With
/// `max_chars` (a positive whole number written in the query) the prompt asks for at
/// most that many characters, and a longer answer is cut at the last word boundary that
/// fits, so the value never exceeds it.
///
/// ```sql
/// SELECT id, summarize(text, 120) AS summary FROM 'data/articles.json';
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Summarize;

const SPEC: ArgSpec = ArgSpec {
    required: &[Param::text("text")],
    optional: &[Param::positive_int(MAX_CHARS)],
    variadic: None,
};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Summarizes the text in its own language. With max_chars the summary is at most that many characters: the prompt asks for it, and a longer answer is cut at a word boundary. NULL or empty text gives NULL without a request.",
            "summarize(text [, max_chars])",
        )
        .with_sql_example(
            "```sql\n> SELECT summarize('The council approved the new budget after a long debate about school funding and road repairs.', 60);\n+------------------------------------------------------------+\n| summarize(...)                                             |\n+------------------------------------------------------------+\n| Council approved the budget after debating schools, roads. |\n+------------------------------------------------------------+\n```",
        )
        .with_argument("text", "The text to summarize.")
        .with_argument(
            MAX_CHARS,
            "Optional: the most characters the summary may have, a positive whole number written in the query.",
        ),
    )
    .build()
});

impl AiFunction for Summarize {
    fn name(&self) -> &'static str {
        "summarize"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], constants: &Constants) -> Vec<ChatMessage> {
        let instruction = match constants.int(MAX_CHARS) {
            Some(max) => format!(
                "You summarize texts. Answer with a summary of the text of at most {max} \
                 characters, in the language of the text, and nothing else."
            ),
            None => "You summarize texts. Answer with a short summary of the text, in the \
                     language of the text, and nothing else."
                .to_string(),
        };
        vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ]
    }

    fn parse(&self, answer: &str, constants: &Constants) -> Result<ScalarValue, String> {
        let answer = answer.trim();
        let summary = match constants.int(MAX_CHARS) {
            Some(max) => cut_at_word(answer, usize::try_from(max).unwrap_or(usize::MAX)),
            None => answer.to_string(),
        };
        Ok(ScalarValue::Utf8(Some(summary)))
    }
}

/// `text` if it has at most `max` characters; otherwise its longest prefix of at most
/// `max` characters that ends at a word boundary, without trailing spaces or separators
/// (`,`, `;`, `:`, dashes). A first word longer than `max` is cut inside the word.
fn cut_at_word(text: &str, max: usize) -> String {
    let Some((end, next)) = text.char_indices().nth(max) else {
        return text.to_string();
    };
    let head = &text[..end];
    let at_boundary = if next.is_whitespace() {
        head
    } else {
        head.rfind(char::is_whitespace)
            .map_or("", |space| &head[..space])
    };
    let cut = at_boundary.trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | ':' | '-' | '–' | '—')
    });
    if cut.is_empty() {
        head.trim_end().to_string()
    } else {
        cut.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_word_boundaries() {
        assert_eq!(cut_at_word("short", 10), "short");
        assert_eq!(cut_at_word("exactly ten", 11), "exactly ten");
        assert_eq!(cut_at_word("one two three", 7), "one two");
        assert_eq!(cut_at_word("one two three", 8), "one two");
        assert_eq!(cut_at_word("one two three", 6), "one");
        assert_eq!(cut_at_word("one, two three", 7), "one");
        assert_eq!(cut_at_word("one, two three", 8), "one, two");
        assert_eq!(cut_at_word("one – two", 6), "one");
        // A first word longer than the limit is cut inside it.
        assert_eq!(cut_at_word("extraordinary", 5), "extra");
        assert_eq!(cut_at_word("", 3), "");
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "élan vital très étonnant";
        let cut = cut_at_word(text, 12);
        assert_eq!(cut, "élan vital");
        let cut = cut_at_word("日本語のテキストです 続き", 11);
        assert_eq!(cut, "日本語のテキストです");
        let emoji = "🌸🌸🌸 🌸🌸";
        assert_eq!(cut_at_word(emoji, 4), "🌸🌸🌸");
        assert_eq!(cut_at_word("🌸🌸🌸🌸🌸", 2), "🌸🌸");
        for max in 1..30 {
            let cut = cut_at_word("Größere Änderungen über Nacht", max);
            assert!(cut.chars().count() <= max, "{max}: {cut}");
        }
    }

    #[test]
    fn parse_applies_the_limit() {
        let limited = Constants::with_int(MAX_CHARS, 12);
        assert_eq!(
            Summarize.parse("  a summary that runs long \n", &limited),
            Ok(ScalarValue::Utf8(Some("a summary".to_string())))
        );
        assert_eq!(
            Summarize.parse(" a summary that runs long ", &Constants::default()),
            Ok(ScalarValue::Utf8(Some(
                "a summary that runs long".to_string()
            )))
        );
    }

    #[test]
    fn the_prompt_asks_for_the_limit() {
        let messages = Summarize.messages(&["text"], &Constants::with_int(MAX_CHARS, 40));
        assert!(messages[0].content.contains("at most 40 characters"));
        let messages = Summarize.messages(&["text"], &Constants::default());
        assert!(messages[0].content.contains("short summary"));
    }
}
