//! The gRPC server of `blossom worker`: datafusion-distributed's worker service behind
//! the token check ([`TokenCheck`]), on a listener of its own.

use std::net::SocketAddr;

use datafusion_distributed::{Worker, WorkerSessionBuilder};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::cluster::TokenCheck;
use crate::cluster_token::ClusterToken;

/// A running worker server; it stops when dropped or [`Self::stop`]ped.
#[derive(Debug)]
pub struct WorkerServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl WorkerServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the server fails or is stopped; the error of a failed server.
    pub async fn wait(mut self) -> Result<(), String> {
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            None => Ok(()),
        }
    }

    /// Stops accepting calls and ends the calls in progress.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WorkerServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves plan fragments on `listen` (port 0: any free port) with the sessions
/// `sessions` builds, to coordinators presenting `token`.
pub async fn serve_worker(
    listen: SocketAddr,
    token: ClusterToken,
    sessions: impl WorkerSessionBuilder + Send + Sync + 'static,
) -> std::io::Result<WorkerServer> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let worker = Worker::from_session_builder(sessions).with_version(env!("CARGO_PKG_VERSION"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .layer(TokenCheck::new(token).layer())
            .add_service(worker.into_worker_server())
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    Ok(WorkerServer {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
