//! The persistent response cache (`blossom.cache`): reuse across queries, sessions and
//! processes, TTL, `off`, no secrets in the file, errors never stored, a damaged or busy
//! file, and resuming a 10,000-row run of the `blossom` binary killed with SIGKILL.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use blossom_sql::dispatch::{CACHE_FILE, FLUSH_BATCH, ResponseCache};
use blossom_sql::observe::session_stats;
use blossom_sql::sim::{FaultConfig, SimConfig, Simulator, sentiment_label};
use datafusion::prelude::SessionContext;

use crate::common::*;

const SENTIMENTS: &str = "SELECT sentiment(text) FROM t";

fn cache_hits(ctx: &SessionContext) -> u64 {
    session_stats(ctx).unwrap().snapshot().cache_hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_reused_across_queries_and_sessions() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    let texts = unique_texts(40);
    let ctx = session(&sim, &[("cache", cache)]);
    register_texts(&ctx, &texts);
    let first = column(&ctx, SENTIMENTS).await.unwrap();
    assert_eq!(first, expected_sentiments(&texts));
    assert_eq!(sim.stats().requests, 40);
    assert_eq!(cache_hits(&ctx), 0);

    let again = column(&ctx, SENTIMENTS).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(sim.stats().requests, 40, "the second query asks nothing");
    assert_eq!(cache_hits(&ctx), 40);
    drop(ctx);

    let other = session(&sim, &[("cache", cache)]);
    register_texts(&other, &texts);
    let plan = other
        .sql(&format!("EXPLAIN ANALYZE {SENTIMENTS}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let shown = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(shown.contains("cache_hits=40"), "{shown}");
    assert_eq!(
        sim.stats().requests,
        40,
        "a new session reads the same file"
    );
    assert!(dir.path().join(CACHE_FILE).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_makes_no_file_and_set_switches_files() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let texts = unique_texts(5);
    let ctx = session(&sim, &[]);
    register_texts(&ctx, &texts);
    let off = dir.path().join("off");
    ctx.sql(&format!("SET blossom.cache = '{}'", off.display()))
        .await
        .unwrap();
    ctx.sql("SET blossom.cache = 'off'").await.unwrap();
    column(&ctx, SENTIMENTS).await.unwrap();
    column(&ctx, SENTIMENTS).await.unwrap();
    assert_eq!(sim.stats().requests, 10, "off: every query asks");
    assert!(!off.exists(), "off creates nothing");

    for (name, expected_requests) in [("a", 15), ("b", 20), ("a", 20)] {
        let target = dir.path().join(name);
        ctx.sql(&format!("SET blossom.cache = '{}'", target.display()))
            .await
            .unwrap();
        column(&ctx, SENTIMENTS).await.unwrap();
        assert_eq!(sim.stats().requests, expected_requests, "cache {name}");
        assert!(target.join(CACHE_FILE).is_file());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_answers_are_asked_again() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = session(
        &sim,
        &[("cache", dir.path().to_str().unwrap()), ("cache_ttl", "1")],
    );
    register_texts(&ctx, &unique_texts(10));
    column(&ctx, SENTIMENTS).await.unwrap();
    column(&ctx, SENTIMENTS).await.unwrap();
    assert_eq!(sim.stats().requests, 10, "fresh answers are reused");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    column(&ctx, SENTIMENTS).await.unwrap();
    assert_eq!(sim.stats().requests, 20, "expired answers are asked again");
    column(&ctx, SENTIMENTS).await.unwrap();
    assert_eq!(sim.stats().requests, 20, "and stored anew");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_never_stored() {
    let sim = faulty_simulator(FaultConfig {
        server_error: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = session(
        &sim,
        &[
            ("cache", dir.path().to_str().unwrap()),
            ("on_error", "null"),
            ("max_retries", "0"),
        ],
    );
    register_texts(&ctx, &unique_texts(3));
    assert_eq!(column(&ctx, SENTIMENTS).await.unwrap(), vec![None; 3]);
    let mut config = sim.config();
    config.faults = FaultConfig::default();
    sim.set_config(config);
    let values = column(&ctx, SENTIMENTS).await.unwrap();
    assert!(values.iter().all(Option::is_some), "{values:?}");
    assert_eq!(sim.stats().requests, 6);
    assert_eq!(cache_hits(&ctx), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_not_in_the_cache_file() {
    let secret = "sk_cache_never_holds_me_77";
    let sim = simulator(SimConfig {
        api_key: Some(secret.to_string()),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = session(
        &sim,
        &[("cache", dir.path().to_str().unwrap()), ("api_key", secret)],
    );
    register_texts(&ctx, &unique_texts(20));
    column(&ctx, SENTIMENTS).await.unwrap();
    ResponseCache::shared(dir.path()).unwrap().flush();
    let bytes = std::fs::read(dir.path().join(CACHE_FILE)).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"POSITIVE") || contains(b"positive"),
        "answers are stored"
    );
    assert!(!contains(secret.as_bytes()), "the key is not");
}

// ---- the `blossom` binary ----

/// The 10,000 unique rows of the resume test, in id order.
const ROWS: usize = 10_000;
const RESUME_QUERY: &str = "SELECT id, sentiment(t) AS s FROM (SELECT v AS id, 'row ' || v || ' is great' AS t FROM generate_series(1, 10000) AS g(v)) ORDER BY id";
const MAX_CONCURRENCY: usize = 8;

fn blossom_with_cache(sim: &Simulator, cache: &Path, sql: &str, report: &Path) -> Command {
    let mut command = blossom_command(&["--base-url", &sim.base_url(), "--model", "x", "-q"]);
    command
        .args(["--max-concurrency", &MAX_CONCURRENCY.to_string()])
        .args(["--format", "csv", "--report"])
        .arg(report)
        .args(["-c", sql])
        .env("BLOSSOM_CACHE", cache);
    command
}

fn run_to_end(command: &mut Command) -> Output {
    let out = command.output().expect("blossom runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The first statement's cache hits, from a `--report` file.
fn reported_cache_hits(report: &Path) -> u64 {
    let text = std::fs::read_to_string(report).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    report["statements"][0]["ai"]["cache_hits"]
        .as_u64()
        .unwrap_or_else(|| panic!("no cache_hits in {text}"))
}

fn expected_resume_output() -> String {
    let mut csv = String::from("id,s\n");
    for id in 1..=ROWS {
        let label = sentiment_label(&format!("row {id} is great"));
        csv.push_str(&format!("{id},{label}\n"));
    }
    csv
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_killed_with_sigkill_resumes_without_asking_again() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let cache = dir.path().join("cache");

    let mut child = blossom_with_cache(&sim, &cache, RESUME_QUERY, &report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("blossom starts");
    let started = Instant::now();
    while sim.stats().answered < 3_000 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run is too slow"
        );
        assert!(child.try_wait().unwrap().is_none(), "killed too late");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    kill(&mut child);
    let answered_before_kill = sim.stats().answered;
    assert!(
        answered_before_kill < ROWS as u64,
        "killed part-way: {answered_before_kill}"
    );
    sim.reset_stats();

    let resumed = run_to_end(&mut blossom_with_cache(&sim, &cache, RESUME_QUERY, &report));
    let requests = sim.stats().requests;
    let hits = reported_cache_hits(&report);
    eprintln!(
        "resume: {answered_before_kill} answered before SIGKILL; the resumed run sent \
         {requests} requests and took {hits} answers from the cache"
    );
    assert_eq!(requests + hits, ROWS as u64, "every row is asked or cached");
    // An answer the provider sent before the kill is lost only if the process had not
    // yet read it (at most one per request in flight) or had read it but not yet
    // committed it (at most FLUSH_BATCH: storing waits for the writer beyond that).
    let lost_at_most = (MAX_CONCURRENCY + FLUSH_BATCH) as u64;
    assert!(
        requests <= ROWS as u64 - answered_before_kill + lost_at_most,
        "{requests} requests after {answered_before_kill} answered"
    );
    assert_eq!(
        String::from_utf8_lossy(&resumed.stdout),
        expected_resume_output()
    );

    sim.reset_stats();
    let started = Instant::now();
    let warm = run_to_end(&mut blossom_with_cache(&sim, &cache, RESUME_QUERY, &report));
    let elapsed = started.elapsed();
    assert_eq!(sim.stats().requests, 0, "a warm rerun asks nothing");
    assert_eq!(reported_cache_hits(&report), ROWS as u64);
    assert_eq!(
        String::from_utf8_lossy(&warm.stdout),
        expected_resume_output()
    );
    eprintln!(
        "warm rerun: {ROWS} rows in {:.2}s ({:.0} rows/s, process start included), 0 requests",
        elapsed.as_secs_f64(),
        ROWS as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_cache_both_finish() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let sql = RESUME_QUERY.replace("10000", "1000");
    let spawn = |report: &str| {
        blossom_with_cache(&sim, &cache, &sql, &dir.path().join(report))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("blossom starts")
    };
    let (first, second) = (spawn("one.json"), spawn("two.json"));
    let outputs = [first, second].map(|child| child.wait_with_output().unwrap());
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        if !stderr.is_empty() {
            assert!(
                stderr.contains("in use by another process") && stderr.contains(CACHE_FILE),
                "only the busy-cache warning: {stderr}"
            );
        }
    }
    assert_eq!(outputs[0].stdout, outputs[1].stdout);
    let lines = String::from_utf8_lossy(&outputs[0].stdout).lines().count();
    assert_eq!(lines, 1001);
    assert!(sim.stats().requests <= 2000);

    // The cache is whole afterwards: a third run asks nothing.
    sim.reset_stats();
    let report = dir.path().join("three.json");
    run_to_end(&mut blossom_with_cache(&sim, &cache, &sql, &report));
    assert_eq!(sim.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_file_is_set_aside_with_a_warning() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CACHE_FILE);
    std::fs::write(
        &file,
        b"this is not a redb file, just garbage bytes".repeat(500),
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let sql = RESUME_QUERY.replace("10000", "50");
    let out = run_to_end(&mut blossom_with_cache(&sim, dir.path(), &sql, &report));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damaged") && stderr.contains(&file.display().to_string()),
        "the warning names the file: {stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 51);
    let set_aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("responses.redb.damaged-")
        })
        .count();
    assert_eq!(set_aside, 1);
    sim.reset_stats();
    run_to_end(&mut blossom_with_cache(&sim, dir.path(), &sql, &report));
    assert_eq!(sim.stats().requests, 0, "the new file works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_packed_run_killed_with_sigkill_resumes_from_its_rows() {
    const PACK_ROWS: u64 = 16;
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let cache = dir.path().join("cache");
    let packed = |command: &mut Command| {
        command.env("BLOSSOM_PACK_ROWS", PACK_ROWS.to_string());
    };

    let mut first = blossom_with_cache(&sim, &cache, RESUME_QUERY, &report);
    packed(&mut first);
    let mut child = first
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("blossom starts");
    let started = Instant::now();
    while sim.stats().answered < 100 {
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
        assert!(child.try_wait().unwrap().is_none(), "killed too late");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    kill(&mut child);
    let rows_answered_before_kill = sim.stats().answered * PACK_ROWS;
    sim.reset_stats();

    let mut again = blossom_with_cache(&sim, &cache, RESUME_QUERY, &report);
    packed(&mut again);
    let resumed = run_to_end(&mut again);
    let hits = reported_cache_hits(&report);
    eprintln!(
        "packed resume: about {rows_answered_before_kill} rows answered before SIGKILL; \
         the resumed run took {hits} from the cache and sent {} requests",
        sim.stats().requests
    );
    // Answers the process had not yet committed when it was killed are asked again;
    // how many depends on the machine's load, so only most must have been kept.
    assert!(
        hits >= rows_answered_before_kill / 2,
        "{hits} cache hits after about {rows_answered_before_kill} rows were answered"
    );
    // Packs form within a batch, so each batch may end with one pack not full.
    assert!(
        sim.stats().requests <= (ROWS as u64 - hits).div_ceil(PACK_ROWS) + 8,
        "only the rows not cached are asked, packed"
    );
    assert_eq!(
        String::from_utf8_lossy(&resumed.stdout),
        expected_resume_output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_the_busy_cache_says_so_and_counts_what_it_paid_for() {
    const ROWS: u64 = 40;
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Another process has the cache open: here, this one.
    let held = ResponseCache::shared(&cache).unwrap();
    let report = dir.path().join("run.json");
    let sql = RESUME_QUERY.replace("10000", &ROWS.to_string());
    let mut command = blossom_command(&["--base-url", &sim.base_url(), "--model", "x"]);
    command
        .args(["--format", "csv", "--report"])
        .arg(&report)
        .args(["-c", &sql])
        .env("BLOSSOM_CACHE", &cache);
    let out = run_to_end(&mut command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = cache.join(CACHE_FILE);
    let why = format!(
        "the response cache {} is in use by another process",
        file.display()
    );
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("blossom: ") && l.contains(" rows · "))
        .unwrap_or_else(|| panic!("a summary line: {stderr}"));
    assert!(
        summary.ends_with(&format!(
            " · {ROWS} answers paid for without the response cache ({why})"
        )),
        "{summary}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["ai"]["uncached_answers"], ROWS);
    assert_eq!(json["statements"][0]["ai"]["uncached_answers"], ROWS);
    assert_eq!(
        json["cache_unavailable"],
        format!("{why}; {ROWS} answers were paid for without it")
    );
    assert_eq!(sim.stats().requests, ROWS);
    drop(held);

    // With the cache free, nothing is said and nothing is counted.
    let out = run_to_end(&mut command);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("without the response cache"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["ai"]["uncached_answers"], 0);
    assert_eq!(json["cache_unavailable"], serde_json::Value::Null);
}
