//! Claiming a row's request in the query's memo before its answer is known: the row that
//! claims first must get the request answered (alone, packed with others, or batched
//! for embeddings); every other row asking the same shares that answer. Used where rows
//! are answered together rather than one request each: rows are claimed first, then
//! looked up in the response cache together, then the rest asked.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::scope::{AnswerResult, CallScope, RequestKeys};
use super::{CacheKey, CacheStore, CallError};
use crate::provider::{ChatAnswer, ProviderError};

/// A row's claim: the future of its answer, and, when no earlier request of the query
/// answers it, the duty to get it answered (from the response cache, see
/// [`answer_cached`], or by asking).
pub(super) struct Claim {
    pub answer: BoxFuture<'static, AnswerResult>,
    pub ask: Option<Ask>,
}

/// The duty to answer one claimed request.
pub(super) struct Ask {
    key: CacheKey,
    cache: Option<CacheStore>,
    sender: oneshot::Sender<Result<ChatAnswer, CallError>>,
}

impl Ask {
    /// Answers the claimed request (storing a success in the response cache first).
    pub(super) async fn answer(self, scope: &CallScope, result: Result<ChatAnswer, CallError>) {
        answer_all(scope, vec![(self, result)]).await;
    }
}

/// Answers claimed requests: the successes are stored in the response cache together
/// (one round trip to Redis), and each row gets its answer once it is kept.
pub(super) async fn answer_all(
    scope: &CallScope,
    answers: Vec<(Ask, Result<ChatAnswer, CallError>)>,
) {
    let fresh: Vec<(CacheKey, &ChatAnswer)> = answers
        .iter()
        .filter_map(|(ask, result)| result.as_ref().ok().map(|answer| (ask.key, answer)))
        .collect();
    if !fresh.is_empty() {
        let cache = answers.first().and_then(|(ask, _)| ask.cache.as_ref());
        scope.store(cache, &fresh).await;
    }
    for (ask, result) in answers {
        // The row's future is gone only if the query was abandoned.
        let _ = ask.sender.send(result);
    }
}

/// Claims the request with `keys` in the query's memo, counting the row as a dedup hit
/// or a unique prompt; `cache` is where its answer will be looked up and kept.
pub(super) fn claim(
    scope: &CallScope,
    keys: Result<RequestKeys, Arc<CallError>>,
    cache: Option<&CacheStore>,
) -> Claim {
    let keys = match keys {
        Ok(keys) => keys,
        // A request that cannot even be keyed fails its row alone.
        Err(error) => {
            return Claim {
                answer: futures::future::ready(Err(error)).boxed(),
                ask: None,
            };
        }
    };
    let (sender, receiver) = oneshot::channel();
    let (answer, shared) = scope.memo.claim(keys.memo.clone(), async move {
        receiver.await.unwrap_or_else(|_| {
            Err(CallError::Failed {
                attempts: 0,
                error: ProviderError::Malformed {
                    detail: "the request of this row was abandoned".to_string(),
                },
            })
        })
    });
    let answer = answer.boxed();
    if shared {
        scope.events.dedup_hit();
        return Claim { answer, ask: None };
    }
    scope.events.unique_prompt();
    Claim {
        answer,
        ask: Some(Ask {
            key: keys.cache,
            cache: cache.cloned(),
            sender,
        }),
    }
}

/// Answers from the response cache the claimed requests it holds, looked up together
/// (one round trip to Redis per few hundred), counting each hit; returns the others,
/// still to be asked. `ask_of` finds an item's claim.
pub(super) async fn answer_cached<T>(
    scope: &CallScope,
    claimed: Vec<T>,
    ask_of: impl Fn(&T) -> &Ask,
    into_ask: impl Fn(T) -> Ask,
) -> Vec<T> {
    let Some(cache) = claimed.first().and_then(|item| ask_of(item).cache.clone()) else {
        return claimed;
    };
    let keys: Vec<CacheKey> = claimed.iter().map(|item| ask_of(item).key).collect();
    let cached = scope.cached_many(Some(&cache), &keys).await;
    let mut unanswered = Vec::new();
    for (item, cached) in claimed.into_iter().zip(cached) {
        match cached {
            Some(answer) => {
                let _ = into_ask(item).sender.send(Ok(answer));
            }
            None => unanswered.push(item),
        }
    }
    unanswered
}

/// Starts `task` (answering claimed requests) on its own, in the call's span.
pub(super) fn spawn(task: BoxFuture<'static, ()>, scope: &CallScope) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(task.instrument(scope.span())))
}

/// The answers of rows (`None` where a row needs none), awaited together.
pub(super) async fn await_answers(
    pending: Vec<Option<BoxFuture<'_, AnswerResult>>>,
) -> Vec<Option<AnswerResult>> {
    join_all(pending.into_iter().map(|answer| async move {
        match answer {
            Some(answer) => Some(answer.await),
            None => None,
        }
    }))
    .await
}

/// A task answering claimed requests (a pack, an embeddings batch), stopped when the
/// batch that started it is dropped: its rows then get no answer, and any row of the
/// same query waiting on them is being dropped too, since the memo is per query.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
