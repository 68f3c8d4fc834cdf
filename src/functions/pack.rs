//! The multi-row packing protocol: several rows that share a function's instruction go
//! in one request, the static instruction (with [`PACK_PROTOCOL`] once) first and the
//! rows after it, one a line as `<id>:<text as a JSON string>` (`3:"it broke"`); the
//! answer must be a JSON array of `{"id", "answer"}`. The items carry little more than
//! the texts themselves: a short id, a colon, two quotes and a line break.
//!
//! ```sql
//! SET blossom.pack_rows = 8;  -- up to 8 rows per request for sentiment, categorize, ...
//! SELECT sentiment(text) FROM 'data/reviews.csv';
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::ChatMessage;

/// Appended to the function's own instruction in a packed request. Providers with prefix
/// caching reuse everything up to the items, which come last.
pub const PACK_PROTOCOL: &str = "\n\nThe texts follow, one a line as <id>:<JSON string>. Do \
the task for each on its own. Answer only a JSON array of {\"id\":<id>,\"answer\":<answer>}, \
every id once.";

/// Characters an item adds to its text in a packed request, besides the id's digits:
/// the colon, two quotes and the line break (escapes in the text come on top).
pub const ITEM_OVERHEAD_CHARS: usize = 4;

/// Longest row text, in characters, that is packed; a longer one is asked on its own.
pub const MAX_PACKED_TEXT_CHARS: usize = 2_000;

/// One row in a packed request.
///
/// ```sql
/// SET blossom.pack_rows = 16; -- up to 16 items `1:"..."` to `16:"..."` a request
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackItem {
    /// Its number within the pack, from 1.
    pub id: u64,
    /// The row's text: what the single-row request's user message holds.
    pub text: String,
}

/// The messages of a packed request: the single-row request's leading (system) messages
/// with [`PACK_PROTOCOL`] appended to the last of them, then the items as one user
/// message (see [`render_items`]). `None` if `instruction` is empty.
pub fn packed_messages(instruction: &[ChatMessage], texts: &[&str]) -> Option<Vec<ChatMessage>> {
    let (last, first) = instruction.split_last()?;
    let mut messages = first.to_vec();
    messages.push(ChatMessage {
        role: last.role.clone(),
        content: format!("{}{PACK_PROTOCOL}", last.content),
    });
    messages.push(ChatMessage::user(render_items(texts)?));
    Some(messages)
}

/// The items of a packed request, numbered from 1, one a line as `<id>:<JSON string>`:
/// the JSON string keeps a text's line breaks and quotes from ending its line.
pub fn render_items(texts: &[&str]) -> Option<String> {
    let mut out = String::new();
    for (text, id) in texts.iter().zip(1u64..) {
        if id > 1 {
            out.push('\n');
        }
        out.push_str(&id.to_string());
        out.push(':');
        out.push_str(&serde_json::to_string(text).ok()?);
    }
    Some(out)
}

/// The items of a packed request's last message, as [`render_items`] wrote them; `None`
/// if any line is not an item.
pub fn parse_items(content: &str) -> Option<Vec<PackItem>> {
    content
        .lines()
        .map(|line| {
            let (id, text) = line.split_once(':')?;
            Some(PackItem {
                id: id.parse().ok()?,
                text: serde_json::from_str(text).ok()?,
            })
        })
        .collect()
}

/// What a packed answer says, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackedAnswer {
    /// The answers of ids that appear exactly once, with a text, a number, a boolean or
    /// an object as the answer.
    pub answers: HashMap<u64, String>,
    /// Whether the answer is whole: every id from 1 to the number of items exactly once
    /// and nothing else. When it is not, the model may have lost track of which answer
    /// belongs to which item, so even the answers that look right are not trusted.
    pub intact: bool,
}

/// Reads a packed answer to `items` items.
pub fn parse_packed_answer(answer: &str, items: usize) -> PackedAnswer {
    let Some(array) = json_array(answer) else {
        return PackedAnswer::default();
    };
    let mut intact = array.len() == items;
    let mut seen: HashMap<u64, Option<String>> = HashMap::new();
    for entry in array {
        let Some(id) = entry.get("id").and_then(id_of) else {
            intact = false;
            continue;
        };
        let text = entry
            .get("answer")
            .or_else(|| entry.get("value"))
            .and_then(answer_text);
        if !(1..=items as u64).contains(&id) || seen.contains_key(&id) {
            intact = false;
        }
        seen.entry(id)
            .and_modify(|existing| *existing = None)
            .or_insert(text);
    }
    let answers = seen
        .into_iter()
        .filter(|(id, _)| (1..=items as u64).contains(id))
        .filter_map(|(id, text)| text.map(|t| (id, t)))
        .collect();
    PackedAnswer { answers, intact }
}

/// The first JSON array in `answer`: the whole answer, or one inside a code fence or
/// surrounded by prose.
fn json_array(answer: &str) -> Option<Vec<Value>> {
    if let Ok(Value::Array(array)) = serde_json::from_str(answer.trim()) {
        return Some(array);
    }
    let start = answer.find('[')?;
    let end = answer.rfind(']')?;
    match serde_json::from_str(answer.get(start..=end)?) {
        Ok(Value::Array(array)) => Some(array),
        _ => None,
    }
}

fn id_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An item's answer as the text a single answer would be: a JSON object (extract's
/// answer) as its JSON text.
fn answer_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(_) => Some(value.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_first_items_last() {
        let messages = packed_messages(
            &[ChatMessage::system("Classify the sentiment.")],
            &["good", "bad \"quoted\""],
        )
        .unwrap();
        assert_eq!(messages.len(), 2);
        assert!(messages[0].content.starts_with("Classify the sentiment."));
        assert!(messages[0].content.ends_with(PACK_PROTOCOL));
        assert_eq!(messages[1].content, "1:\"good\"\n2:\"bad \\\"quoted\\\"\"");
        let items = parse_items(&messages[1].content).unwrap();
        assert_eq!(items[1].id, 2);
        assert_eq!(items[1].text, "bad \"quoted\"");
        assert!(packed_messages(&[], &["x"]).is_none());
    }

    #[test]
    fn items_survive_line_breaks_colons_and_quotes() {
        let texts = ["two\nlines", "a: b", "\"\\", "", "ünï ☃"];
        let rendered = render_items(&texts).unwrap();
        assert_eq!(rendered.lines().count(), texts.len());
        let items = parse_items(&rendered).unwrap();
        let back: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(back, texts);
        assert_eq!(
            items.iter().map(|i| i.id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        // What an item adds to its text, for a text with nothing to escape.
        assert_eq!(
            render_items(&["abc", "de"]).unwrap().chars().count(),
            5 + 2 + 2 * ITEM_OVERHEAD_CHARS - 1
        );
        for not_items in ["plain text", "1:not json", "x:\"a\"", "1:\"a\"\nmore"] {
            assert!(parse_items(not_items).is_none(), "{not_items}");
        }
    }

    #[test]
    fn answers_by_id_in_any_order_and_form() {
        let answer = "```json\n[{\"id\": 2, \"answer\": \"NEGATIVE\"}, {\"id\": \"1\", \"answer\": \"POSITIVE\"}, {\"id\": 3, \"answer\": true}, {\"id\": 4, \"answer\": {\"n\": 1}}]\n```";
        let parsed = parse_packed_answer(answer, 4);
        assert!(parsed.intact);
        let parsed = parsed.answers;
        assert_eq!(parsed[&4], r#"{"n":1}"#);
        assert_eq!(parsed[&1], "POSITIVE");
        assert_eq!(parsed[&2], "NEGATIVE");
        assert_eq!(parsed[&3], "true");
    }

    #[test]
    fn missing_repeated_and_unknown_ids_are_left_out() {
        let answer = r#"[{"id": 1, "answer": "A"}, {"id": 1, "answer": "A"}, {"id": 2, "answer": "B"},
                         {"id": 9, "answer": "C"}, {"id": 3, "answer": null}, {"answer": "D"}]"#;
        let parsed = parse_packed_answer(answer, 4);
        assert!(!parsed.intact);
        assert_eq!(parsed.answers.len(), 1, "{parsed:?}");
        assert_eq!(parsed.answers[&2], "B");
        // One id missing is not whole either.
        let short = parse_packed_answer(r#"[{"id": 1, "answer": "A"}]"#, 2);
        assert!(!short.intact);
        assert_eq!(short.answers.len(), 1);
    }

    #[test]
    fn prose_gives_nothing() {
        assert_eq!(
            parse_packed_answer("I cannot do that.", 2),
            PackedAnswer::default()
        );
        assert_eq!(
            parse_packed_answer("[not json]", 2),
            PackedAnswer::default()
        );
    }
}
