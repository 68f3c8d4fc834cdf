//! Wire types of OpenAI-compatible chat completions, as far as blossom uses them.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

/// One message of a chat request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the message.
    pub content: String,
}

impl ChatMessage {
    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".to_string(),
            content: content.into(),
        }
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".to_string(),
            content: content.into(),
        }
    }
}

/// The body of `POST /chat/completions`. It holds no secret, so it can serve as a
/// deduplication (and cache) key as it is serialized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The model asked for.
    pub model: String,
    /// The conversation: usually one system and one user message.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Answer length limit, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The answer's format, when the function asks for one; sent as OpenAI's
    /// `response_format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<AnswerFormat>,
}

/// The form a function wants its answer in, beyond what its prompt says. A function
/// names it; the provider writes it in its protocol's terms (for OpenAI-compatible
/// endpoints, [`AnswerFormat::to_wire`]).
///
/// ```
/// use blossom_sql::provider::AnswerFormat;
/// use serde_json::json;
/// let format = AnswerFormat::JsonSchema {
///     name: "extract".to_string(),
///     schema: json!({"type": "object"}),
///     strict: true,
/// };
/// assert_eq!(format.to_wire()["type"], "json_schema");
/// assert_eq!(AnswerFormat::JsonObject.to_wire(), json!({"type": "json_object"}));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerFormat {
    /// Any JSON object (OpenAI's JSON mode).
    JsonObject,
    /// A JSON object following a JSON Schema (OpenAI's structured outputs).
    JsonSchema {
        /// A name for the schema, which some providers require.
        name: String,
        /// The JSON Schema itself, as the function writes it.
        schema: Value,
        /// Whether the provider must follow the schema exactly (every key required,
        /// no other keys) rather than take it as a hint.
        strict: bool,
    },
}

impl AnswerFormat {
    /// The OpenAI `response_format` object: `{"type": "json_object"}`, or
    /// `{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`.
    ///
    /// A serialized [`ChatRequest`] is the key of the query memo and of the persistent
    /// response cache: this JSON must not change, or every cached answer is missed.
    pub fn to_wire(&self) -> Value {
        match self {
            Self::JsonObject => json!({"type": "json_object"}),
            Self::JsonSchema {
                name,
                schema,
                strict,
            } => json!({
                "type": "json_schema",
                "json_schema": {
                    "name": name,
                    "strict": strict,
                    "schema": schema,
                },
            }),
        }
    }
}

/// Serialized as its wire form, [`AnswerFormat::to_wire`].
impl Serialize for AnswerFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_wire().serialize(serializer)
    }
}

impl ChatRequest {
    /// The characters of all its messages: what token estimates are made from.
    pub fn prompt_chars(&self) -> usize {
        message_chars(&self.messages)
    }
}

/// The characters of `messages`' contents: what prompt sizes and token estimates are
/// measured in.
pub fn message_chars(messages: &[ChatMessage]) -> usize {
    messages.iter().map(|m| m.content.chars().count()).sum()
}

/// Token counts from the provider's `usage`, when it sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct TokenUsage {
    /// Tokens of the request.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    #[serde(default)]
    pub completion_tokens: u64,
}

/// A provider's answer to one chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAnswer {
    /// The assistant's text (never empty: an empty answer is an error).
    pub content: String,
    /// Token counts, when the provider reports them.
    pub usage: Option<TokenUsage>,
}

/// The parts of a chat-completions response blossom reads.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatResponse {
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    pub message: Option<ResponseMessage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_formats_are_written_as_openai_response_formats() {
        // What `ai_extract` and the JSON object fallback sent when the format was a raw
        // JSON value, built the same way: the typed format must serialize identically.
        let schema = json!({
            "type": "object",
            "properties": {"b": {"type": ["string", "null"]}, "a": {"type": ["number", "null"]}},
            "required": ["b", "a"],
            "additionalProperties": false,
        });
        let before = json!({
            "type": "json_schema",
            "json_schema": {"name": "extract", "strict": true, "schema": schema},
        });
        let typed = AnswerFormat::JsonSchema {
            name: "extract".to_string(),
            schema: schema.clone(),
            strict: true,
        };
        let written = serde_json::to_string(&typed).expect("serializes");
        assert_eq!(written, serde_json::to_string(&before).expect("serializes"));
        assert_eq!(
            written,
            r#"{"json_schema":{"name":"extract","schema":{"additionalProperties":false,"properties":{"a":{"type":["number","null"]},"b":{"type":["string","null"]}},"required":["b","a"],"type":"object"},"strict":true},"type":"json_schema"}"#
        );
        assert_eq!(
            serde_json::to_string(&AnswerFormat::JsonObject).expect("serializes"),
            r#"{"type":"json_object"}"#
        );
    }
}
