//! `categorize(text, label, ...)`: exactly one of the caller's labels, as spelled in the
//! query; an answer that is none of them is asked again once, more firmly.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{
    AiFunction, ArgSpec, Constants, DOC_SECTION, Param, answer_key, arg, with_options_argument,
};
use crate::provider::{ChatMessage, truncate_chars};

/// `categorize(text, label, ...)` or `categorize(text, ARRAY[label, ...])`: returns the
/// one label that fits the text, spelled exactly as given.
///
/// Answers are matched ignoring case, spacing, quotes, markdown and trailing
/// punctuation (`**tech.**` is `Tech`). An answer that is none of the labels is asked
/// again once with a firmer instruction; if that answer is no label either, the row
/// fails (or is NULL with `SET blossom.on_error = 'null'`) and is listed by
/// `blossom_errors()` with the class `invalid_answer`.
///
/// ```sql
/// SELECT id, categorize(text, 'technology', 'business', 'science', 'general') AS category
/// FROM 'data/articles.json';
/// SELECT categorize(text, ARRAY['bug', 'feature', 'question']) FROM 'data/reviews.csv';
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Categorize;

const SPEC: ArgSpec = ArgSpec {
    required: &[Param::text("text")],
    optional: &[],
    variadic: Some(Param::labels("label")),
};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Sorts the text into exactly one of the given labels and returns that label as written. Labels are text literals, given as separate arguments or as one ARRAY. Answers are matched ignoring case, spacing and surrounding punctuation; an answer that is no label is asked again once, more firmly, then is an error for that row. NULL or empty text gives NULL without a request.",
            "categorize(text, label [, label ...])",
        )
        .with_sql_example(
            "```sql\n> SELECT categorize('The new chip doubles battery life', 'technology', 'business', 'sports');\n+------------------------------------------------------------------------------------------------------+\n| categorize(Utf8(\"The new chip doubles battery life\"),Utf8(\"technology\"),Utf8(\"business\"),Utf8(\"sports\")) |\n+------------------------------------------------------------------------------------------------------+\n| technology                                                                                           |\n+------------------------------------------------------------------------------------------------------+\n```",
        )
        .with_argument("text", "The text to sort.")
        .with_argument(
            "label",
            "The labels to choose from: text literals as separate arguments (at least one), or one ARRAY['...', ...] literal. No two may be the same ignoring case and spacing.",
        ),
    )
    .build()
});

impl AiFunction for Categorize {
    fn name(&self) -> &'static str {
        "categorize"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], constants: &Constants) -> Vec<ChatMessage> {
        let instruction = format!(
            "You sort texts into categories. The categories are:\n{}\nAnswer with the name \
             of the one category that fits the text best, written exactly as listed, and \
             nothing else.",
            listed(constants.labels())
        );
        vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ]
    }

    fn firmer_messages(&self, args: &[&str], constants: &Constants) -> Option<Vec<ChatMessage>> {
        let instruction = format!(
            "You sort texts into categories. Your answer must be exactly one of these \
             category names, copied exactly as listed, with no other words, even if none \
             fits well (then pick the closest):\n{}",
            listed(constants.labels())
        );
        Some(vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ])
    }

    fn packable(&self) -> bool {
        true
    }

    fn parse(&self, answer: &str, constants: &Constants) -> Result<ScalarValue, String> {
        let labels = constants.labels();
        match_label(answer, labels)
            .map(|label| ScalarValue::Utf8(Some(label.to_string())))
            .ok_or_else(|| {
                let quoted: Vec<String> = labels.iter().map(|l| format!("{l:?}")).collect();
                format!(
                    "the answer {:?} is not one of the labels {}",
                    truncate_chars(answer.trim(), 80),
                    quoted.join(", ")
                )
            })
    }
}

/// The labels one a line, as the prompts list them.
fn listed(labels: &[String]) -> String {
    labels
        .iter()
        .map(|label| format!("- {label}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The label an answer names: the answer is the label up to case, spacing, quotes,
/// markdown and trailing punctuation, possibly after a `Category:`-style prefix.
fn match_label<'a>(answer: &str, labels: &'a [String]) -> Option<&'a str> {
    let find = |key: &str| {
        labels
            .iter()
            .find(|label| answer_key(label) == key)
            .map(String::as_str)
    };
    find(&answer_key(answer)).or_else(|| {
        let (_, after) = answer.split_once(':')?;
        find(&answer_key(after))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Constants {
        Constants::with_labels(["Technology", "Business news", "C++", "U.S."])
    }

    #[test]
    fn matches_labels_loosely_and_answers_their_spelling() {
        let constants = labels();
        for (answer, label) in [
            ("Technology", "Technology"),
            ("technology", "Technology"),
            (" TECHNOLOGY.\n", "Technology"),
            ("**Technology**", "Technology"),
            ("\"technology\"", "Technology"),
            ("`Technology`", "Technology"),
            ("business   NEWS", "Business news"),
            ("Category: Business news", "Business news"),
            ("- Business news", "Business news"),
            ("c++", "C++"),
            ("u.s.", "U.S."),
            ("U.S", "U.S."),
            ("“Technology”!", "Technology"),
        ] {
            assert_eq!(
                Categorize.parse(answer, &constants),
                Ok(ScalarValue::Utf8(Some(label.to_string()))),
                "{answer}"
            );
        }
    }

    #[test]
    fn refuses_what_is_no_label() {
        let constants = labels();
        for answer in [
            "",
            "none of these",
            "Technology or Business news",
            "Tech",
            "Technology, because it mentions chips",
            "business",
        ] {
            let error = Categorize.parse(answer, &constants).expect_err(answer);
            assert!(
                error.contains("is not one of the labels \"Technology\", \"Business news\""),
                "{error}"
            );
        }
    }

    #[test]
    fn unicode_labels_match() {
        let constants = Constants::with_labels(["Économie", "Straße"]);
        assert_eq!(
            Categorize.parse("ÉCONOMIE", &constants),
            Ok(ScalarValue::Utf8(Some("Économie".to_string())))
        );
        assert_eq!(
            Categorize.parse("straße.", &constants),
            Ok(ScalarValue::Utf8(Some("Straße".to_string())))
        );
    }

    #[test]
    fn the_firmer_request_differs_and_lists_the_labels() {
        let constants = labels();
        let first = Categorize.messages(&["a text"], &constants);
        let firmer = Categorize
            .firmer_messages(&["a text"], &constants)
            .expect("categorize asks again");
        assert_ne!(first, firmer);
        assert_eq!(firmer[1], ChatMessage::user("a text"));
        for m in [&first[0], &firmer[0]] {
            assert!(
                m.content.contains("\n- Technology\n- Business news\n"),
                "{}",
                m.content
            );
        }
    }
}
