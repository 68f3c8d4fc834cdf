//! Block requests of a semantic join (`ai_match` asked over `A1: ...` / `B1: ...` lists):
//! the answer lists every pair [`texts_match`] accepts, so a block gives the same pairs
//! as asking each pair alone; at the rates of [`FaultConfig`]'s `pack_duplicate_id`,
//! `pack_unknown_id` and `pack_invalid_answer`, the answer repeats a pair, invents one or
//! is not a list, as a real model's sometimes is.

use serde_json::{Value, json};

use super::answers::{fnv1a, system_prompt, texts_match};
use super::config::FaultConfig;
use super::packed::INVALID_PACKED_ANSWER;
use super::protocol::ChatMessage;

/// How a block request starts, lowercased (the engine's `functions::BLOCK_INSTRUCTION`).
const BLOCK_START: &str = "you match the texts of list a with the texts of list b";

/// The texts of a block request, side A then side B, or `None` if `messages` is not one.
pub fn block_texts(messages: &[ChatMessage]) -> Option<(Vec<&str>, Vec<&str>)> {
    if !system_prompt(messages).contains(BLOCK_START) {
        return None;
    }
    let user = messages.iter().rev().find(|m| m.role == "user")?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for line in user.content.lines() {
        let (side, rest) = line.split_at_checked(1)?;
        let (number, text) = rest.split_once(": ")?;
        let number: usize = number.parse().ok()?;
        let list = if side == "A" { &mut a } else { &mut b };
        if side != "A" && side != "B" || number != list.len() + 1 {
            return None;
        }
        list.push(text);
    }
    Some((a, b))
}

/// The content answering a block request, or `None` if `messages` is not one. The
/// misbehaviour is drawn from the request's text (and `seed`), so the same block always
/// gets the same answer.
pub fn block_answer(messages: &[ChatMessage], faults: &FaultConfig, seed: u64) -> Option<String> {
    let (a, b) = block_texts(messages)?;
    let mut pairs: Vec<Value> = Vec::new();
    for (i, left) in a.iter().enumerate() {
        for (j, right) in b.iter().enumerate() {
            if texts_match(left, right) {
                pairs.push(json!([i + 1, j + 1]));
            }
        }
    }
    let text = messages.last().map_or("", |m| m.content.as_str());
    let mut rng = fastrand::Rng::with_seed(fnv1a(text) ^ seed);
    let mut roll = |rate: f64| rate > 0.0 && rng.f64() < rate;
    let (duplicate, unknown, invalid) = (
        roll(faults.pack_duplicate_id),
        roll(faults.pack_unknown_id),
        roll(faults.pack_invalid_answer),
    );
    if invalid {
        return Some(INVALID_PACKED_ANSWER.to_string());
    }
    if duplicate && let Some(first) = pairs.first().cloned() {
        pairs.push(first);
    }
    if unknown {
        pairs.push(json!([a.len() + 1, 1]));
    }
    Some(Value::Array(pairs).to_string())
}

/// How many questions a block request asks: one per pair of its two lists.
pub fn block_pairs(messages: &[ChatMessage]) -> Option<u64> {
    let (a, b) = block_texts(messages)?;
    Some((a.len() * b.len()) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(a: &[&str], b: &[&str]) -> Vec<ChatMessage> {
        crate::functions::AiMatch::block_messages(a, b, "the same opinion")
            .into_iter()
            .map(|m| ChatMessage {
                role: m.role,
                content: m.content,
            })
            .collect()
    }

    #[test]
    fn lists_the_pairs_that_match_alone() {
        let a = ["I love it, great", "terrible and broken", "a chair"];
        let b = ["broken, awful", "great value, love"];
        let messages = block(&a, &b);
        assert_eq!(block_pairs(&messages), Some(6));
        let answer = block_answer(&messages, &FaultConfig::default(), 7).unwrap();
        let pairs: Vec<(usize, usize)> = serde_json::from_str(&answer).unwrap();
        let mut expected = Vec::new();
        for (i, x) in a.iter().enumerate() {
            for (j, y) in b.iter().enumerate() {
                if texts_match(x, y) {
                    expected.push((i + 1, j + 1));
                }
            }
        }
        assert_eq!(pairs, expected);
        assert_eq!(expected, [(1, 2), (2, 1)]);
    }

    #[test]
    fn misbehaves_at_the_rates_given() {
        let messages = block(&["great"], &["love it"]);
        let always = |field: &str| {
            let mut faults = FaultConfig::default();
            match field {
                "duplicate" => faults.pack_duplicate_id = 1.0,
                "unknown" => faults.pack_unknown_id = 1.0,
                _ => faults.pack_invalid_answer = 1.0,
            }
            block_answer(&messages, &faults, 1).unwrap()
        };
        assert_eq!(always("duplicate"), "[[1,1],[1,1]]");
        assert_eq!(always("unknown"), "[[1,1],[2,1]]");
        assert_eq!(always("invalid"), INVALID_PACKED_ANSWER);
    }

    #[test]
    fn other_requests_are_not_blocks() {
        let messages = vec![ChatMessage {
            role: "user".to_string(),
            content: "A1: x".to_string(),
        }];
        assert_eq!(block_texts(&messages), None);
    }
}
