//! The OpenAI-compatible embeddings call (`POST /v1/embeddings`): the request with many
//! inputs, and the answer read back as one vector per input, in input order.

use serde::{Deserialize, Serialize};

use super::error::ProviderError;
use super::text::excerpt;
use super::types::TokenUsage;

/// The body of `POST /embeddings`. It holds no secret.
///
/// ```sql
/// SELECT embed(text, 256) FROM 'data/reviews.csv'; -- 64 texts to a request, dimensions 256
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingRequest {
    /// The embedding model.
    pub model: String,
    /// The texts to embed; the answer has one vector per text, in this order.
    pub input: Vec<String>,
    /// The vector length asked for, when set (OpenAI's `text-embedding-3-*` shorten
    /// their vectors to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
}

impl EmbeddingRequest {
    /// The characters of all its inputs: what budgets and estimates are measured in.
    pub fn input_chars(&self) -> usize {
        self.input.iter().map(|text| text.chars().count()).sum()
    }
}

/// A provider's answer to one embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingAnswer {
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Token counts, when the provider reports them.
    pub usage: Option<TokenUsage>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingResponse {
    #[serde(default)]
    data: Vec<EmbeddingData>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingData {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// Reads an embeddings body with `inputs` inputs: every index from 0 exactly once (by
/// `index`, or by position when the provider leaves it out), each with a non-empty vector.
pub(crate) fn parse_embeddings(
    text: &str,
    inputs: usize,
) -> Result<EmbeddingAnswer, ProviderError> {
    let parsed: EmbeddingResponse =
        serde_json::from_str(text).map_err(|e| ProviderError::Malformed {
            detail: format!("{e} in {}", excerpt(text)),
        })?;
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for (position, data) in parsed.data.into_iter().enumerate() {
        let index = data.index.unwrap_or(position);
        let slot = vectors
            .get_mut(index)
            .ok_or_else(|| ProviderError::Malformed {
                detail: format!("an embedding for input {index}, but only {inputs} were sent"),
            })?;
        if slot.is_some() {
            return Err(ProviderError::Malformed {
                detail: format!("two embeddings for input {index}"),
            });
        }
        if data.embedding.is_empty() {
            return Err(ProviderError::EmptyAnswer);
        }
        *slot = Some(data.embedding);
    }
    let vectors = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            vector.ok_or_else(|| ProviderError::Malformed {
                detail: format!("no embedding for input {index} of {inputs}"),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(EmbeddingAnswer {
        vectors,
        usage: parsed.usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_in_input_order() {
        let body = r#"{"data":[{"index":1,"embedding":[0.5,1]},{"index":0,"embedding":[1,0]}],"usage":{"prompt_tokens":4}}"#;
        let answer = parse_embeddings(body, 2).unwrap();
        assert_eq!(answer.vectors, vec![vec![1.0, 0.0], vec![0.5, 1.0]]);
        assert_eq!(answer.usage.unwrap().prompt_tokens, 4);
        let no_index = r#"{"data":[{"embedding":[1]},{"embedding":[2]}]}"#;
        assert_eq!(
            parse_embeddings(no_index, 2).unwrap().vectors,
            vec![vec![1.0], vec![2.0]]
        );
    }

    #[test]
    fn missing_repeated_extra_or_empty_vectors_are_errors() {
        for (body, inputs) in [
            (r#"{"data":[{"index":0,"embedding":[1]}]}"#, 2),
            (
                r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}"#,
                2,
            ),
            (r#"{"data":[{"index":3,"embedding":[1]}]}"#, 1),
            (r#"{"data":[{"index":0,"embedding":[]}]}"#, 1),
            (r#"{"data":"#, 1),
        ] {
            assert!(parse_embeddings(body, inputs).is_err(), "{body}");
        }
    }
}
