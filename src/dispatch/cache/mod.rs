//! The persistent response cache: answers of earlier requests, reused across queries
//! and processes, so that a rerun, or a run resumed after a crash, asks nothing twice.
//!
//! ```sql
//! SET blossom.cache = '/data/blossom-cache';       -- the embedded file (the default dir:
//!                                                   -- ~/.cache/blossom-sql)
//! SET blossom.cache = 'redis://127.0.0.1:6379/0';  -- a Redis shared by processes
//! SET blossom.cache_ttl = 86400;                    -- answers older than a day are asked again
//! ```
//!
//! One store ([`CacheStore`]) with two backends: the redb file of a directory
//! ([`ResponseCache`]: one process at a time, answers committed in small batches) and
//! Redis ([`RedisCache`]: any number of processes, every answer written as it
//! arrives). Both keep the same key ([`CacheKey`], a SHA-256 of the chat URL, the model
//! and the exact request body) and the same value (the answer and its usage as JSON,
//! with the time it was stored); neither holds the API key, and errors are never
//! stored.

mod entry;
mod file_store;
mod redis_store;
mod store;

pub use entry::{CacheKey, CacheOpenError};
pub use file_store::{CACHE_FILE, FLUSH_BATCH, FLUSH_EVERY, ResponseCache};
pub use redis_store::{KEY_PREFIX, PAUSE_AFTER_FAILURE, RedisCache, redis_key};
pub use store::CacheStore;
