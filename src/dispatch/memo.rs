//! Single-flight deduplication within one query: identical requests are sent once and
//! every row that asked gets the same answer (or the same error).
//!
//! A request in flight belongs to the rows waiting for it: the memo keeps only a weak
//! handle on it, so when every row that asked is gone (the query was dropped, a `LIMIT`
//! needs no more), the request is dropped too, and with it the slot of the endpoint's
//! cap it held (locally and in the cluster's limiter), its connection, and its cost. A
//! row asking the same later sends it again. A finished answer is kept.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures::FutureExt;
use futures::future::{BoxFuture, Either, Shared, WeakShared};

/// What one deduplicated request resolves to; shared by every row that asked for it.
pub type SharedResult<T, E> = Result<std::sync::Arc<T>, std::sync::Arc<E>>;

type Pending<T, E> = Shared<BoxFuture<'static, SharedResult<T, E>>>;

/// An entry: a request in flight, held by the rows waiting for it, or its result.
enum Entry<T, E> {
    InFlight(WeakShared<BoxFuture<'static, SharedResult<T, E>>>),
    Done(SharedResult<T, E>),
}

/// The answers (and requests in flight) of one query, keyed by the exact request.
///
/// Holds at most `capacity` finished entries; the oldest are forgotten first, so a very
/// large query stays within bounded memory and deduplicates within that window.
pub struct QueryMemo<T, E> {
    entries: Arc<Mutex<Entries<T, E>>>,
    capacity: usize,
    hits: AtomicU64,
}

/// A key as the memo keeps it: its SHA-256, so that an entry costs 32 bytes of key
/// however long the request (a memo of 200,000 prompts would otherwise hold their text).
type Digest = [u8; 32];

fn digest(key: &str) -> Digest {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(key.as_bytes()).into()
}

struct Entries<T, E> {
    map: HashMap<Digest, Entry<T, E>>,
    order: VecDeque<Digest>,
}

impl<T, E> std::fmt::Debug for QueryMemo<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryMemo")
            .field("capacity", &self.capacity)
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: Send + Sync + 'static, E: Send + Sync + 'static> QueryMemo<T, E> {
    /// An empty memo keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Arc::new(Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
            })),
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
        }
    }

    /// The result for `key`: from an earlier or in-flight identical request when there
    /// is one, otherwise from running `call` (once, whoever else asks meanwhile). The
    /// flag says whether the result was shared rather than run here.
    pub async fn get_or_call<F>(&self, key: String, call: F) -> (SharedResult<T, E>, bool)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let (pending, shared) = self.claim(key, call);
        (pending.await, shared)
    }

    /// Like [`Self::get_or_call`], but decides at once, without waiting: the future of
    /// the result, and whether it is shared (then `call` is dropped unrun). Lets a caller
    /// claim many keys first and then decide how to answer the ones it got.
    pub fn claim<F>(
        &self,
        key: String,
        call: F,
    ) -> (
        impl Future<Output = SharedResult<T, E>> + Send + 'static,
        bool,
    )
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let key = digest(&key);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let known = match entries.map.get(&key) {
            Some(Entry::Done(result)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return (Either::Left(futures::future::ready(result.clone())), true);
            }
            Some(Entry::InFlight(weak)) => match weak.upgrade() {
                Some(pending) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return (Either::Right(self.recorded(key, pending)), true);
                }
                // Every row that asked is gone, and its request with them.
                None => true,
            },
            None => false,
        };
        let pending = call
            .map(|r| r.map(Arc::new).map_err(Arc::new))
            .boxed()
            .shared();
        if !known {
            if entries.order.len() >= self.capacity
                && let Some(oldest) = entries.order.pop_front()
            {
                entries.map.remove(&oldest);
            }
            entries.order.push_back(key);
        }
        if let Some(weak) = pending.downgrade() {
            entries.map.insert(key, Entry::InFlight(weak));
        }
        drop(entries);
        (Either::Right(self.recorded(key, pending)), false)
    }

    /// `pending`, whose result the first row to get it keeps in the memo.
    fn recorded(
        &self,
        key: Digest,
        pending: Pending<T, E>,
    ) -> impl Future<Output = SharedResult<T, E>> + Send + 'static {
        let entries: Weak<Mutex<Entries<T, E>>> = Arc::downgrade(&self.entries);
        async move {
            let result = pending.await;
            if let Some(entries) = entries.upgrade() {
                let mut entries = entries.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(entry) = entries.map.get_mut(&key)
                    && matches!(entry, Entry::InFlight(_))
                {
                    *entry = Entry::Done(result.clone());
                }
            }
            result
        }
    }

    /// How many requests were answered from the memo instead of being sent.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn identical_keys_run_once() {
        let memo: QueryMemo<String, String> = QueryMemo::new(10);
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..20).map(|i| {
            let runs = Arc::clone(&runs);
            memo.get_or_call(format!("k{}", i % 2), async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                Ok(format!("v{}", i % 2))
            })
        });
        let results = futures::future::join_all(calls).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(memo.hits(), 18);
        assert_eq!(results[3].0.as_ref().unwrap().as_str(), "v1");
        assert_eq!(results.iter().filter(|(_, shared)| *shared).count(), 18);
    }

    #[tokio::test]
    async fn a_request_nobody_waits_for_is_dropped_and_asked_again() {
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let memo: QueryMemo<u32, ()> = QueryMemo::new(10);
        let dropped = Arc::new(AtomicUsize::new(0));
        let guard = Dropped(Arc::clone(&dropped));
        let (first, shared) = memo.claim("k".to_string(), async move {
            let _guard = guard;
            futures::future::pending::<()>().await;
            Ok(1)
        });
        assert!(!shared);
        let (second, shared) = memo.claim("k".to_string(), async { Ok(2) });
        assert!(shared, "in flight: shared");
        drop(first);
        assert_eq!(dropped.load(Ordering::SeqCst), 0, "one row still waits");
        drop(second);
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "nobody waits: dropped");
        let (again, shared) = memo.get_or_call("k".to_string(), async { Ok(3) }).await;
        assert!(!shared);
        assert_eq!(*again.unwrap(), 3);
        let (kept, shared) = memo.get_or_call("k".to_string(), async { Ok(4) }).await;
        assert!(shared, "a finished answer is kept");
        assert_eq!(*kept.unwrap(), 3);
    }

    #[tokio::test]
    async fn oldest_entries_are_forgotten() {
        let memo: QueryMemo<u32, ()> = QueryMemo::new(2);
        for k in ["a", "b", "c"] {
            memo.get_or_call(k.to_string(), async { Ok(1) })
                .await
                .0
                .unwrap();
        }
        memo.get_or_call("a".to_string(), async { Ok(2) })
            .await
            .0
            .unwrap();
        assert_eq!(memo.hits(), 0, "'a' was evicted and asked again");
    }
}
