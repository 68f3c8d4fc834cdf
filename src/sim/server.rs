//! The running simulator: binds a TCP listener, accepts connections on a tokio task and
//! serves each one with hyper (HTTP/1.1, keep-alive) until the [`Simulator`] is dropped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::SimConfig;
use super::handler::handle;
use super::state::SharedState;
use super::stats::SimStats;

/// A running OpenAI-compatible chat-completions simulator.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) stops accepting connections and
/// closes open ones, abandoning requests still in progress.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<SharedState>,
    /// Dropping the sender tells the accept loop and every connection to stop.
    shutdown: Option<watch::Sender<()>>,
    accept_task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1` with a free port. Must be called inside a tokio runtime.
    pub async fn start(config: SimConfig) -> io::Result<Simulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a simulator on `addr` (port 0 picks a free port). Fails with
    /// [`io::ErrorKind::InvalidInput`] when the configuration is invalid.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> io::Result<Simulator> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SharedState::new(config));
        let (shutdown, stopped) = watch::channel(());
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
        tracing::info!(%addr, "blossom-sim listening");
        Ok(Simulator {
            addr,
            state,
            shutdown: Some(shutdown),
            accept_task: Some(accept_task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.state.stats.snapshot()
    }

    /// Zeroes the counters (`peak_in_flight` restarts from the requests in flight now).
    pub fn reset_stats(&self) {
        self.state.stats.reset();
    }

    /// The current configuration.
    pub fn config(&self) -> SimConfig {
        self.state.config().as_ref().clone()
    }

    /// Changes the behaviour of the running server for requests arriving from now on; the
    /// rate limiter, the seeded dice and the `max_faults` budget start afresh.
    /// An invalid configuration is rejected (logged) and the old one stays.
    pub fn set_config(&self, config: SimConfig) {
        match config.validate() {
            Ok(()) => self.state.set_config(config),
            Err(e) => tracing::error!(error = %e, "blossom-sim: ignoring invalid configuration"),
        }
    }

    /// Stops the server (same as dropping it).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until the shutdown sender is dropped.
async fn accept_loop(
    listener: TcpListener,
    state: Arc<SharedState>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&state),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "blossom-sim: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one connection (many requests with keep-alive) until it ends or shutdown.
async fn serve_connection(
    stream: TcpStream,
    state: Arc<SharedState>,
    mut shutdown: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(Arc::clone(&state), req));
    let connection = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "blossom-sim: connection closed with error");
            }
        }
        _ = shutdown.changed() => {}
    }
}
