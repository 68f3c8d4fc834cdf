//! An OpenAI-compatible chat-completions simulator: a real HTTP server on localhost with
//! deterministic answers, configurable latency, concurrency and rate limits, and injected
//! faults, so tests and benchmarks need no internet and no real model.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use blossom_sql::sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! println!("point the client at {}", sim.base_url());
//! # Ok(()) }
//! ```
//!
//! Endpoints: `POST /v1/chat/completions` (also `/chat/completions` and `/openai`),
//! `GET /v1/models`, `GET /sim/stats`, `POST /sim/reset`.

mod answers;
mod blocks;
mod config;
mod embeddings;
mod faults;
mod handler;
mod limiter;
mod packed;
mod protocol;
mod server;
mod sink_server;
mod state;
mod stats;
mod stream_server;

#[cfg(test)]
mod tests;

pub use answers::{
    NEGATIVE_WORDS, OUT_OF_RANGE_ALWAYS_MARKER, OUT_OF_RANGE_MARKER, POSITIVE_WORDS, answer_for,
    echo_answer, enhance_answer, fnv1a, insight_answer, out_of_range_score, positive_share,
    request_text, score_answer, score_value, sentiment_answer, sentiment_label, system_prompt,
    texts_match,
};
pub use blocks::{block_answer, block_texts};
pub use config::{FaultConfig, SimConfig, validate_rate};
pub use embeddings::{DEFAULT_DIMENSIONS, embedding_for};
pub use faults::FaultKind;
pub use packed::{INVALID_PACKED_ANSWER, packed_answer};
pub use protocol::{ChatMessage, ChatRequest, estimate_tokens, prompt_tokens};
pub use server::Simulator;
pub use sink_server::{Received, SinkServer, State};
pub use stats::SimStats;
pub use stream_server::{SENT_AT, Script, StreamServer, unix_seconds};
