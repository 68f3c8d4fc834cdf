//! Per-call options: the JSON object an AI function call may take as its last argument,
//! overriding the session's `blossom.model`, `blossom.temperature` and
//! `blossom.max_answer_tokens` for that call's requests.

use serde_json::{Map, Value};

/// The options of one call. Unset fields fall back to the session settings.
///
/// ```sql
/// SELECT summarize(text, 200, '{"model": "mistral", "temperature": 0.2, "max_answer_tokens": 120}')
/// FROM 'data/articles.json';
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// The model asked instead of `blossom.model`.
    pub model: Option<String>,
    /// The sampling temperature, from 0 to 2.
    pub temperature: Option<f64>,
    /// The answer length limit, sent as the request's `max_tokens`.
    pub max_answer_tokens: Option<u32>,
}

/// The keys an options object may have.
pub const OPTION_KEYS: [&str; 3] = ["model", "temperature", "max_answer_tokens"];

impl CallOptions {
    /// Parses an options object such as `{"model": "mistral", "temperature": 0.2}`.
    /// Unknown keys, values of the wrong type or range, and text that is not a JSON
    /// object are refused; the message completes "argument N (options) ...".
    ///
    /// ```sql
    /// SELECT generate('Name a color', '{"temperature": 1.5}');
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "is not valid JSON ({e}); write a JSON object such as \
                 '{{\"model\": \"mistral\", \"temperature\": 0.2}}'"
            )
        })?;
        let Value::Object(map) = value else {
            return Err(format!(
                "must be a JSON object such as '{{\"model\": \"mistral\"}}', got {}",
                kind(&value)
            ));
        };
        Self::from_map(&map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<Self, String> {
        let mut options = Self::default();
        for (key, value) in map {
            match key.as_str() {
                "model" => match value.as_str().map(str::trim) {
                    Some(model) if !model.is_empty() => options.model = Some(model.to_string()),
                    _ => return Err(bad(key, "a non-empty string", value)),
                },
                "temperature" => match value.as_f64() {
                    Some(t) if (0.0..=2.0).contains(&t) => options.temperature = Some(t),
                    _ => return Err(bad(key, "a number from 0 to 2", value)),
                },
                "max_answer_tokens" => match value.as_u64().map(u32::try_from) {
                    Some(Ok(n)) if n > 0 => options.max_answer_tokens = Some(n),
                    _ => {
                        return Err(bad(
                            key,
                            &format!("a whole number from 1 to {}", u32::MAX),
                            value,
                        ));
                    }
                },
                other => {
                    return Err(format!(
                        "has an unknown key {other:?}; the keys are {}",
                        OPTION_KEYS.join(", ")
                    ));
                }
            }
        }
        Ok(options)
    }
}

fn bad(key: &str, expected: &str, got: &Value) -> String {
    format!("key {key:?} must be {expected}, got {got}")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let options = CallOptions::parse(
            r#"{"model": " mistral ", "temperature": 0.2, "max_answer_tokens": 50}"#,
        )
        .unwrap();
        assert_eq!(
            options,
            CallOptions {
                model: Some("mistral".to_string()),
                temperature: Some(0.2),
                max_answer_tokens: Some(50),
            }
        );
        assert_eq!(CallOptions::parse("{}").unwrap(), CallOptions::default());
        assert_eq!(
            CallOptions::parse(r#"{"temperature": 2}"#)
                .unwrap()
                .temperature,
            Some(2.0)
        );
    }

    #[test]
    fn refuses_bad_options() {
        for (text, expected) in [
            ("{model: x}", "is not valid JSON"),
            ("{\"model\": \"x\"", "is not valid JSON"),
            ("[1]", "must be a JSON object"),
            (
                r#"{"modle": "x"}"#,
                r#"unknown key "modle"; the keys are model, temperature, max_answer_tokens"#,
            ),
            (
                r#"{"model": 3}"#,
                r#"key "model" must be a non-empty string, got 3"#,
            ),
            (r#"{"model": " "}"#, "must be a non-empty string"),
            (
                r#"{"temperature": "hot"}"#,
                r#"key "temperature" must be a number from 0 to 2, got "hot""#,
            ),
            (r#"{"temperature": 2.5}"#, "from 0 to 2"),
            (r#"{"temperature": -0.1}"#, "from 0 to 2"),
            (
                r#"{"max_answer_tokens": 0}"#,
                r#"key "max_answer_tokens" must be a whole number"#,
            ),
            (r#"{"max_answer_tokens": 1.5}"#, "must be a whole number"),
            (r#"{"max_answer_tokens": -1}"#, "must be a whole number"),
            (
                r#"{"max_answer_tokens": 5000000000}"#,
                "must be a whole number",
            ),
            (r#"{"max_answer_tokens": null}"#, "got null"),
        ] {
            let error = CallOptions::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
