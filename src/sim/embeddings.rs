//! The simulator's embeddings (`POST /v1/embeddings`): deterministic vectors in which
//! texts sharing words point the same way, so cosine similarity ranks them plausibly.

use serde::Deserialize;
use serde_json::{Value, json};

use super::answers::fnv1a;
use super::protocol::estimate_tokens;

/// Vector length when the request does not ask for one (OpenAI's text-embedding-3-small).
pub const DEFAULT_DIMENSIONS: usize = 1536;

/// Longest vector the simulator makes.
pub const MAX_DIMENSIONS: usize = 16_384;

/// An embeddings request as the simulator reads it.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    /// The model asked for.
    #[serde(default)]
    pub model: Option<String>,
    /// One text or many.
    pub input: Input,
    /// The vector length asked for.
    #[serde(default)]
    pub dimensions: Option<usize>,
}

/// The `input` of an embeddings request.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One text.
    One(String),
    /// Many texts.
    Many(Vec<String>),
}

impl Input {
    /// The texts, in order.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Input::One(text) => vec![text.as_str()],
            Input::Many(texts) => texts.iter().map(String::as_str).collect(),
        }
    }
}

/// The unit vector of `text`: each lowercase word adds ±1 at a position chosen by its
/// hash, so texts sharing words have a positive cosine similarity.
pub fn embedding_for(text: &str, dimensions: usize) -> Vec<f32> {
    let dimensions = dimensions.clamp(1, MAX_DIMENSIONS);
    let mut vector = vec![0.0f32; dimensions];
    let words = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>();
    for word in &words {
        let hash = fnv1a(word);
        let sign = if hash & (1 << 63) == 0 { 1.0 } else { -1.0 };
        vector[(hash % dimensions as u64) as usize] += sign;
    }
    let mut norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm == 0.0 {
        // No words, or words whose signs cancel out: a direction from the whole text.
        vector[(fnv1a(text) % dimensions as u64) as usize] = 1.0;
        norm = 1.0;
    }
    vector.iter_mut().for_each(|v| *v /= norm);
    vector
}

/// The body answering `request`.
pub fn embeddings_body(request: &EmbeddingsRequest, model: &str) -> Value {
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    let texts = request.input.texts();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": embedding_for(text, dimensions)})
        })
        .collect();
    let tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn unit_vectors_of_the_asked_length() {
        for text in ["late delivery", "", "!!!"] {
            let v = embedding_for(text, 64);
            assert_eq!(v.len(), 64);
            assert!((cosine(&v, &v) - 1.0).abs() < 1e-5, "{text:?}");
        }
        assert_eq!(embedding_for("x", 1536), embedding_for("x", 1536));
    }

    #[test]
    fn shared_words_mean_similar_vectors() {
        let query = embedding_for("late delivery", 256);
        let close = embedding_for("the delivery was late again", 256);
        let far = embedding_for("great sound quality", 256);
        assert!(cosine(&query, &close) > cosine(&query, &far) + 0.3);
    }
}
