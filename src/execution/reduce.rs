//! Hierarchical reduction of one row's list of texts ([`reduce`]): chunks that fit in
//! `blossom.max_prompt_chars` are asked concurrently, then their partial answers are
//! combined, level by level, until one answer is left. The list argument of a row is read
//! by [`list_items`].

use std::fmt;
use std::future::Future;

use datafusion::arrow::array::{Array, ArrayRef, ListArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::common::{Result, internal_datafusion_err};
use futures::future::{Either, join_all, ready};

use crate::functions::{Constants, Layout, NoRoom, ReductionPlan, chunk_items, text_list_type};
use crate::provider::{ChatMessage, message_chars};

/// The most combine levels; each level shrinks the number of partial answers, so this is
/// reached only when the answers themselves keep growing.
const MAX_COMBINE_LEVELS: usize = 16;

/// Why a row's reduction gave no answer.
#[derive(Debug)]
pub(crate) enum ReduceError<E> {
    /// A request failed (its own error, as the asker reports it).
    Ask(E),
    /// The prompts cannot be made to fit in `blossom.max_prompt_chars`.
    TooLong(String),
}

impl<E> From<NoRoom> for ReduceError<E> {
    fn from(no_room: NoRoom) -> Self {
        Self::TooLong(no_room.to_string())
    }
}

impl<E: fmt::Display> fmt::Display for ReduceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ask(error) => error.fmt(f),
            Self::TooLong(why) => f.write_str(why),
        }
    }
}

/// The one answer of `plan` over `items` (not empty), whose prompts never exceed
/// `max_chars` characters: one request when the whole list fits; otherwise a request per
/// chunk of the list (asked concurrently), then combine requests over the partial
/// answers, in chunks again while they do not fit together (a chunk of one partial answer
/// is kept as it is). `ask` sends one prompt and
/// gives the answer's text; the first failed request (in list order) fails the whole.
pub(crate) async fn reduce<E, F, Fut>(
    plan: &dyn ReductionPlan,
    items: &[&str],
    args: &[&str],
    constants: &Constants,
    max_chars: usize,
    ask: F,
) -> std::result::Result<String, ReduceError<E>>
where
    F: Fn(Vec<ChatMessage>) -> Fut,
    Fut: Future<Output = std::result::Result<String, E>>,
{
    let chunk = |part: &[&str]| plan.chunk_messages(part, args, constants);
    let combine = |part: &[&str]| plan.combine_messages(part, args, constants);
    let layout = Layout::measure(|part| message_chars(&chunk(part)));
    let chunks = chunk_items(items, layout, max_chars)?;
    if chunks.len() <= 1 {
        let whole = chunks.first().map_or(items, Vec::as_slice);
        return ask(chunk(whole)).await.map_err(ReduceError::Ask);
    }
    let mut partials = ask_all(chunks.iter().map(|c| chunk(c)).collect(), &ask).await?;
    let layout = Layout::measure(|part| message_chars(&combine(part)));
    for _ in 0..MAX_COMBINE_LEVELS {
        let texts: Vec<&str> = partials.iter().map(|p| p.trim()).collect();
        let chunks = chunk_items(&texts, layout, max_chars)?;
        if chunks.len() <= 1 {
            let whole = chunks.first().map_or(texts.as_slice(), Vec::as_slice);
            return ask(combine(whole)).await.map_err(ReduceError::Ask);
        }
        if chunks.len() >= texts.len() {
            return Err(no_progress(texts.len(), max_chars));
        }
        // A chunk of one partial answer has nothing to combine: it is kept as it is.
        let answers = join_all(chunks.iter().map(|c| match c.as_slice() {
            [only] => Either::Left(ready(Ok(only.to_string()))),
            _ => Either::Right(ask(combine(c))),
        }))
        .await;
        partials = answers
            .into_iter()
            .collect::<std::result::Result<Vec<_>, E>>()
            .map_err(ReduceError::Ask)?;
    }
    Err(no_progress(partials.len(), max_chars))
}

/// The error of partial answers that do not get fewer when combined.
fn no_progress<E>(partials: usize, max_chars: usize) -> ReduceError<E> {
    ReduceError::TooLong(format!(
        "the {partials} partial answers are too long to be combined within \
         blossom.max_prompt_chars = {max_chars}; raise it"
    ))
}

/// The answers to `prompts`, asked concurrently, in order; the first failure in order.
async fn ask_all<E, F, Fut>(
    prompts: Vec<Vec<ChatMessage>>,
    ask: &F,
) -> std::result::Result<Vec<String>, ReduceError<E>>
where
    F: Fn(Vec<ChatMessage>) -> Fut,
    Fut: Future<Output = std::result::Result<String, E>>,
{
    join_all(prompts.into_iter().map(ask))
        .await
        .into_iter()
        .collect::<std::result::Result<Vec<_>, E>>()
        .map_err(ReduceError::Ask)
}

/// A list argument evaluated for a batch, its elements as text.
pub(crate) fn text_lists(array: &ArrayRef) -> Result<ListArray> {
    let lists = cast(array, &text_list_type())?;
    lists
        .as_any()
        .downcast_ref::<ListArray>()
        .cloned()
        .ok_or_else(|| internal_datafusion_err!("cast to a list of Utf8 gave no ListArray"))
}

/// The texts of `row`'s list, without NULL and blank elements; `None` when the list
/// itself is NULL.
pub(crate) fn list_items(lists: &ListArray, row: usize) -> Result<Option<Vec<String>>> {
    if lists.is_null(row) {
        return Ok(None);
    }
    let values = lists.value(row);
    let texts = values
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| internal_datafusion_err!("list elements are not Utf8"))?;
    Ok(Some(
        texts
            .iter()
            .flatten()
            .filter(|text| !text.trim().is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::functions::{AiFunction, AiReduce};

    /// Answers like the simulator: how many items or partials a prompt held.
    fn fake_answer(messages: &[ChatMessage]) -> String {
        let user = &messages[1].content;
        if messages[0].content.contains("partial answers") {
            let n = user.lines().filter(|l| *l == "<partial>").count();
            format!("combined {n}")
        } else {
            let n = user.lines().filter(|l| *l == "<item>").count();
            format!("reduced {n}")
        }
    }

    /// Runs a reduction with the fake answers, recording every prompt.
    fn run(
        items: &[&str],
        max_chars: usize,
    ) -> (
        std::result::Result<String, ReduceError<String>>,
        Vec<Vec<ChatMessage>>,
    ) {
        let asked = Mutex::new(Vec::new());
        let plan = AiReduce.reduction().expect("ai_reduce reduces");
        let result = futures::executor::block_on(reduce(
            plan,
            items,
            &["complaints"],
            &Constants::default(),
            max_chars,
            |messages: Vec<ChatMessage>| {
                let answer = fake_answer(&messages);
                if let Ok(mut asked) = asked.lock() {
                    asked.push(messages);
                }
                async move { Ok::<_, String>(answer) }
            },
        ));
        (result, asked.into_inner().unwrap_or_default())
    }

    fn fixed_chars() -> usize {
        message_chars(&AiReduce.chunk_messages(&[], &["complaints"], &Constants::default()))
    }

    fn combine_fixed() -> usize {
        message_chars(&AiReduce.combine_messages(&[], &["complaints"], &Constants::default()))
    }

    #[test]
    fn a_list_that_fits_is_one_request() {
        let (answer, asked) = run(&["a", "b", "c"], 10_000);
        assert_eq!(answer.unwrap(), "reduced 3");
        assert_eq!(asked.len(), 1);
    }

    #[test]
    fn chunks_then_one_combine() {
        // Room for 4 partial answers in a combine prompt and 3 items in a chunk prompt.
        let max = combine_fixed() + 4 * 31 + 10;
        let item = "x".repeat((max - fixed_chars()) / 3 - 16 - 1);
        let items: Vec<String> = (0..10).map(|i| format!("{item}{i}")).collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let (answer, asked) = run(&refs, max);
        assert_eq!(answer.unwrap(), "combined 4");
        assert_eq!(asked.len(), 5);
        for prompt in &asked {
            assert!(message_chars(prompt) <= max);
        }
    }

    #[test]
    fn partial_answers_that_do_not_fit_are_combined_in_levels() {
        // Room for 3 items per chunk: 20 items give 7 chunks, whose answers "reduced 3"
        // (9 characters, 31 with the delimiters) fit 2 at a time in a combine prompt,
        // so they are combined in levels: 7 → 4 → 2 → 1.
        let max = combine_fixed() + 2 * 31 + 5;
        let item = "x".repeat((max - fixed_chars()) / 3 - 16 - 2);
        let items: Vec<String> = (0..20).map(|i| format!("{item}{i:02}")).collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let (answer, asked) = run(&refs, max);
        let answer = answer.unwrap();
        assert!(answer.starts_with("combined"), "{answer}");
        for prompt in &asked {
            assert!(message_chars(prompt) <= max);
        }
        let combines = asked
            .iter()
            .filter(|p| p[0].content.contains("partial answers"))
            .count();
        // 7 chunks; combines of 3 + 2 + 1 (chunks of one partial are not asked).
        assert_eq!(asked.len() - combines, 7);
        assert_eq!(combines, 3 + 2 + 1, "{combines} combine requests");
    }

    #[test]
    fn failures_fail_the_reduction() {
        let plan = AiReduce.reduction().expect("ai_reduce reduces");
        let result = futures::executor::block_on(reduce(
            plan,
            &["aaaa"; 10],
            &["complaints"],
            &Constants::default(),
            fixed_chars() + 60,
            |messages: Vec<ChatMessage>| {
                let fails = messages[1].content.matches("<item>").count() == 1;
                async move {
                    if fails {
                        Err("boom".to_string())
                    } else {
                        Ok("fine".to_string())
                    }
                }
            },
        ));
        assert!(matches!(result, Err(ReduceError::Ask(e)) if e == "boom"));
    }

    #[test]
    fn no_room_is_an_error_not_a_truncation() {
        let (answer, asked) = run(&["a"], 10);
        let why = answer.unwrap_err().to_string();
        assert!(why.contains("blossom.max_prompt_chars = 10"), "{why}");
        assert!(asked.is_empty());
    }

    #[test]
    fn reads_list_items_skipping_nulls_and_blanks() {
        use datafusion::arrow::array::ListArray;
        use datafusion::arrow::datatypes::Int64Type;
        use std::sync::Arc;

        let ints: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
            Some(vec![]),
        ]));
        let lists = text_lists(&ints).unwrap();
        assert_eq!(
            list_items(&lists, 0).unwrap(),
            Some(vec!["1".into(), "3".into()])
        );
        assert_eq!(list_items(&lists, 1).unwrap(), None);
        assert_eq!(list_items(&lists, 2).unwrap(), Some(vec![]));
    }
}
