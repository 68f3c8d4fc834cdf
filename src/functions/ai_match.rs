//! `ai_match(left, right, condition)`: whether two texts meet a condition together, for
//! semantic joins; and the block protocol that asks about many pairs in one prompt.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::ai_filter::yes_or_no;
use super::{AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, with_options_argument};
use crate::provider::{ChatMessage, truncate_chars};

/// `ai_match(left, right, condition)`: TRUE when the model says the two texts meet the
/// condition together, FALSE when it says they do not. Its home is a join condition:
///
/// ```sql
/// SELECT a.id, b.id
/// FROM 'data/reviews.csv' a JOIN 'data/reviews.csv' b
///   ON a.id < b.id AND ai_match(a.text, b.text, 'the two reviews express the same opinion');
/// ```
///
/// There the join is planned as a whole (`BlossomAiJoinExec`): blocks of up to
/// `blossom.join_block` texts of each side go in one prompt, and the model lists the
/// matching pairs ([`AiMatch::block_messages`], [`AiMatch::parse_block`]). Anywhere
/// else, or with `blossom.join_block = 1`, each pair is asked on its own.
#[derive(Debug, Clone, Copy)]
pub struct AiMatch;

const SPEC: ArgSpec = ArgSpec::fixed(&[
    Param::text("left"),
    Param::text("right"),
    Param::instruction("condition"),
]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Asks whether two texts meet a condition together and returns TRUE or FALSE, for semantic joins. In a JOIN ... ON (or a WHERE over two tables) the pairs are asked in blocks of several texts per side (blossom.join_block), optionally only those an embedding pre-filter keeps (blossom.join_prefilter); elsewhere one request per pair. NULL or empty texts give NULL without a request.",
            "ai_match(left, right, condition)",
        )
        .with_sql_example(
            "```sql\n> SELECT ai_match('Great value, works well', 'Love it, does the job', 'the two reviews express the same opinion') AS m;\n+------+\n| m    |\n+------+\n| true |\n+------+\n```",
        )
        .with_argument("left", "The first text (from the join's left side).")
        .with_argument("right", "The second text (from the join's right side).")
        .with_argument(
            "condition",
            "What the two texts must meet together, in plain words (e.g. 'the two reviews express the same opinion'); a literal for the join to be planned in blocks.",
        ),
    )
    .build()
});

/// The block prompt's first line; the simulator recognises block requests by it.
pub const BLOCK_INSTRUCTION: &str = "You match the texts of list A with the texts of list B.";

impl AiMatch {
    /// The messages asking which pairs of `left` × `right` meet `condition`: each text
    /// on one line (`A1: ...`, `B1: ...`, line breaks in a text become spaces); the
    /// answer must be a JSON array of `[a, b]` number pairs.
    pub fn block_messages(left: &[&str], right: &[&str], condition: &str) -> Vec<ChatMessage> {
        let system = format!(
            "{BLOCK_INSTRUCTION}\nCondition: {}\nAnswer with only a JSON array of the \
             [A, B] number pairs whose two texts meet the condition together, e.g. \
             [[1,2],[3,1]], each pair once; [] when none do.",
            condition.trim()
        );
        let mut user = String::new();
        for (side, texts) in [("A", left), ("B", right)] {
            for (i, text) in texts.iter().enumerate() {
                user.push_str(&format!("{side}{}: {}\n", i + 1, one_line(text)));
            }
        }
        user.pop();
        vec![ChatMessage::system(system), ChatMessage::user(user)]
    }

    /// The pairs a block answer lists, as 0-based `(left, right)` positions: only a JSON
    /// array of `[a, b]` pairs (in a code fence or not), each number one of the block's,
    /// each pair once. Anything else is refused with the reason, so the block is asked
    /// again in smaller parts.
    pub fn parse_block(
        answer: &str,
        left: usize,
        right: usize,
    ) -> Result<Vec<(usize, usize)>, String> {
        let body = strip_fence(answer.trim());
        let pairs: Vec<Vec<serde_json::Value>> = serde_json::from_str(body).map_err(|_| {
            format!(
                "the answer {:?} is not a JSON array of [A, B] pairs",
                truncate_chars(body, 80)
            )
        })?;
        let mut seen = BTreeSet::new();
        for pair in &pairs {
            let numbers: Vec<Option<u64>> = pair.iter().map(serde_json::Value::as_u64).collect();
            let (a, b) = match numbers.as_slice() {
                [Some(a), Some(b)] => (*a as usize, *b as usize),
                _ => {
                    return Err(format!(
                        "the answer lists {} where a pair of two numbers belongs",
                        serde_json::Value::Array(pair.clone())
                    ));
                }
            };
            if !(1..=left).contains(&a) || !(1..=right).contains(&b) {
                return Err(format!(
                    "the answer lists the pair [{a}, {b}], not one of the {left} × {right} asked about"
                ));
            }
            if !seen.insert((a - 1, b - 1)) {
                return Err(format!("the answer lists the pair [{a}, {b}] twice"));
            }
        }
        Ok(seen.into_iter().collect())
    }
}

impl AiFunction for AiMatch {
    fn name(&self) -> &'static str {
        "ai_match"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    fn messages(&self, args: &[&str], _: &Constants) -> Vec<ChatMessage> {
        let instruction = format!(
            "You check whether two texts meet a condition together.\nCondition: {}\n\
             Answer with exactly one word: YES if they meet it, NO if they do not.",
            arg(args, 2).trim()
        );
        vec![
            ChatMessage::system(instruction),
            ChatMessage::user(format!(
                "Text A: {}\nText B: {}",
                one_line(arg(args, 0)),
                one_line(arg(args, 1))
            )),
        ]
    }

    fn return_type(&self) -> DataType {
        DataType::Boolean
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

/// The text on one line: line breaks (and runs of whitespace) become single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The inside of a markdown code fence (```json ... ```), or the text itself.
fn strip_fence(text: &str) -> &str {
    let Some(inner) = text.strip_prefix("```") else {
        return text;
    };
    let inner = inner.strip_suffix("```").unwrap_or(inner);
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_prompt_lists_both_sides_one_text_a_line() {
        let messages =
            AiMatch::block_messages(&["good\nvalue", "bad"], &["great"], " the same opinion ");
        assert!(messages[0].content.starts_with(BLOCK_INSTRUCTION));
        assert!(
            messages[0]
                .content
                .contains("\nCondition: the same opinion\n")
        );
        assert_eq!(messages[1].content, "A1: good value\nA2: bad\nB1: great");
    }

    #[test]
    fn block_answers_give_pairs_in_range_each_once() {
        assert_eq!(AiMatch::parse_block("[]", 2, 2), Ok(vec![]));
        assert_eq!(
            AiMatch::parse_block("[[2,1],[1,2]]", 2, 2),
            Ok(vec![(0, 1), (1, 0)])
        );
        assert_eq!(
            AiMatch::parse_block("```json\n[[1, 1]]\n```", 1, 1),
            Ok(vec![(0, 0)])
        );
        for (answer, why) in [
            ("[[3,1]]", "not one of the 2 × 2"),
            ("[[1,0]]", "not one of the 2 × 2"),
            ("[[1,1],[1,1]]", "twice"),
            ("[[1]]", "where a pair of two numbers belongs"),
            ("[[1,\"2\"]]", "where a pair of two numbers belongs"),
            ("none", "not a JSON array"),
            ("[1,2]", "not a JSON array"),
        ] {
            let error = AiMatch::parse_block(answer, 2, 2).expect_err(answer);
            assert!(error.contains(why), "{answer}: {error}");
        }
    }

    #[test]
    fn a_pair_is_asked_with_both_texts() {
        let messages = AiMatch.messages(&["x", "y", "same topic"], &Constants::default());
        assert!(messages[0].content.contains("\nCondition: same topic\n"));
        assert_eq!(messages[1].content, "Text A: x\nText B: y");
        assert_eq!(
            AiMatch.parse("Yes.", &Constants::default()),
            Ok(ScalarValue::Boolean(Some(true)))
        );
    }
}
