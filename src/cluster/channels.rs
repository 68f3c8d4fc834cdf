//! The coordinator's connections to its workers. Each is a tonic channel behind a tower
//! layer that adds the cluster's token to every call; channels are made once per worker
//! and reused by every query. [`check_workers`] asks each worker for its version over
//! such a channel before a query is planned, so that a worker that is down, or that
//! refuses the token, is an error naming it before any request is sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{ChannelResolver, GetWorkerInfoRequest, WorkerChannel};
use futures::future::join_all;
use tonic::codegen::http::{HeaderValue, Request};
use tonic::transport::Channel;
use url::Url;

use crate::cluster::Workers;
use crate::cluster_token::{AUTHORIZATION, ClusterToken};
use crate::error_class::error_chain;

/// Longest wait for a worker to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for a worker's answer to the check before a query.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Channels to workers that present the cluster's token; clones share the channels.
#[derive(Clone)]
pub struct TokenChannels {
    token: HeaderValue,
    channels: Arc<Mutex<HashMap<Url, BoxCloneSyncChannel>>>,
}

impl std::fmt::Debug for TokenChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenChannels").finish_non_exhaustive()
    }
}

impl TokenChannels {
    /// Channels presenting `token`.
    pub fn new(token: &ClusterToken) -> Result<Self> {
        let mut value = HeaderValue::from_str(&token.header_value()).map_err(|_| {
            DataFusionError::Configuration(
                "BLOSSOM_CLUSTER_TOKEN cannot travel as a header".to_string(),
            )
        })?;
        value.set_sensitive(true);
        Ok(Self {
            token: value,
            channels: Arc::default(),
        })
    }

    /// The channel to `url`, connected on first use.
    async fn channel(&self, url: &Url) -> Result<BoxCloneSyncChannel> {
        if let Some(channel) = self.lock().get(url) {
            return Ok(channel.clone());
        }
        let name = Workers::name(url);
        let endpoint = Channel::from_shared(url.to_string())
            .map_err(|e| {
                DataFusionError::Configuration(format!("invalid worker address {name}: {e}"))
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|e| {
            DataFusionError::Execution(format!(
                "blossom worker {name} is unreachable: {}",
                error_chain(&e)
            ))
        })?;
        let token = self.token.clone();
        let with_token = tower::ServiceBuilder::new()
            .map_request(move |mut request: Request<tonic::body::Body>| {
                request.headers_mut().insert(AUTHORIZATION, token.clone());
                request
            })
            .service(channel);
        let channel = BoxCloneSyncChannel::new(with_token);
        self.lock().insert(url.clone(), channel.clone());
        Ok(channel)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Url, BoxCloneSyncChannel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the channel to `url`: the next use connects again.
    fn forget(&self, url: &Url) {
        self.lock().remove(url);
    }
}

#[async_trait]
impl ChannelResolver for TokenChannels {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>> {
        self.channel(url).await.map(create_worker_client)
    }
}

/// Asks every worker in `urls` for its version, at once; the first that does not
/// answer (down, refusing the token, or too slow) is an error naming it.
pub async fn check_workers(channels: &TokenChannels, urls: &[Url]) -> Result<()> {
    let checks = urls.iter().map(|url| async move {
        let name = Workers::name(url);
        let answer = tokio::time::timeout(CHECK_TIMEOUT, async {
            let mut client = channels.get_worker_client_for_url(url).await?;
            client.get_worker_info(GetWorkerInfoRequest {}).await
        })
        .await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                channels.forget(url);
                let text = e.to_string();
                Err(DataFusionError::Execution(
                    if text.contains("unreachable") {
                        text
                    } else if text.contains("BLOSSOM_CLUSTER_TOKEN")
                        || text.contains("nauthenticated")
                    {
                        format!(
                            "blossom worker {name} refused this coordinator's cluster token \
                             (BLOSSOM_CLUSTER_TOKEN differs)"
                        )
                    } else {
                        format!("blossom worker {name} did not answer the check: {text}")
                    },
                ))
            }
            Err(_) => {
                channels.forget(url);
                Err(DataFusionError::Execution(format!(
                    "blossom worker {name} did not answer within {}s",
                    CHECK_TIMEOUT.as_secs()
                )))
            }
        }
    });
    join_all(checks).await.into_iter().collect()
}
