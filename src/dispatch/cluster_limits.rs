//! Limits shared by the workers of a distributed query: one [`Limits`] per provider
//! endpoint, hosted by the coordinator ([`LimiterServer`]) and taken by every worker's
//! dispatcher over HTTP (`blossom.cluster_limiter`, set by the coordinator).
//!
//! Each worker process runs its own dispatcher with its own limits, so N workers alone
//! would send N times `blossom.max_concurrency` and N times `requests_per_minute`, and
//! a `Retry-After` one of them gets would pause only that one. Splitting the caps into
//! per-worker shares is not enough: tasks are skewed (a worker with few rows leaves its
//! share idle while another queues), a share of a small cap rounds to zero, and a share
//! cannot spread a provider's pause. A shared limiter keeps the cap exact and the pause
//! cluster-wide, for one localhost or LAN round trip per attempt (`/start`) and one
//! per request (`/slot`), small next to an LLM call.
//!
//! A worker, in addition to its own limits, for each request
//!
//! 1. takes a slot: `POST /slot` (the worker's name and caps in `x-blossom-*` headers)
//!    waits for a free slot of the cluster's cap and answers once granted; the slot is
//!    held while the request's body stays open, through all the request's attempts.
//!    The worker sends a heartbeat byte on it every [`HEARTBEAT`] and ends it when the
//!    request ends; a worker killed closes its connection, and a worker whose machine
//!    vanished stops its heartbeats ([`HOLD_IDLE`]): either way its slots are freed;
//! 2. before each attempt, `POST /start` waits for the cluster's cool-down and rate;
//! 3. after a `Retry-After`, `POST /cool-down` pauses every worker;
//!
//! and, about once a second and at the end of each partition of an AI operator,
//! `POST /report` tells the coordinator what the worker's entries of the query counted
//! ([`report_work`]), for the coordinator's progress bar, `blossom_metrics()`, summary
//! and run report.
//!
//! The hold runs on the request's body rather than on a response streamed back: the
//! worker ending its body frees the slot at once, with no `/release` round trip, and
//! its silence frees it too, whereas heartbeats written to a machine that vanished
//! would go on until TCP gives up, many minutes later.
//!
//! Every endpoint asks `authorization: Bearer <BLOSSOM_CLUSTER_TOKEN>` and answers 401
//! with no detail otherwise. A limiter that cannot be reached fails the request with a
//! connection error naming `blossom.cluster_limiter` and its URL; one that refuses the
//! token stops the query (every request would be refused alike).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::limits::{Limits, OwnedSlot};
use crate::cluster_token::{AUTHORIZATION, ClusterToken};
use crate::config::ProviderSettings;
use crate::observe::{FunctionMetrics, MetricsLog, SessionStats, WorkReport};
use crate::provider::ProviderError;

/// How often a worker holding a slot sends a byte on the slot's request body.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long the limiter keeps a slot whose worker sent nothing (its machine gone).
pub const HOLD_IDLE: Duration = Duration::from_secs(10);

/// Longest wait to connect to the limiter.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest request body the limiter reads (but a slot's, which it only watches, and a
/// report's).
const MAX_BODY: usize = 16 * 1024;

/// Largest report a worker sends: a few entries, each with its latency histogram.
const MAX_REPORT_BODY: usize = 4 * 1024 * 1024;

/// The headers of a `/slot` request.
const WORKER_HEADER: &str = "x-blossom-worker";
const ENDPOINT_HEADER: &str = "x-blossom-endpoint";
const CONCURRENCY_HEADER: &str = "x-blossom-max-concurrency";
const RATE_HEADER: &str = "x-blossom-requests-per-minute";

/// This process's name as a worker, as the limiter counts it.
static WORKER_NAME: Mutex<Option<String>> = Mutex::new(None);

/// Names this process, a worker listening on `addr`, in the limiter's counts and the
/// coordinator's reports: `addr`, or, when it listens on every interface (`0.0.0.0`),
/// the host's name with the port.
pub fn set_worker_address(addr: SocketAddr) {
    let name = match addr.ip().is_unspecified() {
        true => format!("{}:{}", host_name(), addr.port()),
        false => addr.to_string(),
    };
    *WORKER_NAME.lock().unwrap_or_else(|p| p.into_inner()) = Some(name);
}

/// This process's worker name ([`set_worker_address`]); by default the host's name.
pub fn worker_name() -> String {
    WORKER_NAME
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(host_name)
}

/// The host's name, else `local`.
fn host_name() -> String {
    static HOST: LazyLock<String> = LazyLock::new(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "local".to_string())
    });
    HOST.clone()
}

/// What a worker sends with `/slot` and `/start`.
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    worker: String,
    /// The provider endpoint (scheme, host, port): limits are the endpoint's.
    endpoint: String,
    max_concurrency: usize,
    requests_per_minute: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct CoolDown {
    endpoint: String,
    millis: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Started {
    waited_ms: u64,
}

/// What one worker did through the limiter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    /// The worker's name ([`set_worker_address`]).
    pub worker: String,
    /// Attempts it started (`/start` granted).
    pub requests: u64,
    /// Most slots it held at once.
    pub peak_in_flight: u64,
}

#[derive(Debug, Default)]
struct Worker {
    requests: u64,
    in_flight: u64,
    peak_in_flight: u64,
}

/// The limiter's state, shared by its connections.
struct State {
    token: ClusterToken,
    endpoints: Mutex<HashMap<String, Arc<Limits>>>,
    workers: Mutex<BTreeMap<String, Worker>>,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    /// Where the workers' reports of their work go: the coordinator's metrics log and
    /// live counters ([`LimiterServer::report_to`]).
    reports: OnceLock<(Arc<MetricsLog>, Arc<SessionStats>)>,
}

impl State {
    /// The limits of `endpoint`, set to the asker's caps (the last asked are in force,
    /// as for one process's queries).
    fn limits(&self, ask: &Ask) -> Arc<Limits> {
        let max_concurrency = ask.max_concurrency.clamp(1, 10_000);
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let limits = endpoints
            .entry(ask.endpoint.clone())
            .or_insert_with(|| Arc::new(Limits::new(max_concurrency, ask.requests_per_minute)))
            .clone();
        drop(endpoints);
        limits.set(max_concurrency, ask.requests_per_minute);
        limits
    }

    fn worker<T>(&self, name: &str, f: impl FnOnce(&mut Worker) -> T) -> T {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        f(workers.entry(name.to_string()).or_default())
    }
}

/// A slot held for a worker: freed when dropped.
struct Held {
    _slot: OwnedSlot,
    state: Arc<State>,
    worker: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self
            .state
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.state.worker(&self.worker, |w| {
            w.in_flight = w.in_flight.saturating_sub(1);
        });
    }
}

/// The answer to a granted `/slot`: one byte, then open for as long as the worker's
/// request body is (ended, broken, or silent for [`HOLD_IDLE`]), holding the slot.
struct HoldBody {
    incoming: Incoming,
    held: Option<Held>,
    granted_sent: bool,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for HoldBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.held.is_none() {
            return Poll::Ready(None);
        }
        if !this.granted_sent {
            this.granted_sent = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"granted\n")))));
        }
        loop {
            match Pin::new(&mut this.incoming).poll_frame(cx) {
                Poll::Ready(Some(Ok(_))) => {
                    let deadline = tokio::time::Instant::now() + HOLD_IDLE;
                    this.idle.as_mut().reset(deadline);
                }
                // The worker is done with it, or gone.
                Poll::Ready(None | Some(Err(_))) => {
                    this.held = None;
                    return Poll::Ready(None);
                }
                Poll::Pending => break,
            }
        }
        if this.idle.as_mut().poll(cx).is_ready() {
            if let Some(held) = this.held.take() {
                tracing::warn!(
                    "the cluster limiter frees a slot of worker {}: nothing heard from it for {} s",
                    held.worker,
                    HOLD_IDLE.as_secs()
                );
            }
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// The cluster's limiter, served over HTTP until dropped.
pub struct LimiterServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<watch::Sender<()>>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LimiterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

impl LimiterServer {
    /// Serves the limiter on `bind` (port 0 picks a free one), to peers presenting
    /// `token`. Must be called inside a tokio runtime.
    pub async fn start(bind: SocketAddr, token: ClusterToken) -> std::io::Result<LimiterServer> {
        let listener = TcpListener::bind(bind).await?;
        Self::serve(listener, token)
    }

    /// The limiter on `listener`, bound already (from a caller that is not async, such
    /// as a session builder); it must be called within a tokio runtime.
    pub fn start_on(
        listener: std::net::TcpListener,
        token: ClusterToken,
    ) -> std::io::Result<LimiterServer> {
        listener.set_nonblocking(true)?;
        Self::serve(TcpListener::from_std(listener)?, token)
    }

    fn serve(listener: TcpListener, token: ClusterToken) -> std::io::Result<LimiterServer> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            token,
            endpoints: Mutex::default(),
            workers: Mutex::default(),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            reports: OnceLock::new(),
        });
        let (shutdown, stopped) = watch::channel(());
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
        tracing::info!(%addr, "the cluster limiter listens");
        Ok(LimiterServer {
            addr,
            state,
            shutdown: Some(shutdown),
            accept: Some(accept),
        })
    }

    /// Its URL, `http://ip:port`: the workers' `blossom.cluster_limiter`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends the workers' reports of their work (`/report`, see [`report_work`]) to
    /// `metrics` and `stats`, the coordinator session's; set once, later calls change
    /// nothing.
    pub fn report_to(&self, metrics: Arc<MetricsLog>, stats: Arc<SessionStats>) {
        let _ = self.state.reports.set((metrics, stats));
    }

    /// What each worker did, by name.
    pub fn per_worker(&self) -> Vec<WorkerCounts> {
        let workers = self.state.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers
            .iter()
            .map(|(name, w)| WorkerCounts {
                worker: name.clone(),
                requests: w.requests,
                peak_in_flight: w.peak_in_flight,
            })
            .collect()
    }

    /// Most slots held at once, over the whole cluster.
    pub fn peak_in_flight(&self) -> u64 {
        self.state.peak_in_flight.load(Ordering::Acquire)
    }

    /// Slots held now.
    pub fn in_flight(&self) -> u64 {
        self.state.in_flight.load(Ordering::Acquire)
    }

    /// Zeroes the counts; peaks restart from the slots held now.
    pub fn reset_counts(&self) {
        let mut workers = self.state.workers.lock().unwrap_or_else(|p| p.into_inner());
        for w in workers.values_mut() {
            w.requests = 0;
            w.peak_in_flight = w.in_flight;
        }
        self.state.peak_in_flight.store(
            self.state.in_flight.load(Ordering::Acquire),
            Ordering::Release,
        );
    }
}

impl Drop for LimiterServer {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, shutdown: watch::Receiver<()>) {
    let mut stopped = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, Arc::clone(&state), shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!("the cluster limiter cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, state: Arc<State>, mut shutdown: watch::Receiver<()>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(Arc::clone(&state), request));
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!("a cluster limiter connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {}
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    response
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<Body>> {
    read_json_up_to(request, MAX_BODY).await
}

async fn read_json_up_to<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
    limit: usize,
) -> Result<T, Response<Body>> {
    let body = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|_| answer(StatusCode::BAD_REQUEST, "unreadable body"))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| answer(StatusCode::BAD_REQUEST, format!("bad request: {e}")))
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !state.token.accepts(presented) {
        return Ok(answer(StatusCode::UNAUTHORIZED, Bytes::new()));
    }
    if request.method() != hyper::Method::POST {
        return Ok(answer(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
    }
    let path = request.uri().path().to_string();
    let response = match path.as_str() {
        "/slot" => slot(state, request).await,
        "/start" => start(state, request).await,
        "/cool-down" => cool_down(state, request).await,
        "/report" => report(state, request).await,
        _ => Ok(answer(StatusCode::NOT_FOUND, "no such endpoint")),
    };
    Ok(response.unwrap_or_else(|refused| refused))
}

/// What a `/slot` request asks, from its headers.
fn slot_ask(headers: &hyper::HeaderMap) -> Result<Ask, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| format!("missing header {name}"))
    };
    let number = |name: &str| {
        header(name)?
            .parse::<u64>()
            .map_err(|_| format!("{name} is not a number"))
    };
    Ok(Ask {
        worker: header(WORKER_HEADER)?,
        endpoint: header(ENDPOINT_HEADER)?,
        max_concurrency: number(CONCURRENCY_HEADER)?.min(10_000) as usize,
        requests_per_minute: number(RATE_HEADER)?.min(u64::from(u32::MAX)) as u32,
    })
}

/// Waits for a slot, then answers with a body that holds it while the worker's request
/// body is open ([`HoldBody`]).
async fn slot(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Response<Body>> {
    let ask = slot_ask(request.headers()).map_err(|why| answer(StatusCode::BAD_REQUEST, why))?;
    let limits = state.limits(&ask);
    let slot = limits.owned_slot().await;
    let now = state.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
    state.peak_in_flight.fetch_max(now, Ordering::AcqRel);
    state.worker(&ask.worker, |w| {
        w.in_flight += 1;
        w.peak_in_flight = w.peak_in_flight.max(w.in_flight);
    });
    let held = Held {
        _slot: slot,
        state: Arc::clone(&state),
        worker: ask.worker,
    };
    let body = HoldBody {
        incoming: request.into_body(),
        held: Some(held),
        granted_sent: false,
        idle: Box::pin(tokio::time::sleep(HOLD_IDLE)),
    };
    Ok(Response::new(body.boxed_unsync()))
}

/// Waits for the endpoint's cool-down and rate, then lets the attempt start.
async fn start(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Response<Body>> {
    let ask: Ask = read_json(request).await?;
    let limits = state.limits(&ask);
    let waited = limits.throttle().await;
    state.worker(&ask.worker, |w| w.requests += 1);
    let started = Started {
        waited_ms: waited.as_millis() as u64,
    };
    Ok(answer(
        StatusCode::OK,
        serde_json::to_vec(&started).unwrap_or_default(),
    ))
}

async fn cool_down(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Response<Body>> {
    let cool_down: CoolDown = read_json(request).await?;
    let limits = state
        .endpoints
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&cool_down.endpoint)
        .cloned();
    if let Some(limits) = limits {
        limits.cool_down(Duration::from_millis(cool_down.millis));
    }
    Ok(answer(StatusCode::OK, Bytes::new()))
}

async fn report(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Response<Body>> {
    let reports: Vec<WorkReport> = read_json_up_to(request, MAX_REPORT_BODY).await?;
    if let Some((metrics, stats)) = state.reports.get() {
        for report in reports {
            let worker = report.worker.clone();
            stats.absorb(&worker, &metrics.absorb(report));
        }
    }
    Ok(answer(StatusCode::OK, Bytes::new()))
}

// ---- the worker's side ----

/// Why the limiter did not let a request go on.
#[derive(Debug)]
pub(crate) enum LimiterRefusal {
    /// It could not be reached, or its connection broke: a connection error naming the
    /// setting and the URL (the request may be asked again).
    Unreachable(ProviderError),
    /// It refuses this process's token, or there is none: every request would be
    /// refused alike.
    Refused(String),
}

/// The limiter a worker's dispatcher takes slots from.
pub(crate) struct RemoteLimiter {
    url: String,
    /// `Bearer <token>`, or why there is none.
    authorization: Result<String, String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for RemoteLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLimiter")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A slot of the cluster's cap, held until dropped: dropping it ends the heartbeats
/// and so the request body the limiter watches.
pub(crate) struct RemoteSlot {
    heartbeat: JoinHandle<()>,
    _granted: reqwest::Response,
}

impl Drop for RemoteSlot {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Aborts a task when dropped: a `/slot` given up before it is granted ends its body.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The body of a `/slot` request: whatever the heartbeat task sends, until it stops.
struct SlotBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for SlotBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|beat| beat.map(|b| Ok(Frame::data(b))))
    }
}

/// A header value of `text`: printable ASCII, others replaced by `_`.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

fn http_client(pooled: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let builder = if pooled {
        builder
    } else {
        builder.pool_max_idle_per_host(0)
    };
    builder.build().unwrap_or_else(|_| reqwest::Client::new())
}

impl RemoteLimiter {
    /// The limiter at `url`, with this process's `BLOSSOM_CLUSTER_TOKEN`.
    pub(crate) fn new(url: &str) -> Self {
        Self::with_client(url, http_client(true))
    }

    fn with_client(url: &str, http: reqwest::Client) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            authorization: ClusterToken::from_env()
                .map(|token| token.header_value())
                .map_err(|e| e.to_string()),
            http,
        }
    }

    /// The limiter's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> LimiterRefusal {
        LimiterRefusal::Unreachable(ProviderError::Connect {
            url: self.url.clone(),
            detail: format!("the cluster limiter (blossom.cluster_limiter) cannot be used: {why}"),
        })
    }

    /// The `authorization` header, or why this process has none.
    fn authorization(&self) -> Result<&str, LimiterRefusal> {
        self.authorization.as_deref().map_err(|why| {
            LimiterRefusal::Refused(format!(
                "the cluster limiter {} (blossom.cluster_limiter) needs this process's token: {why}",
                self.url
            ))
        })
    }

    /// `response` if it is a success; a refusal naming the limiter otherwise.
    fn check(&self, response: reqwest::Response) -> Result<reqwest::Response, LimiterRefusal> {
        match response.status() {
            status if status.is_success() => Ok(response),
            StatusCode::UNAUTHORIZED => Err(LimiterRefusal::Refused(format!(
                "the cluster limiter {} (blossom.cluster_limiter) refused this process's \
                 BLOSSOM_CLUSTER_TOKEN (HTTP 401): the coordinator and its workers need the same token",
                self.url
            ))),
            status => Err(self.unreachable(format!("it answered HTTP {}", status.as_u16()))),
        }
    }

    async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<reqwest::Response, LimiterRefusal> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header(AUTHORIZATION, self.authorization()?)
            .json(body)
            .send()
            .await
            .map_err(|e| self.unreachable(without_url(e)))?;
        self.check(response)
    }

    fn ask(endpoint: &str, settings: &ProviderSettings) -> Ask {
        Ask {
            worker: worker_name(),
            endpoint: endpoint.to_string(),
            max_concurrency: settings.max_concurrency,
            requests_per_minute: settings.requests_per_minute,
        }
    }

    /// Waits for a slot of the cluster's cap on `endpoint`.
    pub(crate) async fn slot(
        &self,
        endpoint: &str,
        settings: &ProviderSettings,
    ) -> Result<RemoteSlot, LimiterRefusal> {
        let authorization = self.authorization()?;
        let (beats, beating) = tokio::sync::mpsc::channel(1);
        let mut heartbeat = AbortOnDrop(Some(tokio::spawn(async move {
            loop {
                // Full: the limiter has not read the last one yet (it is waiting for a
                // slot); nothing is lost by not sending another.
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) =
                    beats.try_send(Bytes::from_static(b"."))
                {
                    return;
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        })));
        let response = self
            .http
            .post(format!("{}/slot", self.url))
            .header(AUTHORIZATION, authorization)
            .header(WORKER_HEADER, header_text(&worker_name()))
            .header(ENDPOINT_HEADER, header_text(endpoint))
            .header(CONCURRENCY_HEADER, settings.max_concurrency)
            .header(RATE_HEADER, settings.requests_per_minute)
            .body(reqwest::Body::wrap(SlotBody(beating)))
            .send()
            .await
            .map_err(|e| self.unreachable(without_url(e)))?;
        let response = self.check(response)?;
        let heartbeat = heartbeat
            .0
            .take()
            .expect("the heartbeat task is started above");
        Ok(RemoteSlot {
            heartbeat,
            _granted: response,
        })
    }

    /// Waits for the cluster's cool-down and rate before an attempt; how long it took.
    pub(crate) async fn start(
        &self,
        endpoint: &str,
        settings: &ProviderSettings,
    ) -> Result<Duration, LimiterRefusal> {
        let response = self.post("/start", &Self::ask(endpoint, settings)).await?;
        let started: Started = response
            .json()
            .await
            .map_err(|e| self.unreachable(without_url(e)))?;
        Ok(Duration::from_millis(started.waited_ms))
    }

    /// Makes every worker wait `wait` before its next attempt to `endpoint`. Best
    /// effort: a limiter gone is found by the next `/start`.
    pub(crate) async fn cool_down(&self, endpoint: &str, wait: Duration) {
        let body = CoolDown {
            endpoint: endpoint.to_string(),
            millis: wait.as_millis() as u64,
        };
        match self.post("/cool-down", &body).await {
            Ok(_) => {}
            Err(LimiterRefusal::Unreachable(e)) => {
                tracing::debug!("the cluster's cool-down was not posted: {e}");
            }
            Err(LimiterRefusal::Refused(why)) => {
                tracing::debug!("the cluster's cool-down was not posted: {why}");
            }
        }
    }
}

/// A reqwest error's text without its URL (the caller names it once), with its causes.
fn without_url(error: reqwest::Error) -> String {
    crate::error_class::error_chain(&error.without_url())
}

/// A client for [`report_work`], shared by the process: without pooled connections,
/// so that it serves any runtime.
static REPORT_CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| http_client(false));

/// Tells the coordinator (through the cluster's limiter) what this worker's entries of a
/// query counted so far: the coordinator's `blossom_metrics()`, report and summary
/// show it per worker. Nothing when `blossom.cluster_limiter` is off. Best effort: a
/// failure is logged, never an error of the query.
pub async fn report_work(settings: &ProviderSettings, entries: &[Arc<FunctionMetrics>]) {
    let Some(url) = settings.cluster_limiter.as_deref() else {
        return;
    };
    if entries.is_empty() {
        return;
    }
    let limiter = RemoteLimiter::with_client(url, REPORT_CLIENT.clone());
    let worker = worker_name();
    let body: Vec<WorkReport> = entries.iter().map(|e| e.report(&worker)).collect();
    if let Err(refusal) = limiter.post("/report", &body).await {
        let why = match refusal {
            LimiterRefusal::Unreachable(e) => e.to_string(),
            LimiterRefusal::Refused(why) => why,
        };
        tracing::warn!("this worker's counts were not reported to the coordinator: {why}");
    }
}
