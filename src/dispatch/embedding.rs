//! Rows of `embed()`: their texts go many to an embeddings request (`POST /embeddings`,
//! whose answer gives one vector per input by index, so nothing can be misassigned).
//! Each text still has its own place in the query's memo and the response cache, where
//! its vector is kept as a JSON array.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};

use super::CallError;
use super::claim::{AbortOnDrop, Ask, answer_all, answer_cached, await_answers, claim, spawn};
use super::scope::{AnswerResult, CallScope};
use crate::provider::{ChatAnswer, ChatRequest, EmbeddingRequest, ProviderError};

/// Texts per embeddings request.
pub const INPUTS_PER_REQUEST: usize = 64;

/// Most characters of text in one embeddings request.
const MAX_BATCH_CHARS: usize = 100_000;

/// The vectors of `rows` (`None` where a row needs none), as JSON arrays in
/// [`ChatAnswer::content`]. A row's request holds the model and, as its last message,
/// the text; `dimensions` is sent when the call names it.
pub async fn answers(
    rows: &[Option<&ChatRequest>],
    dimensions: Option<u32>,
    scope: &CallScope,
) -> Vec<Option<AnswerResult>> {
    let mut pending: Vec<Option<BoxFuture<'_, AnswerResult>>> = Vec::with_capacity(rows.len());
    let mut to_ask: Vec<(EmbeddingRequest, Ask)> = Vec::new();
    let cache = scope.cache().await;
    for row in rows {
        let Some(row) = row else {
            pending.push(None);
            continue;
        };
        let text = row
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let single = EmbeddingRequest {
            model: row.model.clone(),
            input: vec![text],
            dimensions,
        };
        let claim = claim(scope, scope.embedding_keys(&single), cache.as_ref());
        pending.push(Some(claim.answer));
        if let Some(ask) = claim.ask {
            to_ask.push((single, ask));
        }
    }
    let to_ask = answer_cached(scope, to_ask, |(_, ask)| ask, |(_, ask)| ask).await;
    // Texts fill the open batch of their model until it is full, in row order.
    let mut batches: Vec<Vec<(EmbeddingRequest, Ask)>> = Vec::new();
    let mut open: HashMap<String, (usize, usize)> = HashMap::new(); // model -> (batch, chars)
    for (single, ask) in to_ask {
        let text_chars = single.input_chars();
        let fits = |&(batch, chars): &(usize, usize)| {
            batches[batch].len() < INPUTS_PER_REQUEST && chars + text_chars <= MAX_BATCH_CHARS
        };
        let slot = match open.get(&single.model).copied().filter(fits) {
            Some((batch, chars)) => (batch, chars + text_chars),
            None => {
                batches.push(Vec::new());
                (batches.len() - 1, text_chars)
            }
        };
        open.insert(single.model.clone(), slot);
        batches[slot.0].push((single, ask));
    }
    // Batches run as tasks of their own: a row of another batch or partition sharing
    // one of these texts must not depend on who polls this batch.
    let _tasks: Vec<AbortOnDrop> = batches
        .into_iter()
        .map(|batch| {
            let task = ask(batch, dimensions, scope.clone());
            spawn(task, scope)
        })
        .collect();
    await_answers(pending).await
}

/// Asks one embeddings request for a batch of texts and answers each; a batch refused
/// for its content ([`ProviderError::rejects_request`]) is split in halves, so one bad
/// text does not fail the others.
fn ask(
    batch: Vec<(EmbeddingRequest, Ask)>,
    dimensions: Option<u32>,
    scope: CallScope,
) -> BoxFuture<'static, ()> {
    async move {
        let Some(model) = batch.first().map(|(single, _)| single.model.clone()) else {
            return;
        };
        let request = EmbeddingRequest {
            model,
            input: batch
                .iter()
                .map(|(single, _)| single.input.first().cloned().unwrap_or_default())
                .collect(),
            dimensions,
        };
        if scope.dry_run {
            scope.not_sent(request.input_chars(), None, true);
            let answers = batch
                .into_iter()
                .map(|(_, ask)| (ask, Err(CallError::DryRun)))
                .collect();
            answer_all(&scope, answers).await;
            return;
        }
        match scope.send_embeddings(&request).await {
            Ok(answer) => {
                let mut answers = Vec::with_capacity(batch.len());
                for ((_, ask), vector) in batch.into_iter().zip(answer.vectors) {
                    let content = serde_json::to_string(&vector).map_err(|e| CallError::Failed {
                        attempts: 1,
                        error: ProviderError::Malformed {
                            detail: format!("an embedding could not be kept: {e}"),
                        },
                    });
                    answers.push((
                        ask,
                        content.map(|content| ChatAnswer {
                            content,
                            usage: None,
                        }),
                    ));
                }
                answer_all(&scope, answers).await;
            }
            Err(CallError::Failed { error, .. }) if batch.len() > 1 && error.rejects_request() => {
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                join_all([
                    ask(first, dimensions, scope.clone()),
                    ask(second, dimensions, scope.clone()),
                ])
                .await;
            }
            Err(error) => {
                let answers = batch
                    .into_iter()
                    .map(|(_, ask)| (ask, Err(error.clone())))
                    .collect();
                answer_all(&scope, answers).await;
            }
        }
    }
    .boxed()
}
