//! The shared response cache on Redis: the same keys and values as the embedded file
//! ([`super::entry`]), under `blossom:v1:answer:<hex>`, in a server that any number of
//! processes, on any machines, read and write at once (the workers of a distributed
//! query, two `blossom` runs on one machine).
//!
//! ```sql
//! SET blossom.cache = 'redis://127.0.0.1:6379/0';
//! SET blossom.cache = 'redis://:secret@cache.internal:6379/2'; -- shown :<redacted>@
//! ```
//!
//! Every fresh answer is written as it arrives, and the row waits for the write: a
//! process killed at any moment has lost only the answers in flight, so a rerun pays
//! only for rows not yet cached. `blossom.cache_ttl` is checked when an answer is read,
//! as for the file (Redis expires nothing itself; give the server a `maxmemory` and an
//! eviction policy to bound it).
//!
//! The cache is an optimisation, never a reason for a query to fail. A server that
//! cannot be reached when the cache is first opened is reported once
//! ([`CacheOpenError::Redis`]) and the session runs uncached. A server that fails
//! later (stopped, unreachable, out of memory) is warned about once; meanwhile reads
//! are misses and writes are skipped (each counted as an answer not cached) for
//! [`PAUSE_AFTER_FAILURE`] at a time, so a dead server costs no request a wait, and
//! the connection manager reconnects when it is back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::entry::{self, CacheKey, CacheOpenError};
use crate::config::RedisUrl;
use crate::provider::ChatAnswer;
use crate::redact::scrub;

/// What every key of the cache starts with; `v1` is the layout of [`super::entry`].
pub const KEY_PREFIX: &str = "blossom:v1:answer:";

/// Longest wait to connect, when opening and when reconnecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest wait for one command's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the cache is left alone after a failed command.
pub const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Keys read by one `MGET`.
const MGET_KEYS: usize = 256;

/// The Redis key of a request.
pub fn redis_key(key: &CacheKey) -> String {
    format!("{KEY_PREFIX}{}", key.hex())
}

/// What [`RedisCache::run`] sends.
#[derive(Clone, Copy)]
enum Command<'a> {
    One(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
}

/// A connection to one Redis server's cache, reconnected when it breaks.
pub struct RedisCache {
    url: RedisUrl,
    connection: ConnectionManager,
    /// Commands are not sent before this, after a failure.
    paused_until: Mutex<Option<Instant>>,
    /// A failure was warned about (once per cache).
    warned: AtomicBool,
    /// The last command failed: the next success says the cache is back.
    failing: AtomicBool,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to the cache at `url` and checks that it answers (and accepts the
    /// password, if any).
    pub async fn connect(url: &RedisUrl) -> Result<Self, CacheOpenError> {
        let refused = |why: String| {
            CacheOpenError::Redis(url.to_string(), scrub(&why, url.password()).into_owned())
        };
        let client = redis::Client::open(url.expose()).map_err(|e| refused(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connecting = ConnectionManager::new_with_config(client, config);
        let mut connection = match tokio::time::timeout(CONNECT_TIMEOUT * 3, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return Err(refused(e.to_string())),
            Err(_) => {
                return Err(refused(format!(
                    "no connection within {} s",
                    (CONNECT_TIMEOUT * 3).as_secs()
                )));
            }
        };
        // A server that takes the connection but refuses commands (a password missing
        // or wrong) says so now rather than at the first answer.
        let ping = redis::cmd("PING");
        match tokio::time::timeout(COMMAND_TIMEOUT, ping.query_async::<String>(&mut connection))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(refused(e.to_string())),
            Err(_) => {
                return Err(refused(format!(
                    "no answer to PING within {} s",
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
        }
        Ok(Self {
            url: url.clone(),
            connection,
            paused_until: Mutex::new(None),
            warned: AtomicBool::new(false),
            failing: AtomicBool::new(false),
        })
    }

    /// The server's URL (shown with its password redacted).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    fn paused(&self) -> bool {
        let until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }

    /// A command failed: warn (once), and leave the server alone for a moment.
    fn failed(&self, why: &str) {
        *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + PAUSE_AFTER_FAILURE);
        self.failing.store(true, Ordering::Relaxed);
        let why = scrub(why, self.url.password());
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the response cache {} (blossom.cache) failed: {why}; the query goes on, and \
                 answers are not kept while it is unreachable",
                self.url
            );
        } else {
            tracing::debug!("the response cache {} failed: {why}", self.url);
        }
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("the response cache {} answers again", self.url);
        }
    }

    /// Sends `command` under [`COMMAND_TIMEOUT`], once more if the connection failed
    /// (the connection manager then reconnects, and the second try waits for it: a
    /// server back after an outage is used at once). `None` when it failed (warned) or
    /// the cache is paused.
    async fn run<T: redis::FromRedisValue>(&self, command: Command<'_>) -> Option<T> {
        if self.paused() {
            return None;
        }
        let mut tries = 0;
        let why = loop {
            tries += 1;
            let mut connection = self.connection.clone();
            let sent = async {
                match command {
                    Command::One(cmd) => cmd.query_async::<T>(&mut connection).await,
                    Command::Pipeline(pipe) => pipe.query_async::<T>(&mut connection).await,
                }
            };
            match tokio::time::timeout(COMMAND_TIMEOUT, sent).await {
                Ok(Ok(value)) => {
                    self.succeeded();
                    return Some(value);
                }
                Ok(Err(e)) if tries < 2 && !e.is_timeout() => continue,
                Ok(Err(e)) => break e.to_string(),
                Err(_) => break format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()),
            }
        };
        self.failed(&why);
        None
    }

    /// The stored answers of `keys`, in order: `None` for a miss, an answer older than
    /// `ttl`, or a server that does not answer.
    pub async fn get_many(
        &self,
        keys: &[CacheKey],
        ttl: Option<Duration>,
    ) -> Vec<Option<ChatAnswer>> {
        let mut answers = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MGET_KEYS) {
            let names: Vec<String> = chunk.iter().map(redis_key).collect();
            let mut mget = redis::cmd("MGET");
            mget.arg(&names);
            let values = self.run::<Vec<Option<Vec<u8>>>>(Command::One(&mget)).await;
            match values {
                Some(values) if values.len() == chunk.len() => answers.extend(
                    values
                        .iter()
                        .map(|value| value.as_deref().and_then(|b| entry::decode(b, ttl))),
                ),
                _ => answers.extend(std::iter::repeat_n(None, chunk.len())),
            }
        }
        answers
    }

    /// Writes `answers` (encoded values) in one round trip; whether the server took
    /// them.
    pub async fn put_many(&self, answers: &[(CacheKey, Vec<u8>)]) -> bool {
        if answers.is_empty() {
            return true;
        }
        let mut pipe = redis::pipe();
        for (key, bytes) in answers {
            pipe.cmd("SET")
                .arg(redis_key(key))
                .arg(bytes.as_slice())
                .ignore();
        }
        self.run::<()>(Command::Pipeline(&pipe)).await.is_some()
    }
}
