//! The workers a coordinator plans for: `--workers h1:50051,h2:50051` or
//! `blossom.workers`, as the [`WorkerResolver`] the distributed planner asks.

use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use datafusion_distributed::WorkerResolver;
use url::Url;

/// `list` (`host:port` entries separated by commas, optionally `http://host:port`) as
/// worker URLs. An entry that is not a host and a port is an error naming it.
///
/// ```
/// use blossom_sql::cluster::parse_workers;
/// let urls = parse_workers("127.0.0.1:50051, localhost:50052").unwrap();
/// assert_eq!(urls[1].as_str(), "http://localhost:50052/");
/// assert!(parse_workers("127.0.0.1").is_err());
/// assert!(parse_workers("").unwrap().is_empty());
/// ```
pub fn parse_workers(list: &str) -> Result<Vec<Url>> {
    let mut urls: Vec<Url> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let text = if entry.contains("://") {
            entry.to_string()
        } else {
            format!("http://{entry}")
        };
        let bad = |why: &str| {
            DataFusionError::Configuration(format!(
                "invalid worker '{entry}' in blossom.workers: {why} (expected host:port)"
            ))
        };
        let url = Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.port().is_none() {
            return Err(bad("no port"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not belong in a worker address"));
        }
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    Ok(urls)
}

/// The workers of a coordinator session; the list can change between queries
/// (`SET blossom.workers`), so it is shared with the planner that updates it.
#[derive(Debug, Clone, Default)]
pub struct Workers(Arc<RwLock<Vec<Url>>>);

impl Workers {
    /// These workers.
    pub fn new(urls: Vec<Url>) -> Self {
        Self(Arc::new(RwLock::new(urls)))
    }

    /// The workers now.
    pub fn urls(&self) -> Vec<Url> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Plans from now on go to `urls`.
    pub fn set(&self, urls: Vec<Url>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = urls;
    }

    /// A worker's name as the user wrote it: `host:port`.
    pub fn name(url: &Url) -> String {
        match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => url.to_string(),
        }
    }
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        let urls = self.urls();
        if urls.is_empty() {
            return Err(DataFusionError::Configuration(
                "blossom.workers is empty: a coordinator needs at least one worker".to_string(),
            ));
        }
        Ok(urls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_and_named() {
        for (list, named) in [
            ("h1:50051,nohost", "nohost"),
            ("ftp://h:1", "ftp://h:1"),
            ("http://u:p@h:1", "http://u:p@h:1"),
        ] {
            let e = parse_workers(list).unwrap_err().to_string();
            assert!(e.contains(&format!("'{named}'")), "{e}");
        }
        let urls = parse_workers("h1:1,h1:1,h2:2").unwrap();
        assert_eq!(urls.len(), 2, "duplicates are dropped");
        assert_eq!(Workers::name(&urls[1]), "h2:2");
    }
}
