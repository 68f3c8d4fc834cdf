//! Packed requests (blossom's multi-row packing protocol): each item answered as its own
//! request would be, and, at the rates of [`FaultConfig`]'s `pack_*` fields, the ways a
//! real model gets a packed answer wrong: an id dropped, repeated or invented, an
//! invalid answer, the order shuffled.

use serde_json::{Value, json};

use super::answers::{answer_for, fnv1a};
use super::config::FaultConfig;
use super::protocol::ChatMessage;
use crate::functions::pack::{PACK_PROTOCOL, parse_items};

/// The answer an item gets when the simulator gives an invalid one.
pub const INVALID_PACKED_ANSWER: &str = "UNSURE";

/// The content answering a packed request, or `None` if `messages` is not one. The
/// misbehaviour is drawn from the request's own text (and `seed`), so the same packed
/// request always gets the same answer.
pub fn packed_answer(messages: &[ChatMessage], faults: &FaultConfig, seed: u64) -> Option<String> {
    let (last, instruction) = messages.split_last()?;
    let protocol_at = instruction
        .iter()
        .rposition(|m| m.content.ends_with(PACK_PROTOCOL))?;
    let items = parse_items(&last.content)?;
    let mut single: Vec<ChatMessage> = instruction.to_vec();
    let content = &single[protocol_at].content;
    single[protocol_at].content = content[..content.len() - PACK_PROTOCOL.len()].to_string();
    let seed = fnv1a(&last.content) ^ seed;
    let ignores = faults.pack_ignore > 0.0
        && fastrand::Rng::with_seed(seed.rotate_left(29)).f64() < faults.pack_ignore;
    let echoes = faults.pack_echo > 0.0
        && fastrand::Rng::with_seed(seed.rotate_left(41)).f64() < faults.pack_echo;
    if echoes {
        let echoed: Vec<Value> = items
            .iter()
            .map(|item| json!({"id": item.id, "answer": item.text}))
            .collect();
        return Some(Value::Array(echoed).to_string());
    }
    if ignores {
        // All the items taken as one text, answered as a single request.
        single.push(last.clone());
        return Some(answer_for(&single));
    }
    let mut answers: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut messages = single.clone();
            messages.push(ChatMessage {
                role: "user".to_string(),
                content: item.text.clone(),
            });
            json!({"id": item.id, "answer": answer_for(&messages)})
        })
        .collect();
    misbehave(&mut answers, faults, seed);
    Some(Value::Array(answers).to_string())
}

/// How many items a packed request holds, or `None` if `messages` is not one.
pub fn packed_items(messages: &[ChatMessage]) -> Option<u64> {
    let (last, instruction) = messages.split_last()?;
    instruction
        .iter()
        .rposition(|m| m.content.ends_with(PACK_PROTOCOL))?;
    Some(parse_items(&last.content)?.len() as u64)
}

/// Applies each `pack_*` fault with its rate.
fn misbehave(answers: &mut Vec<Value>, faults: &FaultConfig, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut roll = |rate: f64| rate > 0.0 && rng.f64() < rate;
    let (drop, duplicate, unknown, invalid, shuffle) = (
        roll(faults.pack_drop_id),
        roll(faults.pack_duplicate_id),
        roll(faults.pack_unknown_id),
        roll(faults.pack_invalid_answer),
        roll(faults.pack_shuffle),
    );
    let mut rng = fastrand::Rng::with_seed(seed.rotate_left(17));
    let asked = answers.len();
    if asked == 0 {
        return;
    }
    if drop && asked > 1 {
        answers.remove(rng.usize(..asked));
    }
    if invalid {
        let at = rng.usize(..answers.len());
        answers[at]["answer"] = json!(INVALID_PACKED_ANSWER);
    }
    if duplicate {
        let mut copy = answers[rng.usize(..answers.len())].clone();
        copy["answer"] = json!(INVALID_PACKED_ANSWER);
        answers.push(copy);
    }
    if unknown {
        let id = asked as u64 + 1 + rng.u64(..5);
        answers.push(json!({"id": id, "answer": INVALID_PACKED_ANSWER}));
    }
    if shuffle {
        answers.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::pack::{packed_messages, render_items};
    use crate::sim::answers::sentiment_answer;

    fn sim_messages(texts: &[&str]) -> Vec<ChatMessage> {
        let instruction = [crate::provider::ChatMessage::system(
            "You classify the sentiment of a text.",
        )];
        packed_messages(&instruction, texts)
            .unwrap()
            .into_iter()
            .map(|m| ChatMessage {
                role: m.role,
                content: m.content,
            })
            .collect()
    }

    fn parsed(content: &str) -> Vec<(u64, String)> {
        let values: Vec<Value> = serde_json::from_str(content).unwrap();
        values
            .iter()
            .map(|v| {
                (
                    v["id"].as_u64().unwrap(),
                    v["answer"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn each_item_gets_its_single_answer() {
        let texts = ["I love it", "terrible, broken", "it is a chair"];
        let content = packed_answer(&sim_messages(&texts), &FaultConfig::default(), 1).unwrap();
        let expected: Vec<(u64, String)> = texts
            .iter()
            .zip(1..)
            .map(|(t, id)| (id, sentiment_answer(t)))
            .collect();
        assert_eq!(parsed(&content), expected);
    }

    #[test]
    fn plain_requests_are_not_packed() {
        let messages = vec![ChatMessage {
            role: "user".to_string(),
            content: render_items(&["x"]).unwrap(),
        }];
        assert!(packed_answer(&messages, &FaultConfig::default(), 1).is_none());
    }

    #[test]
    fn each_fault_breaks_the_answer_its_way() {
        let texts = ["a good one", "a bad one", "a plain one", "another good one"];
        let answers = |faults: FaultConfig| {
            let mut answers = parsed(&packed_answer(&sim_messages(&texts), &faults, 7).unwrap());
            answers.sort();
            answers
        };
        let clean = answers(FaultConfig::default());
        let ids = |answers: &[(u64, String)]| answers.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        assert_eq!(ids(&clean), [1, 2, 3, 4]);

        let dropped = answers(FaultConfig {
            pack_drop_id: 1.0,
            ..FaultConfig::default()
        });
        assert_eq!(dropped.len(), 3);
        assert!(dropped.iter().all(|a| clean.contains(a)));

        let repeated = answers(FaultConfig {
            pack_duplicate_id: 1.0,
            ..FaultConfig::default()
        });
        assert_eq!(repeated.len(), 5);
        assert!(repeated.windows(2).any(|w| w[0].0 == w[1].0));

        let invented = answers(FaultConfig {
            pack_unknown_id: 1.0,
            ..FaultConfig::default()
        });
        assert!(invented.iter().any(|(id, _)| *id > 4));

        let invalid = answers(FaultConfig {
            pack_invalid_answer: 1.0,
            ..FaultConfig::default()
        });
        assert_eq!(ids(&invalid), [1, 2, 3, 4]);
        assert_eq!(
            invalid
                .iter()
                .filter(|(_, a)| a == INVALID_PACKED_ANSWER)
                .count(),
            1
        );

        let shuffled = FaultConfig {
            pack_shuffle: 1.0,
            ..FaultConfig::default()
        };
        let content = packed_answer(&sim_messages(&texts), &shuffled, 7).unwrap();
        assert_eq!(parsed(&content)[0].0, 4, "reversed");
    }
}
