//! A cluster of real processes on 127.0.0.1: three `blossom worker`s, each with a
//! provider key of its own, and a coordinator `blossom --workers ...`, against the
//! simulator of the test process (which counts requests by the key that sent them).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use blossom_sql::sim::{SimConfig, Simulator};

use crate::common::{blossom_command, simulator};
use crate::redis_server::RedisServer;

const TOKEN: &str = "cluster-test-token-5521";
const COORDINATOR_KEY: &str = "sk-coordinator-secret-9090";

/// Longest a worker may take to start listening.
const PATIENCE: Duration = Duration::from_secs(60);

/// One `blossom worker` process, killed when dropped.
struct Worker {
    child: Child,
    addr: String,
    /// The last four characters of its key, as the simulator labels requests.
    label: String,
    _stderr: Receiver<String>,
}

impl Worker {
    fn start(i: usize, extra_env: &[(&str, &str)]) -> Self {
        let key = format!("sk-worker-key-{i}{i}{i}{i}");
        let mut command = blossom_command(&["worker", "--listen", "127.0.0.1:0"]);
        command
            .env("BLOSSOM_CLUSTER_TOKEN", TOKEN)
            .env("BLOSSOM_API_KEY", &key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (var, value) in extra_env {
            command.env(var, value);
        }
        let mut child = command.spawn().expect("blossom worker starts");
        let (send, lines) = channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let addr = loop {
            let line = lines
                .recv_timeout(PATIENCE.saturating_sub(started.elapsed()))
                .expect("the worker says where it listens");
            if let Some(addr) = line.strip_prefix("blossom worker: listening on ") {
                break addr.trim().to_string();
            }
        };
        Self {
            child,
            addr,
            label: format!("…{i}{i}{i}{i}"),
            _stderr: lines,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    workers: Vec<Worker>,
}

impl Cluster {
    fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    fn start_with(n: usize, env: &[(&str, &str)]) -> Self {
        Self {
            workers: (1..=n).map(|i| Worker::start(i, env)).collect(),
        }
    }

    fn list(&self) -> String {
        self.workers
            .iter()
            .map(|w| w.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `blossom` against `sim`, as coordinator of `workers` when given; CSV on stdout.
fn blossom(sim: &Simulator, workers: Option<&str>, sql: &str) -> Output {
    blossom_with(sim, workers, &["-q"], sql)
        .output()
        .expect("blossom runs")
}

/// The command of [`blossom`], with `extra` arguments in place of `-q`.
fn blossom_with(sim: &Simulator, workers: Option<&str>, extra: &[&str], sql: &str) -> Command {
    let base_url = sim.base_url();
    let mut args = vec![
        "--provider",
        "custom",
        "--base-url",
        &base_url,
        "--model",
        "blossom-sim",
        "--format",
        "csv",
    ];
    args.extend(extra);
    if let Some(workers) = workers {
        args.extend(["--workers", workers]);
    }
    args.extend(["-c", sql]);
    let mut command = blossom_command(&args);
    command
        .env("BLOSSOM_CLUSTER_TOKEN", TOKEN)
        .env("BLOSSOM_API_KEY", COORDINATOR_KEY);
    command
}

/// The sorted data lines of a CSV output, after its header; the run must succeed.
fn rows(output: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "blossom failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<String> = stdout.lines().skip(1).map(str::to_string).collect();
    lines.sort();
    lines
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A directory with the reviews and a small table of category labels.
fn data() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let reviews = dir.path().join("reviews.csv");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/reviews.csv"),
        &reviews,
    )
    .expect("copy reviews");
    let labels = dir.path().join("labels.csv");
    std::fs::write(
        &labels,
        "category,label\nbooks,Books\nclothing,Clothes\nelectronics,Gadgets\nhome,Home\n",
    )
    .expect("write labels");
    (dir, reviews, labels)
}

fn by_key(sim: &Simulator) -> BTreeMap<String, u64> {
    sim.stats().requests_by_key
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_answers_as_one_process_does() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let (dir, reviews, labels) = data();
    let (reviews, labels) = (reviews.display(), labels.display());
    let out = dir.path().join("scored.parquet");
    let queries = [
        format!(
            "SELECT id, sentiment(text) AS s FROM '{reviews}' \
             WHERE lang = 'en' AND sentiment(text) = 'NEGATIVE'"
        ),
        format!(
            "SELECT r.id, l.label, sentiment(r.text) AS s FROM '{reviews}' r \
             JOIN '{labels}' l ON r.category = l.category"
        ),
        format!("SELECT sentiment(text) AS s, count(*) AS n FROM '{reviews}' GROUP BY 1"),
        format!(
            "SELECT category, ai_reduce(array_agg(text ORDER BY id), 'the common complaint') AS r \
             FROM '{reviews}' WHERE rating <= 2 GROUP BY category"
        ),
    ];
    let cluster = Cluster::start(3);
    let workers = cluster.list();
    for sql in &queries {
        let single = rows(&blossom(&sim, None, sql));
        assert!(!single.is_empty(), "{sql} gives rows");
        sim.reset_stats();
        let distributed = rows(&blossom(&sim, Some(&workers), sql));
        assert_eq!(distributed, single, "{sql}");
        let keys = by_key(&sim);
        // Only the workers' keys: the coordinator sent nothing, and its key went nowhere.
        assert!(
            !keys.contains_key("…9090") && !keys.contains_key(""),
            "{sql}: {keys:?}"
        );
        assert!(!keys.is_empty(), "{sql}: no request");
    }

    // Every worker answers rows of a scan split among them.
    sim.reset_stats();
    let sql = format!("SELECT id, enhance(text) AS e FROM '{reviews}'");
    assert_eq!(rows(&blossom(&sim, Some(&workers), &sql)).len(), 300);
    let keys = by_key(&sim);
    for worker in &cluster.workers {
        assert!(
            keys.get(&worker.label).copied().unwrap_or(0) > 0,
            "worker {} sent no request: {keys:?}",
            worker.addr
        );
    }
    assert_eq!(keys.values().sum::<u64>(), sim.stats().requests);

    // COPY to Parquet writes what the single process writes.
    let copy = format!(
        "COPY (SELECT id, sentiment(text) AS s FROM '{reviews}') TO '{}'",
        out.display()
    );
    rows(&blossom(&sim, Some(&workers), &copy));
    let read = format!("SELECT id, s FROM '{}' ORDER BY id", out.display());
    let copied = rows(&blossom(&sim, None, &read));
    let direct = rows(&blossom(
        &sim,
        None,
        &format!("SELECT id, sentiment(text) AS s FROM '{reviews}' ORDER BY id"),
    ));
    assert_eq!(copied.len(), 300);
    assert_eq!(copied, direct);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cap_on_requests_in_flight_is_the_clusters() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(30),
        ..SimConfig::default()
    })
    .await;
    let cluster = Cluster::start(3);
    let sql = "SET blossom.max_concurrency = 4; \
               SELECT id, enhance(text) AS e FROM 'data/reviews.csv'";
    assert_eq!(rows(&blossom(&sim, Some(&cluster.list()), sql)).len(), 300);
    let stats = sim.stats();
    let keys = by_key(&sim);
    assert!(stats.requests > 200, "{stats:?}");
    assert!(keys.len() == 3, "every worker asked: {keys:?}");
    assert!(
        (2..=4).contains(&stats.peak_in_flight),
        "peak in flight {} with three workers and max_concurrency 4",
        stats.peak_in_flight
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_down_or_refusing_the_token_fails_the_query_before_any_request() {
    let sim = simulator(SimConfig::default()).await;
    let cluster = Cluster::start(1);
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let workers = format!("{},{closed}", cluster.list());
    let output = blossom(&sim, Some(&workers), "SELECT sentiment('I love it')");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&closed.to_string()) && message.contains("unreachable"),
        "{message}"
    );
    assert_eq!(sim.stats().requests, 0);

    // A coordinator with another token.
    let output = blossom_command(&[
        "--provider",
        "custom",
        "--base-url",
        &sim.base_url(),
        "--workers",
        &cluster.list(),
        "-c",
        "SELECT sentiment('I love it')",
    ])
    .env("BLOSSOM_CLUSTER_TOKEN", "another-token-entirely")
    .output()
    .expect("blossom runs");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&cluster.list()) && message.contains("token"),
        "{message}"
    );
    assert!(!message.contains(TOKEN) && !message.contains("another-token-entirely"));
    assert_eq!(sim.stats().requests, 0);

    // Without a token, neither a worker nor a coordinator starts.
    let output = blossom_command(&["worker", "--listen", "127.0.0.1:0"])
        .env_remove("BLOSSOM_CLUSTER_TOKEN")
        .output()
        .expect("blossom runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("BLOSSOM_CLUSTER_TOKEN"));
    let output = blossom_command(&["--workers", &cluster.list(), "-c", "SELECT 1"])
        .env_remove("BLOSSOM_CLUSTER_TOKEN")
        .output()
        .expect("blossom runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("BLOSSOM_CLUSTER_TOKEN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_that_cannot_travel_are_refused_by_name() {
    let sim = simulator(SimConfig::default()).await;
    let cluster = Cluster::start(1);
    let output = blossom(
        &sim,
        Some(&cluster.list()),
        "SET blossom.model = 'modèle'; SELECT sentiment('I love it')",
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("blossom.model") && message.contains("ASCII"),
        "{message}"
    );
    assert_eq!(sim.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_query_fails_it_naming_the_worker_and_writes_no_file() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let (dir, reviews, _) = data();
    let out = dir.path().join("scored.parquet");
    let mut cluster = Cluster::start(3);
    let workers = cluster.list();
    let copy = format!(
        "SET blossom.max_concurrency = 2; \
         COPY (SELECT id, enhance(text) AS e FROM '{}') TO '{}'",
        reviews.display(),
        out.display()
    );
    let base_url = sim.base_url();
    let coordinator = blossom_command(&[
        "--provider",
        "custom",
        "--base-url",
        &base_url,
        "--model",
        "blossom-sim",
        "--workers",
        &workers,
        "-c",
        &copy,
    ])
    .env("BLOSSOM_CLUSTER_TOKEN", TOKEN)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("blossom runs");
    let started = Instant::now();
    while by_key(&sim)
        .get(&cluster.workers[1].label)
        .copied()
        .unwrap_or(0)
        < 3
    {
        assert!(started.elapsed() < PATIENCE, "worker 2 never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = cluster.workers[1].addr.clone();
    cluster.workers[1].kill();
    let output = coordinator.wait_with_output().expect("blossom ends");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains(&killed), "{message}");
    assert!(!out.exists(), "a partial output file was left");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 2, "only the inputs remain: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinator_shows_rows_and_requests_per_worker() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("run.json");
    let cluster = Cluster::start(3);
    let sql = "SELECT count(e) AS answered FROM \
                 (SELECT enhance(text) AS e FROM 'data/reviews.csv'); \
               SELECT worker, sum(rows) AS rows, sum(requests) AS requests \
                 FROM blossom_metrics() GROUP BY worker ORDER BY worker";
    let output = blossom_with(
        &sim,
        Some(&cluster.list()),
        &["--report", report.to_str().expect("utf-8 path")],
        sql,
    )
    .output()
    .expect("blossom runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let message = stderr(&output);
    assert!(output.status.success(), "{message}\n{stdout}");
    let keys = by_key(&sim);

    // blossom_metrics(): a row per worker, whose requests are the ones the simulator
    // saw with that worker's key.
    let metrics: BTreeMap<String, (u64, u64)> = stdout
        .lines()
        .filter(|line| line.starts_with("127.0.0.1:"))
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let number = |i: usize| fields[i].parse::<u64>().expect("a count");
            (fields[0].to_string(), (number(1), number(2)))
        })
        .collect();
    assert_eq!(metrics.len(), 3, "{stdout}");
    for worker in &cluster.workers {
        let (rows, requests) = metrics[&worker.addr];
        assert!(rows > 0, "worker {} answered no row: {stdout}", worker.addr);
        assert_eq!(requests, keys[&worker.label], "{}: {stdout}", worker.addr);
    }
    // 300 rows, 5 of them blank: 295 need an answer.
    assert_eq!(metrics.values().map(|m| m.0).sum::<u64>(), 295);

    // The run report: per statement and in all, the same counts per worker.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("a report")).expect("JSON");
    let first = &report["statements"][0];
    assert_eq!(first["ai"]["rows"], 295);
    assert_eq!(first["ai"]["requests"], sim.stats().requests);
    for worker in &cluster.workers {
        let (rows, requests) = metrics[&worker.addr];
        assert_eq!(first["workers"][&worker.addr]["rows"], rows, "{report}");
        assert_eq!(first["workers"][&worker.addr]["requests"], requests);
        assert_eq!(report["workers"][&worker.addr]["rows"], rows);
    }
    assert!(
        report["statements"][1].get("workers").is_none(),
        "the metrics query ran no AI call: {report}"
    );

    // The summary lines on stderr.
    assert!(message.contains("blossom: 295 rows"), "{message}");
    let per_worker = message
        .lines()
        .find(|line| line.starts_with("blossom: per worker: "))
        .unwrap_or_else(|| panic!("no per-worker line: {message}"));
    for worker in &cluster.workers {
        let (rows, requests) = metrics[&worker.addr];
        assert!(
            per_worker.contains(&format!("{} {rows} rows, {requests} requests", worker.addr)),
            "{per_worker}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_shared_cache_a_rerun_pays_only_for_what_a_killed_worker_left_unanswered() {
    let redis = RedisServer::start();
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    // Texts all different, so that each is asked once however the rows are split.
    let dir = tempfile::tempdir().expect("temp dir");
    let texts = dir.path().join("texts.csv");
    let distinct = 240u64;
    let lines: Vec<String> = (1..=distinct)
        .map(|i| format!("{i},the {i}th text of the shared cache test"))
        .collect();
    std::fs::write(&texts, format!("id,text\n{}\n", lines.join("\n"))).expect("write texts");
    let out = dir.path().join("scored.parquet");
    let mut cluster = Cluster::start(3);
    let copy = format!(
        "SET blossom.cache = '{}'; SET blossom.max_concurrency = 3; \
         COPY (SELECT id, enhance(text) AS e FROM '{}') TO '{}'",
        redis.url(),
        texts.display(),
        out.display()
    );

    let coordinator = blossom_with(&sim, Some(&cluster.list()), &["-q"], &copy)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("blossom runs");
    let started = Instant::now();
    while sim.stats().requests < 30 {
        assert!(started.elapsed() < PATIENCE, "the cluster never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.workers[1].kill();
    let output = coordinator.wait_with_output().expect("blossom ends");
    assert!(!output.status.success(), "the query failed with its worker");
    assert!(!out.exists());

    // What the cluster paid for and kept; the rest is all the rerun may ask.
    let cached = settled(|| redis.answers());
    assert!(cached > 0 && cached < distinct, "{cached} of {distinct}");
    sim.reset_stats();
    let replacement = Worker::start(4, &[]);
    let workers = format!(
        "{},{},{}",
        cluster.workers[0].addr, cluster.workers[2].addr, replacement.addr
    );
    rows(&blossom(&sim, Some(&workers), &copy));
    assert_eq!(sim.stats().requests, distinct - cached);
    assert_eq!(redis.answers(), distinct);
    let read = format!("SELECT count(*), count(e) FROM '{}'", out.display());
    assert_eq!(
        rows(&blossom(&sim, None, &read)),
        [format!("{distinct},{distinct}")]
    );

    // A warm rerun of the finished query sends nothing.
    sim.reset_stats();
    rows(&blossom(&sim, Some(&workers), &copy));
    assert_eq!(sim.stats().requests, 0);
}

/// The value of `count` once it stopped changing for half a second (requests in flight
/// when a query failed may still land).
fn settled(count: impl Fn() -> u64) -> u64 {
    let mut last = count();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = count();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_estimates_without_sending_and_takes_new_workers_between_queries() {
    let sim = simulator(SimConfig::default()).await;
    let first = Cluster::start(1);
    let second = Worker::start(2, &[]);
    let estimate = "SELECT requests FROM blossom_estimate(\
                      'SELECT sentiment(text) FROM ''data/reviews.csv''')";
    let planned = rows(&blossom(&sim, Some(&first.list()), estimate));
    assert_eq!(planned.len(), 1);
    assert!(
        planned[0].parse::<u64>().expect("a count") > 0,
        "{planned:?}"
    );
    assert_eq!(sim.stats().requests, 0, "a dry run sends nothing");

    // The next query goes to the workers blossom.workers names then.
    let sql = format!(
        "SET blossom.workers = '{}'; SELECT count(sentiment(text)) FROM 'data/reviews.csv'",
        second.addr
    );
    assert_eq!(rows(&blossom(&sim, Some(&first.list()), &sql)), ["295"]);
    let keys = by_key(&sim);
    assert_eq!(keys.keys().collect::<Vec<_>>(), [&second.label], "{keys:?}");

    let output = blossom(
        &sim,
        Some(&first.list()),
        "SET blossom.workers = ''; SELECT sentiment('I love it')",
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("blossom.workers is empty"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_session_sees_the_workers_progress_while_the_query_runs() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let cluster = Cluster::start(2);
    let ctx = blossom_sql::BlossomSessionBuilder::new()
        .with_simulator(&sim)
        .and_then(|b| b.with_option("pack_rows", "1"))
        .and_then(|b| b.with_option("max_concurrency", "4"))
        .and_then(|b| b.with_workers(&cluster.list()))
        .expect("settings")
        .with_cluster_token(blossom_sql::cluster_token::ClusterToken::new(TOKEN).expect("token"))
        .build()
        .expect("a coordinator session");
    let stats = blossom_sql::observe::session_stats(&ctx).expect("a blossom session");
    // About 290 requests, 4 at a time at 50 ms: several seconds.
    let query = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.sql("SELECT enhance(text) FROM 'data/reviews.csv'")
                .await?
                .collect()
                .await
        })
    };
    let started = Instant::now();
    let mut seen = Vec::new();
    while !query.is_finished() && started.elapsed() < PATIENCE {
        seen.push(stats.snapshot().rows_done);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batches = query.await.expect("joined").expect("the query runs");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 300);
    // Part of the rows, before the last batch: the workers' reports while they run.
    assert!(
        seen.iter().any(|done| (1..295).contains(done)),
        "rows seen done while the query ran: {seen:?}"
    );
    assert_eq!(stats.snapshot().rows_done, 295);
    assert_eq!(stats.per_worker().len(), 2);
}
