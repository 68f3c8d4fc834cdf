//! Wire types of OpenAI-compatible chat completions, as far as blossom uses them.

use serde::{Deserialize, Serialize};

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
    /// The answer's format (OpenAI's `response_format`, e.g. a JSON schema), when the
    /// function asks for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
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
