//! Structured answers across providers: a request asking for a JSON schema
//! (`response_format` of type `json_schema`) is sent in JSON object mode instead to a
//! provider that refuses JSON schemas, and the session remembers which ones do.
//!
//! ```sql
//! SELECT extract(text, 'product VARCHAR, rating INT') FROM 'data/reviews.csv';
//! ```

use std::collections::HashSet;
use std::sync::Mutex;

use crate::provider::{AnswerFormat, ChatRequest};

/// The chat URLs of a session that refused a JSON schema.
#[derive(Debug, Default)]
pub(crate) struct JsonSchemaRefusals {
    urls: Mutex<HashSet<String>>,
}

impl JsonSchemaRefusals {
    /// Whether `url` refused a JSON schema before.
    pub(crate) fn refused(&self, url: &str) -> bool {
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(url)
    }

    /// Remembers that `url` refuses JSON schemas.
    pub(crate) fn remember(&self, url: &str) {
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(url.to_string());
    }
}

/// Whether `request` asks for an answer following a JSON schema.
pub(crate) fn asks_json_schema(request: &ChatRequest) -> bool {
    matches!(
        request.response_format,
        Some(AnswerFormat::JsonSchema { .. })
    )
}

/// `request` asking for any JSON object instead (its prompt still lists the fields).
pub(crate) fn in_json_object_mode(request: &ChatRequest) -> ChatRequest {
    ChatRequest {
        response_format: Some(AnswerFormat::JsonObject),
        ..request.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(format: Option<AnswerFormat>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![],
            temperature: None,
            max_tokens: None,
            response_format: format,
        }
    }

    #[test]
    fn schema_requests_fall_back_to_object_mode() {
        let schema = request(Some(AnswerFormat::JsonSchema {
            name: "extract".into(),
            schema: serde_json::json!({}),
            strict: true,
        }));
        assert!(asks_json_schema(&schema));
        let object = in_json_object_mode(&schema);
        assert!(!asks_json_schema(&object));
        assert_eq!(object.response_format, Some(AnswerFormat::JsonObject));
        assert!(!asks_json_schema(&request(None)));
    }

    #[test]
    fn refusals_are_remembered() {
        let refusals = JsonSchemaRefusals::default();
        assert!(!refusals.refused("u"));
        refusals.remember("u");
        assert!(refusals.refused("u"));
    }
}
