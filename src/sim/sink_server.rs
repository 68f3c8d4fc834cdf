//! [`SinkServer`]: an HTTP sink for tests, benchmarks and examples. It records every
//! POST it accepts and fails on purpose as [`State`] says: connections dropped, 503s
//! (or another status) before answering, 400 for bodies holding a marker (echoing the
//! request's credential, as careless servers do).
//!
//! ```no_run
//! # async fn demo() {
//! use blossom_sql::sim::{SinkServer, State};
//! let sink = SinkServer::start(State::default()).await;
//! println!("CREATE EXTERNAL TABLE out (id BIGINT) STORED AS NDJSON LOCATION '{}'", sink.url());
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One POST the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it was received, in seconds since the Unix epoch.
    pub received_at: f64,
    /// Its `Content-Type` header.
    pub content_type: Option<String>,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// The body's lines.
    pub lines: Vec<String>,
}

/// What the server does and what it saw.
#[derive(Default)]
pub struct State {
    /// Accepted connections to close at once, before reading a request.
    pub drop_connections: AtomicUsize,
    /// POSTs to answer 503 (with `Retry-After: 0`) before answering normally.
    pub fail_503: AtomicUsize,
    /// The status those failing answers have instead of 503 (429, 408).
    pub fail_status: Option<StatusCode>,
    /// Bodies containing this are answered 400, echoing the authorization header.
    pub refuse_marker: Mutex<Option<String>>,
    /// Called at each 503, to look at the source from inside a retry.
    pub on_503: Mutex<Option<Box<dyn Fn() + Send>>>,
    pub accepted: Mutex<Vec<Received>>,
    pub attempts: AtomicUsize,
    pub posted: Notify,
    /// Keep only counts, not the records (for runs of millions of records).
    pub count_only: bool,
    /// Records accepted, over all POSTs.
    pub records: AtomicUsize,
}

pub struct SinkServer {
    addr: SocketAddr,
    /// What it does and what it saw.
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SinkServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SinkServer {
    pub async fn start(state: State) -> SinkServer {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(state);
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let dropping = shared
                    .drop_connections
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if dropping {
                    drop(stream);
                    continue;
                }
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, hyper::Error>(answer(&state, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        SinkServer { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/sink", self.addr)
    }

    /// The POSTs it accepted, in order.
    pub fn accepted(&self) -> Vec<Received> {
        self.state.accepted.lock().unwrap().clone()
    }
}

async fn answer(state: &State, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    state.attempts.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let authorization = header("authorization");
    let body = match request.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "unreadable body".into()),
    };
    let failing = state
        .fail_503
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        if let Some(look) = state.on_503.lock().unwrap().as_ref() {
            look();
        }
        let status = state.fail_status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = reply(status, "busy".into());
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        return response;
    }
    let marker = state.refuse_marker.lock().unwrap().clone();
    if let Some(marker) = marker
        && body.contains(&marker)
    {
        // Echo the credential, as careless servers do: the client must scrub it.
        let echo = format!(
            "bad record; you sent authorization: {}",
            authorization.unwrap_or_default()
        );
        return reply(StatusCode::BAD_REQUEST, echo);
    }
    let lines: Vec<String> = if state.count_only {
        state
            .records
            .fetch_add(body.lines().count(), Ordering::SeqCst);
        Vec::new()
    } else {
        let lines: Vec<String> = body.lines().map(str::to_string).collect();
        state.records.fetch_add(lines.len(), Ordering::SeqCst);
        lines
    };
    state.accepted.lock().unwrap().push(Received {
        received_at: super::stream_server::unix_seconds(),
        content_type,
        authorization,
        lines,
    });
    state.posted.notify_one();
    reply(StatusCode::OK, "ok".into())
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
