//! The HTTP calls of one chat completion or one embeddings request (reqwest with
//! rustls), and the mapping of every way they can go wrong onto [`ProviderError`].

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};

use super::embeddings::{EmbeddingAnswer, EmbeddingRequest, parse_embeddings};
use super::error::ProviderError;
use super::retry_after::parse_retry_after;
use super::text::{excerpt, truncate_chars};
use super::types::{ChatAnswer, ChatRequest, ChatResponse};
use crate::config::ApiKey;
use crate::redact::scrub;

/// The longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// The OpenAI-compatible [`Provider`](super::Provider): chat completions and embeddings
/// over HTTP. Cheap to clone; connections are pooled and reused.
#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
}

impl ChatClient {
    /// A client with a connection pool sized for many requests in flight.
    pub fn new() -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("blossom-sql/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ProviderError::Connect {
                url: String::new(),
                detail: format!("could not build the HTTP client: {e}"),
            })?;
        Ok(Self { http })
    }

    /// Sends one chat request to `url` and reads the answer's text and token usage.
    pub async fn complete(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        body: &ChatRequest,
    ) -> Result<ChatAnswer, ProviderError> {
        let text = self.post(url, api_key, timeout, body).await?;
        parse_answer(&text)
    }

    /// Sends one embeddings request to `url` and reads one vector per input.
    pub async fn embed(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        body: &EmbeddingRequest,
    ) -> Result<EmbeddingAnswer, ProviderError> {
        let text = self.post(url, api_key, timeout, body).await?;
        parse_embeddings(&text, body.input.len())
    }

    /// POSTs `body` as JSON and returns the body of a successful answer. Whatever the
    /// provider answers, a repeated key or bearer token is scrubbed from it before
    /// anything reads it.
    async fn post(
        &self,
        url: &str,
        api_key: &ApiKey,
        timeout: Duration,
        body: &impl serde::Serialize,
    ) -> Result<String, ProviderError> {
        let mut request = self.http.post(url).timeout(timeout).json(body);
        if let Some(key) = api_key.expose() {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ProviderError::Connect {
                    url: url.to_string(),
                    detail: "the API key holds characters an HTTP header cannot carry \
                             (check blossom.api_key)"
                        .to_string(),
                }
            })?;
            // Never logged by the HTTP stack, never indexed by HTTP/2 header compression.
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let secret = api_key.expose();
        let response = request
            .send()
            .await
            .map_err(|e| network_error(url, timeout, &e, secret))?;
        let status = response.status();
        let retry_after_header = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response
            .text()
            .await
            .map_err(|e| network_error(url, timeout, &e, secret))?;
        let text = scrub(&text, secret).into_owned();
        if !status.is_success() {
            return Err(ProviderError::Status {
                status: status.as_u16(),
                message: error_message(&text),
                retry_after: parse_retry_after(retry_after_header.as_deref(), &text),
            });
        }
        Ok(text)
    }
}

/// Reads a chat-completions body; an empty content is [`ProviderError::EmptyAnswer`].
pub(super) fn parse_answer(text: &str) -> Result<ChatAnswer, ProviderError> {
    let parsed: ChatResponse =
        serde_json::from_str(text).map_err(|e| ProviderError::Malformed {
            detail: format!("{e} in {}", excerpt(text)),
        })?;
    let content = parsed
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message)
        .and_then(|m| m.content)
        .ok_or_else(|| ProviderError::Malformed {
            detail: format!("no choices[0].message.content in {}", excerpt(text)),
        })?;
    if content.trim().is_empty() {
        return Err(ProviderError::EmptyAnswer);
    }
    Ok(ChatAnswer {
        content,
        usage: parsed.usage,
    })
}

/// The provider's own words from an error body: `error.message`, `error`, `message`,
/// or the start of the body.
pub(super) fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let error = v.get("error");
            error
                .and_then(|e| e.get("message"))
                .or(error)
                .or_else(|| v.get("message"))
                .map(|m| match m {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
        });
    let message = from_json.unwrap_or_else(|| body.trim().to_string());
    if message.is_empty() {
        "(empty body)".to_string()
    } else {
        truncate_chars(&message, MAX_MESSAGE_CHARS)
    }
}

fn network_error(
    url: &str,
    timeout: Duration,
    e: &reqwest::Error,
    secret: Option<&str>,
) -> ProviderError {
    let url = url.to_string();
    if e.is_timeout() {
        return ProviderError::Timeout {
            url,
            after: timeout,
        };
    }
    let detail = scrub(&root_cause(e), secret).into_owned();
    if e.is_connect() {
        ProviderError::Connect { url, detail }
    } else {
        ProviderError::Transport { url, detail }
    }
}

/// The innermost cause of an error chain: "Connection refused (os error 111)" rather
/// than "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_and_usage() {
        let a = parse_answer(
            r#"{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!(a.content, "hi");
        assert_eq!(a.usage.unwrap().prompt_tokens, 3);
    }

    #[test]
    fn empty_and_malformed_answers() {
        assert_eq!(
            parse_answer(r#"{"choices":[{"message":{"content":"  "}}]}"#),
            Err(ProviderError::EmptyAnswer)
        );
        assert!(matches!(
            parse_answer(r#"{"choices":[{"mess"#),
            Err(ProviderError::Malformed { .. })
        ));
        assert!(matches!(
            parse_answer(r#"{"choices":[]}"#),
            Err(ProviderError::Malformed { .. })
        ));
    }

    #[test]
    fn error_messages_from_bodies() {
        assert_eq!(
            error_message(r#"{"error":{"message":"no credit"}}"#),
            "no credit"
        );
        assert_eq!(error_message(r#"{"error":"slow down"}"#), "slow down");
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(""), "(empty body)");
    }
}
