//! Claiming a row's request in the query's memo before its answer is known: the row that
//! claims first must get the request answered (alone, packed with others, or batched
//! for embeddings); every other row asking the same shares that answer. Used where rows
//! are answered together rather than one request each.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::CallError;
use super::scope::{AnswerResult, CallScope, RequestKeys};
use crate::provider::{ChatAnswer, ProviderError};

/// A row's claim: the future of its answer, and, when nothing answers it yet (no earlier
/// request of the query, no cached answer), the duty to get it answered.
pub(super) struct Claim {
    pub answer: BoxFuture<'static, AnswerResult>,
    pub ask: Option<Ask>,
}

/// The duty to answer one claimed request.
pub(super) struct Ask {
    keys: RequestKeys,
    sender: oneshot::Sender<Result<ChatAnswer, CallError>>,
}

impl Ask {
    /// Answers the claimed request (storing a success in the response cache).
    pub(super) fn answer(self, scope: &CallScope, result: Result<ChatAnswer, CallError>) {
        if let Ok(answer) = &result {
            scope.store(self.keys, answer);
        }
        // The row's future is gone only if the query was abandoned.
        let _ = self.sender.send(result);
    }
}

/// Claims the request with `keys`, counting the row as a dedup hit, a unique prompt, and
/// a cache hit as it turns out.
pub(super) fn claim(scope: &CallScope, keys: Result<RequestKeys, Arc<CallError>>) -> Claim {
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
    if let Some(cached) = scope.cached(&keys) {
        let _ = sender.send(Ok(cached));
        return Claim { answer, ask: None };
    }
    Claim {
        answer,
        ask: Some(Ask { keys, sender }),
    }
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
