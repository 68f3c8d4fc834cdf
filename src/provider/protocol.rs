//! The [`Provider`] trait: the one attempt at a chat completion or an embeddings request
//! the dispatcher asks of a provider, whatever protocol carries it. [`ChatClient`]
//! speaks OpenAI-compatible HTTP; another wire protocol, a batch API or a test double
//! implements the same trait and plugs in without the pipeline changing.
//!
//! [`ChatClient`]: super::ChatClient

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use super::client::ChatClient;
use super::embeddings::{EmbeddingAnswer, EmbeddingRequest};
use super::error::ProviderError;
use super::types::{ChatAnswer, ChatRequest};
use crate::config::ApiKey;

/// Sends one request to a provider and reads its answer. The dispatcher around it
/// limits concurrency and rate, retries, keeps the circuit breaker, deduplicates and
/// caches: an implementation makes exactly one attempt per call and decides none of
/// that, but it must give the dispatcher what those decisions need.
///
/// What every implementation guarantees:
///
/// - **One attempt, bounded.** A call sends the request once and returns within
///   `timeout` (then [`ProviderError::Timeout`]); it neither retries nor caches.
///   Dropping the future abandons the attempt (a query's stop does so), so it holds no
///   state that a drop would leave inconsistent.
/// - **The request as given.** `request` is the function's, whose serialized JSON is
///   also the memo and cache key; an implementation translates it into its protocol
///   (the [`ChatRequest::response_format`] through its own terms, as
///   [`AnswerFormat::to_wire`](super::AnswerFormat::to_wire) does for OpenAI) and does
///   not change what it asks.
/// - **Secrets never come back.** `api_key` goes only where the protocol carries
///   credentials (never logged, sensitive in headers). Everything read back from the
///   endpoint, the answer's content and every error's message or detail, has the key
///   and any bearer or basic credential scrubbed ([`crate::redact::scrub`]) before it
///   is returned: answers are stored in the cache, errors in `blossom_errors()` and
///   logs.
/// - **Errors classified.** Every failure is the [`ProviderError`] variant that says
///   what happened (no answer in time, no connection, a connection that broke, a
///   refusal with its status, a success that cannot be read, an empty answer), because
///   the dispatcher decides on it alone: [`ProviderError::is_retryable`],
///   [`ProviderError::refuses_account`] (the query stops),
///   [`ProviderError::is_unreachable`] (the breaker), [`ProviderError::rejects_request`]
///   (a packed or batched request is split), [`ProviderError::refuses_json_schema`]
///   (asked again in JSON object mode) and [`ProviderError::class`]. A protocol
///   without HTTP statuses reports its refusals as the status that means the same.
/// - **Retry-After parsed.** A provider asking to be called later has the wait in
///   [`ProviderError::Status`]'s `retry_after` (the header or the body, as
///   [`parse_retry_after`](super::parse_retry_after) reads them, capped): the whole
///   session then waits that long.
/// - **Whole answers only.** A [`ChatAnswer`]'s content is never blank (a blank one is
///   [`ProviderError::EmptyAnswer`]); an [`EmbeddingAnswer`] has one non-empty vector
///   per input, in input order (otherwise [`ProviderError::Malformed`] or
///   [`ProviderError::EmptyAnswer`]). Token usage is given when the provider reports
///   it, for budgets and metrics.
#[async_trait]
pub trait Provider: Debug + Send + Sync {
    /// Sends one chat request to `url` with `api_key` and reads the answer's text and
    /// token usage.
    async fn complete(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        request: &ChatRequest,
    ) -> Result<ChatAnswer, ProviderError>;

    /// Sends one embeddings request to `url` with `api_key` and reads one vector per
    /// input.
    async fn embed(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        request: &EmbeddingRequest,
    ) -> Result<EmbeddingAnswer, ProviderError>;
}

/// OpenAI-compatible HTTP: `POST` of the request's JSON, a bearer token.
#[async_trait]
impl Provider for ChatClient {
    async fn complete(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        request: &ChatRequest,
    ) -> Result<ChatAnswer, ProviderError> {
        ChatClient::complete(self, url, api_key, timeout, request).await
    }

    async fn embed(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        request: &EmbeddingRequest,
    ) -> Result<EmbeddingAnswer, ProviderError> {
        ChatClient::embed(self, url, api_key, timeout, request).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::provider::ChatMessage;

    /// A test double: answers from a script and records what it was asked.
    #[derive(Debug, Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<ChatAnswer, ProviderError>>>,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Provider for Scripted {
        async fn complete(
            &self,
            url: &str,
            _api_key: &ApiKey,
            _timeout: Duration,
            request: &ChatRequest,
        ) -> Result<ChatAnswer, ProviderError> {
            let asked = format!("{url} {}", request.messages.len());
            self.asked.lock().expect("not poisoned").push(asked);
            self.answers
                .lock()
                .expect("not poisoned")
                .pop()
                .unwrap_or(Err(ProviderError::EmptyAnswer))
        }

        async fn embed(
            &self,
            _url: &str,
            _api_key: &ApiKey,
            _timeout: Duration,
            request: &EmbeddingRequest,
        ) -> Result<EmbeddingAnswer, ProviderError> {
            Ok(EmbeddingAnswer {
                vectors: vec![vec![1.0]; request.input.len()],
                usage: None,
            })
        }
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![ChatMessage::user("hi")],
            temperature: None,
            max_tokens: None,
            response_format: None,
        }
    }

    #[tokio::test]
    async fn a_double_plugs_in_where_the_http_client_does() {
        let double = Arc::new(Scripted::default());
        double
            .answers
            .lock()
            .expect("not poisoned")
            .push(Ok(ChatAnswer {
                content: "hello".into(),
                usage: None,
            }));
        let providers: [Arc<dyn Provider>; 2] = [
            Arc::new(ChatClient::new().expect("a client")),
            Arc::clone(&double) as Arc<dyn Provider>,
        ];
        let key = ApiKey::default();
        let scripted = &providers[1];
        let answer = scripted
            .complete("sim://chat", &key, Duration::from_secs(1), &request())
            .await;
        assert_eq!(answer.map(|a| a.content), Ok("hello".to_string()));
        let again = scripted
            .complete("sim://chat", &key, Duration::from_secs(1), &request())
            .await;
        assert_eq!(again, Err(ProviderError::EmptyAnswer));
        let embedded = scripted
            .embed(
                "sim://embeddings",
                &key,
                Duration::from_secs(1),
                &EmbeddingRequest {
                    model: "e".into(),
                    input: vec!["a".into(), "b".into()],
                    dimensions: None,
                },
            )
            .await
            .expect("vectors");
        assert_eq!(embedded.vectors.len(), 2);
        assert_eq!(
            *double.asked.lock().expect("not poisoned"),
            ["sim://chat 1", "sim://chat 1"]
        );
    }
}
