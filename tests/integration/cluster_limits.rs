//! The cluster's shared limiter (`LimiterServer`, `blossom.cluster_limiter`): three
//! sessions of one test process stand for three workers, each with its own dispatcher
//! and its own limits, all pointed at one simulator. Measured at the simulator: the cap
//! holds for them together, a `Retry-After` one of them sees pauses the others, and so
//! does `requests_per_minute`; each is first shown to fail without the limiter. Then
//! the token, an unreachable limiter, slots freed by a worker dropped or killed, and
//! the per-worker counts.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use blossom_sql::cluster_token::{CLUSTER_TOKEN_ENV, ClusterToken};
use blossom_sql::dispatch::LimiterServer;
use blossom_sql::sim::{FaultConfig, SimConfig, SimStats, Simulator};
use bytes::Bytes;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;

use crate::common::*;

/// The token every worker of these tests presents (from its environment).
const TOKEN: &str = "cluster-limits-test-token";

fn token() -> ClusterToken {
    static SET: Once = Once::new();
    SET.call_once(|| {
        // SAFETY: set once, before any limiter client of this test binary reads it;
        // no other test writes this variable.
        unsafe { std::env::set_var(CLUSTER_TOKEN_ENV, TOKEN) };
    });
    ClusterToken::new(TOKEN).unwrap()
}

async fn limiter() -> LimiterServer {
    LimiterServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), token())
        .await
        .expect("the limiter starts")
}

/// A worker: a session of its own on `sim`, with `options`, using `limiter`.
fn worker(sim: &Simulator, limiter: Option<&str>, options: &[(&str, &str)]) -> SessionContext {
    let mut all: Vec<(&str, &str)> = options.to_vec();
    if let Some(url) = limiter {
        all.push(("cluster_limiter", url));
    }
    session(sim, &all)
}

fn texts(first: usize, n: usize) -> Vec<Option<String>> {
    (first..first + n)
        .map(|i| Some(format!("worker text {i} was great")))
        .collect()
}

/// Three workers with `rows` rows each, run at once; their results.
async fn run_three(
    sim: &Simulator,
    limiter: Option<&str>,
    options: &[(&str, &str)],
    rows: usize,
) -> Vec<Vec<Option<String>>> {
    let workers: Vec<(SessionContext, Vec<Option<String>>)> = (0..3)
        .map(|w| {
            let ctx = worker(sim, limiter, options);
            let texts = texts(w * 1_000, rows);
            register_texts(&ctx, &texts);
            (ctx, texts)
        })
        .collect();
    let runs = workers.iter().map(|(ctx, texts)| async move {
        let values = column(ctx, "SELECT sentiment(text) FROM t").await.unwrap();
        assert_eq!(values, expected_sentiments(texts));
        values
    });
    futures::future::join_all(runs).await
}

/// The simulator's counters, sampled every few milliseconds while `run` runs.
async fn sampled<F: std::future::Future>(sim: &Simulator, run: F) -> Vec<(Instant, SimStats)> {
    let mut samples = Vec::new();
    let done = AtomicBool::new(false);
    let sampling = async {
        while !done.load(Ordering::Relaxed) {
            samples.push((Instant::now(), sim.stats()));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    };
    let running = async {
        run.await;
        done.store(true, Ordering::Relaxed);
    };
    tokio::join!(sampling, running);
    samples.push((Instant::now(), sim.stats()));
    samples
}

/// Requests that reached the simulator between `from` and `to` after `origin`.
fn arrivals_between(
    samples: &[(Instant, SimStats)],
    origin: Instant,
    from: Duration,
    to: Duration,
) -> u64 {
    let at = |offset: Duration| {
        samples
            .iter()
            .rev()
            .find(|(t, _)| *t <= origin + offset)
            .map_or(0, |(_, s)| s.requests)
    };
    at(to) - at(from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_hold_one_cap_together() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let options = [("max_concurrency", "4")];

    run_three(&sim, None, &options, 12).await;
    let alone = sim.stats().peak_in_flight;
    assert!(
        alone > 4,
        "without the limiter each worker has 4: {alone} at once"
    );

    sim.reset_stats();
    let limiter = limiter().await;
    run_three(&sim, Some(&limiter.url()), &options, 12).await;
    let together = sim.stats().peak_in_flight;
    assert!(
        together <= 4 && together > 1,
        "with the limiter the cluster has 4: {together} at once"
    );
    assert!(limiter.peak_in_flight() <= 4);
    assert_eq!(sim.stats().requests, 36);
    let started: u64 = limiter.per_worker().iter().map(|w| w.requests).sum();
    assert_eq!(started, 36, "every attempt started through the limiter");
    // Each worker gives its slots back as its requests end (its slot bodies end).
    until_held(&limiter, 0, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_seen_by_one_worker_pauses_them_all() {
    let config = SimConfig {
        latency: Duration::from_millis(50),
        faults: FaultConfig {
            rate_limited: 1.0,
            max_faults: Some(1),
            retry_after: Duration::from_secs(1),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let sim = simulator(config.clone()).await;
    let options = [("max_concurrency", "4")];
    let window = (Duration::from_millis(150), Duration::from_millis(800));
    let fault_at = |samples: &[(Instant, SimStats)]| {
        samples
            .iter()
            .find(|(_, s)| s.faults >= 1)
            .map(|(t, _)| *t)
            .expect("the 429 was sent")
    };

    let samples = sampled(&sim, run_three(&sim, None, &options, 40)).await;
    let origin = fault_at(&samples);
    let without = arrivals_between(&samples, origin, window.0, window.1);
    assert!(
        without > 0,
        "without the limiter only the worker that got the 429 waits: {without} requests \
         arrived meanwhile"
    );

    sim.set_config(config);
    sim.reset_stats();
    let limiter = limiter().await;
    let samples = sampled(&sim, run_three(&sim, Some(&limiter.url()), &options, 40)).await;
    let origin = fault_at(&samples);
    let with = arrivals_between(&samples, origin, window.0, window.1);
    assert_eq!(
        with, 0,
        "with the limiter no worker starts a request during the pause"
    );
    assert_eq!(sim.stats().requests, 121, "120 rows and the one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_holds_across_the_workers() {
    const PERIOD: Duration = Duration::from_millis(100);
    let sim = simulator(SimConfig::default()).await;
    let options = [("max_concurrency", "4"), ("requests_per_minute", "600")];
    // The most requests any half second saw.
    let busiest = |samples: &[(Instant, SimStats)]| {
        samples
            .iter()
            .map(|(t, _)| {
                let origin = *t;
                arrivals_between(samples, origin, Duration::ZERO, Duration::from_millis(500))
            })
            .max()
            .unwrap_or(0)
    };

    let samples = sampled(&sim, run_three(&sim, None, &options, 5)).await;
    let alone = busiest(&samples);
    assert!(
        alone > 6,
        "without the limiter each worker has 600/min: {alone} in 0.5 s"
    );

    sim.reset_stats();
    let limiter = limiter().await;
    let started = Instant::now();
    let samples = sampled(&sim, run_three(&sim, Some(&limiter.url()), &options, 5)).await;
    let elapsed = started.elapsed();
    let together = busiest(&samples);
    assert!(
        together <= 6,
        "with the limiter the cluster has 600/min: {together} in 0.5 s"
    );
    assert!(
        elapsed >= PERIOD * 13,
        "15 requests evenly spaced at {PERIOD:?} took {elapsed:?}"
    );
    assert_eq!(sim.stats().requests, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_the_query_names_the_limiter() {
    token();
    let other = ClusterToken::new("another-cluster-token").unwrap();
    let limiter = LimiterServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), other)
        .await
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for authorization in [Some(format!("Bearer {TOKEN}")), None] {
        let mut request = http
            .post(format!("{}/slot", limiter.url()))
            .header("x-blossom-worker", "w")
            .header("x-blossom-endpoint", "e")
            .header("x-blossom-max-concurrency", "1")
            .header("x-blossom-requests-per-minute", "0");
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(response.text().await.unwrap(), "", "no detail");
    }

    let sim = simulator(SimConfig::default()).await;
    let ctx = worker(&sim, Some(&limiter.url()), &[]);
    register_texts(&ctx, &texts(0, 3));
    let error = column(&ctx, "SELECT sentiment(text) FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("blossom.cluster_limiter")
            && error.contains(&limiter.url())
            && error.contains("401"),
        "{error}"
    );
    assert!(!error.contains(TOKEN), "{error}");
    assert_eq!(sim.stats().requests, 0, "nothing was sent");
    assert!(limiter.per_worker().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_limiter_fails_the_request_naming_it() {
    token();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let sim = simulator(SimConfig::default()).await;
    let ctx = worker(&sim, Some(&url), &[]);
    register_texts(&ctx, &texts(0, 2));
    let error = column(&ctx, "SELECT sentiment(text) FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("blossom.cluster_limiter") && error.contains(&url),
        "{error}"
    );
    assert_eq!(sim.stats().requests, 0);

    // Under on_error = 'null' the rows are NULL with a connection error, not a panic.
    let ctx = worker(&sim, Some(&url), &[("on_error", "null")]);
    register_texts(&ctx, &texts(0, 2));
    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();
    assert_eq!(values, vec![None, None]);
    let classes = column(&ctx, "SELECT error_class FROM blossom_errors()")
        .await
        .unwrap();
    assert!(
        !classes.is_empty() && classes.iter().all(|c| c.as_deref() == Some("connect")),
        "{classes:?}"
    );
}

/// Waits until `limiter` holds `n` slots.
async fn until_held(limiter: &LimiterServer, n: u64, within: Duration) {
    let started = Instant::now();
    while limiter.in_flight() != n {
        assert!(
            started.elapsed() < within,
            "{} slots held, not {n}",
            limiter.in_flight()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dropped_or_killed_mid_request_frees_its_slots() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(600),
        ..SimConfig::default()
    })
    .await;
    let limiter = limiter().await;
    let options = [("max_concurrency", "4")];

    // A worker dropped while its four requests are in flight.
    let a = worker(&sim, Some(&limiter.url()), &options);
    register_texts(&a, &texts(0, 40));
    let running = tokio::spawn(async move {
        let _ = column(&a, "SELECT sentiment(text) FROM t").await;
    });
    until_held(&limiter, 4, Duration::from_secs(10)).await;
    running.abort();
    let _ = running.await;
    let dropped = Instant::now();
    until_held(&limiter, 0, Duration::from_secs(2)).await;
    eprintln!(
        "a dropped worker's slots were free after {:?}",
        dropped.elapsed()
    );

    // A worker process killed with SIGKILL while it holds four slots.
    let mut child = blossom_command(&["--base-url", &sim.base_url(), "--model", "blossom-sim"])
        .args(["-q", "--max-concurrency", "4", "-c"])
        .arg("SELECT sentiment('row ' || v) FROM generate_series(1, 40) AS g(v)")
        .env("BLOSSOM_CLUSTER_LIMITER", limiter.url())
        .env(CLUSTER_TOKEN_ENV, TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("blossom starts");
    until_held(&limiter, 4, Duration::from_secs(20)).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let killed = Instant::now();
    until_held(&limiter, 0, Duration::from_secs(2)).await;
    eprintln!(
        "a killed worker's slots were free after {:?}",
        killed.elapsed()
    );

    // The others go on.
    let b = worker(&sim, Some(&limiter.url()), &options);
    let rows = texts(5_000, 8);
    register_texts(&b, &rows);
    let values = tokio::time::timeout(
        Duration::from_secs(10),
        column(&b, "SELECT sentiment(text) FROM t"),
    )
    .await
    .expect("the other worker gets the slots")
    .unwrap();
    assert_eq!(values, expected_sentiments(&rows));
}

/// A slot held as a worker holds it: granted, and kept while its request body is open
/// (until the returned sender is dropped).
struct Holding {
    _open: futures::channel::mpsc::UnboundedSender<Bytes>,
    response: reqwest::Response,
}

async fn hold(http: &reqwest::Client, limiter: &LimiterServer, worker: &str) -> Holding {
    let (open, body) = futures::channel::mpsc::unbounded::<Bytes>();
    let body = StreamBody::new(body.map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))));
    let response = http
        .post(format!("{}/slot", limiter.url()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-blossom-worker", worker)
        .header("x-blossom-endpoint", "http://p:1")
        .header("x-blossom-max-concurrency", "3")
        .header("x-blossom-requests-per-minute", "0")
        .body(reqwest::Body::wrap(body))
        .send()
        .await
        .unwrap();
    Holding {
        _open: open,
        response,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_counts_requests_and_slots_per_worker() {
    let limiter = limiter().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: String| {
        http.post(format!("{}{path}", limiter.url()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body)
            .send()
    };
    let ask = |worker: &str| {
        format!(
            r#"{{"worker":"{worker}","endpoint":"http://p:1","max_concurrency":3,"requests_per_minute":0}}"#
        )
    };
    let one = hold(&http, &limiter, "w1").await;
    let two = hold(&http, &limiter, "w1").await;
    let three = hold(&http, &limiter, "w2").await;
    for holding in [&one, &two, &three] {
        assert_eq!(holding.response.status().as_u16(), 200);
    }
    assert_eq!(limiter.in_flight(), 3);
    for worker in ["w1", "w1", "w2"] {
        let started = post("/start", ask(worker)).await.unwrap();
        assert_eq!(started.status().as_u16(), 200);
    }
    let counts: Vec<(String, u64, u64)> = limiter
        .per_worker()
        .into_iter()
        .map(|w| (w.worker, w.requests, w.peak_in_flight))
        .collect();
    assert_eq!(counts, [("w1".to_string(), 2, 2), ("w2".to_string(), 1, 1)]);
    assert_eq!(limiter.peak_in_flight(), 3);

    // A fourth slot waits for one of the three, which its holder ending its body frees.
    let waiting = {
        let http = http.clone();
        let url = limiter.url();
        tokio::spawn(async move {
            http.post(format!("{url}/slot"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("x-blossom-worker", "w2")
                .header("x-blossom-endpoint", "http://p:1")
                .header("x-blossom-max-concurrency", "3")
                .header("x-blossom-requests-per-minute", "0")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the cap is 3");
    drop(one);
    let granted = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("a dropped holder's slot is freed")
        .unwrap();
    assert_eq!(granted, 200);

    limiter.reset_counts();
    let counts: Vec<u64> = limiter.per_worker().iter().map(|w| w.requests).collect();
    assert!(counts.iter().all(|c| *c == 0), "{counts:?}");
    drop((two, three));
    until_held(&limiter, 0, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_request_without_its_headers_is_refused() {
    let limiter = limiter().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .post(format!("{}/slot", limiter.url()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.text().await.unwrap().contains("x-blossom-worker"));
    assert_eq!(limiter.in_flight(), 0);
}
