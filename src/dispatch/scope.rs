//! [`CallScope`]: the front of the request pipeline for one AI call in one partition.
//! A request goes through the query's memo (identical requests of a query are sent
//! once), then the response cache (answers kept across queries and processes), then the
//! dispatcher (budget, limits, retries, provider); a fresh answer is stored in the cache
//! as soon as it arrives, and the row waits until it is kept. Packing and embedding
//! batches enter here too
//! ([`super::packing`], [`super::embedding`]).

use std::sync::Arc;

use tracing::Instrument;

use super::budget::estimate_tokens;
use super::{
    AnswerMemo, Answered, CacheKey, CacheStore, CallError, Dispatcher, QueryControl, StopReason,
};
use crate::config::{OnError, ProviderSettings};
use crate::observe::CallObserver;
use crate::provider::{ChatAnswer, ChatRequest, EmbeddingAnswer, EmbeddingRequest, ProviderError};

/// The result of one request, shared by every row that asked it.
pub type AnswerResult = std::result::Result<Arc<ChatAnswer>, Arc<CallError>>;

/// What the requests of one AI call share: the session's dispatcher, the query's memo,
/// budget and stop signal, the settings in force when the query started, and the
/// observer its events go to.
#[derive(Clone)]
pub struct CallScope {
    /// The session's dispatcher.
    pub dispatcher: Arc<Dispatcher>,
    /// The query's answers, deduplicated by request.
    pub memo: Arc<AnswerMemo>,
    /// The settings in force.
    pub settings: Arc<ProviderSettings>,
    /// The query's budget and stop signal.
    pub query: QueryControl,
    /// The query's number in its session, for spans.
    pub query_id: u64,
    /// The AI function's SQL name, for spans and messages.
    pub function: &'static str,
    /// Where the call's events are recorded.
    pub events: Arc<dyn CallObserver>,
    /// Only estimating (`blossom_estimate`): answers come from the response cache or
    /// are [`CallError::DryRun`], and nothing is sent.
    pub dry_run: bool,
}

impl std::fmt::Debug for CallScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallScope")
            .field("query_id", &self.query_id)
            .field("function", &self.function)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// Where a request's answer is remembered: the query's memo and the response cache.
pub(super) struct RequestKeys {
    pub memo: String,
    pub cache: CacheKey,
}

impl CallScope {
    /// The answer to `request`: from the query's memo when another row asked the same,
    /// from the persistent response cache when it holds one, otherwise sent and stored
    /// in the cache as soon as it arrives (errors are never stored).
    pub async fn answer(&self, request: &ChatRequest) -> AnswerResult {
        let keys = self.keys(request)?;
        let scope = self.clone();
        let request = request.clone();
        let span = self.span();
        let (result, shared) = self
            .memo
            .get_or_call(
                keys.memo.clone(),
                async move {
                    scope.events.unique_prompt();
                    let cache = scope.cache().await;
                    if let Some(answer) = scope.cached(cache.as_ref(), &keys.cache).await {
                        return Ok(answer);
                    }
                    if scope.dry_run {
                        scope.not_sent(request.prompt_chars(), request.max_tokens, false);
                        return Err(CallError::DryRun);
                    }
                    let result = scope.send(&request).await;
                    if let Ok(answer) = &result {
                        scope.store(cache.as_ref(), &[(keys.cache, answer)]).await;
                    }
                    result
                }
                .instrument(span),
            )
            .await;
        if shared {
            self.events.dedup_hit();
        }
        result
    }

    /// Reports a request a dry run does not send: its characters, and the cost of its
    /// prompt and longest answer (`max_answer_tokens`, 0 when unset) at the price of
    /// the chat model, or of the embedding model when `embedding`.
    pub(super) fn not_sent(
        &self,
        prompt_chars: usize,
        max_answer_tokens: Option<u32>,
        embedding: bool,
    ) {
        let price = if embedding {
            self.settings.embedding_price
        } else {
            self.settings.price
        };
        let estimate = estimate_tokens(prompt_chars, max_answer_tokens);
        self.events.not_sent(
            prompt_chars,
            price.map(|p| p.cost_nanos(estimate.prompt_tokens, estimate.completion_tokens)),
        );
    }

    /// The keys of a chat request: for the query's memo and for the response cache.
    pub(super) fn keys(&self, request: &ChatRequest) -> Result<RequestKeys, Arc<CallError>> {
        self.keys_at(&self.settings.chat_url, &request.model, request)
    }

    /// The keys of one text's embedding.
    pub(super) fn embedding_keys(
        &self,
        single: &EmbeddingRequest,
    ) -> Result<RequestKeys, Arc<CallError>> {
        self.keys_at(&self.settings.embeddings_url, &single.model, single)
    }

    /// The keys of `request` sent to `url`: its JSON is the memo's key (with the URL)
    /// and, with URL and model, the cache's.
    fn keys_at(
        &self,
        url: &str,
        model: &str,
        request: &impl serde::Serialize,
    ) -> Result<RequestKeys, Arc<CallError>> {
        let body = serde_json::to_string(request).map_err(|e| {
            Arc::new(CallError::Failed {
                attempts: 0,
                error: ProviderError::Malformed {
                    detail: format!("request could not be encoded: {e}"),
                },
            })
        })?;
        Ok(RequestKeys {
            cache: CacheKey::new(url, model, &body),
            memo: format!("{url}\n{body}"),
        })
    }

    /// The span every request of one call runs in.
    pub(super) fn span(&self) -> tracing::Span {
        tracing::debug_span!(
            "ai_call",
            query_id = self.query_id,
            function = self.function,
        )
    }

    /// The session's response cache, opened on first use; `None` when it is off or
    /// could not be opened.
    pub(super) async fn cache(&self) -> Option<CacheStore> {
        self.dispatcher.cache_for(&self.settings).await
    }

    /// The cached answer of a request, counted as a cache hit.
    pub(super) async fn cached(
        &self,
        cache: Option<&CacheStore>,
        key: &CacheKey,
    ) -> Option<ChatAnswer> {
        let answer = cache?.get(key, self.settings.cache_ttl).await?;
        self.events.cache_hit();
        tracing::debug!("answered from the response cache");
        Some(answer)
    }

    /// The cached answers of many requests, in order, each hit counted.
    pub(super) async fn cached_many(
        &self,
        cache: Option<&CacheStore>,
        keys: &[CacheKey],
    ) -> Vec<Option<ChatAnswer>> {
        let Some(cache) = cache else {
            return vec![None; keys.len()];
        };
        let answers = cache.get_many(keys, self.settings.cache_ttl).await;
        let hits = answers.iter().filter(|a| a.is_some()).count();
        for _ in 0..hits {
            self.events.cache_hit();
        }
        if hits > 0 {
            tracing::debug!(hits, "answered from the response cache");
        }
        answers
    }

    /// Stores fresh answers in the response cache, if there is one, and returns once
    /// they are kept; counts each as paid for without the cache when one was asked for
    /// but could not be opened, or could not keep it.
    pub(super) async fn store(
        &self,
        cache: Option<&CacheStore>,
        answers: &[(CacheKey, &ChatAnswer)],
    ) {
        let kept = match cache {
            Some(cache) => cache.put_many(answers).await,
            None => self.settings.cache.is_none(),
        };
        if !kept {
            for _ in answers {
                self.events.answer_not_cached();
            }
        }
    }

    /// Sends a request through the dispatcher.
    pub(super) async fn send(&self, request: &ChatRequest) -> Result<ChatAnswer, CallError> {
        let result = self
            .dispatcher
            .call(&self.settings, request, &self.query, &*self.events)
            .await;
        self.stop_on_failed_request(&result);
        result.map(|answered| answered.answer)
    }

    /// Sends an embeddings request through the dispatcher.
    pub(super) async fn send_embeddings(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<EmbeddingAnswer, CallError> {
        let result = self
            .dispatcher
            .embed(&self.settings, request, &self.query, &*self.events)
            .await;
        self.stop_on_failed_request(&result);
        result.map(|answered| answered.answer)
    }

    /// Under `blossom.on_error = 'fail'`, a request that failed for good fails its rows,
    /// so it stops the query at once, before the rest of the batch is answered.
    fn stop_on_failed_request<T>(&self, result: &Result<Answered<T>, CallError>) {
        if self.dry_run || self.settings.on_error != OnError::Fail {
            return;
        }
        if let Err(error @ CallError::Failed { .. }) = result {
            let message = format!("{}() failed: {error}", self.function);
            self.query.stop.stop(StopReason::RowFailed(message));
        }
    }
}
