//! [`Provider`]: the seam between the request pipeline and a wire protocol.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    ChatAnswer, ChatClient, ChatRequest, EmbeddingAnswer, EmbeddingRequest, ProviderError,
};
use crate::config::ApiKey;

/// A model provider: sends one chat or embeddings request and classifies what comes
/// back. The pipeline retries, limits and caches around it.
#[async_trait]
pub trait Provider: std::fmt::Debug + Send + Sync {
    /// Sends a chat request to `url`.
    async fn complete(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        request: &ChatRequest,
    ) -> Result<ChatAnswer, ProviderError>;

    /// Sends an embeddings request to `url`.
    async fn embed(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        request: &EmbeddingRequest,
    ) -> Result<EmbeddingAnswer, ProviderError>;
}

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
