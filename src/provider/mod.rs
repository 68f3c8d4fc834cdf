//! The OpenAI-compatible chat-completions client: request and answer types, the HTTP
//! call, and the classes of errors a provider gives (retryable or not).

mod client;
mod embeddings;
mod error;
#[cfg(test)]
pub(crate) mod proptests;
mod retry_after;
mod text;
mod types;

pub use client::ChatClient;
pub use embeddings::{EmbeddingAnswer, EmbeddingRequest};
pub use error::ProviderError;
pub use retry_after::parse_retry_after;
pub(crate) use text::truncate_chars;
pub use types::{
    AnswerFormat, ChatAnswer, ChatMessage, ChatRequest, TokenUsage, message_chars,
};
