//! Rows of `embed()`: their texts go many to an embeddings request (`POST /embeddings`,
//! whose answer gives one vector per input by index, so nothing can be misassigned).
//! Each text still has its own place in the query's memo and the response cache, where
//! its vector is kept as a JSON array.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, join, join_all};
use tracing::Instrument;

use super::ai_call::{AnswerResult, CallRuntime, RequestKeys, Row};
use super::claim::{Ask, claim};
use crate::dispatch::{CacheKey, CallError};
use crate::provider::{ChatAnswer, EmbeddingRequest, ProviderError};
use crate::query_metrics::FunctionMetrics;

/// Texts per embeddings request.
pub(super) const INPUTS_PER_REQUEST: usize = 64;

/// The vectors of `rows` (`None` where a row needs none), as JSON arrays in
/// [`ChatAnswer::content`]. A row's request holds the model and, as its last message,
/// the text; `dimensions` is sent when the call names it.
pub(super) async fn answers(
    rows: &[Option<Row>],
    dimensions: Option<u32>,
    runtime: &CallRuntime,
    metrics: &Arc<FunctionMetrics>,
) -> Vec<Option<AnswerResult>> {
    let mut pending: Vec<Option<BoxFuture<'_, AnswerResult>>> = Vec::with_capacity(rows.len());
    let mut to_ask: Vec<(EmbeddingRequest, Ask)> = Vec::new();
    for row in rows {
        let Some(row) = row else {
            pending.push(None);
            continue;
        };
        let text = row
            .request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let single = EmbeddingRequest {
            model: row.request.model.clone(),
            input: vec![text],
            dimensions,
        };
        let keys = match keys(runtime, &single) {
            Ok(keys) => keys,
            Err(error) => {
                pending.push(Some(futures::future::ready(Err(error)).boxed()));
                continue;
            }
        };
        let claim = claim(runtime, keys, metrics);
        pending.push(Some(claim.answer));
        if let Some(ask) = claim.ask {
            to_ask.push((single, ask));
        }
    }
    let mut batches: Vec<Vec<(EmbeddingRequest, Ask)>> = Vec::new();
    for (single, ask) in to_ask {
        match batches
            .iter_mut()
            .find(|b| b.len() < INPUTS_PER_REQUEST && b[0].0.model == single.model)
        {
            Some(batch) => batch.push((single, ask)),
            None => batches.push(vec![(single, ask)]),
        }
    }
    let asking = join_all(
        batches
            .into_iter()
            .map(|batch| ask(batch, dimensions, runtime, metrics)),
    );
    let answering = join_all(pending.into_iter().map(|answer| async move {
        match answer {
            Some(answer) => Some(answer.await),
            None => None,
        }
    }));
    join(asking, answering).await.1
}

/// The memo and cache keys of one text's embedding.
fn keys(runtime: &CallRuntime, single: &EmbeddingRequest) -> Result<RequestKeys, Arc<CallError>> {
    let body = serde_json::to_string(single).map_err(|e| {
        Arc::new(CallError::Failed {
            attempts: 0,
            error: ProviderError::Malformed {
                detail: format!("request could not be encoded: {e}"),
            },
        })
    })?;
    let url = &runtime.settings.embeddings_url;
    Ok(RequestKeys {
        memo: format!("{url}\n{body}"),
        cache: runtime
            .dispatcher
            .cache_for(&runtime.settings)
            .map(|cache| (cache, CacheKey::new(url, &single.model, &body))),
    })
}

/// Asks one embeddings request for a batch of texts and answers each.
async fn ask(
    batch: Vec<(EmbeddingRequest, Ask)>,
    dimensions: Option<u32>,
    runtime: &CallRuntime,
    metrics: &Arc<FunctionMetrics>,
) {
    let Some(model) = batch.first().map(|(single, _)| single.model.clone()) else {
        return;
    };
    let (inputs, asks): (Vec<String>, Vec<Ask>) = batch
        .into_iter()
        .map(|(mut single, ask)| (single.input.pop().unwrap_or_default(), ask))
        .unzip();
    let request = EmbeddingRequest {
        model,
        input: inputs,
        dimensions,
    };
    if runtime.dry_run {
        metrics.not_sent(request.input.iter().map(|t| t.chars().count()).sum());
        for ask in asks {
            ask.answer(runtime, Err(CallError::DryRun));
        }
        return;
    }
    let result = runtime
        .send_embeddings(&request, metrics)
        .instrument(runtime.span(metrics))
        .await;
    match result {
        Ok(answer) => {
            for (ask, vector) in asks.into_iter().zip(answer.vectors) {
                let content = serde_json::to_string(&vector).map_err(|e| CallError::Failed {
                    attempts: 1,
                    error: ProviderError::Malformed {
                        detail: format!("an embedding could not be kept: {e}"),
                    },
                });
                ask.answer(
                    runtime,
                    content.map(|content| ChatAnswer {
                        content,
                        usage: None,
                    }),
                );
            }
        }
        Err(error) => {
            for ask in asks {
                ask.answer(runtime, Err(error.clone()));
            }
        }
    }
}
