//! The OpenAI-compatible chat-completions client: request and answer types, the HTTP
//! call, and the classes of errors a provider gives (retryable or not).

mod client;
mod embeddings;
mod error;
#[cfg(test)]
pub(crate) mod proptests;
mod retry_after;
mod seam;
mod types;

pub use client::ChatClient;
pub(crate) use client::truncate_chars;
pub use embeddings::{EmbeddingAnswer, EmbeddingRequest};
pub use error::ProviderError;
pub use retry_after::parse_retry_after;
pub use seam::Provider;
pub use types::{ChatAnswer, ChatMessage, ChatRequest, TokenUsage, message_chars};
