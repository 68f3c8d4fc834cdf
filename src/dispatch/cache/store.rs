//! [`CacheStore`]: the response cache a session uses, one type over its two backends,
//! the embedded file ([`ResponseCache`], one process at a time) and Redis
//! ([`RedisCache`], shared by processes and machines). The pipeline asks it for answers
//! and gives it fresh ones; which backend holds them is `blossom.cache`'s business.

use std::sync::Arc;
use std::time::Duration;

use super::entry::{self, CacheKey, CacheOpenError};
use super::file_store::ResponseCache;
use super::redis_store::RedisCache;
use crate::config::CacheLocation;
use crate::provider::ChatAnswer;

/// An open response cache.
#[derive(Debug, Clone)]
pub enum CacheStore {
    /// The redb file of a directory, shared by the sessions of this process.
    File(Arc<ResponseCache>),
    /// A Redis server, shared by every process that names it.
    Redis(Arc<RedisCache>),
}

impl CacheStore {
    /// Opens the cache at `location`: the directory's file (made if missing), or a
    /// connection to the Redis server (checked with a `PING`).
    pub async fn open(location: &CacheLocation) -> Result<Self, CacheOpenError> {
        match location {
            CacheLocation::Dir(dir) => ResponseCache::shared(dir).map(Self::File),
            CacheLocation::Redis(url) => RedisCache::connect(url)
                .await
                .map(|cache| Self::Redis(Arc::new(cache))),
        }
    }

    /// The stored answer of `key`, unless there is none or it is older than `ttl` (a
    /// cache that cannot be read counts as a miss).
    pub async fn get(&self, key: &CacheKey, ttl: Option<Duration>) -> Option<ChatAnswer> {
        match self {
            Self::File(cache) => cache.get(key, ttl),
            Self::Redis(cache) => cache.get_many(&[*key], ttl).await.pop().flatten(),
        }
    }

    /// The stored answers of `keys`, in order (one round trip to Redis per
    /// [`MGET_KEYS`](super::redis_store) keys).
    pub async fn get_many(
        &self,
        keys: &[CacheKey],
        ttl: Option<Duration>,
    ) -> Vec<Option<ChatAnswer>> {
        match self {
            Self::File(cache) => keys.iter().map(|key| cache.get(key, ttl)).collect(),
            Self::Redis(cache) => cache.get_many(keys, ttl).await,
        }
    }

    /// Stores `answers`, and returns once they are kept: readable by the next lookup
    /// (for the file, committed within its flush bound). Whether they were kept: a
    /// Redis that fails does not keep them (warned once), and the query goes on.
    pub async fn put_many(&self, answers: &[(CacheKey, &ChatAnswer)]) -> bool {
        match self {
            Self::File(cache) => {
                for (key, answer) in answers {
                    cache.put(*key, answer);
                }
                true
            }
            Self::Redis(cache) => {
                let encoded: Vec<(CacheKey, Vec<u8>)> = answers
                    .iter()
                    .filter_map(|(key, answer)| entry::encode(answer).map(|bytes| (*key, bytes)))
                    .collect();
                cache.put_many(&encoded).await
            }
        }
    }
}
