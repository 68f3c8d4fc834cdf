//! blossom-sql: LLM calls as SQL functions over CSV, JSON and Parquet, on Apache Arrow
//! DataFusion.
//!
//! ```sql
//! SELECT id, sentiment(text) AS s, enhance(text) AS e
//! FROM 'data/reviews.csv' WHERE lang = 'en';
//! ```
//!
//! Build a session with [`BlossomSessionBuilder`]; the engine deduplicates identical
//! requests within a query, keeps `blossom.max_concurrency` requests in flight, holds
//! to `blossom.requests_per_minute` and retries what can be retried.

pub mod cli;
pub mod cluster;
pub mod cluster_token;
pub mod config;
pub mod dispatch;
pub mod error_class;
pub mod estimate;
pub mod execution;
pub mod file_tables;
pub mod functions;
pub mod observe;
pub mod planning;
pub mod provider;
pub mod redact;
mod session;
pub mod sim;
pub mod streaming;

pub use config::{ApiKey, BlossomOptions, OnError, OnInterrupt, ProviderPreset, ProviderSettings};
pub use session::{BlossomSessionBuilder, BlossomWorkerSessions};
