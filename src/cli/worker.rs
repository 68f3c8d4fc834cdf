//! `blossom worker`: a cluster's worker process. It serves until Ctrl-C or SIGTERM,
//! running the plan fragments coordinators send with the provider key of its own
//! environment.

use std::net::{SocketAddr, ToSocketAddrs};

use super::args::{ProviderArgs, WorkerArgs};
use super::error::CliError;
use super::exec::session_builder;
use super::signal::Signals;
use crate::BlossomWorkerSessions;
use crate::cluster::serve_worker;
use crate::cluster_token::ClusterToken;

/// Serves as a worker until a signal or a failure of the server.
pub(crate) async fn run(
    args: &WorkerArgs,
    provider: &ProviderArgs,
    quiet: bool,
) -> Result<(), CliError> {
    let token = ClusterToken::from_env().map_err(|e| {
        CliError::usage(format!(
            "blossom worker: {e}; start every worker and the coordinator with the same token"
        ))
    })?;
    let listen = listen_address(&args.listen)?;
    let (builder, _simulator) = session_builder(provider, quiet).await?;
    let sessions =
        BlossomWorkerSessions::new(&builder, &token).map_err(|e| CliError::setting(&e))?;
    let mut signals = Signals::new();
    let server = serve_worker(listen, token, sessions)
        .await
        .map_err(|e| CliError::usage(format!("blossom worker: cannot listen on {listen}: {e}")))?;
    let addr = server.local_addr();
    // How the coordinator's limiter and reports name this worker.
    crate::dispatch::set_worker_address(addr);
    if !quiet {
        eprintln!("blossom worker: listening on {addr}");
    }
    tokio::select! {
        served = server.wait() => served.map_err(|e| {
            CliError::query(format!("blossom worker on {addr} stopped: {e}"))
        }),
        interrupt = signals.next() => Err(interrupt.error()),
    }
}

/// `text` as one socket address; a host name resolves to its first address.
fn listen_address(text: &str) -> Result<SocketAddr, CliError> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            CliError::usage(format!(
                "--listen: '{text}' is not an address to listen on (expected host:port)"
            ))
        })
}
