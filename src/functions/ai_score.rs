//! `ai_score(text, question, low, high)`: a number from `low` to `high` answering a
//! question about the text, as a DOUBLE for ranking and averages.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, with_options_argument};
use crate::provider::{ChatMessage, truncate_chars};

/// `ai_score(text, question, low, high)`: returns the model's score of the text for the
/// question, a DOUBLE from `low` to `high` (both included; number literals, `low` below
/// `high`).
///
/// The answer must be one number and nothing else: digits, with an optional sign and
/// an optional decimal point between digits (`4`, `4.5`, `-2`, `+3`; not `.5`),
/// possibly wrapped in markdown, backticks or quotes and followed by a full stop
/// (`**4**`, `"4"`, `4.`). Words, units,
/// fractions, ranges or exponents (`4/5`, `4 out of 5`, `about 4`, `Score: 4`, `4-5`,
/// `1e2`, `4,5`) are refused, as is a number outside the range: such an answer is asked
/// again once with a firmer instruction, then the row fails (or is NULL with
/// `SET blossom.on_error = 'null'`) with the class `invalid_answer`. Rows are packed
/// several to a request like `sentiment`.
///
/// ```sql
/// SELECT id, ai_score(text, 'how positive is the review', 1, 5) AS score
/// FROM 'data/reviews.csv' ORDER BY score DESC LIMIT 10;
/// SELECT lang, avg(ai_score(text, 'how positive is the review', 1, 5)) AS positivity
/// FROM 'data/reviews.csv' GROUP BY lang;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AiScore;

/// The parameter names of the range, as [`Constants`] holds them.
const LOW: &str = "low";
const HIGH: &str = "high";

const SPEC: ArgSpec = ArgSpec::fixed(&[
    Param::text("text"),
    Param::instruction("question"),
    Param::number(LOW),
    Param::number(HIGH),
]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Asks a question about the text and returns the answer as a DOUBLE from low to high (both included), for ranking (ORDER BY ... DESC LIMIT n) and averages. Only a plain number is accepted ('4', '4.5', '**4**'); words, fractions or a number out of range are asked again once, more firmly, then are an error for that row. NULL or empty text gives NULL without a request.",
            "ai_score(text, question, low, high)",
        )
        .with_sql_example(
            "```sql\n> SELECT ai_score('Great lamp, works perfectly', 'how positive is the review', 1, 5);\n+------------------------------------------------------------------------------------------------+\n| ai_score(Utf8(\"Great lamp, works perfectly\"),Utf8(\"how positive is the review\"),Int64(1),Int64(5)) |\n+------------------------------------------------------------------------------------------------+\n| 5.0                                                                                            |\n+------------------------------------------------------------------------------------------------+\n```",
        )
        .with_argument("text", "The text to score.")
        .with_argument(
            "question",
            "What the score measures, in plain words (e.g. 'how positive is the review'); a literal or a column.",
        )
        .with_argument("low", "The lowest score, a number literal (e.g. 1 or 0.5).")
        .with_argument("high", "The highest score, a number literal above low (e.g. 5 or 10)."),
    )
    .build()
});

/// The range of a call, when both bounds are known.
fn range(constants: &Constants) -> Option<(f64, f64)> {
    Some((constants.number(LOW)?, constants.number(HIGH)?))
}

/// The first line of both prompts, which states the range.
fn scale_line(constants: &Constants) -> String {
    let (low, high) = range(constants).unwrap_or((0.0, 1.0));
    format!("You score a text on a scale from {low} to {high}.")
}

impl AiFunction for AiScore {
    fn name(&self) -> &'static str {
        "ai_score"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], constants: &Constants) -> Vec<ChatMessage> {
        let instruction = format!(
            "{}\nQuestion: {}\nAnswer with only the number, and nothing else.",
            scale_line(constants),
            arg(args, 1).trim()
        );
        vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ]
    }

    fn firmer_messages(&self, args: &[&str], constants: &Constants) -> Option<Vec<ChatMessage>> {
        let (low, high) = range(constants).unwrap_or((0.0, 1.0));
        let instruction = format!(
            "{}\nQuestion: {}\nYour answer must be one number from {low} to {high}, written \
             with digits, with no words, even if you are unsure (then give your best \
             estimate).",
            scale_line(constants),
            arg(args, 1).trim()
        );
        Some(vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ])
    }

    fn return_type(&self) -> DataType {
        DataType::Float64
    }

    fn return_type_for(&self, constants: &Constants) -> Result<DataType, String> {
        match range(constants) {
            Some((low, high)) if low >= high => Err(format!(
                "argument 3 (low) must be below argument 4 (high), got {low} and {high}"
            )),
            _ => Ok(DataType::Float64),
        }
    }

    fn packable(&self) -> bool {
        true
    }

    fn parse(&self, answer: &str, constants: &Constants) -> Result<ScalarValue, String> {
        let shown = truncate_chars(answer.trim(), 80);
        let score =
            plain_number(answer).ok_or_else(|| format!("the answer {shown:?} is not a number"))?;
        match range(constants) {
            Some((low, high)) if !(low..=high).contains(&score) => Err(format!(
                "the answer {shown:?} is not a number from {low} to {high}"
            )),
            _ => Ok(ScalarValue::Float64(Some(score))),
        }
    }
}

/// The number an answer is, when it is one and nothing else: an optional sign, digits,
/// optionally a decimal point and more digits; around it only whitespace, markdown
/// emphasis, backticks or quotes, and one full stop after it.
fn plain_number(answer: &str) -> Option<f64> {
    const WRAPPERS: &[char] = &['*', '_', '`', '"', '\'', '“', '”'];
    let unwrap = |s: &str| -> String {
        s.trim_matches(|c: char| c.is_whitespace() || WRAPPERS.contains(&c))
            .to_string()
    };
    let outer = unwrap(answer);
    let core = unwrap(outer.strip_suffix('.').unwrap_or(&outer));
    let core = core.as_str();
    let digits = core.strip_prefix(['-', '+']).unwrap_or(core);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    core.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_to_five() -> Constants {
        Constants::with_numbers(&[(LOW, 1.0), (HIGH, 5.0)])
    }

    #[test]
    fn accepts_plain_numbers_in_range() {
        let constants = one_to_five();
        for (answer, score) in [
            ("4", 4.0),
            ("4.5", 4.5),
            (" 5\n", 5.0),
            ("1", 1.0),
            ("**4**", 4.0),
            ("`3`", 3.0),
            ("\"2\"", 2.0),
            ("4.", 4.0),
            ("**4.5**.", 4.5),
            ("+3", 3.0),
            ("04", 4.0),
        ] {
            assert_eq!(
                AiScore.parse(answer, &constants),
                Ok(ScalarValue::Float64(Some(score))),
                "{answer}"
            );
        }
        let signed = Constants::with_numbers(&[(LOW, -1.0), (HIGH, 1.0)]);
        assert_eq!(
            AiScore.parse("-0.25", &signed),
            Ok(ScalarValue::Float64(Some(-0.25)))
        );
    }

    #[test]
    fn refuses_words_fractions_and_numbers_out_of_range() {
        let constants = one_to_five();
        for answer in [
            "",
            "four",
            "4/5",
            "4 out of 5",
            "about 4",
            "Score: 4",
            "4-5",
            "1e2",
            "4,5",
            ".5",
            "4.5.6",
            "NaN",
            "inf",
            "- 4",
            "4 stars",
        ] {
            let error = AiScore.parse(answer, &constants).expect_err(answer);
            assert!(error.contains("is not a number"), "{answer}: {error}");
        }
        for answer in ["0", "5.5", "7", "-3"] {
            let error = AiScore.parse(answer, &constants).expect_err(answer);
            assert!(error.contains("is not a number from 1 to 5"), "{error}");
        }
    }

    #[test]
    fn the_prompts_state_the_question_and_the_range() {
        let constants = Constants::with_numbers(&[(LOW, 0.5), (HIGH, 10.0)]);
        let first = AiScore.messages(&["a text", "how urgent is it"], &constants);
        let firmer = AiScore
            .firmer_messages(&["a text", "how urgent is it"], &constants)
            .expect("ai_score asks again");
        assert_ne!(first, firmer);
        for m in [&first, &firmer] {
            assert!(
                m[0].content.starts_with(
                    "You score a text on a scale from 0.5 to 10.\nQuestion: how urgent is it\n"
                ),
                "{}",
                m[0].content
            );
            assert_eq!(m[1], ChatMessage::user("a text"));
        }
        assert!(
            firmer[0]
                .content
                .contains("must be one number from 0.5 to 10")
        );
    }

    #[test]
    fn the_range_must_be_ordered() {
        assert_eq!(
            AiScore.return_type_for(&one_to_five()),
            Ok(DataType::Float64)
        );
        let reversed = Constants::with_numbers(&[(LOW, 5.0), (HIGH, 1.0)]);
        let error = AiScore.return_type_for(&reversed).unwrap_err();
        assert!(error.contains("must be below argument 4 (high)"), "{error}");
        let empty = Constants::with_numbers(&[(LOW, 2.0), (HIGH, 2.0)]);
        assert!(AiScore.return_type_for(&empty).is_err());
    }
}
