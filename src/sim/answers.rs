//! Deterministic, plausible answers of the simulator: task detection from the system
//! prompt, the sentiment word lists, the simulated summarizer, translator, classifier and
//! filter, and the text hash that varies the answers' surface form.
//!
//! Everything here depends only on the request messages, never on randomness or on the
//! order of requests, so tests can compute the expected answer with [`answer_for`].

use super::protocol::ChatMessage;

/// Words counted as positive by the simulated sentiment classifier (lowercase; English,
/// plus German, French and Spanish words the bundled sample data uses).
pub const POSITIVE_WORDS: &[&str] = &[
    "good",
    "great",
    "excellent",
    "love",
    "loved",
    "loves",
    "amazing",
    "perfect",
    "happy",
    "fast",
    "recommend",
    "recommended",
    "best",
    "wonderful",
    "fantastic",
    "nice",
    "pleased",
    "works",
    "awesome",
    "superb",
    "satisfied",
    "reliable",
    "helpful",
    "friendly",
    "beautiful",
    "quick",
    "easy",
    "brilliant",
    "outstanding",
    "delighted",
    "glad",
    "impressive",
    "enjoy",
    "enjoyed",
    "smooth",
    // German, French and Spanish, for the bundled sample data.
    "toll",
    "tolles",
    "super",
    "perfekt",
    "liebe",
    "hervorragende",
    "begeistert",
    "zufrieden",
    "schnell",
    "kaufempfehlung",
    "bestens",
    "gutes",
    "recommande",
    "ravi",
    "adore",
    "parfait",
    "superbe",
    "génial",
    "irréprochable",
    "rapide",
    "excelente",
    "encanta",
    "recomiendo",
    "rapidísimo",
    "perfecto",
    "genial",
    "increíble",
    "rápido",
    "feliz",
    "recomendable",
];

/// Words counted as negative by the simulated sentiment classifier (lowercase).
pub const NEGATIVE_WORDS: &[&str] = &[
    "bad",
    "terrible",
    "awful",
    "hate",
    "hated",
    "broken",
    "slow",
    "poor",
    "worst",
    "disappointed",
    "disappointing",
    "refund",
    "late",
    "damaged",
    "useless",
    "waste",
    "problem",
    "problems",
    "defective",
    "horrible",
    "angry",
    "faulty",
    "crashed",
    "crashes",
    "wrong",
    "missing",
    "rude",
    "unhappy",
    "failed",
    "fails",
    "buggy",
    "annoying",
    "complaint",
    "dirty",
    // German, French and Spanish, for the bundled sample data.
    "kaputt",
    "schreckliche",
    "enttäuscht",
    "schlechteste",
    "beschädigt",
    "defekt",
    "spät",
    "cassé",
    "déçu",
    "pire",
    "endommagé",
    "décevant",
    "remboursement",
    "retard",
    "éviter",
    "abîmé",
    "nul",
    "roto",
    "rota",
    "decepcionado",
    "pésima",
    "peor",
    "dañado",
    "decepción",
    "reembolso",
    "tarde",
    "fatal",
];

/// Prefix of every generated answer, so nobody mistakes it for a model's output.
pub const SIM_PREFIX: &str = "[simulated]";

/// How many words of the text the "insight" task keeps.
pub const INSIGHT_WORDS: usize = 12;

/// How many characters of the text the default task echoes.
pub const ECHO_CHARS: usize = 80;

/// How many words of the text the "summarize" task keeps, whatever length the prompt
/// asks for, so a caller's own length limit gets exercised.
pub const SUMMARY_WORDS: usize = 12;

/// How many words of each item the "reduce" task keeps.
pub const REDUCE_WORDS: usize = 3;

/// A text containing this makes the classifier answer [`NO_LABEL_ANSWER`] to the normal
/// prompt and a valid label to the firmer one (the prompt saying "must be exactly one").
pub const CONFUSE_MARKER: &str = "[[confuse]]";

/// A text containing this makes the classifier answer [`NO_LABEL_ANSWER`] to every prompt.
pub const CONFUSE_ALWAYS_MARKER: &str = "[[confuse-always]]";

/// What the confused classifier answers: no label.
pub const NO_LABEL_ANSWER: &str = "none of these";

/// A text containing this makes the extractor answer a non-numeric string for every
/// numeric field (and every element of a numeric list).
pub const BAD_FIELD_MARKER: &str = "[[bad-field]]";

/// A text containing this makes the extractor answer [`NOT_JSON_ANSWER`].
pub const NOT_JSON_MARKER: &str = "[[not-json]]";

/// What the extractor answers to a text with [`NOT_JSON_MARKER`]: prose, no JSON.
pub const NOT_JSON_ANSWER: &str = "I could not find any of those fields in the text.";

/// What the extractor answers for a numeric field of a text with [`BAD_FIELD_MARKER`].
pub const BAD_FIELD_VALUE: &str = "unknown";

/// A text containing this makes the scorer answer a number above the range
/// ([`out_of_range_score`]) to the normal prompt and a score in range to the firmer one
/// (the prompt saying "must be one number").
pub const OUT_OF_RANGE_MARKER: &str = "[[out-of-range]]";

/// A text containing this makes the scorer answer a number above the range to every
/// prompt.
pub const OUT_OF_RANGE_ALWAYS_MARKER: &str = "[[out-of-range-always]]";

/// Words of a filter condition that say nothing about its subject.
const CONDITION_STOP_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "about", "is", "are",
    "it", "its", "text", "mentions", "mention", "talks", "says", "contains", "asks", "any", "some",
    "that", "this", "does", "not",
];

/// 64-bit FNV-1a hash of the UTF-8 bytes of `text`; stable across platforms and runs.
pub fn fnv1a(text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Canonical sentiment of `text`: `"POSITIVE"`, `"NEGATIVE"` or `"NEUTRAL"`.
///
/// The text is lowercased and split on non-alphanumeric characters; each word found in
/// [`POSITIVE_WORDS`] or [`NEGATIVE_WORDS`] counts once. A tie (including no hits) is neutral.
pub fn sentiment_label(text: &str) -> &'static str {
    let lower = text.to_lowercase();
    let (mut positive, mut negative) = (0usize, 0usize);
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if POSITIVE_WORDS.contains(&word) {
            positive += 1;
        } else if NEGATIVE_WORDS.contains(&word) {
            negative += 1;
        }
    }
    match positive.cmp(&negative) {
        std::cmp::Ordering::Greater => "POSITIVE",
        std::cmp::Ordering::Less => "NEGATIVE",
        std::cmp::Ordering::Equal => "NEUTRAL",
    }
}

/// The share of sentiment words in `text` that are positive, from 0 to 1, or 0.5 when
/// it has none (each word as [`sentiment_label`] counts it).
pub fn positive_share(text: &str) -> f64 {
    let lower = text.to_lowercase();
    let (mut positive, mut negative) = (0u32, 0u32);
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        if POSITIVE_WORDS.contains(&word) {
            positive += 1;
        } else if NEGATIVE_WORDS.contains(&word) {
            negative += 1;
        }
    }
    if positive + negative == 0 {
        0.5
    } else {
        f64::from(positive) / f64::from(positive + negative)
    }
}

/// The score of `text` on the scale from `low` to `high`, whatever the question:
/// `low + positive_share(text) × (high - low)`, rounded to a whole number when both
/// bounds are whole, else to two decimals.
pub fn score_value(text: &str, low: f64, high: f64) -> f64 {
    let score = low + positive_share(text) * (high - low);
    if low.fract() == 0.0 && high.fract() == 0.0 {
        score.round()
    } else {
        (score * 100.0).round() / 100.0
    }
}

/// The number the scorer answers out of range: as far above `high` as the range is wide.
pub fn out_of_range_score(low: f64, high: f64) -> f64 {
    high + (high - low)
}

/// The "score" answer: [`score_value`] in one of three surface forms chosen by
/// `fnv1a(text) % 3`: `4`, `**4**` or `4.`; [`out_of_range_score`] when `text` contains
/// [`OUT_OF_RANGE_ALWAYS_MARKER`], or [`OUT_OF_RANGE_MARKER`] and the prompt is not the
/// `firmer` one.
pub fn score_answer(text: &str, low: f64, high: f64, firmer: bool) -> String {
    let out = text.contains(OUT_OF_RANGE_ALWAYS_MARKER)
        || (text.contains(OUT_OF_RANGE_MARKER) && !firmer);
    let score = if out {
        out_of_range_score(low, high)
    } else {
        score_value(text, low, high)
    };
    match fnv1a(text) % 3 {
        0 => format!("{score}"),
        1 => format!("**{score}**"),
        _ => format!("{score}."),
    }
}

/// The range a score prompt states in its first line, "on a scale from <low> to
/// <high>.".
fn score_range(system: &str) -> Option<(f64, f64)> {
    let (_, rest) = system.split_once("on a scale from ")?;
    let (low, rest) = rest.split_once(" to ")?;
    let (high, _) = rest.split_once(".\n")?;
    Some((low.trim().parse().ok()?, high.trim().parse().ok()?))
}

/// The sentiment answer for `text`: the label of [`sentiment_label`] in one of three surface
/// forms chosen by `fnv1a(text) % 3`: `0` → `"POSITIVE"`, `1` → `"Positive"`, `2` → `"positive."`.
pub fn sentiment_answer(text: &str) -> String {
    let label = sentiment_label(text);
    match fnv1a(text) % 3 {
        0 => label.to_string(),
        1 => capitalize(&label.to_lowercase()),
        _ => format!("{}.", label.to_lowercase()),
    }
}

/// The "insight" answer: `"[simulated] Key insights: "` + the first 12 whitespace-separated
/// words of `text` joined by single spaces + `"."`.
pub fn insight_answer(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().take(INSIGHT_WORDS).collect();
    format!("{SIM_PREFIX} Key insights: {}.", words.join(" "))
}

/// The "enhance" answer: `"[simulated] Enhanced: "` + `text` with whitespace collapsed to
/// single spaces (and trimmed), its first letter uppercased, and `"."` appended unless it
/// already ends with `.`, `!`, `?`, `…`, `。`, `！` or `？`.
pub fn enhance_answer(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut enhanced = capitalize(&collapsed);
    let ends_with_punctuation = enhanced
        .chars()
        .last()
        .is_some_and(|c| matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？'));
    if !ends_with_punctuation {
        enhanced.push('.');
    }
    format!("{SIM_PREFIX} Enhanced: {enhanced}")
}

/// The default answer: `"[simulated] Answer to: "` + the first 80 characters (not bytes)
/// of `text`, unchanged otherwise.
pub fn echo_answer(text: &str) -> String {
    let head: String = text.chars().take(ECHO_CHARS).collect();
    format!("{SIM_PREFIX} Answer to: {head}")
}

/// The "summarize" answer: `"[simulated] Summary: "` + the first 12 whitespace-separated
/// words of `text` joined by single spaces (more than a small length limit allows).
pub fn summary_answer(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().take(SUMMARY_WORDS).collect();
    format!("{SIM_PREFIX} Summary: {}", words.join(" "))
}

/// The "translate" answer: `"[simulated] <language>: "` + `text` with whitespace collapsed.
pub fn translation_answer(text: &str, language: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{SIM_PREFIX} {language}: {collapsed}")
}

/// The "categorize" answer: the label sharing the most words with `text` (lowercased
/// alphanumeric words; ties and no overlap go to the earliest label), in one of three
/// surface forms chosen by `fnv1a(text) % 3`: as listed, lowercased, or `**bold**`.
/// [`NO_LABEL_ANSWER`] when there are no labels, when `text` contains
/// [`CONFUSE_ALWAYS_MARKER`], or when it contains [`CONFUSE_MARKER`] and the prompt is
/// not the `firmer` one.
pub fn category_answer(text: &str, labels: &[&str], firmer: bool) -> String {
    let confused =
        text.contains(CONFUSE_ALWAYS_MARKER) || (text.contains(CONFUSE_MARKER) && !firmer);
    if confused {
        return NO_LABEL_ANSWER.to_string();
    }
    let text_words = words(text);
    let mut best: Option<(&str, usize)> = None;
    for label in labels {
        let shared = words(label)
            .iter()
            .filter(|w| text_words.contains(w))
            .count();
        if best.is_none_or(|(_, most)| shared > most) {
            best = Some((label, shared));
        }
    }
    let Some((label, _)) = best else {
        return NO_LABEL_ANSWER.to_string();
    };
    match fnv1a(text) % 3 {
        0 => label.to_string(),
        1 => label.to_lowercase(),
        _ => format!("**{label}**"),
    }
}

/// The "filter" answer: yes when `text` shares a keyword with `condition` (its words
/// other than [`CONDITION_STOP_WORDS`]; a trailing `s` is ignored), else no; in one of
/// three surface forms chosen by `fnv1a(text) % 3`: `YES`, `Yes.`, `yes` (or `NO`, ...).
pub fn filter_answer(text: &str, condition: &str) -> String {
    let stem = |w: &String| {
        if w.chars().count() > 3 {
            w.strip_suffix('s').unwrap_or(w).to_string()
        } else {
            w.clone()
        }
    };
    let text_words: Vec<String> = words(text).iter().map(stem).collect();
    let meets = words(condition)
        .iter()
        .filter(|w| !CONDITION_STOP_WORDS.contains(&w.as_str()))
        .map(stem)
        .any(|w| text_words.contains(&w));
    let word = if meets { "YES" } else { "NO" };
    match fnv1a(text) % 3 {
        0 => word.to_string(),
        1 => format!("{}.", capitalize(&word.to_lowercase())),
        _ => word.to_lowercase(),
    }
}

/// Whether two texts "match" under any condition: both have the same
/// [`sentiment_label`] and it is not neutral (the two express the same opinion).
pub fn texts_match(a: &str, b: &str) -> bool {
    let label = sentiment_label(a);
    label != "NEUTRAL" && label == sentiment_label(b)
}

/// The answer to a pair prompt of `ai_match` (`Text A: ...` and `Text B: ...` lines):
/// YES when [`texts_match`], else NO, in the surface forms of [`filter_answer`].
pub fn match_answer(text: &str) -> String {
    let (a, b) = text
        .strip_prefix("Text A: ")
        .and_then(|rest| rest.split_once("\nText B: "))
        .unwrap_or((text, ""));
    let word = if texts_match(a, b) { "YES" } else { "NO" };
    match fnv1a(text) % 3 {
        0 => word.to_string(),
        1 => format!("{}.", capitalize(&word.to_lowercase())),
        _ => word.to_lowercase(),
    }
}

/// The "extract" answer: a JSON object with one key per field the prompt lists (lines
/// `- "key": kind`), valued from `text`:
/// - `text`: the first capitalised word after the first word of `text`, else its first
///   word (null when it has none);
/// - `number`: the first number in `text` (a leading `$` and trailing punctuation are
///   ignored), `whole number`: the first whole number; null when there is none;
/// - `true or false`: true when `text` has the word "yes", else false when it has
///   "no", else null;
/// - `date as YYYY-MM-DD`: the first such date in `text`, else null;
/// - `list of ...`: every such value; for texts, the `#hashtags` (without `#`).
///
/// With [`BAD_FIELD_MARKER`] numeric values are [`BAD_FIELD_VALUE`]; with
/// [`NOT_JSON_MARKER`] the answer is [`NOT_JSON_ANSWER`]. The surface form follows
/// `fnv1a(text) % 3`: the bare object, a ```` ```json ```` fenced block, or the object
/// after a sentence with its numbers written as strings.
pub fn extract_answer(text: &str, system: &str) -> String {
    use serde_json::{Map, Value};
    if text.contains(NOT_JSON_MARKER) {
        return NOT_JSON_ANSWER.to_string();
    }
    let form = fnv1a(text) % 3;
    let bad = text.contains(BAD_FIELD_MARKER);
    let tokens: Vec<&str> = text
        .split_whitespace()
        .map(|t| {
            t.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '!' | '?' | '(' | ')' | '"'))
        })
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| !t.is_empty())
        .collect();
    let is_date = |t: &str| {
        t.len() == 10
            && t.char_indices().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
    };
    let dates: Vec<Value> = tokens
        .iter()
        .filter(|t| is_date(t))
        .map(|t| Value::String((*t).to_string()))
        .collect();
    let numbers: Vec<f64> = tokens
        .iter()
        .filter(|t| !is_date(t))
        .filter_map(|t| t.trim_start_matches('$').parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .collect();
    let number = |n: f64, whole: bool| -> Value {
        if bad {
            return Value::String(BAD_FIELD_VALUE.to_string());
        }
        let value = if whole {
            #[allow(clippy::cast_possible_truncation)]
            Value::from(n as i64)
        } else {
            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
        };
        if form == 2 {
            Value::String(value.to_string())
        } else {
            value
        }
    };
    let numbers_of = |whole: bool| -> Vec<Value> {
        numbers
            .iter()
            .filter(|n| !whole || n.fract() == 0.0)
            .map(|n| number(*n, whole))
            .collect()
    };
    let plain_words: Vec<&str> = tokens
        .iter()
        .copied()
        .filter(|t| t.chars().all(char::is_alphabetic))
        .collect();
    let name = plain_words
        .iter()
        .skip(1)
        .find(|w| w.chars().next().is_some_and(char::is_uppercase))
        .or_else(|| plain_words.first())
        .map_or(Value::Null, |w| Value::String((*w).to_string()));
    let lower = words(text);
    let answers: Vec<Value> = lower
        .iter()
        .filter_map(|w| match w.as_str() {
            "yes" => Some(Value::Bool(true)),
            "no" => Some(Value::Bool(false)),
            _ => None,
        })
        .collect();
    let yes_no = if lower.iter().any(|w| w == "yes") {
        Value::Bool(true)
    } else if lower.iter().any(|w| w == "no") {
        Value::Bool(false)
    } else {
        Value::Null
    };
    let hashtags: Vec<Value> = tokens
        .iter()
        .filter_map(|t| t.strip_prefix('#'))
        .filter(|t| !t.is_empty())
        .map(|t| Value::String(t.to_string()))
        .collect();
    let scalar = |kind: &str| -> Value {
        match kind {
            "text" => name.clone(),
            "number" => numbers.first().map_or(Value::Null, |n| number(*n, false)),
            "whole number" => numbers_of(true).into_iter().next().unwrap_or(Value::Null),
            "true or false" => yes_no.clone(),
            k if k.starts_with("date") => dates.first().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    };
    let mut object = Map::new();
    for line in system.lines() {
        let Some(rest) = line.strip_prefix("- \"") else {
            continue;
        };
        let Some(split) = rest.rfind("\": ") else {
            continue;
        };
        let Ok(key) = serde_json::from_str::<String>(&format!("\"{}\"", &rest[..split])) else {
            continue;
        };
        let kind = &rest[split + 3..];
        let value = match kind.strip_prefix("list of ") {
            Some("text") => Value::Array(hashtags.clone()),
            Some("number") => Value::Array(numbers_of(false)),
            Some("whole number") => Value::Array(numbers_of(true)),
            Some("true or false") => Value::Array(answers.clone()),
            Some(k) if k.starts_with("date") => Value::Array(dates.clone()),
            Some(_) => Value::Array(Vec::new()),
            None => scalar(kind),
        };
        object.insert(key, value);
    }
    let json = Value::Object(object).to_string();
    match form {
        0 => json,
        1 => format!("```json\n{json}\n```"),
        _ => format!("Here are the fields I found: {json}"),
    }
}

/// The texts between lines `open` and `close` (the delimiters of `ai_reduce`'s prompts).
fn delimited<'a>(text: &'a str, open: &str, close: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<Vec<&'a str>> = None;
    for line in text.lines() {
        if line == open {
            current = Some(Vec::new());
        } else if line == close {
            if let Some(lines) = current.take() {
                found.push(lines.join("\n"));
            }
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    found
}

/// The "reduce" answer to a chunk prompt of `ai_reduce`, whose texts each stand between
/// a line `<item>` and a line `</item>`: `"[simulated] reduced N items: "` + the first
/// 3 words of each text, the texts separated by `" | "`.
pub fn reduce_answer(text: &str) -> String {
    let items = delimited(text, "<item>", "</item>");
    let heads: Vec<String> = items
        .iter()
        .map(|item| {
            item.split_whitespace()
                .take(REDUCE_WORDS)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    format!(
        "{SIM_PREFIX} reduced {} items: {}",
        items.len(),
        heads.join(" | ")
    )
}

/// The "combine" answer to a combine prompt of `ai_reduce`, whose partial answers each
/// stand between a line `<partial>` and a line `</partial>`:
/// `"[simulated] combined N partial answers"`.
pub fn combine_answer(text: &str) -> String {
    let partials = delimited(text, "<partial>", "</partial>");
    format!("{SIM_PREFIX} combined {} partial answers", partials.len())
}

/// The lowercased alphanumeric words of `text`.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// All `system` (and `developer`) message contents joined by newlines, as sent.
fn system_text(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .filter(|m| {
            m.role.eq_ignore_ascii_case("system") || m.role.eq_ignore_ascii_case("developer")
        })
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The labels a categorize prompt lists, one a line as `- label`.
fn listed_labels(system: &str) -> Vec<&str> {
    system
        .lines()
        .filter_map(|line| line.strip_prefix("- "))
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .collect()
}

/// The part of `system` between `start` and the last `end` after it.
fn between<'a>(system: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = system.find(start)? + start.len();
    let rest = system.get(from..)?;
    let to = rest.rfind(end)?;
    rest.get(..to).map(str::trim)
}

/// The text a request asks about: the content of the last `user` message, or of the last
/// message of any role when there is no user message, or `""` when there are no messages.
pub fn request_text(messages: &[ChatMessage]) -> &str {
    messages
        .iter()
        .rev()
        .find(|m| m.role.eq_ignore_ascii_case("user"))
        .or_else(|| messages.last())
        .map_or("", |m| m.content.as_str())
}

/// All `system` (and `developer`) message contents joined by spaces, lowercased.
pub fn system_prompt(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .filter(|m| {
            m.role.eq_ignore_ascii_case("system") || m.role.eq_ignore_ascii_case("developer")
        })
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The simulated answer to a chat request.
///
/// The task is chosen from the lowercased system prompt, first match wins: blossom's
/// own prompts first (`"you extract fields from texts"` → [`extract_answer`] with the
/// `- "key": kind` lines; `"you combine partial answers"` → [`combine_answer`];
/// `"you reduce many texts"` → [`reduce_answer`]; `"you sort texts into categories"` →
/// [`category_answer`] with the
/// `- label` lines, firmer when it says `"must be exactly one of"`; `"you check whether
/// a text meets a condition"` → [`filter_answer`] with the `Condition:` line; `"you
/// check whether two texts meet a condition"` → [`match_answer`]; `"you
/// translate texts"` → [`translation_answer`] with the language after `"Translate the
/// text into "`; `"you score a text on a scale"` → [`score_answer`] with the range of
/// its first line, firmer when it says `"must be one number"`; `"you summarize texts"`
/// → [`summary_answer`]), then keywords:
/// `"sentiment"` → [`sentiment_answer`], `"insight"` → [`insight_answer`],
/// `"enhance"` → [`enhance_answer`], anything else → [`echo_answer`]; each is applied
/// to [`request_text`].
pub fn answer_for(messages: &[ChatMessage]) -> String {
    let text = request_text(messages);
    let system = system_prompt(messages);
    if system.contains("you extract fields from texts") {
        extract_answer(text, &system_text(messages))
    } else if system.contains("you combine partial answers") {
        combine_answer(text)
    } else if system.contains("you reduce many texts") {
        reduce_answer(text)
    } else if system.contains("you sort texts into categories") {
        let raw = system_text(messages);
        let firmer = system.contains("must be exactly one of");
        category_answer(text, &listed_labels(&raw), firmer)
    } else if system.contains("you check whether two texts meet a condition") {
        match_answer(text)
    } else if system.contains("you check whether a text meets a condition") {
        let raw = system_text(messages);
        let condition =
            between(&raw, "\nCondition: ", "\nAnswer with exactly one word").unwrap_or_default();
        filter_answer(text, condition)
    } else if system.contains("you translate texts") {
        let raw = system_text(messages);
        let language = between(
            &raw,
            "Translate the text into ",
            ". Answer with the translation",
        )
        .unwrap_or("another language");
        translation_answer(text, language)
    } else if system.contains("you score a text on a scale") {
        let (low, high) = score_range(&system_text(messages)).unwrap_or((0.0, 1.0));
        let firmer = system.contains("must be one number");
        score_answer(text, low, high, firmer)
    } else if system.contains("you summarize texts") {
        summary_answer(text)
    } else if system.contains("sentiment") {
        sentiment_answer(text)
    } else if system.contains("insight") {
        insight_answer(text)
    } else if system.contains("enhance") {
        enhance_answer(text)
    } else {
        echo_answer(text)
    }
}

/// Uppercases the first character (Unicode-aware; may become several characters).
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(system: Option<&str>, user: &str) -> Vec<ChatMessage> {
        let mut v = Vec::new();
        if let Some(s) = system {
            v.push(ChatMessage::system(s));
        }
        v.push(ChatMessage::user(user));
        v
    }

    #[test]
    fn sentiment_counts_words() {
        assert_eq!(sentiment_label("Great product, works perfect!"), "POSITIVE");
        assert_eq!(
            sentiment_label("Arrived late and DAMAGED; I want a refund."),
            "NEGATIVE"
        );
        assert_eq!(sentiment_label("good but slow"), "NEUTRAL");
        assert_eq!(sentiment_label(""), "NEUTRAL");
        assert_eq!(sentiment_label("the box is blue"), "NEUTRAL");
        // Word boundaries: "goodness" is not "good".
        assert_eq!(sentiment_label("goodness"), "NEUTRAL");
    }

    #[test]
    fn word_lists_are_lowercase_and_disjoint() {
        for w in POSITIVE_WORDS {
            assert_eq!(*w, w.to_lowercase());
            assert!(!NEGATIVE_WORDS.contains(w), "{w} in both lists");
        }
        for w in NEGATIVE_WORDS {
            assert_eq!(*w, w.to_lowercase());
        }
        assert!(POSITIVE_WORDS.len() >= 30 && NEGATIVE_WORDS.len() >= 30);
    }

    #[test]
    fn sentiment_surface_forms_follow_hash() {
        let mut seen = [false; 3];
        for i in 0..60 {
            let text = format!("great service number {i}");
            let answer = sentiment_answer(&text);
            let form = (fnv1a(&text) % 3) as usize;
            seen[form] = true;
            let expected = ["POSITIVE", "Positive", "positive."][form];
            assert_eq!(answer, expected);
            assert_eq!(
                answer_for(&msgs(Some("Classify the SENTIMENT"), &text)),
                answer
            );
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn fnv1a_known_values() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn insight_keeps_twelve_words() {
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen";
        assert_eq!(
            answer_for(&msgs(Some("Extract insights"), text)),
            "[simulated] Key insights: one two three four five six seven eight nine ten eleven twelve."
        );
        assert_eq!(insight_answer("  a   b "), "[simulated] Key insights: a b.");
    }

    #[test]
    fn enhance_cleans_text() {
        assert_eq!(
            answer_for(&msgs(
                Some("Please ENHANCE this"),
                "  hello   world \n again "
            )),
            "[simulated] Enhanced: Hello world again."
        );
        assert_eq!(enhance_answer("done!"), "[simulated] Enhanced: Done!");
        assert_eq!(enhance_answer("ßtraße"), "[simulated] Enhanced: SStraße.");
        assert_eq!(enhance_answer("été。"), "[simulated] Enhanced: Été。");
        assert_eq!(enhance_answer(""), "[simulated] Enhanced: .");
    }

    #[test]
    fn default_echo_truncates_on_chars() {
        let text = "é".repeat(100);
        let answer = answer_for(&msgs(None, &text));
        assert_eq!(answer, format!("[simulated] Answer to: {}", "é".repeat(80)));
        let emoji = "🌸".repeat(81);
        assert_eq!(
            echo_answer(&emoji).chars().count(),
            "[simulated] Answer to: ".chars().count() + 80
        );
        assert_eq!(
            answer_for(&msgs(Some("be brief"), "hi")),
            "[simulated] Answer to: hi"
        );
        assert_eq!(answer_for(&[]), "[simulated] Answer to: ");
    }

    #[test]
    fn summary_keeps_twelve_words() {
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen";
        assert_eq!(
            answer_for(&msgs(
                Some("You summarize texts. At most 10 characters."),
                text
            )),
            "[simulated] Summary: one two three four five six seven eight nine ten eleven twelve"
        );
    }

    #[test]
    fn translation_names_the_language() {
        let system = "You translate texts. Translate the text into Brazilian Portuguese. Answer \
                      with the translation only, and nothing else.";
        assert_eq!(
            answer_for(&msgs(Some(system), "  good   morning ")),
            "[simulated] Brazilian Portuguese: good morning"
        );
    }

    #[test]
    fn categories_follow_shared_words_and_markers() {
        let system = "You sort texts into categories. The categories are:\n- Sports\n- \
                      Tech news\n- Sentiment\nAnswer with the name of the one category.";
        let firmer = "You sort texts into categories. Your answer must be exactly one of \
                      these category names:\n- Sports\n- Tech news\n- Sentiment";
        let answer = answer_for(&msgs(Some(system), "the latest tech from the news desk"));
        assert!(
            ["Tech news", "tech news", "**Tech news**"].contains(&answer.as_str()),
            "{answer}"
        );
        // No word shared: the first label.
        let answer = answer_for(&msgs(Some(system), "nothing in common"));
        assert!(
            ["Sports", "sports", "**Sports**"].contains(&answer.as_str()),
            "{answer}"
        );
        let confused = "a match report [[confuse]]";
        assert_eq!(answer_for(&msgs(Some(system), confused)), NO_LABEL_ANSWER);
        assert_ne!(answer_for(&msgs(Some(firmer), confused)), NO_LABEL_ANSWER);
        let always = "a match report [[confuse-always]]";
        assert_eq!(answer_for(&msgs(Some(system), always)), NO_LABEL_ANSWER);
        assert_eq!(answer_for(&msgs(Some(firmer), always)), NO_LABEL_ANSWER);
        assert_eq!(category_answer("x", &[], true), NO_LABEL_ANSWER);
    }

    #[test]
    fn scores_follow_the_sentiment_words_within_the_range() {
        let system = "You score a text on a scale from 1 to 5.\nQuestion: how positive\nAnswer with only the number, and nothing else.";
        let firmer = "You score a text on a scale from 1 to 5.\nQuestion: how positive\nYour answer must be one number from 1 to 5.";
        let number = |answer: String| -> f64 {
            answer
                .trim_matches(|c| c == '*' || c == '.')
                .parse()
                .unwrap_or_else(|_| panic!("{answer}"))
        };
        assert_eq!(
            number(answer_for(&msgs(Some(system), "great, excellent"))),
            5.0
        );
        assert_eq!(
            number(answer_for(&msgs(Some(system), "broken, awful"))),
            1.0
        );
        assert_eq!(number(answer_for(&msgs(Some(system), "a chair"))), 3.0);
        assert_eq!(
            number(answer_for(&msgs(Some(system), "great but broken and bad"))),
            2.0
        );
        assert_eq!(score_value("good", 0.0, 0.5), 0.5);
        assert_eq!(score_value("good bad bad", -1.0, 1.5), -0.17);
        let out = "great [[out-of-range]]";
        assert_eq!(number(answer_for(&msgs(Some(system), out))), 9.0);
        assert_eq!(number(answer_for(&msgs(Some(firmer), out))), 5.0);
        let always = "great [[out-of-range-always]]";
        assert_eq!(number(answer_for(&msgs(Some(firmer), always))), 9.0);
        let forms: std::collections::BTreeSet<String> = (0..30)
            .map(|i| answer_for(&msgs(Some(system), &format!("great {i}"))))
            .collect();
        assert_eq!(
            forms,
            ["**5**", "5", "5."].map(String::from).into(),
            "three surface forms"
        );
    }

    #[test]
    fn filter_says_yes_on_a_shared_keyword() {
        let system = |condition: &str| {
            format!(
                "You check whether a text meets a condition.\nCondition: {condition}\nAnswer \
                 with exactly one word: YES if the text meets the condition, NO if it does not."
            )
        };
        for (text, condition, yes) in [
            ("I want a refund now", "mentions a refund", true),
            ("Refunds are slow", "mentions a refund", true),
            ("Great product", "mentions a refund", false),
            ("the text mentions nothing", "mentions a refund", false),
        ] {
            let answer = answer_for(&msgs(Some(&system(condition)), text));
            let key = answer.trim_end_matches('.').to_lowercase();
            assert_eq!(key == "yes", yes, "{text}: {answer}");
            assert!(key == "yes" || key == "no", "{answer}");
        }
    }

    #[test]
    fn extract_answers_json_from_the_text() {
        let system = "You extract fields from texts. Answer with one JSON object that has \
                      exactly these keys, and nothing else:\n- \"name\": text\n- \"price\": \
                      number\n- \"qty\": whole number\n- \"ok\": true or false\n- \"day\": \
                      date as YYYY-MM-DD\n- \"tags\": list of text\nUse null.";
        let text = "The Widget costs $12.5, 3 left, yes, since 2024-03-01 #red #blue";
        let answer = answer_for(&msgs(Some(system), text));
        let json = answer
            .find('{')
            .and_then(|start| answer.rfind('}').map(|end| &answer[start..=end]))
            .expect("an object");
        let value: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(value["name"], "Widget");
        assert!(
            value["price"] == 12.5 || value["price"] == "12.5",
            "{value}"
        );
        assert!(value["qty"] == 3 || value["qty"] == "3", "{value}");
        assert_eq!(value["ok"], true);
        assert_eq!(value["day"], "2024-03-01");
        assert_eq!(value["tags"], serde_json::json!(["red", "blue"]));

        let bad = answer_for(&msgs(Some(system), "Widget 12 [[bad-field]]"));
        assert!(bad.contains("\"price\":\"unknown\""), "{bad}");
        assert!(bad.contains("\"qty\":\"unknown\""), "{bad}");
        assert_eq!(
            answer_for(&msgs(Some(system), "Widget [[not-json]]")),
            NOT_JSON_ANSWER
        );
        let none = answer_for(&msgs(Some(system), "nothing"));
        assert!(none.contains("\"price\":null"), "{none}");
    }

    #[test]
    fn uses_last_user_message_and_priority() {
        let messages = vec![
            ChatMessage::system("insight and sentiment"),
            ChatMessage::user("terrible"),
            ChatMessage::assistant("ok"),
            ChatMessage::user("wonderful, love it"),
        ];
        assert_eq!(request_text(&messages), "wonderful, love it");
        assert_eq!(
            answer_for(&messages),
            sentiment_answer("wonderful, love it")
        );
        assert_eq!(sentiment_label(request_text(&messages)), "POSITIVE");
        let no_user = vec![ChatMessage::system("x"), ChatMessage::assistant("tail")];
        assert_eq!(request_text(&no_user), "tail");
    }

    #[test]
    fn reduce_and_combine_count_what_they_got() {
        let reduce = vec![
            ChatMessage::system("You reduce many texts to one answer. Task: x"),
            ChatMessage::user(
                "<item>\nlate delivery of the box\n</item>\n<item>\nbroken\nlid\n</item>\n",
            ),
        ];
        assert_eq!(
            answer_for(&reduce),
            "[simulated] reduced 2 items: late delivery of | broken lid"
        );
        let combine = vec![
            ChatMessage::system("You combine partial answers into one answer. Task: sentiment"),
            ChatMessage::user("<partial>\na\n</partial>\n<partial>\nb\n</partial>\n"),
        ];
        assert_eq!(
            answer_for(&combine),
            "[simulated] combined 2 partial answers"
        );
    }
}
