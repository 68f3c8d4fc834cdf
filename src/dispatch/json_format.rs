//! Structured answers across providers: a request asking for a JSON schema
//! (`response_format` of type `json_schema`) is sent in JSON object mode instead to a
//! provider that refuses JSON schemas, and the session remembers which ones do.
//!
//! ```sql
//! SELECT extract(text, 'product VARCHAR, rating INT') FROM 'data/reviews.csv';
//! ```

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::json;

use crate::provider::ChatRequest;

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
    request
        .response_format
        .as_ref()
        .and_then(|format| format.get("type"))
        .and_then(|kind| kind.as_str())
        == Some("json_schema")
}

/// `request` asking for any JSON object instead (its prompt still lists the fields).
pub(crate) fn in_json_object_mode(request: &ChatRequest) -> ChatRequest {
    ChatRequest {
        response_format: Some(json!({"type": "json_object"})),
        ..request.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(format: Option<serde_json::Value>) -> ChatRequest {
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
        let schema = request(Some(json!({"type": "json_schema", "json_schema": {}})));
        assert!(asks_json_schema(&schema));
        let object = in_json_object_mode(&schema);
        assert!(!asks_json_schema(&object));
        assert_eq!(object.response_format, Some(json!({"type": "json_object"})));
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
