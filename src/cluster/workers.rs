//! The workers a coordinator plans for: `--workers h1:50051,h2:50051` or
//! `blossom.workers`, as the [`WorkerResolver`] the distributed planner asks.

use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use datafusion_distributed::WorkerResolver;
use url::Url;

use crate::config::{worker_address, worker_urls};

/// `list` (`host:port` entries separated by commas) as worker URLs, as
/// `blossom.workers` takes it ([`crate::config::worker_urls`]).
///
/// ```
/// use blossom_sql::cluster::parse_workers;
/// assert_eq!(parse_workers("h1:50051,h2:50051").unwrap().len(), 2);
/// assert!(parse_workers("h1").unwrap_err().to_string().contains("blossom.workers"));
/// ```
pub fn parse_workers(list: &str) -> Result<Vec<Url>> {
    worker_urls(list)
        .map_err(|why| DataFusionError::Configuration(format!("blossom.workers: {why}")))
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
        worker_address(url)
    }
}

impl WorkerResolver for Workers {
    /// The workers; one worker is listed twice. datafusion-distributed elides a network
    /// boundary between a stage of one task and a consumer of one task, and runs such a
    /// plan in the coordinator: a cluster of one worker would then make its AI calls
    /// in the coordinator, with the coordinator's key. Two tasks on the one worker keep
    /// them there.
    fn get_urls(&self) -> Result<Vec<Url>> {
        let mut urls = self.urls();
        match urls.len() {
            0 => {
                return Err(DataFusionError::Configuration(
                    "blossom.workers is empty: a coordinator needs at least one worker".to_string(),
                ));
            }
            1 => urls.push(urls[0].clone()),
            _ => {}
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
        let one = Workers::new(parse_workers("h1:1").unwrap());
        assert_eq!(one.get_urls().unwrap().len(), 2, "one worker, two tasks");
        assert_eq!(one.urls().len(), 1);
    }
}
