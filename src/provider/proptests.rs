//! Property tests of the parsers of what providers send: chat-completions and
//! embeddings bodies, error bodies, and `Retry-After` (header and body). Random and
//! mutated inputs must never panic; valid generated inputs must parse to what they say.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::temporal_conversions::timestamp_s_to_datetime;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use super::client::{error_message, parse_answer};
use super::embeddings::parse_embeddings;
use super::error::ProviderError;
use super::retry_after::parse_retry_after;

/// Cases per property.
pub(crate) const CASES: u32 = 512;

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any JSON value, a few levels deep.
pub(crate) fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}|id|index|answer|choices|data", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `text` changed in one of the ways a broken connection or a confused server changes
/// it: cut short, a slice removed, a character inserted or replaced.
pub(crate) fn mutated(text: String) -> impl Strategy<Value = String> {
    let len = text.chars().count();
    (0..4u8, 0..=len, 0..=len, any::<char>()).prop_map(move |(how, a, b, c)| {
        let chars: Vec<char> = text.chars().collect();
        let (lo, hi) = (a.min(b), a.max(b));
        let out: Vec<char> = match how {
            0 => chars[..lo].to_vec(),
            1 => chars[..lo].iter().chain(&chars[hi..]).copied().collect(),
            2 => {
                let mut v = chars.clone();
                v.insert(lo, c);
                v
            }
            _ => {
                let mut v = chars.clone();
                if lo < v.len() {
                    v[lo] = c;
                }
                v
            }
        };
        out.into_iter().collect()
    })
}

fn usage() -> impl Strategy<Value = Option<(u64, u64)>> {
    prop::option::of((any::<u64>(), any::<u64>()))
}

/// A chat-completions body answering `content`, with extra fields a provider may add.
fn chat_body(content: &str, usage: Option<(u64, u64)>, extra: &Value) -> String {
    let mut body = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": null}}],
        "extra": extra,
    });
    if let Some((prompt, completion)) = usage {
        body["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": 0});
    }
    body.to_string()
}

fn chat_content() -> impl Strategy<Value = String> {
    ".{0,40}".prop_filter("not blank", |s| !s.trim().is_empty())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_chat_answer_parses_to_its_content_and_usage(
        content in chat_content(),
        usage in usage(),
        extra in any_json(),
    ) {
        let answer = parse_answer(&chat_body(&content, usage, &extra)).expect("valid body");
        prop_assert_eq!(answer.content, content);
        prop_assert_eq!(
            answer.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            usage
        );
    }

    #[test]
    fn a_blank_chat_answer_is_an_empty_answer(blank in "[ \t\n]{0,5}") {
        prop_assert_eq!(
            parse_answer(&chat_body(&blank, None, &Value::Null)),
            Err(ProviderError::EmptyAnswer)
        );
    }

    #[test]
    fn any_chat_body_parses_or_fails_cleanly(body in prop_oneof![
        ".{0,80}",
        any_json().prop_map(|v| v.to_string()),
        (chat_content(), usage()).prop_flat_map(|(c, u)| mutated(chat_body(&c, u, &Value::Null))),
    ]) {
        if let Ok(answer) = parse_answer(&body) {
            prop_assert!(!answer.content.trim().is_empty());
        }
        let message = error_message(&body);
        prop_assert!(!message.is_empty());
        prop_assert!(message.chars().count() <= 301, "{}", message);
    }

    #[test]
    fn embeddings_come_back_in_input_order(
        vectors in prop::collection::vec(
            prop::collection::vec(-1.0e6f32..1.0e6f32, 1..12), 1..10),
        order in any::<u64>(),
        with_index in any::<bool>(),
        usage in usage(),
    ) {
        let n = vectors.len();
        let mut positions: Vec<usize> = (0..n).collect();
        if with_index {
            // Any order: the index says where each belongs.
            positions.sort_by_key(|&i| (i as u64).wrapping_mul(order | 1).rotate_left(17));
        }
        let data: Vec<Value> = positions
            .iter()
            .map(|&i| {
                if with_index {
                    json!({"object": "embedding", "index": i, "embedding": vectors[i]})
                } else {
                    json!({"object": "embedding", "embedding": vectors[i]})
                }
            })
            .collect();
        let mut body = json!({"object": "list", "data": data, "model": "m"});
        if let Some((prompt, completion)) = usage {
            body["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": completion});
        }
        let answer = parse_embeddings(&body.to_string(), n).expect("valid body");
        prop_assert_eq!(answer.vectors.len(), n);
        for (got, want) in answer.vectors.iter().zip(&vectors) {
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                prop_assert!((g - w).abs() <= w.abs() * 1e-6, "{} != {}", g, w);
            }
        }
        prop_assert_eq!(
            answer.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            usage
        );
    }

    #[test]
    fn any_embeddings_body_parses_or_fails_cleanly(
        inputs in 0usize..20,
        body in prop_oneof![
            ".{0,80}",
            any_json().prop_map(|v| json!({"data": v}).to_string()),
            prop::collection::vec((prop::option::of(0usize..25), prop::collection::vec(any::<f32>().prop_filter("finite", |f| f.is_finite()), 0..4)), 0..25)
                .prop_map(|items| json!({"data": items.iter().map(|(i, e)| match i {
                    Some(i) => json!({"index": i, "embedding": e}),
                    None => json!({"embedding": e}),
                }).collect::<Vec<_>>()}).to_string())
                .prop_flat_map(|text| prop_oneof![Just(text.clone()), mutated(text)]),
        ],
    ) {
        if let Ok(answer) = parse_embeddings(&body, inputs) {
            prop_assert_eq!(answer.vectors.len(), inputs);
            prop_assert!(answer.vectors.iter().all(|v| !v.is_empty()));
        }
    }

    #[test]
    fn retry_after_seconds_parse_to_what_they_say(
        secs in 0u64..2_000,
        spaces in "[ \t]{0,2}",
        fraction in prop::option::of(0u32..1000),
        in_body in any::<bool>(),
        depth in 0usize..4,
    ) {
        let (text, want) = match fraction {
            Some(ms) => (format!("{secs}.{ms:03}"), Duration::from_millis(secs * 1000 + u64::from(ms))),
            None => (secs.to_string(), Duration::from_secs(secs)),
        };
        let want = want.min(Duration::from_secs(600));
        let got = if in_body {
            let mut body = json!({"retryAfterSeconds": text.parse::<f64>().expect("number")});
            for _ in 0..depth {
                body = json!({"error": body, "message": "slow down"});
            }
            parse_retry_after(None, &body.to_string())
        } else {
            parse_retry_after(Some(&format!("{spaces}{text}{spaces}")), "")
        };
        let got = got.expect("a wait");
        let diff = got.abs_diff(want);
        prop_assert!(diff <= Duration::from_millis(1), "{:?} for {} (want {:?})", got, text, want);
    }

    #[test]
    fn retry_after_http_dates_parse_to_the_wait_until_then(ahead in -100_000i64..100_000) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let header = imf_fixdate(now + ahead);
        let got = parse_retry_after(Some(&header), "").expect("a date");
        let want = Duration::from_secs(ahead.clamp(0, 600) as u64);
        // The clock moves on while the test runs.
        prop_assert!(got.abs_diff(want) <= Duration::from_secs(2), "{} gave {:?}", header, got);
    }

    #[test]
    fn any_retry_after_is_refused_or_capped(
        header in prop::option::of(prop_oneof![
            ".{0,40}",
            any::<f64>().prop_map(|f| f.to_string()),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
                |(d, y, h, m, s)| format!("Wed, {} Oct {} {}:{}:{} GMT", d % 40, y, h % 30, m % 70, s % 70)),
            (any::<u64>(), 0usize..12, any::<u64>()).prop_map(|(d, mo, y)| format!(
                "Sun, {d} {} {y} 00:00:00 GMT",
                ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][mo])),
            (0i64..400_000_000_000).prop_map(imf_fixdate),
            (0i64..400_000_000_000).prop_map(imf_fixdate).prop_flat_map(mutated),
        ]),
        body in prop_oneof![".{0,40}", any_json().prop_map(|v| v.to_string())],
    ) {
        if let Some(wait) = parse_retry_after(header.as_deref(), &body) {
            prop_assert!(wait <= Duration::from_secs(600));
        }
    }
}

/// `secs` after the epoch as an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn imf_fixdate(secs: i64) -> String {
    timestamp_s_to_datetime(secs)
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

#[test]
fn the_fixdate_helper_writes_rfc_examples() {
    assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(imf_fixdate(1_445_412_480), "Wed, 21 Oct 2015 07:28:00 GMT");
}
