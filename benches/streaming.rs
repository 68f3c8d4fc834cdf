//! Streaming against the simulator at 50 ms a request: a chunked NDJSON source
//! (`sim::StreamServer`) through `sentiment()` into an HTTP sink (`sim::SinkServer`),
//! `INSERT INTO scored SELECT id, sent_at, sentiment(text) AS s FROM events WHERE text <> ''`.
//!
//! 1. Per-row latency, from the line leaving the source to its record reaching the sink
//!    (the sink's receive time less the record's `sent_at`), at 5 and 100 rows/s: p50
//!    and p99, and the same less the provider's latency (the issue's bound: +50 ms at
//!    the median, +150 ms at p99).
//! 2. Throughput at saturation: a fast source of 20,000 records; wall time against the
//!    bound `requests × 50 ms / max_concurrency` (the simulator's busy time spread over
//!    the slots).
//! 3. Rows lost under sink faults (connections dropped, 503s, a batch refused with 400):
//!    records read − delivered − dead-lettered, which must be 0.
//! 4. Peak RSS (`VmHWM`) after `memory N` records through a simulator without latency
//!    (`cargo bench --bench streaming -- memory 1000000`).
//!
//! ```text
//! cargo bench --bench streaming            # 1 to 3 (about 40 s)
//! cargo bench --bench streaming -- memory 1000000
//! ```

use std::time::{Duration, Instant};

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::observe::StreamStats;
use blossom_sql::sim::{SENT_AT, Script, SimConfig, Simulator, SinkServer, State, StreamServer};
use datafusion::prelude::{SessionConfig, SessionContext};

const LATENCY: Duration = Duration::from_millis(50);
const MAX_CONCURRENCY: usize = 16;

fn session(sim: &Simulator) -> SessionContext {
    BlossomSessionBuilder::new()
        .with_session_config(SessionConfig::new().with_target_partitions(1))
        .with_option("provider", "custom")
        .and_then(|b| b.with_base_url(&sim.base_url()))
        .and_then(|b| b.with_model("blossom-sim"))
        .and_then(|b| b.with_option("cache", "off"))
        .and_then(|b| b.with_option("max_concurrency", &MAX_CONCURRENCY.to_string()))
        .and_then(|b| b.build())
        .expect("session builds")
}

fn line(i: usize) -> String {
    let moods = ["great and fast", "arrived broken", "a plain box"];
    format!(
        "{{\"id\": {i}, \"text\": \"order {i} {}\", \"sent_at\": {SENT_AT}}}",
        moods[i % 3]
    )
}

fn lines(n: usize) -> Vec<String> {
    (0..n).map(line).collect()
}

/// What one run through source, model and sink did.
struct Run {
    wall: Duration,
    latencies_ms: Vec<f64>,
    requests: u64,
    read: u64,
    delivered: u64,
    dead_lettered: u64,
}

async fn run(sim: &Simulator, source: Script, sink: State, sink_options: &str) -> Run {
    let source = StreamServer::start(vec![source]).await;
    let sink = SinkServer::start(sink).await;
    let ctx = session(sim);
    let dir = std::env::temp_dir().join(format!("blossom-streaming-{}", std::process::id()));
    let dead = dir.join("dead.ndjson");
    let _ = std::fs::remove_file(&dead);
    ctx.sql(&format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR, sent_at DOUBLE) \
         STORED AS NDJSON LOCATION '{}'",
        source.url()
    ))
    .await
    .expect("source");
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE scored (id BIGINT, sent_at DOUBLE, s VARCHAR) STORED AS NDJSON \
         LOCATION '{}' OPTIONS ('dead_letter' '{}', 'retry_initial_ms' '5'{sink_options})",
        sink.url(),
        dead.display()
    ))
    .await
    .expect("sink");
    sim.reset_stats();
    let start = Instant::now();
    ctx.sql(
        "INSERT INTO scored SELECT id, sent_at, sentiment(text) AS s FROM events WHERE text <> ''",
    )
    .await
    .expect("plans")
    .collect()
    .await
    .expect("runs");
    let wall = start.elapsed();
    let mut latencies_ms = Vec::new();
    for post in sink.accepted() {
        for line in &post.lines {
            let record: serde_json::Value = serde_json::from_str(line).expect("a record");
            let sent_at = record["sent_at"].as_f64().unwrap_or(post.received_at);
            latencies_ms.push((post.received_at - sent_at) * 1_000.0);
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let stats = ctx
        .state()
        .config()
        .get_extension::<StreamStats>()
        .expect("a blossom session")
        .snapshot();
    Run {
        wall,
        latencies_ms,
        requests: sim.stats().requests,
        read: stats.records_in,
        delivered: stats.delivered,
        dead_lettered: stats.dead_lettered,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

async fn latency(sim: &Simulator) {
    println!("## Per-row latency, source to sink (provider latency 50 ms)\n");
    println!(
        "| rate | records | p50 (ms) | p99 (ms) | p50 − provider | p99 − provider | requests |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (rate, records) in [(5u64, 50usize), (100, 500)] {
        let pause = Duration::from_millis(1_000 / rate);
        let run = run(
            sim,
            Script::lines(lines(records), pause),
            State::default(),
            "",
        )
        .await;
        let (p50, p99) = (
            percentile(&run.latencies_ms, 0.5),
            percentile(&run.latencies_ms, 0.99),
        );
        let provider = LATENCY.as_secs_f64() * 1_000.0;
        println!(
            "| {rate} rows/s | {} | {p50:.1} | {p99:.1} | {:.1} | {:.1} | {} |",
            run.latencies_ms.len(),
            p50 - provider,
            p99 - provider,
            run.requests
        );
    }
    println!();
}

async fn saturation(sim: &Simulator) {
    println!("## Throughput at saturation (a fast source, {MAX_CONCURRENCY} in flight)\n");
    let records = 20_000;
    let run = run(
        sim,
        Script::lines(lines(records), Duration::ZERO),
        State::default(),
        "",
    )
    .await;
    println!("| source | records | requests | wall (s) | bound (s) | ratio | rows/s |");
    println!("|---|---|---|---|---|---|---|");
    let row = |source: &str, requests: u64, wall: Duration| {
        let bound = LATENCY.mul_f64(requests as f64 / MAX_CONCURRENCY as f64);
        println!(
            "| {source} | {records} | {requests} | {:.2} | {:.2} | {:.2} | {:.0} |",
            wall.as_secs_f64(),
            bound.as_secs_f64(),
            wall.as_secs_f64() / bound.as_secs_f64(),
            records as f64 / wall.as_secs_f64()
        );
    };
    row("HTTP stream", run.requests, run.wall);
    // The same rows from a bounded table into the same sink: what the stream costs
    // beyond the batch path.
    let sink = SinkServer::start(State::default()).await;
    let ctx = session(sim);
    let setup = [
        format!(
            "CREATE VIEW events AS SELECT v AS id, 'order ' || v || ' ' || \
             CASE v % 3 WHEN 0 THEN 'great and fast' WHEN 1 THEN 'arrived broken' \
             ELSE 'a plain box' END AS text, 1.0 AS sent_at FROM generate_series(0, {}) AS g(v)",
            records - 1
        ),
        format!(
            "CREATE EXTERNAL TABLE scored (id BIGINT, sent_at DOUBLE, s VARCHAR) \
             STORED AS NDJSON LOCATION '{}'",
            sink.url()
        ),
    ];
    for statement in setup {
        ctx.sql(&statement)
            .await
            .expect("setup")
            .collect()
            .await
            .expect("setup runs");
    }
    sim.reset_stats();
    let start = Instant::now();
    ctx.sql(
        "INSERT INTO scored SELECT id, sent_at, sentiment(text) AS s FROM events WHERE text <> ''",
    )
    .await
    .expect("plans")
    .collect()
    .await
    .expect("runs");
    row("table (bounded)", sim.stats().requests, start.elapsed());
    println!();
}

async fn faults(sim: &Simulator) {
    println!("## Rows lost under sink faults\n");
    let run = run(
        sim,
        Script::lines(lines(2_000), Duration::ZERO),
        State {
            drop_connections: 3.into(),
            fail_503: 5.into(),
            refuse_marker: Some("\"id\":777,".to_string()).into(),
            ..State::default()
        },
        ", 'batch_rows' '50'",
    )
    .await;
    println!("| read | delivered | dead-lettered | lost |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} |\n",
        run.read,
        run.delivered,
        run.dead_lettered,
        run.read as i64 - run.delivered as i64 - run.dead_lettered as i64
    );
}

/// The process's peak resident set, in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1_024.0)
}

async fn memory(records: usize) {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let before = peak_rss_mib();
    let run = run(
        &sim,
        Script::generated(records, line, Duration::ZERO),
        State {
            count_only: true,
            ..State::default()
        },
        ", 'batch_rows' '1000'",
    )
    .await;
    println!("## Memory: {records} records through a simulator without latency\n");
    println!(
        "| records delivered | requests | wall (s) | peak RSS before (MiB) | peak RSS after (MiB) |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.0} | {:.0} |",
        run.delivered,
        run.requests,
        run.wall.as_secs_f64(),
        before.unwrap_or(f64::NAN),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("memory") {
        let records = args
            .get(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        memory(records).await;
        return;
    }
    let sim = Simulator::start(SimConfig {
        latency: LATENCY,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    latency(&sim).await;
    saturation(&sim).await;
    faults(&sim).await;
}
