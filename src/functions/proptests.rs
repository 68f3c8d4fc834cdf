//! Property tests of the parsers of outside input on the function side: packed answers,
//! the `extract()` schema literal and the JSON object in its answers, and per-call
//! options. Random and mutated inputs must never panic; valid generated inputs must
//! parse to what they say.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::temporal_conversions::date32_to_datetime;
use datafusion::common::ScalarValue;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

use super::options::{CallOptions, OPTION_KEYS};
use super::pack::parse_packed_answer;
use super::schema::{FieldType, ScalarKind, StructSchema, answer_object};
use crate::provider::proptests::{CASES, any_json, mutated};

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- packed answers ----

/// One item's answer as the model may write it, and the text it stands for.
fn item_answer() -> impl Strategy<Value = (Value, String)> {
    prop_oneof![
        ".{0,20}".prop_map(|s| (json!(s), s)),
        any::<bool>().prop_map(|b| (json!(b), b.to_string())),
        any::<i64>().prop_map(|n| (json!(n), n.to_string())),
        prop::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..4).prop_map(|m| {
            let value = json!(m);
            let text = value.to_string();
            (value, text)
        }),
    ]
}

/// A whole packed answer: every id once, in any order, in any of the forms models use.
fn packed() -> impl Strategy<Value = (usize, Vec<Value>, HashMap<u64, String>)> {
    prop::collection::vec(
        (item_answer(), any::<bool>(), any::<bool>(), any::<u64>()),
        1..=16,
    )
    .prop_map(|items| {
        let n = items.len();
        let mut entries: Vec<(u64, Value)> = Vec::new();
        let mut expected = HashMap::new();
        for (id, ((answer, text), id_as_text, as_value, order)) in (1u64..).zip(items) {
            let id_json = if id_as_text {
                json!(format!(" {id} "))
            } else {
                json!(id)
            };
            let key = if as_value { "value" } else { "answer" };
            entries.push((order, json!({"id": id_json, key: answer})));
            expected.insert(id, text);
        }
        entries.sort_by_key(|(order, _)| *order);
        (n, entries.into_iter().map(|(_, e)| e).collect(), expected)
    })
}

/// The array as the model wrote it: bare, fenced, or inside prose without brackets.
fn written(array: &[Value], form: u8, prose: &str) -> String {
    let text = Value::Array(array.to_vec()).to_string();
    match form % 3 {
        0 => format!("  {text}\n"),
        1 => format!("```json\n{text}\n```"),
        _ => format!("{prose} {text} {prose}"),
    }
}

// ---- the extract schema ----

/// A field name as written (plain or quoted) and the name it stands for.
fn field_name() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_]{0,10}".prop_map(|n| (n.clone(), n)),
        ".{1,12}"
            .prop_filter("not blank", |n| !n.trim().is_empty())
            .prop_map(|n| (format!("\"{}\"", n.replace('"', "\"\"")), n)),
    ]
}

/// A type name as written, in any case, and its kind.
fn scalar_kind() -> impl Strategy<Value = (String, ScalarKind)> {
    let names = [
        ("VARCHAR", ScalarKind::Text),
        ("TEXT", ScalarKind::Text),
        ("STRING", ScalarKind::Text),
        ("INT", ScalarKind::Int32),
        ("INTEGER", ScalarKind::Int32),
        ("INT4", ScalarKind::Int32),
        ("BIGINT", ScalarKind::Int64),
        ("INT8", ScalarKind::Int64),
        ("FLOAT", ScalarKind::Float32),
        ("REAL", ScalarKind::Float32),
        ("FLOAT4", ScalarKind::Float32),
        ("DOUBLE", ScalarKind::Float64),
        ("FLOAT8", ScalarKind::Float64),
        ("DOUBLE PRECISION", ScalarKind::Float64),
        ("BOOLEAN", ScalarKind::Boolean),
        ("BOOL", ScalarKind::Boolean),
        ("DATE", ScalarKind::Date),
    ];
    (prop::sample::select(names.to_vec()), any::<u64>()).prop_map(|((name, kind), case)| {
        let written: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect();
        (written, kind)
    })
}

fn field_type() -> impl Strategy<Value = (String, FieldType)> {
    (scalar_kind(), prop::option::of("[ ]{0,2}")).prop_map(|((name, kind), list)| match list {
        Some(space) => (format!("{name}{space}[]"), FieldType::List(kind)),
        None => (name, FieldType::Scalar(kind)),
    })
}

/// A schema literal and the fields it stands for (names distinct ignoring case).
fn schema_literal() -> impl Strategy<Value = (String, Vec<(String, FieldType)>)> {
    prop::collection::vec(
        (field_name(), "[ \t\n]{1,3}", field_type(), "[ \n]{0,2}"),
        1..8,
    )
    .prop_map(|fields| {
        let mut seen = HashSet::new();
        let mut parts = Vec::new();
        let mut expected = Vec::new();
        for ((written, name), gap, (type_text, field_type), pad) in fields {
            if !seen.insert(name.to_ascii_lowercase()) {
                continue;
            }
            parts.push(format!("{pad}{written}{gap}{type_text}{pad}"));
            expected.push((name, field_type));
        }
        (parts.join(","), expected)
    })
}

/// `days` after 1970-01-01 as `YYYY-MM-DD`.
fn iso(days: i32) -> String {
    date32_to_datetime(days)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// A JSON value of `kind` as a model would answer it, and the value it must cast to.
fn value_of(kind: ScalarKind) -> BoxedStrategy<(Value, ScalarValue)> {
    match kind {
        ScalarKind::Text => "[^`]{0,12}"
            .prop_map(|s| (json!(s), ScalarValue::Utf8(Some(s))))
            .boxed(),
        ScalarKind::Int32 => prop_oneof![
            any::<i32>().prop_map(|n| (json!(n), ScalarValue::Int32(Some(n)))),
            any::<i32>().prop_map(|n| (json!(n.to_string()), ScalarValue::Int32(Some(n)))),
        ]
        .boxed(),
        ScalarKind::Int64 => prop_oneof![
            any::<i64>().prop_map(|n| (json!(n), ScalarValue::Int64(Some(n)))),
            any::<i64>().prop_map(|n| (json!(format!(" {n}")), ScalarValue::Int64(Some(n)))),
        ]
        .boxed(),
        // Binary fractions with short decimals: exact in JSON text both ways.
        ScalarKind::Float32 => (any::<i16>(), 0u32..9)
            .prop_map(|(n, k)| f32::from(n) / (1u32 << k) as f32)
            .prop_map(|f| (json!(f), ScalarValue::Float32(Some(f))))
            .boxed(),
        ScalarKind::Float64 => prop_oneof![
            (any::<i16>(), 0u32..9).prop_map(|(n, k)| f64::from(n) / f64::from(1u32 << k)),
            any::<i32>().prop_map(f64::from),
        ]
        .prop_map(|f| (json!(f), ScalarValue::Float64(Some(f))))
        .boxed(),
        ScalarKind::Boolean => any::<bool>()
            .prop_map(|b| (json!(b), ScalarValue::Boolean(Some(b))))
            .boxed(),
        // Years 0000 to 9999.
        ScalarKind::Date => (-719_528i32..=2_932_896)
            .prop_map(|d| (json!(iso(d)), ScalarValue::Date32(Some(d))))
            .boxed(),
    }
}

fn typed_null(kind: ScalarKind) -> ScalarValue {
    ScalarValue::try_from(&FieldType::Scalar(kind).data_type()).expect("a null")
}

fn field_value(field_type: FieldType) -> BoxedStrategy<(Value, ScalarValue)> {
    match field_type {
        FieldType::Scalar(kind) => prop_oneof![
            9 => value_of(kind),
            1 => Just((Value::Null, typed_null(kind))),
        ]
        .boxed(),
        FieldType::List(kind) => prop::collection::vec(value_of(kind), 0..4)
            .prop_map(move |items| {
                let (json, values): (Vec<Value>, Vec<ScalarValue>) = items.into_iter().unzip();
                let element: DataType = FieldType::Scalar(kind).data_type();
                (
                    Value::Array(json),
                    ScalarValue::List(ScalarValue::new_list_nullable(&values, &element)),
                )
            })
            .boxed(),
    }
}

/// A schema and an answer object that fits it, with the value each field must cast to.
fn schema_and_answer() -> impl Strategy<Value = (StructSchema, Map<String, Value>, Vec<ScalarValue>)>
{
    schema_literal().prop_flat_map(|(text, fields)| {
        let schema = StructSchema::parse(&text).expect("a valid literal");
        let values: Vec<_> = fields.iter().map(|(_, t)| field_value(*t)).collect();
        (Just(schema), Just(fields), values).prop_map(|(schema, fields, values)| {
            let mut object = Map::new();
            let mut expected = Vec::new();
            for ((name, _), (json, value)) in fields.iter().zip(values) {
                object.insert(name.clone(), json);
                expected.push(value);
            }
            (schema, object, expected)
        })
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_whole_packed_answer_parses_to_every_answer(
        (n, array, expected) in packed(),
        form in any::<u8>(),
        prose in "[A-Za-z .,:!]{0,20}",
    ) {
        let parsed = parse_packed_answer(&written(&array, form, &prose), n);
        prop_assert!(parsed.intact);
        prop_assert_eq!(parsed.answers, expected);
    }

    #[test]
    fn a_packed_answer_missing_or_repeating_an_id_is_not_whole(
        (n, array, expected) in packed(),
        pick in any::<prop::sample::Index>(),
        repeat in any::<bool>(),
    ) {
        let i = pick.index(array.len());
        let mut broken = array.clone();
        let id = broken[i]["id"].as_u64()
            .or_else(|| broken[i]["id"].as_str().and_then(|s| s.trim().parse().ok()))
            .expect("an id");
        if repeat {
            broken.push(array[i].clone());
        } else {
            broken.remove(i);
        }
        let parsed = parse_packed_answer(&Value::Array(broken).to_string(), n);
        prop_assert!(!parsed.intact);
        // The repeated or missing id has no answer; the others keep theirs.
        prop_assert!(!parsed.answers.contains_key(&id));
        for (other, text) in &expected {
            if *other != id {
                prop_assert_eq!(parsed.answers.get(other), Some(text));
            }
        }
    }

    #[test]
    fn any_packed_answer_parses_or_gives_nothing_cleanly(
        items in 0usize..20,
        answer in prop_oneof![
            ".{0,80}",
            any_json().prop_map(|v| v.to_string()),
            packed().prop_flat_map(|(_, array, _)| mutated(Value::Array(array).to_string())),
        ],
    ) {
        let parsed = parse_packed_answer(&answer, items);
        prop_assert!(parsed.answers.keys().all(|id| (1..=items as u64).contains(id)));
        // Whole or not, at most one answer per item (an id without a usable answer
        // leaves its item unanswered, to be asked again).
        prop_assert!(parsed.answers.len() <= items);
    }

    #[test]
    fn a_schema_literal_parses_to_its_fields((text, expected) in schema_literal()) {
        let schema = StructSchema::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let got: Vec<(String, FieldType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.field_type))
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn any_schema_literal_parses_or_is_refused_cleanly(text in prop_oneof![
        ".{0,60}",
        "[a-zA-Z_\" ,\\[\\]]{0,40}",
        schema_literal().prop_flat_map(|(text, _)| mutated(text)),
    ]) {
        match StructSchema::parse(&text) {
            Ok(schema) => {
                prop_assert!(!schema.fields().is_empty());
                let _ = schema.json_schema();
                let _ = schema.prompt_lines();
            }
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }

    #[test]
    fn an_answer_that_fits_the_schema_casts_to_its_values(
        (schema, object, expected) in schema_and_answer(),
        form in 0u8..3,
        prose in "[A-Za-z .,:!]{0,20}",
    ) {
        let text = Value::Object(object.clone()).to_string();
        let answer = match form {
            0 => text,
            1 => format!("```json\n{text}\n```"),
            _ => format!("{prose} {text} {prose}"),
        };
        let found = answer_object(&answer).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&found, &object);
        let (value, problems) = schema.cast_object(&found).map_err(TestCaseError::fail)?;
        prop_assert!(problems.is_empty(), "{:?}", problems);
        let ScalarValue::Struct(array) = value else {
            return Err(TestCaseError::fail("not a struct"));
        };
        for (i, want) in expected.iter().enumerate() {
            let got = ScalarValue::try_from_array(array.column(i), 0)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, want, "field {}", i);
        }
    }

    #[test]
    fn any_answer_casts_or_is_refused_cleanly(
        (text, _) in schema_literal(),
        answer in prop_oneof![
            ".{0,60}",
            any_json().prop_map(|v| v.to_string()),
            any_json().prop_map(|v| json!({"a": v, "b": [v], "name": v}).to_string())
                .prop_flat_map(|t| prop_oneof![Just(t.clone()), mutated(t)]),
        ],
    ) {
        let schema = StructSchema::parse(&text).map_err(TestCaseError::fail)?;
        if let Ok(object) = answer_object(&answer) {
            // Problems are reported per field; only building the struct could fail.
            let (value, _problems) = schema.cast_object(&object).map_err(TestCaseError::fail)?;
            prop_assert!(matches!(value, ScalarValue::Struct(_)));
        }
    }

    #[test]
    fn call_options_parse_to_what_they_say(
        model in prop::option::of("[ ]{0,2}[^\"\\\\]{1,12}[ ]{0,2}".prop_filter("not blank", |m| !m.trim().is_empty())),
        temperature in prop::option::of(0u32..=2000),
        max_answer_tokens in prop::option::of(1u32..=u32::MAX),
    ) {
        let mut object = Map::new();
        if let Some(model) = &model {
            object.insert("model".to_string(), json!(model));
        }
        if let Some(t) = temperature {
            object.insert("temperature".to_string(), json!(f64::from(t) / 1000.0));
        }
        if let Some(n) = max_answer_tokens {
            object.insert("max_answer_tokens".to_string(), json!(n));
        }
        let text = Value::Object(object).to_string();
        let options = CallOptions::parse(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(options.model, model.map(|m| m.trim().to_string()));
        match (options.temperature, temperature) {
            (Some(got), Some(t)) => prop_assert!((got - f64::from(t) / 1000.0).abs() < 1e-12),
            (None, None) => {}
            (got, want) => prop_assert!(false, "temperature {:?} for {:?}", got, want),
        }
        prop_assert_eq!(options.max_answer_tokens, max_answer_tokens);
    }

    #[test]
    fn an_unknown_option_is_refused_by_name(key in "[a-z_]{1,12}", value in any_json()) {
        prop_assume!(!OPTION_KEYS.contains(&key.as_str()));
        let text = json!({ key.clone(): value }).to_string();
        let error = CallOptions::parse(&text).expect_err("an unknown key");
        prop_assert!(error.contains(&format!("{key:?}")), "{}", error);
    }

    #[test]
    fn any_options_text_parses_or_is_refused_cleanly(text in prop_oneof![
        ".{0,60}",
        any_json().prop_map(|v| v.to_string()),
        (any_json(), any_json(), any_json()).prop_map(|(m, t, n)|
            json!({"model": m, "temperature": t, "max_answer_tokens": n}).to_string())
            .prop_flat_map(|t| prop_oneof![Just(t.clone()), mutated(t)]),
    ]) {
        match CallOptions::parse(&text) {
            Ok(options) => {
                prop_assert!(options.model.as_deref().is_none_or(|m| !m.trim().is_empty()));
                prop_assert!(options.temperature.is_none_or(|t| (0.0..=2.0).contains(&t)));
                prop_assert!(options.max_answer_tokens.is_none_or(|n| n > 0));
            }
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }
}

#[test]
fn the_date_helper_writes_iso_dates() {
    assert_eq!(iso(0), "1970-01-01");
    assert_eq!(iso(19_783), "2024-03-01");
    assert_eq!(iso(-719_528), "0000-01-01");
    assert_eq!(iso(2_932_896), "9999-12-31");
}
