//! Providers of chat completions and embeddings: the [`Provider`] trait, the seam
//! between the dispatcher and a protocol; its OpenAI-compatible HTTP implementation
//! ([`ChatClient`]); the request and answer types; and the classes of errors a
//! provider gives (retryable or not). Outside this module nothing decides on an HTTP
//! status or writes provider wire JSON (but the simulator, [`crate::sim`], which
//! speaks its own copy of the protocol).

mod client;
mod embeddings;
mod error;
#[cfg(test)]
pub(crate) mod proptests;
mod protocol;
mod retry_after;
mod text;
mod types;

pub use client::ChatClient;
pub use embeddings::{EmbeddingAnswer, EmbeddingRequest};
pub use error::ProviderError;
pub use protocol::Provider;
pub use retry_after::parse_retry_after;
pub(crate) use text::truncate_chars;
pub use types::{AnswerFormat, ChatAnswer, ChatMessage, ChatRequest, TokenUsage, message_chars};
