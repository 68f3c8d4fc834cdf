//! What both stores keep for one request: its key (a SHA-256 of the provider identity
//! and the request body) and its value (the answer and its token usage, as JSON, with
//! the time it was stored). Neither holds the API key. The same bytes go to the redb
//! file and to Redis, so an answer means the same wherever it was kept.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::provider::{ChatAnswer, TokenUsage};

/// The cache key of one request: SHA-256 of the provider identity and the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `body` (the request exactly as serialized) sent to `chat_url` for
    /// `model`. The API key is not part of it.
    pub fn new(chat_url: &str, model: &str, body: &str) -> Self {
        let mut hash = Sha256::new();
        for part in [chat_url, model, body] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        Self(hash.finalize().into())
    }

    /// The hash itself, as the redb table keys it.
    pub(super) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash in lower-case hex, as the Redis key ends.
    pub fn hex(&self) -> String {
        use fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
    }
}

/// What is stored for one request.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<StoredUsage>,
    stored_at_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// The stored value of `answer`, stamped now; `None` if it cannot be encoded.
pub(super) fn encode(answer: &ChatAnswer) -> Option<Vec<u8>> {
    let stored = Stored {
        content: answer.content.clone(),
        usage: answer.usage.map(|u| StoredUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }),
        stored_at_ms: now_ms(),
    };
    serde_json::to_vec(&stored).ok()
}

/// The answer a stored value holds, unless it is older than `ttl` or unreadable (both
/// count as a miss: the request is asked again and its answer overwrites this one).
pub(super) fn decode(bytes: &[u8], ttl: Option<Duration>) -> Option<ChatAnswer> {
    let stored: Stored = serde_json::from_slice(bytes).ok()?;
    if let Some(ttl) = ttl {
        let age = now_ms().saturating_sub(stored.stored_at_ms);
        if u128::from(age) > ttl.as_millis() {
            return None;
        }
    }
    Some(ChatAnswer {
        content: stored.content,
        usage: stored.usage.map(|u| TokenUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a cache could not be used.
#[derive(Debug)]
pub enum CacheOpenError {
    /// Another process has the file open.
    InUse(PathBuf),
    /// The directory or file could not be made or read.
    Io(PathBuf, String),
    /// The Redis server could not be reached or refused us: its URL (password redacted)
    /// and why (password scrubbed).
    Redis(String, String),
}

impl fmt::Display for CacheOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InUse(path) => write!(
                f,
                "the response cache {} is in use by another process",
                path.display()
            ),
            Self::Io(path, why) => {
                write!(f, "cannot use the response cache {}: {why}", path.display())
            }
            Self::Redis(url, why) => write!(
                f,
                "cannot use the response cache {url} (blossom.cache): {why}"
            ),
        }
    }
}

impl std::error::Error for CacheOpenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_url_model_and_body() {
        let k = CacheKey::new("http://a/v1", "m", "{}");
        assert_eq!(k, CacheKey::new("http://a/v1", "m", "{}"));
        assert_ne!(k, CacheKey::new("http://b/v1", "m", "{}"));
        assert_ne!(k, CacheKey::new("http://a/v1", "n", "{}"));
        assert_ne!(k, CacheKey::new("http://a/v1", "m", "{ }"));
        assert_ne!(
            CacheKey::new("ab", "c", ""),
            CacheKey::new("a", "bc", ""),
            "parts are delimited"
        );
        assert_eq!(k.hex().len(), 64);
        assert!(k.hex().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn a_value_round_trips_and_expires() {
        let answer = ChatAnswer {
            content: "POSITIVE".to_string(),
            usage: Some(TokenUsage {
                prompt_tokens: 3,
                completion_tokens: 1,
            }),
        };
        let bytes = encode(&answer).unwrap();
        assert_eq!(decode(&bytes, None), Some(answer.clone()));
        assert_eq!(decode(&bytes, Some(Duration::from_secs(60))), Some(answer));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(decode(&bytes, Some(Duration::from_millis(1))), None);
        assert_eq!(decode(b"not json", None), None);
    }
}
