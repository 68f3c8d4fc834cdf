//! Which `blossom.*` settings reach the workers, and how.
//!
//! The coordinator's settings travel with every plan fragment as gRPC metadata
//! (datafusion-distributed's option-extension propagation: one header
//! `x-datafusion-distributed-config-blossom.<key>` per setting that has a value). A
//! worker starts each query from its own environment (its provider key above all) and
//! applies them ([`options_from_headers`]), except the ones that belong to the worker's
//! process:
//! - `blossom.api_key`: keys never travel; the coordinator's shows as `<redacted>` and
//!   the worker uses the key in its own environment (`BLOSSOM_API_KEY`, ...);
//! - `blossom.workers`: a worker never plans for other workers.
//!
//! gRPC metadata is single-line ASCII. A value with other characters (a non-ASCII
//! path or prompt text, a line break) cannot reach a worker, so the coordinator refuses
//! the query naming the setting ([`settings_that_cannot_travel`]) rather than let a
//! worker run with another value.

use datafusion::common::config::ExtensionOptions;
use datafusion::common::{DataFusionError, Result};
use datafusion::config::ConfigExtension;
use tonic::codegen::http::HeaderMap;

use crate::config::BlossomOptions;

/// The prefix datafusion-distributed gives a propagated setting's header.
const HEADER_PREFIX: &str = "x-datafusion-distributed-config-";

/// Settings a worker keeps from its own process.
const LOCAL_ONLY: &[&str] = &["api_key", "workers"];

/// `base` (the worker's own options) with the coordinator's settings in `headers`
/// applied. A setting the worker does not know, or a value it refuses, is an error
/// naming it.
pub fn options_from_headers(base: &BlossomOptions, headers: &HeaderMap) -> Result<BlossomOptions> {
    let mut options = base.clone();
    let prefix = format!("{HEADER_PREFIX}{}.", BlossomOptions::PREFIX);
    let own = format!("{}.", BlossomOptions::PREFIX);
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(&prefix) else {
            continue;
        };
        let key = key.strip_prefix(&own).unwrap_or(key);
        if LOCAL_ONLY.contains(&key) {
            continue;
        }
        let value = value.to_str().map_err(|_| {
            DataFusionError::Configuration(format!(
                "the coordinator's blossom.{key} is not ASCII; it cannot reach this worker"
            ))
        })?;
        options.set_option(key, value).map_err(|e| {
            DataFusionError::Configuration(format!(
                "this worker cannot take the coordinator's blossom.{key} (do both run the same \
                 blossom version?): {e}"
            ))
        })?;
    }
    Ok(options)
}

/// The settings of `options` whose value cannot travel to a worker: not printable
/// ASCII on one line.
pub fn settings_that_cannot_travel(options: &BlossomOptions) -> Vec<String> {
    options
        .entries()
        .into_iter()
        .filter(|entry| {
            let key = entry.key.rsplit('.').next().unwrap_or_default();
            !LOCAL_ONLY.contains(&key)
                && entry
                    .value
                    .as_deref()
                    .is_some_and(|v| !v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
        })
        .map(|entry| entry.key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codegen::http::HeaderValue;

    fn header(headers: &mut HeaderMap, key: &str, value: &str) {
        headers.insert(
            tonic::codegen::http::HeaderName::from_bytes(
                format!("{HEADER_PREFIX}blossom.blossom.{key}").as_bytes(),
            )
            .unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    #[test]
    fn settings_arrive_but_keys_stay_home() {
        let mut base = BlossomOptions::default();
        base.set_option("api_key", "sk-worker-own").unwrap();
        let mut headers = HeaderMap::new();
        header(&mut headers, "model", "gpt-4o-mini");
        header(&mut headers, "max_concurrency", "7");
        header(&mut headers, "api_key", "<redacted>");
        let options = options_from_headers(&base, &headers).unwrap();
        let resolved = options.resolve().unwrap();
        assert_eq!(resolved.model, "gpt-4o-mini");
        assert_eq!(resolved.max_concurrency, 7);
        assert_eq!(resolved.api_key.expose(), Some("sk-worker-own"));

        header(&mut headers, "max_concurrency", "many");
        let e = options_from_headers(&base, &headers)
            .unwrap_err()
            .to_string();
        assert!(e.contains("blossom.max_concurrency"), "{e}");
    }

    #[test]
    fn non_ascii_and_multi_line_values_are_named() {
        let mut options = BlossomOptions::default();
        assert!(settings_that_cannot_travel(&options).is_empty());
        options.set_option("model", "modèle").unwrap();
        assert_eq!(settings_that_cannot_travel(&options), ["blossom.model"]);
    }
}
