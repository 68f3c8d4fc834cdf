//! Wire format of the simulator: the OpenAI chat-completions request it accepts and the
//! JSON bodies it answers with (completions, model list, errors), plus token estimates.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// One chat message of an OpenAI-style request.
///
/// `content` may arrive as a string, `null`, or an array of content parts
/// (`[{"type":"text","text":"..."}]`); it is always flattened to plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `"system"`, `"user"`, `"assistant"`, ...
    #[serde(default)]
    pub role: String,
    /// The message text.
    #[serde(default, deserialize_with = "content_text")]
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The part of a chat-completions request the simulator reads; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChatRequest {
    /// The requested model (ignored: answers name the simulator's configured model).
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation; required.
    pub messages: Vec<ChatMessage>,
    /// The answer format asked for (`{"type": "json_schema", ...}`), read only to count
    /// JSON requests: answers follow the system prompt either way.
    #[serde(default)]
    pub response_format: Option<Value>,
}

impl ChatRequest {
    /// True when the request asks for an answer following a JSON schema.
    pub fn wants_json_schema(&self) -> bool {
        self.response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            == Some("json_schema")
    }

    /// True when the request asks for a JSON answer (`json_schema` or `json_object`).
    pub fn wants_json(&self) -> bool {
        self.response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_schema" || t == "json_object")
    }
}

/// Flattens a message `content` value (string, null, parts array, part object) to text.
fn content_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(flatten_content(&Value::deserialize(deserializer)?))
}

fn flatten_content(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(parts) => parts
            .iter()
            .map(flatten_content)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(part) => part.get("text").map(flatten_content).unwrap_or_default(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
    }
}

/// Estimated token count of `text`: characters / 4 rounded up, at least 1.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4).max(1)
}

/// Estimated prompt tokens of a conversation: [`estimate_tokens`] of all contents together.
pub fn prompt_tokens(messages: &[ChatMessage]) -> u64 {
    let chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
    u64::try_from(chars).unwrap_or(u64::MAX).div_ceil(4).max(1)
}

/// A standard `chat.completion` response body.
pub fn completion_body(
    id: u64,
    created: u64,
    model: &str,
    content: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Value {
    json!({
        "id": format!("simcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens.saturating_add(completion_tokens),
        },
    })
}

/// The `GET /v1/models` body listing the one simulated model.
pub fn models_body(model: &str) -> Value {
    json!({
        "object": "list",
        "data": [{"id": model, "object": "model", "owned_by": "blossom-sim"}],
    })
}

/// An OpenAI-style error body `{"error": {"message": ..., "type": ...}}`.
pub fn error_body(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind}})
}

/// Cuts a serialized body roughly in half (on a character boundary) so it is invalid JSON.
pub fn truncate_json(body: &str) -> String {
    let mut cut = body.len() / 2;
    while cut > 0 && !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body.get(..cut).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openai_request_leniently() {
        let body = r#"{"model":"x","temperature":0.2,"max_tokens":5,"stream":false,
            "messages":[{"role":"system","content":"s"},
                        {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"b"}]},
                        {"role":"assistant","content":null,"tool_calls":[]}]}"#;
        let req: ChatRequest = serde_json::from_str(body).expect("valid request");
        assert_eq!(req.model.as_deref(), Some("x"));
        assert_eq!(req.messages[0], ChatMessage::system("s"));
        assert_eq!(req.messages[1].content, "a\nb");
        assert_eq!(req.messages[2].content, "");
        assert!(serde_json::from_str::<ChatRequest>(r#"{"model":"x"}"#).is_err());
        assert!(serde_json::from_str::<ChatRequest>(r#"{"messages":"no"}"#).is_err());
    }

    #[test]
    fn token_estimates() {
        assert_eq!(estimate_tokens(""), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("ééééé"), 2);
        assert_eq!(
            prompt_tokens(&[ChatMessage::user("abcd"), ChatMessage::user("e")]),
            2
        );
    }

    #[test]
    fn completion_shape() {
        let v = completion_body(7, 1, "m", "hi", 3, 4);
        assert_eq!(v["id"], "simcmpl-7");
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(v["usage"]["total_tokens"], 7);
    }

    #[test]
    fn truncated_json_is_invalid() {
        let body = completion_body(1, 1, "m", "ünïcødé ✓", 1, 1).to_string();
        let cut = truncate_json(&body);
        assert!(cut.len() < body.len());
        assert!(serde_json::from_str::<Value>(&cut).is_err());
        assert_eq!(truncate_json(""), "");
    }
}
