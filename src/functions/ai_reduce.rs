//! `ai_reduce(list, instruction)`: one answer from many texts, such as the rows of a
//! group (`array_agg(text)`); a list too long for one prompt is reduced hierarchically.

use std::sync::LazyLock;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::{
    AiFunction, ArgSpec, Constants, DOC_SECTION, Param, ReductionPlan, arg, text_answer,
    with_options_argument,
};
use crate::provider::ChatMessage;

/// The lines around each text of a chunk prompt.
const ITEM_OPEN: &str = "<item>\n";
const ITEM_CLOSE: &str = "\n</item>\n";
/// The lines around each partial answer of a combine prompt.
const PARTIAL_OPEN: &str = "<partial>\n";
const PARTIAL_CLOSE: &str = "\n</partial>\n";

/// `ai_reduce(list, instruction)`: carries out the instruction over all texts of the
/// list together and returns one text. The list is usually `array_agg(column)` of a
/// group; its elements are cast to text, and NULL or blank elements are skipped. A NULL
/// or empty list (or one of blank texts only) gives NULL without a request. A plain
/// text is refused at planning time: wrap one text with `make_array(text)`.
///
/// When the prompt over the whole list would exceed `blossom.max_prompt_chars`, the
/// list is split into chunks that fit (whole texts, in order; a text too long alone is
/// split at whitespace), the instruction is asked over each chunk, and the partial
/// answers are combined with the same instruction, in as many levels as needed. Nothing
/// is truncated. Every request goes through the cache, deduplication and budgets.
///
/// ```sql
/// SELECT category, ai_reduce(array_agg(text), 'the three most common complaints')
/// FROM 'data/reviews.csv' GROUP BY category;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AiReduce;

const SPEC: ArgSpec =
    ArgSpec::fixed(&[Param::text_list("list"), Param::instruction("instruction")]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Carries out the instruction over all texts of the list together and returns one answer, e.g. over array_agg(text) of a group. NULL and blank elements are skipped; a NULL or empty list gives NULL without a request. A list whose prompt would exceed blossom.max_prompt_chars is split into chunks that are asked separately, and their partial answers are combined (in several levels if needed); nothing is truncated.",
            "ai_reduce(list, instruction)",
        )
        .with_sql_example(
            "```sql\n> SELECT category, ai_reduce(array_agg(text), 'the three most common complaints') AS complaints\n  FROM reviews GROUP BY category;\n+----------+-----------------------------------------------------+\n| category | complaints                                          |\n+----------+-----------------------------------------------------+\n| shipping | late delivery; damaged boxes; no tracking updates   |\n| app      | crashes on start; slow sync; confusing settings     |\n+----------+-----------------------------------------------------+\n```",
        )
        .with_argument(
            "list",
            "The texts, a list per row such as array_agg(column); elements of other types are cast to text. A plain text is refused: wrap it with make_array(...).",
        )
        .with_argument(
            "instruction",
            "What to produce from all the texts together, e.g. 'the three most common complaints'; usually a literal.",
        ),
    )
    .build()
});

impl AiFunction for AiReduce {
    fn name(&self) -> &'static str {
        "ai_reduce"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    /// The prompt over one text (`args[0]`) with the instruction `args[1]`; the planner
    /// uses [`ReductionPlan::chunk_messages`] for lists.
    fn messages(&self, args: &[&str], constants: &Constants) -> Vec<ChatMessage> {
        self.chunk_messages(
            &[arg(args, 0)],
            args.get(1..).unwrap_or_default(),
            constants,
        )
    }

    fn parse(&self, answer: &str, _constants: &Constants) -> Result<ScalarValue, String> {
        text_answer(answer)
    }

    fn reduction(&self) -> Option<&dyn ReductionPlan> {
        Some(self)
    }
}

impl ReductionPlan for AiReduce {
    fn chunk_messages(
        &self,
        items: &[&str],
        args: &[&str],
        _constants: &Constants,
    ) -> Vec<ChatMessage> {
        let system = format!(
            "You reduce many texts to one answer. The user message holds the texts, each \
             between a line <item> and a line </item>.\nTask: {}\nCarry out the task over \
             all the texts together. Answer with the result only, and nothing else.",
            arg(args, 0).trim()
        );
        vec![
            ChatMessage::system(system),
            ChatMessage::user(wrap(items, ITEM_OPEN, ITEM_CLOSE)),
        ]
    }

    fn combine_messages(
        &self,
        partials: &[&str],
        args: &[&str],
        _constants: &Constants,
    ) -> Vec<ChatMessage> {
        let system = format!(
            "You combine partial answers into one answer. The data was too long for one \
             request, so the task was carried out separately over parts of it; the user \
             message holds these partial answers, each between a line <partial> and a line \
             </partial>.\nTask: {}\nCombine the partial answers into one answer to the task \
             over all the data. Answer with the result only, and nothing else.",
            arg(args, 0).trim()
        );
        vec![
            ChatMessage::system(system),
            ChatMessage::user(wrap(partials, PARTIAL_OPEN, PARTIAL_CLOSE)),
        ]
    }
}

/// The texts one after another, each between `open` and `close`.
fn wrap(texts: &[&str], open: &str, close: &str) -> String {
    texts
        .iter()
        .map(|text| format!("{open}{text}{close}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{Layout, chunk_items};

    use crate::provider::message_chars as chars;

    #[test]
    fn prompt_sizes_grow_linearly_with_the_items() {
        let constants = Constants::default();
        let args = ["the main complaints"];
        for build in [
            AiReduce::chunk_messages as fn(&AiReduce, &[&str], &[&str], &Constants) -> _,
            AiReduce::combine_messages,
        ] {
            let size = |items: &[&str]| chars(&build(&AiReduce, items, &args, &constants));
            let layout = Layout::measure(size);
            let items = ["één", "", "three words here", "🌸"];
            let expected = layout.fixed
                + items
                    .iter()
                    .map(|i| layout.per_item + i.chars().count())
                    .sum::<usize>();
            assert_eq!(size(&items), expected);
        }
    }

    #[test]
    fn prompts_carry_the_instruction_and_every_item() {
        let messages = AiReduce.chunk_messages(
            &["late", "broken"],
            &["top complaints"],
            &Constants::default(),
        );
        assert!(messages[0].content.contains("Task: top complaints"));
        assert_eq!(
            messages[1].content,
            "<item>\nlate\n</item>\n<item>\nbroken\n</item>\n"
        );
        let messages =
            AiReduce.combine_messages(&["a", "b"], &["top complaints"], &Constants::default());
        assert!(messages[0].content.contains("partial answers"));
        assert!(messages[0].content.contains("Task: top complaints"));
        assert_eq!(
            messages[1].content,
            "<partial>\na\n</partial>\n<partial>\nb\n</partial>\n"
        );
    }

    #[test]
    fn chunks_of_real_prompts_fit_the_limit() {
        let constants = Constants::default();
        let args = ["summarize"];
        let layout =
            Layout::measure(|items| chars(&AiReduce.chunk_messages(items, &args, &constants)));
        let items: Vec<String> = (0..40).map(|i| format!("review number {i}")).collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let max = layout.fixed + 100;
        let chunks = chunk_items(&refs, layout, max).unwrap();
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert!(chars(&AiReduce.chunk_messages(chunk, &args, &constants)) <= max);
        }
        assert_eq!(chunks.concat(), refs);
    }

    #[test]
    fn answers_are_trimmed_text() {
        assert_eq!(
            AiReduce.parse("  late delivery \n", &Constants::default()),
            Ok(ScalarValue::Utf8(Some("late delivery".to_string())))
        );
    }
}
